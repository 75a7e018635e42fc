//! Events this service emits, written to the outbox in the caller's transaction and
//! ordered per conversation.
use ism_platform::events;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::Error;

/// Enqueues `payload` as a `routing_key` event of `conversation_id`.
pub async fn emit<M: prost::Name>(
    conn: &mut PgConnection,
    routing_key: &str,
    workspace_id: Uuid,
    conversation_id: Uuid,
    payload: &M,
) -> Result<(), Error> {
    let event = events::new_event(
        routing_key,
        workspace_id,
        &conversation_id.to_string(),
        payload,
    );
    events::enqueue(conn, &event).await?;
    Ok(())
}

/// An empty string for `None`.
pub fn id_or_empty(id: Option<Uuid>) -> String {
    id.map(|id| id.to_string()).unwrap_or_default()
}
