//! A fake Pusher at a distance: every answer comes after a latency with
//! jitter (changeable mid-run), requests past a cap on those in flight are
//! answered 429 with Retry-After, and every request's signature is checked
//! (recomputed here, independently of the library's signer).
//!
//! Shared by the integration tests and `benches/relay.rs` (which includes
//! this file by path), so the figures and the assertions come from one
//! fake. Events are expected to carry `{"seq": n, "t": ms}` data: `seq`
//! counts up from 0 per channel, `t` is when the intent was published.
// Each including target uses part of it.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use rand::Rng;
use sha2::Sha256;

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// Why a request's signature is wrong, or `None` when Pusher would accept
/// it: key, version, the 600 s window, body_md5 and the HMAC over the
/// method, path and sorted parameters.
pub fn signature_problem(
    method: &str,
    path: &str,
    query: &[(String, String)],
    body: &[u8],
    key: &str,
    secret: &str,
) -> Option<String> {
    let get = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    if get("auth_key").as_deref() != Some(key) {
        return Some(format!("auth_key is {:?}", get("auth_key")));
    }
    if get("auth_version").as_deref() != Some("1.0") {
        return Some("auth_version is not 1.0".into());
    }
    let now = (now_ms() / 1000) as i64;
    match get("auth_timestamp").and_then(|t| t.parse::<i64>().ok()) {
        Some(ts) if (now - ts).abs() < 600 => {}
        other => {
            return Some(format!(
                "auth_timestamp {other:?} is not within 600 s of now"
            ))
        }
    }
    if !body.is_empty() {
        let md5 = hex::encode(Md5::digest(body));
        if get("body_md5").as_deref() != Some(md5.as_str()) {
            return Some(format!(
                "body_md5 {:?} is not the MD5 of the body sent ({md5})",
                get("body_md5")
            ));
        }
    }
    let mut signed: Vec<(String, String)> = query
        .iter()
        .filter(|(k, _)| k != "auth_signature")
        .map(|(k, v)| (k.to_lowercase(), v.clone()))
        .collect();
    signed.sort();
    let params: Vec<String> = signed.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let to_sign = format!("{method}\n{path}\n{}", params.join("&"));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(to_sign.as_bytes());
    let want = hex::encode(mac.finalize().into_bytes());
    if get("auth_signature").as_deref() != Some(want.as_str()) {
        return Some(format!("auth_signature does not match {to_sign:?}"));
    }
    None
}

/// One event the fake accepted.
#[derive(Debug, Clone)]
pub struct EventSeen {
    pub channel: String,
    pub seq: u64,
    /// The intent's `t`: when it was published (unix ms).
    pub published_ms: u64,
    /// Since the fake started.
    pub at: Duration,
    /// From the intent's `t` (its publication) to the answer that tells the
    /// worker it is delivered: the arrival plus the simulated distance.
    pub latency_ms: u64,
}

/// One request the fake answered (signature failures excluded).
#[derive(Debug, Clone, Copy)]
pub struct RequestSeen {
    pub at: Duration,
    pub status: u16,
    pub events: usize,
}

/// Everything the fake saw.
#[derive(Debug, Default)]
pub struct Seen {
    pub events: Vec<EventSeen>,
    pub requests: Vec<RequestSeen>,
    pub bad_signatures: usize,
    /// An event arriving before an earlier one of its channel that had not
    /// arrived yet (first arrivals only).
    pub violations: usize,
    /// Events that had arrived before (a redelivery resent).
    pub duplicates: usize,
    /// Most requests in flight at once, and most for one channel.
    pub max_in_flight: usize,
    pub max_channel_in_flight: usize,
    seen: HashMap<String, (u64, HashSet<u64>)>,
    channel_in_flight: HashMap<String, usize>,
}

impl Seen {
    /// Events accepted (first arrivals and duplicates).
    pub fn accepted(&self) -> usize {
        self.events.len()
    }

    /// Requests answered `status`.
    pub fn answered(&self, status: u16) -> usize {
        self.requests.iter().filter(|r| r.status == status).count()
    }
}

struct Inner {
    key: String,
    secret: String,
    started: Instant,
    latency_us: AtomicU64,
    jitter_us: AtomicU64,
    /// 0: no cap.
    cap: AtomicUsize,
    /// 0: answer normally; else this status to every request.
    status: AtomicUsize,
    retry_after_secs: u64,
    in_flight: AtomicUsize,
    seen: Mutex<Seen>,
}

/// A running fake; cheap to clone.
#[derive(Clone)]
pub struct Distant {
    inner: Arc<Inner>,
    pub port: u16,
}

impl Distant {
    /// Starts on a free loopback port, answering after `latency` +- `jitter`.
    pub async fn start(key: &str, secret: &str, latency: Duration, jitter: Duration) -> Distant {
        let inner = Arc::new(Inner {
            key: key.into(),
            secret: secret.into(),
            started: Instant::now(),
            latency_us: AtomicU64::new(latency.as_micros() as u64),
            jitter_us: AtomicU64::new(jitter.as_micros() as u64),
            cap: AtomicUsize::new(0),
            status: AtomicUsize::new(0),
            retry_after_secs: 1,
            in_flight: AtomicUsize::new(0),
            seen: Mutex::default(),
        });
        let app = Router::new()
            .route("/apps/{app}/batch_events", post(events))
            .route("/apps/{app}/events", post(events))
            .route("/apps/{app}/channels", get(channels))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Distant { inner, port }
    }

    pub fn uri(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Answers after `latency` +- `jitter` from now on.
    pub fn set_latency(&self, latency: Duration, jitter: Duration) {
        self.inner
            .latency_us
            .store(latency.as_micros() as u64, Ordering::SeqCst);
        self.inner
            .jitter_us
            .store(jitter.as_micros() as u64, Ordering::SeqCst);
    }

    /// Admits at most `cap` requests at once, answering 429 with
    /// `Retry-After: 1` beyond; `None` admits all.
    pub fn set_cap(&self, cap: Option<usize>) {
        self.inner.cap.store(cap.unwrap_or(0), Ordering::SeqCst);
    }

    /// Answers `status` (e.g. 401) to every request, probes included;
    /// `None` answers normally again.
    pub fn set_status(&self, status: Option<u16>) {
        self.inner
            .status
            .store(status.map_or(0, usize::from), Ordering::SeqCst);
    }

    /// Since the fake started.
    pub fn elapsed(&self) -> Duration {
        self.inner.started.elapsed()
    }

    pub fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.inner.seen.lock().expect("seen")
    }

    /// Waits until `n` events were accepted; panics after `timeout`.
    pub async fn wait_for(&self, n: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.seen().accepted();
            if got >= n {
                return;
            }
            assert!(Instant::now() < deadline, "timed out: {got} of {n} events");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn query_pairs(q: Option<&str>) -> Vec<(String, String)> {
    url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

async fn channels(
    State(inner): State<Arc<Inner>>,
    Path(app): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    if let Some(refused) = forced_status(&inner) {
        return refused;
    }
    let path = format!("/apps/{app}/channels");
    match signature_problem(
        "GET",
        &path,
        &query_pairs(q.as_deref()),
        b"",
        &inner.key,
        &inner.secret,
    ) {
        None => (StatusCode::OK, "{\"channels\":{}}").into_response(),
        Some(problem) => (StatusCode::UNAUTHORIZED, problem).into_response(),
    }
}

fn forced_status(inner: &Inner) -> Option<Response> {
    let status = inner.status.load(Ordering::SeqCst) as u16;
    let status = StatusCode::from_u16(status).ok().filter(|_| status != 0)?;
    Some((status, "refused by the test").into_response())
}

/// Decrements the in-flight counts however the handler ends.
struct InFlight {
    inner: Arc<Inner>,
    channels: Vec<String>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.inner.in_flight.fetch_sub(1, Ordering::SeqCst);
        let mut seen = self.inner.seen.lock().expect("seen");
        for c in &self.channels {
            if let Some(n) = seen.channel_in_flight.get_mut(c) {
                *n -= 1;
            }
        }
    }
}

async fn events(
    State(inner): State<Arc<Inner>>,
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
    RawQuery(q): RawQuery,
    body: Bytes,
) -> Response {
    let at = inner.started.elapsed();
    let arrived_ms = now_ms();
    let path = uri.path().to_string();
    if let Some(problem) = signature_problem(
        "POST",
        &path,
        &query_pairs(q.as_deref()),
        &body,
        &inner.key,
        &inner.secret,
    ) {
        inner.seen.lock().expect("seen").bad_signatures += 1;
        return (StatusCode::UNAUTHORIZED, problem).into_response();
    }
    if let Some(refused) = forced_status(&inner) {
        return refused;
    }
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return (StatusCode::BAD_REQUEST, "not JSON").into_response();
    };
    // (channel, data) of each event, for batch_events and events alike.
    let mut items: Vec<(String, String)> = Vec::new();
    if let Some(batch) = v["batch"].as_array() {
        for item in batch {
            items.push((
                item["channel"].as_str().unwrap_or_default().into(),
                item["data"].as_str().unwrap_or_default().into(),
            ));
        }
    } else {
        for c in v["channels"].as_array().into_iter().flatten() {
            items.push((
                c.as_str().unwrap_or_default().into(),
                v["data"].as_str().unwrap_or_default().into(),
            ));
        }
    }

    let now_in_flight = inner.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let mut channels: Vec<String> = items.iter().map(|(c, _)| c.clone()).collect();
    channels.dedup();
    let mut guard = InFlight {
        inner: inner.clone(),
        channels: Vec::new(),
    };
    let cap = inner.cap.load(Ordering::SeqCst);
    if cap > 0 && now_in_flight > cap {
        inner.seen.lock().expect("seen").requests.push(RequestSeen {
            at,
            status: 429,
            events: items.len(),
        });
        drop(guard);
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from(inner.retry_after_secs));
        return (
            StatusCode::TOO_MANY_REQUESTS,
            headers,
            "{\"error\":\"too many requests in flight\"}",
        )
            .into_response();
    }
    let base = inner.latency_us.load(Ordering::SeqCst) as i64;
    let jitter = inner.jitter_us.load(Ordering::SeqCst) as i64;
    let wait = if jitter > 0 {
        base + rand::thread_rng().gen_range(-jitter..=jitter)
    } else {
        base
    };
    let wait = Duration::from_micros(wait.max(0) as u64);
    {
        let mut seen = inner.seen.lock().expect("seen");
        seen.max_in_flight = seen.max_in_flight.max(now_in_flight);
        for c in &channels {
            let n = seen.channel_in_flight.entry(c.clone()).or_default();
            *n += 1;
            let n = *n;
            seen.max_channel_in_flight = seen.max_channel_in_flight.max(n);
        }
        seen.requests.push(RequestSeen {
            at,
            status: 200,
            events: items.len(),
        });
        for (channel, data) in items {
            let data: serde_json::Value = serde_json::from_str(&data).unwrap_or_default();
            // A multi-channel event may carry each channel's place in
            // `seqs` ({channel: seq}) instead of one `seq`.
            let seq = data["seq"]
                .as_u64()
                .or_else(|| data["seqs"][channel.as_str()].as_u64())
                .unwrap_or_default();
            let sent = data["t"].as_u64().unwrap_or(arrived_ms);
            let (max, got) = seen.seen.entry(channel.clone()).or_default();
            if !got.insert(seq) {
                seen.duplicates += 1;
            } else {
                // `max` holds one past the highest seq seen.
                let violation = seq != *max;
                *max = (*max).max(seq + 1);
                if violation {
                    seen.violations += 1;
                }
            }
            seen.events.push(EventSeen {
                channel,
                seq,
                published_ms: sent,
                at,
                latency_ms: (arrived_ms + wait.as_millis() as u64).saturating_sub(sent),
            });
        }
    }
    guard.channels = channels;
    tokio::time::sleep(wait).await;
    drop(guard);
    (StatusCode::OK, "{}").into_response()
}

/// The `p` quantile (0..=1) of `values`, which it sorts.
pub fn percentile(values: &mut [u64], p: f64) -> u64 {
    if values.is_empty() {
        return 0;
    }
    values.sort_unstable();
    values[((values.len() - 1) as f64 * p).round() as usize]
}
