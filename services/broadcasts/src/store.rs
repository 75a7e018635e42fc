//! SQL of the broadcasts service's tables, each statement once.
use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

use crate::states::{Missed, RecipientStatus, State};

/// A stored broadcast; `audience` and `content` are protobuf encodings.
#[derive(Debug, Clone, FromRow)]
pub struct Broadcast {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub name: String,
    pub channel_id: Uuid,
    pub audience: Vec<u8>,
    pub content: Vec<u8>,
    pub labels: Vec<String>,
    pub state: State,
    pub state_reason: String,
    pub send_at: Option<DateTime<Utc>>,
    pub missed_schedule: Missed,
    pub frozen_after: Option<Uuid>,
    pub audience_frozen: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "id, workspace_id, name, channel_id, audience, content, labels, state, \
     state_reason, send_at, missed_schedule, frozen_after, audience_frozen, created_at, \
     updated_at, started_at, ended_at";

/// What a broadcast defines, as stored.
pub struct Definition {
    pub name: String,
    pub channel_id: Uuid,
    pub audience: Vec<u8>,
    pub content: Vec<u8>,
    pub labels: Vec<String>,
}

pub async fn insert(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    definition: &Definition,
) -> sqlx::Result<Broadcast> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO broadcasts (id, workspace_id, name, channel_id, audience, content, labels, state)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
    )))
    .bind(Uuid::now_v7())
    .bind(workspace_id)
    .bind(&definition.name)
    .bind(definition.channel_id)
    .bind(&definition.audience)
    .bind(&definition.content)
    .bind(&definition.labels)
    .bind(State::Draft)
    .fetch_one(conn)
    .await
}

/// The Workspace's broadcast `id`, if it has one.
pub async fn get(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Broadcast>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM broadcasts WHERE id = $1 AND workspace_id = $2"
    )))
    .bind(id)
    .bind(workspace_id)
    .fetch_optional(conn)
    .await
}

/// Like [`get`], locking the row until the transaction ends: every state change goes
/// through this lock, and a hand-off holds it shared, so a pause waits for the batch
/// being handed over and no batch follows it.
pub async fn lock(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<Broadcast>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM broadcasts WHERE id = $1 AND workspace_id = $2 FOR UPDATE"
    )))
    .bind(id)
    .bind(workspace_id)
    .fetch_optional(conn)
    .await
}

/// A page of the Workspace's broadcasts, newest first, after `before` (an id).
pub async fn list(
    pool: &PgPool,
    workspace_id: Uuid,
    states: &[State],
    label: Option<&str>,
    before: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Broadcast>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM broadcasts
         WHERE workspace_id = $1
           AND (cardinality($2::text[]) = 0 OR state = ANY($2))
           AND ($3::text IS NULL OR $3 = ANY(labels))
           AND ($4::uuid IS NULL OR id < $4)
         ORDER BY id DESC LIMIT $5"
    )))
    .bind(workspace_id)
    .bind(states)
    .bind(label)
    .bind(before)
    .bind(limit)
    .fetch_all(pool)
    .await
}

pub async fn update_definition(
    conn: &mut PgConnection,
    id: Uuid,
    definition: &Definition,
) -> sqlx::Result<Broadcast> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE broadcasts SET name = $2, channel_id = $3, audience = $4, content = $5,
             labels = $6, updated_at = now()
         WHERE id = $1 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(&definition.name)
    .bind(definition.channel_id)
    .bind(&definition.audience)
    .bind(&definition.content)
    .bind(&definition.labels)
    .fetch_one(conn)
    .await
}

pub async fn delete(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM broadcasts WHERE id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// A state change: `send_at` and `missed` set when given, `started_at` stamped on the
/// first start and `ended_at` when the state ends the broadcast.
pub struct Transition<'a> {
    pub to: State,
    pub reason: &'a str,
    pub schedule: Option<(DateTime<Utc>, Missed)>,
}

pub async fn transition(
    conn: &mut PgConnection,
    id: Uuid,
    change: &Transition<'_>,
) -> sqlx::Result<Broadcast> {
    let (send_at, missed) = change.schedule.unzip();
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE broadcasts SET state = $2, state_reason = $3,
             send_at = COALESCE($4, send_at), missed_schedule = COALESCE($5, missed_schedule),
             started_at = CASE WHEN $2 = 'running' THEN COALESCE(started_at, now()) ELSE started_at END,
             ended_at = CASE WHEN $6 THEN now() END,
             updated_at = now()
         WHERE id = $1 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(change.to)
    .bind(change.reason)
    .bind(send_at)
    .bind(missed)
    .bind(change.to.ended())
    .fetch_one(conn)
    .await
}

/// Scheduled broadcasts whose time came, locked; another replica skips them, so each
/// starts once.
pub async fn lock_due(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> sqlx::Result<Vec<Broadcast>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM broadcasts WHERE state = 'scheduled' AND send_at <= $1
         ORDER BY send_at LIMIT $2 FOR UPDATE SKIP LOCKED"
    )))
    .bind(now)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Running broadcasts, oldest first.
pub async fn running(pool: &PgPool, limit: i64) -> sqlx::Result<Vec<Broadcast>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM broadcasts WHERE state = 'running' ORDER BY id LIMIT $1"
    )))
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// Takes (or renews) the lease on freezing `id`'s audience for `owner`, while it runs
/// and is not frozen yet; false when another holds it or there is nothing to freeze.
pub async fn take_lease(
    conn: &mut PgConnection,
    id: Uuid,
    owner: Uuid,
    seconds: f64,
) -> sqlx::Result<bool> {
    let taken = sqlx::query(
        "UPDATE broadcasts SET lease_owner = $2, lease_until = now() + make_interval(secs => $3)
         WHERE id = $1 AND state = 'running' AND NOT audience_frozen
           AND (lease_owner = $2 OR lease_until IS NULL OR lease_until < now())",
    )
    .bind(id)
    .bind(owner)
    .bind(seconds)
    .execute(conn)
    .await?;
    Ok(taken.rows_affected() == 1)
}

/// Moves the freeze's resume point to `after` and renews the lease for `seconds` (or,
/// when `done`, marks the audience frozen and lets the lease go) if `owner` still holds
/// the lease of a running broadcast; false otherwise, and the caller's transaction must
/// not commit.
pub async fn advance_freeze(
    conn: &mut PgConnection,
    id: Uuid,
    owner: Uuid,
    after: Option<Uuid>,
    done: bool,
    seconds: f64,
) -> sqlx::Result<bool> {
    let advanced = sqlx::query(
        "UPDATE broadcasts SET frozen_after = COALESCE($3, frozen_after), audience_frozen = $4,
             lease_owner = CASE WHEN $4 THEN NULL ELSE lease_owner END,
             lease_until = CASE WHEN $4 THEN NULL ELSE now() + make_interval(secs => $5) END
         WHERE id = $1 AND lease_owner = $2 AND state = 'running'",
    )
    .bind(id)
    .bind(owner)
    .bind(after)
    .bind(done)
    .bind(seconds)
    .execute(conn)
    .await?;
    Ok(advanced.rows_affected() == 1)
}

/// One Contact of the frozen audience, as stored.
pub struct NewRecipient {
    pub contact_id: Uuid,
    pub status: RecipientStatus,
    pub reason: String,
    pub external_id: String,
    pub content: Option<Vec<u8>>,
}

/// Stores recipients; a Contact already frozen into the broadcast is left as it is.
pub async fn insert_recipients(
    conn: &mut PgConnection,
    broadcast_id: Uuid,
    rows: &[NewRecipient],
) -> sqlx::Result<()> {
    let ids: Vec<Uuid> = rows.iter().map(|_| Uuid::now_v7()).collect();
    let contacts: Vec<Uuid> = rows.iter().map(|r| r.contact_id).collect();
    let statuses: Vec<RecipientStatus> = rows.iter().map(|r| r.status).collect();
    let reasons: Vec<&str> = rows.iter().map(|r| r.reason.as_str()).collect();
    let external: Vec<&str> = rows.iter().map(|r| r.external_id.as_str()).collect();
    let contents: Vec<Option<&[u8]>> = rows.iter().map(|r| r.content.as_deref()).collect();
    sqlx::query(
        "INSERT INTO recipients (broadcast_id, id, contact_id, status, reason, external_id, content)
         SELECT $1, * FROM UNNEST($2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::bytea[])
         ON CONFLICT (broadcast_id, contact_id) DO NOTHING",
    )
    .bind(broadcast_id)
    .bind(ids)
    .bind(contacts)
    .bind(statuses)
    .bind(reasons)
    .bind(external)
    .bind(contents)
    .execute(conn)
    .await?;
    Ok(())
}

/// A recipient being handed to the gateway.
#[derive(Debug, FromRow)]
pub struct Claimed {
    pub id: Uuid,
    pub external_id: String,
    pub content: Option<Vec<u8>>,
}

/// Recipients handed to the gateway whose outcome is not known yet.
pub async fn queued(conn: &mut PgConnection, broadcast_id: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM recipients WHERE broadcast_id = $1 AND status = 'queued'",
    )
    .bind(broadcast_id)
    .fetch_one(conn)
    .await
}

/// Moves up to `limit` pending recipients to queued and returns them, in Contact order;
/// rows another transaction holds are skipped.
pub async fn claim_pending(
    conn: &mut PgConnection,
    broadcast_id: Uuid,
    limit: i64,
) -> sqlx::Result<Vec<Claimed>> {
    sqlx::query_as(
        "UPDATE recipients r SET status = 'queued', updated_at = now()
         FROM (SELECT contact_id FROM recipients
               WHERE broadcast_id = $1 AND status = 'pending'
               ORDER BY contact_id LIMIT $2 FOR UPDATE SKIP LOCKED) due
         WHERE r.broadcast_id = $1 AND r.contact_id = due.contact_id
         RETURNING r.id, r.external_id, r.content",
    )
    .bind(broadcast_id)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// The broadcast `id` as a hand-off sees it, locked shared: its state cannot change
/// until the hand-off commits.
pub async fn share(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<Broadcast>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM broadcasts WHERE id = $1 FOR SHARE"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// A status report to apply to the recipient whose message is `id`.
pub struct StatusChange<'a> {
    pub id: Uuid,
    pub status: RecipientStatus,
    pub reason: &'a str,
    pub external_message_id: &'a str,
}

/// Applies status reports, each unless it would move its recipient back, in one
/// statement (several reports about one message apply in their order); the recipients
/// that changed, with their broadcast.
pub async fn record_statuses(
    conn: &mut PgConnection,
    changes: &[StatusChange<'_>],
) -> sqlx::Result<Vec<(Uuid, Uuid)>> {
    // One statement updates a row once: a second report about the same message waits
    // for the next statement.
    let mut changed = Vec::with_capacity(changes.len());
    let mut rest: &[StatusChange<'_>] = changes;
    while !rest.is_empty() {
        let mut seen = std::collections::HashSet::new();
        let split = rest
            .iter()
            .position(|c| !seen.insert(c.id))
            .unwrap_or(rest.len());
        let (now, later) = rest.split_at(split);
        let follows: Vec<String> = now
            .iter()
            .map(|c| {
                c.status
                    .follows()
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        let rows: Vec<(Uuid, Uuid)> = sqlx::query_as(
            "UPDATE recipients r SET status = u.status, reason = u.reason,
                 external_message_id = COALESCE(NULLIF(u.ext, ''), r.external_message_id),
                 updated_at = now()
             FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[])
                 AS u(id, status, reason, ext, follows)
             WHERE r.id = u.id AND r.status = ANY(string_to_array(u.follows, ','))
             RETURNING r.id, r.broadcast_id",
        )
        .bind(now.iter().map(|c| c.id).collect::<Vec<_>>())
        .bind(now.iter().map(|c| c.status).collect::<Vec<_>>())
        .bind(now.iter().map(|c| c.reason).collect::<Vec<_>>())
        .bind(
            now.iter()
                .map(|c| c.external_message_id)
                .collect::<Vec<_>>(),
        )
        .bind(follows)
        .fetch_all(&mut *conn)
        .await?;
        changed.extend(rows);
        rest = later;
    }
    Ok(changed)
}

/// Skips every recipient of `broadcast_id` not handed over yet, with `reason`.
pub async fn skip_pending(
    conn: &mut PgConnection,
    broadcast_id: Uuid,
    reason: &str,
) -> sqlx::Result<u64> {
    let skipped = sqlx::query(
        "UPDATE recipients SET status = 'skipped', reason = $2, updated_at = now()
         WHERE broadcast_id = $1 AND status = 'pending'",
    )
    .bind(broadcast_id)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(skipped.rows_affected())
}

/// Completes `id` if it runs, its audience is frozen and every recipient has an outcome;
/// the broadcast when it completed.
pub async fn complete_if_done(
    conn: &mut PgConnection,
    id: Uuid,
) -> sqlx::Result<Option<Broadcast>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE broadcasts SET state = 'completed', ended_at = now(), updated_at = now()
         WHERE id = $1 AND state = 'running' AND audience_frozen
           AND NOT EXISTS (SELECT 1 FROM recipients
                           WHERE broadcast_id = $1 AND status IN ('pending', 'queued'))
         RETURNING {COLUMNS}"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Recipients of `ids` by broadcast, status and reason.
pub async fn outcomes(
    pool: &PgPool,
    ids: &[Uuid],
) -> sqlx::Result<Vec<(Uuid, RecipientStatus, String, i64)>> {
    sqlx::query_as(
        "SELECT broadcast_id, status, reason, count(*) FROM recipients
         WHERE broadcast_id = ANY($1) GROUP BY broadcast_id, status, reason",
    )
    .bind(ids)
    .fetch_all(pool)
    .await
}

/// A recipient as listed.
#[derive(Debug, FromRow)]
pub struct Recipient {
    pub contact_id: Uuid,
    pub status: RecipientStatus,
    pub reason: String,
    pub external_id: String,
    pub external_message_id: String,
    pub updated_at: DateTime<Utc>,
}

/// A page of `broadcast_id`'s recipients in Contact order, after `after`.
pub async fn recipients(
    pool: &PgPool,
    broadcast_id: Uuid,
    statuses: &[RecipientStatus],
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Recipient>> {
    sqlx::query_as(
        "SELECT contact_id, status, reason, external_id, external_message_id, updated_at
         FROM recipients
         WHERE broadcast_id = $1
           AND (cardinality($2::text[]) = 0 OR status = ANY($2))
           AND ($3::uuid IS NULL OR contact_id > $3)
         ORDER BY contact_id LIMIT $4",
    )
    .bind(broadcast_id)
    .bind(statuses)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// How many recipients of the Workspace's broadcast `id` failed; `None` when the
/// Workspace has no such broadcast.
pub async fn failed_count(
    pool: &PgPool,
    workspace_id: Uuid,
    id: Uuid,
) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM recipients WHERE broadcast_id = b.id AND status = 'failed')
         FROM broadcasts b WHERE b.id = $1 AND b.workspace_id = $2",
    )
    .bind(id)
    .bind(workspace_id)
    .fetch_optional(pool)
    .await
}

/// A recipient that failed, to be reached again.
#[derive(Debug, FromRow)]
pub struct Failed {
    pub contact_id: Uuid,
    pub external_id: String,
    pub content: Option<Vec<u8>>,
}

/// The next `limit` failed recipients of `broadcast_id` after Contact `after`.
pub async fn failed_after(
    pool: &PgPool,
    broadcast_id: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<Failed>> {
    sqlx::query_as(
        "SELECT contact_id, external_id, content FROM recipients
         WHERE broadcast_id = $1 AND status = 'failed' AND ($2::uuid IS NULL OR contact_id > $2)
         ORDER BY contact_id LIMIT $3",
    )
    .bind(broadcast_id)
    .bind(after)
    .bind(limit)
    .fetch_all(pool)
    .await
}
