//! Outbound delivery: requests arrive as events and are queued durably; a worker sends
//! them, retries transient failures with backoff and jitter, and reports every final
//! status as `gateway.message.status`.
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use futures::StreamExt;
use ism_platform::config::GatewaySettings;
use ism_platform::events::{self, EventContext, EventHandler, HandlerError};
use ism_proto::events::v1::{DeliveryRequested, Event, MessageStatusChanged};
use ism_proto::types::v1::{DeliveryStatus, MessageContent};
use prost::Message;
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::credentials::{Cipher, Credentials};
use crate::providers::{Kind, custom};
use crate::store::{self, Delivery, Outcome};

/// Queues `*.delivery.requested` events as deliveries.
pub struct Requests {
    pub wake: Arc<Notify>,
}

impl EventHandler for Requests {
    async fn handle(&self, event: Event, ctx: EventContext) -> Result<(), HandlerError> {
        let request: DeliveryRequested =
            events::decode_payload(&event).map_err(HandlerError::Permanent)?;
        let permanent = |field: &str| {
            HandlerError::Permanent(format!("delivery request: {field} is not a UUID"))
        };
        let workspace_id: Uuid = event
            .workspace_id
            .parse()
            .map_err(|_| permanent("workspace_id"))?;
        let message_id: Uuid = request
            .message_id
            .parse()
            .map_err(|_| permanent("message_id"))?;
        let channel_id: Uuid = request
            .channel_id
            .parse()
            .map_err(|_| permanent("channel_id"))?;
        let Some(mut tx) = ctx.begin().await? else {
            return Ok(());
        };
        let owned: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM channels WHERE id = $1 AND workspace_id = $2)",
        )
        .bind(channel_id)
        .bind(workspace_id)
        .fetch_one(&mut *tx)
        .await?;
        if !owned {
            // Reported as a failed delivery rather than dropped, so the sender learns why.
            let status = status_event(
                workspace_id,
                message_id,
                channel_id,
                &request.requested_by,
                DeliveryStatus::Failed,
                "the channel does not exist or was disconnected",
                "",
            );
            events::enqueue(&mut tx, &status).await?;
        } else {
            sqlx::query(
                "INSERT INTO deliveries (message_id, workspace_id, channel_id, requested_by, recipient, content)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (message_id) DO NOTHING",
            )
            .bind(message_id)
            .bind(workspace_id)
            .bind(channel_id)
            .bind(&request.requested_by)
            .bind(&request.recipient_external_id)
            .bind(request.content.unwrap_or_default().encode_to_vec())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.wake.notify_one();
        Ok(())
    }
}

/// A `gateway.message.status` event about one of our messages.
pub(crate) fn status_event(
    workspace_id: Uuid,
    message_id: Uuid,
    channel_id: Uuid,
    requested_by: &str,
    status: DeliveryStatus,
    reason: &str,
    external_message_id: &str,
) -> Event {
    let payload = MessageStatusChanged {
        message_id: message_id.to_string(),
        channel_id: channel_id.to_string(),
        status: status as i32,
        reason: reason.to_owned(),
        external_message_id: external_message_id.to_owned(),
        requested_by: requested_by.to_owned(),
    };
    events::new_event(
        "gateway.message.status",
        workspace_id,
        &message_id.to_string(),
        &payload,
    )
}

/// Sends due deliveries until `shutdown`.
pub struct Worker {
    pub pool: PgPool,
    pub http: reqwest::Client,
    pub cipher: Arc<Cipher>,
    pub settings: GatewaySettings,
    pub wake: Arc<Notify>,
}

impl Worker {
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let lease = self.settings.delivery_timeout_ms as f64 / 1000.0 * 2.0 + 5.0;
        let worker = Arc::new(self);
        while !shutdown.is_cancelled() {
            let due = match store::claim_due(
                &worker.pool,
                worker.settings.delivery_concurrency as i64,
                lease,
            )
            .await
            {
                Ok(due) => due,
                Err(e) => {
                    tracing::warn!(error = %e, "claiming deliveries failed");
                    Vec::new()
                }
            };
            let full = due.len() >= worker.settings.delivery_concurrency;
            futures::stream::iter(due)
                .for_each_concurrent(worker.settings.delivery_concurrency, |delivery| {
                    let worker = worker.clone();
                    async move { worker.attempt(delivery).await }
                })
                .await;
            if !full {
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = worker.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(message_id = %delivery.message_id, attempt = delivery.attempts + 1))]
    async fn attempt(&self, delivery: Delivery) {
        let outcome = match store::channel_by_id(&self.pool, delivery.channel_id).await {
            Ok(Some(channel)) => self.send(&channel, &delivery).await,
            Ok(None) => Outcome::Failed {
                reason: "the channel was disconnected".to_owned(),
                kind: "refused",
            },
            Err(e) => Outcome::Retry {
                after_ms: self.backoff_ms(delivery.attempts),
                reason: format!("database: {e}"),
                kind: "internal",
            },
        };
        let outcome = match outcome {
            Outcome::Retry { reason, kind, .. }
                if delivery.attempts + 1 >= self.settings.delivery_max_attempts =>
            {
                Outcome::Failed {
                    reason: format!(
                        "gave up after {} attempts; last error: {reason}",
                        delivery.attempts + 1
                    ),
                    kind,
                }
            }
            other => other,
        };
        let event = match &outcome {
            Outcome::Sent {
                external_message_id,
            } => Some(self.status(&delivery, DeliveryStatus::Sent, "", external_message_id)),
            Outcome::Failed { reason, .. } => {
                Some(self.status(&delivery, DeliveryStatus::Failed, reason, ""))
            }
            Outcome::Retry {
                reason, after_ms, ..
            } => {
                tracing::info!(%reason, retry_in_ms = after_ms, "delivery will be retried");
                None
            }
        };
        let (label, kind) = match &outcome {
            Outcome::Sent { .. } => ("sent", ""),
            Outcome::Retry { kind, .. } => ("retry", *kind),
            Outcome::Failed { kind, .. } => ("failed", *kind),
        };
        metrics::counter!("ism_deliveries_total", "outcome" => label, "reason" => kind)
            .increment(1);
        if let Err(e) = store::finish_attempt(&self.pool, &delivery, &outcome, event.as_ref()).await
        {
            // The lease runs out and the delivery is attempted again.
            tracing::warn!(error = %e, "recording a delivery attempt failed");
        }
    }

    fn status(
        &self,
        delivery: &Delivery,
        status: DeliveryStatus,
        reason: &str,
        external_message_id: &str,
    ) -> Event {
        status_event(
            delivery.workspace_id,
            delivery.message_id,
            delivery.channel_id,
            &delivery.requested_by,
            status,
            reason,
            external_message_id,
        )
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

    async fn send(&self, channel: &store::Channel, delivery: &Delivery) -> Outcome {
        let content = match MessageContent::decode(delivery.content.as_slice()) {
            Ok(content) => content,
            Err(e) => {
                return Outcome::Failed {
                    reason: format!("unreadable message content: {e}"),
                    kind: "internal",
                };
            }
        };
        let credentials = match &channel.credentials {
            Some(sealed) => match self.cipher.open(channel.id, sealed) {
                Ok(credentials) => credentials,
                Err(e) => {
                    return Outcome::Failed {
                        reason: format!("the channel's credentials cannot be read: {e}"),
                        kind: "internal",
                    };
                }
            },
            None => Credentials::Custom {
                webhook_secret: channel.webhook_secret.clone(),
            },
        };
        let (Some(Kind::Custom), Credentials::Custom { webhook_secret }) =
            (Kind::parse(&channel.kind), &credentials)
        else {
            return Outcome::Failed {
                reason: format!(
                    "sending on {} channels is not available in this version",
                    channel.kind
                ),
                kind: "refused",
            };
        };
        let message = match custom::outbound(
            delivery.message_id.to_string(),
            channel.id.to_string(),
            &delivery.recipient,
            &content,
        ) {
            Ok(message) => message,
            Err(reason) => {
                return Outcome::Failed {
                    reason,
                    kind: "refused",
                };
            }
        };
        let body = match serde_json::to_vec(&message) {
            Ok(body) => body,
            Err(e) => {
                return Outcome::Failed {
                    reason: format!("cannot encode the message: {e}"),
                    kind: "internal",
                };
            }
        };
        let response = self
            .http
            .post(&channel.outbound_url)
            .timeout(Duration::from_millis(self.settings.delivery_timeout_ms))
            .header("content-type", "application/json")
            .header("x-ism-message-id", delivery.message_id.to_string())
            .header(
                custom::signature::HEADER,
                custom::signature::sign(webhook_secret.as_bytes(), &body),
            )
            .body(body)
            .send()
            .await;
        let retry = |reason: String, kind| Outcome::Retry {
            after_ms: self.backoff_ms(delivery.attempts),
            reason,
            kind,
        };
        match response {
            Err(e) if e.is_timeout() => {
                retry("the receiver did not answer in time".to_owned(), "timeout")
            }
            Err(e) => retry(format!("cannot reach the receiver: {e}"), "unreachable"),
            Ok(response) => {
                let code = response.status();
                let text = response.text().await.unwrap_or_default();
                let snippet: String = text.chars().take(200).collect();
                if code.is_success() {
                    let external_message_id = serde_json::from_str::<serde_json::Value>(&text)
                        .ok()
                        .and_then(|v| {
                            v.get("message_id")
                                .and_then(|id| id.as_str())
                                .map(str::to_owned)
                        })
                        .unwrap_or_default();
                    Outcome::Sent {
                        external_message_id,
                    }
                } else if code.is_server_error() || code.as_u16() == 429 || code.as_u16() == 408 {
                    let reason = format!("the receiver answered HTTP {}: {snippet}", code.as_u16());
                    retry(reason, "receiver_error")
                } else {
                    Outcome::Failed {
                        reason: format!(
                            "the receiver refused the message with HTTP {}: {snippet}",
                            code.as_u16()
                        ),
                        kind: "refused",
                    }
                }
            }
        }
    }
}
