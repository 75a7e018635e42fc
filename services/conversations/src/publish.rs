//! Events this service emits, written to the outbox in the caller's transaction and
//! ordered per conversation.
use ism_platform::events::{self, Topic, topics};
use ism_proto::events::v1::ConversationOpened;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::Error;
use crate::states::Author;
use crate::store::Conversation;
use crate::wire;

/// Enqueues `payload` as an event of `topic` about `conversation_id`, in order with the
/// conversation's other events.
pub async fn emit<M: prost::Name + Default>(
    conn: &mut PgConnection,
    topic: &Topic<M>,
    workspace_id: Uuid,
    conversation_id: Uuid,
    payload: &M,
) -> Result<(), Error> {
    events::emit(
        conn,
        topic,
        workspace_id,
        &conversation_id.to_string(),
        payload,
    )
    .await?;
    Ok(())
}

/// Announces that `conversation` was opened, and by whom.
pub async fn opened(
    conn: &mut PgConnection,
    conversation: &Conversation,
    opened_by: Author,
    opened_by_id: &str,
) -> Result<(), Error> {
    let event = ConversationOpened {
        conversation_id: conversation.id.to_string(),
        contact_id: conversation.contact_id.to_string(),
        channel_id: conversation.channel_id.to_string(),
        opened_by: wire::party(opened_by) as i32,
        opened_by_id: opened_by_id.to_owned(),
    };
    emit(
        conn,
        &topics::CONVERSATION_OPENED,
        conversation.workspace_id,
        conversation.id,
        &event,
    )
    .await
}

/// An empty string for `None`.
pub fn id_or_empty(id: Option<Uuid>) -> String {
    id.map(|id| id.to_string()).unwrap_or_default()
}
