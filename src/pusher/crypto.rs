//! End-to-end encryption for `private-encrypted-` channels
//! (docs/architecture.md, "End-to-end encryption"): NaCl secretbox keyed
//! with SHA256(channel ‖ master key).
//!
//! What is encrypted is the event's `data` text exactly as it would be sent
//! unencrypted (the JSON text), which is what Node and PHP do; pusher-js
//! decrypts and parses it as it would a plain event.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::{Key, Nonce, XSalsa20Poly1305};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Why an encrypted payload could not be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    #[error("encrypted data is not {{\"nonce\",\"ciphertext\"}} JSON: {0}")]
    Format(String),
    #[error("failed to decrypt event, possibly wrong key")]
    Decrypt,
}

/// The per-channel key: SHA256(channel name bytes ‖ master key bytes).
pub fn channel_key(channel: &str, master_key: &[u8]) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(channel.as_bytes());
    hash.update(master_key);
    hash.finalize().into()
}

/// The `shared_secret` an auth endpoint returns for an encrypted channel.
pub fn shared_secret_base64(channel: &str, master_key: &[u8]) -> String {
    STANDARD.encode(channel_key(channel, master_key))
}

/// The wire form of encrypted `data`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedData {
    pub nonce: String,
    pub ciphertext: String,
}

/// Encrypts `plaintext` for `channel` with a fresh random nonce; returns the
/// JSON text sent as the event's `data`.
pub fn encrypt(channel: &str, plaintext: &[u8], master_key: &[u8]) -> String {
    let mut nonce = [0u8; 24];
    rand::thread_rng().fill_bytes(&mut nonce);
    encrypt_with_nonce(channel, plaintext, master_key, &nonce)
}

/// [`encrypt`] with a given nonce; public so test vectors can pin it.
pub fn encrypt_with_nonce(
    channel: &str,
    plaintext: &[u8],
    master_key: &[u8],
    nonce: &[u8; 24],
) -> String {
    let key = channel_key(channel, master_key);
    let cipher = XSalsa20Poly1305::new(Key::from_slice(&key));
    // Encryption only fails for plaintexts beyond the cipher's 256 GiB limit.
    let sealed = cipher
        .encrypt(Nonce::from_slice(nonce), plaintext)
        .expect("secretbox encrypts any event-sized input");
    let data = EncryptedData {
        nonce: STANDARD.encode(nonce),
        ciphertext: STANDARD.encode(sealed),
    };
    serde_json::to_string(&data).expect("strings always serialise")
}

/// Decrypts encrypted `data` (as in a webhook's client event) for `channel`.
pub fn decrypt(channel: &str, data: &str, master_key: &[u8]) -> Result<Vec<u8>, CryptoError> {
    let parsed: EncryptedData =
        serde_json::from_str(data).map_err(|e| CryptoError::Format(e.to_string()))?;
    let nonce = STANDARD
        .decode(&parsed.nonce)
        .map_err(|e| CryptoError::Format(format!("nonce: {e}")))?;
    let nonce: [u8; 24] = nonce
        .try_into()
        .map_err(|_| CryptoError::Format("nonce is not 24 bytes".into()))?;
    let sealed = STANDARD
        .decode(&parsed.ciphertext)
        .map_err(|e| CryptoError::Format(format!("ciphertext: {e}")))?;
    let key = channel_key(channel, master_key);
    XSalsa20Poly1305::new(Key::from_slice(&key))
        .decrypt(Nonce::from_slice(&nonce), sealed.as_slice())
        .map_err(|_| CryptoError::Decrypt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_random_nonce() {
        let key = [7u8; 32];
        let data = encrypt("private-encrypted-x", b"{\"a\":1}", &key);
        assert_eq!(
            decrypt("private-encrypted-x", &data, &key),
            Ok(b"{\"a\":1}".to_vec())
        );
        assert_eq!(
            decrypt("private-encrypted-y", &data, &key),
            Err(CryptoError::Decrypt)
        );
    }

    #[test]
    fn two_encryptions_use_different_nonces() {
        let key = [7u8; 32];
        assert_ne!(encrypt("c", b"x", &key), encrypt("c", b"x", &key));
    }
}
