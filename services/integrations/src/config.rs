//! The integrations service's own settings, the `[integrations]` section of `default.toml`.
use std::time::Duration;

use ism_platform::config::Section;
use ism_platform::error::{FieldError, Violations};
use secrecy::SecretString;
use serde::Deserialize;

/// How webhooks are delivered and their secrets kept.
#[derive(Debug, Clone, Deserialize)]
pub struct IntegrationsSettings {
    /// AES-256 key (base64) sealing signing secrets at rest.
    pub secrets_key: SecretString,
    /// Earlier keys, still opened.
    pub secrets_previous_keys: Vec<SecretString>,
    /// Seconds before each attempt of a delivery after the one before failed; the first
    /// entry is the wait before the first attempt.
    pub retry_schedule_seconds: Vec<u64>,
    pub request_timeout_ms: u64,
    pub endpoint_concurrency: usize,
    pub max_in_flight: usize,
    pub lease_seconds: u64,
    pub poll_ms: u64,
    /// How long an ordered endpoint's event waits for earlier events still being taken in.
    pub ordering_window_ms: u64,
    pub breaker_failures: i32,
    pub breaker_rest_seconds: u64,
    pub warn_after_hours: f64,
    pub disable_after_hours: f64,
    pub max_endpoints: i64,
}

impl IntegrationsSettings {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

impl Section for IntegrationsSettings {
    const NAME: &'static str = "integrations";

    fn validate(&self) -> Result<(), Violations> {
        let mut violations = Violations::new();
        if self.retry_schedule_seconds.is_empty() || self.retry_schedule_seconds.len() > 20 {
            violations.push(FieldError::new(
                "retry_schedule_seconds",
                "must list 1 to 20 waits",
            ));
        }
        if !(100..=120_000).contains(&self.request_timeout_ms) {
            violations.push(FieldError::new(
                "request_timeout_ms",
                "must be 100 to 120000",
            ));
        }
        if self.lease_seconds * 1000 <= self.request_timeout_ms {
            violations.push(FieldError::new(
                "lease_seconds",
                "must be longer than request_timeout_ms",
            ));
        }
        if self.endpoint_concurrency == 0 || self.max_in_flight < self.endpoint_concurrency {
            violations.push(FieldError::new(
                "max_in_flight",
                "endpoint_concurrency must be at least 1 and max_in_flight at least endpoint_concurrency",
            ));
        }
        if self.poll_ms < 10 {
            violations.push(FieldError::new("poll_ms", "must be at least 10"));
        }
        if self.breaker_failures < 1 {
            violations.push(FieldError::new("breaker_failures", "must be at least 1"));
        }
        if !(self.warn_after_hours > 0.0 && self.disable_after_hours > self.warn_after_hours) {
            violations.push(FieldError::new(
                "disable_after_hours",
                "warn_after_hours must be above 0 and disable_after_hours above it",
            ));
        }
        if self.max_endpoints < 1 {
            violations.push(FieldError::new("max_endpoints", "must be at least 1"));
        }
        violations.into_result()
    }
}
