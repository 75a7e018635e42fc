//! The workspaces service's own settings, the `[workspaces]` section of `default.toml`.
use ism_platform::config::Section;
use ism_platform::error::{FieldError, Violations};
use secrecy::SecretString;
use serde::Deserialize;

/// Limits on the calls that need no token, and the key sealing stored signing keys.
#[derive(Debug, Clone, Deserialize)]
pub struct WorkspacesSettings {
    /// Calls needing no token one source address may make per second.
    pub public_calls_per_second: f64,
    /// Such calls one source address may make at once above that rate.
    pub public_call_burst: u32,
    /// Wrong credentials one source address, one API key or one service name may present
    /// per minute once its burst is spent.
    pub credential_failures_per_minute: f64,
    /// Wrong credentials one source address, API key or service name may present at once.
    pub credential_failure_burst: u32,
    /// Base64 of the 32-byte AES-256-GCM key sealing the stored token-signing keys.
    pub signing_key_seal_key: SecretString,
    /// Earlier seal keys, still accepted for reading during a rotation.
    #[serde(default)]
    pub signing_key_seal_previous_keys: Vec<SecretString>,
}

impl Section for WorkspacesSettings {
    const NAME: &'static str = "workspaces";

    fn validate(&self) -> Result<(), Violations> {
        let mut v = Violations::new();
        if self.public_calls_per_second.is_nan() || self.public_calls_per_second <= 0.0 {
            v.push(FieldError::new(
                "public_calls_per_second",
                "must be above 0",
            ));
        }
        if self.public_call_burst < 1 {
            v.push(FieldError::new("public_call_burst", "must be at least 1"));
        }
        if self.credential_failures_per_minute.is_nan()
            || self.credential_failures_per_minute <= 0.0
        {
            v.push(FieldError::new(
                "credential_failures_per_minute",
                "must be above 0",
            ));
        }
        if self.credential_failure_burst < 1 {
            v.push(FieldError::new(
                "credential_failure_burst",
                "must be at least 1",
            ));
        }
        v.into_result()
    }
}
