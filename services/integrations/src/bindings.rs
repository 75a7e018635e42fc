//! The events queue's bindings follow what endpoints subscribe to (ADR 26): an event type
//! no endpoint wants is never routed here, so it costs the broker and this service nothing.
//! Bindings change inside the transaction that changes the subscriptions, under one
//! Postgres lock, so two replicas changing endpoints at once cannot undo each other's
//! bindings, and a change the broker refused is rolled back (nothing saved).
use std::collections::HashSet;

use ism_platform::events::Amqp;
use ism_platform::events::topology::INTEGRATIONS_EVENTS;
use sqlx::PgConnection;

use crate::catalog::EVENT_TYPES;
use crate::error::Error;
use crate::store;

/// Binds the events queue to every subscribed type and unbinds the others, as `tx` sees
/// the subscriptions; holds the bindings lock until `tx` ends.
pub async fn sync(amqp: &Amqp, tx: &mut PgConnection) -> Result<(), Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('integrations.bindings'))")
        .execute(&mut *tx)
        .await?;
    let subscribed: HashSet<String> = store::subscribed_types(tx).await?.into_iter().collect();
    apply(amqp, &subscribed)
        .await
        .map_err(|e| Error::Unavailable(format!("the message broker: {e}").into()))
}

async fn apply(amqp: &Amqp, subscribed: &HashSet<String>) -> lapin::Result<()> {
    let conn = amqp.connect().await?;
    let channel = conn.create_channel().await?;
    amqp.declare_queue(&channel, &INTEGRATIONS_EVENTS).await?;
    for event_type in EVENT_TYPES.iter() {
        if subscribed.contains(event_type.name) {
            amqp.bind(&channel, &INTEGRATIONS_EVENTS, event_type.name)
                .await?;
        } else {
            amqp.unbind(&channel, &INTEGRATIONS_EVENTS, event_type.name)
                .await?;
        }
    }
    conn.close(0, "bindings in line".into()).await
}
