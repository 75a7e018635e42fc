//! Outbound delivery: requests arrive as events and are queued durably; a worker sends
//! them, retries transient failures with backoff and jitter, and reports every final
//! status as `gateway.message.status`.
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crate::config::GatewaySettings;
use backon::{BackoffBuilder, ExponentialBuilder};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use ism_platform::convert::timestamp;
use ism_platform::events::{self, EventContext, EventHandler, HandlerError, TracedEvent, topics};
use ism_platform::telemetry;
use ism_proto::events::v1::{DeliveryRequested, Event, MessageStatusChanged};
use ism_proto::types::v1::{DeliveryFailure, DeliveryStatus, MessageContent};
use prost::Message;
use sqlx::types::Json;
use sqlx::{PgConnection, PgPool};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use uuid::Uuid;

use ism_platform::ratelimit::{Decision, Limiter};
use ism_proto::types::v1::message_content::Kind as Content;

use crate::channels::api_base_url;
use crate::credentials::{Cipher, Credentials};
use crate::pacing::Pacing;
use crate::providers::Kind;
use crate::providers::outbound::{self, Failure, Outgoing};
use crate::store::{self, Delivery, Outcome};

/// Queues `*.delivery.requested` events as deliveries, several per transaction when the
/// queue has a backlog (a broadcast hands over thousands at once).
pub struct Requests {
    pub wake: Arc<Notify>,
}

/// Delivery requests applied per transaction.
const REQUESTS_BATCH: usize = 64;

/// One delivery request, decoded.
struct Request {
    workspace_id: Uuid,
    message_id: Uuid,
    channel_id: Uuid,
    requested_by: String,
    recipient: String,
    content: Vec<u8>,
    /// The trace the delivery continues.
    trace: BTreeMap<String, String>,
}

impl Request {
    fn of(event: &Event, trace: BTreeMap<String, String>) -> Result<Self, HandlerError> {
        let request: DeliveryRequested =
            events::decode_payload(event).map_err(HandlerError::Permanent)?;
        let uuid = |value: &str, field: &str| {
            value.parse::<Uuid>().map_err(|_| {
                HandlerError::Permanent(format!("delivery request: {field} is not a UUID"))
            })
        };
        Ok(Self {
            workspace_id: uuid(&event.workspace_id, "workspace_id")?,
            message_id: uuid(&request.message_id, "message_id")?,
            channel_id: uuid(&request.channel_id, "channel_id")?,
            requested_by: request.requested_by,
            recipient: request.recipient_external_id,
            content: request.content.unwrap_or_default().encode_to_vec(),
            trace,
        })
    }
}

impl Requests {
    /// Queues `requests` in `tx`: those for a channel of their Workspace as deliveries
    /// (each message id once), the others reported failed, so the sender learns why.
    async fn queue(&self, tx: &mut PgConnection, requests: &[Request]) -> Result<(), HandlerError> {
        let pairs: (Vec<Uuid>, Vec<Uuid>) = requests
            .iter()
            .map(|r| (r.channel_id, r.workspace_id))
            .unzip();
        let owned: HashSet<(Uuid, Uuid)> = sqlx::query_as(
            "SELECT c.id, c.workspace_id FROM channels c
             JOIN unnest($1::uuid[], $2::uuid[]) AS r(channel_id, workspace_id)
               ON c.id = r.channel_id AND c.workspace_id = r.workspace_id",
        )
        .bind(&pairs.0)
        .bind(&pairs.1)
        .fetch_all(&mut *tx)
        .await?
        .into_iter()
        .collect();
        let (queued, refused): (Vec<&Request>, Vec<&Request>) = requests
            .iter()
            .partition(|r| owned.contains(&(r.channel_id, r.workspace_id)));
        let failures: Vec<Event> = refused
            .iter()
            .map(|r| {
                status_event(
                    r.workspace_id,
                    r.message_id,
                    r.channel_id,
                    &r.requested_by,
                    Status::Failed(
                        "the channel does not exist or was disconnected",
                        DeliveryFailure::Channel,
                    ),
                    "",
                )
            })
            .collect();
        events::enqueue_all(&mut *tx, &failures).await?;
        sqlx::query(
            "INSERT INTO deliveries (message_id, workspace_id, channel_id, requested_by, recipient, content, trace)
             SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::bytea[], $7::jsonb[])
             ON CONFLICT (message_id) DO NOTHING",
        )
        .bind(queued.iter().map(|r| r.message_id).collect::<Vec<_>>())
        .bind(queued.iter().map(|r| r.workspace_id).collect::<Vec<_>>())
        .bind(queued.iter().map(|r| r.channel_id).collect::<Vec<_>>())
        .bind(queued.iter().map(|r| r.requested_by.as_str()).collect::<Vec<_>>())
        .bind(queued.iter().map(|r| r.recipient.as_str()).collect::<Vec<_>>())
        .bind(queued.iter().map(|r| r.content.as_slice()).collect::<Vec<_>>())
        .bind(queued.iter().map(|r| Json(&r.trace)).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
        Ok(())
    }
}

impl EventHandler for Requests {
    async fn handle(&self, event: Event, ctx: EventContext) -> Result<(), HandlerError> {
        // The delivery continues this event's handling: its attempts, however much later,
        // join the sender's trace.
        let request = Request::of(&event, telemetry::current_context_headers())?;
        let Some(mut tx) = ctx.begin().await? else {
            return Ok(());
        };
        self.queue(&mut tx, std::slice::from_ref(&request)).await?;
        tx.commit().await?;
        self.wake.notify_one();
        Ok(())
    }

    fn batch_size(&self) -> usize {
        REQUESTS_BATCH
    }

    async fn handle_batch(&self, batch: events::Batch) -> Result<(), HandlerError> {
        // A malformed request fails the batch; each is then handled alone, and that one
        // dead-lettered.
        let (mut tx, fresh) = batch.begin_traced().await?;
        let requests = fresh
            .into_iter()
            .map(|traced| Request::of(&traced.event, traced.trace))
            .collect::<Result<Vec<_>, _>>()?;
        self.queue(&mut tx, &requests).await?;
        tx.commit().await?;
        self.wake.notify_one();
        Ok(())
    }
}

/// A status to report: a failure comes with its reason and kind.
#[derive(Clone, Copy)]
pub(crate) enum Status<'a> {
    Reached(DeliveryStatus),
    Failed(&'a str, DeliveryFailure),
    /// Still pending: attempt number `attempts` failed for this reason, and the next is
    /// due at this time.
    Retrying {
        reason: &'a str,
        next_attempt_at: DateTime<Utc>,
        attempts: i32,
    },
}

/// A `gateway.message.status` event about one of our messages.
pub(crate) fn status_event(
    workspace_id: Uuid,
    message_id: Uuid,
    channel_id: Uuid,
    requested_by: &str,
    status: Status<'_>,
    external_message_id: &str,
) -> Event {
    let (status, reason, failure, retry) = match status {
        Status::Reached(status) => (status, "", DeliveryFailure::Unspecified, None),
        Status::Failed(reason, failure) => (DeliveryStatus::Failed, reason, failure, None),
        Status::Retrying {
            reason,
            next_attempt_at,
            attempts,
        } => (
            DeliveryStatus::Pending,
            reason,
            DeliveryFailure::Unspecified,
            Some((timestamp(next_attempt_at), attempts)),
        ),
    };
    let payload = MessageStatusChanged {
        message_id: message_id.to_string(),
        channel_id: channel_id.to_string(),
        status: status as i32,
        reason: reason.to_owned(),
        external_message_id: external_message_id.to_owned(),
        requested_by: requested_by.to_owned(),
        failure: failure as i32,
        next_attempt_at: retry.map(|(at, _)| at),
        attempts: retry.map_or(0, |(_, attempts)| attempts),
    };
    topics::MESSAGE_STATUS.event(workspace_id, &message_id.to_string(), &payload)
}

/// How long a Contact's last message keeps the reply window open.
const REPLY_WINDOW: chrono::TimeDelta = chrono::TimeDelta::hours(24);
/// Claimed batches being sent at once, sharing `delivery_concurrency`.
const BATCHES_IN_FLIGHT: usize = 4;
/// How far ahead a delivery may reserve a slot of its channel's rate limit, waiting for
/// it while holding its lease; beyond that it is put back.
const RESERVE_AHEAD: Duration = Duration::from_secs(1);

/// Sends due deliveries until `shutdown`.
pub struct Worker {
    pub pool: PgPool,
    pub http: reqwest::Client,
    pub cipher: Arc<Cipher>,
    pub settings: GatewaySettings,
    pub wake: Arc<Notify>,
    /// Per-channel (and per-chat) throughput limits, shared by every replica.
    pub limiter: Arc<Limiter>,
    /// The gateway's public URL, without a trailing slash (status callbacks).
    pub public_url: String,
    /// Deliveries handed to their provider whose outcome is not recorded yet: never
    /// claimed again by this process, whatever their lease says.
    pub unrecorded: std::sync::Mutex<HashSet<Uuid>>,
    /// Channels paced below their rate after their provider's rate-limit answers.
    pub pacing: Pacing,
}

/// What a batch of claimed deliveries shares, read once: their channels (a channel
/// disconnected meanwhile is absent) with opened credentials, and when the Contacts of
/// reply-window channels last wrote.
struct Batch {
    channels: HashMap<Uuid, (store::Channel, Result<Credentials, String>)>,
    last_inbound: HashMap<(Uuid, String), DateTime<Utc>>,
}

impl Batch {
    async fn load(worker: &Worker, due: &[Delivery]) -> Result<Batch, crate::Error> {
        if due.is_empty() {
            return Ok(Batch {
                channels: HashMap::new(),
                last_inbound: HashMap::new(),
            });
        }
        let mut ids: Vec<Uuid> = due.iter().map(|d| d.channel_id).collect();
        ids.sort();
        ids.dedup();
        let channels: HashMap<Uuid, _> = store::channels_by_id(&worker.pool, &ids)
            .await?
            .into_iter()
            .map(|channel| {
                let credentials = channel
                    .credentials(&worker.cipher)
                    .map_err(|e| format!("the channel's credentials cannot be read: {e}"));
                (channel.id, (channel, credentials))
            })
            .collect();
        let windowed: Vec<(Uuid, String)> = due
            .iter()
            .filter(|d| {
                channels
                    .get(&d.channel_id)
                    .is_some_and(|(c, _)| Kind::parse(&c.kind).is_some_and(Kind::has_reply_window))
            })
            .map(|d| (d.channel_id, d.recipient.clone()))
            .collect();
        let last_inbound = store::last_inbound(&worker.pool, &windowed).await?;
        Ok(Batch {
            channels,
            last_inbound,
        })
    }
}

/// What stopped a delivery before the provider was called, or the attempt's outcome.
enum Step {
    Done(Outcome),
    /// The rate limit said wait: back in the queue without counting an attempt.
    Postpone(Duration),
}

impl Worker {
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let lease = self.settings.delivery_timeout_ms as f64 / 1000.0 * 2.0 + 5.0;
        let concurrency = self.settings.delivery_concurrency.max(1);
        // Several smaller batches in flight: the next is claimed while earlier ones are
        // at the provider, and no more than `delivery_concurrency` are sent at once.
        let batch_size = concurrency.div_ceil(BATCHES_IN_FLIGHT);
        let slots = Arc::new(Semaphore::new(concurrency));
        let worker = Arc::new(self);
        while !shutdown.is_cancelled() {
            let permit = tokio::select! {
                _ = shutdown.cancelled() => break,
                permit = slots.clone().acquire_many_owned(batch_size as u32) => permit?,
            };
            let withheld: Vec<Uuid> = worker.withheld().into_iter().collect();
            let due =
                match store::claim_due(&worker.pool, batch_size as i64, lease, &withheld).await {
                    Ok(due) => due,
                    Err(e) => {
                        tracing::warn!(error = %e, "claiming deliveries failed");
                        Vec::new()
                    }
                };
            let full = due.len() >= batch_size;
            if !due.is_empty() {
                let worker = worker.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    worker.clone().deliver(due, &shutdown).await;
                    drop(permit);
                    // Deliveries waiting behind these recipients' are due now.
                    worker.wake.notify_one();
                });
            }
            if !full {
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = worker.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
        // The batches in flight finish and are recorded.
        let _ = slots.acquire_many(concurrency as u32).await;
        Ok(())
    }

    /// Sends a claimed batch and records its outcomes.
    async fn deliver(self: Arc<Self>, due: Vec<Delivery>, shutdown: &CancellationToken) {
        let batch = Arc::new(Batch::load(&self, &due).await.map_err(|e| e.to_string()));
        let finished: Vec<store::Finished> = futures::stream::iter(due)
            .map(|delivery| {
                let (worker, batch) = (self.clone(), batch.clone());
                let span = tracing::info_span!(
                    "delivery.attempt",
                    message_id = %delivery.message_id,
                    attempt = delivery.attempts + 1,
                    otel.status_code = tracing::field::Empty,
                    trace_id = tracing::field::Empty,
                );
                telemetry::adopt_parent(&span, telemetry::context_from_map(&delivery.trace));
                async move { worker.attempt(delivery, &batch).await }.instrument(span)
            })
            .buffer_unordered(self.settings.delivery_concurrency.max(1))
            .filter_map(std::future::ready)
            .collect()
            .await;
        self.record(&finished, shutdown).await;
    }

    fn withheld(&self) -> HashSet<Uuid> {
        self.unrecorded
            .lock()
            .map(|ids| ids.clone())
            .unwrap_or_default()
    }

    /// Records what the providers answered. A failure to record is retried as a record,
    /// never as a new send: until it succeeds the deliveries stay out of this process'
    /// claims. Only a crash (or a stop while the database is down) leaves them to their
    /// lease, after which they are sent again: the window no provider closes for us.
    async fn record(&self, finished: &[store::Finished], shutdown: &CancellationToken) {
        let ids: Vec<Uuid> = finished.iter().map(|f| f.message_id).collect();
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(100))
            .with_max_delay(Duration::from_secs(2))
            .without_max_times()
            .with_jitter()
            .build();
        let mut withheld = false;
        loop {
            let Err(e) = store::finish_attempts(&self.pool, finished).await else {
                break;
            };
            if !withheld {
                if let Ok(mut unrecorded) = self.unrecorded.lock() {
                    unrecorded.extend(&ids);
                }
                withheld = true;
            }
            if shutdown.is_cancelled() {
                tracing::error!(error = %e, deliveries = ids.len(), "stopping with delivery outcomes unrecorded; their leases will send them again");
                return;
            }
            let wait = delays.next().unwrap_or(Duration::from_secs(2));
            tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "recording delivery outcomes failed; retrying the record");
            tokio::time::sleep(wait).await;
        }
        if withheld && let Ok(mut unrecorded) = self.unrecorded.lock() {
            for id in &ids {
                unrecorded.remove(id);
            }
        }
    }

    /// One attempt; `None` when the rate limit put the delivery back.
    async fn attempt(
        &self,
        delivery: Delivery,
        batch: &Result<Batch, String>,
    ) -> Option<store::Finished> {
        let channel = batch.as_ref().map(|b| {
            b.channels
                .get(&delivery.channel_id)
                .map(|(channel, credentials)| {
                    let key = (channel.id, delivery.recipient.clone());
                    (channel, credentials, b.last_inbound.get(&key).copied())
                })
        });
        let outcome = match channel {
            Ok(Some((channel, credentials, last_inbound))) => match self
                .send(channel, credentials, last_inbound, &delivery)
                .await
            {
                Step::Done(outcome) => outcome,
                Step::Postpone(wait) => {
                    metrics::counter!("ism_deliveries_postponed_total").increment(1);
                    if let Err(e) =
                        store::postpone(&self.pool, delivery.message_id, wait.as_millis() as i64)
                            .await
                    {
                        tracing::warn!(error = %e, "postponing a delivery failed");
                    }
                    return None;
                }
            },
            Ok(None) => Outcome::Failed {
                reason: "the channel was disconnected".to_owned(),
                kind: "refused",
                failure: DeliveryFailure::Channel,
            },
            Err(e) => Outcome::Retry {
                after_ms: self.backoff_ms(delivery.attempts),
                reason: format!("database: {e}"),
                kind: "internal",
            },
        };
        let channel_kind = batch
            .as_ref()
            .ok()
            .and_then(|b| b.channels.get(&delivery.channel_id))
            .and_then(|(channel, _)| Kind::parse(&channel.kind));
        let retry_for = channel_kind.map_or(self.settings.delivery_retry_for_seconds, |kind| {
            self.settings.retry_for_seconds(kind)
        });
        let outcome = match outcome {
            Outcome::Retry {
                reason,
                kind,
                after_ms,
            } if self.out_of_time(&delivery, after_ms, retry_for) => Outcome::Failed {
                reason: format!(
                    "gave up after {} attempts in {} s: send it again once the provider is reachable; last error: {reason}",
                    delivery.attempts + 1,
                    (Utc::now() - delivery.created_at).num_seconds()
                ),
                kind,
                failure: DeliveryFailure::GaveUp,
            },
            other => other,
        };
        let status = match &outcome {
            Outcome::Sent {
                external_message_id,
            } => Some(self.status(
                &delivery,
                Status::Reached(DeliveryStatus::Sent),
                external_message_id,
            )),
            Outcome::Failed {
                reason, failure, ..
            } => Some(self.status(&delivery, Status::Failed(reason, *failure), "")),
            Outcome::Retry {
                reason, after_ms, ..
            } => {
                tracing::info!(%reason, retry_in_ms = after_ms, "delivery will be retried");
                Some(self.status(
                    &delivery,
                    Status::Retrying {
                        reason,
                        next_attempt_at: Utc::now() + chrono::TimeDelta::milliseconds(*after_ms),
                        attempts: delivery.attempts + 1,
                    },
                    "",
                ))
            }
        };
        let (label, kind) = match &outcome {
            Outcome::Sent { .. } => ("sent", ""),
            Outcome::Retry { kind, .. } => ("retry", *kind),
            Outcome::Failed { kind, .. } => ("failed", *kind),
        };
        if label != "sent" {
            tracing::Span::current().record("otel.status_code", "ERROR");
        }
        let channel_type = channel_kind.map_or("unknown", Kind::as_str);
        metrics::counter!("ism_deliveries_total", "channel_type" => channel_type, "outcome" => label, "reason" => kind)
            .increment(1);
        Some(store::Finished {
            message_id: delivery.message_id,
            outcome,
            event: status.map(TracedEvent::here),
        })
    }

    fn status(&self, delivery: &Delivery, status: Status<'_>, external_message_id: &str) -> Event {
        status_event(
            delivery.workspace_id,
            delivery.message_id,
            delivery.channel_id,
            &delivery.requested_by,
            status,
            external_message_id,
        )
    }

    /// Whether a retry `after_ms` from now would fall past the delivery's retry time of
    /// `retry_for` seconds.
    fn out_of_time(&self, delivery: &Delivery, after_ms: i64, retry_for: u64) -> bool {
        let budget = chrono::TimeDelta::seconds(retry_for as i64);
        Utc::now() + chrono::TimeDelta::milliseconds(after_ms) > delivery.created_at + budget
    }

    fn backoff_ms(&self, attempts: i32) -> i64 {
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(self.settings.delivery_retry_base_ms))
            .with_max_delay(Duration::from_secs(300))
            .with_max_times(usize::MAX)
            .with_jitter()
            .build()
            .nth(attempts.max(0) as usize)
            .unwrap_or(Duration::from_secs(300))
            .as_millis() as i64
    }

    /// Waits for a slot of `key`'s rate limit; `Some(wait)` when none is near.
    async fn slot(&self, key: &str, rate: f64, message_id: Uuid) -> Option<Duration> {
        let burst = (rate / 10.0).ceil() as u32;
        match self.limiter.take(key, rate, burst, RESERVE_AHEAD).await {
            Decision::Allow => None,
            Decision::After(wait) => {
                tokio::time::sleep(wait).await;
                None
            }
            // Spread the waiting deliveries over the next second so they do not all
            // come back at the same instant.
            Decision::Limit(wait) => {
                Some(wait + Duration::from_millis((message_id.as_u128() % 1000) as u64))
            }
        }
    }

    /// Sends `delivery` on `channel`, whose Contact last wrote at `last_inbound` if known.
    async fn send(
        &self,
        channel: &store::Channel,
        credentials: &Result<Credentials, String>,
        last_inbound: Option<DateTime<Utc>>,
        delivery: &Delivery,
    ) -> Step {
        let failed = |reason: String, kind, failure| {
            Step::Done(Outcome::Failed {
                reason,
                kind,
                failure,
            })
        };
        let content = match MessageContent::decode(delivery.content.as_slice()) {
            Ok(content) => content,
            Err(e) => {
                return failed(
                    format!("unreadable message content: {e}"),
                    "internal",
                    DeliveryFailure::Content,
                );
            }
        };
        let credentials = match credentials {
            Ok(credentials) => credentials,
            Err(reason) => return failed(reason.clone(), "internal", DeliveryFailure::Channel),
        };
        let Some(kind) = Kind::parse(&channel.kind) else {
            return failed(
                format!("unknown channel type {}", channel.kind),
                "internal",
                DeliveryFailure::Channel,
            );
        };
        if kind.has_reply_window()
            && !matches!(content.kind, Some(Content::Template(_)))
            && let Some(at) = last_inbound
            && Utc::now() - at > REPLY_WINDOW
        {
            return failed(
                format!(
                    "outside the 24-hour reply window: the Contact last wrote at {}; use a template",
                    at.format("%Y-%m-%d %H:%M UTC")
                ),
                "window",
                DeliveryFailure::Window,
            );
        }
        if let Some(rate) = kind.per_chat_rate_limit() {
            let key = format!("chat:{}:{}", channel.id, delivery.recipient);
            if let Some(wait) = self.slot(&key, rate, delivery.message_id).await {
                return Step::Postpone(wait);
            }
        }
        let full = if channel.rate_limit_per_second > 0 {
            f64::from(channel.rate_limit_per_second)
        } else {
            f64::from(kind.default_rate_limit_per_second())
        };
        let rate = self.pacing.rate(channel.id, full);
        if let Some(wait) = self
            .slot(
                &format!("channel:{}", channel.id),
                rate,
                delivery.message_id,
            )
            .await
        {
            return Step::Postpone(wait);
        }
        let status_callback = format!(
            "{}/webhooks/{}/{}",
            self.public_url,
            kind.as_str(),
            channel.id
        );
        let out = Outgoing {
            message_id: delivery.message_id,
            channel_id: channel.id,
            channel_name: &channel.name,
            recipient: &delivery.recipient,
            content: &content,
            status_callback: &status_callback,
            outbound_url: &channel.outbound_url,
        };
        let base = api_base_url(Some(kind), &channel.api_base_url);
        let timeout = Duration::from_millis(self.settings.delivery_timeout_ms);
        let result = outbound::send(&self.http, timeout, kind, base, credentials, &out).await;
        let retry = |reason: String, after: Option<Duration>, kind| {
            Step::Done(Outcome::Retry {
                after_ms: after.map_or_else(
                    || self.backoff_ms(delivery.attempts),
                    |d| d.as_millis() as i64,
                ),
                reason,
                kind,
            })
        };
        match result {
            Ok(external_message_id) => Step::Done(Outcome::Sent {
                external_message_id,
            }),
            Err(Failure::RateLimited { after, reason }) => {
                self.pacing.limited(channel.id);
                retry(reason, after, "rate_limited")
            }
            Err(Failure::Transient(reason)) => retry(reason, None, "transient"),
            Err(Failure::Auth(reason)) => {
                // Every later message would fail the same way until the credentials change.
                if let Err(e) = store::set_health(&self.pool, channel.id, false, &reason).await {
                    tracing::warn!(error = %e, "flagging the channel unhealthy failed");
                }
                failed(reason, "auth", DeliveryFailure::Channel)
            }
            Err(failure) => failed(
                failure.reason().to_owned(),
                failure.label(),
                failure.delivery_failure(),
            ),
        }
    }
}
