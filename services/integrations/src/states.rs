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
