//! Per-workspace rate limits on every gRPC API: a token bucket per Workspace and service
//! kept in Redis (one Lua script, atomic across replicas). It runs after [`AuthLayer`]
//! (it reads the [`Caller`]) and fails open: when Redis errors or is slow, the request
//! passes, a warning is logged and `ism_rate_limit_fail_open_total` counts it.
//!
//! [`AuthLayer`]: crate::auth::AuthLayer
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use redis::aio::ConnectionManager;
use secrecy::ExposeSecret;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::auth::{Caller, Role};
use crate::config::{RateLimitSettings, RedisSettings, ServiceName};
use crate::gate::{Gate, Gated};

/// Seconds between two fail-open warnings, so an outage does not flood the log.
const WARN_EVERY_SECONDS: i64 = 10;

/// Takes one token from the bucket in KEYS[1]; ARGV: refill rate per second, burst, and
/// how far ahead (ms) a caller may reserve a token (0: only tokens available now).
/// Returns {allowed (0/1), milliseconds to wait}: when allowed, the wait before using
/// the reserved token; when not, the wait until one can be reserved. Uses the server's
/// clock so replicas with skewed clocks share one bucket correctly.
const TOKEN_BUCKET: &str = r"
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local ahead = tonumber(ARGV[3] or '0')
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
local needed = 1 - ahead * rate / 1000
local allowed = 0
local wait = 0
if tokens >= needed then
  tokens = tokens - 1
  allowed = 1
  if tokens < 0 then wait = math.ceil(-tokens * 1000 / rate) end
else
  wait = math.ceil((needed - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + ahead + 1000)
return {allowed, wait}
";

/// How long until each bucket of KEYS holds a whole token (the longest wait; 0 when all
/// do), taking none. ARGV: refill rate per second and burst, as for TOKEN_BUCKET.
const PEEK: &str = r"
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local wait = 0
for _, key in ipairs(KEYS) do
  local state = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = tonumber(state[1]) or burst
  local ts = tonumber(state[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
  if tokens < 1 then wait = math.max(wait, math.ceil((1 - tokens) * 1000 / rate)) end
end
return wait
";

/// What the bucket said about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// A token is reserved: use it after this long.
    After(Duration),
    /// Over the limit; a token is available after this long.
    Limit(Duration),
}

/// The shared bucket store: Redis, the script and the limits.
pub struct Limiter {
    redis: Option<ConnectionManager>,
    script: redis::Script,
    peek: redis::Script,
    prefix: String,
    settings: RateLimitSettings,
    last_warning: AtomicI64,
}

impl Limiter {
    /// A limiter for `service`; connects to Redis lazily, so a Redis down at start does
    /// not stop the service.
    pub fn new(
        service: ServiceName,
        redis: &RedisSettings,
        settings: &RateLimitSettings,
    ) -> Arc<Self> {
        let timeout = Duration::from_millis(settings.redis_timeout_ms);
        let manager = redis::Client::open(redis.url.expose_secret())
            .and_then(|client| {
                client.get_connection_manager_lazy(
                    redis::aio::ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(timeout))
                        .set_response_timeout(Some(timeout))
                        .set_number_of_retries(1),
                )
            })
            .map_err(|e| tracing::error!(error = %e, "redis.url unusable; rate limits are off"))
            .ok();
        Arc::new(Self {
            redis: manager,
            script: redis::Script::new(TOKEN_BUCKET),
            peek: redis::Script::new(PEEK),
            prefix: format!("{}:ratelimit:{service}", redis.key_prefix),
            settings: settings.clone(),
            last_warning: AtomicI64::new(0),
        })
    }

    /// Takes a token for `workspace`; `Allow` whenever Redis cannot answer in time.
    pub async fn check(&self, workspace: &str) -> Decision {
        self.take(
            workspace,
            self.settings.requests_per_second,
            self.settings.burst,
            Duration::ZERO,
        )
        .await
    }

    /// Takes a token from the bucket `key` (under this limiter's prefix) refilling at
    /// `rate` per second up to `burst`, reserving one up to `ahead` in the future;
    /// `Allow` whenever Redis cannot answer in time.
    pub async fn take(&self, key: &str, rate: f64, burst: u32, ahead: Duration) -> Decision {
        let Some(mut redis) = self.redis.clone() else {
            return Decision::Allow;
        };
        let mut invocation = self.script.key(format!("{}:{key}", self.prefix));
        invocation
            .arg(rate)
            .arg(burst.max(1))
            .arg(ahead.as_millis() as u64);
        let timeout = Duration::from_millis(self.settings.redis_timeout_ms);
        let answer =
            tokio::time::timeout(timeout, invocation.invoke_async::<(i64, i64)>(&mut redis)).await;
        match answer {
            Ok(Ok((1, wait_ms))) if wait_ms > 0 => {
                Decision::After(Duration::from_millis(wait_ms as u64))
            }
            Ok(Ok((1, _))) => Decision::Allow,
            Ok(Ok((_, wait_ms))) => Decision::Limit(Duration::from_millis(wait_ms.max(1) as u64)),
            Ok(Err(e)) => self.fail_open(&e.to_string()),
            Err(_) => self.fail_open("timed out"),
        }
    }

    /// Whether every bucket of `keys` (refilling at `rate` up to `burst`) holds a token,
    /// taking none: `Limit` with the longest wait when one is empty; `Allow` whenever
    /// Redis cannot answer in time.
    pub async fn peek(&self, keys: &[String], rate: f64, burst: u32) -> Decision {
        let Some(mut redis) = self.redis.clone() else {
            return Decision::Allow;
        };
        let mut invocation = self.peek.prepare_invoke();
        for key in keys {
            invocation.key(format!("{}:{key}", self.prefix));
        }
        invocation.arg(rate).arg(burst.max(1));
        let timeout = Duration::from_millis(self.settings.redis_timeout_ms);
        match tokio::time::timeout(timeout, invocation.invoke_async::<i64>(&mut redis)).await {
            Ok(Ok(wait_ms)) if wait_ms > 0 => {
                Decision::Limit(Duration::from_millis(wait_ms as u64))
            }
            Ok(Ok(_)) => Decision::Allow,
            Ok(Err(e)) => self.fail_open(&e.to_string()),
            Err(_) => self.fail_open("timed out"),
        }
    }

    fn fail_open(&self, why: &str) -> Decision {
        metrics::counter!("ism_rate_limit_fail_open_total").increment(1);
        let now = chrono::Utc::now().timestamp();
        let last = self.last_warning.load(Ordering::Relaxed);
        if now - last >= WARN_EVERY_SECONDS
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                error = why,
                "rate limiter cannot reach Redis; letting requests through"
            );
        }
        Decision::Allow
    }
}

/// RESOURCE_EXHAUSTED saying `why`, with a `retry-after` header (whole seconds, rounded
/// up) and a `google.rpc.RetryInfo` detail (exact).
pub fn exhausted(why: &str, retry_after: Duration) -> Status {
    let seconds = retry_after.as_millis().div_ceil(1000).max(1);
    let mut status = Status::with_error_details(
        Code::ResourceExhausted,
        format!("{why}; retry after {seconds} s"),
        ErrorDetails::with_retry_info(Some(retry_after)),
    );
    if let Ok(value) = seconds.to_string().parse() {
        status.metadata_mut().insert("retry-after", value);
    }
    status
}

/// The tower layer applying [`Limiter`] to authenticated calls made in a Workspace.
/// Service tokens are not limited: they carry work the platform already accepted.
#[derive(Clone)]
pub struct RateLimitLayer {
    limiter: Option<Arc<Limiter>>,
}

impl RateLimitLayer {
    /// A layer for `service`, or a pass-through when `rate_limit.enabled` is false.
    pub fn new(service: ServiceName, redis: &RedisSettings, settings: &RateLimitSettings) -> Self {
        Self {
            limiter: settings
                .enabled
                .then(|| Limiter::new(service, redis, settings)),
        }
    }
}

impl<S> tower::Layer<S> for RateLimitLayer {
    type Service = Gated<S, RateLimitLayer>;

    fn layer(&self, inner: S) -> Self::Service {
        Gated::new(inner, self.clone())
    }
}

impl Gate for RateLimitLayer {
    fn admit<B: Send + 'static>(
        &self,
        request: http::Request<B>,
    ) -> BoxFuture<'static, Result<http::Request<B>, Status>> {
        let workspace = request
            .extensions()
            .get::<Caller>()
            .filter(|caller| caller.role != Role::Service)
            .and_then(|caller| caller.workspace_id().ok());
        let (Some(limiter), Some(workspace)) = (self.limiter.clone(), workspace) else {
            return Box::pin(std::future::ready(Ok(request)));
        };
        Box::pin(async move {
            match limiter.check(&workspace.to_string()).await {
                Decision::Allow | Decision::After(_) => Ok(request),
                Decision::Limit(wait) => {
                    metrics::counter!("ism_rate_limited_total").increment(1);
                    Err(exhausted("rate limit of this workspace exceeded", wait))
                }
            }
        })
    }
}
