//! Defining a broadcast and moving it through its life: each change in one transaction
//! holding the broadcast's row lock, with its event.
use std::sync::Arc;

use chrono::{DateTime, TimeDelta, Utc};
use ism_platform::error::FieldError;
use ism_platform::events::{self, topics};
use ism_proto::broadcasts::v1 as pb;
use ism_proto::events::v1::BroadcastStateChanged;
use prost::Message;
use sqlx::{PgConnection, PgPool};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::definition;
use crate::directory::Directory;
use crate::error::Error;
use crate::states::{Missed, State};
use crate::store::{self, Broadcast, Transition};
use crate::wire;

/// Why a User's pause or cancel stopped a broadcast, as recipients and events say it.
pub const PAUSED_BY_USER: &str = "paused by a user";
pub const CANCELLED: &str = "cancelled";
/// Furthest ahead a broadcast may be scheduled.
const MAX_SCHEDULE_AHEAD: TimeDelta = TimeDelta::days(366);

/// Applies `change` to the locked broadcast `id` and emits its event.
pub async fn change(
    conn: &mut PgConnection,
    broadcast: &Broadcast,
    change: Transition<'_>,
) -> Result<Broadcast, Error> {
    let changed = store::transition(conn, broadcast.id, &change).await?;
    announce(conn, &changed).await?;
    Ok(changed)
}

/// Emits the event of `changed`'s new state.
pub async fn announce(conn: &mut PgConnection, changed: &Broadcast) -> Result<(), Error> {
    let payload = BroadcastStateChanged {
        broadcast_id: changed.id.to_string(),
        state: wire::state(changed.state) as i32,
        reason: changed.state_reason.clone(),
    };
    events::emit(
        conn,
        &topics::BROADCAST_STATE_CHANGED,
        changed.workspace_id,
        &changed.id.to_string(),
        &payload,
    )
    .await?;
    Ok(())
}

/// Pauses the broadcast `id` with `reason` if it is running: the platform stopping it
/// (a refused channel, an error rate, an unreadable audience); a User resumes it.
pub async fn stop_running(
    conn: &mut PgConnection,
    workspace_id: Uuid,
    id: Uuid,
    reason: &str,
) -> Result<(), Error> {
    let Some(current) = store::lock(conn, workspace_id, id).await? else {
        return Ok(());
    };
    if current.state == State::Running {
        let pause = Transition {
            to: State::Paused,
            reason,
            schedule: None,
        };
        change(conn, &current, pause).await?;
    }
    Ok(())
}

/// The broadcast use cases of the API.
#[derive(Clone)]
pub struct Broadcasts {
    pub pool: PgPool,
    pub directory: Directory,
    /// Wakes the runner when a broadcast starts.
    pub wake: Arc<Notify>,
}

fn refused(state: State, what: &str) -> Error {
    Error::precondition("state", format!("a {state} broadcast cannot be {what}"))
}

impl Broadcasts {
    async fn locked(
        conn: &mut PgConnection,
        workspace_id: Uuid,
        id: Uuid,
    ) -> Result<Broadcast, Error> {
        store::lock(conn, workspace_id, id)
            .await?
            .ok_or(Error::NotFound("broadcast"))
    }

    /// A failed precondition on `definition.audience` when it holds no Contact.
    async fn require_recipients(&self, broadcast: &Broadcast) -> Result<(), Error> {
        let audience = pb::Audience::decode(broadcast.audience.as_slice())
            .map_err(|e| Error::Unexpected(e.into()))?;
        let count = definition::audience_size(
            &self.directory,
            &self.pool,
            broadcast.workspace_id,
            &audience,
            "definition.audience",
        )
        .await?;
        match count {
            Ok(0) => Err(Error::precondition(
                "definition.audience",
                "matches no Contact: nothing would be sent",
            )),
            Ok(_) => Ok(()),
            Err(violations) => Err(Error::Precondition(
                violations.iter().next().cloned().unwrap_or_else(|| {
                    FieldError::new("definition.audience", "is no longer valid")
                }),
            )),
        }
    }

    pub async fn create(
        &self,
        workspace_id: Uuid,
        definition: Option<pb::BroadcastDefinition>,
    ) -> Result<Broadcast, Error> {
        let definition =
            definition::check(&self.directory, &self.pool, workspace_id, definition).await?;
        let mut tx = self.pool.begin().await?;
        let broadcast = store::insert(&mut tx, workspace_id, &definition).await?;
        tx.commit().await?;
        Ok(broadcast)
    }

    pub async fn update(
        &self,
        workspace_id: Uuid,
        id: Uuid,
        definition: Option<pb::BroadcastDefinition>,
    ) -> Result<Broadcast, Error> {
        // Another Workspace's broadcast is not found, whatever the definition.
        self.read(workspace_id, id).await?;
        let definition =
            definition::check(&self.directory, &self.pool, workspace_id, definition).await?;
        let mut tx = self.pool.begin().await?;
        let current = Self::locked(&mut tx, workspace_id, id).await?;
        if !current.state.editable() {
            return Err(refused(current.state, "edited"));
        }
        let broadcast = store::update_definition(&mut tx, id, &definition).await?;
        tx.commit().await?;
        Ok(broadcast)
    }

    pub async fn delete(&self, workspace_id: Uuid, id: Uuid) -> Result<(), Error> {
        let mut tx = self.pool.begin().await?;
        let current = Self::locked(&mut tx, workspace_id, id).await?;
        if current.state.active() {
            return Err(refused(current.state, "deleted; cancel it first"));
        }
        store::delete(&mut tx, id).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn schedule(
        &self,
        workspace_id: Uuid,
        id: Uuid,
        send_at: DateTime<Utc>,
        missed: Missed,
    ) -> Result<Broadcast, Error> {
        let now = Utc::now();
        if send_at <= now {
            return Err(Error::invalid("send_at", "must be in the future"));
        }
        if send_at > now + MAX_SCHEDULE_AHEAD {
            return Err(Error::invalid("send_at", "must be within a year"));
        }
        let current = self.read(workspace_id, id).await?;
        if !current.state.editable() {
            return Err(refused(current.state, "scheduled"));
        }
        self.require_recipients(&current).await?;
        let mut tx = self.pool.begin().await?;
        let current = Self::locked(&mut tx, workspace_id, id).await?;
        if !current.state.editable() {
            return Err(refused(current.state, "scheduled"));
        }
        let schedule = Some((send_at, missed));
        let broadcast = change(
            &mut tx,
            &current,
            Transition {
                to: State::Scheduled,
                reason: "",
                schedule,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(broadcast)
    }

    pub async fn start(&self, workspace_id: Uuid, id: Uuid) -> Result<Broadcast, Error> {
        let current = self.read(workspace_id, id).await?;
        if !current.state.editable() {
            return Err(refused(current.state, "started"));
        }
        self.require_recipients(&current).await?;
        let mut tx = self.pool.begin().await?;
        let current = Self::locked(&mut tx, workspace_id, id).await?;
        if !current.state.editable() {
            return Err(refused(current.state, "started"));
        }
        let broadcast = change(&mut tx, &current, running()).await?;
        tx.commit().await?;
        self.wake.notify_one();
        Ok(broadcast)
    }

    pub async fn pause(&self, workspace_id: Uuid, id: Uuid) -> Result<Broadcast, Error> {
        let mut tx = self.pool.begin().await?;
        let current = Self::locked(&mut tx, workspace_id, id).await?;
        if !matches!(current.state, State::Scheduled | State::Running) {
            return Err(refused(current.state, "paused"));
        }
        let paused = Transition {
            to: State::Paused,
            reason: PAUSED_BY_USER,
            schedule: None,
        };
        let broadcast = change(&mut tx, &current, paused).await?;
        tx.commit().await?;
        Ok(broadcast)
    }

    /// Running again where it stopped; scheduled again if it never started and its time
    /// is still ahead.
    pub async fn resume(&self, workspace_id: Uuid, id: Uuid) -> Result<Broadcast, Error> {
        let mut tx = self.pool.begin().await?;
        let current = Self::locked(&mut tx, workspace_id, id).await?;
        if current.state != State::Paused {
            return Err(refused(current.state, "resumed"));
        }
        let waits =
            current.started_at.is_none() && current.send_at.is_some_and(|at| at > Utc::now());
        let next = if waits {
            Transition {
                to: State::Scheduled,
                reason: "",
                schedule: None,
            }
        } else {
            running()
        };
        let broadcast = change(&mut tx, &current, next).await?;
        tx.commit().await?;
        self.wake.notify_one();
        Ok(broadcast)
    }

    /// Cancelled for good: recipients not handed over yet are skipped.
    pub async fn cancel(&self, workspace_id: Uuid, id: Uuid) -> Result<Broadcast, Error> {
        let mut tx = self.pool.begin().await?;
        let current = Self::locked(&mut tx, workspace_id, id).await?;
        if !current.state.active() {
            return Err(refused(current.state, "cancelled"));
        }
        store::skip_pending(&mut tx, id, CANCELLED).await?;
        let cancelled = Transition {
            to: State::Cancelled,
            reason: "",
            schedule: None,
        };
        let broadcast = change(&mut tx, &current, cancelled).await?;
        tx.commit().await?;
        Ok(broadcast)
    }

    /// A new draft with `source`'s channel, content and labels, to its failed recipients.
    pub async fn resend_to_failed(
        &self,
        workspace_id: Uuid,
        source_id: Uuid,
        name: &str,
    ) -> Result<Broadcast, Error> {
        let source = self.read(workspace_id, source_id).await?;
        let name = if name.trim().is_empty() {
            format!("{} (resend)", source.name)
        } else {
            name.trim().to_owned()
        };
        if name.chars().count() > 200 {
            return Err(Error::invalid("name", "must have at most 200 characters"));
        }
        if store::failed_count(&self.pool, workspace_id, source_id).await? == Some(0) {
            return Err(Error::precondition(
                "broadcast_id",
                "no recipient of this broadcast failed",
            ));
        }
        let audience = pb::Audience {
            source: Some(pb::audience::Source::FailedRecipientsOf(
                source_id.to_string(),
            )),
            exclude: None,
        };
        let definition = store::Definition {
            name,
            channel_id: source.channel_id,
            audience: audience.encode_to_vec(),
            content: source.content,
            labels: source.labels,
        };
        let mut tx = self.pool.begin().await?;
        let broadcast = store::insert(&mut tx, workspace_id, &definition).await?;
        tx.commit().await?;
        Ok(broadcast)
    }

    /// The Workspace's broadcast `id`.
    pub async fn read(&self, workspace_id: Uuid, id: Uuid) -> Result<Broadcast, Error> {
        let mut conn = ism_platform::db::acquire(&self.pool).await?;
        store::get(&mut conn, workspace_id, id)
            .await?
            .ok_or(Error::NotFound("broadcast"))
    }
}

/// The change to running.
pub fn running() -> Transition<'static> {
    Transition {
        to: State::Running,
        reason: "",
        schedule: None,
    }
}
