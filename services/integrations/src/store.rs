//! SQL of the integrations service's tables, each statement once.
use chrono::{DateTime, Utc};
use ism_platform::db;
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

use crate::error::Error;

use crate::states::{DeliveryState, SessionState, TurnState};

/// What an endpoint defines, as stored.
#[derive(Debug, Clone)]
pub struct Definition {
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    pub channel_ids: Vec<Uuid>,
    pub tags: Vec<String>,
    pub ordered: bool,
    pub rate_limit_per_second: i32,
}

/// A stored endpoint; its secrets sealed.
#[derive(Debug, Clone, FromRow)]
pub struct Endpoint {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub url: String,
    pub description: String,
    pub event_types: Vec<String>,
    pub channel_ids: Vec<Uuid>,
    pub tags: Vec<String>,
    pub ordered: bool,
    pub rate_limit_per_second: i32,
    pub secret: Vec<u8>,
    pub enabled: bool,
    pub disabled_reason: String,
    pub failing_since: Option<DateTime<Utc>>,
    pub last_error: String,
    pub last_success_at: Option<DateTime<Utc>>,
    pub consecutive_failures: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const COLUMNS: &str = "id, workspace_id, url, description, event_types, channel_ids, tags, \
     ordered, rate_limit_per_second, secret, enabled, \
     disabled_reason, failing_since, last_error, last_success_at, consecutive_failures, \
     created_at, updated_at";

pub async fn count_endpoints(conn: &mut PgConnection, workspace_id: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM webhook_endpoints WHERE workspace_id = $1")
        .bind(workspace_id)
        .fetch_one(conn)
        .await
}

pub async fn insert_endpoint(
    conn: &mut PgConnection,
    id: Uuid,
    workspace_id: Uuid,
    definition: &Definition,
    secret: &[u8],
) -> sqlx::Result<Endpoint> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO webhook_endpoints (id, workspace_id, url, description, event_types,
             channel_ids, tags, ordered, rate_limit_per_second, secret)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(workspace_id)
    .bind(&definition.url)
    .bind(&definition.description)
    .bind(&definition.event_types)
    .bind(&definition.channel_ids)
    .bind(&definition.tags)
    .bind(definition.ordered)
    .bind(definition.rate_limit_per_second)
    .bind(secret)
    .fetch_one(conn)
    .await
}

pub async fn endpoint(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Endpoint>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM webhook_endpoints WHERE workspace_id = $1 AND id = $2"
    )))
    .bind(workspace_id)
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn endpoints(conn: &mut PgConnection, workspace_id: Uuid) -> sqlx::Result<Vec<Endpoint>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM webhook_endpoints WHERE workspace_id = $1 ORDER BY id"
    )))
    .bind(workspace_id)
    .fetch_all(conn)
    .await
}

pub async fn update_definition(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    id: Uuid,
    definition: &Definition,
) -> sqlx::Result<Option<Endpoint>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE webhook_endpoints SET url = $3, description = $4, event_types = $5,
             channel_ids = $6, tags = $7, ordered = $8, rate_limit_per_second = $9,
             updated_at = now()
         WHERE workspace_id = $1 AND id = $2 RETURNING {COLUMNS}"
    )))
    .bind(workspace_id)
    .bind(id)
    .bind(&definition.url)
    .bind(&definition.description)
    .bind(&definition.event_types)
    .bind(&definition.channel_ids)
    .bind(&definition.tags)
    .bind(definition.ordered)
    .bind(definition.rate_limit_per_second)
    .fetch_optional(conn)
    .await
}

pub async fn delete_endpoint(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    id: Uuid,
) -> Result<(), Error> {
    db::delete_in_workspace(
        conn,
        "webhook_endpoints",
        workspace_id,
        id,
        "webhook endpoint",
    )
    .await
}

/// Enables an endpoint, clearing its failure record.
pub async fn enable(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Endpoint>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE webhook_endpoints SET enabled = true, disabled_reason = '', failing_since = NULL,
             warned_at = NULL, consecutive_failures = 0, resting_until = NULL, updated_at = now()
         WHERE workspace_id = $1 AND id = $2 RETURNING {COLUMNS}"
    )))
    .bind(workspace_id)
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Disables an endpoint with `reason` and skips its pending deliveries; `None` when it
/// is not there or was already disabled.
pub async fn disable(
    conn: &mut PgConnection,
    id: Uuid,
    reason: &str,
) -> sqlx::Result<Option<Endpoint>> {
    let endpoint: Option<Endpoint> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE webhook_endpoints SET enabled = false, disabled_reason = $2, updated_at = now()
         WHERE id = $1 AND enabled RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(reason)
    .fetch_optional(&mut *conn)
    .await?;
    if endpoint.is_some() {
        sqlx::query(
            "UPDATE webhook_deliveries SET state = $2 WHERE endpoint_id = $1 AND state = $3",
        )
        .bind(id)
        .bind(DeliveryState::Skipped)
        .bind(DeliveryState::Pending)
        .execute(conn)
        .await?;
    }
    Ok(endpoint)
}

pub async fn set_secret(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    id: Uuid,
    secret: &[u8],
    previous_until: DateTime<Utc>,
) -> sqlx::Result<bool> {
    let updated = sqlx::query(
        "UPDATE webhook_endpoints SET previous_secret = secret, secret = $3,
             previous_secret_until = $4, updated_at = now()
         WHERE workspace_id = $1 AND id = $2",
    )
    .bind(workspace_id)
    .bind(id)
    .bind(secret)
    .bind(previous_until)
    .execute(conn)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Every event type some endpoint (enabled or not: a disabled one keeps its events as
/// skipped) subscribes to.
pub async fn subscribed_types(conn: &mut PgConnection) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar("SELECT DISTINCT unnest(event_types) FROM webhook_endpoints")
        .fetch_all(conn)
        .await
}

/// What intake needs of an endpoint to route an event to it.
#[derive(Debug, Clone, FromRow)]
pub struct Subscriber {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub event_types: Vec<String>,
    pub channel_ids: Vec<Uuid>,
    pub tags: Vec<String>,
    pub enabled: bool,
}

pub async fn subscribers(
    conn: &mut PgConnection,
    workspace_ids: &[Uuid],
) -> sqlx::Result<Vec<Subscriber>> {
    sqlx::query_as(
        "SELECT id, workspace_id, event_types, channel_ids, tags, enabled
         FROM webhook_endpoints WHERE workspace_id = ANY($1)",
    )
    .bind(workspace_ids)
    .fetch_all(conn)
    .await
}

/// An event to deliver, stored once.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub event_type: String,
    pub occurred_at: DateTime<Utc>,
    pub body: String,
}

/// Stores `events` and one delivery per (endpoint, event) pair in `deliveries`, each event
/// among `events`; a pair stored before (the same event seen again) stays as it was.
pub async fn insert_deliveries(
    conn: &mut PgConnection,
    events: &[NewEvent],
    deliveries: &[(Uuid, Uuid, DeliveryState)],
) -> sqlx::Result<()> {
    let column = |f: fn(&NewEvent) -> Uuid| events.iter().map(f).collect::<Vec<_>>();
    sqlx::query(
        "INSERT INTO webhook_events (id, workspace_id, event_type, occurred_at, body)
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[], $5::text[])
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(column(|e| e.id))
    .bind(column(|e| e.workspace_id))
    .bind(
        events
            .iter()
            .map(|e| e.event_type.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(events.iter().map(|e| e.occurred_at).collect::<Vec<_>>())
    .bind(events.iter().map(|e| e.body.as_str()).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    let ids: Vec<Uuid> = deliveries.iter().map(|_| Uuid::now_v7()).collect();
    let type_of: std::collections::HashMap<Uuid, &str> = events
        .iter()
        .map(|e| (e.id, e.event_type.as_str()))
        .collect();
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, endpoint_id, event_id, event_type, state)
         SELECT d.id, d.endpoint_id, d.event_id, d.event_type, d.state
         FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[])
             WITH ORDINALITY AS d (id, endpoint_id, event_id, event_type, state, n)
         ORDER BY d.n
         ON CONFLICT (endpoint_id, event_id) DO NOTHING",
    )
    .bind(&ids)
    .bind(deliveries.iter().map(|d| d.0).collect::<Vec<_>>())
    .bind(deliveries.iter().map(|d| d.1).collect::<Vec<_>>())
    .bind(
        deliveries
            .iter()
            .map(|d| type_of.get(&d.1).copied().unwrap_or_default())
            .collect::<Vec<_>>(),
    )
    .bind(deliveries.iter().map(|d| d.2).collect::<Vec<_>>())
    .execute(conn)
    .await?;
    Ok(())
}

/// A delivery claimed for one attempt, with what the attempt needs.
#[derive(Debug, Clone, FromRow)]
pub struct Claim {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub attempts: i32,
    pub url: String,
    pub secret: Vec<u8>,
    pub previous_secret: Option<Vec<u8>>,
    pub previous_secret_until: Option<DateTime<Utc>>,
    pub rate_limit_per_second: i32,
    pub body: String,
}

/// Claims due deliveries: of up to `endpoints` endpoints that have some (none disabled or
/// resting), at most `per_endpoint` in flight each counting the `in_flight` ones here, and
/// of an ordered endpoint only the pending delivery of the earliest event, once it has
/// waited `ordering_window` for earlier events still on their way (events of different
/// conversations and Contacts are taken in in parallel and can arrive out of order). A claim moves
/// the delivery's next attempt `lease` ahead, which is its lease: another replica takes it
/// only after that. Each endpoint's deliveries are read through its own index range, so a
/// claim costs the same whatever the backlog.
pub async fn claim(
    pool: &PgPool,
    endpoints: i64,
    per_endpoint: i64,
    in_flight: &[(Uuid, i64)],
    lease: std::time::Duration,
    ordering_window: std::time::Duration,
) -> sqlx::Result<Vec<Claim>> {
    sqlx::query_as(
        "WITH ready AS (
             SELECT e.id, e.ordered,
                    $2 - coalesce((SELECT f.n FROM unnest($3::uuid[], $5::bigint[]) AS f (id, n)
                                   WHERE f.id = e.id), 0) AS room
             FROM webhook_endpoints e
             WHERE e.enabled AND (e.resting_until IS NULL OR e.resting_until <= now())
               AND EXISTS (SELECT 1 FROM webhook_deliveries d
                           WHERE d.endpoint_id = e.id AND d.state = 'pending'
                             AND d.next_attempt_at <= now())
             LIMIT $1
         ),
         due AS (
             SELECT p.id FROM ready e
             CROSS JOIN LATERAL (
                 SELECT d.id, d.next_attempt_at, d.created_at FROM webhook_deliveries d
                 WHERE d.endpoint_id = e.id AND d.state = 'pending'
                   AND (e.ordered OR d.next_attempt_at <= now())
                 ORDER BY d.event_id
                 LIMIT CASE WHEN e.ordered THEN 1 ELSE greatest(e.room, 0) END
             ) p
             WHERE p.next_attempt_at <= now()
               AND (NOT e.ordered OR p.created_at <= now() - make_interval(secs => $6))
         ),
         claimed AS (
             UPDATE webhook_deliveries d
             SET next_attempt_at = now() + make_interval(secs => $4), attempts = attempts + 1
             FROM due
             WHERE d.id = due.id AND d.state = 'pending' AND d.next_attempt_at <= now()
             RETURNING d.id, d.endpoint_id, d.event_id, d.attempts
         )
         SELECT c.id, c.endpoint_id, c.event_id, c.attempts, e.url, e.secret, e.previous_secret,
                e.previous_secret_until, e.rate_limit_per_second, v.body
         FROM claimed c
         JOIN webhook_endpoints e ON e.id = c.endpoint_id
         JOIN webhook_events v ON v.id = c.event_id",
    )
    .bind(endpoints)
    .bind(per_endpoint)
    .bind(in_flight.iter().map(|(id, _)| *id).collect::<Vec<_>>())
    .bind(lease.as_secs_f64())
    .bind(in_flight.iter().map(|(_, n)| *n).collect::<Vec<_>>())
    .bind(ordering_window.as_secs_f64())
    .fetch_all(pool)
    .await
}

/// Records deliveries answered 2xx, each with its attempt, and their endpoints' success,
/// in one statement each.
pub async fn record_delivered(
    conn: &mut PgConnection,
    delivered: &[(Uuid, Uuid, Attempt)],
) -> sqlx::Result<()> {
    let ids: Vec<Uuid> = delivered.iter().map(|(id, _, _)| *id).collect();
    sqlx::query(
        "INSERT INTO webhook_attempts (delivery_id, number, started_at, duration_ms, status_code,
             error, response_body)
         SELECT d.id, coalesce((SELECT max(a.number) FROM webhook_attempts a WHERE a.delivery_id = d.id), 0) + 1,
                d.started_at, d.duration_ms, d.status_code, '', d.body
         FROM unnest($1::uuid[], $2::timestamptz[], $3::bigint[], $4::int[], $5::text[])
             AS d (id, started_at, duration_ms, status_code, body)",
    )
    .bind(&ids)
    .bind(delivered.iter().map(|(_, _, a)| a.started_at).collect::<Vec<_>>())
    .bind(delivered.iter().map(|(_, _, a)| a.duration_ms).collect::<Vec<_>>())
    .bind(delivered.iter().map(|(_, _, a)| a.status_code).collect::<Vec<_>>())
    .bind(delivered.iter().map(|(_, _, a)| a.response_body.as_str()).collect::<Vec<_>>())
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE webhook_deliveries SET state = 'delivered', next_attempt_at = now() WHERE id = ANY($1)")
        .bind(&ids)
        .execute(&mut *conn)
        .await?;
    let mut endpoints: Vec<Uuid> = delivered.iter().map(|(_, e, _)| *e).collect();
    endpoints.sort_unstable();
    endpoints.dedup();
    for endpoint in endpoints {
        endpoint_answered(conn, endpoint).await?;
    }
    Ok(())
}

/// One POST and what came of it.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub started_at: DateTime<Utc>,
    pub duration_ms: i64,
    pub status_code: i32,
    pub error: String,
    pub response_body: String,
}

/// Logs an attempt as the delivery's next one.
pub async fn insert_attempt(
    conn: &mut PgConnection,
    delivery_id: Uuid,
    attempt: &Attempt,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO webhook_attempts (delivery_id, number, started_at, duration_ms, status_code,
             error, response_body)
         SELECT $1, coalesce(max(number), 0) + 1, $2, $3, $4, $5, $6
         FROM webhook_attempts WHERE delivery_id = $1",
    )
    .bind(delivery_id)
    .bind(attempt.started_at)
    .bind(attempt.duration_ms)
    .bind(attempt.status_code)
    .bind(&attempt.error)
    .bind(&attempt.response_body)
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves a delivery on after an attempt: to `state`, with its next attempt at `next`. A
/// delivery skipped while its attempt was in flight (its endpoint disabled) stays skipped
/// unless the attempt settled it.
pub async fn settle(
    conn: &mut PgConnection,
    delivery_id: Uuid,
    state: DeliveryState,
    next: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE webhook_deliveries
         SET state = CASE WHEN state = 'skipped' AND $2 = 'pending' THEN state ELSE $2 END,
             next_attempt_at = $3
         WHERE id = $1",
    )
    .bind(delivery_id)
    .bind(state)
    .bind(next)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn endpoint_answered(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE webhook_endpoints SET failing_since = NULL, warned_at = NULL, last_error = '',
             consecutive_failures = 0, resting_until = NULL, last_success_at = now()
         WHERE id = $1 AND (consecutive_failures > 0 OR last_success_at IS NULL
             OR last_success_at < now() - interval '1 second')",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// An endpoint's failure record after one more failure.
#[derive(Debug, Clone, FromRow)]
pub struct Failing {
    pub workspace_id: Uuid,
    pub url: String,
    pub failing_since: DateTime<Utc>,
    pub resting_until: Option<DateTime<Utc>>,
    /// Whether this failure passed the warning age (warned now, once).
    pub warn: bool,
}

pub async fn endpoint_failed(
    conn: &mut PgConnection,
    id: Uuid,
    error: &str,
    breaker_failures: i32,
    rest: std::time::Duration,
    warn_after: std::time::Duration,
) -> sqlx::Result<Option<Failing>> {
    sqlx::query_as(
        "UPDATE webhook_endpoints e SET
             failing_since = coalesce(e.failing_since, now()),
             last_error = $2,
             consecutive_failures = e.consecutive_failures + 1,
             resting_until = CASE WHEN e.consecutive_failures + 1 >= $3
                 THEN now() + make_interval(secs => $4) ELSE e.resting_until END,
             warned_at = CASE WHEN e.warned_at IS NULL
                 AND coalesce(e.failing_since, now()) <= now() - make_interval(secs => $5)
                 THEN now() ELSE e.warned_at END
         FROM (SELECT warned_at FROM webhook_endpoints WHERE id = $1) before
         WHERE e.id = $1
         RETURNING e.workspace_id, e.url, e.failing_since, e.resting_until, (before.warned_at IS NULL AND e.warned_at IS NOT NULL) AS warn",
    )
    .bind(id)
    .bind(error)
    .bind(breaker_failures)
    .bind(rest.as_secs_f64())
    .bind(warn_after.as_secs_f64())
    .fetch_optional(conn)
    .await
}

/// A delivery as the log shows it, with its last attempt.
#[derive(Debug, Clone, FromRow)]
pub struct Delivery {
    pub id: Uuid,
    pub endpoint_id: Uuid,
    pub event_id: Uuid,
    pub event_type: String,
    pub state: DeliveryState,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub response_body: Option<String>,
}

const DELIVERY: &str = "SELECT d.id, d.endpoint_id, d.event_id, d.event_type, d.state, d.attempts,
        d.next_attempt_at, d.created_at, a.started_at, a.duration_ms, a.status_code, a.error,
        a.response_body
    FROM webhook_deliveries d
    JOIN webhook_endpoints e ON e.id = d.endpoint_id AND e.workspace_id = $1
    LEFT JOIN LATERAL (SELECT * FROM webhook_attempts a WHERE a.delivery_id = d.id
        ORDER BY a.number DESC LIMIT 1) a ON true";

/// A page of an endpoint's deliveries, newest first, after `before` (a delivery id).
#[allow(clippy::too_many_arguments)]
pub async fn deliveries(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    endpoint_id: Uuid,
    state: Option<DeliveryState>,
    event_type: Option<&str>,
    before: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Delivery>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{DELIVERY}
         WHERE d.endpoint_id = $2 AND ($3::text IS NULL OR d.state = $3)
           AND ($4::text IS NULL OR d.event_type = $4) AND ($5::uuid IS NULL OR d.id < $5)
         ORDER BY d.id DESC LIMIT $6"
    )))
    .bind(workspace_id)
    .bind(endpoint_id)
    .bind(state)
    .bind(event_type)
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await
}

pub async fn delivery(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Delivery>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{DELIVERY} WHERE d.id = $2")))
        .bind(workspace_id)
        .bind(id)
        .fetch_optional(conn)
        .await
}

pub async fn attempts(conn: &mut PgConnection, delivery_id: Uuid) -> sqlx::Result<Vec<Attempt>> {
    let rows: Vec<(DateTime<Utc>, i64, i32, String, String)> = sqlx::query_as(
        "SELECT started_at, duration_ms, status_code, error, response_body
         FROM webhook_attempts WHERE delivery_id = $1 ORDER BY number",
    )
    .bind(delivery_id)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(
            |(started_at, duration_ms, status_code, error, response_body)| Attempt {
                started_at,
                duration_ms,
                status_code,
                error,
                response_body,
            },
        )
        .collect())
}

/// Queues a delivery of the Workspace for an attempt now.
pub async fn resend(conn: &mut PgConnection, workspace_id: Uuid, id: Uuid) -> sqlx::Result<bool> {
    let updated = sqlx::query(
        "UPDATE webhook_deliveries d SET state = 'pending', next_attempt_at = now()
         FROM webhook_endpoints e
         WHERE d.id = $2 AND e.id = d.endpoint_id AND e.workspace_id = $1",
    )
    .bind(workspace_id)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Queues again the failed and skipped deliveries of an endpoint created since `since`,
/// each with a fresh retry schedule.
pub async fn recover(
    conn: &mut PgConnection,
    endpoint_id: Uuid,
    since: DateTime<Utc>,
) -> sqlx::Result<u64> {
    let updated = sqlx::query(
        "UPDATE webhook_deliveries SET state = 'pending', attempts = 0, next_attempt_at = now()
         WHERE endpoint_id = $1 AND state IN ('failed', 'skipped') AND created_at >= $2",
    )
    .bind(endpoint_id)
    .bind(since)
    .execute(conn)
    .await?;
    Ok(updated.rows_affected())
}

/// A stored bot; its backend sealed.
#[derive(Debug, Clone, FromRow)]
pub struct Bot {
    pub id: Uuid,
    pub name: String,
    pub channel_ids: Vec<Uuid>,
    pub backend: Vec<u8>,
    pub timeout_ms: i32,
    pub enabled: bool,
    pub last_error: String,
    pub last_error_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const BOT_COLUMNS: &str = "id, name, channel_ids, backend, timeout_ms, enabled, \
     last_error, last_error_at, created_at, updated_at";

/// What a bot defines, as stored.
#[derive(Debug, Clone)]
pub struct BotDefinition {
    pub name: String,
    pub channel_ids: Vec<Uuid>,
    pub kind: &'static str,
    pub backend: Vec<u8>,
    pub timeout_ms: i32,
}

pub async fn insert_bot(
    conn: &mut PgConnection,
    id: Uuid,
    workspace_id: Uuid,
    definition: &BotDefinition,
) -> sqlx::Result<Bot> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO bots (id, workspace_id, name, channel_ids, kind, backend, timeout_ms)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {BOT_COLUMNS}"
    )))
    .bind(id)
    .bind(workspace_id)
    .bind(&definition.name)
    .bind(&definition.channel_ids)
    .bind(definition.kind)
    .bind(&definition.backend)
    .bind(definition.timeout_ms)
    .fetch_one(conn)
    .await
}

pub async fn bot(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Bot>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {BOT_COLUMNS} FROM bots WHERE workspace_id = $1 AND id = $2"
    )))
    .bind(workspace_id)
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn bots(conn: &mut PgConnection, workspace_id: Uuid) -> sqlx::Result<Vec<Bot>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {BOT_COLUMNS} FROM bots WHERE workspace_id = $1 ORDER BY id"
    )))
    .bind(workspace_id)
    .fetch_all(conn)
    .await
}

pub async fn update_bot(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    id: Uuid,
    definition: &BotDefinition,
) -> sqlx::Result<Option<Bot>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE bots SET name = $3, channel_ids = $4, kind = $5, backend = $6, timeout_ms = $7,
             last_error = '', last_error_at = NULL, updated_at = now()
         WHERE workspace_id = $1 AND id = $2 RETURNING {BOT_COLUMNS}"
    )))
    .bind(workspace_id)
    .bind(id)
    .bind(&definition.name)
    .bind(&definition.channel_ids)
    .bind(definition.kind)
    .bind(&definition.backend)
    .bind(definition.timeout_ms)
    .fetch_optional(conn)
    .await
}

pub async fn delete_bot(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    id: Uuid,
) -> Result<(), Error> {
    db::delete_in_workspace(conn, "bots", workspace_id, id, "bot").await
}

pub async fn set_bot_enabled(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    id: Uuid,
    enabled: bool,
) -> sqlx::Result<Option<Bot>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE bots SET enabled = $3, updated_at = now() WHERE workspace_id = $1 AND id = $2
         RETURNING {BOT_COLUMNS}"
    )))
    .bind(workspace_id)
    .bind(id)
    .bind(enabled)
    .fetch_optional(conn)
    .await
}

/// Whether any Workspace has a bot (the bots queue is bound only then).
pub async fn any_bot(conn: &mut PgConnection) -> sqlx::Result<bool> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM bots)")
        .fetch_one(conn)
        .await
}

/// The enabled bot answering on `channel_id`: the Channel's own, else a Workspace-wide one.
pub async fn bot_for(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    channel_id: Uuid,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar(
        "SELECT id FROM bots
         WHERE workspace_id = $1 AND enabled AND ($2 = ANY(channel_ids) OR channel_ids = '{}')
         ORDER BY cardinality(channel_ids) = 0, id LIMIT 1",
    )
    .bind(workspace_id)
    .bind(channel_id)
    .fetch_optional(conn)
    .await
}

/// Records a bot's failure, in words, for its health.
pub async fn bot_failed(conn: &mut PgConnection, id: Uuid, error: &str) -> sqlx::Result<()> {
    sqlx::query("UPDATE bots SET last_error = $2, last_error_at = now() WHERE id = $1")
        .bind(id)
        .bind(error)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn bot_answered(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE bots SET last_error = '', last_error_at = NULL WHERE id = $1 AND last_error <> ''",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// The state of a conversation's bot session, if it has one.
pub async fn session_state(
    conn: &mut PgConnection,
    conversation_id: Uuid,
) -> sqlx::Result<Option<SessionState>> {
    sqlx::query_scalar("SELECT state FROM bot_sessions WHERE conversation_id = $1")
        .bind(conversation_id)
        .fetch_optional(conn)
        .await
}

pub async fn start_session(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    conversation_id: Uuid,
    bot_id: Uuid,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO bot_sessions (conversation_id, workspace_id, bot_id, state)
         VALUES ($1, $2, $3, $4) ON CONFLICT (conversation_id) DO NOTHING",
    )
    .bind(conversation_id)
    .bind(workspace_id)
    .bind(bot_id)
    .bind(SessionState::Active)
    .execute(conn)
    .await?;
    Ok(())
}

/// Ends an active session (handed over or ended, with the reason) and drops the
/// conversation's turns still to answer.
pub async fn end_session(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    state: SessionState,
    reason: &str,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE bot_sessions SET state = $2, reason = $3, updated_at = now()
         WHERE conversation_id = $1 AND state = $4",
    )
    .bind(conversation_id)
    .bind(state)
    .bind(reason)
    .bind(SessionState::Active)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE bot_turns SET state = $2 WHERE conversation_id = $1 AND state = $3")
        .bind(conversation_id)
        .bind(TurnState::Skipped)
        .bind(TurnState::Pending)
        .execute(conn)
        .await?;
    Ok(())
}

/// A Contact's message for a bot to answer.
#[derive(Debug, Clone, FromRow)]
pub struct Turn {
    pub message_id: Uuid,
    pub workspace_id: Uuid,
    pub conversation_id: Uuid,
    pub contact_id: Uuid,
    pub channel_id: Uuid,
    pub bot_id: Uuid,
    pub text: String,
    pub attempts: i32,
}

pub async fn insert_turn(conn: &mut PgConnection, turn: &Turn) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO bot_turns (message_id, workspace_id, conversation_id, contact_id, channel_id,
             bot_id, text, state)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (message_id) DO NOTHING",
    )
    .bind(turn.message_id)
    .bind(turn.workspace_id)
    .bind(turn.conversation_id)
    .bind(turn.contact_id)
    .bind(turn.channel_id)
    .bind(turn.bot_id)
    .bind(&turn.text)
    .bind(TurnState::Pending)
    .execute(conn)
    .await?;
    Ok(())
}

/// Claims up to `limit` due turns, the earliest pending one of each conversation only (a
/// conversation's messages are answered in order, one at a time), moving each one's next
/// attempt `lease` ahead.
pub async fn claim_turns(
    pool: &PgPool,
    limit: i64,
    lease: std::time::Duration,
) -> sqlx::Result<Vec<Turn>> {
    sqlx::query_as(
        "UPDATE bot_turns t
         SET next_attempt_at = now() + make_interval(secs => $2), attempts = t.attempts + 1
         FROM (
             SELECT d.message_id FROM bot_turns d
             WHERE d.state = 'pending' AND d.next_attempt_at <= now()
               AND d.message_id = (
                   SELECT f.message_id FROM bot_turns f
                   WHERE f.conversation_id = d.conversation_id AND f.state = 'pending'
                   ORDER BY f.created_at, f.message_id LIMIT 1)
             ORDER BY d.next_attempt_at LIMIT $1
         ) due
         WHERE t.message_id = due.message_id AND t.state = 'pending' AND t.next_attempt_at <= now()
         RETURNING t.message_id, t.workspace_id, t.conversation_id, t.contact_id, t.channel_id,
             t.bot_id, t.text, t.attempts",
    )
    .bind(limit)
    .bind(lease.as_secs_f64())
    .fetch_all(pool)
    .await
}

pub async fn finish_turn(
    conn: &mut PgConnection,
    message_id: Uuid,
    state: TurnState,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE bot_turns SET state = $2 WHERE message_id = $1 AND state = 'pending'")
        .bind(message_id)
        .bind(state)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn retry_turn(
    conn: &mut PgConnection,
    message_id: Uuid,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE bot_turns SET next_attempt_at = $2 WHERE message_id = $1 AND state = 'pending'",
    )
    .bind(message_id)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod plan_guard {
    //! The plan guard for webhook delivery (ADR 21): on never-analysed tables holding a
    //! thousand events for two endpoints, intake, the claim and the bookkeeping reach the
    //! growing tables only through keyed probes.
    use super::*;
    use ism_platform::config::ServiceName;
    use ism_platform::{db, plans};

    const GROWING: &[&str] = &["webhook_deliveries", "webhook_events", "webhook_attempts"];

    fn definition(ordered: bool) -> Definition {
        Definition {
            url: "http://203.0.113.1/hook".into(),
            description: String::new(),
            event_types: vec!["contacts.contact.created".into()],
            channel_ids: Vec::new(),
            tags: Vec::new(),
            ordered,
            rate_limit_per_second: 0,
        }
    }

    fn events(workspace_id: Uuid, n: usize) -> Vec<NewEvent> {
        (0..n)
            .map(|_| NewEvent {
                id: Uuid::now_v7(),
                workspace_id,
                event_type: "contacts.contact.created".into(),
                occurred_at: Utc::now(),
                body: "{}".into(),
            })
            .collect()
    }

    fn pairs(events: &[NewEvent], endpoints: &[Uuid]) -> Vec<(Uuid, Uuid, DeliveryState)> {
        events
            .iter()
            .flat_map(|e| endpoints.iter().map(|p| (*p, e.id, DeliveryState::Pending)))
            .collect()
    }

    #[tokio::test]
    async fn delivery_statements_probe_by_key_on_tables_never_analysed() {
        let pool = db::scratch(ServiceName::Integrations, &crate::MIGRATOR)
            .await
            .unwrap();
        plans::never_analysed(&pool, GROWING).await.unwrap();
        let workspace = Uuid::now_v7();
        let (plain, ordered) = (Uuid::now_v7(), Uuid::now_v7());
        let mut conn = pool.acquire().await.unwrap();
        insert_endpoint(&mut conn, plain, workspace, &definition(false), b"s")
            .await
            .unwrap();
        insert_endpoint(&mut conn, ordered, workspace, &definition(true), b"s")
            .await
            .unwrap();
        for _ in 0..10 {
            let batch = events(workspace, 100);
            insert_deliveries(&mut conn, &batch, &pairs(&batch, &[plain, ordered]))
                .await
                .unwrap();
        }
        drop(conn);

        let guarded = plans::guarded_pool(&pool).await.unwrap();
        let lease = std::time::Duration::from_secs(60);
        for round in 0..7 {
            let mut tx = guarded.begin().await.unwrap();
            let batch = events(workspace, 10);
            insert_deliveries(&mut tx, &batch, &pairs(&batch, &[plain, ordered]))
                .await
                .unwrap();
            subscribers(&mut tx, &[workspace]).await.unwrap();
            tx.commit().await.unwrap();
            let claims = claim(
                &guarded,
                64,
                8,
                &[(plain, 2)],
                lease,
                std::time::Duration::ZERO,
            )
            .await
            .unwrap();
            assert!(!claims.is_empty(), "round {round} claimed nothing");
            let attempt = Attempt {
                started_at: Utc::now(),
                duration_ms: 3,
                status_code: 200,
                error: String::new(),
                response_body: "ok".into(),
            };
            let (failed, delivered) = claims.split_first().unwrap();
            let delivered: Vec<_> = delivered
                .iter()
                .map(|c| (c.id, c.endpoint_id, attempt.clone()))
                .collect();
            let mut tx = guarded.begin().await.unwrap();
            record_delivered(&mut tx, &delivered).await.unwrap();
            insert_attempt(&mut tx, failed.id, &attempt).await.unwrap();
            settle(&mut tx, failed.id, DeliveryState::Pending, Utc::now())
                .await
                .unwrap();
            endpoint_failed(&mut tx, failed.endpoint_id, "answered 503", 5, lease, lease)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }

        plans::assert_probes_by_key(&guarded, GROWING, 6).await;
        guarded.close().await;
    }
}
