//! Which dead letters an operation applies to: the filters shared by
//! `dlq list`, `replay`, `purge`, `stats` and the admin API, their parsing
//! from operator text, the opaque pagination cursor, and the SQL `WHERE`
//! clause each backend runs.
//!
//! Pagination is keyset on `id DESC` (newest first). Ids only grow, so a page
//! boundary never moves when rows are inserted meanwhile: new rows appear
//! before the first page, never inside a later one.

use std::time::{Duration, SystemTime};

use base64::Engine;
use serde::Deserialize;

use super::backend::{Args, Bind, Dialect};
use super::record::{DeadLetterReason, DeadLetterStatus};

/// A filter as an operator writes it (CLI flags or API query parameters),
/// before parsing. Every field is optional; absent means "any". The field
/// docs are the CLI's `--help` text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct FilterSpec {
    /// Reasons, comma separated: invalid, too_large, rejected, exhausted, expired,
    /// delivery_limit.
    #[arg(long)]
    pub reason: Option<String>,
    /// Intent type, e.g. chat.message.
    #[serde(rename = "type")]
    #[arg(long = "type")]
    pub intent_type: Option<String>,
    /// A channel the intent addressed.
    #[arg(long)]
    pub channel: Option<String>,
    /// Dead-lettered at or after: RFC 3339 (2024-05-01T12:00:00Z), a date, or an age like 2h.
    #[arg(long)]
    pub since: Option<String>,
    /// Dead-lettered before: RFC 3339, a date, or an age like 7d.
    #[arg(long)]
    pub until: Option<String>,
    /// pending or replayed.
    #[arg(long)]
    pub status: Option<String>,
}

/// A parsed filter. Conditions are ANDed; an empty filter matches everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Any of these reasons (empty: any reason).
    pub reasons: Vec<DeadLetterReason>,
    /// This intent type.
    pub intent_type: Option<String>,
    /// Addressed this channel.
    pub channel: Option<String>,
    /// `dead_lettered_at_ms >= since_ms`.
    pub since_ms: Option<i64>,
    /// `dead_lettered_at_ms < until_ms`.
    pub until_ms: Option<i64>,
    /// This status.
    pub status: Option<DeadLetterStatus>,
    /// Only these ids (empty: any id). Used by replay and delete by id.
    pub ids: Vec<i64>,
}

/// A filter value that cannot be understood; the message names the field,
/// the value and what was expected, for a CLI error or an HTTP 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad {field} filter {value:?}: {expected}")]
pub struct FilterError {
    /// The flag or query parameter (`since`, `reason`, ...).
    pub field: &'static str,
    /// The value as given.
    pub value: String,
    /// What would have been accepted.
    pub expected: String,
}

impl FilterSpec {
    /// Parses every field; relative times count back from `now`.
    pub fn parse(&self, now: SystemTime) -> Result<Filter, FilterError> {
        let mut filter = Filter::default();
        if let Some(reasons) = non_empty(&self.reason) {
            for r in reasons.split(',').map(str::trim) {
                let reason = r.parse::<DeadLetterReason>().map_err(|e| FilterError {
                    field: "reason",
                    value: reasons.to_owned(),
                    expected: e.to_string(),
                })?;
                if !filter.reasons.contains(&reason) {
                    filter.reasons.push(reason);
                }
            }
        }
        filter.intent_type = non_empty(&self.intent_type).map(str::to_owned);
        filter.channel = non_empty(&self.channel).map(str::to_owned);
        filter.since_ms = non_empty(&self.since)
            .map(|s| parse_time("since", s, now))
            .transpose()?;
        filter.until_ms = non_empty(&self.until)
            .map(|s| parse_time("until", s, now))
            .transpose()?;
        filter.status = non_empty(&self.status)
            .map(|s| {
                s.parse::<DeadLetterStatus>()
                    .map_err(|expected| FilterError {
                        field: "status",
                        value: s.to_owned(),
                        expected,
                    })
            })
            .transpose()?;
        Ok(filter)
    }
}

fn non_empty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

pub use crate::clock::unix_ms;

/// Parses a point in time as an operator writes it: RFC 3339
/// (`2024-05-01T12:00:00Z`, `2024-05-01T14:00:00+02:00`, fractions allowed),
/// a date (`2024-05-01`, midnight UTC), or an age before `now` in
/// humantime's syntax (`90s`, `15m`, `2h`, `7d`, `1h 30m`).
pub fn parse_time(field: &'static str, s: &str, now: SystemTime) -> Result<i64, FilterError> {
    let err = || FilterError {
        field,
        value: s.to_owned(),
        expected: "an RFC 3339 time (2024-05-01T12:00:00Z), a date (2024-05-01) \
                   or an age like 2h, 30m, 7d"
            .into(),
    };
    if s.starts_with(|c: char| c.is_ascii_digit()) && s.len() >= 10 && s.as_bytes()[4] == b'-' {
        return parse_absolute(s).ok_or_else(err);
    }
    let age = humantime::parse_duration(s).map_err(|_| err())?;
    let then = now.checked_sub(age).ok_or_else(err)?;
    Ok(unix_ms(then))
}

/// humantime reads RFC 3339 only in UTC, so a numeric offset is split off
/// here and applied by hand.
fn parse_absolute(s: &str) -> Option<i64> {
    if s.len() == 10 {
        let t = humantime::parse_rfc3339(&format!("{s}T00:00:00Z")).ok()?;
        return Some(unix_ms(t));
    }
    let bytes = s.as_bytes();
    let n = bytes.len();
    let (local, offset_secs) =
        if n > 6 && matches!(bytes[n - 6], b'+' | b'-') && bytes[n - 3] == b':' {
            let hours: i64 = s.get(n - 5..n - 3)?.parse().ok()?;
            let minutes: i64 = s.get(n - 2..)?.parse().ok()?;
            let sign = if bytes[n - 6] == b'+' { 1 } else { -1 };
            (&s[..n - 6], sign * (hours * 3600 + minutes * 60))
        } else {
            let trimmed = s.strip_suffix(['Z', 'z'])?;
            (trimmed, 0)
        };
    let t = humantime::parse_rfc3339_weak(local).ok()?;
    // A local time at +02:00 is two hours ahead of UTC.
    Some(unix_ms(t) - offset_secs * 1000)
}

/// Parses a duration such as `7d` for `--older-than`.
pub fn parse_age(field: &'static str, s: &str) -> Result<Duration, FilterError> {
    humantime::parse_duration(s.trim()).map_err(|_| FilterError {
        field,
        value: s.to_owned(),
        expected: "a duration like 30m, 12h, 7d".into(),
    })
}

/// Where the next page starts: opaque to callers (base64 of `id:<last id>`)
/// so the key can change without breaking clients that just pass it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The smallest id on the previous page; the next page has smaller ids.
    pub before_id: i64,
}

impl Cursor {
    /// The text handed to clients.
    pub fn encode(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("id:{}", self.before_id))
    }

    /// Reads a cursor this module produced.
    pub fn decode(s: &str) -> Result<Cursor, FilterError> {
        let err = || FilterError {
            field: "cursor",
            value: s.to_owned(),
            expected: "a cursor returned by a previous page (next_cursor)".into(),
        };
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s.trim())
            .map_err(|_| err())?;
        let text = std::str::from_utf8(&bytes).map_err(|_| err())?;
        let id = text
            .strip_prefix("id:")
            .and_then(|n| n.parse::<i64>().ok())
            .ok_or_else(err)?;
        Ok(Cursor { before_id: id })
    }
}

/// A `WHERE` clause under construction. Its placeholders are numbered (see
/// [`Args`]), so a statement can bind more (limits, claim ids) after it.
#[derive(Debug, Clone)]
pub(super) struct Where<'a> {
    pub args: Args<'a>,
    clauses: Vec<String>,
}

impl<'a> Where<'a> {
    pub fn new(dialect: Dialect) -> Where<'a> {
        Where {
            args: Args::new(dialect),
            clauses: Vec::new(),
        }
    }

    /// Adds a bind and returns its placeholder.
    pub fn bind(&mut self, b: Bind<'a>) -> String {
        self.args.bind(b)
    }

    /// Adds a condition built around a fresh placeholder.
    pub fn push(&mut self, b: Bind<'a>, clause: impl FnOnce(&str) -> String) {
        let p = self.bind(b);
        self.clauses.push(clause(&p));
    }

    /// Adds a condition with no bind.
    pub fn push_raw(&mut self, clause: &str) {
        self.clauses.push(clause.to_owned());
    }

    /// `WHERE a AND b ...`, or empty.
    pub fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", self.clauses.join(" AND "))
        }
    }

    /// The filter's conditions.
    pub fn filter(dialect: Dialect, f: &'a Filter) -> Where<'a> {
        let mut w = Where::new(dialect);
        if !f.reasons.is_empty() {
            let names = f.reasons.iter().map(|r| r.as_str()).collect();
            w.push(Bind::Texts(names), |p| dialect.in_list("reason", p));
        }
        if let Some(t) = &f.intent_type {
            w.push(Bind::text(t), |p| format!("intent_type = {p}"));
        }
        if let Some(c) = &f.channel {
            w.push(Bind::text(c), |p| dialect.has_channel(p));
        }
        if let Some(ms) = f.since_ms {
            w.push(Bind::int(ms), |p| format!("dead_lettered_at_ms >= {p}"));
        }
        if let Some(ms) = f.until_ms {
            w.push(Bind::int(ms), |p| format!("dead_lettered_at_ms < {p}"));
        }
        if let Some(s) = f.status {
            w.push(Bind::text(s.as_str()), |p| format!("status = {p}"));
        }
        if !f.ids.is_empty() {
            w.push(Bind::Ids(&f.ids), |p| dialect.in_list("id", p));
        }
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> SystemTime {
        humantime::parse_rfc3339(s).expect("test time")
    }

    #[test]
    fn times_absolute_relative_and_offsets() {
        let now = at("2024-05-01T12:00:00Z");
        let noon = unix_ms(now);
        assert_eq!(parse_time("since", "2024-05-01T12:00:00Z", now), Ok(noon));
        assert_eq!(
            parse_time("since", "2024-05-01T14:00:00+02:00", now),
            Ok(noon)
        );
        assert_eq!(
            parse_time("since", "2024-05-01T10:30:00-01:30", now),
            Ok(noon)
        );
        assert_eq!(
            parse_time("since", "2024-05-01", now),
            Ok(noon - 12 * 3_600_000)
        );
        assert_eq!(parse_time("since", "2h", now), Ok(noon - 2 * 3_600_000));
        assert_eq!(parse_time("since", "1h 30m", now), Ok(noon - 5_400_000));
        let err = parse_time("since", "yesterday", now).expect_err("not a time");
        assert!(err.to_string().contains("since"), "{err}");
        assert!(err.to_string().contains("RFC 3339"), "{err}");
        assert!(parse_time("until", "2024-13-01T00:00:00Z", now).is_err());
    }

    #[test]
    fn spec_parses_and_names_bad_fields() {
        let now = at("2024-05-01T12:00:00Z");
        let spec = FilterSpec {
            reason: Some("rejected, exhausted".into()),
            status: Some("pending".into()),
            ..Default::default()
        };
        let f = spec.parse(now).expect("valid");
        assert_eq!(
            f.reasons,
            vec![DeadLetterReason::Rejected, DeadLetterReason::Exhausted]
        );
        assert_eq!(f.status, Some(DeadLetterStatus::Pending));
        let bad = FilterSpec {
            reason: Some("lost".into()),
            ..Default::default()
        };
        let err = bad.parse(now).expect_err("bad reason");
        assert_eq!(err.field, "reason");
        let bad = FilterSpec {
            status: Some("done".into()),
            ..Default::default()
        };
        assert!(bad
            .parse(now)
            .expect_err("bad status")
            .to_string()
            .contains("pending or replayed"));
    }

    #[test]
    fn cursor_round_trips_and_rejects_garbage() {
        let c = Cursor { before_id: 1234 };
        assert_eq!(Cursor::decode(&c.encode()), Ok(c));
        assert_eq!(Cursor::decode("nope").expect_err("garbage").field, "cursor");
    }
}
