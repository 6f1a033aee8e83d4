//! Teardown that runs when a fixture is dropped, so that a test that fails
//! (panics) halfway still removes its queues, exchanges and schemas.
//!
//! `Drop` is synchronous, and it usually runs on a thread of the test's own
//! tokio runtime, where `Handle::block_on` panics and where the fixture's
//! connection may be the very thing that failed (a broker restart, a
//! channel closed by an error the test provoked). So each teardown opens a
//! fresh, short-lived connection on a thread of its own with a
//! current-thread runtime, and the dropping thread joins it. The RabbitMQ
//! management HTTP API would avoid the connection, but the test brokers do
//! not enable that plugin (see `scripts/cluster`). A teardown is bounded by
//! [`TIMEOUT`] and its errors are ignored: a service that is down leaves
//! the names behind, as a test that was killed does, and never hangs the
//! run.

use std::future::Future;
use std::time::Duration;

/// How long one teardown may take before it is abandoned.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `work` to completion (or [`TIMEOUT`]) on a runtime of its own, on
/// a thread of its own, and waits for it.
pub fn run<F, Fut>(work: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let thread = std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        let _ = rt.block_on(async { tokio::time::timeout(TIMEOUT, work()).await });
    });
    let _ = thread.join();
}
