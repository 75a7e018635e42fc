//! Event types bound to their payloads. A [`Topic`] names one routing key
//! (`<service>.<entity>.<verb>`) and the payload type its events carry, once: a writer
//! cannot put a payload under another type's key, a reader decodes with the same constant,
//! and a key whose first part is not its service's name does not compile, so the relay a
//! write wakes (the first part's) is always the one that publishes it.
use std::marker::PhantomData;

use ism_proto::events::v1::Event;
use prost::Name;
use uuid::Uuid;

use super::envelope;
use crate::config::ServiceName;

/// The events of one routing key, whose payload is a `P`.
pub struct Topic<P> {
    service: ServiceName,
    key: &'static str,
    payload: PhantomData<fn() -> P>,
}

impl<P> Clone for Topic<P> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<P> Copy for Topic<P> {}

impl<P> std::fmt::Debug for Topic<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.key)
    }
}

impl<P: Name + Default> Topic<P> {
    /// The topic `key` of `service`; a key that does not start with `<service>.` fails to
    /// compile where the constant is defined.
    pub const fn new(service: ServiceName, key: &'static str) -> Self {
        let (name, key_bytes) = (service.as_str().as_bytes(), key.as_bytes());
        assert!(
            key_bytes.len() > name.len() && key_bytes[name.len()] == b'.',
            "a topic's key starts with its service's name and a dot"
        );
        let mut i = 0;
        while i < name.len() {
            assert!(
                key_bytes[i] == name[i],
                "a topic's key starts with its service's name"
            );
            i += 1;
        }
        Self {
            service,
            key,
            payload: PhantomData,
        }
    }

    /// The routing key.
    pub const fn key(&self) -> &'static str {
        self.key
    }

    /// The service whose relay publishes these events.
    pub const fn service(&self) -> ServiceName {
        self.service
    }

    /// A new event of this topic, in `workspace_id`, ordered with the other events of
    /// `partition_key` (a conversation, a Contact).
    pub fn event(&self, workspace_id: Uuid, partition_key: &str, payload: &P) -> Event {
        envelope::new_event(self.key, workspace_id, partition_key, payload)
    }

    /// The payload of `event`, if it is one of this topic's.
    pub fn decode(&self, event: &Event) -> Result<P, String> {
        if event.r#type != self.key {
            return Err(format!("a {} event is not a {}", event.r#type, self.key));
        }
        envelope::decode_payload(event)
    }
}

/// Every event type the services emit.
pub mod topics {
    use ism_proto::events::v1 as ev;

    use super::Topic;
    use crate::config::ServiceName::{
        Broadcasts, Contacts, Conversations, Gateway, Integrations, Workflows, Workspaces,
    };

    pub const USER_AVAILABILITY_CHANGED: Topic<ev::UserAvailabilityChanged> =
        Topic::new(Workspaces, "workspaces.user.availability_changed");

    pub const ACCESS_REVOKED: Topic<ev::AccessRevoked> =
        Topic::new(Workspaces, "workspaces.access.revoked");

    pub const MESSAGE_RECEIVED: Topic<ev::MessageReceived> =
        Topic::new(Gateway, "gateway.message.received");
    /// A message the business sent from the provider's own app, seen by its webhook.
    pub const MESSAGE_ECHOED: Topic<ev::MessageReceived> =
        Topic::new(Gateway, "gateway.message.echoed");
    pub const MESSAGE_STATUS: Topic<ev::MessageStatusChanged> =
        Topic::new(Gateway, "gateway.message.status");

    pub const CONTACT_CREATED: Topic<ev::ContactCreated> =
        Topic::new(Contacts, "contacts.contact.created");
    pub const CONTACT_UPDATED: Topic<ev::ContactUpdated> =
        Topic::new(Contacts, "contacts.contact.updated");
    pub const CONTACT_FIELD_CHANGED: Topic<ev::ContactFieldChanged> =
        Topic::new(Contacts, "contacts.contact.field_changed");
    pub const CONTACT_DELETED: Topic<ev::ContactDeleted> =
        Topic::new(Contacts, "contacts.contact.deleted");
    pub const CONTACT_RESTORED: Topic<ev::ContactDeleted> =
        Topic::new(Contacts, "contacts.contact.restored");
    pub const CONTACT_BLOCKED: Topic<ev::ContactBlocked> =
        Topic::new(Contacts, "contacts.contact.blocked");
    pub const CONTACT_UNBLOCKED: Topic<ev::ContactBlocked> =
        Topic::new(Contacts, "contacts.contact.unblocked");
    pub const CONTACT_OPTED_OUT: Topic<ev::ContactOptOutChanged> =
        Topic::new(Contacts, "contacts.contact.opted_out");
    pub const CONTACT_OPTED_IN: Topic<ev::ContactOptOutChanged> =
        Topic::new(Contacts, "contacts.contact.opted_in");
    pub const CONTACT_LIFECYCLE_UPDATED: Topic<ev::ContactLifecycleUpdated> =
        Topic::new(Contacts, "contacts.lifecycle.updated");
    pub const CONTACT_MERGED: Topic<ev::ContactMerged> =
        Topic::new(Contacts, "contacts.contact.merged");
    pub const TAG_ADDED: Topic<ev::ContactTagChanged> = Topic::new(Contacts, "contacts.tag.added");
    pub const TAG_REMOVED: Topic<ev::ContactTagChanged> =
        Topic::new(Contacts, "contacts.tag.removed");
    pub const TAG_RENAMED: Topic<ev::TagRenamed> = Topic::new(Contacts, "contacts.tag.renamed");
    pub const TAG_DELETED: Topic<ev::TagDeleted> = Topic::new(Contacts, "contacts.tag.deleted");

    pub const MESSAGE_CREATED: Topic<ev::MessageCreated> =
        Topic::new(Conversations, "conversations.message.created");
    pub const CONVERSATION_MESSAGE_STATUS_CHANGED: Topic<ev::ConversationMessageStatusChanged> =
        Topic::new(Conversations, "conversations.message.status_changed");
    /// A reply for the gateway to deliver; other services ask with `<service>.delivery.requested`.
    pub const DELIVERY_REQUESTED: Topic<ev::DeliveryRequested> =
        Topic::new(Conversations, "conversations.delivery.requested");
    pub const COMMENT_ADDED: Topic<ev::CommentAdded> =
        Topic::new(Conversations, "conversations.comment.added");
    pub const CONVERSATION_OPENED: Topic<ev::ConversationOpened> =
        Topic::new(Conversations, "conversations.conversation.opened");
    pub const CONVERSATION_CLOSED: Topic<ev::ConversationClosed> =
        Topic::new(Conversations, "conversations.conversation.closed");
    pub const CONVERSATION_SNOOZED: Topic<ev::ConversationSnoozed> =
        Topic::new(Conversations, "conversations.conversation.snoozed");
    pub const CONVERSATION_WOKEN: Topic<ev::ConversationWoken> =
        Topic::new(Conversations, "conversations.conversation.woken");
    pub const CONVERSATION_ASSIGNED: Topic<ev::ConversationAssigned> =
        Topic::new(Conversations, "conversations.conversation.assigned");
    pub const CONVERSATION_UNASSIGNED: Topic<ev::ConversationUnassigned> =
        Topic::new(Conversations, "conversations.conversation.unassigned");

    /// A broadcast's message to one recipient, for the gateway to deliver; its message id
    /// is the recipient's, so a recipient is handed over once whatever is retried.
    pub const BROADCAST_DELIVERY_REQUESTED: Topic<ev::DeliveryRequested> =
        Topic::new(Broadcasts, "broadcasts.delivery.requested");
    pub const BROADCAST_STATE_CHANGED: Topic<ev::BroadcastStateChanged> =
        Topic::new(Broadcasts, "broadcasts.broadcast.state_changed");

    pub const WORKFLOW_RUN_STARTED: Topic<ev::WorkflowRunChanged> =
        Topic::new(Workflows, "workflows.run.started");
    pub const WORKFLOW_RUN_COMPLETED: Topic<ev::WorkflowRunChanged> =
        Topic::new(Workflows, "workflows.run.completed");
    pub const WORKFLOW_RUN_FAILED: Topic<ev::WorkflowRunChanged> =
        Topic::new(Workflows, "workflows.run.failed");
    pub const WORKFLOW_RUN_CANCELLED: Topic<ev::WorkflowRunChanged> =
        Topic::new(Workflows, "workflows.run.cancelled");

    /// A webhook endpoint has failed every attempt for `integrations.warn_after_hours`.
    pub const WEBHOOK_ENDPOINT_FAILING: Topic<ev::WebhookEndpointFailing> =
        Topic::new(Integrations, "integrations.endpoint.failing");
    pub const WEBHOOK_ENDPOINT_DISABLED: Topic<ev::WebhookEndpointDisabled> =
        Topic::new(Integrations, "integrations.endpoint.disabled");
}

#[cfg(test)]
mod tests {
    use ism_proto::events::v1::{ContactCreated, MessageReceived};

    use super::topics::*;

    #[test]
    fn an_event_decodes_with_its_own_topic_only() {
        let payload = MessageReceived {
            external_message_id: "m1".into(),
            ..Default::default()
        };
        let event = MESSAGE_RECEIVED.event(uuid::Uuid::now_v7(), "k", &payload);
        assert_eq!(event.r#type, "gateway.message.received");
        assert_eq!(MESSAGE_RECEIVED.decode(&event).unwrap(), payload);
        assert!(MESSAGE_ECHOED.decode(&event).is_err());
        let created = CONTACT_CREATED.event(uuid::Uuid::now_v7(), "k", &ContactCreated::default());
        assert!(MESSAGE_RECEIVED.decode(&created).is_err());
    }
}
