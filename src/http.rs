//! The worker's HTTP listeners: `/metrics`, `/healthz`, `/readyz`,
//! `POST /webhooks/pusher`, and the admin API ([`crate::admin`]) and the ops
//! console ([`crate::ui`]) when `RELAY_ADMIN_TOKEN` is set. With
//! `HTTP_OPS_ADDR`, the first three are served on a listener of their own
//! ([`ops_router`]) and the public one serves the rest ([`public_router`]):
//! each listener has its own connection limit, so a flood of the public
//! port, from as many peers as it likes, leaves the probes answering.
//!
//! Served by an accept loop of its own rather than `axum::serve`, which has
//! no header-read timeout: a client that sent half a request held its
//! connection forever, and enough of them (slowloris) starved `/healthz` and
//! `/readyz`. See [`Limits`] for the bounds and why.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tower_http::add_extension::AddExtension;
use tower_http::timeout::TimeoutLayer;

use crate::relay::health::Health;
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

/// Every route, for one listener; separate from binding so tests can call
/// them directly.
pub fn router(state: AppState) -> Router {
    ops_router(state.clone()).merge(public_router(state))
}

/// The probes and the metrics.
pub fn ops_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// The webhook, the admin API and the console.
pub fn public_router(state: AppState) -> Router {
    let router = Router::new()
        .route("/webhooks/pusher", post(webhooks::receive))
        // Over the limit, axum answers 413 before the body is read.
        .layer(DefaultBodyLimit::max(MAX_WEBHOOK_BYTES))
        .with_state(state.webhooks.clone());
    let admin = state.admin.clone();
    let console = state.console.clone();
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
    // Unauthenticated: states only; the reasons are in the logs.
    (status, Json(readiness.public()))
}

/// Binds `addr`, the value of the setting `name`, failing with both named.
pub async fn bind(name: &str, addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| std::io::Error::new(e.kind(), format!("cannot listen on {name} {addr}: {e}")))
}

/// How long a client has to send a request's line and headers, counted
/// from when the connection starts waiting for one (so it also closes a
/// keep-alive connection idle that long). Probes, Prometheus and Pusher send
/// their few hundred bytes of head in one packet; 10 s leaves a slow link
/// ample room and is still short next to a probe's period (10 s by default
/// in Kubernetes), so slots held by half-sent requests free up quickly.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a request may take, body read and handler included, before it
/// is answered 503 (the server could not answer in time, and 5xx makes
/// Pusher retry a webhook). Every handler answers in well under a second
/// (replays run as tasks of their own); 30 s only cuts one that is stuck,
/// and stays above Prometheus's default 10 s scrape timeout.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Connections served at once; beyond it, new ones wait in the listen
/// backlog until one ends. Legitimate traffic is a handful of probes,
/// scrapes, webhook posts and console users; 512 is far above that and
/// keeps the listener's file descriptors well inside a 1024 soft
/// `RLIMIT_NOFILE` (common outside containers), leaving room for the broker,
/// store and Pusher connections, which fail if accept uses every descriptor.
pub const MAX_CONNECTIONS: usize = 512;

/// Connections one peer (an IP address) may hold at once; one more from it
/// is closed as soon as it is accepted. A single peer then cannot take every
/// slot of [`MAX_CONNECTIONS`] and starve the probes, whatever it sends.
/// Behind a reverse proxy every client is the proxy: 64 is still far above
/// what its few callers (webhooks, the console) need.
pub const MAX_CONNECTIONS_PER_PEER: usize = 64;

/// The most hyper buffers of a connection's unread input (its smallest
/// allowed is 8 KiB); request heads are a few hundred bytes, and bodies are
/// read by the handlers under their own limits.
const READ_BUFFER_BYTES: usize = 16 * 1024;

/// How long a write to a client may make no progress before the
/// connection is dropped: hyper has no write timeout, so a client that
/// pipelines requests and never reads the answers would hold its
/// connection (and the answers' memory) for good. Probes and Prometheus
/// read what they asked for at once.
pub const WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long shutdown waits for connections in flight to finish before
/// dropping them. Longer than a request normally takes, shorter than the
/// 45 s the deployment gives the whole drain.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Pause after an accept error that is not the client's (e.g. no file
/// descriptor left), so the loop does not spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// How often, at most, a full connection limit is logged.
const SATURATED_LOG_EVERY: Duration = Duration::from_secs(10);

/// The listener's bounds; [`Limits::default`] is the constants above, tests
/// use shorter ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// See [`HEADER_READ_TIMEOUT`].
    pub header_read_timeout: Duration,
    /// See [`REQUEST_TIMEOUT`].
    pub request_timeout: Duration,
    /// See [`MAX_CONNECTIONS`].
    pub max_connections: usize,
    /// See [`MAX_CONNECTIONS_PER_PEER`].
    pub max_connections_per_peer: usize,
    /// See [`WRITE_STALL_TIMEOUT`].
    pub write_stall_timeout: Duration,
    /// See [`SHUTDOWN_GRACE`].
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: HEADER_READ_TIMEOUT,
            request_timeout: REQUEST_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
            max_connections_per_peer: MAX_CONNECTIONS_PER_PEER,
            write_stall_timeout: WRITE_STALL_TIMEOUT,
            shutdown_grace: SHUTDOWN_GRACE,
        }
    }
}

/// Serves `app` on `listener` until `shutdown` fires, with the default
/// [`Limits`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    serve_with(listener, app, shutdown, Limits::default()).await
}

/// Serves `app` on `listener` within `limits` until `shutdown` fires,
/// then stops accepting and gives the connections in flight
/// `limits.shutdown_grace` to finish.
pub async fn serve_with(
    listener: tokio::net::TcpListener,
    app: Router,
    mut shutdown: Shutdown,
    limits: Limits,
) -> std::io::Result<()> {
    let app = app.layer(TimeoutLayer::with_status_code(
        StatusCode::SERVICE_UNAVAILABLE,
        limits.request_timeout,
    ));
    // HTTP/1 only: hyper has no header timeout for HTTP/2, and the auto
    // builder's sniffing of the HTTP/2 preface has none either (a client
    // sending "PRI" and no more would hold the connection). Every client of
    // this listener (probes, Prometheus, Pusher, browsers without TLS) speaks
    // HTTP/1.1.
    let mut builder = auto::Builder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(READ_BUFFER_BYTES);
    let peers = PeerCounts::default();
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut saturated_logged: Option<Instant> = None;
    loop {
        while connections.try_join_next().is_some() {}
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if saturated_logged.map_or(true, |at| at.elapsed() >= SATURATED_LOG_EVERY) {
                    saturated_logged = Some(Instant::now());
                    tracing::warn!(
                        limit = limits.max_connections,
                        "HTTP connection limit reached; new connections wait until one ends"
                    );
                }
                tokio::select! {
                    _ = shutdown.recv() => break,
                    permit = permits.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break, // never closed
                    },
                }
            }
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.recv() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) if is_connection_error(&e) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "HTTP listener cannot accept; retrying in {ACCEPT_ERROR_PAUSE:?}");
                    tokio::select! {
                        _ = shutdown.recv() => break,
                        _ = tokio::time::sleep(ACCEPT_ERROR_PAUSE) => continue,
                    }
                }
            },
        };
        let Some(held) = peers.admit(peer.ip(), limits.max_connections_per_peer) else {
            // Closed at once, so it neither waits in the backlog nor holds
            // a slot; the next of that peer's connections may fare better.
            drop(stream);
            continue;
        };
        let connection = builder
            .serve_connection(
                TokioIo::new(StallDeadline::new(stream, limits.write_stall_timeout)),
                // The peer, for what is counted per peer (the admin token
                // throttle).
                TowerToHyperService::new(AddExtension::new(app.clone(), ConnectInfo(peer))),
            )
            .into_owned();
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            // A header timeout or a client gone mid-request: nothing to do.
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "HTTP connection ended with an error");
            }
            drop(permit);
            drop(held);
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            open = connections.len(),
            "HTTP connections still open {:?} after shutdown; closing them",
            limits.shutdown_grace
        );
    }
    connections.shutdown().await;
    Ok(())
}

/// Connections held per peer, for [`MAX_CONNECTIONS_PER_PEER`].
#[derive(Clone, Default)]
struct PeerCounts(Arc<std::sync::Mutex<std::collections::HashMap<IpAddr, usize>>>);

/// One connection of a peer, counted until dropped.
struct PeerSlot {
    counts: PeerCounts,
    peer: IpAddr,
}

impl PeerCounts {
    /// A slot for one more connection of `peer`, unless it holds `max`.
    fn admit(&self, peer: IpAddr, max: usize) -> Option<PeerSlot> {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let held = counts.entry(peer).or_insert(0);
        if *held >= max {
            return None;
        }
        *held += 1;
        Some(PeerSlot {
            counts: self.clone(),
            peer,
        })
    }
}

impl Drop for PeerSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(held) = counts.get_mut(&self.peer) {
            *held -= 1;
            if *held == 0 {
                counts.remove(&self.peer);
            }
        }
    }
}

/// Accept errors that concern one client's connection, not the listener.
fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

/// A connection whose writes fail once one has made no progress for its
/// timeout; see [`WRITE_STALL_TIMEOUT`].
struct StallDeadline<S> {
    inner: S,
    timeout: Duration,
    /// Set while a write is pending: when it gives up.
    stalled: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl<S> StallDeadline<S> {
    fn new(inner: S, timeout: Duration) -> StallDeadline<S> {
        StallDeadline {
            inner,
            timeout,
            stalled: None,
        }
    }

    /// What a write or flush of the inner stream polled: a pending one
    /// starts (or goes on with) the deadline, a finished one clears it.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        if polled.is_pending() {
            return self.pending(cx);
        }
        self.stalled = None;
        polled
    }

    /// Turns a pending write into an error once it has waited too long.
    fn pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<T>> {
        let timeout = self.timeout;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the client read nothing for {timeout:?}"),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for StallDeadline<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for StallDeadline<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch(cx, polled)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        let polled = std::pin::Pin::new(&mut self.inner).poll_flush(cx);
        self.watch(cx, polled)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
