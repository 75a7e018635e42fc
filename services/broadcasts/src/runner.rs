//! Running broadcasts: due schedules start, audiences freeze into recipients, and
//! recipients are handed to the gateway a window at a time.
//!
//! A hand-off is one transaction: the broadcast's row locked shared (so a pause or cancel
//! waits for it and no batch follows one), pending recipients moved to queued, and one
//! `broadcasts.delivery.requested` event per recipient in the outbox, its message id the
//! recipient's. A crash before the commit hands nothing over, one after it hands each
//! recipient over once, and the gateway delivers each message id at most once.
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use ism_platform::error::Error as PlatformError;
use ism_platform::events::{self, topics};
use ism_platform::personalize::{self, Variables};
use ism_proto::broadcasts::v1 as pb;
use ism_proto::contacts::v1::Contact;
use ism_proto::events::v1::DeliveryRequested;
use ism_proto::types::v1::MessageContent;
use prost::Message;
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::config::BroadcastsSettings;
use crate::directory::{Directory, FREEZE_BATCH};
use crate::error::Error;
use crate::lifecycle::{self, running};
use crate::states::{Missed, RecipientStatus, State};
use crate::store::{self, Broadcast, NewRecipient, Transition};

/// This service's name, as delivery requests and status reports carry it.
pub const SERVICE: &str = "broadcasts";
/// Running broadcasts looked at per round.
const RUNNING_PER_ROUND: i64 = 100;
/// Due schedules started per round.
const DUE_PER_ROUND: i64 = 20;
/// Recipients handed over per transaction.
const HANDOFF_BATCH: i64 = 500;
/// How late a schedule may start under the skip policy before it counts as missed.
const MISSED_AFTER: TimeDelta = TimeDelta::minutes(5);

/// Why a recipient is skipped when the audience freezes.
pub const BLOCKED: &str = "blocked";
pub const OPTED_OUT: &str = "opted out";
pub const NO_IDENTITY: &str = "no identity on the channel";
/// Why a failed recipient is not reached again by a resend.
const GONE: &str = "opted out, blocked or deleted since";
const REWRITTEN: &str =
    "the personalised message was edited since the first broadcast; create a new broadcast";

/// Runs broadcasts; one per replica, sharing the work through row locks and leases.
pub struct Runner {
    pub pool: PgPool,
    pub directory: Directory,
    pub settings: BroadcastsSettings,
    pub wake: Arc<Notify>,
    /// This process' identity in freeze leases.
    pub owner: Uuid,
    /// Broadcasts this process is freezing the audience of.
    freezing: Mutex<HashSet<Uuid>>,
    /// Recipients each broadcast may have queued at the gateway at once, from its
    /// Channel's rate.
    windows: Mutex<HashMap<Uuid, i64>>,
}

impl Runner {
    pub fn new(
        pool: PgPool,
        directory: Directory,
        settings: BroadcastsSettings,
        wake: Arc<Notify>,
    ) -> Self {
        Self {
            pool,
            directory,
            settings,
            wake,
            owner: Uuid::now_v7(),
            freezing: Mutex::default(),
            windows: Mutex::default(),
        }
    }

    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) -> anyhow::Result<()> {
        let poll = Duration::from_millis(self.settings.poll_ms);
        while !shutdown.is_cancelled() {
            let busy = match self.round(&shutdown).await {
                Ok(busy) => busy,
                Err(e) => {
                    tracing::warn!(error = %e, "a broadcast round failed; retrying");
                    false
                }
            };
            if !busy {
                tokio::select! {
                    _ = shutdown.cancelled() => {}
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(poll) => {}
                }
            }
        }
        Ok(())
    }

    /// One pass over due and running broadcasts; whether more work is ready at once.
    async fn round(self: &Arc<Self>, shutdown: &CancellationToken) -> Result<bool, Error> {
        self.start_due().await?;
        let mut busy = false;
        for broadcast in store::running(&self.pool, RUNNING_PER_ROUND).await? {
            if !broadcast.audience_frozen {
                self.freeze_in_background(&broadcast, shutdown).await?;
            }
            busy |= self.hand_off(&broadcast).await? == HANDOFF_BATCH as usize;
            let mut tx = self.pool.begin().await?;
            if let Some(done) = store::complete_if_done(&mut tx, broadcast.id).await? {
                lifecycle::announce(&mut tx, &done).await?;
                self.forget(broadcast.id);
            }
            tx.commit().await?;
        }
        Ok(busy)
    }

    fn forget(&self, id: Uuid) {
        if let Ok(mut windows) = self.windows.lock() {
            windows.remove(&id);
        }
    }

    /// Starts the scheduled broadcasts whose time came, each once: the row lock keeps
    /// other replicas off it until the transition commits.
    async fn start_due(&self) -> Result<(), Error> {
        let now = Utc::now();
        let mut tx = self.pool.begin().await?;
        let due = store::lock_due(&mut tx, now, DUE_PER_ROUND).await?;
        let started = !due.is_empty();
        for broadcast in due {
            let missed = broadcast.missed_schedule == Missed::Skip
                && broadcast.send_at.is_some_and(|at| now - at > MISSED_AFTER);
            let next = if missed {
                Transition {
                    to: State::Failed,
                    reason: "schedule missed: the platform was down at its time and the broadcast skips a missed schedule",
                    schedule: None,
                }
            } else {
                running()
            };
            lifecycle::change(&mut tx, &broadcast, next).await?;
        }
        tx.commit().await?;
        if started {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// How many recipients of `broadcast` may wait at the gateway at once: two seconds
    /// of its Channel's rate, so a pause stops the sending within about that.
    async fn window(&self, broadcast: &Broadcast) -> Result<i64, Error> {
        if let Some(window) = self
            .windows
            .lock()
            .ok()
            .and_then(|w| w.get(&broadcast.id).copied())
        {
            return Ok(window);
        }
        let rate = self
            .directory
            .channel(broadcast.workspace_id, broadcast.channel_id)
            .await?
            .map_or(0, |c| c.rate_limit_per_second);
        let rate = if rate == 0 {
            self.settings.default_rate_per_second
        } else {
            rate
        };
        let window =
            (i64::from(rate) * 2).clamp(self.settings.min_window, self.settings.max_window);
        if let Ok(mut windows) = self.windows.lock() {
            windows.insert(broadcast.id, window);
        }
        Ok(window)
    }

    /// Hands the next pending recipients of `broadcast` to the gateway, as many as its
    /// window has room for; how many it handed over.
    async fn hand_off(&self, broadcast: &Broadcast) -> Result<usize, Error> {
        let window = self.window(broadcast).await?;
        let mut tx = self.pool.begin().await?;
        let Some(current) = store::share(&mut tx, broadcast.id).await? else {
            return Ok(0);
        };
        if current.state != State::Running {
            return Ok(0);
        }
        let room = (window - store::queued(&mut tx, current.id).await?).min(HANDOFF_BATCH);
        if room <= 0 {
            return Ok(0);
        }
        let claimed = store::claim_pending(&mut tx, current.id, room).await?;
        let channel_id = current.channel_id.to_string();
        let shared = MessageContent::decode(current.content.as_slice())
            .map_err(|e| Error::Unexpected(e.into()))?;
        let mut requests = Vec::with_capacity(claimed.len());
        for recipient in &claimed {
            let content = match &recipient.content {
                Some(own) => MessageContent::decode(own.as_slice())
                    .map_err(|e| Error::Unexpected(e.into()))?,
                None => shared.clone(),
            };
            let request = DeliveryRequested {
                message_id: recipient.id.to_string(),
                channel_id: channel_id.clone(),
                recipient_external_id: recipient.external_id.clone(),
                content: Some(content),
                requested_by: SERVICE.to_owned(),
            };
            requests.push(topics::BROADCAST_DELIVERY_REQUESTED.event(
                current.workspace_id,
                &recipient.id.to_string(),
                &request,
            ));
        }
        events::enqueue_all(&mut tx, &requests).await?;
        tx.commit().await?;
        metrics::counter!("ism_broadcast_recipients_handed_over_total")
            .increment(claimed.len() as u64);
        Ok(claimed.len())
    }

    /// Freezes `broadcast`'s audience in a task of its own, unless this process already
    /// is or another holds the lease.
    async fn freeze_in_background(
        self: &Arc<Self>,
        broadcast: &Broadcast,
        shutdown: &CancellationToken,
    ) -> Result<(), Error> {
        if self
            .freezing
            .lock()
            .map(|f| f.contains(&broadcast.id))
            .unwrap_or(true)
        {
            return Ok(());
        }
        let mut conn = ism_platform::db::acquire(&self.pool).await?;
        if !store::take_lease(
            &mut conn,
            broadcast.id,
            self.owner,
            self.settings.lease_seconds,
        )
        .await?
        {
            return Ok(());
        }
        if let Ok(mut freezing) = self.freezing.lock() {
            freezing.insert(broadcast.id);
        }
        let (runner, broadcast, shutdown) = (self.clone(), broadcast.clone(), shutdown.clone());
        tokio::spawn(async move {
            let outcome = tokio::select! {
                outcome = runner.freeze(&broadcast) => outcome,
                _ = shutdown.cancelled() => Ok(()),
            };
            if let Err(e) = outcome {
                runner.freeze_failed(&broadcast, e).await;
            }
            if let Ok(mut freezing) = runner.freezing.lock() {
                freezing.remove(&broadcast.id);
            }
            runner.wake.notify_one();
        });
        Ok(())
    }

    /// Streams the audience after the last frozen Contact into recipients, a batch per
    /// transaction that also moves the resume point and renews the lease; stops when the
    /// lease is lost or the broadcast stops running.
    async fn freeze(&self, broadcast: &Broadcast) -> Result<(), Error> {
        let audience = pb::Audience::decode(broadcast.audience.as_slice())
            .map_err(|e| Error::Unexpected(e.into()))?;
        if let Some(pb::audience::Source::FailedRecipientsOf(source)) = &audience.source {
            let source = source.parse().map_err(|_| {
                Error::invalid("definition.audience.failed_recipients_of", "not a UUID")
            })?;
            return self.freeze_failed_of(broadcast, source).await;
        }
        let content = MessageContent::decode(broadcast.content.as_slice())
            .map_err(|e| Error::Unexpected(e.into()))?;
        let field_keys = if personalize::personalised(&content) {
            Some(self.directory.field_keys(broadcast.workspace_id).await?)
        } else {
            None
        };
        let mut after = broadcast.frozen_after;
        loop {
            let mut stream = self
                .directory
                .stream(broadcast.workspace_id, &audience, after)
                .await?;
            loop {
                let batch = match stream.message().await {
                    Ok(Some(batch)) => batch,
                    Ok(None) => {
                        let mut tx = self.pool.begin().await?;
                        if store::advance_freeze(
                            &mut tx,
                            broadcast.id,
                            self.owner,
                            after,
                            true,
                            0.0,
                        )
                        .await?
                        {
                            tx.commit().await?;
                        }
                        return Ok(());
                    }
                    // A long audience outlives one call's deadline, and contacts may
                    // restart: the stream opens again after the last frozen Contact.
                    Err(status)
                        if matches!(
                            status.code(),
                            tonic::Code::DeadlineExceeded
                                | tonic::Code::Unavailable
                                | tonic::Code::Cancelled
                        ) =>
                    {
                        break;
                    }
                    Err(status) => {
                        return Err(self.directory.contacts.refused("audience", &status));
                    }
                };
                let Some(last) = batch
                    .contacts
                    .last()
                    .and_then(|c| c.id.parse::<Uuid>().ok())
                else {
                    continue;
                };
                let excluded = match &audience.exclude {
                    Some(filter) => {
                        let ids: Vec<Uuid> = batch
                            .contacts
                            .iter()
                            .filter_map(|c| c.id.parse().ok())
                            .collect();
                        self.directory
                            .matching(broadcast.workspace_id, filter, &ids)
                            .await?
                    }
                    None => HashSet::new(),
                };
                let rows: Vec<NewRecipient> = batch
                    .contacts
                    .iter()
                    .filter_map(|contact| {
                        let id: Uuid = contact.id.parse().ok()?;
                        (!excluded.contains(&id)).then(|| {
                            recipient(
                                broadcast.channel_id,
                                contact,
                                &content,
                                field_keys.as_deref(),
                            )
                        })
                    })
                    .collect();
                let mut tx = self.pool.begin().await?;
                store::insert_recipients(&mut tx, broadcast.id, &rows).await?;
                if !store::advance_freeze(
                    &mut tx,
                    broadcast.id,
                    self.owner,
                    Some(last),
                    false,
                    self.settings.lease_seconds,
                )
                .await?
                {
                    // Paused, cancelled, or the lease went to another replica.
                    return Ok(());
                }
                tx.commit().await?;
                after = Some(last);
                self.wake.notify_one();
            }
        }
    }

    /// Freezes the failed recipients of the broadcast `source` after the last frozen
    /// Contact, as they are now: those blocked, opted out or deleted since are skipped.
    /// Each keeps the message it was rendered for, unless the message was edited since.
    async fn freeze_failed_of(&self, broadcast: &Broadcast, source: Uuid) -> Result<(), Error> {
        let original = store::get(
            &mut *ism_platform::db::acquire(&self.pool).await?,
            broadcast.workspace_id,
            source,
        )
        .await?
        .map(|b| b.content);
        let unchanged = original.as_deref() == Some(broadcast.content.as_slice());
        let personalised = personalize::personalised(
            &MessageContent::decode(broadcast.content.as_slice())
                .map_err(|e| Error::Unexpected(e.into()))?,
        );
        let mut after = broadcast.frozen_after;
        loop {
            let batch = i64::from(FREEZE_BATCH);
            let failed = store::failed_after(&self.pool, source, after, batch).await?;
            let done = failed.len() < FREEZE_BATCH as usize;
            let ids: Vec<Uuid> = failed.iter().map(|f| f.contact_id).collect();
            let reachable = self
                .directory
                .reachable(broadcast.workspace_id, &ids)
                .await?;
            let rows: Vec<NewRecipient> = failed
                .into_iter()
                .map(|f| {
                    let (status, reason, content) = if !reachable.contains(&f.contact_id) {
                        (RecipientStatus::Skipped, GONE.to_owned(), None)
                    } else if unchanged {
                        (RecipientStatus::Pending, String::new(), f.content)
                    } else if personalised {
                        (RecipientStatus::Skipped, REWRITTEN.to_owned(), None)
                    } else {
                        (RecipientStatus::Pending, String::new(), None)
                    };
                    NewRecipient {
                        contact_id: f.contact_id,
                        status,
                        reason,
                        external_id: f.external_id,
                        content,
                    }
                })
                .collect();
            let last = ids.last().copied().or(after);
            let mut tx = self.pool.begin().await?;
            store::insert_recipients(&mut tx, broadcast.id, &rows).await?;
            let lease = self.settings.lease_seconds;
            if !store::advance_freeze(&mut tx, broadcast.id, self.owner, last, done, lease).await? {
                return Ok(());
            }
            tx.commit().await?;
            after = last;
            self.wake.notify_one();
            if done {
                return Ok(());
            }
        }
    }

    /// A freeze that cannot go on: an outage is retried at the next round; a refusal
    /// (the Segment was deleted) pauses the broadcast with the reason.
    async fn freeze_failed(&self, broadcast: &Broadcast, error: Error) {
        if matches!(
            error,
            PlatformError::Unavailable(_) | PlatformError::Aborted(_)
        ) {
            tracing::warn!(broadcast_id = %broadcast.id, error = %error, "freezing the audience failed; retrying");
            return;
        }
        let reason = format!("the audience cannot be read: {error}");
        let paused = async {
            let mut tx = self.pool.begin().await?;
            lifecycle::stop_running(&mut tx, broadcast.workspace_id, broadcast.id, &reason).await?;
            tx.commit().await?;
            Ok::<_, Error>(())
        };
        if let Err(e) = paused.await {
            tracing::warn!(broadcast_id = %broadcast.id, error = %e, "pausing a broadcast whose audience cannot be read failed");
        }
    }
}

/// The recipient `contact` becomes: pending with its identity on `channel_id`, or skipped
/// with the reason it cannot be reached.
fn recipient(
    channel_id: Uuid,
    contact: &Contact,
    content: &MessageContent,
    field_keys: Option<&[String]>,
) -> NewRecipient {
    let contact_id = contact.id.parse().unwrap_or_default();
    let channel = channel_id.to_string();
    let identity = contact.identities.iter().find(|i| i.channel_id == channel);
    let skipped = |reason: &str| NewRecipient {
        contact_id,
        status: RecipientStatus::Skipped,
        reason: reason.to_owned(),
        external_id: identity.map(|i| i.external_id.clone()).unwrap_or_default(),
        content: None,
    };
    if contact.blocked {
        return skipped(BLOCKED);
    }
    if contact.broadcast_opt_out {
        return skipped(OPTED_OUT);
    }
    let Some(identity) = identity else {
        return skipped(NO_IDENTITY);
    };
    let content = match field_keys {
        Some(keys) => {
            match personalize::render_content(content, &Variables::of_contact(contact, keys)) {
                Ok(own) => Some(own.encode_to_vec()),
                Err(e) => return skipped(&format!("the message cannot be personalised: {e}")),
            }
        }
        None => None,
    };
    NewRecipient {
        contact_id,
        status: RecipientStatus::Pending,
        reason: String::new(),
        external_id: identity.external_id.clone(),
        content,
    }
}
