//! The gateway's own settings, the `[gateway]` section of `default.toml`.
use std::collections::BTreeMap;

use ism_platform::config::Section;
use ism_platform::error::{FieldError, Violations};
use secrecy::SecretString;
use serde::Deserialize;

use crate::providers::Kind;

#[derive(Debug, Clone, Deserialize)]
pub struct GatewaySettings {
    pub http_port: u16,
    pub public_url: String,
    pub body_limit_bytes: usize,
    /// How long a webhook client may take to send a request's headers.
    pub http_header_timeout_ms: u64,
    /// How long a webhook request may take to be read and answered (408 after).
    pub http_request_timeout_ms: u64,
    /// Webhook connections served at once per gateway process.
    pub http_max_connections: u32,
    pub delivery_timeout_ms: u64,
    /// How long after it was asked for a delivery that keeps failing for a passing
    /// reason is retried before it fails for good.
    pub delivery_retry_for_seconds: u64,
    /// Per channel type (`custom`, `whatsapp`...), the retry time of its deliveries in
    /// place of `delivery_retry_for_seconds`.
    #[serde(default)]
    pub delivery_retry_for_seconds_by_type: BTreeMap<String, u64>,
    pub delivery_retry_base_ms: u64,
    pub delivery_concurrency: usize,
    /// How long a webhook may use a channel's row and credentials read earlier.
    pub channel_cache_ms: u64,
    /// Base64 of the 32-byte AES-256-GCM key sealing channel credentials.
    pub credentials_key: SecretString,
    /// Earlier keys, still accepted for reading during a rotation.
    #[serde(default)]
    pub credentials_previous_keys: Vec<SecretString>,
}

impl GatewaySettings {
    /// How long a delivery on a channel of `kind` is retried after it was asked for.
    pub fn retry_for_seconds(&self, kind: Kind) -> u64 {
        self.delivery_retry_for_seconds_by_type
            .get(kind.as_str())
            .copied()
            .unwrap_or(self.delivery_retry_for_seconds)
    }
}

impl Section for GatewaySettings {
    const NAME: &'static str = "gateway";

    fn validate(&self) -> Result<(), Violations> {
        let mut violations = Violations::new();
        let mut at_least = |key: &'static str, value: u64, least: u64| {
            if value < least {
                violations.push(FieldError::new(key, format!("must be at least {least}")));
            }
        };
        at_least("body_limit_bytes", self.body_limit_bytes as u64, 1024);
        at_least("http_header_timeout_ms", self.http_header_timeout_ms, 100);
        at_least("http_request_timeout_ms", self.http_request_timeout_ms, 100);
        at_least("http_max_connections", self.http_max_connections.into(), 1);
        at_least("delivery_timeout_ms", self.delivery_timeout_ms, 100);
        at_least(
            "delivery_retry_for_seconds",
            self.delivery_retry_for_seconds,
            1,
        );
        at_least("delivery_concurrency", self.delivery_concurrency as u64, 1);
        for seconds in self.delivery_retry_for_seconds_by_type.values() {
            at_least("delivery_retry_for_seconds_by_type", *seconds, 1);
        }
        let unknown: Vec<&str> = self
            .delivery_retry_for_seconds_by_type
            .keys()
            .map(String::as_str)
            .filter(|kind| Kind::parse(kind).is_none())
            .collect();
        if !unknown.is_empty() {
            violations.push(FieldError::new(
                "delivery_retry_for_seconds_by_type",
                format!(
                    "{} is not a channel type; use {}",
                    unknown.join(", "),
                    Kind::ALL.map(Kind::as_str).join(", ")
                ),
            ));
        }
        let public = url::Url::parse(&self.public_url);
        if !public.is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
            violations.push(FieldError::new(
                "public_url",
                "must be the http(s) URL providers reach the gateway at",
            ));
        }
        violations.into_result()
    }
}

#[cfg(test)]
mod tests {
    use ism_platform::config::Settings;

    use super::*;

    #[test]
    fn the_defaults_pass_and_bad_values_are_named_together() {
        let mut config: GatewaySettings = Settings::load().unwrap().section().unwrap();
        config.delivery_concurrency = 0;
        config.public_url = "gateway.example.com".into();
        config.body_limit_bytes = 10;
        let refused = config.validate().unwrap_err().to_string();
        assert_eq!(
            refused,
            "body_limit_bytes: must be at least 1024; delivery_concurrency: must be at least 1; \
             public_url: must be the http(s) URL providers reach the gateway at"
        );
    }

    #[test]
    fn a_channel_type_may_have_its_own_retry_time() {
        let mut config: GatewaySettings = Settings::load().unwrap().section().unwrap();
        assert_eq!(config.retry_for_seconds(Kind::Custom), 3600);
        assert_eq!(
            config.retry_for_seconds(Kind::Telegram),
            config.delivery_retry_for_seconds
        );
        config
            .delivery_retry_for_seconds_by_type
            .insert("fax".into(), 0);
        let refused = config.validate().unwrap_err().to_string();
        assert!(
            refused.starts_with(
                "delivery_retry_for_seconds_by_type: must be at least 1; \
                 delivery_retry_for_seconds_by_type: fax is not a channel type; use custom, "
            ),
            "{refused}"
        );
    }
}
