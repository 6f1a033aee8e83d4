//! Channel authorisation and user authentication: the JSON an auth endpoint
//! returns to pusher-js (docs/architecture.md, "Auth endpoints"). Computed locally, no request.

use serde::Serialize;

use super::crypto;
use super::sign::hmac_sha256_hex;
use super::validate::{self, ValidationError};

/// Why an auth response could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// Presence channels need `channel_data` with a `user_id`.
    #[error("presence channel {channel:?} needs channel data with a user_id, like {{\"user_id\":\"42\",\"user_info\":{{\"name\":\"Ada\"}}}}")]
    MissingChannelData { channel: String },
    /// `channel_data` / `user_data` is not what Pusher expects.
    #[error("{field} is not valid: {detail}")]
    BadData { field: &'static str, detail: String },
    /// An encrypted channel needs the master key to derive its shared secret.
    #[error("channel {channel:?} is end-to-end encrypted but PUSHER_ENCRYPTION_MASTER_KEY_BASE64 is not set")]
    MissingMasterKey { channel: String },
}

/// The body an auth endpoint answers with. `channel_data` / `user_data` are
/// the exact strings that were signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuthResponse {
    pub auth: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel_data: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_secret: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
}

impl AuthResponse {
    /// The JSON text to send to pusher-js.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("strings always serialise")
    }
}

/// Authorises `socket_id` for `channel`.
///
/// `channel_data` is signed as given (its bytes must match what is returned),
/// and is required for presence channels. Encrypted channels also get the
/// per-channel shared secret, which is not part of the signature.
pub fn authorize_channel(
    key: &str,
    secret: &str,
    master_key: Option<&[u8]>,
    channel: &str,
    socket_id: &str,
    channel_data: Option<&str>,
) -> Result<AuthResponse, AuthError> {
    validate::validate_channel(channel)?;
    validate::validate_socket_id(socket_id)?;
    // Presence needs channel_data; what is inside it is the app's business
    // (the SDKs sign it as given), so its content is checked by callers that
    // build it, like `pusher-relay auth channel`.
    if validate::is_presence_channel(channel) && channel_data.is_none() {
        return Err(AuthError::MissingChannelData {
            channel: channel.to_string(),
        });
    }
    let to_sign = match channel_data {
        Some(data) => format!("{socket_id}:{channel}:{data}"),
        None => format!("{socket_id}:{channel}"),
    };
    let shared_secret = if validate::is_encrypted_channel(channel) {
        let master = master_key.ok_or_else(|| AuthError::MissingMasterKey {
            channel: channel.to_string(),
        })?;
        Some(crypto::shared_secret_base64(channel, master))
    } else {
        None
    };
    Ok(AuthResponse {
        auth: format!(
            "{key}:{}",
            hmac_sha256_hex(secret.as_bytes(), to_sign.as_bytes())
        ),
        channel_data: channel_data.map(str::to_string),
        shared_secret,
        user_data: None,
    })
}

/// Authenticates a user for `pusher:signin`; `user_data` must be a JSON
/// object with a non-empty string `id`.
pub fn authenticate_user(
    key: &str,
    secret: &str,
    socket_id: &str,
    user_data: &str,
) -> Result<AuthResponse, AuthError> {
    validate::validate_socket_id(socket_id)?;
    let parsed: serde_json::Value =
        serde_json::from_str(user_data).map_err(|e| AuthError::BadData {
            field: "user_data",
            detail: format!("not JSON ({e}); expected an object like {{\"id\":\"42\"}}"),
        })?;
    match parsed.get("id") {
        Some(serde_json::Value::String(id)) if !id.is_empty() => {}
        _ => {
            return Err(AuthError::BadData {
                field: "user_data",
                detail: "has no non-empty string \"id\"; expected an object like {\"id\":\"42\"}"
                    .into(),
            })
        }
    }
    let to_sign = format!("{socket_id}::user::{user_data}");
    Ok(AuthResponse {
        auth: format!(
            "{key}:{}",
            hmac_sha256_hex(secret.as_bytes(), to_sign.as_bytes())
        ),
        channel_data: None,
        shared_secret: None,
        user_data: Some(user_data.to_string()),
    })
}

/// Builds presence `channel_data` the way Node and Go do (compact JSON), from
/// a user id and optional user info.
pub fn presence_channel_data(user_id: &str, user_info: Option<&serde_json::Value>) -> String {
    let mut data = serde_json::Map::new();
    data.insert("user_id".into(), user_id.into());
    if let Some(info) = user_info {
        data.insert("user_info".into(), info.clone());
    }
    serde_json::Value::Object(data).to_string()
}

/// Checks presence `channel_data` the way Pusher will: JSON with a `user_id`
/// (string or number) that is a valid user id.
pub fn check_presence_data(data: &str) -> Result<(), AuthError> {
    let parsed: serde_json::Value = serde_json::from_str(data).map_err(|e| AuthError::BadData {
        field: "channel_data",
        detail: format!("not JSON ({e}); expected an object with user_id"),
    })?;
    let user_id = match parsed.get("user_id") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ => {
            return Err(AuthError::BadData {
                field: "channel_data",
                detail: "has no user_id; expected {\"user_id\":\"42\",\"user_info\":{...}}".into(),
            })
        }
    };
    validate::validate_user_id(&user_id)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_without_channel_data_is_refused() {
        let err =
            authorize_channel("k", "s", None, "presence-room", "1.1", None).expect_err("refused");
        assert!(matches!(err, AuthError::MissingChannelData { .. }));
    }

    #[test]
    fn crafted_socket_ids_are_refused() {
        for bad in ["1.1:", ":1.1", ":\n1.1", "1.1\n:"] {
            assert!(
                authorize_channel("k", "s", None, "private-x", bad, None).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn encrypted_channel_without_master_key_is_an_error_not_a_silent_omission() {
        let err = authorize_channel("k", "s", None, "private-encrypted-x", "1.1", None)
            .expect_err("refused");
        assert!(matches!(err, AuthError::MissingMasterKey { .. }));
    }

    #[test]
    fn user_data_needs_a_string_id() {
        assert!(authenticate_user("k", "s", "1.1", "{\"id\":42}").is_err());
        assert!(authenticate_user("k", "s", "1.1", "{\"id\":\"42\"}").is_ok());
    }

    #[test]
    fn presence_channel_data_is_compact() {
        let info = serde_json::json!({"name": "Mr. Pusher"});
        assert_eq!(
            presence_channel_data("10", Some(&info)),
            r#"{"user_id":"10","user_info":{"name":"Mr. Pusher"}}"#
        );
    }
}
