//! Replies: a recipient who writes to the broadcast's channel within
//! `broadcasts.replied_within_hours` of its start counts as having replied, from the
//! inbound messages conversations stores (`conversations.message.created`).
//!
//! Marking a reply is idempotent (only a recipient not marked yet is), so these events
//! need no inbox: a redelivery changes nothing, and a batch is one statement.
use chrono::{DateTime, TimeDelta, Utc};
use ism_platform::convert::from_timestamp;
use ism_platform::events::{Batch, EventContext, EventHandler, HandlerError, topics};
use ism_proto::events::v1::Event;
use ism_proto::types::v1::Direction;
use sqlx::PgPool;
use uuid::Uuid;

use crate::store;

/// Inbound messages applied per statement when the queue has a backlog.
const BATCH: usize = 64;

pub struct Replies {
    pub pool: PgPool,
    /// How long after a broadcast's start a message counts as a reply to it.
    pub within: TimeDelta,
}

/// A Contact's message: Workspace, Channel, Contact, when.
type Reply = (Uuid, Uuid, Uuid, DateTime<Utc>);

fn reply(event: &Event) -> Option<Reply> {
    let created = topics::MESSAGE_CREATED.decode(event).ok()?;
    if created.direction != Direction::Inbound as i32 {
        return None;
    }
    Some((
        event.workspace_id.parse().ok()?,
        created.channel_id.parse().ok()?,
        created.contact_id.parse().ok()?,
        created.sent_at.as_ref().and_then(from_timestamp)?,
    ))
}

impl Replies {
    async fn apply<'a>(&self, events: impl Iterator<Item = &'a Event>) -> Result<(), HandlerError> {
        let replies: Vec<Reply> = events.filter_map(reply).collect();
        if !replies.is_empty() {
            store::mark_replies(&self.pool, &replies, self.within).await?;
        }
        Ok(())
    }
}

impl EventHandler for Replies {
    async fn handle(&self, event: Event, _ctx: EventContext) -> Result<(), HandlerError> {
        self.apply(std::iter::once(&event)).await
    }

    fn batch_size(&self) -> usize {
        BATCH
    }

    async fn handle_batch(&self, batch: Batch) -> Result<(), HandlerError> {
        self.apply(batch.events()).await
    }
}
