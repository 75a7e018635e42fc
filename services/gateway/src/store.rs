//! Channels, accepted inbound messages and outbound deliveries in Postgres.
use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use ism_platform::events::{self, TracedEvent};
use ism_proto::events::v1::Event;
use ism_proto::types::v1::DeliveryFailure;
use sqlx::types::Json;
use sqlx::{FromRow, PgPool};
use uuid::Uuid;

use crate::credentials::{Cipher, Credentials, OpenError};
use crate::error::Error;

/// A channel row. `credentials` is sealed (see [`crate::credentials::Cipher`]);
/// `webhook_secret` is only set on custom channels created before credentials were
/// sealed, until the gateway's start seals it.
#[derive(Debug, Clone, FromRow)]
pub struct Channel {
    pub id: Uuid,
    pub workspace_id: Uuid,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub name: String,
    pub outbound_url: String,
    pub webhook_secret: String,
    pub credentials: Option<Vec<u8>>,
    pub api_base_url: String,
    pub account_id: String,
    pub healthy: bool,
    pub health_reason: String,
    pub rate_limit_per_second: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Channel {
    /// The channel's credentials, opened with `cipher`.
    pub fn credentials(&self, cipher: &Cipher) -> Result<Credentials, OpenError> {
        match &self.credentials {
            Some(sealed) => cipher.open(self.id, sealed),
            // Created before credentials were sealed; sealed at the next start.
            None => Ok(Credentials::Custom {
                webhook_secret: self.webhook_secret.clone(),
            }),
        }
    }
}

const CHANNEL_COLUMNS: &str = "id, workspace_id, type, name, outbound_url, webhook_secret, credentials, api_base_url, account_id, healthy, health_reason, rate_limit_per_second, created_at, updated_at";

pub async fn create_channel(pool: &PgPool, channel: &Channel) -> Result<Channel, Error> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO channels (id, workspace_id, type, name, outbound_url, webhook_secret, credentials, api_base_url, account_id, rate_limit_per_second)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {CHANNEL_COLUMNS}"
    )))
    .bind(channel.id)
    .bind(channel.workspace_id)
    .bind(&channel.kind)
    .bind(&channel.name)
    .bind(&channel.outbound_url)
    .bind(&channel.webhook_secret)
    .bind(&channel.credentials)
    .bind(&channel.api_base_url)
    .bind(&channel.account_id)
    .bind(channel.rate_limit_per_second)
    .fetch_one(pool)
    .await?)
}

/// Stores a channel's changed settings and credentials.
pub async fn update_channel(pool: &PgPool, channel: &Channel) -> Result<Channel, Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE channels SET name = $2, outbound_url = $3, credentials = $4, webhook_secret = '', api_base_url = $5,
             account_id = $6, rate_limit_per_second = $7, healthy = $8, health_reason = $9, updated_at = now()
         WHERE id = $1 AND deleted_at IS NULL RETURNING {CHANNEL_COLUMNS}"
    )))
    .bind(channel.id)
    .bind(&channel.name)
    .bind(&channel.outbound_url)
    .bind(&channel.credentials)
    .bind(&channel.api_base_url)
    .bind(&channel.account_id)
    .bind(channel.rate_limit_per_second)
    .bind(channel.healthy)
    .bind(&channel.health_reason)
    .fetch_optional(pool)
    .await?
    .ok_or(Error::NotFound("channel"))
}

/// Disconnects a channel; its credentials are erased with it.
pub async fn delete_channel(pool: &PgPool, workspace_id: Uuid, id: Uuid) -> Result<(), Error> {
    let deleted = sqlx::query(
        "UPDATE channels SET deleted_at = now(), credentials = NULL, webhook_secret = '', updated_at = now()
         WHERE id = $1 AND workspace_id = $2 AND deleted_at IS NULL",
    )
    .bind(id)
    .bind(workspace_id)
    .execute(pool)
    .await?
    .rows_affected();
    if deleted == 0 {
        return Err(Error::NotFound("channel"));
    }
    Ok(())
}

/// Records whether the provider accepts the channel's credentials.
pub async fn set_health(pool: &PgPool, id: Uuid, healthy: bool, reason: &str) -> Result<(), Error> {
    sqlx::query(
        "UPDATE channels SET healthy = $2, health_reason = $3, updated_at = now()
         WHERE id = $1 AND (healthy, health_reason) IS DISTINCT FROM ($2, $3)",
    )
    .bind(id)
    .bind(healthy)
    .bind(reason)
    .execute(pool)
    .await?;
    Ok(())
}

/// Seals legacy plain webhook secrets and re-seals credentials sealed with an earlier
/// key; returns how many channels changed. Safe to run from several replicas at once.
pub async fn reseal(pool: &PgPool, cipher: &Cipher) -> Result<usize, Error> {
    let rows: Vec<Channel> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CHANNEL_COLUMNS} FROM channels WHERE deleted_at IS NULL"
    )))
    .fetch_all(pool)
    .await?;
    let mut changed = 0;
    for row in rows {
        let credentials = match &row.credentials {
            Some(sealed) if cipher.is_current(sealed) => continue,
            Some(sealed) => match cipher.open(row.id, sealed) {
                Ok(credentials) => credentials,
                Err(e) => {
                    tracing::error!(channel_id = %row.id, error = %e, "cannot re-seal a channel's credentials");
                    continue;
                }
            },
            None if !row.webhook_secret.is_empty() => Credentials::Custom {
                webhook_secret: row.webhook_secret.clone(),
            },
            None => continue,
        };
        let sealed = cipher.seal(row.id, &credentials)?;
        sqlx::query("UPDATE channels SET credentials = $2, webhook_secret = '' WHERE id = $1 AND credentials IS NOT DISTINCT FROM $3")
            .bind(row.id)
            .bind(sealed)
            .bind(&row.credentials)
            .execute(pool)
            .await?;
        changed += 1;
    }
    Ok(changed)
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

/// The live channels among `ids`, for a batch of deliveries.
pub async fn channels_by_id(pool: &PgPool, ids: &[Uuid]) -> Result<Vec<Channel>, Error> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CHANNEL_COLUMNS} FROM channels WHERE id = ANY($1) AND deleted_at IS NULL"
    )))
    .bind(ids)
    .fetch_all(pool)
    .await?)
}

/// A live channel of `workspace_id`.
pub async fn channel(pool: &PgPool, workspace_id: Uuid, id: Uuid) -> Result<Channel, Error> {
    match channel_by_id(pool, id).await? {
        Some(channel) if channel.workspace_id == workspace_id => Ok(channel),
        _ => Err(Error::NotFound("channel")),
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

/// An inbound message to record: its dedupe key, the reply window it opens, and its event.
pub struct Arrival {
    pub workspace_id: Uuid,
    pub channel_id: Uuid,
    pub external_message_id: String,
    /// The Contact's provider id and when they wrote, on channels with a reply window.
    pub window: Option<(String, DateTime<Utc>)>,
    pub event: TracedEvent,
}

/// Records `arrivals` in one transaction: each new message with its event (and the reply
/// window it opens), each one already recorded (a provider retry, or the same message
/// twice in the batch) skipped. Returns, in order, whether each was new.
pub async fn accept_inbound(pool: &PgPool, arrivals: Vec<Arrival>) -> Result<Vec<bool>, Error> {
    let mut tx = pool.begin().await?;
    let recorded: Vec<(Uuid, String)> = sqlx::query_as(
        "INSERT INTO inbound_messages (id, workspace_id, channel_id, external_message_id)
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[])
         ON CONFLICT (channel_id, external_message_id) DO NOTHING
         RETURNING channel_id, external_message_id",
    )
    .bind(arrivals.iter().map(|_| Uuid::now_v7()).collect::<Vec<_>>())
    .bind(arrivals.iter().map(|a| a.workspace_id).collect::<Vec<_>>())
    .bind(arrivals.iter().map(|a| a.channel_id).collect::<Vec<_>>())
    .bind(
        arrivals
            .iter()
            .map(|a| a.external_message_id.as_str())
            .collect::<Vec<_>>(),
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut unclaimed: HashSet<(Uuid, String)> = recorded.into_iter().collect();
    let new: Vec<bool> = arrivals
        .iter()
        .map(|a| unclaimed.remove(&(a.channel_id, a.external_message_id.clone())))
        .collect();

    // One row per (channel, contact): an upsert may not touch a row twice.
    let mut windows: HashMap<(Uuid, &str), DateTime<Utc>> = HashMap::new();
    for (arrival, _) in arrivals.iter().zip(&new).filter(|(_, new)| **new) {
        if let Some((contact, at)) = &arrival.window {
            let latest = windows.entry((arrival.channel_id, contact)).or_insert(*at);
            *latest = (*latest).max(*at);
        }
    }
    if !windows.is_empty() {
        let (keys, times): (Vec<_>, Vec<_>) = windows.into_iter().unzip();
        let (channels, contacts): (Vec<_>, Vec<_>) = keys.into_iter().unzip();
        sqlx::query(
            "INSERT INTO reply_windows (channel_id, contact, last_inbound_at)
             SELECT * FROM unnest($1::uuid[], $2::text[], $3::timestamptz[])
             ON CONFLICT (channel_id, contact) DO UPDATE
             SET last_inbound_at = greatest(reply_windows.last_inbound_at, excluded.last_inbound_at)",
        )
        .bind(channels)
        .bind(contacts)
        .bind(times)
        .execute(&mut *tx)
        .await?;
    }
    let events: Vec<TracedEvent> = arrivals
        .into_iter()
        .zip(&new)
        .filter(|(_, new)| **new)
        .map(|(a, _)| a.event)
        .collect();
    events::enqueue_traced(&mut tx, &events).await?;
    tx.commit().await?;
    Ok(new)
}

/// When each of `contacts` (channel, contact) last wrote, for those we ever saw write.
pub async fn last_inbound(
    pool: &PgPool,
    contacts: &[(Uuid, String)],
) -> Result<HashMap<(Uuid, String), DateTime<Utc>>, Error> {
    if contacts.is_empty() {
        return Ok(HashMap::new());
    }
    let (channels, names): (Vec<Uuid>, Vec<String>) = contacts.iter().cloned().unzip();
    let rows: Vec<(Uuid, String, DateTime<Utc>)> = sqlx::query_as(
        // One key probe per contact (ADR 15, ADR 21): a join to the list may be hashed
        // over every reply window, and so may a LATERAL without its LIMIT in a generic
        // plan made while the table was small.
        "SELECT w.channel_id, w.contact, w.last_inbound_at
         FROM unnest($1::uuid[], $2::text[]) AS c(channel_id, contact)
         CROSS JOIN LATERAL (
             SELECT channel_id, contact, last_inbound_at FROM reply_windows
             WHERE channel_id = c.channel_id AND contact = c.contact LIMIT 1) AS w",
    )
    .bind(channels)
    .bind(names)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(channel, contact, at)| ((channel, contact), at))
        .collect())
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
    /// When the delivery was asked for: its retry budget counts from here.
    pub created_at: DateTime<Utc>,
    /// The trace context of the request it was queued for.
    pub trace: Json<BTreeMap<String, String>>,
}

/// Claims up to `limit` due deliveries for `lease` seconds; a crashed sender's claims
/// fall due again when the lease runs out.
pub async fn claim_due(
    pool: &PgPool,
    limit: i64,
    lease_seconds: f64,
    withheld: &[Uuid],
) -> Result<Vec<Delivery>, Error> {
    Ok(sqlx::query_as(
        "UPDATE deliveries SET status = 'sending', locked_until = now() + make_interval(secs => $2), updated_at = now()
         WHERE message_id IN (
             SELECT message_id FROM deliveries d
             WHERE next_attempt_at <= now()
               AND (status = 'queued' OR (status = 'sending' AND locked_until < now()))
               AND NOT (message_id = ANY($3))
               -- One recipient's messages leave in the order they were asked for.
               AND NOT EXISTS (
                   SELECT 1 FROM deliveries e
                   WHERE e.channel_id = d.channel_id AND e.recipient = d.recipient
                     AND e.status IN ('queued', 'sending')
                     AND (e.created_at, e.message_id) < (d.created_at, d.message_id))
             ORDER BY next_attempt_at, created_at, message_id LIMIT $1 FOR UPDATE SKIP LOCKED)
         RETURNING message_id, workspace_id, channel_id, requested_by, recipient, content, attempts, created_at, trace",
    )
    // Planned afresh each time: a plan cached while the queue was empty would sort the
    // whole table once it is not.
    .persistent(false)
    .bind(limit)
    .bind(lease_seconds)
    .bind(withheld)
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
        failure: DeliveryFailure,
    },
}

/// Puts a claimed delivery back, due after `after_ms`, without counting an attempt
/// (the channel's rate limit said wait).
pub async fn postpone(pool: &PgPool, message_id: Uuid, after_ms: i64) -> Result<(), Error> {
    sqlx::query(
        "UPDATE deliveries SET status = 'queued', locked_until = NULL,
             next_attempt_at = now() + make_interval(secs => $2), updated_at = now()
         WHERE message_id = $1",
    )
    .bind(message_id)
    .bind(after_ms as f64 / 1000.0)
    .execute(pool)
    .await?;
    Ok(())
}

/// One delivery attempt's end: its outcome and, for a final one, the status event.
pub struct Finished {
    pub message_id: Uuid,
    pub outcome: Outcome,
    /// The status to report, in the trace of the attempt that reached it.
    pub event: Option<TracedEvent>,
}

/// Stores the outcomes of a batch of attempts and their status events in one
/// transaction: one statement for the deliveries, one for the events.
pub async fn finish_attempts(pool: &PgPool, finished: &[Finished]) -> Result<(), Error> {
    if finished.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(finished.len());
    let mut statuses = Vec::with_capacity(finished.len());
    let mut external_ids = Vec::with_capacity(finished.len());
    let mut errors = Vec::with_capacity(finished.len());
    let mut delays = Vec::with_capacity(finished.len());
    for attempt in finished {
        let (status, external, error, delay) = match &attempt.outcome {
            Outcome::Sent {
                external_message_id,
            } => ("sent", external_message_id.as_str(), "", 0.0),
            Outcome::Retry {
                after_ms, reason, ..
            } => ("queued", "", reason.as_str(), *after_ms as f64 / 1000.0),
            Outcome::Failed { reason, .. } => ("failed", "", reason.as_str(), 0.0),
        };
        ids.push(attempt.message_id);
        statuses.push(status);
        external_ids.push(external);
        errors.push(error);
        delays.push(delay);
    }
    let mut tx = pool.begin().await?;
    sqlx::query(
        "UPDATE deliveries d SET status = u.status, attempts = d.attempts + 1, last_error = u.last_error,
             external_message_id = CASE WHEN u.status = 'sent' THEN u.external_message_id ELSE d.external_message_id END,
             next_attempt_at = CASE WHEN u.status = 'queued' THEN now() + make_interval(secs => u.delay)
                                    ELSE d.next_attempt_at END,
             locked_until = NULL, updated_at = now()
         FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::float8[])
             AS u(message_id, status, external_message_id, last_error, delay)
         WHERE d.message_id = ANY($1) AND d.message_id = u.message_id",
    )
    // Planned afresh each time (ADR 21): a generic plan made while the table was small
    // scans every delivery.
    .persistent(false)
    .bind(ids)
    .bind(statuses)
    .bind(external_ids)
    .bind(errors)
    .bind(delays)
    .execute(&mut *tx)
    .await?;
    let events: Vec<TracedEvent> = finished.iter().filter_map(|f| f.event.clone()).collect();
    events::enqueue_traced(&mut tx, &events).await?;
    tx.commit().await?;
    Ok(())
}

/// Whether `external_message_id` is a message we sent on `channel_id` (so its echo is ours).
pub async fn is_our_message(
    pool: &PgPool,
    channel_id: Uuid,
    external_message_id: &str,
) -> Result<bool, Error> {
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM deliveries WHERE channel_id = $1 AND external_message_id = $2)",
    )
    .bind(channel_id)
    .bind(external_message_id)
    .fetch_one(pool)
    .await?)
}

/// A delivery a receipt moved forward.
#[derive(Debug, FromRow)]
pub struct Receipted {
    pub message_id: Uuid,
    pub workspace_id: Uuid,
    pub requested_by: String,
    pub external_message_id: String,
}

const RECEIPT_RANK: &str =
    "(CASE receipt WHEN '' THEN 0 WHEN 'delivered' THEN 1 WHEN 'read' THEN 2 ELSE 3 END)
    < (CASE $2 WHEN 'delivered' THEN 1 WHEN 'read' THEN 2 WHEN 'failed' THEN 3 ELSE 0 END)";

/// Moves the receipts of the named deliveries forward (never back: a late `delivered`
/// after `read` changes nothing) and enqueues, in the same transaction, one status event
/// per delivery that moved, built by `event`. Returns how many moved.
pub async fn apply_receipt(
    pool: &PgPool,
    channel_id: Uuid,
    receipt: &str,
    reason: &str,
    ids: Option<&[String]>,
    watermark: Option<(&str, DateTime<Utc>)>,
    event: impl Fn(&Receipted) -> Event,
) -> Result<usize, Error> {
    let mut tx = pool.begin().await?;
    let moved: Vec<Receipted> = match (ids, watermark) {
        (Some(ids), _) => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "UPDATE deliveries SET receipt = $2, last_error = CASE WHEN $2 = 'failed' THEN $4 ELSE last_error END,
                     status = CASE WHEN $2 = 'failed' THEN 'failed' ELSE status END, updated_at = now()
                 WHERE channel_id = $1 AND external_message_id = ANY($3) AND {RECEIPT_RANK}
                 RETURNING message_id, workspace_id, requested_by, external_message_id"
            )))
            .bind(channel_id)
            .bind(receipt)
            .bind(ids)
            .bind(reason)
            .fetch_all(&mut *tx)
            .await?
        }
        (None, Some((recipient, until))) => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "UPDATE deliveries SET receipt = $2, updated_at = now()
                 WHERE channel_id = $1 AND recipient = $3 AND status = 'sent' AND created_at <= $4 AND {RECEIPT_RANK}
                 RETURNING message_id, workspace_id, requested_by, external_message_id"
            )))
            .bind(channel_id)
            .bind(receipt)
            .bind(recipient)
            .bind(until)
            .fetch_all(&mut *tx)
            .await?
        }
        (None, None) => Vec::new(),
    };
    for row in &moved {
        events::enqueue(&mut tx, &event(row)).await?;
    }
    tx.commit().await?;
    Ok(moved.len())
}
