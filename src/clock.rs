//! Unix milliseconds, the one time unit of intents, dead letters and metrics.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix milliseconds of `t` (0 before 1970, which no intent has).
pub fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    unix_ms(SystemTime::now())
}
