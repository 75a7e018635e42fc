//! Conditions on a Contact, their conversation and the Workspace's clock, as branch steps
//! and triggers test them. What a condition needs (the Contact, the Workspace's clock) is
//! read once per test of several conditions, and only when one needs it.
use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDateTime, Utc};
use ism_platform::personalize;
use ism_proto::contacts::v1 as ct;
use ism_proto::workflows::v1 as pb;
use ism_proto::workspaces::v1 as ws;
use uuid::Uuid;

use crate::calendar;
use crate::engine::Peers;
use crate::error::Error;

/// The Workspace's clock: its time zone, now there, and its business hours.
pub struct Local {
    zone: chrono_tz::Tz,
    pub now: NaiveDateTime,
    pub hours: ws::BusinessHours,
}

impl Local {
    /// Now in the Workspace's time zone (UTC when it names none), and its business hours.
    pub async fn of(peers: &Peers, workspace_id: Uuid) -> Result<Self, Error> {
        let workspace = peers.workspace(workspace_id).await?;
        let zone: chrono_tz::Tz = workspace.timezone.parse().unwrap_or(chrono_tz::UTC);
        Ok(Local {
            now: Utc::now().with_timezone(&zone).naive_local(),
            hours: workspace.business_hours.unwrap_or_default(),
            zone,
        })
    }

    /// The instant of a local moment; one a clock change skips is taken an hour later.
    pub fn instant(&self, local: NaiveDateTime) -> DateTime<Utc> {
        use chrono::TimeZone;
        [local, local + chrono::Duration::hours(1)]
            .into_iter()
            .find_map(|l| self.zone.from_local_datetime(&l).earliest())
            .map_or_else(Utc::now, |t| t.with_timezone(&Utc))
    }
}

/// What conditions are tested against.
pub struct Facts<'a> {
    pub peers: &'a Peers,
    pub workspace_id: Uuid,
    pub contact_id: Uuid,
    pub channel_id: Uuid,
    /// The triggering message's text ("" for other triggers).
    pub text: &'a str,
    pub variables: &'a BTreeMap<String, String>,
    contact: Option<ct::Contact>,
    local: Option<Local>,
}

impl<'a> Facts<'a> {
    pub fn new(
        peers: &'a Peers,
        workspace_id: Uuid,
        contact_id: Uuid,
        channel_id: Uuid,
        text: &'a str,
        variables: &'a BTreeMap<String, String>,
    ) -> Self {
        Facts {
            peers,
            workspace_id,
            contact_id,
            channel_id,
            text,
            variables,
            contact: None,
            local: None,
        }
    }

    async fn contact(&mut self) -> Result<&ct::Contact, Error> {
        if self.contact.is_none() {
            let request = ct::GetContactRequest {
                id: self.contact_id.to_string(),
            };
            let contact = self
                .peers
                .contacts
                .call(
                    self.workspace_id,
                    "contact",
                    request,
                    |mut c, r| async move { c.get_contact(r).await },
                )
                .await?
                .contact
                .ok_or(Error::NotFound("contact"))?;
            self.contact = Some(contact);
        }
        Ok(self.contact.as_ref().expect("just read"))
    }

    async fn local(&mut self) -> Result<&Local, Error> {
        if self.local.is_none() {
            self.local = Some(Local::of(self.peers, self.workspace_id).await?);
        }
        Ok(self.local.as_ref().expect("just read"))
    }

    /// Whether every one of `all` holds.
    pub async fn all_hold(&mut self, all: &[pb::Condition]) -> Result<bool, Error> {
        for condition in all {
            if !self.holds(condition).await? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    async fn holds(&mut self, condition: &pb::Condition) -> Result<bool, Error> {
        use pb::condition::Kind as C;
        Ok(match condition.kind.as_ref() {
            Some(C::TextContains(text)) => self.text.to_lowercase().contains(&text.to_lowercase()),
            Some(C::ChannelId(id)) => self.channel_id.to_string() == *id,
            Some(C::HasTag(tag)) => self.contact().await?.tags.contains(tag),
            Some(C::FieldEquals(equals)) => self
                .contact()
                .await?
                .custom_fields
                .get(&equals.name)
                .map_or_else(String::new, personalize::field_text)
                .eq_ignore_ascii_case(equals.value.trim()),
            Some(C::LifecycleStage(stage)) => self.contact().await?.lifecycle_stage == *stage,
            Some(C::BusinessHours(hours)) => {
                let local = self.local().await?;
                calendar::open(&local.hours, local.now) == hours.open
            }
            Some(C::TimeWindow(window)) => calendar::within(window, self.local().await?.now),
            Some(C::VariableEquals(equals)) => self
                .variables
                .get(&equals.name)
                .map_or("", String::as_str)
                .eq_ignore_ascii_case(equals.value.trim()),
            None => false,
        })
    }
}
