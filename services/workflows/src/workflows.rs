//! Defining workflows: drafts checked whole, published as immutable versions, enabled or
//! disabled, deleted.
use ism_platform::egress::Egress;
use ism_platform::error::Violations;
use ism_platform::events::Amqp;
use ism_platform::personalize;
use ism_proto::contacts::v1::{GetSegmentRequest, ListLifecycleStagesRequest};
use ism_proto::workflows::v1 as pb;
use prost::Message;
use secrecy::ExposeSecret;
use sqlx::PgPool;
use uuid::Uuid;

use crate::announce;
use crate::bindings;
use crate::config::WorkflowsSettings;
use crate::definition::{self, Known};
use crate::engine::Peers;
use crate::error::Error;
use crate::schedules;
use crate::states::TriggerKind;
use crate::store::{self, Workflow};

#[derive(Clone)]
pub struct Workflows {
    pub pool: PgPool,
    pub amqp: Amqp,
    pub config: WorkflowsSettings,
    pub peers: Peers,
    pub egress: Egress,
}

fn trigger_kind(definition: &pb::WorkflowDefinition) -> TriggerKind {
    use pb::trigger::Kind as T;
    match definition.trigger.as_ref().and_then(|t| t.kind.as_ref()) {
        Some(T::MessageReceived(_)) => TriggerKind::MessageReceived,
        Some(T::ConversationOpened(_)) => TriggerKind::ConversationOpened,
        Some(T::ConversationClosed(_)) => TriggerKind::ConversationClosed,
        Some(T::ContactTagUpdated(_)) => TriggerKind::ContactTagUpdated,
        Some(T::ContactFieldUpdated(_)) => TriggerKind::ContactFieldUpdated,
        Some(T::LifecycleUpdated(_)) => TriggerKind::LifecycleUpdated,
        Some(T::IncomingWebhook(_)) => TriggerKind::IncomingWebhook,
        Some(T::Schedule(_)) => TriggerKind::Schedule,
        _ => TriggerKind::Manual,
    }
}

impl Workflows {
    fn check(
        &self,
        workspace_id: Uuid,
        definition: Option<&pb::WorkflowDefinition>,
    ) -> Result<pb::WorkflowDefinition, Error> {
        let max_steps = self.config.max_steps(workspace_id);
        let checked =
            definition::check(definition, max_steps, &self.egress).map_err(Error::Invalid)?;
        if let Some(pb::trigger::Kind::Schedule(schedule)) =
            checked.trigger.as_ref().and_then(|t| t.kind.as_ref())
        {
            let faults = schedules::check(schedule, self.config.min_schedule_seconds);
            if !faults.is_empty() {
                let mut within = Violations::new();
                within.extend_within("definition", faults);
                return Err(Error::Invalid(within));
            }
        }
        Ok(checked)
    }

    pub async fn create(
        &self,
        workspace_id: Uuid,
        definition: Option<pb::WorkflowDefinition>,
    ) -> Result<Workflow, Error> {
        let draft = self.check(workspace_id, definition.as_ref())?;
        let mut tx = self.pool.begin().await?;
        let most = self.config.max_workflows(workspace_id);
        if store::count_workflows(&mut tx, workspace_id).await? >= most {
            return Err(Error::precondition(
                "workspace",
                format!("has {most} workflows, the most allowed"),
            ));
        }
        let secret = ism_platform::signing::new_secret().map_err(Error::Unexpected)?;
        let draft = draft.encode_to_vec();
        let id =
            store::insert_workflow(&mut tx, workspace_id, &draft, secret.expose_secret()).await?;
        let workflow = store::workflow(&mut tx, workspace_id, id)
            .await?
            .ok_or(Error::NotFound("workflow"))?;
        tx.commit().await?;
        Ok(workflow)
    }

    pub async fn read(&self, workspace_id: Uuid, id: Uuid) -> Result<Workflow, Error> {
        let mut conn = ism_platform::db::acquire(&self.pool).await?;
        store::workflow(&mut conn, workspace_id, id)
            .await?
            .ok_or(Error::NotFound("workflow"))
    }

    pub async fn list(&self, workspace_id: Uuid) -> Result<Vec<Workflow>, Error> {
        let mut conn = ism_platform::db::acquire(&self.pool).await?;
        Ok(store::workflows(&mut conn, workspace_id).await?)
    }

    pub async fn update(
        &self,
        workspace_id: Uuid,
        id: Uuid,
        definition: Option<pb::WorkflowDefinition>,
    ) -> Result<Workflow, Error> {
        let draft = self.check(workspace_id, definition.as_ref())?;
        let mut conn = ism_platform::db::acquire(&self.pool).await?;
        if !store::update_draft(&mut conn, workspace_id, id, &draft.encode_to_vec()).await? {
            return Err(Error::NotFound("workflow"));
        }
        store::workflow(&mut conn, workspace_id, id)
            .await?
            .ok_or(Error::NotFound("workflow"))
    }

    pub async fn publish(&self, workspace_id: Uuid, id: Uuid) -> Result<Workflow, Error> {
        let workflow = self.read(workspace_id, id).await?;
        let draft = pb::WorkflowDefinition::decode(workflow.draft.as_slice())
            .map_err(|e| Error::Unexpected(anyhow::anyhow!("stored draft: {e}")))?;
        let checked = self.check(workspace_id, Some(&draft))?;
        let known = self.known(workspace_id).await?;
        definition::check_references(&checked, &known).map_err(Error::Invalid)?;
        if let Some(pb::trigger::Kind::Schedule(schedule)) =
            checked.trigger.as_ref().and_then(|t| t.kind.as_ref())
        {
            self.segment_exists(workspace_id, &schedule.segment_id)
                .await?;
        }
        let mut tx = self.pool.begin().await?;
        // Publishes take turns, so two cannot each close half of a cycle.
        ism_platform::events::bindings::lock(&mut tx, "workflows").await?;
        let others = store::published_all(&mut tx, workspace_id)
            .await?
            .into_iter()
            .filter_map(|p| {
                let definition = pb::WorkflowDefinition::decode(p.definition.as_slice()).ok()?;
                Some((p.id.to_string(), definition))
            })
            .collect();
        definition::check_started(&id.to_string(), &checked, &others).map_err(Error::Invalid)?;
        if !store::publish(
            &mut tx,
            workspace_id,
            id,
            &checked.encode_to_vec(),
            trigger_kind(&checked),
            definition::asks(&checked),
        )
        .await?
        {
            return Err(Error::NotFound("workflow"));
        }
        schedules::arm(&mut tx, &self.peers, workspace_id, id, &checked).await?;
        if workflow.webhook_secret.is_empty() {
            let secret = ism_platform::signing::new_secret().map_err(Error::Unexpected)?;
            store::first_secret(&mut tx, id, secret.expose_secret()).await?;
        }
        bindings::sync(&self.amqp, &mut tx).await?;
        let workflow = store::workflow(&mut tx, workspace_id, id)
            .await?
            .ok_or(Error::NotFound("workflow"))?;
        tx.commit().await?;
        Ok(workflow)
    }

    /// INVALID_ARGUMENT on the schedule's Segment unless the Workspace has it.
    async fn segment_exists(&self, workspace_id: Uuid, segment_id: &str) -> Result<(), Error> {
        let request = GetSegmentRequest {
            id: segment_id.to_owned(),
        };
        let found = self
            .peers
            .contacts
            .answer(workspace_id, request, |mut c, r| async move {
                c.get_segment(r).await
            })
            .await?;
        match found {
            Ok(_) => Ok(()),
            Err(status) if status.code() == tonic::Code::NotFound => Err(Error::invalid(
                "definition.trigger.schedule.segment_id",
                "no such Segment",
            )),
            Err(status) => Err(self.peers.contacts.refused("segment", &status)),
        }
    }

    /// The Workspace's custom Fields and lifecycle stages.
    async fn known(&self, workspace_id: Uuid) -> Result<Known, Error> {
        let stages = self
            .peers
            .contacts
            .call(
                workspace_id,
                "lifecycle stages",
                ListLifecycleStagesRequest {},
                |mut c, r| async move { c.list_lifecycle_stages(r).await },
            )
            .await?
            .stages;
        Ok(Known {
            field_keys: personalize::field_keys(&self.peers.contacts, workspace_id).await?,
            stages: stages.into_iter().map(|s| s.key).collect(),
        })
    }

    pub async fn set_enabled(
        &self,
        workspace_id: Uuid,
        id: Uuid,
        enabled: bool,
    ) -> Result<Workflow, Error> {
        let mut tx = self.pool.begin().await?;
        if !store::set_enabled(&mut tx, workspace_id, id, enabled).await? {
            return Err(Error::NotFound("workflow"));
        }
        let workflow = store::workflow(&mut tx, workspace_id, id)
            .await?
            .ok_or(Error::NotFound("workflow"))?;
        if enabled && workflow.published_version == 0 {
            return Err(Error::precondition(
                "workflow",
                "has no published version to enable",
            ));
        }
        match workflow.published.as_deref() {
            Some(bytes) if enabled => {
                let published = pb::WorkflowDefinition::decode(bytes)
                    .map_err(|e| Error::Unexpected(anyhow::anyhow!("stored version: {e}")))?;
                schedules::arm(&mut tx, &self.peers, workspace_id, id, &published).await?;
            }
            _ => store::disarm_schedule(&mut tx, id).await?,
        }
        bindings::sync(&self.amqp, &mut tx).await?;
        tx.commit().await?;
        Ok(workflow)
    }

    pub async fn delete(&self, workspace_id: Uuid, id: Uuid) -> Result<(), Error> {
        let mut tx = self.pool.begin().await?;
        for cancelled in store::delete_workflow(&mut tx, workspace_id, id).await? {
            announce::moved(&mut tx, &cancelled).await?;
        }
        bindings::sync(&self.amqp, &mut tx).await?;
        tx.commit().await?;
        Ok(())
    }
}
