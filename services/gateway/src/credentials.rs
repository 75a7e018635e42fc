//! Channel credentials and their encryption at rest: AES-256-GCM under
//! `gateway.credentials_key`, bound to the channel id, with earlier keys accepted for
//! reading so a key can be rotated without downtime.
use std::fmt;

use crate::config::GatewaySettings;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use aws_lc_rs::rand::SecureRandom;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The secrets of one channel, by provider. Never logged: `Debug` shows only the kind.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Credentials {
    Custom {
        webhook_secret: String,
    },
    /// Messenger and Instagram.
    Meta {
        account_id: String,
        access_token: String,
        app_secret: String,
        verify_token: String,
    },
    WhatsApp {
        phone_number_id: String,
        access_token: String,
        app_secret: String,
        verify_token: String,
    },
    Telegram {
        bot_token: String,
        /// Ours, given to Telegram in setWebhook; it comes back in every webhook.
        secret_token: String,
    },
    /// Twilio SMS and Twilio WhatsApp.
    Twilio {
        account_sid: String,
        auth_token: String,
        from: String,
    },
    Line {
        channel_secret: String,
        channel_access_token: String,
    },
    Viber {
        auth_token: String,
    },
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            Credentials::Custom { .. } => "custom",
            Credentials::Meta { .. } => "meta",
            Credentials::WhatsApp { .. } => "whatsapp",
            Credentials::Telegram { .. } => "telegram",
            Credentials::Twilio { .. } => "twilio",
            Credentials::Line { .. } => "line",
            Credentials::Viber { .. } => "viber",
        };
        write!(f, "Credentials({kind}, redacted)")
    }
}

const VERSION: u8 = 1;
const KEY_ID_LEN: usize = 4;
const NONCE_LEN: usize = 12;

struct Key {
    id: [u8; KEY_ID_LEN],
    aead: Aes256Gcm,
}

/// Seals and opens credentials. The sealed form is
/// `version (1) | key id (4) | nonce (12) | ciphertext and tag`.
pub struct Cipher {
    current: Key,
    previous: Vec<Key>,
}

/// Why sealed credentials could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "sealed with a key that is not configured (gateway.credentials_key or credentials_previous_keys)"
    )]
    UnknownKey,
    #[error("the credentials are corrupt or belong to another channel")]
    Corrupt,
}

fn key_bytes(encoded: &str, name: &str) -> anyhow::Result<Vec<u8>> {
    STANDARD
        .decode(encoded.trim())
        .map_err(|e| anyhow::anyhow!("{name} is not base64: {e}"))
}

fn key(encoded: &str, name: &str) -> anyhow::Result<Key> {
    let bytes = key_bytes(encoded, name)?;
    let aead = Aes256Gcm::new_from_slice(&bytes)
        .map_err(|_| anyhow::anyhow!("{name} must be 32 bytes, base64-encoded"))?;
    let digest = Sha256::digest([b"ism-credentials-key:".as_slice(), &bytes].concat());
    let mut id = [0u8; KEY_ID_LEN];
    id.copy_from_slice(&digest[..KEY_ID_LEN]);
    Ok(Key { id, aead })
}

/// Keys for `purpose`, derived from the configured credentials keys (HMAC-SHA256 of the
/// purpose under each), the current one first: they rotate with the credentials key and
/// an earlier one stays valid while it is listed in `credentials_previous_keys`.
pub fn derived_keys(settings: &GatewaySettings, purpose: &str) -> anyhow::Result<Vec<[u8; 32]>> {
    std::iter::once(settings.credentials_key.expose_secret())
        .chain(
            settings
                .credentials_previous_keys
                .iter()
                .map(|k| k.expose_secret()),
        )
        .map(|encoded| {
            let bytes = key_bytes(encoded, "gateway.credentials_key")?;
            let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(&bytes)
                .map_err(|_| anyhow::anyhow!("an HMAC key of any length is accepted"))?;
            mac.update(purpose.as_bytes());
            Ok(mac.finalize().into_bytes().into())
        })
        .collect()
}

impl Cipher {
    /// The cipher configured in `settings`; an invalid key stops the start.
    pub fn from_settings(settings: &GatewaySettings) -> anyhow::Result<Self> {
        let current = key(
            settings.credentials_key.expose_secret(),
            "gateway.credentials_key",
        )?;
        let previous = settings
            .credentials_previous_keys
            .iter()
            .map(|k| key(k.expose_secret(), "gateway.credentials_previous_keys"))
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { current, previous })
    }

    /// Encrypts `credentials` for the channel `channel_id` with the current key.
    pub fn seal(
        &self,
        channel_id: uuid::Uuid,
        credentials: &Credentials,
    ) -> anyhow::Result<Vec<u8>> {
        let plaintext = serde_json::to_vec(credentials)?;
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
                    aad: channel_id.as_bytes(),
                },
            )
            .map_err(|_| anyhow::anyhow!("sealing credentials failed"))?;
        let mut sealed = Vec::with_capacity(1 + KEY_ID_LEN + NONCE_LEN + ciphertext.len());
        sealed.push(VERSION);
        sealed.extend_from_slice(&self.current.id);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        Ok(sealed)
    }

    /// Decrypts what [`seal`](Self::seal) produced for the same channel.
    pub fn open(&self, channel_id: uuid::Uuid, sealed: &[u8]) -> Result<Credentials, OpenError> {
        let header = 1 + KEY_ID_LEN + NONCE_LEN;
        if sealed.len() < header || sealed[0] != VERSION {
            return Err(OpenError::Corrupt);
        }
        let id = &sealed[1..1 + KEY_ID_LEN];
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|k| k.id == id)
            .ok_or(OpenError::UnknownKey)?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&sealed[1 + KEY_ID_LEN..header]);
        let plaintext = key
            .aead
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &sealed[header..],
                    aad: channel_id.as_bytes(),
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

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn settings(current: &str, previous: &[&str]) -> GatewaySettings {
        let defaults: GatewaySettings = ism_platform::config::Settings::load()
            .unwrap()
            .section()
            .unwrap();
        GatewaySettings {
            credentials_key: SecretString::from(current),
            credentials_previous_keys: previous.iter().map(|k| SecretString::from(*k)).collect(),
            ..defaults
        }
    }

    const A: &str = "ZGV2LW9ubHktY3JlZGVudGlhbHMta2V5LWNoYW5nZSE=";
    const B: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn viber() -> Credentials {
        Credentials::Viber {
            auth_token: "445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9".into(),
        }
    }

    #[test]
    fn sealed_credentials_open_only_for_their_channel() {
        let cipher = Cipher::from_settings(&settings(A, &[])).unwrap();
        let (id, other) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
        let sealed = cipher.seal(id, &viber()).unwrap();
        assert!(!sealed.windows(8).any(|w| w == b"445da6az"), "not in clear");
        assert_eq!(cipher.open(id, &sealed).unwrap(), viber());
        assert!(matches!(
            cipher.open(other, &sealed),
            Err(OpenError::Corrupt)
        ));
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(matches!(
            cipher.open(id, &tampered),
            Err(OpenError::Corrupt)
        ));
        assert!(matches!(cipher.open(id, b"x"), Err(OpenError::Corrupt)));
    }

    #[test]
    fn a_rotated_key_still_opens_old_credentials_which_are_then_not_current() {
        let old = Cipher::from_settings(&settings(A, &[])).unwrap();
        let id = uuid::Uuid::now_v7();
        let sealed = old.seal(id, &viber()).unwrap();
        let rotated = Cipher::from_settings(&settings(B, &[A])).unwrap();
        assert_eq!(rotated.open(id, &sealed).unwrap(), viber());
        assert!(!rotated.is_current(&sealed));
        assert!(rotated.is_current(&rotated.seal(id, &viber()).unwrap()));
        let forgotten = Cipher::from_settings(&settings(B, &[])).unwrap();
        assert!(matches!(
            forgotten.open(id, &sealed),
            Err(OpenError::UnknownKey)
        ));
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert!(Cipher::from_settings(&settings("c2hvcnQ=", &[])).is_err());
        assert!(Cipher::from_settings(&settings("not base64!", &[])).is_err());
        assert!(format!("{:?}", viber()).contains("redacted"));
    }
}
