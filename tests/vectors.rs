//! Every vector in `pusher-vectors.json` (from Pusher's official SDKs and
//! docs) run through this crate's public API, one test case each, named by
//! its kind, index and source so a failure says which SDK disagrees.
//!
//! The file is kept in `tests/data/` so the crate tests on its own; when the
//! shared original sits beside the repository, a case checks the copy is
//! identical.

use libtest_mimic::{Arguments, Failed, Trial};
use pusher_relay::config::parse_master_key;
use pusher_relay::pusher::webhook::{self, WebhookToken};
use pusher_relay::pusher::{auth, crypto, sign};
use serde_json::Value;

const COPY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/pusher-vectors.json"
);
const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/pusher-vectors.json");

fn main() {
    let args = Arguments::from_args();
    let text = std::fs::read_to_string(COPY).expect("tests/data/pusher-vectors.json is readable");
    let vectors: Vec<Value> = serde_json::from_str(&text).expect("vectors are JSON");
    let mut trials: Vec<Trial> = vectors
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let kind = s(&v["kind"]).to_string();
            let source = s(&v["source"]).to_string();
            let name = format!("{kind}#{i:02} [{source}]");
            Trial::test(name, move || {
                check(&kind, &v["inputs"], &v["expected"])
                    .map_err(|e| Failed::from(format!("{kind} from {source}: {e}")))
            })
        })
        .collect();
    trials.push(Trial::test("vectors_copy_matches_shared_original", move || {
        match std::fs::read_to_string(SHARED) {
            Ok(shared) if shared != text => Err("tests/data/pusher-vectors.json differs from ../shared/pusher-vectors.json: copy it again".into()),
            _ => Ok(()),
        }
    }));
    libtest_mimic::run(&args, trials).exit();
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn eq(what: &str, got: &str, want: &str) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}, expected {want:?}"))
    }
}

/// Query parameters as the reference gem renders them: arrays as `k[]=v`,
/// null as an empty value.
fn params(v: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (k, val) in v.as_object().into_iter().flatten() {
        match val {
            Value::Array(items) => {
                out.extend(items.iter().map(|i| (format!("{k}[]"), s(i).to_string())))
            }
            Value::Null => out.push((k.clone(), String::new())),
            other => out.push((k.clone(), s(other).to_string())),
        }
    }
    out
}

fn check(kind: &str, i: &Value, e: &Value) -> Result<(), String> {
    match kind {
        "rest_signature" => {
            let body = i["body"].as_str().map(str::as_bytes);
            let ts = i["auth_timestamp"].as_u64().ok_or("auth_timestamp")?;
            let signed = sign::sign(
                s(&i["key"]),
                s(&i["secret"]),
                s(&i["method"]),
                s(&i["path"]),
                &params(&i["params"]),
                body,
                ts,
            );
            if let Some(md5) = e["body_md5"].as_str() {
                eq("body_md5", &sign::body_md5(body.unwrap_or_default()), md5)?;
            }
            if let Some(want) = e["string_to_sign"].as_str() {
                let unsigned: Vec<_> = signed
                    .params
                    .iter()
                    .filter(|(k, _)| k != "auth_signature")
                    .cloned()
                    .collect();
                eq(
                    "string_to_sign",
                    &sign::string_to_sign(s(&i["method"]), s(&i["path"]), &unsigned),
                    want,
                )?;
            }
            eq(
                "auth_signature",
                signed.signature(),
                s(&e["auth_signature"]),
            )
        }
        "rest_string_to_sign" => {
            for (case, want) in i["cases"]
                .as_array()
                .ok_or("cases")?
                .iter()
                .zip(e.as_array().ok_or("expected")?)
            {
                eq(
                    "string_to_sign",
                    &sign::string_to_sign(s(&i["method"]), s(&i["path"]), &params(&case["params"])),
                    s(want),
                )?;
            }
            Ok(())
        }
        "body_md5" => eq("body_md5", &sign::body_md5(s(&i["body"]).as_bytes()), s(e)),
        "hmac_primitive" => {
            eq(
                "hmac",
                &sign::hmac_sha256_hex(s(&i["secret"]).as_bytes(), s(&i["message"]).as_bytes()),
                s(&e["hmac_sha256_hex"]),
            )?;
            eq(
                "md5",
                &sign::body_md5(s(&i["message"]).as_bytes()),
                s(&e["md5_hex_of_message"]),
            )
        }
        "private_channel_auth" | "presence_channel_auth" | "encrypted_channel_auth" => {
            let master = match i["encryption_master_key_base64"].as_str() {
                Some(b64) => Some(parse_master_key(b64)?.to_vec()),
                None => None,
            };
            let got = auth::authorize_channel(
                s(&i["key"]),
                s(&i["secret"]),
                master.as_deref(),
                s(&i["channel"]),
                s(&i["socket_id"]),
                i["channel_data"].as_str(),
            )
            .map_err(|err| err.to_string())?;
            let want: Value = e.clone();
            let got: Value = serde_json::from_str(&got.to_json()).map_err(|err| err.to_string())?;
            if got == want {
                Ok(())
            } else {
                Err(format!("got {got}, expected {want}"))
            }
        }
        "user_auth" => {
            let got = auth::authenticate_user(
                s(&i["key"]),
                s(&i["secret"]),
                s(&i["socket_id"]),
                s(&i["user_data"]),
            )
            .map_err(|err| err.to_string())?;
            eq("auth", &got.auth, s(&e["auth"]))?;
            eq(
                "user_data",
                got.user_data.as_deref().unwrap_or_default(),
                s(&e["user_data"]),
            )
        }
        "shared_secret" => {
            let key = s(&i["master_key_raw_bytes_ascii"]).as_bytes();
            if let Some(want) = e["shared_secret_base64"].as_str() {
                eq(
                    "shared_secret",
                    &crypto::shared_secret_base64(s(&i["channel"]), key),
                    want,
                )
            } else {
                eq(
                    "shared_secret",
                    &hex::encode(crypto::channel_key(s(&i["channel"]), key)),
                    s(&e["shared_secret_hex"]),
                )
            }
        }
        "master_key_parse" => {
            let keys = i["encryption_master_key_base64"].as_array().ok_or("keys")?;
            for (key, want) in keys.iter().zip(e["results"].as_array().ok_or("results")?) {
                let want = s(want);
                match (parse_master_key(s(key)), want.starts_with("error:")) {
                    (Ok(bytes), false) => {
                        eq("decoded key", &String::from_utf8_lossy(&bytes), want)?
                    }
                    (Err(_), true) => {}
                    (Ok(_), true) => return Err(format!("{key} was accepted, expected {want}")),
                    (Err(err), false) => {
                        return Err(format!("{key} was refused ({err}), expected {want}"))
                    }
                }
            }
            Ok(())
        }
        "secretbox_encrypt" => {
            let nonce: [u8; 24] = s(&i["nonce_raw_bytes_ascii"])
                .as_bytes()
                .try_into()
                .map_err(|_| "nonce is not 24 bytes")?;
            let data = crypto::encrypt_with_nonce(
                s(&i["channel"]),
                s(&i["plaintext"]).as_bytes(),
                s(&i["master_key_raw_bytes_ascii"]).as_bytes(),
                &nonce,
            );
            let got: Value = serde_json::from_str(&data).map_err(|err| err.to_string())?;
            eq("nonce", s(&got["nonce"]), s(&e["nonce"]))?;
            eq("ciphertext", s(&got["ciphertext"]), s(&e["ciphertext"]))?;
            let round = crypto::decrypt(
                s(&i["channel"]),
                &data,
                s(&i["master_key_raw_bytes_ascii"]).as_bytes(),
            )
            .map_err(|err| err.to_string())?;
            eq(
                "round trip",
                &String::from_utf8_lossy(&round),
                s(&i["plaintext"]),
            )
        }
        "secretbox_decrypt" => {
            let plain = crypto::decrypt(
                s(&i["channel"]),
                s(&i["data"]),
                s(&i["master_key_raw_bytes_ascii"]).as_bytes(),
            )
            .map_err(|err| err.to_string())?;
            eq(
                "plaintext",
                &String::from_utf8_lossy(&plain),
                s(&e["plaintext"]),
            )?;
            // Go's TestDecryptInvalidKey: another key must fail.
            match crypto::decrypt(
                s(&i["channel"]),
                s(&i["data"]),
                b"This is an invalid key 32 chars!!",
            ) {
                Err(crypto::CryptoError::Decrypt) => Ok(()),
                other => Err(format!("decrypting with the wrong key gave {other:?}")),
            }
        }
        "webhook_valid" | "webhook_invalid" => {
            let tokens = [WebhookToken {
                key: s(&i["app_key"]),
                secret: s(&i["secret"]),
            }];
            let cases: Vec<&Value> = match i["cases"].as_array() {
                Some(cases) => cases.iter().collect(),
                None => vec![&i["headers"]],
            };
            let wants: Vec<bool> = match &e["valid"] {
                Value::Array(v) => v.iter().map(|b| b.as_bool().unwrap_or(true)).collect(),
                v => vec![v.as_bool().unwrap_or(false)],
            };
            for (case, want) in cases.iter().zip(wants) {
                let got = webhook::verify(
                    &tokens,
                    case["X-Pusher-Key"].as_str(),
                    case["X-Pusher-Signature"].as_str(),
                    s(&i["body"]).as_bytes(),
                    None,
                );
                if got.is_ok() != want {
                    return Err(format!(
                        "headers {case} gave {got:?}, expected valid={want}"
                    ));
                }
                if let (Ok(hook), Some(t)) = (&got, e["time_ms"].as_i64()) {
                    if hook.time_ms != Some(t) {
                        return Err(format!("time_ms {:?}, expected {t}", hook.time_ms));
                    }
                }
            }
            Ok(())
        }
        "webhook_time_window" => {
            let tokens = [WebhookToken {
                key: s(&i["app_key"]),
                secret: s(&i["secret"]),
            }];
            let wants = e["valid"].as_array().ok_or("valid")?;
            for (case, want) in i["cases"].as_array().ok_or("cases")?.iter().zip(wants) {
                let now_ms = case["now_unix_seconds"].as_i64().ok_or("now")? * 1000;
                let got = webhook::verify(
                    &tokens,
                    Some(s(&i["app_key"])),
                    Some(s(&i["signature"])),
                    s(&i["body"]).as_bytes(),
                    Some((now_ms, 300_000)),
                );
                if got.is_ok() != want.as_bool().unwrap_or(false) {
                    return Err(format!("at {now_ms} ms got {got:?}, expected valid={want}"));
                }
            }
            Ok(())
        }
        other => Err(format!(
            "unknown vector kind {other:?}: teach tests/vectors.rs about it"
        )),
    }
}
