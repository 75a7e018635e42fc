//! Slows credential guessing on the calls that need no token: each source address has a
//! budget of calls per second to each, and a small budget of wrong credentials per RPC, as
//! has each API key. Once a budget is spent the calls are refused with RESOURCE_EXHAUSTED
//! and a retry time, even with the right credential, until it refills. A service name
//! has no budget of its own: anyone could spend it and lock the platform's own services
//! out of their tokens. The buckets live in Redis, shared by every replica; when Redis
//! cannot answer, calls pass (the platform's rate limits fail open alike).
use std::net::IpAddr;
use std::sync::Arc;

use ism_platform::ratelimit::{self, Decision, Limiter};
use tonic::Status;

use crate::config::WorkspacesSettings;
use crate::error::Error;

/// A call that presents a credential: the RPC, and what the credential names.
#[derive(Clone, Copy)]
pub enum Credential<'a> {
    /// An API key, by its public prefix (the part before its secret).
    ApiKey(&'a str),
    /// The service secret, by the service asking for a token.
    Service(&'a str),
}

impl Credential<'_> {
    fn rpc(self) -> &'static str {
        match self {
            Credential::ApiKey(_) => "ExchangeApiKey",
            Credential::Service(_) => "IssueServiceToken",
        }
    }

    /// What the credential was presented as, for the log.
    fn label(self) -> String {
        match self {
            Credential::ApiKey(prefix) => format!("API key ism_{prefix}_…"),
            Credential::Service(name) => format!("service {name}"),
        }
    }

    /// The bucket of wrong guesses of this credential, whoever makes them.
    fn bucket(self) -> Option<String> {
        match self {
            Credential::ApiKey(prefix) => Some(format!("failures:api_key:{prefix}")),
            Credential::Service(_) => None,
        }
    }
}

/// The budgets of calls needing no token.
pub struct Guard {
    limiter: Arc<Limiter>,
    settings: WorkspacesSettings,
}

impl Guard {
    pub fn new(limiter: Arc<Limiter>, settings: WorkspacesSettings) -> Self {
        for rpc in ["ExchangeApiKey", "IssueServiceToken"] {
            metrics::counter!("ism_credential_failures_total", "rpc" => rpc).absolute(0);
        }
        Self { limiter, settings }
    }

    /// Takes one of `source`'s calls of `rpc` per second; RESOURCE_EXHAUSTED when they
    /// are spent.
    pub async fn call(&self, rpc: &'static str, source: Option<IpAddr>) -> Result<(), Status> {
        let Some(source) = source else {
            return Ok(());
        };
        let decision = self
            .limiter
            .take(
                &format!("public:{rpc}:{source}"),
                self.settings.public_calls_per_second,
                self.settings.public_call_burst,
                std::time::Duration::ZERO,
            )
            .await;
        match decision {
            Decision::Allow | Decision::After(_) => Ok(()),
            Decision::Limit(wait) => {
                metrics::counter!("ism_public_calls_refused_total", "rpc" => rpc, "why" => "calls")
                    .increment(1);
                tracing::warn!(rpc, %source, "too many calls without a token from one address");
                Err(ratelimit::exhausted(
                    "too many calls from this address",
                    wait,
                ))
            }
        }
    }

    /// Runs `attempt` unless `source` or the credential has no wrong guesses left; a
    /// wrong credential (UNAUTHENTICATED) spends one of each.
    pub async fn check<T>(
        &self,
        credential: Credential<'_>,
        source: Option<IpAddr>,
        attempt: impl Future<Output = Result<T, Error>>,
    ) -> Result<T, Status> {
        let rpc = credential.rpc();
        self.call(rpc, source).await?;
        let mut buckets: Vec<String> = credential.bucket().into_iter().collect();
        if let Some(source) = source {
            buckets.push(format!("failures:{rpc}:source:{source}"));
        }
        let rate = self.settings.credential_failures_per_minute / 60.0;
        let burst = self.settings.credential_failure_burst;
        if let Decision::Limit(wait) = self.limiter.peek(&buckets, rate, burst).await {
            metrics::counter!("ism_public_calls_refused_total", "rpc" => rpc, "why" => "failures")
                .increment(1);
            return Err(ratelimit::exhausted(
                "too many wrong credentials from this address or for this key",
                wait,
            ));
        }
        let outcome = attempt.await;
        if let Err(Error::Unauthenticated(why)) = &outcome {
            metrics::counter!("ism_credential_failures_total", "rpc" => rpc).increment(1);
            tracing::warn!(rpc, source = ?source, credential = %credential.label(), %why, "wrong credential presented");
            for bucket in &buckets {
                self.limiter
                    .take(bucket, rate, burst, std::time::Duration::ZERO)
                    .await;
            }
        }
        outcome.map_err(Status::from)
    }
}
