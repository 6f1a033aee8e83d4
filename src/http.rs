//! The worker's one HTTP listener: `/metrics`, `/healthz`, `/readyz`,
//! `POST /webhooks/pusher`, and the admin API ([`crate::admin`]) and the ops
//! console ([`crate::ui`]) when `RELAY_ADMIN_TOKEN` is set.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::health::Health;
use crate::shutdown::Shutdown;
use crate::webhooks::{self, WebhookIngress, MAX_WEBHOOK_BYTES};

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub health: Arc<Health>,
    pub prometheus: PrometheusHandle,
    pub webhooks: Arc<WebhookIngress>,
    /// The admin API's state; `None` leaves its routes out entirely.
    pub admin: Option<crate::admin::AdminState>,
    /// The ops console's state; `None` (no admin token) leaves `/ui` out.
    pub console: Option<crate::ui::ConsoleState>,
}

/// The routes, separate from binding so tests can call them directly.
pub fn router(state: AppState) -> Router {
    let webhooks = Router::new()
        .route("/webhooks/pusher", post(webhooks::receive))
        // Over the limit, axum answers 413 before the body is read.
        .layer(DefaultBodyLimit::max(MAX_WEBHOOK_BYTES))
        .with_state(state.webhooks.clone());
    let admin = state.admin.clone();
    let console = state.console.clone();
    let router = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(state)
        .merge(webhooks);
    let router = match admin {
        Some(admin) => router.merge(crate::admin::router(admin)),
        None => router,
    };
    match console {
        Some(console) => router.merge(crate::ui::router(console)),
        None => router,
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.prometheus.render(),
    )
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let readiness = state.health.readiness();
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(readiness))
}

/// Binds `addr` (failing with the address named) and serves until shutdown.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        std::io::Error::new(e.kind(), format!("cannot listen on HTTP_ADDR {addr}: {e}"))
    })
}

/// Serves the router on `listener` until `shutdown` fires.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    mut shutdown: Shutdown,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move { shutdown.recv().await })
        .await
}
