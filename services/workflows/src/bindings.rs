//! The triggers queue is bound to a Contact's messages, opened and closed conversations,
//! Tag, custom Field and lifecycle stage changes only
//! while some enabled workflow has that trigger (ADR 26), in the transaction that changes
//! the workflows; to messages also while an enabled workflow asks questions or a run
//! awaits an answer.
use std::collections::HashSet;

use ism_platform::events::topology::WORKFLOWS_TRIGGERS;
use ism_platform::events::{Amqp, bindings, topics};
use sqlx::PgConnection;

use crate::error::Error;
use crate::states::TriggerKind;
use crate::store;

const TRIGGERS: [(&str, TriggerKind); 7] = [
    (topics::MESSAGE_CREATED.key(), TriggerKind::MessageReceived),
    (
        topics::CONVERSATION_OPENED.key(),
        TriggerKind::ConversationOpened,
    ),
    (
        topics::CONVERSATION_CLOSED.key(),
        TriggerKind::ConversationClosed,
    ),
    (topics::TAG_ADDED.key(), TriggerKind::ContactTagUpdated),
    (topics::TAG_REMOVED.key(), TriggerKind::ContactTagUpdated),
    (
        topics::CONTACT_FIELD_CHANGED.key(),
        TriggerKind::ContactFieldUpdated,
    ),
    (
        topics::CONTACT_LIFECYCLE_UPDATED.key(),
        TriggerKind::LifecycleUpdated,
    ),
];

/// Binds the triggers queue as `tx` sees the workflows; holds the lock until `tx` ends.
pub async fn sync(amqp: &Amqp, tx: &mut PgConnection) -> Result<(), Error> {
    bindings::lock(tx, "workflows").await?;
    let mut bound = HashSet::new();
    for (key, kind) in TRIGGERS {
        if store::any_triggered(tx, kind).await? {
            bound.insert(key);
        }
    }
    if store::any_asking(tx).await? {
        bound.insert(topics::MESSAGE_CREATED.key());
    }
    let keys = TRIGGERS.map(|(key, _)| key);
    bindings::apply(
        amqp,
        &[bindings::Wanted {
            queue: &WORKFLOWS_TRIGGERS,
            candidates: &keys,
            bound,
        }],
    )
    .await
    .map_err(|e| Error::Unavailable(format!("the message broker: {e}").into()))
}
