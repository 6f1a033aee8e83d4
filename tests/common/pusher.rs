//! A fake Pusher for the integration tests: a wiremock server that checks
//! every request's signature (recomputed here, independently of the
//! library's signer), records every event it accepts, and fails on command;
//! and configuration pointing the library at any Pusher-like server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use pusher_relay::config::Config;
use wiremock::{Match, Request};

use super::{distant, APP_ID, KEY, SECRET};

/// The variables that point the library at a Pusher at `uri` (e.g.
/// wiremock's) with this app's credentials.
pub fn pusher_vars(uri: &str) -> Vec<(String, String)> {
    let url = url::Url::parse(uri).expect("server uri");
    let vars = [
        ("PUSHER_APP_ID", APP_ID.to_string()),
        ("PUSHER_APP_KEY", KEY.to_string()),
        ("PUSHER_APP_SECRET", SECRET.to_string()),
        (
            "PUSHER_HOST",
            url.host_str().unwrap_or("127.0.0.1").to_string(),
        ),
        (
            "PUSHER_PORT",
            url.port_or_known_default().unwrap_or(80).to_string(),
        ),
        ("PUSHER_SCHEME", url.scheme().to_string()),
    ];
    vars.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// Configuration for a Pusher at `uri` (e.g. wiremock's), with overrides.
pub fn config_for(uri: &str, extra: &[(&str, &str)]) -> Config {
    let mut vars = pusher_vars(uri);
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    config_from(vars)
}

/// Configuration from exactly `vars`; a later variable overrides an earlier
/// one of the same name, as in a process environment.
pub fn config_from(vars: Vec<(String, String)>) -> Config {
    let vars: HashMap<String, String> = vars.into_iter().collect();
    Config::from_lookup(&move |k| vars.get(k).cloned()).expect("test config is valid")
}

/// Why a request's signature is wrong, or `None` when Pusher would accept it.
pub fn signature_problem(req: &Request, key: &str, secret: &str) -> Option<String> {
    let query: Vec<(String, String)> = req
        .url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    distant::signature_problem(
        req.method.as_str(),
        req.url.path(),
        &query,
        &req.body,
        key,
        secret,
    )
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

// fails on command.

/// One event Pusher accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    pub channel: String,
    pub event: String,
    pub data: String,
}

/// How the fake answers.
#[derive(Debug, Default)]
pub struct Plan {
    /// Answer 503 to everything (probes included).
    pub down: bool,
    /// Answer 503 to this many of the next event requests.
    pub fail_next: usize,
    /// Answer 503 to one event request in this many (by request number).
    pub fail_one_in: Option<usize>,
    /// Answer 400 to any batch holding an event whose data contains this.
    pub reject_containing: Option<String>,
    /// Answer this status (e.g. 401) to everything.
    pub status_override: Option<u16>,
    /// Requests to the event endpoints seen so far.
    pub requests: usize,
    /// Events per accepted request.
    pub batch_sizes: Vec<usize>,
}

#[derive(Clone, Default)]
pub struct FakePusher {
    pub events: Arc<Mutex<Vec<Received>>>,
    pub plan: Arc<Mutex<Plan>>,
}

impl wiremock::Respond for FakePusher {
    fn respond(&self, req: &Request) -> wiremock::ResponseTemplate {
        use wiremock::ResponseTemplate;
        let mut plan = self.plan.lock().expect("plan");
        if let Some(status) = plan.status_override {
            return ResponseTemplate::new(status).set_body_string("refused by test");
        }
        if plan.down {
            return ResponseTemplate::new(503).set_body_string("down for the test");
        }
        if req.method.as_str() == "GET" {
            return ResponseTemplate::new(200).set_body_json(serde_json::json!({"channels": {}}));
        }
        plan.requests += 1;
        let n = plan.requests;
        if plan.fail_next > 0 {
            plan.fail_next -= 1;
            return ResponseTemplate::new(503).set_body_string("injected 503");
        }
        if plan.fail_one_in.is_some_and(|k| n % k == 0) {
            return ResponseTemplate::new(503).set_body_string("injected 503");
        }
        let body: serde_json::Value = serde_json::from_slice(&req.body).expect("JSON body");
        let mut got = Vec::new();
        if let Some(batch) = body["batch"].as_array() {
            for item in batch {
                got.push(Received {
                    channel: item["channel"].as_str().unwrap_or_default().into(),
                    event: item["name"].as_str().unwrap_or_default().into(),
                    data: item["data"].as_str().unwrap_or_default().into(),
                });
            }
        } else {
            for channel in body["channels"].as_array().into_iter().flatten() {
                got.push(Received {
                    channel: channel.as_str().unwrap_or_default().into(),
                    event: body["name"].as_str().unwrap_or_default().into(),
                    data: body["data"].as_str().unwrap_or_default().into(),
                });
            }
        }
        if let Some(marker) = &plan.reject_containing {
            if got.iter().any(|e| e.data.contains(marker.as_str())) {
                return ResponseTemplate::new(400)
                    .set_body_string(format!("event rejected by test ({marker})"));
            }
        }
        plan.batch_sizes.push(got.len());
        self.events.lock().expect("events").extend(got);
        ResponseTemplate::new(200).set_body_string("{}")
    }
}

impl FakePusher {
    /// Starts a wiremock server answering signed requests through this fake;
    /// badly signed ones get wiremock's 404 (a permanent rejection the
    /// tests would see as dead letters).
    pub async fn start() -> (FakePusher, wiremock::MockServer) {
        let fake = FakePusher::default();
        let server = wiremock::MockServer::start().await;
        wiremock::Mock::given(signed())
            .respond_with(fake.clone())
            .mount(&server)
            .await;
        (fake, server)
    }

    pub fn received(&self) -> Vec<Received> {
        self.events.lock().expect("events").clone()
    }

    pub fn plan(&self) -> std::sync::MutexGuard<'_, Plan> {
        self.plan.lock().expect("plan")
    }
}
