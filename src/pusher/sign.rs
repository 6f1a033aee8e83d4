//! Request signing, auth_version 1.0 (docs/architecture.md, "Signing").
//!
//! The string to sign is `METHOD\npath\nsorted-params`, keys lowercased,
//! nothing URL-escaped. `body_md5` covers the exact bytes that are sent, so
//! callers serialise a body once and hand the same bytes to the signer and to
//! the HTTP request.

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Lowercase hex HMAC-SHA256 of `message` keyed with `secret`.
pub fn hmac_sha256_hex(secret: &[u8], message: &[u8]) -> String {
    hex::encode(hmac_sha256(secret, message))
}

/// Raw HMAC-SHA256 of `message` keyed with `secret`.
pub fn hmac_sha256(secret: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// Lowercase hex MD5 of a request body.
pub fn body_md5(body: &[u8]) -> String {
    hex::encode(Md5::digest(body))
}

/// The text HMAC'd for a request: method, path and the sorted parameters.
/// `params` must already include `auth_key`, `auth_timestamp`,
/// `auth_version` and `body_md5` (when there is a body), and must not include
/// `auth_signature`.
pub fn string_to_sign(method: &str, path: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<(String, &str)> = params
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.as_str()))
        .collect();
    sorted.sort();
    let query: Vec<String> = sorted.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(
        "{}\n{}\n{}",
        method.to_ascii_uppercase(),
        path,
        query.join("&")
    )
}

/// Query parameters of a signed request, `auth_signature` last.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedQuery {
    pub params: Vec<(String, String)>,
}

impl SignedQuery {
    /// The `auth_signature` value.
    pub fn signature(&self) -> &str {
        self.params
            .iter()
            .find(|(k, _)| k == "auth_signature")
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }
}

/// Signs a request: adds the auth parameters (and `body_md5` for a body) to
/// `params` and appends `auth_signature`.
pub fn sign(
    key: &str,
    secret: &str,
    method: &str,
    path: &str,
    params: &[(String, String)],
    body: Option<&[u8]>,
    timestamp: u64,
) -> SignedQuery {
    let mut all: Vec<(String, String)> = params.to_vec();
    all.push(("auth_key".into(), key.into()));
    all.push(("auth_timestamp".into(), timestamp.to_string()));
    all.push(("auth_version".into(), "1.0".into()));
    if let Some(body) = body {
        all.push(("body_md5".into(), body_md5(body)));
    }
    let signature = hmac_sha256_hex(
        secret.as_bytes(),
        string_to_sign(method, path, &all).as_bytes(),
    );
    all.push(("auth_signature".into(), signature));
    SignedQuery { params: all }
}

/// Names a caller may not pass as its own query parameters, because they
/// would collide with the signature's.
pub const RESERVED_PARAMS: [&str; 5] = [
    "auth_key",
    "auth_timestamp",
    "auth_version",
    "auth_signature",
    "body_md5",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_lowercased_and_sorted_values_kept_verbatim() {
        let params = vec![
            ("Name".to_string(), "Something else".to_string()),
            (
                "info".to_string(),
                "user_count,subscription_count".to_string(),
            ),
        ];
        assert_eq!(
            string_to_sign("get", "/apps/1/channels", &params),
            "GET\n/apps/1/channels\ninfo=user_count,subscription_count&name=Something else"
        );
    }

    #[test]
    fn get_without_body_has_no_body_md5() {
        let q = sign("k", "s", "GET", "/p", &[], None, 1);
        assert!(q.params.iter().all(|(k, _)| k != "body_md5"));
        assert_eq!(
            q.params.last().map(|(k, _)| k.as_str()),
            Some("auth_signature")
        );
    }
}
