//! The ops console: a few server-rendered pages under `/ui`, served by the
//! worker on its one listener when `RELAY_ADMIN_TOKEN` is set (absent
//! otherwise, as the admin API is).
//!
//! - [`session`]: sign-in (the admin token for a session cookie) and CSRF;
//! - [`history`]: the 15-minute history the overview charts;
//! - [`replays`]: replays started from the page, run as worker tasks;
//! - [`pages`]: the HTML, escaped by the template engine (maud).
//!
//! Guards, in the order a request meets them: every response carries a
//! Content-Security-Policy that allows only our own scripts and styles (no
//! inline ones); every route but sign-in and the assets needs a session;
//! every POST must carry the session's CSRF token (403 otherwise).

pub mod history;
pub mod pages;
pub mod replays;
pub mod session;

use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::json;

use crate::config::{AmqpConfig, Secret};
use crate::deadletter::filter::Cursor;
use crate::deadletter::{replay, Filter, FilterSpec, Store, StoreError};
use crate::health::Health;
use crate::relay::circuit::Circuit;
use crate::relay::concurrency::Limiter;
use history::History;
use replays::Replays;
use session::Sessions;

/// What the console's handlers share.
pub struct Console {
    /// Filled once the worker has connected its store (as for the admin API).
    pub store: Arc<OnceLock<Store>>,
    /// `RELAY_ADMIN_TOKEN`: what sign-in compares with; never rendered.
    pub token: Secret,
    /// Where replays publish.
    pub amqp: AmqpConfig,
    pub health: Arc<Health>,
    pub circuit: Arc<Circuit>,
    pub limiter: Arc<Limiter>,
    pub history: Arc<History>,
    pub sessions: Sessions,
    pub replays: Arc<Replays>,
}

/// The console's state, cheap to clone into handlers.
pub type ConsoleState = Arc<Console>;

/// Largest form body accepted: a page of selected ids and a filter.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// Dead letters per page.
const PAGE_SIZE: u32 = 50;

/// The policy every console response carries: our own scripts and styles
/// only, so markup that slipped into a page could run nothing.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The console's routes, ready to merge into the main router.
pub fn router(state: ConsoleState) -> Router {
    let signed_in = Router::new()
        .route("/ui", get(overview))
        .route("/ui/api/overview", get(overview_json))
        .route("/ui/dead-letters", get(dead_letters))
        .route("/ui/dead-letters/{id}", get(dead_letter))
        .route("/ui/dead-letters/replay", post(replay_form))
        .route("/ui/dead-letters/delete", post(delete_form))
        .route("/ui/dead-letters/purge", post(purge_form))
        .route("/ui/replays/{id}", get(replay_page))
        .route("/ui/api/replays/{id}", get(replay_json))
        .route("/ui/logout", post(logout))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            require_session,
        ));
    Router::new()
        .route("/ui/login", get(login_page).post(login))
        .route("/ui/assets/{name}", get(asset))
        .merge(signed_in)
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// A signed-in request's session, put there by [`require_session`].
#[derive(Debug, Clone)]
pub struct Signed {
    pub id: String,
    pub csrf: String,
}

/// A POST's form fields, in order (a field may repeat: `id=1&id=2`).
#[derive(Debug, Clone, Default)]
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    fn parse(body: &[u8]) -> Fields {
        Fields(url::form_urlencoded::parse(body).into_owned().collect())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The filter fields as the CLI's filter words.
    fn filter_spec(&self) -> FilterSpec {
        let f = |name| self.get(name).filter(|v| !v.is_empty()).map(String::from);
        FilterSpec {
            reason: f("reason"),
            intent_type: f("type"),
            channel: f("channel"),
            since: f("since"),
            until: f("until"),
            status: f("status"),
        }
    }
}

async fn security_headers(req: Request, next: Next) -> Response {
    let is_asset = req.uri().path().starts_with("/ui/assets/");
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !is_asset {
        // Pages show dead letters' contents: keep them out of caches.
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// Sends a browser without a session to sign in; refuses a POST without
/// the session's CSRF token (403), reading it from the form or from an
/// `X-CSRF-Token` header (the page's own script).
async fn require_session(State(state): State<ConsoleState>, req: Request, next: Next) -> Response {
    let found = req
        .headers()
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|c| session::cookie(c, session::COOKIE))
        .and_then(|id| state.sessions.get(id).map(|s| (id.to_string(), s)));
    let Some((id, s)) = found else {
        if req.method() == Method::GET && !req.uri().path().starts_with("/ui/api/") {
            return Redirect::to("/ui/login").into_response();
        }
        return (StatusCode::UNAUTHORIZED, "sign in first\n").into_response();
    };
    let signed = Signed {
        id,
        csrf: s.csrf.clone(),
    };
    let (mut parts, body) = req.into_parts();
    if parts.method == Method::POST {
        let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
            return (StatusCode::PAYLOAD_TOO_LARGE, "form too large\n").into_response();
        };
        let fields = Fields::parse(&bytes);
        let given = parts
            .headers
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok())
            .or_else(|| fields.get("csrf"))
            .unwrap_or("");
        if !session::same(given, &s.csrf) {
            return (
                StatusCode::FORBIDDEN,
                "missing or wrong CSRF token: reload the page and try again\n",
            )
                .into_response();
        }
        parts.extensions.insert(fields);
        parts.extensions.insert(signed);
        return next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await;
    }
    parts.extensions.insert(signed);
    next.run(Request::from_parts(parts, body)).await
}

/// Behind a TLS-terminating proxy the cookie must be `Secure`.
fn behind_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

fn html(status: StatusCode, markup: maud::Markup) -> Response {
    (status, axum::response::Html(markup.into_string())).into_response()
}

/// The sign-in form; its CSRF token rides in a short-lived cookie, since
/// there is no session yet to hold it.
async fn login_page(headers: HeaderMap) -> Response {
    login_form(&headers, StatusCode::OK, None)
}

fn login_form(headers: &HeaderMap, status: StatusCode, error: Option<&str>) -> Response {
    // The browser's token, when it has one: a second sign-in tab (or a
    // reload) must not invalidate the form of the first.
    let csrf = login_cookie(headers)
        .filter(|c| c.len() == 64 && c.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(String::from)
        .unwrap_or_else(session::random_token);
    let mut resp = html(status, pages::login(&csrf, error));
    let cookie = session::set_cookie(
        session::LOGIN_COOKIE,
        &csrf,
        behind_tls(headers),
        Some(std::time::Duration::from_secs(3600)),
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

fn login_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|c| session::cookie(c, session::LOGIN_COOKIE))
}

async fn login(State(state): State<ConsoleState>, headers: HeaderMap, body: Bytes) -> Response {
    let fields = Fields::parse(&body);
    let cookie_csrf = login_cookie(&headers).unwrap_or("");
    if !session::same(fields.get("csrf").unwrap_or(""), cookie_csrf) {
        return (
            StatusCode::FORBIDDEN,
            "missing or wrong CSRF token: reload the sign-in page\n",
        )
            .into_response();
    }
    if !crate::admin::token_matches(&state.token, fields.get("token").unwrap_or("")) {
        tracing::warn!("ops console: sign-in with a wrong token");
        return login_form(&headers, StatusCode::UNAUTHORIZED, Some("Wrong token."));
    }
    let id = state.sessions.start();
    let secure = behind_tls(&headers);
    let mut resp = Redirect::to("/ui").into_response();
    for c in [
        session::set_cookie(session::COOKIE, &id, secure, None),
        session::set_cookie(
            session::LOGIN_COOKIE,
            "",
            secure,
            Some(std::time::Duration::ZERO),
        ),
    ] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    resp
}

async fn logout(
    State(state): State<ConsoleState>,
    Extension(signed): Extension<Signed>,
    headers: HeaderMap,
) -> Response {
    state.sessions.end(&signed.id);
    let mut resp = Redirect::to("/ui/login").into_response();
    let c = session::set_cookie(
        session::COOKIE,
        "",
        behind_tls(&headers),
        Some(std::time::Duration::ZERO),
    );
    if let Ok(v) = HeaderValue::from_str(&c) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

/// The vendored and our own static files, embedded in the binary.
async fn asset(Path(name): Path<String>) -> Response {
    let (body, kind): (&'static [u8], &str) = match name.as_str() {
        "console.js" => (
            include_bytes!("assets/console.js"),
            "text/javascript; charset=utf-8",
        ),
        "console.css" => (
            include_bytes!("assets/console.css"),
            "text/css; charset=utf-8",
        ),
        "uPlot.iife.min.js" => (
            include_bytes!("assets/uPlot.iife.min.js"),
            "text/javascript; charset=utf-8",
        ),
        "uPlot.min.css" => (
            include_bytes!("assets/uPlot.min.css"),
            "text/css; charset=utf-8",
        ),
        "uPlot.LICENSE" => (
            include_bytes!("assets/uPlot.LICENSE"),
            "text/plain; charset=utf-8",
        ),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            // Versioned by the binary: a new worker may change them, so a
            // day rather than forever.
            (header::CACHE_CONTROL, "public, max-age=86400"),
        ],
        body,
    )
        .into_response()
}

/// An error shown as a page.
pub struct PageError(StatusCode, String);

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        let status = if e.is_unavailable() {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        PageError(status, e.to_string())
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        html(self.0, pages::error(self.0, &self.1))
    }
}

fn bad_request(msg: impl Into<String>) -> PageError {
    PageError(StatusCode::BAD_REQUEST, msg.into())
}

fn store(state: &Console) -> Result<&Store, PageError> {
    state.store.get().ok_or_else(|| {
        PageError(
            StatusCode::SERVICE_UNAVAILABLE,
            "the dead-letter store is not connected yet; see /readyz".into(),
        )
    })
}

/// What the overview shows now, and its history.
fn overview_data(state: &Console) -> serde_json::Value {
    let samples = state.history.samples();
    let readiness = state.health.readiness();
    let circuit = state.circuit.status();
    let last = samples.last().cloned().unwrap_or_default();
    json!({
        "now_ms": crate::clock::now_ms(),
        "rates": {
            "consumed_per_s": last.consumed_per_s,
            "delivered_per_s": last.delivered_per_s,
            "requests_per_s": last.requests_per_s,
            "retries_per_s": last.retries_per_s,
            "dead_letters_per_s": last.dead_letters_per_s,
            "latency_p50_ms": last.latency_p50_ms,
            "latency_p99_ms": last.latency_p99_ms,
        },
        "in_flight": state.limiter.in_flight(),
        "concurrency_limit": state.limiter.limit(),
        "backlog": crate::metrics::live().backlog.load(std::sync::atomic::Ordering::Relaxed),
        "backlog_trend": history::backlog_trend(&samples),
        "circuit": match &circuit {
            None => json!({"state": "closed"}),
            Some(open) => json!({
                "state": "open",
                "cause": open.cause.label(),
                "detail": open.cause.describe(),
                "since_ms": crate::clock::unix_ms(open.since),
                "next_probe_ms": open.next_probe.map(crate::clock::unix_ms),
            }),
        },
        "readiness": readiness,
        "sample_interval_s": history::SAMPLE_INTERVAL.as_secs(),
        "samples": samples,
    })
}

async fn overview(
    State(state): State<ConsoleState>,
    Extension(signed): Extension<Signed>,
) -> Response {
    html(
        StatusCode::OK,
        pages::overview(&signed, &overview_data(&state)),
    )
}

async fn overview_json(State(state): State<ConsoleState>) -> Json<serde_json::Value> {
    Json(overview_data(&state))
}

/// The listing's query: the CLI's filters and the page cursor.
#[derive(Debug, Default, serde::Deserialize)]
pub struct ListQuery {
    pub reason: Option<String>,
    #[serde(rename = "type")]
    pub intent_type: Option<String>,
    pub channel: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub status: Option<String>,
    pub cursor: Option<String>,
}

impl ListQuery {
    fn spec(&self) -> FilterSpec {
        let f = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        FilterSpec {
            reason: f(&self.reason),
            intent_type: f(&self.intent_type),
            channel: f(&self.channel),
            since: f(&self.since),
            until: f(&self.until),
            status: f(&self.status),
        }
    }
}

fn parse_filter(spec: &FilterSpec) -> Result<Filter, PageError> {
    spec.parse(SystemTime::now())
        .map_err(|e| bad_request(e.to_string()))
}

async fn dead_letters(
    State(state): State<ConsoleState>,
    Extension(signed): Extension<Signed>,
    Query(q): Query<ListQuery>,
) -> Result<Response, PageError> {
    let spec = q.spec();
    let filter = parse_filter(&spec)?;
    let cursor = q
        .cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(Cursor::decode)
        .transpose()
        .map_err(|e| bad_request(e.to_string()))?;
    let store = store(&state)?;
    let page = store.list(&filter, cursor, PAGE_SIZE).await?;
    let matching = store.count_matching(&filter).await?;
    let stats = store.stats(&filter).await?;
    Ok(html(
        StatusCode::OK,
        pages::dead_letters(
            &signed,
            &spec,
            &page,
            matching,
            &stats,
            &state.replays.recent(),
        ),
    ))
}

async fn dead_letter(
    State(state): State<ConsoleState>,
    Extension(signed): Extension<Signed>,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let id: i64 = id
        .parse()
        .map_err(|_| bad_request(format!("bad dead-letter id {id:?}")))?;
    match store(&state)?.get(id).await? {
        Some(dl) => Ok(html(StatusCode::OK, pages::dead_letter(&signed, &dl))),
        None => Err(PageError(
            StatusCode::NOT_FOUND,
            format!("no dead letter with id {id}"),
        )),
    }
}

/// Which rows a replay or delete form means: the ticked ids, or every
/// match of the filter it carries (`scope=matching`).
fn chosen(fields: &Fields) -> Result<(Filter, String), PageError> {
    if fields.get("scope") == Some("matching") {
        let spec = fields.filter_spec();
        let filter = parse_filter(&spec)?;
        return Ok((filter, format!("every match of {}", pages::describe(&spec))));
    }
    let ids = fields
        .all("id")
        .map(|s| {
            s.parse::<i64>()
                .map_err(|_| bad_request(format!("bad dead-letter id {s:?}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if ids.is_empty() {
        return Err(bad_request("select at least one dead letter"));
    }
    let what = match ids.as_slice() {
        [one] => format!("dead letter {one}"),
        many => format!("{} selected dead letters", many.len()),
    };
    Ok((
        Filter {
            ids,
            ..Filter::default()
        },
        what,
    ))
}

/// Replay: the first post shows the count and asks; the confirmed one
/// starts the job and shows its progress.
async fn replay_form(
    State(state): State<ConsoleState>,
    Extension(signed): Extension<Signed>,
    Extension(fields): Extension<Fields>,
) -> Result<Response, PageError> {
    let (filter, what) = chosen(&fields)?;
    let store = store(&state)?;
    if fields.get("confirmed") != Some("yes") {
        let plan = replay::plan(store, &filter, false).await?;
        return Ok(html(
            StatusCode::OK,
            pages::confirm_replay(&signed, &fields, &what, &plan),
        ));
    }
    let job = state
        .replays
        .start(store.clone(), state.amqp.clone(), filter, what);
    Ok(Redirect::to(&format!("/ui/replays/{job}")).into_response())
}

async fn delete_form(
    State(state): State<ConsoleState>,
    Extension(signed): Extension<Signed>,
    Extension(fields): Extension<Fields>,
) -> Result<Response, PageError> {
    let (filter, what) = chosen(&fields)?;
    let store = store(&state)?;
    if fields.get("confirmed") != Some("yes") {
        let n = store.count_matching(&filter).await?;
        return Ok(html(
            StatusCode::OK,
            pages::confirm(
                &signed,
                &fields,
                "/ui/dead-letters/delete",
                &format!("Delete {what}?"),
                n,
                "Delete",
            ),
        ));
    }
    let n = store.purge(&filter, |_| {}).await?;
    tracing::info!(deleted = n, what = %what, "ops console: dead letters deleted");
    Ok(html(
        StatusCode::OK,
        pages::done(&signed, &format!("Deleted {n} dead letters.")),
    ))
}

/// Purge older than N days, as `dlq purge --older-than Nd`.
async fn purge_form(
    State(state): State<ConsoleState>,
    Extension(signed): Extension<Signed>,
    Extension(fields): Extension<Fields>,
) -> Result<Response, PageError> {
    let days = fields
        .get("older_than_days")
        .and_then(|d| d.trim().parse::<u32>().ok())
        .filter(|d| *d >= 1)
        .ok_or_else(|| bad_request("older than: give a whole number of days, at least 1"))?;
    let filter = parse_filter(&FilterSpec {
        until: Some(format!("{days}d")),
        ..FilterSpec::default()
    })?;
    let store = store(&state)?;
    let question = format!("Purge every dead letter older than {days} days?");
    if fields.get("confirmed") != Some("yes") {
        let n = store.count_matching(&filter).await?;
        return Ok(html(
            StatusCode::OK,
            pages::confirm(
                &signed,
                &fields,
                "/ui/dead-letters/purge",
                &question,
                n,
                "Purge",
            ),
        ));
    }
    let n = store.purge(&filter, |_| {}).await?;
    tracing::info!(deleted = n, days, "ops console: dead letters purged");
    Ok(html(
        StatusCode::OK,
        pages::done(
            &signed,
            &format!("Purged {n} dead letters older than {days} days."),
        ),
    ))
}

async fn replay_page(
    State(state): State<ConsoleState>,
    Extension(signed): Extension<Signed>,
    Path(id): Path<u64>,
) -> Result<Response, PageError> {
    let job = state
        .replays
        .get(id)
        .ok_or_else(|| PageError(StatusCode::NOT_FOUND, format!("no replay {id}")))?;
    Ok(html(StatusCode::OK, pages::replay_job(&signed, &job)))
}

async fn replay_json(
    State(state): State<ConsoleState>,
    Path(id): Path<u64>,
) -> Result<Json<replays::Job>, StatusCode> {
    state.replays.get(id).map(Json).ok_or(StatusCode::NOT_FOUND)
}
