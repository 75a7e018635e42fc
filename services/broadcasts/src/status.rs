//! What became of each recipient: the gateway's `gateway.message.status` reports about
//! the messages this service asked for, applied in the inbox's transaction.
//!
//! A failure is sorted by its kind: one recipient's (unreachable, outside the window,
//! retries given up) fails that recipient only; a per-recipient cap skips it with the
//! reason; a refused Channel or content stops the broadcast (paused with the reason), as
//! does an error rate over the breaker's threshold. The gateway already retried what was
//! worth retrying soon (rate limits, 5xx, timeouts) before it reported a failure.
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use ism_platform::events::{Batch, EventContext, EventHandler, HandlerError, topics};
use ism_proto::events::v1::{Event, MessageStatusChanged};
use ism_proto::types::v1::{DeliveryFailure, DeliveryStatus};
use sqlx::PgConnection;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::config::BroadcastsSettings;
use crate::lifecycle;
use crate::runner::SERVICE;
use crate::states::RecipientStatus;
use crate::store;

/// Applies status reports to recipients, completes a broadcast whose last recipient
/// got its outcome, stops one that cannot go on, and wakes the runner: the window has
/// room again.
pub struct StatusReports {
    pub wake: Arc<Notify>,
    pub breaker: Breaker,
}

/// The last outcomes of each running broadcast seen by this replica: failed or not.
pub struct Breaker {
    outcomes: Mutex<HashMap<Uuid, VecDeque<bool>>>,
    /// Outcomes looked at.
    window: usize,
    /// Fewest outcomes before the breaker may trip.
    min_outcomes: usize,
    /// The share of failures that trips it.
    ratio: f64,
}

impl Breaker {
    pub fn new(settings: &BroadcastsSettings) -> Self {
        Self {
            outcomes: Mutex::default(),
            window: settings.breaker_window,
            min_outcomes: settings.breaker_min_outcomes,
            ratio: settings.breaker_failure_ratio,
        }
    }

    /// Records one outcome of `broadcast_id`; why it must stop, when too many failed.
    fn record(&self, broadcast_id: Uuid, failed: bool) -> Option<String> {
        let mut all = self.outcomes.lock().ok()?;
        let last = all.entry(broadcast_id).or_default();
        last.push_back(failed);
        if last.len() > self.window {
            last.pop_front();
        }
        let failures = last.iter().filter(|f| **f).count();
        let tripped =
            last.len() >= self.min_outcomes && failures as f64 > self.ratio * last.len() as f64;
        if !tripped {
            return None;
        }
        let seen = last.len();
        all.remove(&broadcast_id);
        Some(format!(
            "stopped by the error-rate breaker: {failures} of the last {seen} messages failed"
        ))
    }
}

/// A status report about one of this service's recipients, decoded.
struct Report {
    id: Uuid,
    workspace_id: Uuid,
    status: RecipientStatus,
    failure: DeliveryFailure,
    reason: String,
    external_message_id: String,
}

impl Report {
    /// The report in `event`; `None` for another service's message or a status that
    /// changes nothing here.
    fn of(event: &Event) -> Result<Option<Self>, HandlerError> {
        let report: MessageStatusChanged = topics::MESSAGE_STATUS
            .decode(event)
            .map_err(HandlerError::Permanent)?;
        if report.requested_by != SERVICE {
            return Ok(None);
        }
        let uuid = |value: &str, field: &str| {
            value.parse::<Uuid>().map_err(|_| {
                HandlerError::Permanent(format!("status report: {field} is not a UUID"))
            })
        };
        let failure = DeliveryFailure::try_from(report.failure).unwrap_or_default();
        let status = match DeliveryStatus::try_from(report.status) {
            Ok(DeliveryStatus::Sent) => RecipientStatus::Sent,
            Ok(DeliveryStatus::Delivered) => RecipientStatus::Delivered,
            Ok(DeliveryStatus::Read) => RecipientStatus::Read,
            Ok(DeliveryStatus::Failed) if failure == DeliveryFailure::Capped => {
                RecipientStatus::Skipped
            }
            Ok(DeliveryStatus::Failed) => RecipientStatus::Failed,
            _ => return Ok(None),
        };
        Ok(Some(Self {
            id: uuid(&report.message_id, "message_id")?,
            workspace_id: uuid(&event.workspace_id, "workspace_id")?,
            status,
            failure,
            reason: report.reason,
            external_message_id: report.external_message_id,
        }))
    }
}

/// Status reports applied per transaction when the queue has a backlog.
const BATCH: usize = 64;

impl StatusReports {
    /// Applies `reports` in `tx`: the recipients' statuses in one statement, then what
    /// they mean for each broadcast once (stopped, or completed by its last outcome).
    async fn apply(&self, tx: &mut PgConnection, reports: &[Report]) -> Result<(), HandlerError> {
        let changes: Vec<store::StatusChange<'_>> = reports
            .iter()
            .map(|r| store::StatusChange {
                id: r.id,
                status: r.status,
                reason: &r.reason,
                external_message_id: &r.external_message_id,
            })
            .collect();
        let changed: HashMap<Uuid, Uuid> = store::record_statuses(tx, &changes)
            .await?
            .into_iter()
            .collect();
        let mut stops: Vec<(Uuid, Uuid, String)> = Vec::new();
        let mut touched: Vec<Uuid> = Vec::new();
        for report in reports {
            let Some(&broadcast_id) = changed.get(&report.id) else {
                continue;
            };
            touched.push(broadcast_id);
            let stop = match report.failure {
                DeliveryFailure::Channel | DeliveryFailure::Content => {
                    Some(format!("stopped: {}", report.reason))
                }
                _ if matches!(
                    report.status,
                    RecipientStatus::Sent | RecipientStatus::Failed
                ) =>
                {
                    self.breaker
                        .record(broadcast_id, report.status == RecipientStatus::Failed)
                }
                _ => None,
            };
            if let Some(reason) = stop {
                stops.push((report.workspace_id, broadcast_id, reason));
            }
        }
        for (workspace_id, broadcast_id, reason) in stops {
            lifecycle::stop_running(tx, workspace_id, broadcast_id, &reason)
                .await
                .map_err(HandlerError::from)?;
        }
        touched.sort_unstable();
        touched.dedup();
        for broadcast_id in touched {
            if let Some(done) = store::complete_if_done(tx, broadcast_id).await? {
                lifecycle::announce(tx, &done)
                    .await
                    .map_err(HandlerError::from)?;
            }
        }
        Ok(())
    }
}

impl EventHandler for StatusReports {
    async fn handle(&self, event: Event, ctx: EventContext) -> Result<(), HandlerError> {
        let Some(report) = Report::of(&event)? else {
            return Ok(());
        };
        let Some(mut tx) = ctx.begin().await? else {
            return Ok(());
        };
        self.apply(&mut tx, std::slice::from_ref(&report)).await?;
        tx.commit().await?;
        self.wake.notify_one();
        Ok(())
    }

    fn batch_size(&self) -> usize {
        BATCH
    }

    async fn handle_batch(&self, batch: Batch) -> Result<(), HandlerError> {
        // Other services' reports change nothing here and leave no inbox row.
        let mut ours = false;
        for event in batch.events() {
            ours |= Report::of(event)?.is_some();
        }
        if !ours {
            return Ok(());
        }
        let (mut tx, fresh) = batch.begin().await?;
        let mut reports = Vec::with_capacity(fresh.len());
        for event in &fresh {
            reports.extend(Report::of(event)?);
        }
        self.apply(&mut tx, &reports).await?;
        tx.commit().await?;
        self.wake.notify_one();
        Ok(())
    }
}
