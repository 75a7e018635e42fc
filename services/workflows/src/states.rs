//! The states a run is stored in.
use ism_platform::stored_enum;

stored_enum! {
    /// Where a run is (see the API's `RunState`).
    pub enum RunState {
        Running = "running",
        Waiting = "waiting",
        Completed = "completed",
        Failed = "failed",
        Cancelled = "cancelled",
    }
}

stored_enum! {
    /// The kind of trigger a published workflow has.
    pub enum TriggerKind {
        MessageReceived = "message_received",
        ConversationOpened = "conversation_opened",
        ConversationClosed = "conversation_closed",
        ContactTagUpdated = "contact_tag_updated",
        ContactFieldUpdated = "contact_field_updated",
        LifecycleUpdated = "lifecycle_updated",
        IncomingWebhook = "incoming_webhook",
        Schedule = "schedule",
        Manual = "manual",
    }
}
