//! Follows `contacts.contact.merged`: the merged (source) Contact's conversations move to
//! the surviving (target) Contact, history and all.
use chrono::{DateTime, Utc};
use ism_platform::events::{EventContext, EventHandler, HandlerError, topics};
use ism_proto::events::v1::{ContactMerged, Event};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::clock::Clock;
use crate::error::Error;
use crate::lifecycle::{self, Closing};

/// Who closes a conversation that a merge leaves beside another on the same channel.
pub const CLOSED_BY_MERGE: &str = "contact_merge";

/// Consumes `contacts.contact.merged`.
pub struct Merges {
    pub clock: Clock,
}

impl EventHandler for Merges {
    async fn handle(&self, event: Event, ctx: EventContext) -> Result<(), HandlerError> {
        let merged: ContactMerged = topics::CONTACT_MERGED
            .decode(&event)
            .map_err(HandlerError::Permanent)?;
        let uuid = |value: &str, what: &str| {
            value
                .parse::<Uuid>()
                .map_err(|_| HandlerError::Permanent(format!("{what} is missing or not a UUID")))
        };
        let workspace_id = uuid(&event.workspace_id, "workspace_id")?;
        let source = uuid(&merged.source_contact_id, "source_contact_id")?;
        let target = uuid(&merged.target_contact_id, "target_contact_id")?;
        if source == target {
            return Err(HandlerError::Permanent(
                "a Contact cannot be merged into itself".into(),
            ));
        }
        let Some(mut tx) = ctx.begin().await? else {
            return Ok(());
        };
        let moved = move_conversations(&mut tx, workspace_id, source, target, self.clock.now())
            .await
            .map_err(|e| HandlerError::Transient(anyhow::anyhow!(e)))?;
        tx.commit().await?;
        tracing::info!(%source, %target, moved, "merged Contact's conversations moved");
        Ok(())
    }
}

/// Moves every conversation of `source` to `target`; returns how many moved. A Contact has
/// one active conversation per channel, so where both have one on the same channel, the
/// source's is closed first (by [`CLOSED_BY_MERGE`], with its `closed` event) and the
/// target's stays the one new messages join.
pub async fn move_conversations(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    source: Uuid,
    target: Uuid,
    now: DateTime<Utc>,
) -> Result<u64, Error> {
    let clashing: Vec<Uuid> = sqlx::query_scalar(
        "SELECT s.id FROM conversations s
         WHERE s.workspace_id = $1 AND s.contact_id = $2 AND s.status <> 'closed'
           AND EXISTS (SELECT 1 FROM conversations t
                       WHERE t.workspace_id = $1 AND t.contact_id = $3
                         AND t.channel_id = s.channel_id AND t.status <> 'closed')
         ORDER BY s.id",
    )
    .bind(workspace_id)
    .bind(source)
    .bind(target)
    .fetch_all(&mut *conn)
    .await?;
    for id in clashing {
        let closing = Closing {
            closed_by: CLOSED_BY_MERGE,
            category: "",
            summary: "",
            at: now,
        };
        lifecycle::close(conn, workspace_id, id, &closing).await?;
    }
    let moved = sqlx::query(
        "UPDATE conversations SET contact_id = $3,
             opened_by_id = CASE WHEN opened_by = 'contact' THEN $3::text ELSE opened_by_id END
         WHERE workspace_id = $1 AND contact_id = $2",
    )
    .bind(workspace_id)
    .bind(source)
    .bind(target)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(moved)
}
