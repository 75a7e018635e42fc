//! The queues' bindings follow what is subscribed (ADR 26): the events queue is bound to
//! the event types some endpoint wants, the bots queue to the messages and assignments
//! bots need while some Workspace has a bot; an event nobody wants is never routed here,
//! so it costs the broker and this service nothing.
use std::collections::HashSet;

use ism_platform::events::topology::{INTEGRATIONS_BOTS, INTEGRATIONS_EVENTS};
use ism_platform::events::{Amqp, bindings, topics};
use sqlx::{PgConnection, PgTransaction};

use crate::catalog::EVENT_TYPES;
use crate::error::Error;
use crate::store;

/// The event types bots read.
const BOT_TYPES: [&str; 2] = [
    topics::MESSAGE_CREATED.key(),
    topics::CONVERSATION_ASSIGNED.key(),
];

/// Binds both queues to what is subscribed and unbinds the rest, as `tx` sees the
/// endpoints and bots; holds the bindings lock until `tx` ends.
pub async fn sync(amqp: &Amqp, tx: &mut PgConnection) -> Result<(), Error> {
    bindings::lock(tx, "integrations").await?;
    let subscribed: HashSet<&str> = store::subscribed_types(tx)
        .await?
        .iter()
        .filter_map(|t| {
            EVENT_TYPES
                .iter()
                .find(|e| e.name == t.as_str())
                .map(|e| e.name)
        })
        .collect();
    let bots: HashSet<&str> = if store::any_bot(tx).await? {
        BOT_TYPES.into_iter().collect()
    } else {
        HashSet::new()
    };
    let events: Vec<&str> = EVENT_TYPES.iter().map(|t| t.name).collect();
    bindings::apply(
        amqp,
        &[
            bindings::Wanted {
                queue: &INTEGRATIONS_EVENTS,
                candidates: &events,
                bound: subscribed,
            },
            bindings::Wanted {
                queue: &INTEGRATIONS_BOTS,
                candidates: &BOT_TYPES,
                bound: bots,
            },
        ],
    )
    .await
    .map_err(|e| Error::Unavailable(format!("the message broker: {e}").into()))
}

/// Syncs the bindings as `tx` leaves the endpoints and bots, then commits `tx`.
pub async fn commit(amqp: &Amqp, mut tx: PgTransaction<'_>) -> Result<(), Error> {
    sync(amqp, &mut tx).await?;
    Ok(tx.commit().await?)
}
