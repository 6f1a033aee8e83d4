//! What can go wrong talking to Pusher, and whether trying again can help.
//!
//! One place answers "retry or not" (as Vector's `RetryLogic` does): the relay
//! asks [`PusherError::is_retryable`] and never looks at statuses itself.

use std::time::Duration;

use super::validate::ValidationError;

/// How much of Pusher's response body is kept in errors and dead letters.
pub const BODY_EXCERPT_CHARS: usize = 512;

/// A failed Pusher API call.
#[derive(Debug, thiserror::Error)]
pub enum PusherError {
    /// The request was refused before sending: it can never succeed.
    #[error("invalid request: {0}")]
    Invalid(#[from] ValidationError),

    /// An encrypted channel was used without `PUSHER_ENCRYPTION_MASTER_KEY_BASE64`.
    #[error("channel {channel:?} is end-to-end encrypted but PUSHER_ENCRYPTION_MASTER_KEY_BASE64 is not set")]
    MissingMasterKey { channel: String },

    /// No TCP/TLS connection to Pusher.
    #[error("cannot connect to {url}: {detail}")]
    Connect { url: String, detail: String },

    /// The request or its response took longer than `PUSHER_TIMEOUT_MS`.
    #[error("request to {url} timed out after {timeout:?}")]
    Timeout { url: String, timeout: Duration },

    /// Any other transport failure (connection reset, bad TLS, ...).
    #[error("request to {url} failed: {detail}")]
    Transport { url: String, detail: String },

    /// Pusher answered with a non-2xx status.
    #[error("Pusher answered {status} to {method} {path}: {body}")]
    Status {
        method: &'static str,
        path: String,
        status: u16,
        /// The first [`BODY_EXCERPT_CHARS`] characters of the body.
        body: String,
        /// Pusher's (or a proxy's) `Retry-After`, when it sent one.
        retry_after: Option<Duration>,
    },

    /// A 2xx whose body is not the JSON the endpoint promises.
    #[error("Pusher's answer to {path} is not the expected JSON: {detail}")]
    Decode { path: String, detail: String },
}

/// How a failure should be handled, in the relay's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Connection, timeout, 5xx, 429: the same request may succeed later.
    Transient,
    /// 401: bad credentials or a clock outside Pusher's 600 s window.
    Unauthorized,
    /// 403: app disabled or over quota; nothing will pass until it is fixed.
    Forbidden,
    /// 400, 404, 413 and validation: this request will never succeed as it is.
    Rejected,
}

impl PusherError {
    /// The handling category of this failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            PusherError::Connect { .. }
            | PusherError::Timeout { .. }
            | PusherError::Transport { .. } => ErrorKind::Transient,
            PusherError::Status { status, .. } => match status {
                401 => ErrorKind::Unauthorized,
                403 => ErrorKind::Forbidden,
                408 | 429 | 500..=599 => ErrorKind::Transient,
                _ => ErrorKind::Rejected,
            },
            // A 2xx means Pusher took the events; retrying would duplicate.
            PusherError::Decode { .. } => ErrorKind::Rejected,
            PusherError::Invalid(_) | PusherError::MissingMasterKey { .. } => ErrorKind::Rejected,
        }
    }

    /// Whether sending the same request again may succeed.
    pub fn is_retryable(&self) -> bool {
        self.kind() == ErrorKind::Transient
    }

    /// The HTTP status, when Pusher answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            PusherError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The excerpt of Pusher's body, when it answered.
    pub fn body_excerpt(&self) -> Option<&str> {
        match self {
            PusherError::Status { body, .. } => Some(body),
            _ => None,
        }
    }

    /// How long Pusher asked us to wait, from `Retry-After`.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            PusherError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// A 401 whose body blames the timestamp: our clock is off, and one retry
    /// with a fresh timestamp is worth it.
    pub fn is_clock_skew(&self) -> bool {
        match self {
            PusherError::Status {
                status: 401, body, ..
            } => {
                let body = body.to_ascii_lowercase();
                body.contains("timestamp") || body.contains("expired") || body.contains("clock")
            }
            _ => false,
        }
    }
}

/// Cuts a response body to [`BODY_EXCERPT_CHARS`] characters.
pub fn excerpt(body: &str) -> String {
    let mut cut: String = body.chars().take(BODY_EXCERPT_CHARS).collect();
    if cut.len() < body.len() {
        cut.push('…');
    }
    cut
}

/// Parses `Retry-After` given in seconds (the form Pusher and proxies use);
/// an HTTP date is ignored and the caller's own backoff applies.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, body: &str) -> PusherError {
        PusherError::Status {
            method: "POST",
            path: "/apps/1/events".into(),
            status: code,
            body: body.into(),
            retry_after: None,
        }
    }

    #[test]
    fn statuses_map_to_kinds() {
        for (code, kind) in [
            (400, ErrorKind::Rejected),
            (401, ErrorKind::Unauthorized),
            (403, ErrorKind::Forbidden),
            (404, ErrorKind::Rejected),
            (413, ErrorKind::Rejected),
            (429, ErrorKind::Transient),
            (500, ErrorKind::Transient),
            (503, ErrorKind::Transient),
        ] {
            assert_eq!(status(code, "").kind(), kind, "status {code}");
        }
    }

    #[test]
    fn clock_skew_is_a_401_that_mentions_the_timestamp() {
        assert!(status(
            401,
            "Timestamp expired: Given timestamp (1) not within 600s of server time"
        )
        .is_clock_skew());
        assert!(!status(401, "Invalid signature").is_clock_skew());
        assert!(!status(400, "timestamp").is_clock_skew());
    }

    #[test]
    fn excerpt_cuts_long_bodies_on_char_boundaries() {
        let long = "é".repeat(BODY_EXCERPT_CHARS + 10);
        let cut = excerpt(&long);
        assert_eq!(cut.chars().count(), BODY_EXCERPT_CHARS + 1);
        assert_eq!(excerpt("short"), "short");
    }

    #[test]
    fn retry_after_in_seconds() {
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
