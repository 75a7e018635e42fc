//! The states a broadcast and its recipients are stored in.
use ism_platform::stored_enum;

stored_enum! {
    /// Where a broadcast is in its life (see the API's `BroadcastState`).
    pub enum State {
        Draft = "draft",
        Scheduled = "scheduled",
        Running = "running",
        Paused = "paused",
        Completed = "completed",
        Cancelled = "cancelled",
        Failed = "failed",
    }
}

impl State {
    /// Whether pause, resume or cancel still apply.
    pub fn active(self) -> bool {
        matches!(self, State::Scheduled | State::Running | State::Paused)
    }

    /// Whether the definition may still change.
    pub fn editable(self) -> bool {
        matches!(self, State::Draft | State::Scheduled)
    }

    /// Whether it ended, for good.
    pub fn ended(self) -> bool {
        matches!(self, State::Completed | State::Cancelled | State::Failed)
    }
}

stored_enum! {
    /// What a missed schedule does.
    pub enum Missed {
        SendLate = "send_late",
        Skip = "skip",
    }
}

stored_enum! {
    /// What became of one recipient (see the API's `RecipientStatus`).
    pub enum RecipientStatus {
        Pending = "pending",
        Queued = "queued",
        Sent = "sent",
        Delivered = "delivered",
        Read = "read",
        Failed = "failed",
        Skipped = "skipped",
    }
}

impl RecipientStatus {
    /// The statuses a recipient may move to `self` from by a status report: never back
    /// (a late `sent` after `read`), and nothing leaves `failed` or `skipped`.
    pub fn follows(self) -> &'static [RecipientStatus] {
        use RecipientStatus::*;
        match self {
            Sent => &[Pending, Queued],
            Delivered => &[Pending, Queued, Sent],
            Read => &[Pending, Queued, Sent, Delivered],
            Failed | Skipped => &[Pending, Queued, Sent],
            Pending | Queued => &[],
        }
    }
}
