//! A TCP proxy that can be cut, to make a real service unavailable to the
//! worker without touching it for other tests, or that can hold what the
//! worker says, so the service never hears it.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

pub struct Proxy {
    pub port: u16,
    open: Arc<std::sync::atomic::AtomicBool>,
    /// While true, bytes from clients are read but not passed on.
    hold: tokio::sync::watch::Sender<bool>,
    links: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: &str) -> Proxy {
        let target = target.to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let open = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let hold = tokio::sync::watch::Sender::new(false);
        let links: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>> = Arc::default();
        let (open2, hold2, links2) = (open.clone(), hold.clone(), links.clone());
        let accept = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if !open2.load(Ordering::SeqCst) {
                    continue;
                }
                let held = hold2.subscribe();
                let target = target.clone();
                let link = tokio::spawn(async move {
                    if let Ok(outbound) = tokio::net::TcpStream::connect(&target).await {
                        relay(inbound, outbound, held).await;
                    }
                });
                links2.lock().expect("links").push(link);
            }
        });
        Proxy {
            port,
            open,
            hold,
            links,
            accept,
        }
    }

    /// Drops every connection and refuses new ones.
    /// Connections accepted and passed on so far.
    pub fn connections(&self) -> usize {
        self.links.lock().expect("links").len()
    }

    pub fn cut(&self) {
        self.open.store(false, Ordering::SeqCst);
        for link in self.links.lock().expect("links").drain(..) {
            link.abort();
        }
    }

    pub fn restore(&self) {
        self.open.store(true, Ordering::SeqCst);
    }

    /// From now on nothing clients send reaches the target, while the
    /// target still reaches them: a worker behind it gets deliveries, but
    /// the broker never sees its acks. What is held is dropped with the
    /// connection (`cut`, or dropping the proxy).
    pub fn hold_from_clients(&self) {
        self.hold.send_replace(true);
    }
}

/// Copies both ways until both sides are done, like
/// `tokio::io::copy_bidirectional`, except that client bytes wait while
/// `held` is true. The wait is after the read, so bytes a read already in
/// progress returns once held are held too.
async fn relay(
    inbound: tokio::net::TcpStream,
    outbound: tokio::net::TcpStream,
    mut held: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut from_client, mut to_client) = inbound.into_split();
    let (mut from_target, mut to_target) = outbound.into_split();
    let upstream = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match from_client.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if held.wait_for(|h| !*h).await.is_err() {
                break;
            }
            if to_target.write_all(&buf[..n]).await.is_err() {
                break;
            }
        }
        let _ = to_target.shutdown().await;
    };
    let downstream = async {
        let _ = tokio::io::copy(&mut from_target, &mut to_client).await;
        let _ = to_client.shutdown().await;
    };
    tokio::join!(upstream, downstream);
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}
