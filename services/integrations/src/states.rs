//! The states a webhook delivery is stored in.
use ism_platform::stored_enum;

stored_enum! {
    /// What became of a delivery (see the API's `WebhookDeliveryState`).
    pub enum DeliveryState {
        Pending = "pending",
        Delivered = "delivered",
        Failed = "failed",
        Skipped = "skipped",
    }
}

stored_enum! {
    /// Whether a bot answers a conversation.
    pub enum SessionState {
        /// The bot answers the Contact's messages.
        Active = "active",
        /// The bot handed the conversation to a human (it asked, or failed).
        HandedOver = "handed_over",
        /// A human took it (an assignment), or it was closed.
        Ended = "ended",
    }
}

stored_enum! {
    /// What became of a Contact's message for a bot.
    pub enum TurnState {
        Pending = "pending",
        /// Answered (or handed over).
        Done = "done",
        /// Not answered: the session had ended, or the bot is gone.
        Skipped = "skipped",
    }
}
