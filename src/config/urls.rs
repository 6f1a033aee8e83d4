//! URLs that hold passwords (`AMQP_URL`, `DATABASE_URL`): splitting a list
//! of broker URLs, redacting passwords wherever a URL is shown, and telling
//! a URL that parsers would misread from one they read as written.

/// Splits `AMQP_URL` at the commas that start another URL (`,amqp://`, or
/// any `,scheme://`, so that a wrong scheme is named as its own entry) or
/// end the list: a comma inside a password stays in it.
pub(super) fn split_urls(list: &str) -> Vec<&str> {
    let mut urls = Vec::new();
    let mut start = 0;
    for (i, _) in list.match_indices(',') {
        let next = list[i + 1..].trim_start();
        if next.is_empty() || starts_with_scheme(next) {
            urls.push(&list[start..i]);
            start = i + 1;
        }
    }
    urls.push(&list[start..]);
    urls.into_iter()
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect()
}

/// `url` as it may be shown: the password of `scheme://user:password@host`
/// and every `password=`, `pass=` or `sslpassword=` query value replaced by
/// `***`. The one redaction of the crate, for AMQP and database URLs alike.
///
/// Passwords are often typed raw, so they may hold `/ ? # @ : ,`: the
/// userinfo ends at the last `@` followed by a host and port (anything up
/// to the next `/`, `?` or `#` without another `@`), not at the first `/`.
/// When a path or query also holds an `@`, more is hidden than needed
/// (`***@` in place of a userinfo that is not certain), never less. Without
/// `://`, everything before the last `@` is hidden.
pub fn redact_url(url: &str) -> String {
    // What is hidden is found on the URL as given, then cut out at once:
    // a query's password may hold an `@` taken for the userinfo's end, and
    // a raw password a `?` taken for the query's start; both are hidden.
    let start = url.find("://").map_or(0, |i| i + 3);
    let rest = &url[start..];
    let mut hidden: Vec<(usize, usize)> = Vec::new();
    let at = userinfo_end(rest);
    if let Some(at) = at {
        let userinfo = &rest[..at];
        // A user name holds none of these; if it seems to, the `@` taken
        // is a later one (in the path or query) and the real userinfo,
        // password included, is somewhere in `userinfo`: none of it shows.
        let odd = |s: &str| s.contains(['@', '/', '?', '#']);
        let from = match userinfo.split_once(':') {
            _ if start == 0 => Some(0),
            Some((user, _password)) if !odd(user) => Some(user.len() + 1),
            None if !odd(userinfo) => None,
            _ => Some(0),
        };
        if let Some(from) = from {
            hidden.push((from, at));
        }
    }
    let query_starts = [
        rest.find('?'),
        at.and_then(|at| rest[at..].find('?').map(|q| at + q)),
    ];
    for q in query_starts.into_iter().flatten() {
        let mut pair_start = q + 1;
        for pair in rest[q + 1..].split('&') {
            if let Some((key, _)) = pair.split_once('=') {
                if ["password", "pass", "sslpassword"]
                    .iter()
                    .any(|p| key.eq_ignore_ascii_case(p))
                {
                    hidden.push((pair_start + key.len() + 1, pair_start + pair.len()));
                }
            }
            pair_start += pair.len() + 1;
        }
    }
    hidden.sort_unstable();
    let mut out = url[..start].to_string();
    let mut shown_to = 0;
    for (from, to) in hidden {
        if from < shown_to {
            // Overlaps the range just hidden: hide on to its end.
            if to > shown_to {
                shown_to = to;
            }
            continue;
        }
        out.push_str(&rest[shown_to..from]);
        out.push_str("***");
        shown_to = to;
    }
    out.push_str(&rest[shown_to..]);
    out
}

/// Where the userinfo of `rest` (a URL after its `scheme://`) ends: the
/// last `@` that [`ends_userinfo`], else the last `@`.
fn userinfo_end(rest: &str) -> Option<usize> {
    let last = rest.rfind('@')?;
    Some(
        rest.rmatch_indices('@')
            .map(|(i, _)| i)
            .find(|&i| ends_userinfo(&rest[i + 1..]))
            .unwrap_or(last),
    )
}

/// Whether `url`'s userinfo, as [`redact_url`] finds it, holds a raw `/`,
/// `?` or `#`. URL parsers (lapin's, sqlx's) end the authority there and
/// read the rest of the password as host, port, vhost or query, which the
/// broker or they themselves may then repeat in an error or a log line
/// (`vhost '...' not found`), so such a URL is refused before use. It may
/// also be a URL without password whose path or query holds a raw `@`; the
/// cure is the same: percent-encoding.
pub fn userinfo_is_ambiguous(url: &str) -> bool {
    let Some(scheme_end) = url.find("://") else {
        return false;
    };
    let rest = &url[scheme_end + 3..];
    userinfo_end(rest).is_some_and(|at| rest[..at].contains(['/', '?', '#']))
}

/// The error for a URL that [`userinfo_is_ambiguous`]: fixed text, no part
/// of the URL.
pub const AMBIGUOUS_USERINFO: &str = "has a raw /, ? or # before its last @ (in the password, or an @ in the path or query): percent-encode them (%2F, %3F, %23, %40)";

/// Whether `s` starts with `scheme://`.
fn starts_with_scheme(s: &str) -> bool {
    s.split_once("://").is_some_and(|(scheme, _)| {
        scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    })
}

/// Whether the `@` before `s` may end the userinfo: what follows it up to
/// the next `/`, `?` or `#` (the host and port, whatever their shape) holds
/// no other `@`, and the `@` does not end the URL. Of several such `@`, the
/// last is taken, so an `@` in a password is never mistaken for the end.
fn ends_userinfo(s: &str) -> bool {
    let end = s.find(['/', '?', '#']).unwrap_or(s.len());
    !s.is_empty() && !s[..end].contains('@')
}
