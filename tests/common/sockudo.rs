//! A sockudo (a Pusher-protocol server) of the test's own, started and
//! stopped through `scripts/sockudo`.

use pusher_relay::config::Config;

use super::{config_for, free_port};

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
