//! Shutdown as a value passed to every task (as in mini-redis): each task
//! has a visible way out, and nothing stops by accident.

use tokio::sync::watch;

/// Fires once for everyone holding a clone.
#[derive(Debug, Clone)]
pub struct Shutdown {
    rx: watch::Receiver<bool>,
}

/// The side that starts the shutdown.
#[derive(Debug)]
pub struct ShutdownTrigger {
    tx: watch::Sender<bool>,
}

/// A trigger and the first listener.
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (tx, rx) = watch::channel(false);
    (ShutdownTrigger { tx }, Shutdown { rx })
}

impl ShutdownTrigger {
    /// Tells every listener to stop.
    pub fn fire(&self) {
        self.tx.send_replace(true);
    }

    /// Another listener.
    pub fn subscribe(&self) -> Shutdown {
        Shutdown {
            rx: self.tx.subscribe(),
        }
    }
}

impl Shutdown {
    /// Whether shutdown has started.
    pub fn is_shutdown(&self) -> bool {
        *self.rx.borrow()
    }

    /// Waits until shutdown starts (returns at once if it has).
    pub async fn recv(&mut self) {
        // An Err means the trigger was dropped: treat it as shutdown too, so
        // no task outlives the worker.
        let _ = self.rx.wait_for(|stop| *stop).await;
    }
}
