//! Every consumer queue and what it binds, in one table. Each service declares the whole
//! table before it publishes, so an event is never published before the queue of a
//! consumer that has not started yet exists (RabbitMQ drops unroutable messages).
use super::topics;

/// A consumer's queue: `<queue_prefix>.<service>.<name>`, bound to `patterns`.
#[derive(Debug, Clone, Copy)]
pub struct QueueSpec {
    pub service: &'static str,
    pub name: &'static str,
    pub patterns: &'static [&'static str],
}

impl QueueSpec {
    /// `<service>.<name>`: the queue's name after the deployment's queue prefix.
    pub fn consumer(&self) -> String {
        format!("{}.{}", self.service, self.name)
    }
}

/// The gateway queues delivery requests from any service.
pub const GATEWAY_DELIVERY: QueueSpec = QueueSpec {
    service: "gateway",
    name: "delivery",
    patterns: &["*.delivery.requested"],
};

/// Conversations stores inbound messages.
pub const CONVERSATIONS_INBOUND: QueueSpec = QueueSpec {
    service: "conversations",
    name: "inbound",
    patterns: &[topics::MESSAGE_RECEIVED.key()],
};

/// Conversations applies delivery status reports.
pub const CONVERSATIONS_STATUS: QueueSpec = QueueSpec {
    service: "conversations",
    name: "status",
    patterns: &[topics::MESSAGE_STATUS.key()],
};

/// Conversations hands out its unassigned backlog when a User comes online.
pub const CONVERSATIONS_AVAILABILITY: QueueSpec = QueueSpec {
    service: "conversations",
    name: "availability",
    patterns: &[topics::USER_AVAILABILITY_CHANGED.key()],
};

/// Conversations moves a merged Contact's conversations to the surviving Contact.
pub const CONVERSATIONS_MERGES: QueueSpec = QueueSpec {
    service: "conversations",
    name: "merges",
    patterns: &[topics::CONTACT_MERGED.key()],
};

/// Broadcasts records what became of each recipient it handed to the gateway.
pub const BROADCASTS_STATUS: QueueSpec = QueueSpec {
    service: "broadcasts",
    name: "status",
    patterns: &[topics::MESSAGE_STATUS.key()],
};

/// Integrations turns events into webhook deliveries. Bound at run time to the event types
/// some endpoint subscribes to (ADR 26), so an event type nobody subscribes to costs
/// nothing here.
pub const INTEGRATIONS_EVENTS: QueueSpec = QueueSpec {
    service: "integrations",
    name: "events",
    patterns: &[],
};

/// Integrations' bots read the Contacts' messages and see humans take conversations over.
/// Bound at run time, only while some Workspace has a bot (ADR 26).
pub const INTEGRATIONS_BOTS: QueueSpec = QueueSpec {
    service: "integrations",
    name: "bots",
    patterns: &[],
};

/// Workflows starts runs from a Contact's messages and opened conversations. Bound at run
/// time, only to the types some enabled workflow is triggered by (ADR 26).
pub const WORKFLOWS_TRIGGERS: QueueSpec = QueueSpec {
    service: "workflows",
    name: "triggers",
    patterns: &[],
};

/// All of them.
pub const QUEUES: &[QueueSpec] = &[
    GATEWAY_DELIVERY,
    CONVERSATIONS_INBOUND,
    CONVERSATIONS_STATUS,
    CONVERSATIONS_AVAILABILITY,
    CONVERSATIONS_MERGES,
    BROADCASTS_STATUS,
    INTEGRATIONS_EVENTS,
    INTEGRATIONS_BOTS,
    WORKFLOWS_TRIGGERS,
];
