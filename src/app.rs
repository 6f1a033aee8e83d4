//! The composition root: the one place that knows every layer. It checks
//! each link's TLS certificate, builds the relay, the interfaces around it
//! (the HTTP listener with `/metrics`, `/readyz`, webhooks, the admin API
//! and the console, the console's history sampler, the hourly TLS expiry
//! probe), hands each the parts it needs, and at shutdown waits for every
//! task it started, as mini-redis does, so that nothing is still writing
//! when the process exits.
//!
//! Dependencies point one way: config, then the domain (intent, pusher,
//! deadletter, amqp), then the relay, then the interfaces; only this module
//! and `main.rs` see them all.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};

use tokio::task::{JoinHandle, JoinSet};

use crate::admin::AdminState;
use crate::config::Config;
use crate::deadletter::Store;
use crate::relay::health::Health;
use crate::relay::{Relay, RelayError, RelayStatus};
use crate::shutdown::{self, ShutdownTrigger};
use crate::ui::history::{self, History};
use crate::ui::Console;
use crate::webhooks::WebhookIngress;
use crate::{http, link_probes, metrics};

/// Why the worker could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// `HTTP_ADDR` cannot be bound.
    #[error(transparent)]
    Listen(#[from] std::io::Error),
    #[error(transparent)]
    Relay(#[from] RelayError),
    /// A link's certificate is one its client refuses, found at start.
    #[error(transparent)]
    Tls(#[from] link_probes::LinkError),
}

/// A running worker: the relay and the interfaces around it.
pub struct Worker {
    /// Where the listener of `HTTP_ADDR` is bound (so `HTTP_ADDR=127.0.0.1:0`
    /// works in tests): every route, or all but the ops routes.
    pub http_addr: SocketAddr,
    /// Where `/metrics`, `/healthz` and `/readyz` are served alone, with
    /// `HTTP_OPS_ADDR`.
    pub ops_addr: Option<SocketAddr>,
    /// Readiness of each part.
    pub health: Arc<Health>,
    status: RelayStatus,
    trigger: ShutdownTrigger,
    relay: JoinHandle<Result<(), RelayError>>,
    /// The interfaces' tasks (listener, sampler): they stop on the same
    /// trigger and are awaited after the relay.
    interfaces: JoinSet<()>,
}

impl Worker {
    /// Checks each link's TLS certificate (a refused one stops the worker
    /// here, before anything is consumed), binds the listener, then starts
    /// the relay, which connects the store (waiting while it is down) and
    /// consumes in the background.
    pub async fn start(cfg: Config) -> Result<Worker, AppError> {
        let prometheus = metrics::install();
        let tls_links = link_probes::targets(&cfg);
        link_probes::verify_at_start(&cfg, &tls_links).await?;
        let (trigger, shutdown) = shutdown::channel();
        let listener = http::bind("HTTP_ADDR", cfg.http.addr).await?;
        let http_addr = listener.local_addr()?;
        let ops_listener = match cfg.http.ops_addr {
            Some(addr) => Some(http::bind("HTTP_OPS_ADDR", addr).await?),
            None => None,
        };
        let ops_addr = ops_listener.as_ref().map(|l| l.local_addr()).transpose()?;
        let relay = Relay::new(&cfg)?;
        let health = relay.health();
        let status = relay.status();
        // The listener starts before the store is connected (so /readyz can
        // report a store that is down); the admin API and the console get
        // the store through this cell, which the relay fills once connected.
        let store_cell: Arc<OnceLock<Store>> = Arc::default();
        let mut interfaces = JoinSet::new();
        interfaces.spawn(link_probes::watch_expiry(tls_links, trigger.subscribe()));
        let admin = cfg.http.admin_token.clone().map(|token| AdminState {
            store: store_cell.clone(),
            token,
            amqp: cfg.amqp.clone(),
        });
        let console = cfg.http.admin_token.clone().map(|token| {
            let history = Arc::new(History::default());
            interfaces.spawn(history::run(
                history.clone(),
                status.clone(),
                trigger.subscribe(),
            ));
            Arc::new(Console {
                store: store_cell.clone(),
                token,
                amqp: cfg.amqp.clone(),
                status: status.clone(),
                history,
                sessions: Default::default(),
                replays: Default::default(),
            })
        });
        let state = http::AppState {
            health: health.clone(),
            prometheus,
            webhooks: WebhookIngress::new(
                cfg.pusher.key.clone(),
                cfg.pusher.secret.clone(),
                cfg.amqp.clone(),
            ),
            admin,
            console,
        };
        let public = match ops_listener {
            Some(ops) => {
                let serving =
                    http::serve(ops, http::ops_router(state.clone()), trigger.subscribe());
                interfaces.spawn(async move {
                    if let Err(e) = serving.await {
                        tracing::error!(error = %e, "the ops listener (HTTP_OPS_ADDR) stopped");
                    }
                });
                tracing::info!(addr = ?ops_addr, "listening for /metrics, /healthz, /readyz (HTTP_OPS_ADDR)");
                http::public_router(state)
            }
            None => http::router(state),
        };
        let serving = http::serve(listener, public, trigger.subscribe());
        interfaces.spawn(async move {
            if let Err(e) = serving.await {
                tracing::error!(error = %e, "the HTTP listener stopped");
            }
        });
        tracing::info!(%http_addr, pusher = %cfg.pusher.base_url(), "listening for HTTP (HTTP_ADDR)");

        let relay = tokio::spawn(relay.run(cfg, store_cell, shutdown));
        Ok(Worker {
            http_addr,
            ops_addr,
            health,
            status,
            trigger,
            relay,
            interfaces,
        })
    }

    /// Requests to Pusher allowed in flight now (the adaptive limit).
    pub fn concurrency_limit(&self) -> usize {
        self.status.concurrency_limit()
    }

    /// Starts a graceful shutdown (as SIGTERM does).
    pub fn shutdown(&self) {
        self.health.set_shutting_down();
        self.trigger.fire();
    }

    /// Waits until the relay and every interface task have stopped.
    pub async fn wait(mut self) -> Result<(), AppError> {
        let ended = (&mut self.relay).await;
        self.finish(ended).await
    }

    /// Stops the interfaces once the relay has ended, for whatever reason,
    /// and gives the relay's result.
    async fn finish(
        mut self,
        ended: Result<Result<(), RelayError>, tokio::task::JoinError>,
    ) -> Result<(), AppError> {
        self.trigger.fire();
        while self.interfaces.join_next().await.is_some() {}
        Ok(ended.map_err(|e| RelayError::Join(e.to_string()))??)
    }
}

/// `pusher-relay run`: the worker until SIGTERM or SIGINT.
pub async fn run(cfg: Config) -> Result<(), AppError> {
    let mut worker = Worker::start(cfg).await?;
    tokio::select! {
        _ = wait_for_signal() => {}
        // The relay stopped of itself: a topology the broker refuses.
        ended = &mut worker.relay => return worker.finish(ended).await,
    }
    tracing::info!("signal received, shutting down");
    worker.shutdown();
    worker.wait().await
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
