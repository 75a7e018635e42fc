//! Delivering webhooks: claims due deliveries, POSTs each signed, and records what the
//! receiver answered. A claim is a lease (the delivery's next attempt moved ahead), so a
//! replica that dies mid-POST leaves the delivery to be attempted again after the lease:
//! the receiver may see it twice, always with the same `webhook-id` (the Standard
//! Webhooks contract). Each endpoint has at most `endpoint_concurrency` POSTs in flight
//! here (and a few times that claimed ahead), so a slow receiver holds only its own share.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use ism_platform::egress::Egress;
use ism_platform::events::{enqueue, topics};
use ism_platform::ratelimit::{Decision, Limiter};
use ism_platform::sealing::Sealer;
use ism_platform::telemetry;
use ism_proto::events::v1 as ev;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER, USER_AGENT};
use secrecy::SecretString;
use sqlx::PgPool;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::IntegrationsSettings;
use crate::states::DeliveryState;
use crate::store::{self, Attempt, Claim};
use ism_platform::signing;

/// The first bytes of a receiver's answer kept in the log.
const BODY_KEPT: usize = 1024;

/// The HTTP side: signs and POSTs, for the sender and for a test call alike.
#[derive(Clone)]
pub struct Poster {
    client: reqwest::Client,
    timeout: Duration,
    pub sealer: Arc<Sealer>,
}

/// What an attempt came to.
#[derive(Debug)]
pub enum Outcome {
    Delivered,
    Refused(Refusal),
}

/// Why an attempt failed, as far as what follows is concerned.
#[derive(Debug)]
pub enum Refusal {
    /// 410: the receiver wants no more.
    Gone,
    Failed {
        retry_after: Option<Duration>,
    },
}

impl Poster {
    pub fn new(config: &IntegrationsSettings, egress: &Egress, sealer: Arc<Sealer>) -> Self {
        Self {
            client: egress.client(config.request_timeout()),
            timeout: config.request_timeout(),
            sealer,
        }
    }

    /// POSTs `body` as event `id` to `url`, signed with `secrets`.
    pub async fn post(
        &self,
        egress: &Egress,
        url: &str,
        secrets: &[&SecretString],
        id: &str,
        body: &str,
    ) -> (Attempt, Outcome) {
        let started_at = Utc::now();
        let clock = Instant::now();
        let attempt = |status_code: i32, error: String, response_body: String| Attempt {
            started_at,
            duration_ms: clock.elapsed().as_millis() as i64,
            status_code,
            error,
            response_body,
        };
        // A URL saved when its host was public may have been re-pointed: checked again.
        if let Err(refusal) = egress.check_url(url) {
            let error = format!("url {refusal}");
            return (
                attempt(0, error, String::new()),
                Outcome::Refused(Refusal::Failed { retry_after: None }),
            );
        }
        let timestamp = started_at.timestamp();
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(
            USER_AGENT,
            HeaderValue::from_static("IS-Messenger-Webhooks/1"),
        );
        let signature = signing::signature(secrets, id, timestamp, body);
        for (name, value) in [
            ("webhook-id", id.to_owned()),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", signature),
        ] {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
        let sent =
            telemetry::send_http(self.client.post(url).headers(headers).body(body.to_owned()))
                .await;
        let mut response = match sent {
            Ok(response) => response,
            Err(e) => {
                let error = if e.is_timeout() {
                    format!("no answer within {} ms", self.timeout.as_millis())
                } else {
                    format!(
                        "could not reach the receiver: {}",
                        ism_platform::egress::error_chain(&e)
                    )
                };
                return (
                    attempt(0, error, String::new()),
                    Outcome::Refused(Refusal::Failed { retry_after: None }),
                );
            }
        };
        let status = response.status();
        let retry_after = retry_after(response.headers().get(RETRY_AFTER));
        let mut kept = Vec::new();
        while kept.len() < BODY_KEPT {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    kept.extend_from_slice(&chunk[..chunk.len().min(BODY_KEPT - kept.len())])
                }
                _ => break,
            }
        }
        let response_body = String::from_utf8_lossy(&kept).into_owned();
        let code = i32::from(status.as_u16());
        if status.is_success() {
            (
                attempt(code, String::new(), response_body),
                Outcome::Delivered,
            )
        } else if status == reqwest::StatusCode::GONE {
            let error = "answered 410 Gone".to_owned();
            (
                attempt(code, error, response_body),
                Outcome::Refused(Refusal::Gone),
            )
        } else {
            let error = if status.is_redirection() {
                format!("answered {status} (redirects are not followed)")
            } else {
                format!("answered {status}")
            };
            (
                attempt(code, error, response_body),
                Outcome::Refused(Refusal::Failed { retry_after }),
            )
        }
    }
}

/// A `Retry-After` of seconds or an HTTP date.
fn retry_after(value: Option<&HeaderValue>) -> Option<Duration> {
    let text = value?.to_str().ok()?.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(text).ok()?;
    (at.with_timezone(&Utc) - Utc::now()).to_std().ok()
}

/// The delivery loop of one replica.
pub struct Sender {
    pub pool: PgPool,
    pub config: IntegrationsSettings,
    pub egress: Egress,
    pub poster: Poster,
    pub limiter: Arc<Limiter>,
    pub wake: Arc<Notify>,
    in_flight: Arc<Semaphore>,
    per_endpoint: Arc<Mutex<HashMap<Uuid, Lane>>>,
    /// Deliveries answered 2xx, recorded together by [`Sender::record_delivered`].
    delivered: mpsc::UnboundedSender<Delivered>,
}

/// A delivery answered 2xx: its id, its endpoint and the attempt.
type Delivered = (Uuid, Uuid, Attempt);

/// Most deliveries recorded in one transaction.
const RECORD_BATCH: usize = 256;

/// Deliveries of one endpoint claimed ahead of its POST slots, as a multiple of its
/// concurrency: the next POST never waits for a claim's round trip.
const PREFETCH: usize = 4;

/// One endpoint's deliveries held by this replica: claimed (posting or waiting for a
/// slot), and its POST slots.
struct Lane {
    held: i64,
    slots: Arc<Semaphore>,
}

impl Sender {
    pub fn new(
        pool: PgPool,
        config: IntegrationsSettings,
        egress: Egress,
        poster: Poster,
        limiter: Arc<Limiter>,
        wake: Arc<Notify>,
    ) -> (Self, mpsc::UnboundedReceiver<Delivered>) {
        let (delivered, received) = mpsc::unbounded_channel();
        let sender = Self {
            in_flight: Arc::new(Semaphore::new(config.max_in_flight)),
            per_endpoint: Arc::default(),
            delivered,
            pool,
            config,
            egress,
            poster,
            limiter,
            wake,
        };
        (sender, received)
    }

    /// Records deliveries answered 2xx as they come, many per transaction: one commit per
    /// batch instead of one per delivery. A batch that cannot be recorded is retried; if the
    /// process dies first, its deliveries are attempted again after their lease (the same
    /// `webhook-id`, as the specification allows).
    pub async fn record_delivered(
        self: Arc<Self>,
        mut received: mpsc::UnboundedReceiver<Delivered>,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let mut batch = Vec::with_capacity(RECORD_BATCH);
        loop {
            tokio::select! {
                biased;
                n = received.recv_many(&mut batch, RECORD_BATCH) => if n == 0 { return Ok(()) },
                _ = shutdown.cancelled() => {
                    // What came in before the stop is recorded; later answers are attempted
                    // again after their lease.
                    while batch.len() < RECORD_BATCH && let Ok(d) = received.try_recv() {
                        batch.push(d);
                    }
                    if batch.is_empty() {
                        return Ok(());
                    }
                }
            }
            let record = || async {
                let mut tx = self.pool.begin().await?;
                store::record_delivered(&mut tx, &batch).await?;
                tx.commit().await
            };
            let recorded = backon::Retryable::retry(record, self.record_backoff()).await;
            if let Err(e) = recorded {
                tracing::warn!(deliveries = batch.len(), error = %e, "recording delivered webhooks failed");
            }
            batch.clear();
            if shutdown.is_cancelled() {
                return Ok(());
            }
        }
    }

    /// Retries of a failed record: within half a lease, so the delivery is not claimed
    /// again while its outcome is still being written.
    fn record_backoff(&self) -> backon::ExponentialBuilder {
        backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(5))
            .with_total_delay(Some(Duration::from_secs(self.config.lease_seconds / 2)))
    }

    /// Delivers until `shutdown`; POSTs in flight then finish or are attempted again
    /// after their lease.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) -> anyhow::Result<()> {
        let poll = Duration::from_millis(self.config.poll_ms);
        loop {
            let claimed = match self.claim_round().await {
                Ok(n) => n,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming webhook deliveries failed; retrying");
                    0
                }
            };
            if claimed > 0 && self.in_flight.available_permits() > 0 {
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
            }
        }
    }

    async fn claim_round(self: &Arc<Self>) -> sqlx::Result<usize> {
        let free = self.in_flight.available_permits();
        if free == 0 {
            return Ok(0);
        }
        let held: Vec<(Uuid, i64)> = self
            .per_endpoint
            .lock()
            .expect("not poisoned")
            .iter()
            .map(|(id, lane)| (*id, lane.held))
            .collect();
        let lease = Duration::from_secs(self.config.lease_seconds);
        let claims = store::claim(
            &self.pool,
            free.min(64) as i64,
            (self.config.endpoint_concurrency * PREFETCH) as i64,
            &held,
            lease,
            Duration::from_millis(self.config.ordering_window_ms),
        )
        .await?;
        let count = claims.len();
        for claim in claims {
            let Ok(permit) = self.in_flight.clone().try_acquire_owned() else {
                break;
            };
            let slots = {
                let mut lanes = self.per_endpoint.lock().expect("not poisoned");
                let lane = lanes.entry(claim.endpoint_id).or_insert_with(|| Lane {
                    held: 0,
                    slots: Arc::new(Semaphore::new(self.config.endpoint_concurrency)),
                });
                lane.held += 1;
                lane.slots.clone()
            };
            let this = self.clone();
            tokio::spawn(async move {
                let endpoint = claim.endpoint_id;
                if let Ok(slot) = slots.acquire_owned().await {
                    this.attempt(claim, slot).await;
                }
                let mut lanes = this.per_endpoint.lock().expect("not poisoned");
                if let Some(lane) = lanes.get_mut(&endpoint) {
                    lane.held -= 1;
                    if lane.held == 0 {
                        lanes.remove(&endpoint);
                    }
                }
                drop(permit);
                this.wake.notify_one();
            });
        }
        Ok(count)
    }

    /// POSTs one claimed delivery in `slot` (one of its endpoint's), then records it.
    async fn attempt(&self, claim: Claim, slot: OwnedSemaphorePermit) {
        let rate = claim.rate_limit_per_second;
        if rate > 0 {
            loop {
                match self
                    .limiter
                    .take(
                        &claim.endpoint_id.to_string(),
                        f64::from(rate),
                        rate as u32,
                        Duration::from_secs(5),
                    )
                    .await
                {
                    Decision::Allow => break,
                    Decision::After(wait) => {
                        tokio::time::sleep(wait).await;
                        break;
                    }
                    Decision::Limit(wait) => tokio::time::sleep(wait).await,
                }
            }
        }
        let (attempt, outcome) = match self.secrets(&claim) {
            Ok(secrets) => {
                let refs: Vec<&SecretString> = secrets.iter().collect();
                self.poster
                    .post(
                        &self.egress,
                        &claim.url,
                        &refs,
                        &claim.event_id.to_string(),
                        &claim.body,
                    )
                    .await
            }
            Err(error) => (
                Attempt {
                    started_at: Utc::now(),
                    duration_ms: 0,
                    status_code: 0,
                    error,
                    response_body: String::new(),
                },
                Outcome::Refused(Refusal::Failed { retry_after: None }),
            ),
        };
        drop(slot);
        metrics::counter!("ism_webhook_attempts_total", "outcome" => match outcome {
            Outcome::Delivered => "delivered",
            Outcome::Refused(Refusal::Gone) => "gone",
            Outcome::Refused(Refusal::Failed { .. }) => "failed",
        })
        .increment(1);
        let refusal = match outcome {
            Outcome::Delivered => {
                // Recorded with others; a closed channel means the service is stopping,
                // and the delivery is attempted again after its lease.
                let _ = self.delivered.send((claim.id, claim.endpoint_id, attempt));
                return;
            }
            Outcome::Refused(refusal) => refusal,
        };
        let record = || self.record(&claim, &attempt, &refusal);
        let recorded = backon::Retryable::retry(record, self.record_backoff()).await;
        if let Err(e) = recorded {
            // Attempted again after its lease, with the same webhook-id.
            tracing::warn!(delivery = %claim.id, error = %e, "recording a webhook attempt failed");
        }
    }

    /// The secrets to sign with: the current one, and the previous one while it overlaps.
    fn secrets(&self, claim: &Claim) -> Result<Vec<SecretString>, String> {
        let open = |sealed: &[u8]| {
            self.poster
                .sealer
                .open::<String>(claim.endpoint_id, sealed)
                .map(SecretString::from)
                .map_err(|e| format!("the signing secret cannot be opened: {e}"))
        };
        let mut secrets = vec![open(&claim.secret)?];
        if let (Some(previous), Some(until)) = (&claim.previous_secret, claim.previous_secret_until)
            && until > Utc::now()
        {
            secrets.push(open(previous)?);
        }
        Ok(secrets)
    }

    /// The delivery's next state and attempt time after a failure.
    fn after_failure(
        &self,
        claim: &Claim,
        retry_after: Option<Duration>,
    ) -> (DeliveryState, DateTime<Utc>) {
        let schedule = &self.config.retry_schedule_seconds;
        let Some(wait) = schedule.get(claim.attempts as usize) else {
            return (DeliveryState::Failed, Utc::now());
        };
        // Up to 10 %, different per delivery and attempt, so retries of events that
        // failed together spread out.
        let spread = (claim.id.as_u128() as u64)
            .wrapping_mul(31)
            .wrapping_add(claim.attempts as u64);
        let jitter = (spread % 1000) as f64 / 10_000.0;
        let scheduled = Duration::from_secs_f64(*wait as f64 * (1.0 + jitter));
        let longest = Duration::from_secs(schedule.iter().copied().max().unwrap_or(0));
        let wait = retry_after.map_or(scheduled, |asked| scheduled.max(asked.min(longest)));
        (DeliveryState::Pending, Utc::now() + wait)
    }

    async fn record(
        &self,
        claim: &Claim,
        attempt: &Attempt,
        refusal: &Refusal,
    ) -> sqlx::Result<()> {
        let mut tx = self.pool.begin().await?;
        store::insert_attempt(&mut tx, claim.id, attempt).await?;
        match refusal {
            Refusal::Gone => {
                store::settle(&mut tx, claim.id, DeliveryState::Failed, Utc::now()).await?;
                disable(&mut tx, claim.endpoint_id, "the receiver answered 410 Gone").await?;
            }
            Refusal::Failed { retry_after } => {
                let failing = store::endpoint_failed(
                    &mut tx,
                    claim.endpoint_id,
                    &attempt.error,
                    self.config.breaker_failures,
                    Duration::from_secs(self.config.breaker_rest_seconds),
                    Duration::from_secs_f64(self.config.warn_after_hours * 3600.0),
                )
                .await?;
                let (state, mut next) = self.after_failure(claim, *retry_after);
                if let Some(failing) = failing {
                    if let Some(rest) = failing.resting_until {
                        next = next.max(rest);
                    }
                    if failing.warn {
                        let event = topics::WEBHOOK_ENDPOINT_FAILING.event(
                            failing.workspace_id,
                            &claim.endpoint_id.to_string(),
                            &ev::WebhookEndpointFailing {
                                endpoint_id: claim.endpoint_id.to_string(),
                                url: failing.url.clone(),
                                failing_since: Some(ism_platform::convert::timestamp(
                                    failing.failing_since,
                                )),
                                last_error: attempt.error.clone(),
                            },
                        );
                        enqueue(&mut tx, &event).await?;
                    }
                    let disable_after = chrono::Duration::milliseconds(
                        (self.config.disable_after_hours * 3_600_000.0) as i64,
                    );
                    if failing.failing_since <= Utc::now() - disable_after {
                        let reason = format!(
                            "every attempt failed since {} (last: {})",
                            failing.failing_since.to_rfc3339(),
                            attempt.error
                        );
                        store::settle(&mut tx, claim.id, state, next).await?;
                        disable(&mut tx, claim.endpoint_id, &reason).await?;
                        return tx.commit().await;
                    }
                }
                store::settle(&mut tx, claim.id, state, next).await?;
            }
        }
        tx.commit().await
    }
}

/// Disables an endpoint and says so with `integrations.endpoint.disabled`.
pub async fn disable(
    tx: &mut sqlx::PgConnection,
    endpoint_id: Uuid,
    reason: &str,
) -> sqlx::Result<()> {
    if let Some(endpoint) = store::disable(tx, endpoint_id, reason).await? {
        let event = topics::WEBHOOK_ENDPOINT_DISABLED.event(
            endpoint.workspace_id,
            &endpoint_id.to_string(),
            &ev::WebhookEndpointDisabled {
                endpoint_id: endpoint_id.to_string(),
                url: endpoint.url,
                reason: reason.to_owned(),
            },
        );
        enqueue(tx, &event).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let seconds = HeaderValue::from_static("120");
        assert_eq!(retry_after(Some(&seconds)), Some(Duration::from_secs(120)));
        let later = (Utc::now() + chrono::Duration::seconds(60)).to_rfc2822();
        let date = HeaderValue::from_str(&later).unwrap();
        let read = retry_after(Some(&date)).unwrap();
        assert!(read > Duration::from_secs(55) && read <= Duration::from_secs(60));
        assert_eq!(retry_after(Some(&HeaderValue::from_static("soon"))), None);
    }
}
