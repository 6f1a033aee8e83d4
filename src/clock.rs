//! Unix milliseconds, the one time unit of intents, dead letters and metrics.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

/// Unix milliseconds as RFC 3339 UTC (`2024-05-01T12:00:00.123Z`), the one
/// way the CLI, the admin API and the console write a time.
pub fn rfc3339_ms(ms: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(t).to_string()
}
