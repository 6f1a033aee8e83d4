//! Shared test fixtures: a Pusher fake that checks every request's signature
//! (recomputed here independently of the library's signer), configuration
//! pointing at it, and unique names so tests run in parallel.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use pusher_relay::config::Config;
use sha2::Sha256;
use wiremock::{Match, Request};

pub const APP_ID: &str = "4242";
pub const KEY: &str = "test-key";
pub const SECRET: &str = "test-secret";

/// A name no other test (or run) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Configuration for a Pusher at `uri` (e.g. wiremock's), with overrides.
pub fn config_for(uri: &str, extra: &[(&str, &str)]) -> Config {
    let url = url::Url::parse(uri).expect("server uri");
    let mut vars: HashMap<String, String> = HashMap::from([
        ("PUSHER_APP_ID".into(), APP_ID.into()),
        ("PUSHER_APP_KEY".into(), KEY.into()),
        ("PUSHER_APP_SECRET".into(), SECRET.into()),
        (
            "PUSHER_HOST".into(),
            url.host_str().unwrap_or("127.0.0.1").into(),
        ),
        (
            "PUSHER_PORT".into(),
            url.port_or_known_default().unwrap_or(80).to_string(),
        ),
        ("PUSHER_SCHEME".into(), url.scheme().into()),
    ]);
    for (k, v) in extra {
        vars.insert(k.to_string(), v.to_string());
    }
    Config::from_lookup(&move |k| vars.get(k).cloned()).expect("test config is valid")
}

/// Why a request's signature is wrong, or `None` when Pusher would accept it.
pub fn signature_problem(req: &Request, key: &str, secret: &str) -> Option<String> {
    let query: Vec<(String, String)> = req
        .url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
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
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
    match get("auth_timestamp").and_then(|t| t.parse::<i64>().ok()) {
        Some(ts) if (now - ts).abs() < 600 => {}
        other => {
            return Some(format!(
                "auth_timestamp {other:?} is not within 600 s of now"
            ))
        }
    }
    if !req.body.is_empty() {
        let md5 = hex::encode(Md5::digest(&req.body));
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
    let to_sign = format!(
        "{}\n{}\n{}",
        req.method.as_str(),
        req.url.path(),
        params.join("&")
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("hmac key");
    mac.update(to_sign.as_bytes());
    let want = hex::encode(mac.finalize().into_bytes());
    if get("auth_signature").as_deref() != Some(want.as_str()) {
        return Some(format!("auth_signature does not match {to_sign:?}"));
    }
    None
}

/// A wiremock matcher that only matches correctly signed requests; mocks
/// built on it answer nothing (wiremock's 404) to a bad signature, which
/// fails the test.
pub struct SignedBy {
    pub key: &'static str,
    pub secret: &'static str,
}

impl Match for SignedBy {
    fn matches(&self, req: &Request) -> bool {
        match signature_problem(req, self.key, self.secret) {
            None => true,
            Some(problem) => {
                eprintln!("rejected {} {}: {problem}", req.method, req.url.path());
                false
            }
        }
    }
}

/// The matcher for this app's credentials.
pub fn signed() -> SignedBy {
    SignedBy {
        key: KEY,
        secret: SECRET,
    }
}

/// A sockudo (Pusher-protocol server) of this test's own, on a free port,
/// started through `scripts/sockudo` and stopped when dropped.
pub struct Sockudo {
    pub port: u16,
}

impl Sockudo {
    /// Starts one; `rate_limit` turns on its HTTP limiter (requests/s).
    pub fn start(rate_limit: Option<u32>) -> Sockudo {
        let port = free_port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/sockudo");
        let mut cmd = std::process::Command::new(script);
        cmd.arg("start").env("SOCKUDO_PORT", port.to_string());
        if let Some(n) = rate_limit {
            cmd.env("SOCKUDO_RATE_LIMIT", n.to_string());
        }
        let status = cmd.status().expect("scripts/sockudo runs");
        assert!(status.success(), "scripts/sockudo start failed on port {port}; is sockudo installed (scripts/sockudo install)?");
        Sockudo { port }
    }

    pub fn uri(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Configuration for the app sockudo serves (id 123456, app-key, app-secret).
    pub fn config(&self, extra: &[(&str, &str)]) -> Config {
        let mut vars = vec![
            ("PUSHER_APP_ID", "123456"),
            ("PUSHER_APP_KEY", "app-key"),
            ("PUSHER_APP_SECRET", "app-secret"),
        ];
        vars.extend_from_slice(extra);
        config_for(&self.uri(), &vars)
    }
}

impl Drop for Sockudo {
    fn drop(&mut self) {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/sockudo");
        let _ = std::process::Command::new(script)
            .arg("stop")
            .env("SOCKUDO_PORT", self.port.to_string())
            .status();
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
