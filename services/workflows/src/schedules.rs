//! Scheduled workflows: a cron expression in the Workspace's time zone fires the workflow
//! for every Contact of a Segment. A firing goes through the Segment a page at a time, each
//! page's runs committed with the Contact id reached, so a restart goes on where it
//! stopped and starts no run twice; replicas take turns by row lock.
use std::sync::Arc;

use chrono::{DateTime, Utc};
use croner::Cron;
use ism_platform::error::{FieldError, Violations};
use ism_proto::contacts::v1 as ct;
use ism_proto::workflows::v1 as pb;
use sqlx::{PgConnection, PgPool};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::engine::Peers;
use crate::error::Error;
use crate::store::{self, Due};
use crate::triggers::{self, Subject};

/// Contacts taken per page of a firing.
const PAGE: i32 = 200;

/// The cron expression, five fields or six with seconds first.
pub fn parse(cron: &str) -> Result<Cron, String> {
    Cron::new(cron)
        .with_seconds_optional()
        .parse()
        .map_err(|e| format!("is not a cron expression: {e}"))
}

/// Checks a schedule as saved: its cron fires at most every `min_seconds`, its Segment is
/// an id; each fault under `trigger.schedule.`.
pub fn check(schedule: &pb::Schedule, min_seconds: u64) -> Violations {
    let mut v = Violations::new();
    let cron = |reason: String| FieldError::new("trigger.schedule.cron", reason);
    match parse(&schedule.cron) {
        Err(e) => v.push(cron(e)),
        Ok(parsed) => {
            let mut next = parsed.iter_after(Utc::now());
            match (next.next(), next.next()) {
                (Some(a), Some(b)) if (b - a).num_seconds() < min_seconds as i64 => v.push(cron(
                    format!("fires more often than every {min_seconds} seconds"),
                )),
                (Some(_), Some(_)) => {}
                _ => v.push(cron("never fires".to_owned())),
            }
        }
    }
    if Uuid::parse_str(&schedule.segment_id).is_err() {
        v.push(FieldError::new(
            "trigger.schedule.segment_id",
            "must be a Segment's id",
        ));
    }
    v
}

/// The Workspace's time zone (UTC when it names none).
async fn zone(peers: &Peers, workspace_id: Uuid) -> Result<chrono_tz::Tz, Error> {
    let workspace = peers.workspace(workspace_id).await?;
    Ok(workspace.timezone.parse().unwrap_or(chrono_tz::UTC))
}

/// When `cron` fires next after `after`, in `zone`.
fn next(cron: &str, zone: chrono_tz::Tz, after: DateTime<Utc>) -> Result<DateTime<Utc>, Error> {
    let cron = parse(cron).map_err(|e| Error::Unexpected(anyhow::anyhow!("stored cron {e}")))?;
    cron.find_next_occurrence(&after.with_timezone(&zone), false)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| Error::Unexpected(anyhow::anyhow!("cron {e}")))
}

/// Arms (or re-arms) `workflow_id`'s schedule at its next firing as `definition` has it, or
/// removes it when `definition` has another trigger.
pub async fn arm(
    conn: &mut PgConnection,
    peers: &Peers,
    workspace_id: Uuid,
    workflow_id: Uuid,
    definition: &pb::WorkflowDefinition,
) -> Result<(), Error> {
    match definition.trigger.as_ref().and_then(|t| t.kind.as_ref()) {
        Some(pb::trigger::Kind::Schedule(schedule)) => {
            let zone = zone(peers, workspace_id).await?;
            let due = next(&schedule.cron, zone, Utc::now())?;
            store::arm_schedule(conn, workspace_id, workflow_id, due).await?;
        }
        _ => store::disarm_schedule(conn, workflow_id).await?,
    }
    Ok(())
}

pub struct Scheduler {
    pub pool: PgPool,
    pub peers: Peers,
    pub wake: Arc<Notify>,
}

impl Scheduler {
    /// Takes every page of every schedule due now.
    pub async fn fire_due(&self) -> Result<(), Error> {
        while self.fire_page().await? {}
        Ok(())
    }

    /// Takes one page of one due schedule; false when none is due.
    async fn fire_page(&self) -> Result<bool, Error> {
        let mut tx = self.pool.begin().await?;
        let Some(due) = store::due_schedule(&mut tx).await? else {
            return Ok(false);
        };
        let workflow = store::workflow(&mut tx, due.workspace_id, due.workflow_id).await?;
        let startable = match workflow {
            Some(w) => w.startable()?,
            None => None,
        };
        let schedule = startable.as_ref().and_then(|(_, d)| {
            match d.trigger.as_ref().and_then(|t| t.kind.as_ref()) {
                Some(pb::trigger::Kind::Schedule(s)) => Some(s.clone()),
                _ => None,
            }
        });
        // Disabled since it was armed: enabling it arms it again.
        let (Some((published, definition)), Some(schedule)) = (startable, schedule) else {
            store::disarm_schedule(&mut tx, due.workflow_id).await?;
            tx.commit().await?;
            return Ok(true);
        };
        let contacts = match self.page(&due, &schedule.segment_id).await {
            Ok(contacts) => contacts,
            Err(Error::NotFound(_)) => {
                tracing::warn!(workflow = %due.workflow_id, "the schedule's Segment is gone; this firing is skipped");
                Vec::new()
            }
            Err(e) => return Err(e),
        };
        let mut started = 0;
        for contact in &contacts {
            let contact_id = Uuid::parse_str(&contact.id)
                .map_err(|_| Error::Unexpected(anyhow::anyhow!("contact id {:?}", contact.id)))?;
            let Some((conversation_id, channel_id)) = triggers::latest_conversation(
                &self.peers.conversations,
                due.workspace_id,
                contact_id,
            )
            .await?
            else {
                continue;
            };
            let subject = Subject {
                workspace_id: due.workspace_id,
                contact_id,
                conversation_id,
                channel_id,
                text: String::new(),
                variables: Default::default(),
            };
            if triggers::start(&mut tx, &self.peers, &published, &definition, &subject)
                .await?
                .is_some()
            {
                started += 1;
            }
        }
        match contacts.last() {
            Some(last) if contacts.len() == PAGE as usize => {
                store::schedule_reached(&mut tx, due.workflow_id, &last.id).await?;
            }
            _ => {
                let zone = zone(&self.peers, due.workspace_id).await?;
                let again = next(&schedule.cron, zone, Utc::now().max(due.due_at))?;
                store::arm_schedule(&mut tx, due.workspace_id, due.workflow_id, again).await?;
            }
        }
        tx.commit().await?;
        if started > 0 {
            self.wake.notify_one();
        }
        Ok(true)
    }

    /// The Segment's next page of Contacts after the one the firing reached.
    async fn page(&self, due: &Due, segment_id: &str) -> Result<Vec<ct::Contact>, Error> {
        let request = ct::StreamContactsRequest {
            audience: Some(ct::stream_contacts_request::Audience::SegmentId(
                segment_id.to_owned(),
            )),
            batch_size: PAGE,
            after_id: due.after_id.clone(),
        };
        let mut stream = self
            .peers
            .contacts
            .call(
                due.workspace_id,
                "segment",
                request,
                |mut c, r| async move { c.stream_contacts(r).await },
            )
            .await?;
        let first = stream
            .message()
            .await
            .map_err(|status| self.peers.contacts.refused("segment", &status))?;
        Ok(first.map(|batch| batch.contacts).unwrap_or_default())
    }
}
