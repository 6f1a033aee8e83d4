//! The ops console's sessions and their cookies: at sign-in
//! ([`super::signin`]) the admin token is exchanged once for a random
//! session id in an HttpOnly, SameSite=Strict cookie, so the token is typed
//! once and never kept by the browser. Each session carries its own CSRF
//! token, which every form posts back.
//!
//! Sessions live in this process's memory: a restart signs everyone out,
//! which for an operator's console is a fair price for keeping no state.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::RngCore;
use subtle::ConstantTimeEq;

/// How long a session lasts without use. The overview's polling does not
/// count as use, so a forgotten tab signs itself out.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(8 * 3600);

/// How long a session lasts at most, used or not: a stolen cookie stops
/// working by the next working day.
pub const MAX_LIFETIME: Duration = Duration::from_secs(12 * 3600);

/// Sessions kept at most; signing in beyond this drops the oldest, so a
/// script signing in in a loop cannot grow the worker's memory.
const MAX_SESSIONS: usize = 256;

/// The session cookie's name.
pub const COOKIE: &str = "relay_console";

/// The cookie holding the sign-in form's CSRF token before a session exists.
pub const LOGIN_COOKIE: &str = "relay_console_login";

/// A signed-in browser.
#[derive(Debug, Clone)]
pub struct Session {
    /// Posted back by every form of this session.
    pub csrf: String,
    started: Instant,
    last_used: Instant,
}

impl Session {
    fn expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.last_used) >= IDLE_TIMEOUT
            || now.saturating_duration_since(self.started) >= MAX_LIFETIME
    }
}

/// Every live session, by id.
#[derive(Debug, Default)]
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
}

/// 32 random bytes as hex: unguessable ids and CSRF tokens.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Compares two tokens in constant time (for equal lengths; ours are fixed).
pub fn same(a: &str, b: &str) -> bool {
    !a.is_empty() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.by_id.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a session; returns its id.
    pub fn start(&self) -> String {
        let id = random_token();
        let mut map = self.lock();
        let now = Instant::now();
        map.retain(|_, s| !s.expired(now));
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, s)| s.last_used)
                .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(
            id.clone(),
            Session {
                csrf: random_token(),
                started: Instant::now(),
                last_used: Instant::now(),
            },
        );
        id
    }

    /// The live session with this id; `used` (a person's request, not a
    /// page's polling) keeps it from going idle.
    pub fn get(&self, id: &str, used: bool) -> Option<Session> {
        self.get_at(id, used, Instant::now())
    }

    fn get_at(&self, id: &str, used: bool, now: Instant) -> Option<Session> {
        let mut map = self.lock();
        let s = map.get_mut(id)?;
        if s.expired(now) {
            map.remove(id);
            return None;
        }
        if used {
            s.last_used = now;
        }
        Some(s.clone())
    }

    /// Signs out.
    pub fn end(&self, id: &str) {
        self.lock().remove(id);
    }
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'a>(header: &'a str, name: &str) -> Option<&'a str> {
    header.split(';').find_map(|pair| {
        let (k, v) = pair.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// The name cookie `base` goes by: behind TLS with the `__Host-` prefix,
/// which browsers accept only from a secure origin, for the whole host and
/// never set by a sibling domain; so a cookie tossed in over plain HTTP or
/// from another subdomain cannot stand in for ours.
pub fn cookie_name(base: &str, secure: bool) -> String {
    if secure {
        format!("__Host-{base}")
    } else {
        base.to_string()
    }
}

/// A `Set-Cookie` value for cookie `base` (see [`cookie_name`]); `secure`
/// behind TLS. `__Host-` cookies must have `Path=/`; plain ones keep to
/// the console's path.
pub fn set_cookie(base: &str, value: &str, secure: bool, max_age: Option<Duration>) -> String {
    let name = cookie_name(base, secure);
    let path = if secure { "/" } else { "/ui" };
    let mut c = format!("{name}={value}; Path={path}; HttpOnly; SameSite=Strict");
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={}", age.as_secs()));
    }
    if secure {
        c.push_str("; Secure");
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_is_found_by_its_id_until_it_ends() {
        let s = Sessions::default();
        let id = s.start();
        let csrf = s.get(&id, true).map(|x| x.csrf);
        assert!(csrf.as_deref().is_some_and(|c| c.len() == 64));
        assert!(s.get("not-an-id", true).is_none());
        s.end(&id);
        assert!(s.get(&id, true).is_none());
    }

    #[test]
    fn sessions_are_capped() {
        let s = Sessions::default();
        let first = s.start();
        for _ in 0..MAX_SESSIONS {
            s.start();
        }
        assert!(s.get(&first, true).is_none(), "the oldest went");
        assert_eq!(s.lock().len(), MAX_SESSIONS);
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_behind_tls() {
        let plain = set_cookie(COOKIE, "abc", false, None);
        assert_eq!(
            plain,
            "relay_console=abc; Path=/ui; HttpOnly; SameSite=Strict"
        );
        let tls = set_cookie(COOKIE, "", true, Some(Duration::ZERO));
        assert!(tls.ends_with("; Max-Age=0; Secure"), "{tls}");
        assert!(tls.starts_with("__Host-relay_console=; Path=/;"), "{tls}");
    }

    #[test]
    fn polling_does_not_keep_a_session_alive_and_no_session_outlives_its_lifetime() {
        let s = Sessions::default();
        let id = s.start();
        let t0 = Instant::now();
        let almost_idle = t0 + IDLE_TIMEOUT - Duration::from_secs(1);
        assert!(
            s.get_at(&id, false, almost_idle).is_some(),
            "a poll finds it"
        );
        assert!(
            s.get_at(&id, false, t0 + IDLE_TIMEOUT + Duration::from_secs(1))
                .is_none(),
            "polls alone do not keep it alive"
        );
        let id = s.start();
        let t0 = Instant::now();
        let mut now = t0;
        while now < t0 + MAX_LIFETIME - Duration::from_secs(3600) {
            now += Duration::from_secs(3600);
            assert!(
                s.get_at(&id, true, now).is_some(),
                "in use, within its lifetime"
            );
        }
        assert!(
            s.get_at(&id, true, t0 + MAX_LIFETIME + Duration::from_secs(1))
                .is_none(),
            "past its lifetime, even in use"
        );
    }

    #[test]
    fn cookies_are_read_by_exact_name() {
        let h = "a=1; relay_console_login=x; relay_console=abc";
        assert_eq!(cookie(h, COOKIE), Some("abc"));
        assert_eq!(cookie(h, LOGIN_COOKIE), Some("x"));
        assert_eq!(cookie(h, "b"), None);
        assert!(!same("", ""));
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
    }
}
