//! Applying the gateway's events: inbound messages become stored messages in the
//! contact's conversation; delivery reports move outbound messages' status.
use std::sync::Arc;

use ism_platform::auth::ServiceTokens;
use ism_platform::convert::from_timestamp;
use ism_platform::events::{self, EventContext, EventHandler, HandlerError};
use ism_proto::contacts::v1::ResolveContactRequest;
use ism_proto::contacts::v1::contact_service_client::ContactServiceClient;
use ism_proto::events::v1::{Event, MessageCreated, MessageReceived, MessageStatusChanged};
use ism_proto::types::v1::{DeliveryStatus, Direction};
use prost::Message as _;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::store::{self, NewMessage, Party};

/// Stores `gateway.message.received` events.
pub struct Received {
    pub contacts: ContactServiceClient<Channel>,
    pub tokens: Arc<ServiceTokens>,
}

fn permanent(what: &str) -> HandlerError {
    HandlerError::Permanent(format!("{what} is missing or not a UUID"))
}

impl EventHandler for Received {
    async fn handle(&self, event: Event, ctx: EventContext) -> Result<(), HandlerError> {
        let received: MessageReceived =
            events::decode_payload(&event).map_err(HandlerError::Permanent)?;
        let workspace_id: Uuid = event
            .workspace_id
            .parse()
            .map_err(|_| permanent("workspace_id"))?;
        let channel_id: Uuid = received
            .channel_id
            .parse()
            .map_err(|_| permanent("channel_id"))?;
        let sender = received.sender.clone().unwrap_or_default();
        let request = ResolveContactRequest {
            channel_id: received.channel_id.clone(),
            external_id: sender.external_id.clone(),
            display_name: sender.display_name.clone(),
        };
        let request = self
            .tokens
            .request(request, workspace_id)
            .await
            .map_err(transient)?;
        let contact = self
            .contacts
            .clone()
            .resolve_contact(request)
            .await
            .map_err(|status| match status.code() {
                tonic::Code::InvalidArgument => HandlerError::Permanent(format!(
                    "contacts refused the sender: {}",
                    status.message()
                )),
                _ => transient(status),
            })?
            .into_inner()
            .contact
            .ok_or_else(|| HandlerError::Permanent("contacts answered without a contact".into()))?;
        let contact_id: Uuid = contact.id.parse().map_err(|_| permanent("contact.id"))?;
        let sent_at = received
            .sent_at
            .as_ref()
            .and_then(from_timestamp)
            .unwrap_or_else(chrono::Utc::now);

        let Some(mut tx) = ctx.begin().await? else {
            return Ok(());
        };
        let party = Party {
            workspace_id,
            contact_id,
            channel_id,
            contact_external_id: &sender.external_id,
        };
        let conversation = store::open_or_find(&mut tx, &party, sent_at).await?;
        let new = NewMessage {
            workspace_id,
            conversation_id: conversation.id,
            channel_id,
            direction: "inbound",
            content: received.content.clone().unwrap_or_default().encode_to_vec(),
            status: "received",
            external_message_id: &received.external_message_id,
            client_message_id: None,
            sent_at,
        };
        let Some(message) = store::insert_message(&mut tx, &new).await? else {
            // The same provider message under another event id: already stored.
            tx.commit().await?;
            return Ok(());
        };
        let created = MessageCreated {
            message_id: message.id.to_string(),
            conversation_id: conversation.id.to_string(),
            contact_id: contact_id.to_string(),
            channel_id: channel_id.to_string(),
            direction: Direction::Inbound as i32,
            content: received.content,
            sent_at: received.sent_at,
        };
        let event = events::new_event(
            "conversations.message.created",
            workspace_id,
            &conversation.id.to_string(),
            &created,
        );
        events::enqueue(&mut tx, &event).await?;
        tx.commit().await?;
        tracing::info!(conversation_id = %conversation.id, message_id = %message.id, "inbound message stored");
        Ok(())
    }
}

fn transient(status: tonic::Status) -> HandlerError {
    HandlerError::Transient(anyhow::anyhow!(
        "contacts: {} {}",
        status.code(),
        status.message()
    ))
}

/// Applies `gateway.message.status` reports about our messages.
pub struct StatusReports;

impl EventHandler for StatusReports {
    async fn handle(&self, event: Event, ctx: EventContext) -> Result<(), HandlerError> {
        let report: MessageStatusChanged =
            events::decode_payload(&event).map_err(HandlerError::Permanent)?;
        if report.requested_by != crate::SERVICE {
            return Ok(());
        }
        let workspace_id: Uuid = event
            .workspace_id
            .parse()
            .map_err(|_| permanent("workspace_id"))?;
        let message_id: Uuid = report
            .message_id
            .parse()
            .map_err(|_| permanent("message_id"))?;
        let status = match DeliveryStatus::try_from(report.status) {
            Ok(DeliveryStatus::Sent) => "sent",
            Ok(DeliveryStatus::Delivered) => "delivered",
            Ok(DeliveryStatus::Read) => "read",
            Ok(DeliveryStatus::Failed) => "failed",
            _ => return Ok(()),
        };
        let Some(mut tx) = ctx.begin().await? else {
            return Ok(());
        };
        store::advance_status(
            &mut tx,
            workspace_id,
            message_id,
            status,
            &report.reason,
            &report.external_message_id,
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
