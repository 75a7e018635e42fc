//! Secrets at rest: AES-256-GCM under a configured key, bound to the id of what they
//! belong to (a channel, an integration), with earlier keys accepted for reading so a key
//! rotates without downtime. The sealed form is
//! `version (1) | key id (4) | nonce (12) | ciphertext and tag`.
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use aws_lc_rs::rand::SecureRandom;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};
use uuid::Uuid;

const VERSION: u8 = 1;
const KEY_ID_LEN: usize = 4;
const NONCE_LEN: usize = 12;

struct Key {
    id: [u8; KEY_ID_LEN],
    aead: Aes256Gcm,
}

/// Seals values as JSON and opens them again, under the setting's current key and any
/// previous one.
pub struct Sealer {
    setting: &'static str,
    current: Key,
    previous: Vec<Key>,
}

/// Why a sealed value could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("sealed with a key that is not configured ({0} or its previous keys)")]
    UnknownKey(&'static str),
    #[error("the sealed value is corrupt or belongs to something else")]
    Corrupt,
}

/// The bytes of a base64 key setting, or why not.
pub fn key_bytes(encoded: &str, setting: &str) -> anyhow::Result<Vec<u8>> {
    STANDARD
        .decode(encoded.trim())
        .map_err(|e| anyhow::anyhow!("{setting} is not base64: {e}"))
}

fn key(encoded: &str, setting: &str) -> anyhow::Result<Key> {
    let bytes = key_bytes(encoded, setting)?;
    let aead = Aes256Gcm::new_from_slice(&bytes)
        .map_err(|_| anyhow::anyhow!("{setting} must be 32 bytes, base64-encoded"))?;
    let digest = Sha256::digest([b"ism-credentials-key:".as_slice(), &bytes].concat());
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&digest[..KEY_ID_LEN]);
    Ok(Key { id, aead })
}

impl Sealer {
    /// The sealer of the key setting named `setting`; an invalid key stops the start.
    pub fn new(
        setting: &'static str,
        current: &SecretString,
        previous: &[SecretString],
    ) -> anyhow::Result<Self> {
        Ok(Self {
            setting,
            current: key(current.expose_secret(), setting)?,
            previous: previous
                .iter()
                .map(|k| key(k.expose_secret(), setting))
                .collect::<anyhow::Result<_>>()?,
        })
    }

    /// Encrypts `value` for the owner `owner` with the current key.
    pub fn seal<T: Serialize>(&self, owner: Uuid, value: &T) -> anyhow::Result<Vec<u8>> {
        let plaintext = serde_json::to_vec(value)?;
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| anyhow::anyhow!("no system randomness"))?;
        let ciphertext = self
            .current
            .aead
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &plaintext,
                    aad: owner.as_bytes(),
                },
            )
            .map_err(|_| anyhow::anyhow!("sealing failed"))?;
        let mut sealed = Vec::with_capacity(1 + KEY_ID_LEN + NONCE_LEN + ciphertext.len());
        sealed.push(VERSION);
        sealed.extend_from_slice(&self.current.id);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    /// Decrypts what [`seal`](Self::seal) produced for the same owner.
    pub fn open<T: DeserializeOwned>(&self, owner: Uuid, sealed: &[u8]) -> Result<T, OpenError> {
        let header = 1 + KEY_ID_LEN + NONCE_LEN;
        if sealed.len() < header || sealed[0] != VERSION {
            return Err(OpenError::Corrupt);
        }
        let id = &sealed[1..1 + KEY_ID_LEN];
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == id)
            .ok_or(OpenError::UnknownKey(self.setting))?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&sealed[1 + KEY_ID_LEN..header]);
        let plaintext = key
            .aead
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &sealed[header..],
                    aad: owner.as_bytes(),
                },
            )
            .map_err(|_| OpenError::Corrupt)?;
        serde_json::from_slice(&plaintext).map_err(|_| OpenError::Corrupt)
    }

    /// Whether `sealed` was sealed with the current key (else it should be re-sealed).
    pub fn is_current(&self, sealed: &[u8]) -> bool {
        sealed.get(1..1 + KEY_ID_LEN) == Some(self.current.id.as_slice())
    }
}
