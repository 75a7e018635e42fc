//! Turns domain events into webhook deliveries: one per subscribed endpoint of the
//! event's Workspace whose filters it passes, stored with the event's body in the
//! transaction that marks the event processed, so a redelivered event adds nothing.
use std::collections::HashMap;
use std::sync::Arc;

use ism_platform::events::{Batch, EventContext, EventHandler, HandlerError};
use ism_proto::events::v1::Event;
use sqlx::PgConnection;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::catalog::{self, Facets};
use crate::states::DeliveryState;
use crate::store::{self, NewEvent, Subscriber};

pub struct Intake {
    pub wake: Arc<Notify>,
}

impl Subscriber {
    /// Whether this endpoint wants an event of `event_type` with `facets`.
    fn wants(&self, event_type: &str, facets: &Facets) -> bool {
        self.event_types.iter().any(|t| t == event_type)
            && (self.channel_ids.is_empty()
                || facets.channel_id.as_ref().is_none_or(|channel| {
                    self.channel_ids.iter().any(|id| id.to_string() == *channel)
                }))
            && (self.tags.is_empty()
                || facets
                    .tag
                    .as_ref()
                    .is_none_or(|tag| self.tags.iter().any(|t| t == tag)))
    }
}

/// Stores the deliveries of `events`; the number stored.
async fn route(conn: &mut PgConnection, events: &[Event]) -> Result<usize, HandlerError> {
    let mut workspaces: Vec<Uuid> = Vec::new();
    let mut parsed = Vec::with_capacity(events.len());
    for event in events {
        let workspace_id = Uuid::parse_str(&event.workspace_id).map_err(|_| {
            HandlerError::Permanent(format!(
                "workspace_id {:?} is not a UUID",
                event.workspace_id
            ))
        })?;
        let id = Uuid::parse_str(&event.id)
            .map_err(|_| HandlerError::Permanent(format!("id {:?} is not a UUID", event.id)))?;
        workspaces.push(workspace_id);
        parsed.push((id, workspace_id, event));
    }
    workspaces.sort_unstable();
    workspaces.dedup();
    let mut by_workspace: HashMap<Uuid, Vec<Subscriber>> = HashMap::new();
    for subscriber in store::subscribers(conn, &workspaces).await? {
        by_workspace
            .entry(subscriber.workspace_id)
            .or_default()
            .push(subscriber);
    }
    let mut stored = Vec::new();
    let mut deliveries = Vec::new();
    for (id, workspace_id, event) in parsed {
        let Some(subscribers) = by_workspace.get(&workspace_id) else {
            continue;
        };
        if !subscribers
            .iter()
            .any(|s| s.event_types.contains(&event.r#type))
        {
            continue;
        }
        let rendered = catalog::render(event).map_err(HandlerError::Permanent)?;
        let before = deliveries.len();
        for subscriber in subscribers
            .iter()
            .filter(|s| s.wants(&event.r#type, &rendered.facets))
        {
            let state = if subscriber.enabled {
                DeliveryState::Pending
            } else {
                DeliveryState::Skipped
            };
            deliveries.push((subscriber.id, id, state));
        }
        if deliveries.len() > before {
            stored.push(NewEvent {
                id,
                workspace_id,
                event_type: event.r#type.clone(),
                occurred_at: event
                    .occurred_at
                    .as_ref()
                    .and_then(ism_platform::convert::from_timestamp)
                    .unwrap_or_else(chrono::Utc::now),
                body: rendered.body,
            });
        }
    }
    if !deliveries.is_empty() {
        store::insert_deliveries(conn, &stored, &deliveries).await?;
    }
    Ok(deliveries.len())
}

impl EventHandler for Intake {
    async fn handle(&self, event: Event, ctx: EventContext) -> Result<(), HandlerError> {
        let Some(mut tx) = ctx.begin().await? else {
            return Ok(());
        };
        let routed = route(&mut tx, std::slice::from_ref(&event)).await?;
        tx.commit().await?;
        if routed > 0 {
            self.wake.notify_one();
        }
        Ok(())
    }

    fn batch_size(&self) -> usize {
        64
    }

    async fn handle_batch(&self, batch: Batch) -> Result<(), HandlerError> {
        let (mut tx, events) = batch.begin().await?;
        let routed = route(&mut tx, &events).await?;
        tx.commit().await?;
        if routed > 0 {
            self.wake.notify_one();
        }
        Ok(())
    }
}
