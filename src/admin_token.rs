//! The admin token check shared by the admin API's bearer header and the ops
//! console's sign-in form: a constant-time comparison, and one throttle over
//! both so that a guessing script gains nothing by switching between them.
//! It lives apart from [`crate::admin`] so that the console does not import
//! the API it sits beside.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Secret;

/// Wrong admin tokens allowed per [`THROTTLE_WINDOW`] from one peer, over
/// the API and the console's sign-in together, before that peer's wrong
/// tokens are answered 429 until its window ends. A token of 32 or more
/// random characters cannot be guessed at any rate; this keeps a guessing
/// script from flooding the log. The right token always passes, and an
/// empty or missing one is not counted, so nobody can lock the operators
/// out: not another peer, not a scraper without a header.
const FAILURES_PER_WINDOW: u32 = 20;
const THROTTLE_WINDOW: Duration = Duration::from_secs(10);

/// Peers remembered at once. Past it, windows that ended are forgotten, and
/// if none has, the newcomers share one window: memory stays bounded
/// whatever the number of addresses a guesser has.
const MAX_PEERS: usize = 4096;

/// Failed token checks in the current window, shared by the API and the
/// console.
pub static FAILED_ATTEMPTS: TokenThrottle = TokenThrottle::new();

/// What a token check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCheck {
    Right,
    Wrong,
    /// Too many wrong tokens from this peer lately; try again after this.
    Throttled(Duration),
}

/// Counts wrong tokens per peer in fixed windows. `None` is the window the
/// newcomers share once [`MAX_PEERS`] are remembered.
#[derive(Debug)]
pub struct TokenThrottle {
    windows: Mutex<Option<Windows>>,
}

/// Each peer's window: when it started and the wrong tokens in it.
type Windows = HashMap<Option<IpAddr>, (Instant, u32)>;

impl TokenThrottle {
    pub const fn new() -> TokenThrottle {
        TokenThrottle {
            windows: Mutex::new(None),
        }
    }

    /// Checks `given` from `peer` against `token`.
    pub fn check(&self, token: &Secret, given: &str, peer: IpAddr) -> TokenCheck {
        self.check_at(token, given, peer, Instant::now())
    }

    fn check_at(&self, token: &Secret, given: &str, peer: IpAddr, now: Instant) -> TokenCheck {
        if given.is_empty() {
            return TokenCheck::Wrong;
        }
        if token_matches(token, given) {
            return TokenCheck::Right;
        }
        let mut guard = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let windows = guard.get_or_insert_with(HashMap::new);
        let open =
            |(start, _): &(Instant, u32)| now.saturating_duration_since(*start) < THROTTLE_WINDOW;
        if windows.len() >= MAX_PEERS && !windows.contains_key(&Some(peer)) {
            windows.retain(|_, w| open(w));
        }
        let key = if windows.len() < MAX_PEERS || windows.contains_key(&Some(peer)) {
            Some(peer)
        } else {
            None
        };
        let window = windows.entry(key).or_insert((now, 0));
        if !open(window) {
            *window = (now, 0);
        }
        if window.1 >= FAILURES_PER_WINDOW {
            return TokenCheck::Throttled(
                THROTTLE_WINDOW - now.saturating_duration_since(window.0),
            );
        }
        window.1 += 1;
        if window.1 == FAILURES_PER_WINDOW {
            tracing::warn!(
                %peer,
                failures = FAILURES_PER_WINDOW,
                window = ?THROTTLE_WINDOW,
                "wrong admin tokens: this peer's wrong tokens are refused until its window ends"
            );
        }
        TokenCheck::Wrong
    }
}

impl Default for TokenThrottle {
    fn default() -> Self {
        TokenThrottle::new()
    }
}

/// The peer a request came from, as the HTTP listener recorded it; the
/// unspecified address when it did not (a router served some other way),
/// which then counts as one peer.
pub fn peer(extensions: &axum::http::Extensions) -> IpAddr {
    extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
}

/// 429 with `Retry-After` for a throttled token check, as the admin API's
/// other errors are shaped: `{"error": "..."}`.
pub fn throttled(wait: Duration) -> Response {
    let secs = wait.as_secs().max(1);
    let mut resp = (
        StatusCode::TOO_MANY_REQUESTS,
        Json(serde_json::json!({
            "error": format!("too many wrong admin tokens; try again in {secs} s")
        })),
    )
        .into_response();
    if let Ok(v) = header::HeaderValue::from_str(&secs.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// Whether `given` is the admin token: constant time over SHA-256 digests,
/// so neither the token's bytes nor its length leak through timing.
pub fn token_matches(token: &Secret, given: &str) -> bool {
    let want = Sha256::digest(token.expose().as_bytes());
    let got = Sha256::digest(given.as_bytes());
    !given.is_empty() && bool::from(want.ct_eq(&got))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peers_wrong_tokens_are_throttled_and_no_one_else_nor_the_right_token_is() {
        let t = TokenThrottle::new();
        let token = Secret::new("a-token-of-thirty-two-characters");
        let (guesser, operator): (IpAddr, IpAddr) =
            ("10.0.0.66".parse().unwrap(), "10.0.0.7".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..FAILURES_PER_WINDOW {
            assert_eq!(t.check_at(&token, "guess", guesser, t0), TokenCheck::Wrong);
        }
        assert!(matches!(
            t.check_at(&token, "guess", guesser, t0 + Duration::from_secs(1)),
            TokenCheck::Throttled(wait) if wait == Duration::from_secs(9)
        ));
        assert_eq!(
            t.check_at(&token, token.expose(), guesser, t0 + Duration::from_secs(1)),
            TokenCheck::Right,
            "the right token passes even from a throttled peer"
        );
        assert_eq!(
            t.check_at(&token, "typo", operator, t0 + Duration::from_secs(1)),
            TokenCheck::Wrong,
            "another peer has a window of its own"
        );
        assert_eq!(
            t.check_at(&token, "guess", guesser, t0 + THROTTLE_WINDOW),
            TokenCheck::Wrong,
            "a new window checks again"
        );
    }

    #[test]
    fn missing_tokens_are_not_counted_and_many_peers_stay_bounded() {
        let t = TokenThrottle::new();
        let token = Secret::new("a-token-of-thirty-two-characters");
        let peer: IpAddr = "10.0.0.66".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..FAILURES_PER_WINDOW * 5 {
            assert_eq!(t.check_at(&token, "", peer, t0), TokenCheck::Wrong);
        }
        assert_eq!(t.check_at(&token, "guess", peer, t0), TokenCheck::Wrong);
        for i in 0..(MAX_PEERS as u32 + 500) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            t.check_at(&token, "guess", ip, t0);
        }
        let remembered = t.windows.lock().unwrap().as_ref().map_or(0, |w| w.len());
        assert!(remembered <= MAX_PEERS + 1, "{remembered}");
    }
}
