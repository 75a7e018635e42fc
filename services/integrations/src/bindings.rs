//! The queues' bindings follow what is subscribed (ADR 26): the events queue is bound to
//! the event types some endpoint wants, the bots queue to the messages and assignments
//! bots need while some Workspace has a bot; an event nobody wants is never routed here,
//! so it costs the broker and this service nothing.
//! Bindings change inside the transaction that changes the subscriptions, under one
//! Postgres lock, so two replicas changing endpoints at once cannot undo each other's
//! bindings, and a change the broker refused is rolled back (nothing saved).
use std::collections::HashSet;

use ism_platform::events::topology::{INTEGRATIONS_BOTS, INTEGRATIONS_EVENTS, QueueSpec};
use ism_platform::events::{Amqp, topics};
use sqlx::PgConnection;

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
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('integrations.bindings'))")
        .execute(&mut *tx)
        .await?;
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
    apply(
        amqp,
        &[
            (&INTEGRATIONS_EVENTS, &events, subscribed),
            (&INTEGRATIONS_BOTS, &BOT_TYPES, bots),
        ],
    )
    .await
    .map_err(|e| Error::Unavailable(format!("the message broker: {e}").into()))
}

/// One queue: the keys it may be bound to, and those it is to be bound to.
type Wanted<'a> = (&'a QueueSpec, &'a [&'a str], HashSet<&'a str>);

async fn apply(amqp: &Amqp, queues: &[Wanted<'_>]) -> lapin::Result<()> {
    let conn = amqp.connect().await?;
    let channel = conn.create_channel().await?;
    for (spec, candidates, wanted) in queues {
        amqp.declare_queue(&channel, spec).await?;
        for key in candidates.iter() {
            if wanted.contains(key) {
                amqp.bind(&channel, spec, key).await?;
            } else {
                amqp.unbind(&channel, spec, key).await?;
            }
        }
    }
    conn.close(0, "bindings in line".into()).await
}
