//! Conversations and messages in Postgres.
use chrono::{DateTime, Utc};
use sqlx::{FromRow, PgConnection, PgPool};
use uuid::Uuid;

use crate::error::Error;

#[derive(Debug, Clone, FromRow)]
pub struct Conversation {
    pub id: Uuid,
    pub workspace_id: Uuid,
    pub contact_id: Uuid,
    pub channel_id: Uuid,
    pub contact_external_id: String,
    pub status: String,
    pub created_at: DateTime<Utc>,
    pub last_message_at: DateTime<Utc>,
}

#[derive(Debug, Clone, FromRow)]
pub struct Message {
    pub id: Uuid,
    pub conversation_id: Uuid,
    pub direction: String,
    pub content: Vec<u8>,
    pub status: String,
    pub failure_reason: String,
    pub external_message_id: String,
    pub sent_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
}

const CONVERSATION: &str = "id, workspace_id, contact_id, channel_id, contact_external_id, status, created_at, last_message_at";
const MESSAGE: &str = "id, conversation_id, direction, content, status, failure_reason, external_message_id, sent_at, created_at";

/// Who a conversation is with, on which channel.
pub struct Party<'a> {
    pub workspace_id: Uuid,
    pub contact_id: Uuid,
    pub channel_id: Uuid,
    pub contact_external_id: &'a str,
}

/// The contact's active conversation on the channel, woken if snoozed, or a new one.
pub async fn open_or_find(
    conn: &mut PgConnection,
    party: &Party<'_>,
    at: DateTime<Utc>,
) -> Result<Conversation, Error> {
    sqlx::query(
        "INSERT INTO conversations (id, workspace_id, contact_id, channel_id, contact_external_id, opened_by, last_message_at)
         VALUES ($1, $2, $3, $4, $5, 'contact', $6) ON CONFLICT DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(party.workspace_id)
    .bind(party.contact_id)
    .bind(party.channel_id)
    .bind(party.contact_external_id)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE conversations SET status = 'open', last_message_at = greatest(last_message_at, $4)
         WHERE workspace_id = $1 AND contact_id = $2 AND channel_id = $3 AND status <> 'closed'
         RETURNING {CONVERSATION}"
    )))
    .bind(party.workspace_id)
    .bind(party.contact_id)
    .bind(party.channel_id)
    .bind(at)
    .fetch_one(&mut *conn)
    .await?)
}

/// A new message row.
pub struct NewMessage<'a> {
    pub workspace_id: Uuid,
    pub conversation_id: Uuid,
    pub channel_id: Uuid,
    pub direction: &'a str,
    pub content: Vec<u8>,
    pub status: &'a str,
    pub external_message_id: &'a str,
    pub client_message_id: Option<&'a str>,
    pub sent_at: DateTime<Utc>,
}

/// Inserts `message`; `None` when it already exists (same inbound id or client id).
pub async fn insert_message(
    conn: &mut PgConnection,
    message: &NewMessage<'_>,
) -> Result<Option<Message>, Error> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO messages (id, workspace_id, conversation_id, channel_id, direction, content, status,
                               external_message_id, client_message_id, sent_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING RETURNING {MESSAGE}"
    )))
    .bind(Uuid::now_v7())
    .bind(message.workspace_id)
    .bind(message.conversation_id)
    .bind(message.channel_id)
    .bind(message.direction)
    .bind(&message.content)
    .bind(message.status)
    .bind(message.external_message_id)
    .bind(message.client_message_id)
    .bind(message.sent_at)
    .fetch_optional(&mut *conn)
    .await?)
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

pub async fn touch(
    conn: &mut PgConnection,
    conversation_id: Uuid,
    at: DateTime<Utc>,
) -> Result<(), Error> {
    sqlx::query(
        "UPDATE conversations SET last_message_at = greatest(last_message_at, $2) WHERE id = $1",
    )
    .bind(conversation_id)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Moves a message's delivery status forward; a late or repeated report never moves it
/// back (read stays read when a `sent` arrives after it).
pub async fn advance_status(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    id: Uuid,
    status: &str,
    reason: &str,
    external_message_id: &str,
) -> Result<bool, Error> {
    let updated = sqlx::query(
        "UPDATE messages SET status = $3, failure_reason = $4,
             external_message_id = CASE WHEN $5 = '' THEN external_message_id ELSE $5 END
         WHERE workspace_id = $1 AND id = $2 AND direction = 'outbound'
           AND (CASE status WHEN 'pending' THEN 1 WHEN 'sent' THEN 2 WHEN 'delivered' THEN 3 WHEN 'read' THEN 4 ELSE 5 END)
             < (CASE $3 WHEN 'pending' THEN 1 WHEN 'sent' THEN 2 WHEN 'delivered' THEN 3 WHEN 'read' THEN 4 ELSE 5 END)",
    )
    .bind(workspace_id)
    .bind(id)
    .bind(status)
    .bind(reason)
    .bind(external_message_id)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

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
