//! Use cases of the messages a Workspace writes into a conversation: a reply (stored
//! pending in the caller's transaction with the event asking the gateway to deliver it)
//! and an internal comment.
use chrono::{DateTime, Utc};
use ism_platform::auth::Caller;
use ism_platform::convert::{timestamp, uuid};
use ism_platform::error::FieldError;
use ism_proto::conversations::v1 as pb;
use ism_proto::events::v1::{CommentAdded, DeliveryRequested, MessageCreated};
use ism_proto::types::v1::{MessageContent, Text, message_content::Kind};
use prost::Message as _;
use sqlx::PgPool;
use uuid::Uuid;

use crate::clock::Clock;
use crate::directory::Directory;
use crate::error::Error;
use crate::publish::{self, emit};
use crate::settings;
use crate::snippets;
use crate::states::{Author, Delivery, Direction, Status};
use crate::store::{self, NewMessage};
use crate::wire;
use ism_platform::events::topics;

/// What writing a message needs: the database, the clock, and the directory of Users and
/// Contacts (snippet variables, mentions).
pub struct Messages<'a> {
    pub pool: &'a PgPool,
    pub clock: Clock,
    pub directory: &'a Directory,
}

fn client_message_id(raw: &str) -> Result<Option<&str>, FieldError> {
    let id = Some(raw.trim()).filter(|id| !id.is_empty());
    if id.is_some_and(|id| id.len() > 128) {
        return Err(FieldError::new(
            "client_message_id",
            "must be at most 128 bytes",
        ));
    }
    Ok(id)
}

impl Messages<'_> {
    /// Stores a reply as pending, opening the conversation again when it was closed (if
    /// the Workspace allows it), with its `message.created` and `delivery.requested`
    /// events; a repeated `client_message_id` answers the message stored the first time.
    pub async fn send(
        &self,
        caller: &Caller,
        workspace_id: Uuid,
        request: pb::SendMessageRequest,
    ) -> Result<store::Message, Error> {
        let conversation_id = uuid("conversation_id", &request.conversation_id)?;
        let client_message_id = client_message_id(&request.client_message_id)?;
        let (sender, sender_id) = wire::author(caller);
        let content = match wire::optional_uuid(&request.snippet_id, "snippet_id")? {
            None => request.content,
            Some(_) if request.content.is_some() => {
                return Err(
                    FieldError::new("content", "give content or snippet_id, not both").into(),
                );
            }
            Some(snippet_id) => Some(
                self.render(caller, workspace_id, conversation_id, snippet_id)
                    .await?,
            ),
        };
        let now = self.clock.now();

        let mut tx = self.pool.begin().await?;
        let mut conversation =
            store::lock_conversation(&mut tx, workspace_id, conversation_id).await?;
        let content = ism_platform::content::outbound(content.as_ref(), conversation.channel_type)?;
        if let Some(id) = client_message_id
            && let Some(existing) = store::message_by_client_id(&mut tx, workspace_id, id).await?
        {
            return Ok(existing);
        }
        if conversation.status == Status::Closed {
            let party = (
                workspace_id,
                conversation.contact_id,
                conversation.channel_id,
            );
            conversation = match store::lock_active(&mut tx, &[party]).await?.remove(&party) {
                Some(open) => open,
                None => {
                    self.open_from_workspace(&mut tx, &conversation, sender, &sender_id, now)
                        .await?
                }
            };
        }
        let new = NewMessage {
            workspace_id,
            conversation_id: conversation.id,
            channel_id: conversation.channel_id,
            direction: Direction::Outbound,
            content: content.encode_to_vec(),
            status: Delivery::Pending,
            external_message_id: "",
            client_message_id,
            sent_at: now,
            sender,
            sender_id: &sender_id,
            mentions: &[],
        };
        let message = store::insert_message(&mut tx, &new)
            .await?
            .ok_or(Error::Aborted(
                "a concurrent send with the same client_message_id won; retry to read it".into(),
            ))?;
        store::record_message(&mut tx, conversation.id, sender, now, now).await?;
        let created = MessageCreated {
            message_id: message.id.to_string(),
            conversation_id: conversation.id.to_string(),
            contact_id: conversation.contact_id.to_string(),
            channel_id: conversation.channel_id.to_string(),
            direction: wire::direction(Direction::Outbound) as i32,
            content: Some(content.clone()),
            sent_at: Some(timestamp(now)),
            sender: wire::party(sender) as i32,
            sender_id: sender_id.clone(),
        };
        let delivery = DeliveryRequested {
            message_id: message.id.to_string(),
            channel_id: conversation.channel_id.to_string(),
            recipient_external_id: conversation.contact_external_id.clone(),
            content: Some(content),
            requested_by: crate::SERVICE.to_owned(),
        };
        emit(
            &mut tx,
            &topics::MESSAGE_CREATED,
            workspace_id,
            conversation.id,
            &created,
        )
        .await?;
        emit(
            &mut tx,
            &topics::DELIVERY_REQUESTED,
            workspace_id,
            conversation.id,
            &delivery,
        )
        .await?;
        tx.commit().await?;
        Ok(message)
    }

    /// Adds an internal comment, mentioning Users of the Workspace.
    pub async fn comment(
        &self,
        caller: &Caller,
        workspace_id: Uuid,
        request: &pb::AddCommentRequest,
    ) -> Result<store::Message, Error> {
        let conversation_id = uuid("conversation_id", &request.conversation_id)?;
        let body = request.body.trim();
        if body.is_empty() || body.len() > wire::MAX_COMMENT {
            return Err(FieldError::new(
                "body",
                format!("must have 1 to {} bytes", wire::MAX_COMMENT),
            )
            .into());
        }
        let mut mentions = Vec::with_capacity(request.mentioned_user_ids.len());
        for id in &request.mentioned_user_ids {
            let id = uuid("mentioned_user_ids", id)?;
            if !mentions.contains(&id) {
                mentions.push(id);
            }
        }
        if mentions.len() > 50 {
            return Err(FieldError::new("mentioned_user_ids", "at most 50 Users").into());
        }
        for &id in &mentions {
            self.directory
                .user(workspace_id, id, "mentioned_user_ids")
                .await?;
        }
        let (sender, sender_id) = wire::author(caller);
        let now = self.clock.now();
        let content = MessageContent {
            kind: Some(Kind::Text(Text {
                body: body.to_owned(),
            })),
            ..Default::default()
        };
        let mut tx = self.pool.begin().await?;
        let conversation = store::lock_conversation(&mut tx, workspace_id, conversation_id).await?;
        let new = NewMessage {
            workspace_id,
            conversation_id,
            channel_id: conversation.channel_id,
            direction: Direction::Internal,
            content: content.encode_to_vec(),
            status: Delivery::None,
            external_message_id: "",
            client_message_id: None,
            sent_at: now,
            sender,
            sender_id: &sender_id,
            mentions: &mentions,
        };
        let message = store::insert_message(&mut tx, &new)
            .await?
            .ok_or(Error::Aborted("the comment collided; retry".into()))?;
        let added = CommentAdded {
            message_id: message.id.to_string(),
            conversation_id: conversation_id.to_string(),
            author_id: sender_id.clone(),
            body: body.to_owned(),
            mentioned_user_ids: mentions.iter().map(Uuid::to_string).collect(),
        };
        emit(
            &mut tx,
            &topics::COMMENT_ADDED,
            workspace_id,
            conversation_id,
            &added,
        )
        .await?;
        tx.commit().await?;
        Ok(message)
    }

    /// The snippet rendered for the conversation's Contact and the caller.
    async fn render(
        &self,
        caller: &Caller,
        workspace_id: Uuid,
        conversation_id: Uuid,
        snippet_id: Uuid,
    ) -> Result<MessageContent, Error> {
        let mut conn = self.pool.acquire().await?;
        let conversation = store::conversation(&mut conn, workspace_id, conversation_id).await?;
        let snippet = snippets::visible(&mut conn, workspace_id, caller.actor(), snippet_id)
            .await
            .map_err(|e| match e {
                Error::NotFound(_) => FieldError::new("snippet_id", "no such snippet").into(),
                other => other,
            })?;
        drop(conn);
        let variables = self
            .directory
            .variables(workspace_id, conversation.contact_id, &caller.subject)
            .await?;
        let body = snippets::render(&snippet.body, &variables)?;
        Ok(MessageContent {
            kind: Some(Kind::Text(Text { body })),
            ..Default::default()
        })
    }

    async fn open_from_workspace(
        &self,
        tx: &mut sqlx::PgConnection,
        closed: &store::Conversation,
        sender: Author,
        sender_id: &str,
        now: DateTime<Utc>,
    ) -> Result<store::Conversation, Error> {
        let settings = settings::load(tx, closed.workspace_id).await?;
        if !settings.reply_to_closed {
            return Err(Error::precondition(
                "conversation_id",
                "the conversation is closed and this Workspace does not reopen closed conversations with a reply",
            ));
        }
        let opened = store::open_from_workspace(tx, closed, sender, sender_id, now).await?;
        publish::opened(tx, &opened, sender, sender_id).await?;
        Ok(opened)
    }
}
