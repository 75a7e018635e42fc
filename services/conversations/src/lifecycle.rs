//! Open, snoozed, closed: the transitions, their events, and the durable timers that
//! wake snoozed conversations and close inactive ones.
use chrono::{DateTime, Utc};
use ism_platform::convert::timestamp;
use ism_platform::error::FieldError;
use ism_proto::events::v1::{ConversationClosed, ConversationSnoozed, ConversationWoken};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::error::Error;
use crate::publish::emit;
use crate::states::{Status, Timer};
use crate::store::{self, CONVERSATION, Conversation};
use ism_platform::events::topics;

/// Snoozes an open conversation until `until`, which must be after `now`.
pub async fn snooze(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    id: Uuid,
    until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Conversation, Error> {
    if until <= now {
        return Err(FieldError::new("until", "must be in the future").into());
    }
    let current = store::lock_conversation(conn, workspace_id, id).await?;
    if current.status == Status::Closed {
        return Err(Error::precondition(
            "id",
            "a closed conversation cannot be snoozed",
        ));
    }
    let conversation = set_status(conn, id, Status::Snoozed, Some(until)).await?;
    sqlx::query(
        "INSERT INTO conversation_timers (conversation_id, kind, workspace_id, due_at) VALUES ($1, 'wake', $2, $3)
         ON CONFLICT (conversation_id, kind) DO UPDATE SET due_at = excluded.due_at",
    )
    .bind(id)
    .bind(workspace_id)
    .bind(until)
    .execute(&mut *conn)
    .await?;
    let snoozed = ConversationSnoozed {
        conversation_id: id.to_string(),
        until: Some(timestamp(until)),
    };
    emit(
        conn,
        &topics::CONVERSATION_SNOOZED,
        workspace_id,
        id,
        &snoozed,
    )
    .await?;
    Ok(conversation)
}

/// Reopens a snoozed conversation; `reason` is `timer`, `message` or `user`.
pub async fn wake(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    id: Uuid,
    reason: &str,
) -> Result<Conversation, Error> {
    let current = store::lock_conversation(conn, workspace_id, id).await?;
    if current.status != Status::Snoozed {
        return Err(Error::precondition("id", "the conversation is not snoozed"));
    }
    let conversation = set_status(conn, id, Status::Open, None).await?;
    store::cancel_timer(conn, id, Timer::Wake).await?;
    woken(conn, &conversation, reason).await?;
    Ok(conversation)
}

/// Emits `conversations.conversation.woken` for `conversation`.
pub async fn woken(
    conn: &mut PgConnection,
    conversation: &Conversation,
    reason: &str,
) -> Result<(), Error> {
    let woken = ConversationWoken {
        conversation_id: conversation.id.to_string(),
        reason: reason.to_owned(),
    };
    emit(
        conn,
        &topics::CONVERSATION_WOKEN,
        conversation.workspace_id,
        conversation.id,
        &woken,
    )
    .await
}

/// Why and how a conversation is closed.
pub struct Closing<'a> {
    /// `user:<id>`, `auto_close` or the calling service.
    pub closed_by: &'a str,
    pub category: &'a str,
    pub summary: &'a str,
    pub at: DateTime<Utc>,
}

/// Closes an open or snoozed conversation with its closing note.
pub async fn close(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    id: Uuid,
    closing: &Closing<'_>,
) -> Result<Conversation, Error> {
    let current = store::lock_conversation(conn, workspace_id, id).await?;
    if current.status == Status::Closed {
        return Err(Error::precondition(
            "id",
            "the conversation is already closed",
        ));
    }
    let conversation: Conversation = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE conversations SET status = 'closed', snoozed_until = NULL, closed_at = $2, closed_by = $3,
             closing_category = $4, closing_summary = $5
         WHERE id = $1 RETURNING {CONVERSATION}"
    )))
    .bind(id)
    .bind(closing.at)
    .bind(closing.closed_by)
    .bind(closing.category)
    .bind(closing.summary)
    .fetch_one(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM conversation_timers WHERE conversation_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    let closed = ConversationClosed {
        conversation_id: id.to_string(),
        contact_id: conversation.contact_id.to_string(),
        closed_by: closing.closed_by.to_owned(),
        closing_category: closing.category.to_owned(),
        closing_summary: closing.summary.to_owned(),
        channel_id: conversation.channel_id.to_string(),
    };
    emit(
        conn,
        &topics::CONVERSATION_CLOSED,
        workspace_id,
        id,
        &closed,
    )
    .await?;
    Ok(conversation)
}

async fn set_status(
    conn: &mut PgConnection,
    id: Uuid,
    status: Status,
    snoozed_until: Option<DateTime<Utc>>,
) -> Result<Conversation, Error> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE conversations SET status = $2, snoozed_until = $3 WHERE id = $1 RETURNING {CONVERSATION}"
    )))
    .bind(id)
    .bind(status)
    .bind(snoozed_until)
    .fetch_one(conn)
    .await?)
}

/// What a pass over the due timers did.
#[derive(Debug, Default)]
pub struct Fired {
    /// Conversations woken from snooze, as (workspace, conversation).
    pub woken: Vec<(Uuid, Uuid)>,
    /// Conversations auto-closed, as (workspace, conversation).
    pub closed: Vec<(Uuid, Uuid)>,
}

/// Applies up to `limit` timers due at `now` in one transaction. Timers another replica
/// holds are skipped, so replicas share the work without firing one twice.
pub async fn fire_due(pool: &PgPool, now: DateTime<Utc>, limit: i64) -> Result<Fired, Error> {
    let mut tx = pool.begin().await?;
    let due: Vec<(Uuid, Timer, Uuid)> = sqlx::query_as(
        "SELECT conversation_id, kind, workspace_id FROM conversation_timers
         WHERE due_at <= $1 ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(&mut *tx)
    .await?;
    let mut fired = Fired::default();
    for (conversation_id, kind, workspace_id) in due {
        store::cancel_timer(&mut tx, conversation_id, kind).await?;
        let status: Status = sqlx::query_scalar("SELECT status FROM conversations WHERE id = $1")
            .bind(conversation_id)
            .fetch_one(&mut *tx)
            .await?;
        match (kind, status) {
            (Timer::Wake, Status::Snoozed) => {
                wake(&mut tx, workspace_id, conversation_id, "timer").await?;
                fired.woken.push((workspace_id, conversation_id));
            }
            (Timer::AutoClose, Status::Open) => {
                let closing = Closing {
                    closed_by: "auto_close",
                    category: "",
                    summary: "",
                    at: now,
                };
                close(&mut tx, workspace_id, conversation_id, &closing).await?;
                fired.closed.push((workspace_id, conversation_id));
            }
            // Overtaken by a later change (woken by a message, closed by a User).
            _ => {}
        }
    }
    tx.commit().await?;
    Ok(fired)
}
