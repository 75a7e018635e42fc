//! Applying the gateway's events: inbound messages become stored messages in the
//! contact's conversation; delivery reports move outbound messages' status.
use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use ism_platform::convert::from_timestamp;
use ism_platform::events::{self, Batch, EventContext, EventHandler, HandlerError, topics};
use ism_platform::peer::Peer;
use ism_proto::contacts::v1::contact_service_client::ContactServiceClient;
use ism_proto::contacts::v1::{ResolveContactRequest, SetBroadcastOptOutRequest};
use ism_proto::events::v1::{
    ConversationMessageStatusChanged, Event, MessageCreated, MessageReceived, MessageStatusChanged,
    UserAvailabilityChanged,
};
use ism_proto::types::v1::message_content::Kind as Content;
use ism_proto::types::v1::{ChannelType, DeliveryStatus};
use ism_proto::workspaces::v1 as ws;
use prost::Message as _;
use sqlx::PgConnection;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::assigner::Assigner;
use crate::error::Error;
use crate::lifecycle;
use crate::publish::{self, emit};
use crate::states::{Author, Delivery, Direction, Status};
use crate::store::{self, Conversation, Found, NewMessage, Party};
use crate::wire;

/// Stores `gateway.message.received` events, several per transaction when the queue
/// has a backlog.
pub struct Received {
    pub contacts: Peer<ContactServiceClient<Channel>>,
    pub assigner: Assigner,
    pub consent: Consent,
}

/// The SMS keywords that change a Contact's consent to broadcasts, upper-case.
pub struct Consent {
    pub opt_out: Vec<String>,
    pub opt_in: Vec<String>,
}

impl Consent {
    pub fn new(opt_out: &[String], opt_in: &[String]) -> Self {
        let upper = |words: &[String]| words.iter().map(|w| w.trim().to_uppercase()).collect();
        Self {
            opt_out: upper(opt_out),
            opt_in: upper(opt_in),
        }
    }

    /// Whether `inbound` opts its sender out (`Some(true)`) or in (`Some(false)`): an SMS
    /// whose whole text is a keyword.
    fn asked(&self, inbound: &Inbound) -> Option<bool> {
        if inbound.received.channel_type != ChannelType::TwilioSms as i32 {
            return None;
        }
        let Some(Content::Text(text)) = inbound.received.content.as_ref()?.kind.as_ref() else {
            return None;
        };
        let word = text.body.trim().to_uppercase();
        if self.opt_out.contains(&word) {
            Some(true)
        } else if self.opt_in.contains(&word) {
            Some(false)
        } else {
            None
        }
    }
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
        let received: MessageReceived = topics::MESSAGE_RECEIVED
            .decode(event)
            .map_err(HandlerError::Permanent)?;
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

    fn arrival(&self, contact_id: Uuid) -> Arrival<'_> {
        Arrival {
            party: Party {
                workspace_id: self.workspace_id,
                contact_id,
                channel_id: self.channel_id,
                channel_type: self.received.channel_type,
                contact_external_id: self.external_id(),
            },
            received: &self.received,
            sent_at: self.sent_at,
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
        let contact = self
            .contacts
            .answer(inbound.workspace_id, request, |mut c, r| async move {
                c.resolve_contact(r).await
            })
            .await?
            .map_err(|status| match status.code() {
                tonic::Code::InvalidArgument => HandlerError::Permanent(format!(
                    "contacts refused the sender: {}",
                    status.message()
                )),
                _ => transient(status),
            })?
            .contact
            .ok_or_else(|| HandlerError::Permanent("contacts answered without a contact".into()))?;
        contact.id.parse().map_err(|_| permanent("contact.id"))
    }

    /// Applies an SMS keyword to the sender's consent before the message is stored, so a
    /// failure retries the event instead of losing the request.
    async fn apply_consent(&self, inbound: &Inbound, contact_id: Uuid) -> Result<(), HandlerError> {
        let Some(opted_out) = self.consent.asked(inbound) else {
            return Ok(());
        };
        let request = SetBroadcastOptOutRequest {
            id: contact_id.to_string(),
            opted_out,
        };
        self.contacts
            .answer(inbound.workspace_id, request, |mut c, r| async move {
                c.set_broadcast_opt_out(r).await
            })
            .await?
            .map_err(transient)?;
        Ok(())
    }

    /// Assigns what the stored messages opened or woke, once committed.
    async fn after_commit(&self, stored: &[Stored]) {
        for Stored {
            conversation,
            found,
            message,
        } in stored
        {
            tracing::info!(conversation_id = %conversation.id, message_id = %message.id, "inbound message stored");
            if *found != Found::Open {
                let assigned = self
                    .assigner
                    .auto_assign(conversation.workspace_id, conversation.id);
                self.assigner.best_effort("auto-assign", assigned).await;
            }
        }
    }
}

impl EventHandler for Received {
    async fn handle(&self, event: Event, ctx: EventContext) -> Result<(), HandlerError> {
        let inbound = Inbound::of(&event)?;
        let contact_id = self.resolve(&inbound).await?;
        self.apply_consent(&inbound, contact_id).await?;
        let Some(mut tx) = ctx.begin().await? else {
            return Ok(());
        };
        let arrival = inbound.arrival(contact_id);
        let stored = store_arrivals(&mut tx, &[arrival]).await?;
        tx.commit().await?;
        self.after_commit(&stored).await;
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
        for i in &inbound {
            if let Some(contact_id) = contacts.get(&i.sender()) {
                self.apply_consent(i, *contact_id).await?;
            }
        }
        let (mut tx, fresh) = batch.begin().await?;
        let fresh: HashSet<&str> = fresh.iter().map(|e| e.id.as_str()).collect();
        let arrivals = inbound
            .iter()
            .filter(|i| fresh.contains(i.event_id.as_str()))
            .map(|i| {
                let contact_id = contacts.get(&i.sender()).copied().ok_or_else(|| {
                    HandlerError::Transient(anyhow::anyhow!("a sender was not resolved"))
                })?;
                Ok(i.arrival(contact_id))
            })
            .collect::<Result<Vec<_>, HandlerError>>()?;
        let stored = store_arrivals(&mut tx, &arrivals).await?;
        tx.commit().await?;
        self.after_commit(&stored).await;
        Ok(())
    }
}

/// A Contact's message to store: who wrote, what, and when they sent it.
pub struct Arrival<'a> {
    pub party: Party<'a>,
    pub received: &'a MessageReceived,
    pub sent_at: DateTime<Utc>,
}

impl<'a> Arrival<'a> {
    /// Workspace, Channel and the provider's message id: stored once.
    fn provider_key(&self) -> (Uuid, Uuid, &'a str) {
        (
            self.party.workspace_id,
            self.party.channel_id,
            self.received.external_message_id.as_str(),
        )
    }
}

/// A message stored, with its conversation and what storing it did to it.
pub struct Stored {
    pub conversation: Conversation,
    pub found: Found,
    pub message: store::Message,
}

/// Stores Contacts' messages in their conversations (opening or waking them) with
/// their events, in the caller's transaction and with a handful of statements however
/// many there are. A provider message already stored, or given twice, is stored once.
pub async fn store_arrivals(
    tx: &mut PgConnection,
    arrivals: &[Arrival<'_>],
) -> Result<Vec<Stored>, Error> {
    let keys: Vec<_> = arrivals.iter().map(Arrival::provider_key).collect();
    let already = store::stored_inbound(tx, &keys).await?;
    let mut seen = HashSet::new();
    let fresh: Vec<&Arrival<'_>> = arrivals
        .iter()
        .filter(|a| {
            let (w, c, e) = a.provider_key();
            !already.contains(&(w, c, e.to_owned())) && seen.insert((w, c, e))
        })
        .collect();
    if fresh.is_empty() {
        return Ok(Vec::new());
    }
    let parties: Vec<_> = fresh.iter().map(|a| a.party.key()).collect();
    let mut active = store::lock_active(tx, &parties).await?;
    // Each conversation once: found open, or opened or woken (and announced) by the
    // first of its messages.
    let mut conversations: HashMap<_, (Conversation, Found)> = HashMap::new();
    for arrival in &fresh {
        let party = arrival.party.key();
        if conversations.contains_key(&party) {
            continue;
        }
        let found = match active.remove(&party) {
            Some(open) if open.status == Status::Open => (open, Found::Open),
            _ => {
                let (conversation, found) =
                    store::open_or_find(tx, &arrival.party, arrival.sent_at).await?;
                announce(tx, &conversation, found).await?;
                (conversation, found)
            }
        };
        conversations.insert(party, found);
    }
    let new: Vec<NewMessage<'_>> = fresh
        .iter()
        .map(|a| NewMessage {
            workspace_id: a.party.workspace_id,
            conversation_id: conversations[&a.party.key()].0.id,
            channel_id: a.party.channel_id,
            direction: Direction::Inbound,
            content: a
                .received
                .content
                .clone()
                .unwrap_or_default()
                .encode_to_vec(),
            status: Delivery::Received,
            external_message_id: &a.received.external_message_id,
            client_message_id: None,
            sent_at: a.sent_at,
            sender: Author::Contact,
            sender_id: "",
            mentions: &[],
        })
        .collect();
    let messages = store::insert_messages(tx, &new).await?;
    if messages.len() != new.len() {
        return Err(Error::Aborted(
            "a concurrent delivery stored the same provider message; retrying".into(),
        ));
    }
    let applied: Vec<_> = messages
        .iter()
        .map(|m| (m.conversation_id, m.sent_at))
        .collect();
    store::record_inbound(tx, &applied).await?;
    let created: Vec<Event> = fresh
        .iter()
        .zip(&messages)
        .map(|(a, message)| {
            let created = MessageCreated {
                message_id: message.id.to_string(),
                conversation_id: message.conversation_id.to_string(),
                contact_id: a.party.contact_id.to_string(),
                channel_id: a.party.channel_id.to_string(),
                direction: wire::direction(Direction::Inbound) as i32,
                content: a.received.content.clone(),
                sent_at: a.received.sent_at,
                sender: wire::party(Author::Contact) as i32,
                sender_id: String::new(),
            };
            topics::MESSAGE_CREATED.event(
                a.party.workspace_id,
                &message.conversation_id.to_string(),
                &created,
            )
        })
        .collect();
    events::enqueue_all(tx, &created).await?;
    let mut announced = HashSet::new();
    Ok(fresh
        .iter()
        .zip(messages)
        .map(|(a, message)| {
            let (conversation, found) = &conversations[&a.party.key()];
            // Only a conversation's first message opened or woke it.
            let found = if announced.insert(conversation.id) {
                *found
            } else {
                Found::Open
            };
            Stored {
                conversation: conversation.clone(),
                found,
                message,
            }
        })
        .collect())
}

/// The event of a conversation the Contact's message opened or woke.
async fn announce(
    tx: &mut PgConnection,
    conversation: &Conversation,
    found: Found,
) -> Result<(), Error> {
    match found {
        Found::Opened => {
            let contact_id = conversation.contact_id.to_string();
            publish::opened(tx, conversation, Author::Contact, &contact_id).await
        }
        Found::Woken => lifecycle::woken(tx, conversation, "message").await,
        Found::Open => Ok(()),
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
        let report: MessageStatusChanged = topics::MESSAGE_STATUS
            .decode(&event)
            .map_err(HandlerError::Permanent)?;
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
            Ok(DeliveryStatus::Sent) => Delivery::Sent,
            Ok(DeliveryStatus::Delivered) => Delivery::Delivered,
            Ok(DeliveryStatus::Read) => Delivery::Read,
            Ok(DeliveryStatus::Failed) => Delivery::Failed,
            Ok(DeliveryStatus::Pending) => {
                let Some(next) = report.next_attempt_at.as_ref().and_then(from_timestamp) else {
                    return Ok(());
                };
                let Some(mut tx) = ctx.begin().await? else {
                    return Ok(());
                };
                store::note_retry(&mut tx, workspace_id, message_id, &report.reason, next).await?;
                tx.commit().await?;
                return Ok(());
            }
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
                &topics::CONVERSATION_MESSAGE_STATUS_CHANGED,
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
        let changed: UserAvailabilityChanged = topics::USER_AVAILABILITY_CHANGED
            .decode(&event)
            .map_err(HandlerError::Permanent)?;
        let workspace_id: Uuid = event
            .workspace_id
            .parse()
            .map_err(|_| permanent("workspace_id"))?;
        if changed.availability == ws::Availability::Online as i32 {
            self.assigner.drain_backlog(workspace_id).await?;
        }
        // Recorded only after the hand-out, so a failed one is retried.
        if let Some(tx) = ctx.begin().await? {
            tx.commit().await?;
        }
        Ok(())
    }
}
