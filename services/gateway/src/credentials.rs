//! Channel credentials and their encryption at rest (`ism_platform::sealing`) under
//! `gateway.credentials_key`, bound to the channel id.
use std::fmt;

use crate::config::GatewaySettings;
use hmac::{Hmac, Mac};
pub use ism_platform::sealing::OpenError;
use ism_platform::sealing::{self, Sealer};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

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

/// Seals and opens channel credentials under `gateway.credentials_key`, bound to the
/// channel id (see [`Sealer`]).
pub struct Cipher(Sealer);

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
            let bytes = sealing::key_bytes(encoded, "gateway.credentials_key")?;
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
        Sealer::new(
            "gateway.credentials_key",
            &settings.credentials_key,
            &settings.credentials_previous_keys,
        )
        .map(Self)
    }

    /// Encrypts `credentials` for the channel `channel_id` with the current key.
    pub fn seal(
        &self,
        channel_id: uuid::Uuid,
        credentials: &Credentials,
    ) -> anyhow::Result<Vec<u8>> {
        self.0.seal(channel_id, credentials)
    }

    /// Decrypts what [`seal`](Self::seal) produced for the same channel.
    pub fn open(&self, channel_id: uuid::Uuid, sealed: &[u8]) -> Result<Credentials, OpenError> {
        self.0.open(channel_id, sealed)
    }

    /// Whether `sealed` was sealed with the current key (else it should be re-sealed).
    pub fn is_current(&self, sealed: &[u8]) -> bool {
        self.0.is_current(sealed)
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
            Err(OpenError::UnknownKey(_))
        ));
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert!(Cipher::from_settings(&settings("c2hvcnQ=", &[])).is_err());
        assert!(Cipher::from_settings(&settings("not base64!", &[])).is_err());
        assert!(format!("{:?}", viber()).contains("redacted"));
    }
}
