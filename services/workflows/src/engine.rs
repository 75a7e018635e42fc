//! Durable runs. A run executes one step per transaction: the step is recorded before its
//! effect and its result after, under the run's row lock and a lock on its Contact (a
//! Contact's runs never act at once). Every effect carries the idempotency key
//! `<run>:<step number>` where the target takes one (a message's client id), so a step
//! redone after a crash sends nothing twice. Waits are rows: a waiting run is claimed by
//! whichever replica finds it due. A run that takes more than `workflows.step_budget`
//! steps fails with that reason.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use ism_platform::peer::Peer;
use ism_proto::contacts::v1 as ct;
use ism_proto::contacts::v1::contact_service_client::ContactServiceClient;
use ism_proto::conversations::v1 as cv;
use ism_proto::conversations::v1::conversation_service_client::ConversationServiceClient;
use ism_proto::workflows::v1 as pb;
use ism_proto::workflows::v1::step::Kind;
use prost::Message;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::config::WorkflowsSettings;
use crate::definition::kind_name;
use crate::error::Error;
use crate::states::RunState;
use crate::store::{self, Run};

/// How long after a passing failure (a peer or the database away) a run is tried again.
const RETRY_AFTER: chrono::TimeDelta = chrono::TimeDelta::seconds(5);

/// The conversations and contacts services, as steps use them.
#[derive(Clone)]
pub struct Peers {
    pub conversations: Peer<ConversationServiceClient<Channel>>,
    pub contacts: Peer<ContactServiceClient<Channel>>,
}

/// Executes due runs until shutdown.
pub struct Engine {
    pub pool: PgPool,
    pub peers: Peers,
    pub config: WorkflowsSettings,
    pub wake: Arc<Notify>,
    definitions: Mutex<HashMap<(Uuid, i32), Arc<pb::WorkflowDefinition>>>,
}

/// What a step decided.
enum Effect {
    /// Go on to this step (none: the run is complete).
    Next(Option<String>),
    /// Wait, then go on to this step.
    Wait(Duration, Option<String>),
}

/// Whether to take the run's next step now.
enum Flow {
    Continue,
    Stop,
}

fn next_of(id: &str) -> Option<String> {
    (!id.is_empty()).then(|| id.to_owned())
}

impl Engine {
    pub fn new(pool: PgPool, peers: Peers, config: WorkflowsSettings, wake: Arc<Notify>) -> Self {
        Self {
            pool,
            peers,
            config,
            wake,
            definitions: Mutex::default(),
        }
    }

    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) -> anyhow::Result<()> {
        let lease = Duration::from_secs(self.config.lease_seconds);
        loop {
            match store::claim_runs(&self.pool, 32, lease).await {
                Ok(runs) if !runs.is_empty() => {
                    let mut tasks = tokio::task::JoinSet::new();
                    for run in runs {
                        let this = self.clone();
                        tasks.spawn(async move { this.execute(run.id).await });
                    }
                    while tasks.join_next().await.is_some() {}
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "claiming runs failed; retrying"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(self.config.poll_ms)) => {}
            }
        }
    }

    /// Takes the run's steps until it waits, ends or fails.
    async fn execute(&self, run_id: Uuid) {
        loop {
            match self.step(run_id).await {
                Ok(Flow::Continue) => {}
                Ok(Flow::Stop) => return,
                Err(e) => {
                    tracing::warn!(run = %run_id, error = %e, "a step could not be taken; retrying shortly");
                    let retry = sqlx::query(
                        "UPDATE runs SET wake_at = $2 WHERE id = $1 AND state = 'running'",
                    )
                    .bind(run_id)
                    .bind(Utc::now() + RETRY_AFTER)
                    .execute(&self.pool)
                    .await;
                    if let Err(e) = retry {
                        tracing::warn!(run = %run_id, error = %e, "the run is retried after its lease");
                    }
                    return;
                }
            }
        }
    }

    async fn definition(
        &self,
        run: &Run,
        tx: &mut sqlx::PgConnection,
    ) -> Result<Arc<pb::WorkflowDefinition>, Error> {
        let key = (run.workflow_id, run.version);
        if let Some(found) = self.definitions.lock().expect("not poisoned").get(&key) {
            return Ok(found.clone());
        }
        let bytes = store::published(tx, run.workflow_id, run.version)
            .await?
            .ok_or(Error::NotFound("workflow version"))?;
        let definition = Arc::new(
            pb::WorkflowDefinition::decode(bytes.as_slice())
                .map_err(|e| Error::Unexpected(anyhow::anyhow!("stored workflow version: {e}")))?,
        );
        self.definitions
            .lock()
            .expect("not poisoned")
            .insert(key, definition.clone());
        Ok(definition)
    }

    async fn step(&self, run_id: Uuid) -> Result<Flow, Error> {
        let mut tx = self.pool.begin().await?;
        let Some(mut run) = store::lock_run(&mut tx, run_id).await? else {
            return Ok(Flow::Stop);
        };
        if run.state != RunState::Running {
            return Ok(Flow::Stop);
        }
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1::text))")
            .bind(run.contact_id)
            .execute(&mut *tx)
            .await?;
        let definition = match self.definition(&run, &mut tx).await {
            Ok(definition) => definition,
            Err(Error::NotFound(_)) => {
                run.state = RunState::Cancelled;
                run.error = "its workflow was deleted".into();
                store::advance(&mut tx, &run).await?;
                tx.commit().await?;
                return Ok(Flow::Stop);
            }
            Err(e) => return Err(e),
        };
        let Some(step) = definition.steps.iter().find(|s| s.id == run.current_step) else {
            run.state = RunState::Completed;
            store::advance(&mut tx, &run).await?;
            tx.commit().await?;
            return Ok(Flow::Stop);
        };
        if run.step_count >= self.config.step_budget {
            run.state = RunState::Failed;
            run.error = format!(
                "the step budget of {} steps ran out (a loop?)",
                self.config.step_budget
            );
            store::advance(&mut tx, &run).await?;
            tx.commit().await?;
            return Ok(Flow::Stop);
        }
        let Some(kind) = step.kind.as_ref() else {
            return Err(Error::Unexpected(anyhow::anyhow!(
                "a published step without a kind"
            )));
        };
        let seq = run.step_count + 1;
        let input = ism_platform::json::message(step);
        store::begin_step(&mut tx, run.id, seq, &step.id, kind_name(kind), &input).await?;
        match self.perform(&mut run, step, kind, seq).await {
            Ok((effect, output)) => {
                store::end_step(&mut tx, run.id, seq, &output, "").await?;
                run.step_count = seq;
                let flow = match effect {
                    Effect::Next(Some(next)) => {
                        run.current_step = next;
                        Flow::Continue
                    }
                    Effect::Next(None) => {
                        run.state = RunState::Completed;
                        Flow::Stop
                    }
                    Effect::Wait(duration, next) => {
                        run.state = RunState::Waiting;
                        run.wake_at = Utc::now() + duration;
                        run.current_step = next.unwrap_or_default();
                        Flow::Stop
                    }
                };
                store::advance(&mut tx, &run).await?;
                tx.commit().await?;
                Ok(flow)
            }
            Err(e @ (Error::Unavailable(_) | Error::Aborted(_))) => Err(e),
            Err(refused) => {
                let words = refused.to_string();
                store::end_step(&mut tx, run.id, seq, &Value::Null, &words).await?;
                run.step_count = seq;
                run.state = RunState::Failed;
                run.error = format!("step {:?}: {words}", step.id);
                store::advance(&mut tx, &run).await?;
                tx.commit().await?;
                Ok(Flow::Stop)
            }
        }
    }

    /// The step's effect, and its output for the history.
    async fn perform(
        &self,
        run: &mut Run,
        step: &pb::Step,
        kind: &Kind,
        seq: i32,
    ) -> Result<(Effect, Value), Error> {
        let ws = run.workspace_id;
        let conversation_id = run.conversation_id.to_string();
        let next = next_of(&step.next);
        Ok(match kind {
            Kind::SendMessage(send) => {
                let request = cv::SendMessageRequest {
                    conversation_id,
                    content: send.content.clone(),
                    client_message_id: format!("{}:{seq}", run.id),
                    snippet_id: String::new(),
                };
                let sent = self
                    .peers
                    .conversations
                    .call(ws, "conversation", request, |mut c, r| async move {
                        c.send_message(r).await
                    })
                    .await?;
                let id = sent.message.map(|m| m.id).unwrap_or_default();
                (Effect::Next(next), json!({"message_id": id}))
            }
            Kind::Branch(branch) => {
                let mut tags: Option<Vec<String>> = None;
                let mut chosen = None;
                for (i, case) in branch.cases.iter().enumerate() {
                    let mut holds = true;
                    for condition in &case.all {
                        use pb::condition::Kind as C;
                        holds &= match condition.kind.as_ref() {
                            Some(C::TextContains(text)) => run
                                .trigger_text
                                .to_lowercase()
                                .contains(&text.to_lowercase()),
                            Some(C::ChannelId(id)) => run.channel_id.to_string() == *id,
                            Some(C::HasTag(tag)) => {
                                if tags.is_none() {
                                    tags = Some(self.tags(run).await?);
                                }
                                tags.as_ref().is_some_and(|all| all.contains(tag))
                            }
                            None => false,
                        };
                    }
                    if holds {
                        chosen = Some((i, case.next.clone()));
                        break;
                    }
                }
                match chosen {
                    Some((i, to)) => (Effect::Next(next_of(&to)), json!({"case": i})),
                    None => (
                        Effect::Next(next_of(&branch.otherwise)),
                        json!({"case": "otherwise"}),
                    ),
                }
            }
            Kind::AddTags(add) => {
                let request = ct::AddTagsRequest {
                    contact_ids: vec![run.contact_id.to_string()],
                    tags: add.tags.clone(),
                };
                self.peers
                    .contacts
                    .call(ws, "contact", request, |mut c, r| async move {
                        c.add_tags(r).await
                    })
                    .await?;
                (Effect::Next(next), json!({"tags": add.tags}))
            }
            Kind::Wait(wait) => {
                let duration = Duration::from_secs(u64::from(wait.seconds));
                let until = Utc::now() + duration;
                (
                    Effect::Wait(duration, next),
                    json!({"until": until.to_rfc3339()}),
                )
            }
            Kind::Assign(assign) => {
                let request = cv::AssignConversationRequest {
                    id: conversation_id,
                    user_id: assign.user_id.clone(),
                    team_id: assign.team_id.clone(),
                };
                self.peers
                    .conversations
                    .call(ws, "conversation", request, |mut c, r| async move {
                        c.assign_conversation(r).await
                    })
                    .await?;
                (
                    Effect::Next(next),
                    json!({"user_id": assign.user_id, "team_id": assign.team_id}),
                )
            }
            Kind::Close(close) => {
                let request = cv::CloseConversationRequest {
                    id: conversation_id,
                    closing_category: String::new(),
                    closing_summary: close.summary.clone(),
                };
                self.peers
                    .conversations
                    .call(ws, "conversation", request, |mut c, r| async move {
                        c.close_conversation(r).await
                    })
                    .await?;
                (Effect::Next(next), json!({"closed": true}))
            }
            Kind::Comment(comment) => {
                let request = cv::AddCommentRequest {
                    conversation_id,
                    body: comment.body.clone(),
                    mentioned_user_ids: Vec::new(),
                };
                let added = self
                    .peers
                    .conversations
                    .call(ws, "conversation", request, |mut c, r| async move {
                        c.add_comment(r).await
                    })
                    .await?;
                (
                    Effect::Next(next),
                    json!({"message_id": added.message.map(|m| m.id).unwrap_or_default()}),
                )
            }
            Kind::Jump(jump) => {
                let taken = run.jumps.0.entry(step.id.clone()).or_default();
                if *taken < jump.max_times {
                    *taken += 1;
                    let times = *taken;
                    (
                        Effect::Next(next_of(&jump.to)),
                        json!({"to": jump.to, "times": times}),
                    )
                } else {
                    (Effect::Next(next), json!({"cap_reached": jump.max_times}))
                }
            }
        })
    }

    async fn tags(&self, run: &Run) -> Result<Vec<String>, Error> {
        let request = ct::GetContactRequest {
            id: run.contact_id.to_string(),
        };
        let contact = self
            .peers
            .contacts
            .call(
                run.workspace_id,
                "contact",
                request,
                |mut c, r| async move { c.get_contact(r).await },
            )
            .await?;
        Ok(contact.contact.map(|c| c.tags).unwrap_or_default())
    }
}
