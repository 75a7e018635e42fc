//! Typed settings: `config/default.toml` (every key documented there), overridden by
//! `ISM_<SECTION>__<KEY>` environment variables.
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::error::Violations;

/// The documented defaults, embedded so the binary runs without any file.
pub const DEFAULTS: &str = include_str!("../config/default.toml");

/// One of the seven services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceName {
    Workspaces,
    Gateway,
    Contacts,
    Conversations,
    Broadcasts,
    Workflows,
    Integrations,
}

impl ServiceName {
    /// Every service, in start order (token issuer first, callers after callees).
    pub const ALL: [ServiceName; 7] = [
        ServiceName::Workspaces,
        ServiceName::Contacts,
        ServiceName::Gateway,
        ServiceName::Conversations,
        ServiceName::Broadcasts,
        ServiceName::Workflows,
        ServiceName::Integrations,
    ];

    /// The lowercase name used in config keys, database names, queues and routing keys.
    pub const fn as_str(self) -> &'static str {
        match self {
            ServiceName::Workspaces => "workspaces",
            ServiceName::Gateway => "gateway",
            ServiceName::Contacts => "contacts",
            ServiceName::Conversations => "conversations",
            ServiceName::Broadcasts => "broadcasts",
            ServiceName::Workflows => "workflows",
            ServiceName::Integrations => "integrations",
        }
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ServiceName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ServiceName::ALL
            .into_iter()
            .find(|n| n.as_str() == s)
            .ok_or_else(|| format!("unknown service {s:?}; expected one of workspaces, gateway, contacts, conversations, broadcasts, workflows, integrations"))
    }
}

/// Where the platform runs: a development machine, where the published secrets of
/// `default.toml` are fine, or a deployment, where they are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Development,
    Production,
}

/// The keys whose default in `default.toml` is a published development secret.
const PUBLIC_SECRETS: [&str; 4] = [
    "auth.service_secret",
    "workspaces.signing_key_seal_key",
    "gateway.credentials_key",
    "integrations.secrets_key",
];

/// The keys holding secrets (a table or a list holds them in each entry).
const SECRET_KEYS: [&str; 12] = [
    "database.url",
    "database.urls",
    "redis.url",
    "amqp.url",
    "auth.service_secret",
    "auth.signing_key_pem",
    "workspaces.signing_key_seal_key",
    "workspaces.signing_key_seal_previous_keys",
    "gateway.credentials_key",
    "gateway.credentials_previous_keys",
    "integrations.secrets_key",
    "integrations.secrets_previous_keys",
];

/// Masks a secret: a URL keeps all but its password, anything else becomes `********`.
fn mask(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Array(items) => items.iter_mut().for_each(mask),
        serde_json::Value::Object(entries) => entries.values_mut().for_each(mask),
        serde_json::Value::String(text) if !text.is_empty() => {
            *text = match url::Url::parse(text) {
                Ok(mut url) if url.has_host() => {
                    if url.password().is_some() {
                        let _ = url.set_password(Some("********"));
                    }
                    url.to_string()
                }
                _ => "********".to_owned(),
            };
        }
        _ => {}
    }
}

/// All settings of the platform; each service reads the sections it needs.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    pub mode: Mode,
    pub database: DatabaseSettings,
    pub redis: RedisSettings,
    pub amqp: AmqpSettings,
    pub telemetry: TelemetrySettings,
    pub grpc: GrpcSettings,
    pub shutdown: ShutdownSettings,
    pub health: HealthSettings,
    pub auth: AuthSettings,
    pub rate_limit: RateLimitSettings,
    pub services: BTreeMap<ServiceName, ServiceEndpoint>,
    /// The layered sources, from which each service reads its own [`Section`].
    #[serde(skip, default = "Settings::figment")]
    figment: Figment,
}

/// A service's own section of the settings (`[gateway]`, `[conversations]`): its type
/// lives in the service that reads it, its documented defaults in `default.toml` with
/// the rest, and `ISM_<NAME>__<KEY>` overrides it like any other key.
pub trait Section: serde::de::DeserializeOwned {
    /// The section's name.
    const NAME: &'static str;

    /// Every value the types alone let through but the service cannot run with; checked
    /// at start, before anything is served.
    fn validate(&self) -> Result<(), Violations> {
        Ok(())
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct DatabaseSettings {
    pub url: SecretString,
    pub name_prefix: String,
    #[serde(default)]
    pub urls: BTreeMap<ServiceName, SecretString>,
    pub max_connections: u32,
    pub acquire_timeout_ms: u64,
}

impl DatabaseSettings {
    /// The URL of `service`'s own database.
    pub fn url_for(&self, service: ServiceName) -> anyhow::Result<String> {
        if let Some(url) = self.urls.get(&service) {
            return Ok(url.expose_secret().to_owned());
        }
        let mut url = url::Url::parse(self.url.expose_secret())
            .map_err(|e| anyhow::anyhow!("database.url is not a URL: {e}"))?;
        url.set_path(&format!("/{}_{}", self.name_prefix, service));
        Ok(url.to_string())
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct RedisSettings {
    pub url: SecretString,
    pub key_prefix: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AmqpSettings {
    pub url: SecretString,
    pub exchange: String,
    pub queue_prefix: String,
    pub prefetch: u16,
    /// How long an event whose handling fails for a passing reason (a peer, the database
    /// or the broker unavailable) keeps being retried before it is dead-lettered.
    pub retry_for_seconds: u64,
    /// First retry delay; doubles per attempt up to `retry_max_delay_ms`, with jitter.
    pub retry_base_ms: u64,
    /// Longest wait between two retries of an event.
    pub retry_max_delay_ms: u64,
    pub relay_batch: i64,
    pub consumer_lanes: usize,
    pub queue_type: QueueType,
}

/// How RabbitMQ keeps a consumer queue (ADR 22).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum QueueType {
    /// Replicated by Raft over the cluster's nodes: survives losing a minority of them.
    Quorum,
    /// On one node: lost with that node's disk.
    Classic,
}

impl QueueType {
    /// The `x-queue-type` argument.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueType::Quorum => "quorum",
            QueueType::Classic => "classic",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct TelemetrySettings {
    pub log_filter: String,
    pub log_format: LogFormat,
    pub otlp_endpoint: String,
    /// The share of new traces recorded and exported, from 0 to 1; a trace a caller
    /// started follows the caller's decision.
    pub sampling_ratio: f64,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Json,
    Pretty,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GrpcSettings {
    pub host: String,
    pub request_timeout_ms: u64,
    /// Longest a call to another service made outside a request (an event handler, a
    /// job) may take; within a request, what is left of the caller's deadline.
    pub peer_timeout_ms: u64,
    pub concurrency_limit: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ShutdownSettings {
    /// After SIGTERM, how long the process keeps serving and working as before, with
    /// readiness NOT_SERVING, while load balancers and peers stop sending calls here.
    pub propagation_seconds: u64,
    /// Then, how long work and calls in flight may take to finish.
    pub drain_seconds: u64,
}

/// How readiness follows a service's dependencies (see [`crate::health`]).
#[derive(Debug, Clone, Deserialize)]
pub struct HealthSettings {
    /// How often the database and the broker are checked.
    pub check_interval_ms: u64,
    /// A check not answered within this long counts as a failure.
    pub check_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct AuthSettings {
    pub service_secret: SecretString,
    pub signing_key_pem: SecretString,
    pub token_ttl_seconds: u64,
    pub public_key_refresh_seconds: u64,
}

/// Per-workspace limits on the gRPC APIs (see [`crate::ratelimit`]).
#[derive(Debug, Clone, Deserialize)]
pub struct RateLimitSettings {
    pub enabled: bool,
    /// Sustained calls per second one Workspace may make to one service.
    pub requests_per_second: f64,
    /// Calls a Workspace may make at once above the sustained rate.
    pub burst: u32,
    /// Redis answers slower than this let the call through.
    pub redis_timeout_ms: u64,
}

/// Where a service listens and how the others reach it.
#[derive(Debug, Clone, Deserialize)]
pub struct ServiceEndpoint {
    pub grpc_port: u16,
    pub metrics_port: u16,
    pub endpoint: String,
}

impl Settings {
    /// Defaults, then `ISM_*` environment variables.
    pub fn load() -> anyhow::Result<Self> {
        Self::figment()
            .extract()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))
    }

    /// The service's own section `S`, checked: an error naming every bad key of it stops
    /// the start.
    pub fn section<S: Section>(&self) -> anyhow::Result<S> {
        let section: S = self
            .figment
            .extract_inner(S::NAME)
            .map_err(|e| anyhow::anyhow!("invalid configuration of [{}]: {e}", S::NAME))?;
        section
            .validate()
            .map_err(|e| anyhow::anyhow!("invalid configuration of [{}]: {e}", S::NAME))?;
        Ok(section)
    }

    /// In production mode, an error naming every key still set to its published
    /// development secret (and the variable that sets it).
    pub fn refuse_public_secrets(&self) -> anyhow::Result<()> {
        if self.mode != Mode::Production {
            return Ok(());
        }
        let defaults = Figment::from(Toml::string(DEFAULTS));
        let value = |figment: &Figment, key: &str| {
            figment
                .find_value(key)
                .ok()
                .and_then(|value| value.into_string())
        };
        let public: Vec<String> = PUBLIC_SECRETS
            .into_iter()
            .filter(|key| value(&self.figment, key) == value(&defaults, key))
            .map(|key| format!("{key} (ISM_{})", key.to_uppercase().replace('.', "__")))
            .collect();
        anyhow::ensure!(
            public.is_empty(),
            "production mode refuses the published development secrets of the built-in defaults; set your own: {}",
            public.join(", ")
        );
        Ok(())
    }

    /// The configuration in effect (defaults, then `ISM_*` variables) as JSON, every
    /// secret masked: whole values, and the password of connection URLs.
    pub fn effective(&self) -> anyhow::Result<String> {
        let mut settings: serde_json::Value = self
            .figment
            .extract()
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        for key in SECRET_KEYS {
            let pointer = format!("/{}", key.replace('.', "/"));
            if let Some(value) = settings.pointer_mut(&pointer) {
                mask(value);
            }
        }
        Ok(serde_json::to_string_pretty(&settings)?)
    }

    /// The layered sources, for callers that add their own overrides (tests).
    pub fn figment() -> Figment {
        Figment::new()
            .merge(Toml::string(DEFAULTS))
            .merge(Env::prefixed("ISM_").split("__"))
    }

    /// The listen and reach settings of `service`.
    pub fn service(&self, service: ServiceName) -> &ServiceEndpoint {
        // Every service has a section in the embedded defaults.
        &self.services[&service]
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_effective_configuration_shows_overrides_and_masks_every_secret() {
        let figment = Figment::new()
            .merge(Toml::string(DEFAULTS))
            .merge(("database.max_connections", 42))
            .merge(("auth.service_secret", "s3cret-of-the-service"))
            .merge(("database.urls.contacts", "postgres://u:hunter2@db/contacts"))
            .merge(("gateway.credentials_previous_keys", vec!["b2xkLWtleQ=="]));
        let mut settings: Settings = figment.clone().extract().unwrap();
        settings.figment = figment;
        let shown = settings.effective().unwrap();
        let value: serde_json::Value = serde_json::from_str(&shown).unwrap();
        assert_eq!(value["database"]["max_connections"], 42);
        assert_eq!(
            value["database"]["urls"]["contacts"],
            "postgres://u:********@db/contacts"
        );
        assert_eq!(
            value["database"]["url"],
            "postgres://ism:********@127.0.0.1:5432/postgres"
        );
        assert_eq!(
            value["amqp"]["url"],
            "amqp://guest:********@127.0.0.1:5672/%2f"
        );
        assert_eq!(value["auth"]["service_secret"], "********");
        assert_eq!(value["gateway"]["credentials_previous_keys"][0], "********");
        for secret in [
            "s3cret",
            "hunter2",
            "b2xkLWtleQ",
            "ZGV2LW9ubHk",
            ":ism@",
            "guest@",
        ] {
            assert!(!shown.contains(secret), "{secret} shown in {shown}");
        }
    }

    #[test]
    fn production_mode_names_each_published_secret_left_in_place() {
        let with = |pairs: &[(&str, &str)]| {
            let mut figment = Figment::new().merge(Toml::string(DEFAULTS));
            for (key, value) in pairs {
                figment = figment.merge((*key, *value));
            }
            let mut settings: Settings = figment.extract().unwrap();
            settings.figment = figment;
            settings.refuse_public_secrets()
        };
        assert!(with(&[]).is_ok(), "development mode takes the defaults");
        let refused = with(&[("mode", "production"), ("gateway.credentials_key", "b3du")])
            .unwrap_err()
            .to_string();
        for key in [
            "auth.service_secret (ISM_AUTH__SERVICE_SECRET)",
            "workspaces.signing_key_seal_key (ISM_WORKSPACES__SIGNING_KEY_SEAL_KEY)",
            "integrations.secrets_key (ISM_INTEGRATIONS__SECRETS_KEY)",
        ] {
            assert!(refused.contains(key), "{refused}");
        }
        assert!(!refused.contains("gateway.credentials_key"), "{refused}");
        let own = [
            ("mode", "production"),
            ("auth.service_secret", "own"),
            ("workspaces.signing_key_seal_key", "own"),
            ("gateway.credentials_key", "own"),
            ("integrations.secrets_key", "own"),
        ];
        assert!(with(&own).is_ok());
    }

    use super::*;

    #[test]
    fn defaults_parse_and_name_every_service() {
        let settings: Settings = Figment::new()
            .merge(Toml::string(DEFAULTS))
            .extract()
            .unwrap();
        for service in ServiceName::ALL {
            assert!(
                settings.services.contains_key(&service),
                "{service} missing"
            );
        }
        assert_eq!(settings.service(ServiceName::Workspaces).grpc_port, 50051);
    }

    #[test]
    fn database_url_is_derived_per_service_unless_overridden() {
        let figment = Figment::new()
            .merge(Toml::string(DEFAULTS))
            .merge(("database.urls.contacts", "postgres://u@db/contacts_prod"));
        let settings: Settings = figment.extract().unwrap();
        assert_eq!(
            settings.database.url_for(ServiceName::Gateway).unwrap(),
            "postgres://ism:ism@127.0.0.1:5432/ism_gateway"
        );
        assert_eq!(
            settings.database.url_for(ServiceName::Contacts).unwrap(),
            "postgres://u@db/contacts_prod"
        );
    }

    #[derive(Debug, Deserialize)]
    struct Timers {
        timer_poll_ms: u64,
    }

    impl Section for Timers {
        const NAME: &'static str = "conversations";

        fn validate(&self) -> Result<(), Violations> {
            let mut violations = Violations::new();
            if self.timer_poll_ms < 10 {
                violations.push(crate::error::FieldError::new(
                    "timer_poll_ms",
                    "at least 10",
                ));
            }
            violations.into_result()
        }
    }

    #[test]
    fn a_services_section_is_read_and_checked_by_its_own_type() {
        let settings = |poll: u64| Settings {
            figment: Figment::new()
                .merge(Toml::string(DEFAULTS))
                .merge(("conversations.timer_poll_ms", poll)),
            ..Figment::new()
                .merge(Toml::string(DEFAULTS))
                .extract()
                .unwrap()
        };
        assert_eq!(
            settings(200).section::<Timers>().unwrap().timer_poll_ms,
            200
        );
        let refused = settings(1).section::<Timers>().unwrap_err().to_string();
        assert_eq!(
            refused,
            "invalid configuration of [conversations]: timer_poll_ms: at least 10"
        );
    }

    #[test]
    fn unknown_service_names_are_rejected_with_the_choices() {
        let err = "billing".parse::<ServiceName>().unwrap_err();
        assert!(err.contains("workspaces"), "{err}");
    }
}
