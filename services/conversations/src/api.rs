//! The ConversationService gRPC API.
use chrono::{DateTime, Utc};
use ism_platform::auth::{Caller, Role};
use ism_platform::convert::{timestamp, uuid};
use ism_platform::events;
use ism_platform::paging::{self, FieldError};
use ism_proto::conversations::v1 as pb;
use ism_proto::conversations::v1::conversation_service_server::ConversationService;
use ism_proto::events::v1::{DeliveryRequested, MessageCreated};
use ism_proto::types::v1::{DeliveryStatus, Direction, MessageContent, message_content::Kind};
use prost::Message as _;
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::error::Error;
use crate::store::{self, Conversation, Message, NewMessage};

/// Longest reply text, in bytes.
const MAX_TEXT: usize = 4096;

pub struct Api {
    pub pool: PgPool,
}

fn conversation_to_pb(c: Conversation) -> pb::Conversation {
    let status = match c.status.as_str() {
        "open" => pb::ConversationStatus::Open,
        "snoozed" => pb::ConversationStatus::Snoozed,
        "closed" => pb::ConversationStatus::Closed,
        _ => pb::ConversationStatus::Unspecified,
    };
    pb::Conversation {
        id: c.id.to_string(),
        workspace_id: c.workspace_id.to_string(),
        contact_id: c.contact_id.to_string(),
        channel_id: c.channel_id.to_string(),
        status: status as i32,
        created_at: Some(timestamp(c.created_at)),
        last_message_at: Some(timestamp(c.last_message_at)),
    }
}

fn message_to_pb(m: Message) -> pb::Message {
    let status = match m.status.as_str() {
        "received" => DeliveryStatus::Received,
        "pending" => DeliveryStatus::Pending,
        "sent" => DeliveryStatus::Sent,
        "delivered" => DeliveryStatus::Delivered,
        "read" => DeliveryStatus::Read,
        "failed" => DeliveryStatus::Failed,
        _ => DeliveryStatus::Unspecified,
    };
    let direction = if m.direction == "inbound" {
        Direction::Inbound
    } else {
        Direction::Outbound
    };
    pb::Message {
        id: m.id.to_string(),
        conversation_id: m.conversation_id.to_string(),
        direction: direction as i32,
        content: MessageContent::decode(m.content.as_slice()).ok(),
        status: status as i32,
        failure_reason: m.failure_reason,
        external_message_id: m.external_message_id,
        sent_at: Some(timestamp(m.sent_at)),
        created_at: Some(timestamp(m.created_at)),
    }
}

fn validate_content(content: Option<&MessageContent>) -> Result<MessageContent, FieldError> {
    let content = content.cloned().unwrap_or_default();
    match &content.kind {
        Some(Kind::Text(text)) if text.body.trim().is_empty() => {
            Err(FieldError::new("content.text.body", "must not be empty"))
        }
        Some(Kind::Text(text)) if text.body.len() > MAX_TEXT => Err(FieldError::new(
            "content.text.body",
            format!("must be at most {MAX_TEXT} bytes"),
        )),
        Some(Kind::Media(media))
            if !(media.url.starts_with("https://") || media.url.starts_with("http://")) =>
        {
            Err(FieldError::new(
                "content.media.url",
                "must be an http(s) URL",
            ))
        }
        Some(_) => Ok(content),
        None => Err(FieldError::new("content", "is required: text or media")),
    }
}

type Cursor = (DateTime<Utc>, Uuid);

#[tonic::async_trait]
impl ConversationService for Api {
    #[tracing::instrument(skip_all, err)]
    async fn list_conversations(
        &self,
        request: Request<pb::ListConversationsRequest>,
    ) -> Result<Response<pb::ListConversationsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        let limit = paging::page_size(request.page_size).map_err(Error::from)?;
        let before: Option<Cursor> =
            paging::decode_token(&request.page_token).map_err(Error::from)?;
        let rows = store::list_conversations(&self.pool, caller.workspace_id()?, before, limit + 1)
            .await?;
        let (rows, next_page_token) = paging::finish(rows, limit, |c| (c.last_message_at, c.id));
        Ok(Response::new(pb::ListConversationsResponse {
            conversations: rows.into_iter().map(conversation_to_pb).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all, err)]
    async fn get_conversation(
        &self,
        request: Request<pb::GetConversationRequest>,
    ) -> Result<Response<pb::GetConversationResponse>, Status> {
        let caller = Caller::of(&request)?;
        let id = uuid("id", &request.get_ref().id).map_err(Error::from)?;
        let mut conn = self.pool.acquire().await.map_err(Error::from)?;
        let conversation = store::conversation(&mut conn, caller.workspace_id()?, id).await?;
        Ok(Response::new(pb::GetConversationResponse {
            conversation: Some(conversation_to_pb(conversation)),
        }))
    }

    #[tracing::instrument(skip_all, err)]
    async fn list_messages(
        &self,
        request: Request<pb::ListMessagesRequest>,
    ) -> Result<Response<pb::ListMessagesResponse>, Status> {
        let caller = Caller::of(&request)?;
        let workspace_id = caller.workspace_id()?;
        let request = request.into_inner();
        let conversation_id =
            uuid("conversation_id", &request.conversation_id).map_err(Error::from)?;
        let limit = paging::page_size(request.page_size).map_err(Error::from)?;
        let before: Option<Cursor> =
            paging::decode_token(&request.page_token).map_err(Error::from)?;
        let mut conn = self.pool.acquire().await.map_err(Error::from)?;
        store::conversation(&mut conn, workspace_id, conversation_id).await?;
        let rows =
            store::list_messages(&self.pool, workspace_id, conversation_id, before, limit + 1)
                .await?;
        let (rows, next_page_token) = paging::finish(rows, limit, |m| (m.sent_at, m.id));
        Ok(Response::new(pb::ListMessagesResponse {
            messages: rows.into_iter().map(message_to_pb).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all, err)]
    async fn send_message(
        &self,
        request: Request<pb::SendMessageRequest>,
    ) -> Result<Response<pb::SendMessageResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Agent)?;
        let workspace_id = caller.workspace_id()?;
        let request = request.into_inner();
        let conversation_id =
            uuid("conversation_id", &request.conversation_id).map_err(Error::from)?;
        let content = validate_content(request.content.as_ref()).map_err(Error::from)?;
        let client_message_id = Some(request.client_message_id.trim()).filter(|id| !id.is_empty());
        if client_message_id.is_some_and(|id| id.len() > 128) {
            return Err(Error::from(FieldError::new(
                "client_message_id",
                "must be at most 128 bytes",
            ))
            .into());
        }

        let mut tx = self.pool.begin().await.map_err(Error::from)?;
        let conversation = store::conversation(&mut tx, workspace_id, conversation_id).await?;
        if let Some(id) = client_message_id
            && let Some(existing) = store::message_by_client_id(&mut tx, workspace_id, id).await?
        {
            return Ok(Response::new(pb::SendMessageResponse {
                message: Some(message_to_pb(existing)),
            }));
        }
        let now = Utc::now();
        let new = NewMessage {
            workspace_id,
            conversation_id,
            channel_id: conversation.channel_id,
            direction: "outbound",
            content: content.encode_to_vec(),
            status: "pending",
            external_message_id: "",
            client_message_id,
            sent_at: now,
        };
        let message = store::insert_message(&mut tx, &new).await?.ok_or_else(|| {
            Status::aborted(
                "a concurrent send with the same client_message_id won; retry to read it",
            )
        })?;
        store::touch(&mut tx, conversation_id, now).await?;
        let key = conversation_id.to_string();
        let created = MessageCreated {
            message_id: message.id.to_string(),
            conversation_id: key.clone(),
            contact_id: conversation.contact_id.to_string(),
            channel_id: conversation.channel_id.to_string(),
            direction: Direction::Outbound as i32,
            content: Some(content.clone()),
            sent_at: Some(timestamp(now)),
        };
        let delivery = DeliveryRequested {
            message_id: message.id.to_string(),
            channel_id: conversation.channel_id.to_string(),
            recipient_external_id: conversation.contact_external_id.clone(),
            content: Some(content),
            requested_by: crate::SERVICE.to_owned(),
        };
        events::enqueue(
            &mut tx,
            &events::new_event(
                "conversations.message.created",
                workspace_id,
                &key,
                &created,
            ),
        )
        .await
        .map_err(Error::from)?;
        events::enqueue(
            &mut tx,
            &events::new_event(
                "conversations.delivery.requested",
                workspace_id,
                &key,
                &delivery,
            ),
        )
        .await
        .map_err(Error::from)?;
        tx.commit().await.map_err(Error::from)?;
        Ok(Response::new(pb::SendMessageResponse {
            message: Some(message_to_pb(message)),
        }))
    }

    #[tracing::instrument(skip_all, err)]
    async fn get_message(
        &self,
        request: Request<pb::GetMessageRequest>,
    ) -> Result<Response<pb::GetMessageResponse>, Status> {
        let caller = Caller::of(&request)?;
        let id = uuid("id", &request.get_ref().id).map_err(Error::from)?;
        let message = store::message(&self.pool, caller.workspace_id()?, id).await?;
        Ok(Response::new(pb::GetMessageResponse {
            message: Some(message_to_pb(message)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ism_proto::types::v1::{Media, Text};

    #[test]
    fn replies_need_real_content() {
        let text = |body: &str| MessageContent {
            kind: Some(Kind::Text(Text { body: body.into() })),
            ..Default::default()
        };
        assert!(validate_content(Some(&text("hello"))).is_ok());
        assert_eq!(
            validate_content(Some(&text("  "))).unwrap_err().field,
            "content.text.body"
        );
        assert_eq!(
            validate_content(Some(&text(&"x".repeat(MAX_TEXT + 1))))
                .unwrap_err()
                .field,
            "content.text.body"
        );
        assert_eq!(validate_content(None).unwrap_err().field, "content");
        let media = MessageContent {
            kind: Some(Kind::Media(Media {
                r#type: 1,
                url: "file:///etc/passwd".into(),
                caption: String::new(),
            })),
            ..Default::default()
        };
        assert_eq!(
            validate_content(Some(&media)).unwrap_err().field,
            "content.media.url"
        );
    }
}
