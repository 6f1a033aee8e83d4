//! The admin HTTP API: dead-letter list, inspect, replay, delete and stats,
//! served on the worker's one listener under `/api` when `RELAY_ADMIN_TOKEN`
//! is set (absent otherwise, not merely refused).
//!
//! Every `/api/dead-letters...` route needs `Authorization: Bearer <token>`;
//! the comparison ([`crate::admin_token`]) is constant time over SHA-256
//! digests, so neither the token's bytes nor its length leak through
//! timing.
//! `/api/openapi.json` is public: it describes the routes and holds no data.
//!
//! The routes are declared once in [`routes`]'s table, which builds the
//! router and which the OpenAPI document is tested against.

use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, MethodRouter};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::admin_token::{self, TokenCheck};
use crate::config::{AmqpConfig, Secret};
use crate::deadletter::filter::Cursor;
use crate::deadletter::replay::{self, ReplayOptions};
use crate::deadletter::view::{Detail, PageView, FILTER_FIELDS};
use crate::deadletter::{Filter, FilterSpec, Store, StoreError};

/// What the admin handlers share.
#[derive(Clone)]
pub struct AdminState {
    /// Filled once the worker has connected its store; until then the API
    /// answers 503, because the listener starts before the store is up (so
    /// `/readyz` can say the store is down).
    pub store: Arc<OnceLock<Store>>,
    /// `RELAY_ADMIN_TOKEN`.
    pub token: Secret,
    /// Where replays publish (`AMQP_EXCHANGE`).
    pub amqp: AmqpConfig,
}

/// Default page size when `limit` is absent.
const DEFAULT_LIMIT: u32 = 100;

/// Every admin route: method, path (axum syntax, which is OpenAPI's) and
/// handler. The single source for [`router`] and [`route_list`].
fn routes() -> Vec<(Method, &'static str, MethodRouter<AdminState>)> {
    vec![
        (Method::GET, "/api/dead-letters", get(list)),
        (Method::GET, "/api/dead-letters/stats", get(stats)),
        (
            Method::POST,
            "/api/dead-letters/replay",
            post(replay_handler),
        ),
        (Method::GET, "/api/dead-letters/{id}", get(show)),
        (Method::DELETE, "/api/dead-letters/{id}", delete(remove)),
    ]
}

/// The authenticated routes as `(method, path)`, plus the public OpenAPI
/// document's own route.
pub fn route_list() -> Vec<(Method, &'static str)> {
    let mut out: Vec<(Method, &'static str)> =
        routes().into_iter().map(|(m, p, _)| (m, p)).collect();
    out.push((Method::GET, "/api/openapi.json"));
    out
}

/// The admin routes with their state, ready to merge into the main router.
pub fn router(state: AdminState) -> Router {
    let mut api = Router::new();
    for (_, path, handler) in routes() {
        api = api.route(path, handler);
    }
    let api = api.layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/api/openapi.json", get(|| async { Json(openapi()) }))
        .merge(api)
        .with_state(state)
}

/// An error answer: `{"error": "..."}` with a status.
struct ApiError(StatusCode, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let status = if e.is_unavailable() {
            StatusCode::SERVICE_UNAVAILABLE
        } else if matches!(e, StoreError::Corrupt { .. }) {
            // The row, not the server, is broken; the rest still work.
            StatusCode::UNPROCESSABLE_ENTITY
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        let mut msg = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            msg = format!("{msg}: {s}");
            source = s.source();
        }
        ApiError(status, msg)
    }
}

fn bad_request(msg: impl Into<String>) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, msg.into())
}

fn store(state: &AdminState) -> Result<&Store, ApiError> {
    state.store.get().ok_or_else(|| {
        ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            "the dead-letter store is not connected yet; see /readyz".into(),
        )
    })
}

async fn require_token(State(state): State<AdminState>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let check = admin_token::FAILED_ATTEMPTS.check(
        &state.token,
        given,
        admin_token::peer(req.extensions()),
    );
    if let TokenCheck::Throttled(wait) = check {
        return admin_token::throttled(wait);
    }
    if check != TokenCheck::Right {
        let mut resp = ApiError(
            StatusCode::UNAUTHORIZED,
            "missing or wrong bearer token (Authorization: Bearer <RELAY_ADMIN_TOKEN>)".into(),
        )
        .into_response();
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
        return resp;
    }
    next.run(req).await
}

/// The listing's query: the filters, the page size and the cursor. Unknown
/// parameters are refused so a typo (`?reasn=...`) cannot silently widen a
/// listing or a replay.
#[derive(Debug, Default, Deserialize)]
struct ListParams {
    #[serde(flatten)]
    filter: FilterSpec,
    limit: Option<String>,
    cursor: Option<String>,
    // What the fields above left. serde's `deny_unknown_fields` would refuse
    // it too, but with a flattened field it no longer names the parameters
    // it expected, which the answer always has.
    #[serde(flatten)]
    unknown: std::collections::BTreeMap<String, String>,
}

impl ListParams {
    fn refuse_unknown(self) -> Result<ListParams, ApiError> {
        let Some(name) = self.unknown.keys().next() else {
            return Ok(self);
        };
        let expected: Vec<String> = FILTER_FIELDS
            .iter()
            .map(|f| f.name)
            .chain(["limit", "cursor"])
            .map(|n| format!("`{n}`"))
            .collect();
        Err(bad_request(format!(
            "bad query string: Failed to deserialize query string: unknown field `{name}`, expected one of {}",
            expected.join(", ")
        )))
    }
}

fn parse_filter(spec: &FilterSpec) -> Result<Filter, ApiError> {
    spec.parse(SystemTime::now())
        .map_err(|e| bad_request(e.to_string()))
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v)
        .map_err(|e| bad_request(format!("bad query string: {}", e.body_text())))
}

fn parse_id(s: &str) -> Result<i64, ApiError> {
    s.parse::<i64>()
        .map_err(|_| bad_request(format!("bad dead-letter id {s:?}: expected an integer")))
}

async fn list(
    State(state): State<AdminState>,
    q: Result<Query<ListParams>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let params = query(q)?.refuse_unknown()?;
    let filter = parse_filter(&params.filter)?;
    let limit = match params.limit.as_deref() {
        None | Some("") => DEFAULT_LIMIT,
        Some(s) => s
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=crate::deadletter::ops::MAX_PAGE).contains(n))
            .ok_or_else(|| {
                bad_request(format!(
                    "bad limit {s:?}: expected an integer from 1 to {}",
                    crate::deadletter::ops::MAX_PAGE
                ))
            })?,
    };
    let cursor = params
        .cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(Cursor::decode)
        .transpose()
        .map_err(|e| bad_request(e.to_string()))?;
    let page = store(&state)?.list(&filter, cursor, limit).await?;
    Ok(Json(json!(PageView::from(&page))))
}

async fn show(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = parse_id(&id)?;
    match store(&state)?.get(id).await? {
        Some(dl) => Ok(Json(json!(Detail::from(&dl)))),
        None => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no dead letter with id {id}"),
        )),
    }
}

async fn remove(
    State(state): State<AdminState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_id(&id)?;
    match store(&state)?.delete(&[id]).await? {
        0 => Err(ApiError(
            StatusCode::NOT_FOUND,
            format!("no dead letter with id {id}"),
        )),
        _ => Ok(StatusCode::NO_CONTENT),
    }
}

async fn stats(
    State(state): State<AdminState>,
    q: Result<Query<FilterSpec>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let filter = parse_filter(&query(q)?)?;
    let stats = store(&state)?.stats(&filter).await?;
    Ok(Json(json!(stats)))
}

/// `POST /api/dead-letters/replay` body: ids, or a filter (`{}` for all).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayBody {
    ids: Option<Vec<i64>>,
    filter: Option<FilterSpec>,
    #[serde(default)]
    force: bool,
    #[serde(default)]
    dry_run: bool,
}

async fn replay_handler(
    State(state): State<AdminState>,
    body: Result<Json<ReplayBody>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(body) = body.map_err(|e| bad_request(format!("bad JSON body: {}", e.body_text())))?;
    let mut filter = match (&body.ids, &body.filter) {
        (None, None) => return Err(bad_request(
            "give \"ids\": [..] or \"filter\": {..} (an empty filter {} replays every dead letter)",
        )),
        (_, Some(spec)) => parse_filter(spec)?,
        (_, None) => Filter::default(),
    };
    if let Some(ids) = &body.ids {
        if ids.is_empty() {
            return Err(bad_request("\"ids\" is empty: expected at least one id"));
        }
        filter.ids = ids.clone();
    }
    let store = store(&state)?;
    let report = if body.dry_run {
        replay::plan(store, &filter, body.force).await?
    } else {
        let opts = ReplayOptions {
            force: body.force,
            ..ReplayOptions::default()
        };
        // A task of its own, so that a client that disconnects (or times
        // out) does not stop the replay half-way: it runs to the end and
        // its rows are marked; the answer is only lost.
        let (store, amqp) = (store.clone(), state.amqp.clone());
        let run =
            tokio::spawn(
                async move { replay::replay(&store, &amqp, &filter, &opts, |_, _| {}).await },
            );
        run.await
            .map_err(|e| {
                ApiError(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("the replay task failed: {e}"),
                )
            })?
            .map_err(|e| match e {
                replay::ReplayError::Store(e) => ApiError::from(e),
                other => ApiError(StatusCode::BAD_GATEWAY, other.to_string()),
            })?
    };
    Ok(Json(json!(report)))
}

/// The OpenAPI 3.0 document for the routes above, written by hand (a test
/// checks that its paths and methods are exactly the routed ones).
pub fn openapi() -> Value {
    let filter_params: Vec<Value> = FILTER_FIELDS
        .iter()
        .map(|f| {
            let mut schema = json!({"type": "string"});
            if let Some(values) = f.values {
                schema["enum"] = json!(values);
            }
            let mut param = json!({"name": f.name, "in": "query", "schema": schema});
            if let Some(description) = f.description {
                param["description"] = json!(description);
            }
            param
        })
        .collect();
    let filter_properties: serde_json::Map<String, Value> = FILTER_FIELDS
        .iter()
        .map(|f| (f.name.to_owned(), json!({"type": "string"})))
        .collect();
    let mut list_params = filter_params.clone();
    list_params.push(json!({"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": crate::deadletter::ops::MAX_PAGE, "default": DEFAULT_LIMIT}}));
    list_params.push(json!({"name": "cursor", "in": "query", "schema": {"type": "string"}, "description": "next_cursor of the previous page."}));
    let id_param = json!({"name": "id", "in": "path", "required": true, "schema": {"type": "integer", "format": "int64"}});
    let error = json!({"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "pusher-relay admin API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Dead-letter operations. Off unless RELAY_ADMIN_TOKEN is set; every /api/dead-letters route needs Authorization: Bearer <token>."
        },
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]},
                "Summary": {"type": "object", "properties": {
                    "id": {"type": "integer"}, "status": {"type": "string"}, "reason": {"type": "string"},
                    "type": {"type": "string", "nullable": true}, "intent_id": {"type": "string", "nullable": true},
                    "channels": {"type": "array", "items": {"type": "string"}}, "error": {"type": "string"},
                    "pusher_status": {"type": "integer", "nullable": true}, "attempts": {"type": "integer"},
                    "dead_lettered_at": {"type": "string", "format": "date-time"}, "replay_count": {"type": "integer"}
                }},
                "Page": {"type": "object", "properties": {
                    "items": {"type": "array", "items": {"$ref": "#/components/schemas/Summary"}},
                    "next_cursor": {"type": "string", "nullable": true}
                }},
                "ReplayRequest": {"type": "object", "properties": {
                    "ids": {"type": "array", "items": {"type": "integer"}},
                    "filter": {"type": "object", "properties": filter_properties},
                    "force": {"type": "boolean", "default": false},
                    "dry_run": {"type": "boolean", "default": false}
                }},
                "ReplayReport": {"type": "object", "properties": {
                    "matched": {"type": "integer"}, "eligible": {"type": "integer"},
                    "skipped_replayed": {"type": "integer"}, "replayed": {"type": "integer"},
                    "failed": {"type": "integer"}, "errors": {"type": "array", "items": {"type": "string"}},
                    "dry_run": {"type": "boolean"}
                }}
            }
        },
        "paths": {
            "/api/dead-letters": {
                "get": {
                    "summary": "List dead letters, newest first, with keyset pagination.",
                    "parameters": list_params,
                    "responses": {
                        "200": {"description": "A page", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Page"}}}},
                        "400": error, "401": error
                    }
                }
            },
            "/api/dead-letters/stats": {
                "get": {
                    "summary": "Counts by reason, type and day, and the oldest pending.",
                    "parameters": filter_params,
                    "responses": {"200": {"description": "Stats"}, "400": error, "401": error}
                }
            },
            "/api/dead-letters/replay": {
                "post": {
                    "summary": "Republish dead letters by ids or filter; pending only unless force.",
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ReplayRequest"}}}},
                    "responses": {
                        "200": {"description": "Counts", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ReplayReport"}}}},
                        "400": error, "401": error, "502": error
                    }
                }
            },
            "/api/dead-letters/{id}": {
                "get": {
                    "summary": "Every stored field of one dead letter.",
                    "parameters": [id_param],
                    "responses": {"200": {"description": "The dead letter"}, "400": error, "401": error, "404": error}
                },
                "delete": {
                    "summary": "Delete one dead letter.",
                    "parameters": [id_param],
                    "responses": {"204": {"description": "Deleted"}, "400": error, "401": error, "404": error}
                }
            },
            "/api/openapi.json": {
                "get": {
                    "summary": "This document.",
                    "security": [],
                    "responses": {"200": {"description": "OpenAPI 3.0 document"}}
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listing_query_takes_the_filters_and_refuses_a_misspelt_one() {
        let parse = |q: &str| {
            let uri: axum::http::Uri = format!("/api/dead-letters?{q}").parse().expect("a URI");
            query(Query::<ListParams>::try_from_uri(&uri)).and_then(ListParams::refuse_unknown)
        };
        let Ok(params) = parse("reason=rejected&type=chat&limit=5") else {
            panic!("known parameters were refused");
        };
        assert_eq!(params.filter.reason.as_deref(), Some("rejected"));
        assert_eq!(params.filter.intent_type.as_deref(), Some("chat"));
        assert_eq!(params.limit.as_deref(), Some("5"));
        let Err(ApiError(status, msg)) = parse("reasn=rejected") else {
            panic!("a misspelt filter was accepted");
        };
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            msg,
            "bad query string: Failed to deserialize query string: unknown field `reasn`, \
             expected one of `reason`, `type`, `channel`, `since`, `until`, `status`, `limit`, `cursor`"
        );
    }
}
