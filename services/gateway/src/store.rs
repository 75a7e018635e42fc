//! Channels, accepted inbound messages and outbound deliveries in Postgres.
use chrono::{DateTime, Utc};
use ism_platform::events;
use ism_proto::events::v1::Event;
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use crate::error::Error;

#[derive(Debug, Clone, FromRow)]
pub struct Channel {
    pub id: Uuid,
    pub workspace_id: Uuid,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub name: String,
    pub outbound_url: String,
    pub webhook_secret: String,
    pub created_at: DateTime<Utc>,
}

const CHANNEL_COLUMNS: &str =
    "id, workspace_id, type, name, outbound_url, webhook_secret, created_at";

pub async fn create_channel(pool: &PgPool, channel: &Channel) -> Result<Channel, Error> {
    Ok(sqlx::query_as(
        "INSERT INTO channels (id, workspace_id, type, name, outbound_url, webhook_secret) VALUES ($1, $2, $3, $4, $5, $6)
         RETURNING id, workspace_id, type, name, outbound_url, webhook_secret, created_at",
    )
    .bind(channel.id)
    .bind(channel.workspace_id)
    .bind(&channel.kind)
    .bind(&channel.name)
    .bind(&channel.outbound_url)
    .bind(&channel.webhook_secret)
    .fetch_one(pool)
    .await?)
}

/// A live channel by id alone: for webhooks, where the URL names the channel.
pub async fn channel_by_id(pool: &PgPool, id: Uuid) -> Result<Option<Channel>, Error> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CHANNEL_COLUMNS} FROM channels WHERE id = $1 AND deleted_at IS NULL"
    )))
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// A live channel of `workspace_id`.
pub async fn channel(pool: &PgPool, workspace_id: Uuid, id: Uuid) -> Result<Channel, Error> {
    match channel_by_id(pool, id).await? {
        Some(channel) if channel.workspace_id == workspace_id => Ok(channel),
        _ => Err(Error::ChannelNotFound),
    }
}

pub async fn list_channels(
    pool: &PgPool,
    workspace_id: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Channel>, Error> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CHANNEL_COLUMNS} FROM channels
         WHERE workspace_id = $1 AND deleted_at IS NULL AND ($2::uuid IS NULL OR id > $2) ORDER BY id LIMIT $3"
    )))
    .bind(workspace_id)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Records an inbound message and its event in one transaction. `false` when the
/// provider already delivered this message id (a retry): nothing is written.
pub async fn accept_inbound(
    pool: &PgPool,
    channel: &Channel,
    external_message_id: &str,
    event: &Event,
) -> Result<bool, Error> {
    let mut tx = pool.begin().await?;
    let inserted = sqlx::query(
        "INSERT INTO inbound_messages (id, workspace_id, channel_id, external_message_id) VALUES ($1, $2, $3, $4)
         ON CONFLICT (channel_id, external_message_id) DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(channel.workspace_id)
    .bind(channel.id)
    .bind(external_message_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if inserted == 0 {
        return Ok(false);
    }
    events::enqueue(&mut tx, event).await?;
    tx.commit().await?;
    Ok(true)
}

/// An outbound delivery being worked on.
#[derive(Debug, Clone, FromRow)]
pub struct Delivery {
    pub message_id: Uuid,
    pub workspace_id: Uuid,
    pub channel_id: Uuid,
    pub requested_by: String,
    pub recipient: String,
    pub content: Vec<u8>,
    pub attempts: i32,
}

/// Claims up to `limit` due deliveries for `lease` seconds; a crashed sender's claims
/// fall due again when the lease runs out.
pub async fn claim_due(
    pool: &PgPool,
    limit: i64,
    lease_seconds: f64,
) -> Result<Vec<Delivery>, Error> {
    Ok(sqlx::query_as(
        "UPDATE deliveries SET status = 'sending', locked_until = now() + make_interval(secs => $2), updated_at = now()
         WHERE message_id IN (
             SELECT message_id FROM deliveries
             WHERE next_attempt_at <= now()
               AND (status = 'queued' OR (status = 'sending' AND locked_until < now()))
             ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING message_id, workspace_id, channel_id, requested_by, recipient, content, attempts",
    )
    .bind(limit)
    .bind(lease_seconds)
    .fetch_all(pool)
    .await?)
}

/// How one delivery attempt ended. `kind` is a low-cardinality label for metrics
/// (`timeout`, `unreachable`, `refused`, `receiver_error`, `internal`).
pub enum Outcome {
    Sent {
        external_message_id: String,
    },
    Retry {
        after_ms: i64,
        reason: String,
        kind: &'static str,
    },
    Failed {
        reason: String,
        kind: &'static str,
    },
}

/// Stores an attempt's outcome and, for a final one, the status event, atomically.
pub async fn finish_attempt(
    pool: &PgPool,
    delivery: &Delivery,
    outcome: &Outcome,
    event: Option<&Event>,
) -> Result<(), Error> {
    let mut tx = pool.begin().await?;
    match outcome {
        Outcome::Sent {
            external_message_id,
        } => {
            sqlx::query(
                "UPDATE deliveries SET status = 'sent', attempts = attempts + 1, external_message_id = $2,
                     locked_until = NULL, last_error = '', updated_at = now() WHERE message_id = $1",
            )
            .bind(delivery.message_id)
            .bind(external_message_id)
            .execute(&mut *tx)
            .await?;
        }
        Outcome::Retry {
            after_ms, reason, ..
        } => {
            sqlx::query(
                "UPDATE deliveries SET status = 'queued', attempts = attempts + 1, last_error = $2, locked_until = NULL,
                     next_attempt_at = now() + make_interval(secs => $3), updated_at = now() WHERE message_id = $1",
            )
            .bind(delivery.message_id)
            .bind(reason)
            .bind(*after_ms as f64 / 1000.0)
            .execute(&mut *tx)
            .await?;
        }
        Outcome::Failed { reason, .. } => {
            sqlx::query(
                "UPDATE deliveries SET status = 'failed', attempts = attempts + 1, last_error = $2, locked_until = NULL,
                     updated_at = now() WHERE message_id = $1",
            )
            .bind(delivery.message_id)
            .bind(reason)
            .execute(&mut *tx)
            .await?;
        }
    }
    if let Some(event) = event {
        events::enqueue(&mut tx, event).await?;
    }
    tx.commit().await?;
    Ok(())
}
