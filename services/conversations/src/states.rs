//! The states a conversation and its messages are stored in.
use ism_platform::stored_enum;

stored_enum! {
    /// Where a conversation stands.
    pub enum Status {
        /// Waiting for, or being answered by, the business.
        Open = "open",
        /// Set aside until a time or the Contact's next message.
        Snoozed = "snoozed",
        /// Done; the Contact's next message opens a new conversation.
        Closed = "closed",
    }
}

stored_enum! {
    /// Which way a message went.
    pub enum Direction {
        /// From the Contact.
        Inbound = "inbound",
        /// To the Contact.
        Outbound = "outbound",
        /// A comment between colleagues; never delivered.
        Internal = "internal",
    }
}

stored_enum! {
    /// How far a message got.
    pub enum Delivery {
        /// An internal comment: nothing to deliver.
        None = "none",
        /// An inbound message, stored.
        Received = "received",
        /// A reply handed to the gateway, not yet accepted by the provider.
        Pending = "pending",
        Sent = "sent",
        Delivered = "delivered",
        Read = "read",
        Failed = "failed",
    }
}

stored_enum! {
    /// Who wrote a message or opened a conversation.
    pub enum Author {
        Contact = "contact",
        User = "user",
        Workflow = "workflow",
        Bot = "bot",
        Broadcast = "broadcast",
    }
}

stored_enum! {
    /// What a conversation's timer does when it is due.
    pub enum Timer {
        /// Reopens a snoozed conversation.
        Wake = "wake",
        /// Closes a conversation the Contact has not answered.
        AutoClose = "auto_close",
    }
}
