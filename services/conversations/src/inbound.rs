//! Applying the gateway's events: inbound messages become stored messages in the
//! contact's conversation; delivery reports move outbound messages' status.
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use ism_platform::auth::ServiceTokens;
use ism_platform::convert::from_timestamp;
use ism_platform::events::{self, Batch, EventContext, EventHandler, HandlerError};
use ism_proto::contacts::v1::ResolveContactRequest;
use ism_proto::contacts::v1::contact_service_client::ContactServiceClient;
use ism_proto::events::v1::{
    ConversationMessageStatusChanged, ConversationOpened, Event, MessageCreated, MessageReceived,
    MessageStatusChanged, UserAvailabilityChanged,
};
use ism_proto::types::v1::{DeliveryStatus, Direction};
use prost::Message as _;
use sqlx::PgConnection;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::assigner::Assigner;
use crate::clock::Clock;
use crate::error::Error;
use crate::lifecycle;
use crate::publish::emit;
use crate::store::{self, Conversation, Found, NewMessage, Party};

/// Stores `gateway.message.received` events, several per transaction when the queue
/// has a backlog.
pub struct Received {
    pub contacts: ContactServiceClient<Channel>,
    pub tokens: Arc<ServiceTokens>,
    pub clock: Clock,
    pub assigner: Assigner,
}

/// Deliveries of one lane stored in one transaction.
const BATCH: usize = 32;

fn permanent(what: &str) -> HandlerError {
    HandlerError::Permanent(format!("{what} is missing or not a UUID"))
}

/// An inbound message event, read.
struct Inbound {
    event_id: String,
    workspace_id: Uuid,
    channel_id: Uuid,
    received: MessageReceived,
    sent_at: DateTime<Utc>,
}

impl Inbound {
    fn of(event: &Event) -> Result<Self, HandlerError> {
        let received: MessageReceived =
            events::decode_payload(event).map_err(HandlerError::Permanent)?;
        let workspace_id = event
            .workspace_id
            .parse()
            .map_err(|_| permanent("workspace_id"))?;
        let channel_id = received
            .channel_id
            .parse()
            .map_err(|_| permanent("channel_id"))?;
        let sent_at = received
            .sent_at
            .as_ref()
            .and_then(from_timestamp)
            .unwrap_or_else(chrono::Utc::now);
        Ok(Self {
            event_id: event.id.clone(),
            workspace_id,
            channel_id,
            received,
            sent_at,
        })
    }

    fn external_id(&self) -> &str {
        self.received
            .sender
            .as_ref()
            .map_or("", |s| s.external_id.as_str())
    }

    /// Who wrote: the Workspace, Channel and the sender's id there.
    fn sender(&self) -> (Uuid, Uuid, &str) {
        (self.workspace_id, self.channel_id, self.external_id())
    }

    fn party(&self, contact_id: Uuid) -> Party<'_> {
        Party {
            workspace_id: self.workspace_id,
            contact_id,
            channel_id: self.channel_id,
            channel_type: self.received.channel_type,
            contact_external_id: self.external_id(),
        }
    }
}

impl Received {
    /// The Contact who wrote, found or created by the contacts service.
    async fn resolve(&self, inbound: &Inbound) -> Result<Uuid, HandlerError> {
        let sender = inbound.received.sender.clone().unwrap_or_default();
        let request = ResolveContactRequest {
            channel_id: inbound.received.channel_id.clone(),
            external_id: sender.external_id,
            display_name: sender.display_name,
        };
        let request = self
            .tokens
            .request(request, inbound.workspace_id)
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
        contact.id.parse().map_err(|_| permanent("contact.id"))
    }

    /// Assigns what a stored message opened or woke, once committed.
    async fn after_commit(&self, stored: &[(Uuid, Conversation, Found, store::Message)]) {
        for (workspace_id, conversation, found, message) in stored {
            tracing::info!(conversation_id = %conversation.id, message_id = %message.id, "inbound message stored");
            if *found != Found::Open {
                let assigned = self.assigner.auto_assign(*workspace_id, conversation.id);
                self.assigner.best_effort("auto-assign", assigned).await;
            }
        }
    }
}

impl EventHandler for Received {
    async fn handle(&self, event: Event, ctx: EventContext) -> Result<(), HandlerError> {
        let inbound = Inbound::of(&event)?;
        let contact_id = self.resolve(&inbound).await?;
        let Some(mut tx) = ctx.begin().await? else {
            return Ok(());
        };
        let party = inbound.party(contact_id);
        let now = self.clock.now();
        let stored =
            store_received(&mut tx, &party, &inbound.received, inbound.sent_at, now).await?;
        tx.commit().await?;
        // `None`: the same provider message under another event id, already stored.
        if let Some((conversation, found, message)) = stored {
            self.after_commit(&[(inbound.workspace_id, conversation, found, message)])
                .await;
        }
        Ok(())
    }

    fn batch_size(&self) -> usize {
        BATCH
    }

    async fn handle_batch(&self, batch: Batch) -> Result<(), HandlerError> {
        let inbound = batch
            .events()
            .map(Inbound::of)
            .collect::<Result<Vec<_>, _>>()?;
        // Each sender once, all at once, before the transaction begins.
        let mut seen = HashSet::new();
        let senders: Vec<&Inbound> = inbound.iter().filter(|i| seen.insert(i.sender())).collect();
        let resolved =
            futures::future::try_join_all(senders.iter().map(|i| self.resolve(i))).await?;
        let contacts: HashMap<_, Uuid> = senders.iter().map(|i| i.sender()).zip(resolved).collect();
        let (mut tx, fresh) = batch.begin().await?;
        let fresh: HashSet<&str> = fresh.iter().map(|e| e.id.as_str()).collect();
        let now = self.clock.now();
        let mut stored = Vec::new();
        for inbound in inbound
            .iter()
            .filter(|i| fresh.contains(i.event_id.as_str()))
        {
            let contact_id = contacts.get(&inbound.sender()).copied().ok_or_else(|| {
                HandlerError::Transient(anyhow::anyhow!("a sender was not resolved"))
            })?;
            let party = inbound.party(contact_id);
            if let Some((conversation, found, message)) =
                store_received(&mut tx, &party, &inbound.received, inbound.sent_at, now).await?
            {
                stored.push((inbound.workspace_id, conversation, found, message));
            }
        }
        tx.commit().await?;
        self.after_commit(&stored).await;
        Ok(())
    }
}

/// Stores a Contact's message in their conversation (opening or waking it) with its
/// events, in the caller's transaction; `None` when the provider message is already
/// stored. `now` is the service clock's time.
pub async fn store_received(
    tx: &mut PgConnection,
    party: &Party<'_>,
    received: &MessageReceived,
    sent_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Option<(Conversation, Found, store::Message)>, Error> {
    let (workspace_id, channel_id, contact_id) =
        (party.workspace_id, party.channel_id, party.contact_id);
    if store::inbound_exists(tx, workspace_id, channel_id, &received.external_message_id).await? {
        return Ok(None);
    }
    let (conversation, found) = store::open_or_find(tx, party, sent_at).await?;
    match found {
        Found::Opened => {
            let opened = ConversationOpened {
                conversation_id: conversation.id.to_string(),
                contact_id: contact_id.to_string(),
                channel_id: channel_id.to_string(),
                opened_by: "contact".into(),
                opened_by_id: contact_id.to_string(),
            };
            emit(
                tx,
                "conversations.conversation.opened",
                workspace_id,
                conversation.id,
                &opened,
            )
            .await?;
        }
        Found::Woken => lifecycle::woken(tx, &conversation, "message").await?,
        Found::Open => {}
    }
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
        sender: "contact",
        sender_id: "",
        mentions: &[],
    };
    let message = store::insert_message(tx, &new)
        .await?
        .ok_or(Error::Aborted(
            "a concurrent delivery stored the same provider message; retrying",
        ))?;
    store::record_message(tx, conversation.id, "contact", sent_at, now).await?;
    let created = MessageCreated {
        message_id: message.id.to_string(),
        conversation_id: conversation.id.to_string(),
        contact_id: contact_id.to_string(),
        channel_id: channel_id.to_string(),
        direction: Direction::Inbound as i32,
        content: received.content.clone(),
        sent_at: received.sent_at,
        sender: "contact".into(),
        sender_id: String::new(),
    };
    emit(
        tx,
        "conversations.message.created",
        workspace_id,
        conversation.id,
        &created,
    )
    .await?;
    Ok(Some((conversation, found, message)))
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
        let advanced = store::advance_status(
            &mut tx,
            workspace_id,
            message_id,
            status,
            &report.reason,
            &report.external_message_id,
        )
        .await?;
        if let Some(advanced) = advanced {
            let changed = ConversationMessageStatusChanged {
                message_id: message_id.to_string(),
                conversation_id: advanced.conversation_id.to_string(),
                status: report.status,
                reason: report.reason.clone(),
            };
            emit(
                &mut tx,
                "conversations.message.status_changed",
                workspace_id,
                advanced.conversation_id,
                &changed,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Hands out the unassigned backlog when a User comes online
/// (`workspaces.user.availability_changed`).
pub struct Availability {
    pub assigner: Assigner,
}

impl EventHandler for Availability {
    async fn handle(&self, event: Event, ctx: EventContext) -> Result<(), HandlerError> {
        let changed: UserAvailabilityChanged =
            events::decode_payload(&event).map_err(HandlerError::Permanent)?;
        let workspace_id: Uuid = event
            .workspace_id
            .parse()
            .map_err(|_| permanent("workspace_id"))?;
        if changed.availability == "online" {
            self.assigner.drain_backlog(workspace_id).await?;
        }
        // Recorded only after the hand-out, so a failed one is retried.
        if let Some(tx) = ctx.begin().await? {
            tx.commit().await?;
        }
        Ok(())
    }
}
