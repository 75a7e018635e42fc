//! Queues bound at run time to what a service's users subscribe to (ADR 26), so an event
//! type nobody wants is never routed to them. A service changes bindings inside the
//! transaction that changes the subscriptions, after taking its bindings lock, so two
//! replicas changing subscriptions at once cannot undo each other's bindings, and a change
//! the broker refuses is rolled back with it.
use std::collections::HashSet;

use sqlx::PgConnection;

use super::Amqp;
use super::topology::QueueSpec;

/// One queue: the routing keys it may be bound to, and those it is to be bound to now.
#[derive(Debug)]
pub struct Wanted<'a> {
    pub queue: &'a QueueSpec,
    pub candidates: &'a [&'a str],
    pub bound: HashSet<&'a str>,
}

/// Takes `service`'s bindings lock for the rest of the transaction on `tx`.
pub async fn lock(tx: &mut PgConnection, service: &str) -> sqlx::Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
        .bind(format!("{service}.bindings"))
        .execute(tx)
        .await?;
    Ok(())
}

/// Binds each queue to its wanted keys and unbinds its other candidates.
pub async fn apply(amqp: &Amqp, queues: &[Wanted<'_>]) -> lapin::Result<()> {
    let conn = amqp.connect().await?;
    let channel = conn.create_channel().await?;
    for wanted in queues {
        amqp.declare_queue(&channel, wanted.queue).await?;
        for key in wanted.candidates {
            if wanted.bound.contains(key) {
                amqp.bind(&channel, wanted.queue, key).await?;
            } else {
                amqp.unbind(&channel, wanted.queue, key).await?;
            }
        }
    }
    conn.close(0, "bindings in line".into()).await
}
