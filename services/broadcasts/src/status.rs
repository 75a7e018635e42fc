//! What became of each recipient: the gateway's `gateway.message.status` reports about
//! the messages this service asked for, applied in the inbox's transaction.
use std::sync::Arc;

use ism_platform::events::{EventContext, EventHandler, HandlerError, topics};
use ism_proto::events::v1::{Event, MessageStatusChanged};
use ism_proto::types::v1::DeliveryStatus;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::lifecycle;
use crate::runner::SERVICE;
use crate::states::RecipientStatus;
use crate::store;

/// Applies status reports to recipients, completes a broadcast whose last recipient
/// got its outcome, and wakes the runner: the window has room again.
pub struct StatusReports {
    pub wake: Arc<Notify>,
}

impl EventHandler for StatusReports {
    async fn handle(&self, event: Event, ctx: EventContext) -> Result<(), HandlerError> {
        let report: MessageStatusChanged = topics::MESSAGE_STATUS
            .decode(&event)
            .map_err(HandlerError::Permanent)?;
        if report.requested_by != SERVICE {
            return Ok(());
        }
        let id: Uuid = report.message_id.parse().map_err(|_| {
            HandlerError::Permanent("status report: message_id is not a UUID".to_owned())
        })?;
        let status = match DeliveryStatus::try_from(report.status) {
            Ok(DeliveryStatus::Sent) => RecipientStatus::Sent,
            Ok(DeliveryStatus::Delivered) => RecipientStatus::Delivered,
            Ok(DeliveryStatus::Read) => RecipientStatus::Read,
            Ok(DeliveryStatus::Failed) => RecipientStatus::Failed,
            _ => return Ok(()),
        };
        let Some(mut tx) = ctx.begin().await? else {
            return Ok(());
        };
        let changed = store::record_status(
            &mut tx,
            id,
            status,
            &report.reason,
            &report.external_message_id,
        )
        .await?;
        if let Some(broadcast_id) = changed
            && let Some(done) = store::complete_if_done(&mut tx, broadcast_id).await?
        {
            lifecycle::announce(&mut tx, &done)
                .await
                .map_err(HandlerError::from)?;
        }
        tx.commit().await?;
        self.wake.notify_one();
        Ok(())
    }
}
