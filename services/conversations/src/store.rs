//! Conversations and messages in Postgres.
use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

use crate::error::Error;
use crate::states::{Author, Delivery, Direction, Status, Timer};

#[derive(Debug, Clone, FromRow)]
pub struct Conversation {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub contact_id: Uuid,
    pub channel_id: Uuid,
    pub contact_external_id: String,
    pub channel_type: i32,
    pub status: Status,
    pub opened_by: Author,
    pub opened_by_id: String,
    pub created_at: DateTime<Utc>,
    pub last_message_at: DateTime<Utc>,
    pub snoozed_until: Option<DateTime<Utc>>,
    pub assignee_user_id: Option<Uuid>,
    pub assignee_team_id: Option<Uuid>,
    pub closed_at: Option<DateTime<Utc>>,
    pub closing_category: String,
    pub closing_summary: String,
    pub first_response_at: Option<DateTime<Utc>>,
    pub response_count: i32,
    pub last_message_from: Author,
    pub waiting_since: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, FromRow)]
pub struct Message {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub direction: Direction,
    pub content: Vec<u8>,
    pub status: Delivery,
    pub failure_reason: String,
    pub external_message_id: String,
    pub sent_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub sender: Author,
    pub sender_id: String,
    pub mentions: Vec<Uuid>,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub retry_reason: String,
}

pub(crate) const CONVERSATION: &str = "id, workspace_id, contact_id, channel_id, contact_external_id, channel_type, status, \
     opened_by, opened_by_id, created_at, last_message_at, snoozed_until, assignee_user_id, assignee_team_id, \
     closed_at, closing_category, closing_summary, first_response_at, response_count, last_message_from, waiting_since";
const MESSAGE: &str = "id, conversation_id, direction, content, status, failure_reason, external_message_id, sent_at, \
     created_at, sender, sender_id, mentions, next_attempt_at, retry_reason";

/// Who a conversation is with, on which channel.
pub struct Party<'a> {
    pub workspace_id: Uuid,
    pub contact_id: Uuid,
    pub channel_id: Uuid,
    pub channel_type: i32,
    pub contact_external_id: &'a str,
}

impl Party<'_> {
    /// Workspace, Contact and Channel: the party's one active conversation at most.
    pub fn key(&self) -> (Uuid, Uuid, Uuid) {
        (self.workspace_id, self.contact_id, self.channel_id)
    }
}

/// What finding the Contact's conversation did to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// A new conversation was opened.
    Opened,
    /// A snoozed conversation was woken.
    Woken,
    /// The open conversation.
    Open,
}

/// The contact's active conversation on the channel, woken if snoozed, or a new one
/// opened by the Contact at `at`.
pub async fn open_or_find(
    conn: &mut PgConnection,
    party: &Party<'_>,
    at: DateTime<Utc>,
) -> Result<(Conversation, Found), Error> {
    // A conversation opened concurrently is found on the next round.
    for _ in 0..3 {
        let active: Option<Conversation> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {CONVERSATION} FROM conversations
             WHERE workspace_id = $1 AND contact_id = $2 AND channel_id = $3 AND status <> 'closed'
             FOR UPDATE"
        )))
        .bind(party.workspace_id)
        .bind(party.contact_id)
        .bind(party.channel_id)
        .fetch_optional(&mut *conn)
        .await?;
        match active {
            Some(active) if active.status == Status::Open => return Ok((active, Found::Open)),
            Some(active) => {
                let conversation = sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "UPDATE conversations SET status = 'open', snoozed_until = NULL WHERE id = $1 RETURNING {CONVERSATION}"
                )))
                .bind(active.id)
                .fetch_one(&mut *conn)
                .await?;
                cancel_timer(conn, active.id, Timer::Wake).await?;
                return Ok((conversation, Found::Woken));
            }
            None => {}
        }
        let inserted: Option<Conversation> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO conversations (id, workspace_id, contact_id, channel_id, contact_external_id, channel_type,
                                        opened_by, opened_by_id, created_at, last_message_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'contact', $3::text, $7, $7) ON CONFLICT DO NOTHING
             RETURNING {CONVERSATION}"
        )))
        .bind(Uuid::now_v7())
        .bind(party.workspace_id)
        .bind(party.contact_id)
        .bind(party.channel_id)
        .bind(party.contact_external_id)
        .bind(party.channel_type)
        .bind(at)
        .fetch_optional(&mut *conn)
        .await?;
        if let Some(conversation) = inserted {
            return Ok((conversation, Found::Opened));
        }
    }
    Err(Error::Aborted(
        "the conversation changed concurrently; retry".into(),
    ))
}

/// The active conversations of `parties` (workspace, contact, channel), locked until
/// the transaction ends, by party.
pub async fn lock_active(
    conn: &mut PgConnection,
    parties: &[(Uuid, Uuid, Uuid)],
) -> Result<HashMap<(Uuid, Uuid, Uuid), Conversation>, Error> {
    // Locked one party at a time in party order, so two batches sharing conversations
    // never wait on each other in opposite orders; one index probe each.
    let mut parties = parties.to_vec();
    parties.sort_unstable();
    parties.dedup();
    let active: Vec<Conversation> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT c.* FROM unnest($1::uuid[], $2::uuid[], $3::uuid[]) AS p(w, ct, ch)
         CROSS JOIN LATERAL (
             SELECT {CONVERSATION} FROM conversations
             WHERE workspace_id = p.w AND contact_id = p.ct AND channel_id = p.ch AND status <> 'closed'
             LIMIT 1 FOR UPDATE) AS c"
    )))
    .bind(parties.iter().map(|p| p.0).collect::<Vec<_>>())
    .bind(parties.iter().map(|p| p.1).collect::<Vec<_>>())
    .bind(parties.iter().map(|p| p.2).collect::<Vec<_>>())
    .fetch_all(&mut *conn)
    .await?;
    Ok(active
        .into_iter()
        .map(|c| ((c.workspace_id, c.contact_id, c.channel_id), c))
        .collect())
}

/// A conversation opened from our side (a User's or a workflow's reply after the last
/// one closed).
pub async fn open_from_workspace(
    conn: &mut PgConnection,
    closed: &Conversation,
    opened_by: Author,
    opened_by_id: &str,
    at: DateTime<Utc>,
) -> Result<Conversation, Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO conversations (id, workspace_id, contact_id, channel_id, contact_external_id, channel_type,
                                    opened_by, opened_by_id, created_at, last_message_at, waiting_since)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, NULL) ON CONFLICT DO NOTHING
         RETURNING {CONVERSATION}"
    )))
    .bind(Uuid::now_v7())
    .bind(closed.workspace_id)
    .bind(closed.contact_id)
    .bind(closed.channel_id)
    .bind(&closed.contact_external_id)
    .bind(closed.channel_type)
    .bind(opened_by)
    .bind(opened_by_id)
    .bind(at)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(Error::Aborted(
        "the Contact opened a new conversation meanwhile; reply there".into(),
    ))
}

/// A new message row.
pub struct NewMessage<'a> {
    pub workspace_id: Uuid,
    pub conversation_id: Uuid,
    pub channel_id: Uuid,
    pub direction: Direction,
    pub content: Vec<u8>,
    pub status: Delivery,
    pub external_message_id: &'a str,
    pub client_message_id: Option<&'a str>,
    pub sent_at: DateTime<Utc>,
    pub sender: Author,
    pub sender_id: &'a str,
    pub mentions: &'a [Uuid],
}

/// Inserts `message`; `None` when it already exists (same inbound id or client id).
pub async fn insert_message(
    conn: &mut PgConnection,
    message: &NewMessage<'_>,
) -> Result<Option<Message>, Error> {
    Ok(insert_messages(conn, std::slice::from_ref(message))
        .await?
        .pop())
}

/// Inserts `messages` with one statement, in order; those that already exist (same
/// inbound id or client id) are left out of the answer.
pub async fn insert_messages(
    conn: &mut PgConnection,
    messages: &[NewMessage<'_>],
) -> Result<Vec<Message>, Error> {
    fn column<'m, 'a, T>(
        messages: &'m [NewMessage<'a>],
        field: impl Fn(&'m NewMessage<'a>) -> T,
    ) -> Vec<T> {
        messages.iter().map(field).collect()
    }
    let ids: Vec<Uuid> = messages.iter().map(|_| Uuid::now_v7()).collect();
    let mut inserted: Vec<Message> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO messages (id, workspace_id, conversation_id, channel_id, direction, content, status,
                               external_message_id, client_message_id, sent_at, sender, sender_id, mentions)
         SELECT id, w, c, ch, d, body, st, ext, client, sent, s, sid, string_to_array(mentions, ',')::uuid[]
         FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::bytea[], $7::text[],
                     $8::text[], $9::text[], $10::timestamptz[], $11::text[], $12::text[], $13::text[])
              WITH ORDINALITY AS m(id, w, c, ch, d, body, st, ext, client, sent, s, sid, mentions, n)
         ORDER BY n
         ON CONFLICT DO NOTHING RETURNING {MESSAGE}"
    )))
    .bind(&ids)
    .bind(column(messages, |m| m.workspace_id))
    .bind(column(messages, |m| m.conversation_id))
    .bind(column(messages, |m| m.channel_id))
    .bind(column(messages, |m| m.direction))
    .bind(column(messages, |m| m.content.as_slice()))
    .bind(column(messages, |m| m.status))
    .bind(column(messages, |m| m.external_message_id))
    .bind(column(messages, |m| m.client_message_id))
    .bind(column(messages, |m| m.sent_at))
    .bind(column(messages, |m| m.sender))
    .bind(column(messages, |m| m.sender_id))
    // Arrays of arrays must be rectangular in Postgres, so each row's mentions travel
    // as one comma-separated string.
    .bind(column(messages, |m| {
        m.mentions
            .iter()
            .map(Uuid::to_string)
            .collect::<Vec<_>>()
            .join(",")
    }))
    .fetch_all(&mut *conn)
    .await?;
    // RETURNING promises no order.
    let position: HashMap<Uuid, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    inserted.sort_by_key(|m| position.get(&m.id).copied());
    Ok(inserted)
}

/// Which of the provider messages `(workspace, channel, provider id)` are already stored.
pub async fn stored_inbound(
    conn: &mut PgConnection,
    keys: &[(Uuid, Uuid, &str)],
) -> Result<HashSet<(Uuid, Uuid, String)>, Error> {
    // One index probe per key (LATERAL ... LIMIT 1): a join the planner may hash would
    // read the whole table once its statistics are stale.
    let rows: Vec<(Uuid, Uuid, String)> = sqlx::query_as(
        "SELECT k.w, k.ch, k.ext FROM unnest($1::uuid[], $2::uuid[], $3::text[]) AS k(w, ch, ext)
         CROSS JOIN LATERAL (
             SELECT 1 FROM messages m
             WHERE m.workspace_id = k.w AND m.channel_id = k.ch AND m.external_message_id = k.ext
               AND m.direction = 'inbound'
             LIMIT 1) AS hit",
    )
    .bind(keys.iter().map(|k| k.0).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.1).collect::<Vec<_>>())
    .bind(keys.iter().map(|k| k.2).collect::<Vec<_>>())
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().collect())
}

pub async fn message_by_client_id(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    client_message_id: &str,
) -> Result<Option<Message>, Error> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {MESSAGE} FROM messages WHERE workspace_id = $1 AND client_message_id = $2"
    )))
    .bind(workspace_id)
    .bind(client_message_id)
    .fetch_optional(&mut *conn)
    .await?)
}

/// Applies a new message to its conversation: activity, waiting time, responses, and
/// the auto-close timer, which only a User's reply starts and the Contact's message
/// stops. `now` is the service clock's time, `sent_at` the message's.
pub async fn record_message(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    sender: Author,
    sent_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), Error> {
    if sender == Author::Contact {
        return record_inbound(conn, &[(conversation_id, sent_at)]).await;
    }
    sqlx::query(
        "UPDATE conversations SET
             last_message_at   = greatest(last_message_at, $3),
             last_message_from = $2,
             waiting_since     = CASE WHEN $2 = 'user' THEN NULL ELSE waiting_since END,
             first_response_at = CASE WHEN $2 = 'user' THEN coalesce(first_response_at, $3) ELSE first_response_at END,
             response_count    = response_count + (CASE WHEN $2 = 'user' THEN 1 ELSE 0 END)
         WHERE id = $1",
    )
    .bind(conversation_id)
    .bind(sender)
    .bind(sent_at)
    .execute(&mut *conn)
    .await?;
    if sender == Author::User {
        sqlx::query(
                "INSERT INTO conversation_timers (conversation_id, kind, workspace_id, due_at)
                 SELECT c.id, 'auto_close', c.workspace_id,
                        $2 + make_interval(mins => coalesce(s.auto_close_minutes, 1440))
                 FROM conversations c LEFT JOIN workspace_settings s ON s.workspace_id = c.workspace_id
                 WHERE c.id = $1
                 ON CONFLICT (conversation_id, kind) DO UPDATE SET due_at = excluded.due_at",
            )
            .bind(conversation_id)
            .bind(now)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// Applies Contacts' messages `(conversation, sent at)` to their conversations with one
/// statement: activity, the wait that the earliest one starts, and the auto-close
/// timer they stop.
pub async fn record_inbound(
    conn: &mut PgConnection,
    messages: &[(Uuid, DateTime<Utc>)],
) -> Result<(), Error> {
    let mut spans: HashMap<Uuid, (DateTime<Utc>, DateTime<Utc>)> = HashMap::new();
    for &(conversation_id, sent_at) in messages {
        let span = spans.entry(conversation_id).or_insert((sent_at, sent_at));
        *span = (span.0.min(sent_at), span.1.max(sent_at));
    }
    let (ids, spans): (Vec<Uuid>, Vec<_>) = spans.into_iter().unzip();
    let (first, last): (Vec<DateTime<Utc>>, Vec<DateTime<Utc>>) = spans.into_iter().unzip();
    sqlx::query(
        "WITH stop AS (
             DELETE FROM conversation_timers WHERE conversation_id = ANY($1) AND kind = 'auto_close'
         )
         UPDATE conversations SET
             last_message_at   = greatest(last_message_at, ($3::timestamptz[])[array_position($1, id)]),
             last_message_from = 'contact',
             waiting_since     = coalesce(waiting_since, ($2::timestamptz[])[array_position($1, id)])
         WHERE id = ANY($1)",
    )
    // Planned afresh each time: a plan cached while the table was small would scan it.
    .persistent(false)
    .bind(ids)
    .bind(first)
    .bind(last)
    .execute(conn)
    .await?;
    Ok(())
}

/// Forgets a conversation's timer of `kind`.
pub async fn cancel_timer(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    kind: Timer,
) -> Result<(), Error> {
    sqlx::query("DELETE FROM conversation_timers WHERE conversation_id = $1 AND kind = $2")
        .bind(conversation_id)
        .bind(kind)
        .execute(conn)
        .await?;
    Ok(())
}

/// The message's conversation, when the message is ours and the status moved forward.
pub struct Advanced {
    pub conversation_id: Uuid,
}

/// Moves a message's delivery status forward; a late or repeated report never moves it
/// back (read stays read when a `sent` arrives after it).
pub async fn advance_status(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    id: Uuid,
    status: Delivery,
    reason: &str,
    external_message_id: &str,
) -> Result<Option<Advanced>, Error> {
    let updated: Option<(Uuid,)> = sqlx::query_as(
        "UPDATE messages SET status = $3, failure_reason = $4, next_attempt_at = NULL, retry_reason = '',
             external_message_id = CASE WHEN $5 = '' THEN external_message_id ELSE $5 END
         WHERE workspace_id = $1 AND id = $2 AND direction = 'outbound'
           AND (CASE status WHEN 'pending' THEN 1 WHEN 'sent' THEN 2 WHEN 'delivered' THEN 3 WHEN 'read' THEN 4 ELSE 5 END)
             < (CASE $3 WHEN 'pending' THEN 1 WHEN 'sent' THEN 2 WHEN 'delivered' THEN 3 WHEN 'read' THEN 4 ELSE 5 END)
         RETURNING conversation_id",
    )
    .bind(workspace_id)
    .bind(id)
    .bind(status)
    .bind(reason)
    .bind(external_message_id)
    .fetch_optional(conn)
    .await?;
    Ok(updated.map(|(conversation_id,)| Advanced { conversation_id }))
}

/// Shows when a still pending message's next attempt is due and why the last failed; a
/// report arriving after the message was sent or failed changes nothing.
pub async fn note_retry(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    id: Uuid,
    reason: &str,
    next_attempt_at: DateTime<Utc>,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE messages SET next_attempt_at = $3, retry_reason = $4
         WHERE workspace_id = $1 AND id = $2 AND direction = 'outbound' AND status = 'pending'",
    )
    .bind(workspace_id)
    .bind(id)
    .bind(next_attempt_at)
    .bind(reason)
    .execute(conn)
    .await?;
    Ok(())
}

/// One conversation of the Workspace.
pub async fn conversation(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    id: Uuid,
) -> Result<Conversation, Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CONVERSATION} FROM conversations WHERE workspace_id = $1 AND id = $2"
    )))
    .bind(workspace_id)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(Error::NotFound("conversation"))
}

/// One conversation of the Workspace, locked until the transaction ends.
pub async fn lock_conversation(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    id: Uuid,
) -> Result<Conversation, Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CONVERSATION} FROM conversations WHERE workspace_id = $1 AND id = $2 FOR UPDATE"
    )))
    .bind(workspace_id)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or(Error::NotFound("conversation"))
}

/// Most recently active first, after the keyset position `before`.
pub async fn list_conversations(
    pool: &PgPool,
    workspace_id: Uuid,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<Conversation>, Error> {
    let (at, id) = before.unzip();
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CONVERSATION} FROM conversations
         WHERE workspace_id = $1 AND ($2::timestamptz IS NULL OR (last_message_at, id) < ($2, $3))
         ORDER BY last_message_at DESC, id DESC LIMIT $4"
    )))
    .bind(workspace_id)
    .bind(at)
    .bind(id)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// One Contact's conversations, most recently active first, after `before`.
pub async fn contact_conversations(
    pool: &PgPool,
    workspace_id: Uuid,
    contact_id: Uuid,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<Conversation>, Error> {
    let (at, id) = before.unzip();
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {CONVERSATION} FROM conversations
         WHERE workspace_id = $1 AND contact_id = $2
           AND ($3::timestamptz IS NULL OR (last_message_at, id) < ($3, $4))
         ORDER BY last_message_at DESC, id DESC LIMIT $5"
    )))
    .bind(workspace_id)
    .bind(contact_id)
    .bind(at)
    .bind(id)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

/// Newest first, after the keyset position `before`.
pub async fn list_messages(
    pool: &PgPool,
    workspace_id: Uuid,
    conversation_id: Uuid,
    before: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<Message>, Error> {
    let (at, id) = before.unzip();
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {MESSAGE} FROM messages
         WHERE workspace_id = $1 AND conversation_id = $2 AND ($3::timestamptz IS NULL OR (sent_at, id) < ($3, $4))
         ORDER BY sent_at DESC, id DESC LIMIT $5"
    )))
    .bind(workspace_id)
    .bind(conversation_id)
    .bind(at)
    .bind(id)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

pub async fn message(pool: &PgPool, workspace_id: Uuid, id: Uuid) -> Result<Message, Error> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {MESSAGE} FROM messages WHERE workspace_id = $1 AND id = $2"
    )))
    .bind(workspace_id)
    .bind(id)
    .fetch_optional(pool)
    .await?
    .ok_or(Error::NotFound("message"))
}
