//! The ops console: a few server-rendered pages under `/ui`, served by the
//! worker on its one listener when `RELAY_ADMIN_TOKEN` is set (absent
//! otherwise, as the admin API is).
//!
//! - [`cookies`]: the sessions and their CSRF tokens; [`signin`]: the
//!   admin token exchanged for a session cookie, and signing out;
//! - [`history`]: the 15-minute history the overview charts;
//! - [`dead_letters`]: listing, inspecting, replaying, deleting, purging;
//! - [`replays`]: replays started from the page, run as worker tasks;
//! - [`pages`]: the HTML, escaped by the template engine (maud).
//!
//! Guards, in the order a request meets them: every response carries a
//! Content-Security-Policy that allows only our own scripts and styles (no
//! inline ones); every route but sign-in and the assets needs a session;
//! every POST must carry the session's CSRF token (403 otherwise).

pub mod cookies;
pub mod dead_letters;
pub mod history;
pub mod pages;
pub mod replays;
pub mod signin;

use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde_json::json;

use crate::config::{AmqpConfig, Secret};
use crate::deadletter::{FilterSpec, Store, StoreError};
use crate::relay::RelayStatus;
use cookies::Sessions;
use history::History;
use replays::Replays;

/// What the console's handlers share.
pub struct Console {
    /// Filled once the worker has connected its store (as for the admin API).
    pub store: Arc<OnceLock<Store>>,
    /// `RELAY_ADMIN_TOKEN`: what sign-in compares with; never rendered.
    pub token: Secret,
    /// Where replays publish.
    pub amqp: AmqpConfig,
    /// The relay's state, read-only.
    pub status: RelayStatus,
    pub history: Arc<History>,
    pub sessions: Sessions,
    pub replays: Arc<Replays>,
}

/// The console's state, cheap to clone into handlers.
pub type ConsoleState = Arc<Console>;

/// Largest form body accepted: a page of selected ids and a filter.
const MAX_FORM_BYTES: usize = 64 * 1024;

/// The policy every console response carries: our own scripts and styles
/// only, so markup that slipped into a page could run nothing.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// The console's routes, ready to merge into the main router.
pub fn router(state: ConsoleState) -> Router {
    let signed_in = Router::new()
        .route("/ui", get(overview))
        .route("/ui/api/overview", get(overview_json))
        .route("/ui/dead-letters", get(dead_letters::dead_letters))
        .route("/ui/dead-letters/{id}", get(dead_letters::dead_letter))
        .route("/ui/dead-letters/replay", post(dead_letters::replay_form))
        .route("/ui/dead-letters/delete", post(dead_letters::delete_form))
        .route("/ui/dead-letters/purge", post(dead_letters::purge_form))
        .route("/ui/replays/{id}", get(dead_letters::replay_page))
        .route("/ui/api/replays/{id}", get(dead_letters::replay_json))
        .route("/ui/logout", post(signin::logout))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            require_session,
        ));
    Router::new()
        .route("/ui/login", get(signin::login_page).post(signin::login))
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
        FilterSpec::from_fields(|name| self.get(name))
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
/// the session's CSRF token in its form (403). Every POST of the console is
/// a form; the page's script only reads.
async fn require_session(State(state): State<ConsoleState>, req: Request, next: Next) -> Response {
    // The page's own polling reads /ui/api/: it must not keep a forgotten
    // tab signed in.
    let used = !req.uri().path().starts_with("/ui/api/");
    let name = cookies::cookie_name(cookies::COOKIE, signin::behind_tls(req.headers()));
    let found = req
        .headers()
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|c| cookies::cookie(c, &name))
        .and_then(|id| state.sessions.get(id, used).map(|s| (id.to_string(), s)));
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
        if !cookies::same(fields.get("csrf").unwrap_or(""), &s.csrf) {
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

fn html(status: StatusCode, markup: maud::Markup) -> Response {
    (status, axum::response::Html(markup.into_string())).into_response()
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
        } else if matches!(e, StoreError::Corrupt { .. }) {
            StatusCode::UNPROCESSABLE_ENTITY
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
    let readiness = state.status.readiness();
    let circuit = state.status.circuit();
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
        "in_flight": state.status.in_flight(),
        "concurrency_limit": state.status.concurrency_limit(),
        "parked": state.status.parked(),
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
