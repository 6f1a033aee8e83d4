//! The admin token check shared by the admin API's bearer header and the ops
//! console's sign-in form: a constant-time comparison, and one throttle over
//! both so that a guessing script gains nothing by switching between them.
//! It lives apart from [`crate::admin`] so that the console does not import
//! the API it sits beside.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::Secret;

/// Wrong admin tokens allowed per [`THROTTLE_WINDOW`], over the API and the
/// console's sign-in together, before every attempt is refused unchecked
/// until the window ends. A token of 32 or more random characters cannot be
/// guessed at any rate; this keeps a guessing script from costing CPU and
/// flooding the log, and an operator waits at most one window.
const FAILURES_PER_WINDOW: u32 = 20;
const THROTTLE_WINDOW: Duration = Duration::from_secs(10);

/// Failed token checks in the current window, shared by the API and the
/// console.
pub static FAILED_ATTEMPTS: Throttle = Throttle::new();

/// What a token check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenCheck {
    Right,
    Wrong,
    /// Too many wrong tokens lately: not checked; try again after this.
    Throttled(Duration),
}

/// Counts wrong tokens in fixed windows.
#[derive(Debug)]
pub struct Throttle {
    window: Mutex<Option<(Instant, u32)>>,
}

impl Throttle {
    pub const fn new() -> Throttle {
        Throttle {
            window: Mutex::new(None),
        }
    }

    /// Checks `given` against `token`, unless too many were wrong lately.
    pub fn check(&self, token: &Secret, given: &str) -> TokenCheck {
        self.check_at(token, given, Instant::now())
    }

    fn check_at(&self, token: &Secret, given: &str, now: Instant) -> TokenCheck {
        let mut window = self.window.lock().unwrap_or_else(|e| e.into_inner());
        let (start, failures) = match *window {
            Some((start, n)) if now.saturating_duration_since(start) < THROTTLE_WINDOW => {
                (start, n)
            }
            _ => (now, 0),
        };
        if failures >= FAILURES_PER_WINDOW {
            *window = Some((start, failures));
            return TokenCheck::Throttled(THROTTLE_WINDOW - now.saturating_duration_since(start));
        }
        if token_matches(token, given) {
            *window = Some((start, failures));
            return TokenCheck::Right;
        }
        if failures + 1 == FAILURES_PER_WINDOW {
            tracing::warn!(
                failures = FAILURES_PER_WINDOW,
                window = ?THROTTLE_WINDOW,
                "wrong admin tokens: refusing every attempt until the window ends"
            );
        }
        *window = Some((start, failures + 1));
        TokenCheck::Wrong
    }
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new()
    }
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
    fn wrong_tokens_past_the_limit_refuse_every_attempt_until_the_window_ends() {
        let t = Throttle::new();
        let token = Secret::new("a-token-of-thirty-two-characters");
        let t0 = Instant::now();
        for _ in 0..FAILURES_PER_WINDOW {
            assert_eq!(t.check_at(&token, "guess", t0), TokenCheck::Wrong);
        }
        assert!(matches!(
            t.check_at(&token, token.expose(), t0 + Duration::from_secs(1)),
            TokenCheck::Throttled(wait) if wait == Duration::from_secs(9)
        ));
        assert_eq!(
            t.check_at(&token, token.expose(), t0 + THROTTLE_WINDOW),
            TokenCheck::Right,
            "a new window checks again"
        );
        assert_eq!(
            t.check_at(&token, "", t0 + THROTTLE_WINDOW),
            TokenCheck::Wrong
        );
    }
}
