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

use chrono::{DateTime, Utc};
use ism_platform::peer::Peer;
use ism_platform::personalize::{self, Variables};
use ism_proto::contacts::v1 as ct;
use ism_proto::contacts::v1::contact_service_client::ContactServiceClient;
use ism_proto::contacts::v1::field_value::Kind as FieldKind;
use ism_proto::conversations::v1 as cv;
use ism_proto::conversations::v1::conversation_service_client::ConversationServiceClient;
use ism_proto::types::v1::{MessageContent, Text, message_content};
use ism_proto::workflows::v1 as pb;
use ism_proto::workflows::v1::step::Kind;
use ism_proto::workspaces::v1 as ws;
use ism_proto::workspaces::v1::workspace_service_client::WorkspaceServiceClient;
use prost::Message;
use serde_json::{Value, json};
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::announce;
use crate::answers;
use crate::calendar;
use crate::calls::Caller;
use crate::conditions::{Facts, Local};
use crate::config::WorkflowsSettings;
use crate::definition::kind_name;
use crate::error::Error;
use crate::states::RunState;
use crate::store::{self, Run};
use crate::triggers::{self, Subject};

/// How long after a passing failure (a peer or the database away) a run is tried again.
const RETRY_AFTER: chrono::TimeDelta = chrono::TimeDelta::seconds(5);

/// The conversations and contacts services, as steps use them.
#[derive(Clone)]
pub struct Peers {
    pub conversations: Peer<ConversationServiceClient<Channel>>,
    pub contacts: Peer<ContactServiceClient<Channel>>,
    pub workspaces: Peer<WorkspaceServiceClient<Channel>>,
}

impl Peers {
    /// The Workspace, for its time zone and business hours.
    pub async fn workspace(&self, workspace_id: Uuid) -> Result<ws::Workspace, Error> {
        self.workspaces
            .call(
                workspace_id,
                "workspace",
                ws::GetWorkspaceRequest {},
                |mut c, r| async move { c.get_workspace(r).await },
            )
            .await?
            .workspace
            .ok_or(Error::NotFound("workspace"))
    }
}

/// Runs executing at once in one process.
const IN_FLIGHT: usize = 32;

/// Executes due runs until shutdown.
pub struct Engine {
    pub pool: PgPool,
    pub peers: Peers,
    pub config: WorkflowsSettings,
    pub wake: Arc<Notify>,
    caller: Caller,
    definitions: Mutex<HashMap<(Uuid, i32), Arc<pb::WorkflowDefinition>>>,
}

/// What a step decided.
enum Effect {
    /// Go on to this step (none: the run is complete).
    Next(Option<String>),
    /// Wait, then go on to this step.
    Wait(Duration, Option<String>),
    /// Wait for the Contact's answer to this (ask) step until then.
    Await(DateTime<Utc>),
    /// Take this step again at the first time, giving up at the second.
    Retry(DateTime<Utc>, DateTime<Utc>),
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
    pub fn new(
        pool: PgPool,
        peers: Peers,
        config: WorkflowsSettings,
        wake: Arc<Notify>,
        caller: Caller,
    ) -> Self {
        Self {
            pool,
            peers,
            config,
            wake,
            caller,
            definitions: Mutex::default(),
        }
    }

    /// Keeps up to `IN_FLIGHT` runs executing, claiming more as soon as one stops (not
    /// when a whole batch has), until shutdown; then lets the runs under way finish.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) -> anyhow::Result<()> {
        let lease = Duration::from_secs(self.config.lease_seconds);
        let mut running = tokio::task::JoinSet::new();
        loop {
            while running.try_join_next().is_some() {}
            let free = IN_FLIGHT.saturating_sub(running.len());
            if free > 0 {
                match store::claim_runs(&self.pool, free as i64, lease).await {
                    Ok(runs) if !runs.is_empty() => {
                        for run in runs {
                            let this = self.clone();
                            running.spawn(async move {
                                this.execute(run.id).await;
                                // A free place: claim again.
                                this.wake.notify_one();
                            });
                        }
                        continue;
                    }
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "claiming runs failed; retrying"),
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(Duration::from_millis(self.config.poll_ms)) => {}
            }
        }
        while running.join_next().await.is_some() {}
        Ok(())
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
                settle(&mut tx, &run).await?;
                tx.commit().await?;
                return Ok(Flow::Stop);
            }
            Err(e) => return Err(e),
        };
        let Some(step) = definition.steps.iter().find(|s| s.id == run.current_step) else {
            run.state = RunState::Completed;
            settle(&mut tx, &run).await?;
            tx.commit().await?;
            return Ok(Flow::Stop);
        };
        if run.step_count >= self.config.step_budget {
            run.state = RunState::Failed;
            run.error = format!(
                "the step budget of {} steps ran out (a loop?)",
                self.config.step_budget
            );
            settle(&mut tx, &run).await?;
            tx.commit().await?;
            return Ok(Flow::Stop);
        }
        let Some(kind) = step.kind.as_ref() else {
            return Err(Error::Unexpected(anyhow::anyhow!(
                "a published step without a kind"
            )));
        };
        let seq = run.step_count + 1;
        let done = match (kind, run.awaiting.is_empty(), run.answer.clone()) {
            (_, true, _) => {
                let input = ism_platform::json::message(step);
                store::begin_step(&mut tx, run.id, seq, &step.id, kind_name(kind), &input).await?;
                self.perform(&mut tx, &mut run, step, kind, seq).await
            }
            (Kind::Ask(ask), false, Some(answer)) => {
                let input = json!({ "answer": answer });
                store::begin_step(&mut tx, run.id, seq, &step.id, "answer", &input).await?;
                self.answered(&mut run, step, ask, &answer, seq).await
            }
            (Kind::Ask(ask), false, None) if run.deadline.is_none_or(|t| t <= Utc::now()) => {
                let input = json!({ "awaited_until": run.deadline });
                store::begin_step(&mut tx, run.id, seq, &step.id, "answer_timeout", &input).await?;
                Ok((
                    Effect::Next(next_of(&ask.timeout_next)),
                    json!({ "answered": false }),
                ))
            }
            (Kind::Ask(_), false, None) => {
                // Claimed before its deadline with no answer (an expired lease): wait on.
                run.state = RunState::Waiting;
                run.wake_at = run.deadline.unwrap_or_else(Utc::now);
                settle(&mut tx, &run).await?;
                tx.commit().await?;
                return Ok(Flow::Stop);
            }
            (_, false, _) => {
                return Err(Error::Unexpected(anyhow::anyhow!(
                    "run {} awaits an answer at step {:?}, which does not ask",
                    run.id,
                    step.id
                )));
            }
        };
        match done {
            Ok((effect, output)) => {
                store::end_step(&mut tx, run.id, seq, &output, "").await?;
                // A retried step keeps its place in the history and the step budget.
                if !matches!(effect, Effect::Retry(..)) {
                    run.step_count = seq;
                }
                let flow = match effect {
                    Effect::Retry(wake, deadline) => {
                        run.state = RunState::Waiting;
                        run.wake_at = wake;
                        run.deadline = Some(deadline);
                        Flow::Stop
                    }
                    Effect::Await(until) => {
                        run.state = RunState::Waiting;
                        run.wake_at = until;
                        run.awaiting = step.id.clone();
                        run.deadline = Some(until);
                        run.answer = None;
                        Flow::Stop
                    }
                    Effect::Next(next) => {
                        run.stop_awaiting();
                        match next {
                            Some(next) => {
                                run.current_step = next;
                                Flow::Continue
                            }
                            None => {
                                run.state = RunState::Completed;
                                Flow::Stop
                            }
                        }
                    }
                    Effect::Wait(duration, next) => {
                        run.stop_awaiting();
                        run.state = RunState::Waiting;
                        run.wake_at = Utc::now() + duration;
                        run.current_step = next.unwrap_or_default();
                        Flow::Stop
                    }
                };
                settle(&mut tx, &run).await?;
                tx.commit().await?;
                announce::step_taken(kind_name(kind), "completed");
                Ok(flow)
            }
            Err(e @ (Error::Unavailable(_) | Error::Aborted(_))) => Err(e),
            Err(refused) => {
                let words = refused.to_string();
                store::end_step(&mut tx, run.id, seq, &Value::Null, &words).await?;
                run.step_count = seq;
                run.state = RunState::Failed;
                run.error = format!("step {:?}: {words}", step.id);
                settle(&mut tx, &run).await?;
                tx.commit().await?;
                announce::step_taken(kind_name(kind), "failed");
                Ok(Flow::Stop)
            }
        }
    }

    /// Sends `content` in the run's conversation, its variables rendered, with the
    /// idempotency key of step `seq`; the message's id. A closed conversation's reply goes
    /// to the Contact's open one, where the run then goes on.
    async fn send(
        &self,
        run: &mut Run,
        content: &MessageContent,
        seq: i32,
    ) -> Result<String, Error> {
        let content = if personalize::personalised(content) {
            personalize::render_content(content, &self.variables(run).await?)
                .map_err(|e| Error::precondition("content", format!("cannot be rendered: {e}")))?
        } else {
            content.clone()
        };
        let request = cv::SendMessageRequest {
            conversation_id: run.conversation_id.to_string(),
            content: Some(content),
            client_message_id: format!("{}:{seq}", run.id),
            snippet_id: String::new(),
        };
        let sent = self
            .peers
            .conversations
            .call(
                run.workspace_id,
                "conversation",
                request,
                |mut c, r| async move { c.send_message(r).await },
            )
            .await?;
        let message = sent.message.unwrap_or_default();
        if let Ok(moved) = Uuid::parse_str(&message.conversation_id) {
            run.conversation_id = moved;
        }
        Ok(message.id)
    }

    /// What a text of the run may name: its Contact and its variables.
    async fn variables(&self, run: &Run) -> Result<Variables, Error> {
        let keys = personalize::field_keys(&self.peers.contacts, run.workspace_id).await?;
        let mut variables = Variables::of_contact(&self.contact(run).await?, &keys);
        variables.vars = run.variables.0.clone();
        Ok(variables)
    }

    /// `http` with the variables of its URL, header values and body rendered.
    async fn rendered(
        &self,
        run: &Run,
        http: &pb::HttpRequestStep,
    ) -> Result<pb::HttpRequestStep, Error> {
        let mut texts = std::iter::once(&http.url)
            .chain(http.headers.values())
            .chain(std::iter::once(&http.body));
        if !texts.any(|t| personalize::has_variables(t)) {
            return Ok(http.clone());
        }
        let variables = self.variables(run).await?;
        let render = |field: &str, text: &str| {
            personalize::render(text, &variables).map_err(|e| {
                Error::precondition("http_request", format!("{field} cannot be rendered: {e}"))
            })
        };
        let mut rendered = http.clone();
        rendered.url = render("url", &http.url)?;
        rendered.body = render("body", &http.body)?;
        for (name, value) in &mut rendered.headers {
            *value = render(&format!("header {name}"), value)?;
        }
        Ok(rendered)
    }

    /// Takes the Contact's `answer` to `ask`: saved and on to the step's `next` when
    /// valid; otherwise asked again while retries last, then on to `invalid_next`.
    async fn answered(
        &self,
        run: &mut Run,
        step: &pb::Step,
        ask: &pb::AskStep,
        answer: &str,
        seq: i32,
    ) -> Result<(Effect, Value), Error> {
        match answers::take(ask, answer) {
            Ok(value) => {
                if !ask.save_to_field.is_empty() {
                    self.set_field(run, &ask.save_to_field, Some(&value))
                        .await?;
                }
                if ask.save_as_tag {
                    self.add_tags(run, vec![value.clone()]).await?;
                }
                if !ask.save_to_variable.is_empty() {
                    run.variables
                        .0
                        .insert(ask.save_to_variable.clone(), value.clone());
                }
                Ok((
                    Effect::Next(next_of(&step.next)),
                    json!({ "valid": true, "saved": value }),
                ))
            }
            Err(why) if run.invalid_answers >= i32::try_from(ask.retries).unwrap_or(i32::MAX) => {
                Ok((
                    Effect::Next(next_of(&ask.invalid_next)),
                    json!({ "valid": false, "why": why, "retries_spent": ask.retries }),
                ))
            }
            Err(why) => {
                run.invalid_answers += 1;
                let text = if ask.retry_text.is_empty() {
                    why.clone()
                } else {
                    ask.retry_text.clone()
                };
                let again = MessageContent {
                    kind: Some(message_content::Kind::Text(Text { body: text })),
                    ..Default::default()
                };
                let message_id = self.send(run, &again, seq).await?;
                Ok((
                    Effect::Await(run.deadline.unwrap_or_else(Utc::now)),
                    json!({ "valid": false, "why": why, "asked_again": message_id }),
                ))
            }
        }
    }

    /// Starts the published, enabled, manual workflow `id` for the run's conversation in
    /// the step's transaction, so it starts once; its run's id, or none when its reentry
    /// policy or once-per-Contact started nothing.
    async fn start_workflow(
        &self,
        tx: &mut sqlx::PgConnection,
        run: &Run,
        id: &str,
    ) -> Result<Option<String>, Error> {
        let refused = |why: &str| Error::precondition("start_workflow", why.to_owned());
        let id = Uuid::parse_str(id).map_err(|_| refused("names no workflow"))?;
        let workflow = store::workflow(tx, run.workspace_id, id)
            .await?
            .ok_or_else(|| refused("its workflow was deleted"))?;
        let Some((published, definition)) = workflow.startable()? else {
            return Err(refused("its workflow is not published and enabled"));
        };
        let subject = Subject {
            workspace_id: run.workspace_id,
            contact_id: run.contact_id,
            conversation_id: run.conversation_id,
            channel_id: run.channel_id,
            text: run.trigger_text.clone(),
            variables: Default::default(),
        };
        let started = triggers::start(tx, &self.peers, &published, &definition, &subject).await?;
        if started.is_some() {
            self.wake.notify_one();
        }
        Ok(started.map(|r| r.id.to_string()))
    }

    /// Saves `value` in the Contact's custom field `key`, typed as the field is; `None`
    /// clears it.
    async fn set_field(&self, run: &Run, key: &str, value: Option<&str>) -> Result<(), Error> {
        let ws = run.workspace_id;
        let fields = self
            .peers
            .contacts
            .call(
                ws,
                "contact fields",
                ct::ListContactFieldsRequest {},
                |mut c, r| async move { c.list_contact_fields(r).await },
            )
            .await?
            .fields;
        let field = fields.iter().find(|f| f.key == key).ok_or_else(|| {
            Error::precondition("field", format!("no custom Contact Field {key:?}"))
        })?;
        let kind = match (value, field.r#type()) {
            (None, _) => None,
            (Some(value), ct::FieldType::Number) => {
                Some(FieldKind::Number(value.parse().map_err(|_| {
                    Error::precondition("field", format!("{key:?} takes a number, not {value:?}"))
                })?))
            }
            (Some(value), ct::FieldType::Date) => Some(FieldKind::Date(value.to_owned())),
            (Some(value), ct::FieldType::Checkbox) => Some(FieldKind::Checkbox(matches!(
                value.to_lowercase().as_str(),
                "yes" | "y" | "true" | "1"
            ))),
            (Some(value), _) => Some(FieldKind::Text(value.to_owned())),
        };
        let patch = ct::UpdateContactRequest {
            custom_fields: [(key.to_owned(), ct::FieldValue { kind })].into(),
            ..Default::default()
        };
        self.update_contact(run, patch).await
    }

    /// Adds `tags` to the run's Contact (a Tag it carries already stays as it is).
    async fn add_tags(&self, run: &Run, tags: Vec<String>) -> Result<(), Error> {
        let request = ct::AddTagsRequest {
            contact_ids: vec![run.contact_id.to_string()],
            tags,
        };
        self.peers
            .contacts
            .call(
                run.workspace_id,
                "contact",
                request,
                |mut c, r| async move { c.add_tags(r).await },
            )
            .await?;
        Ok(())
    }

    /// Applies `patch` to the run's Contact at the version it is now at; a concurrent
    /// change to the Contact makes that version stale, so it is read again.
    async fn update_contact(
        &self,
        run: &Run,
        patch: ct::UpdateContactRequest,
    ) -> Result<(), Error> {
        let ws = run.workspace_id;
        let mut tries = 0;
        loop {
            let contact = self.contact(run).await?;
            let request = ct::UpdateContactRequest {
                id: run.contact_id.to_string(),
                version: contact.version,
                ..patch.clone()
            };
            let updated = self
                .peers
                .contacts
                .call(ws, "contact", request, |mut c, r| async move {
                    c.update_contact(r).await
                })
                .await;
            match updated {
                Err(Error::Precondition(_)) if tries < 3 => tries += 1,
                Err(e) => return Err(e),
                Ok(_) => return Ok(()),
            }
        }
    }

    /// The step's effect, and its output for the history.
    async fn perform(
        &self,
        tx: &mut sqlx::PgConnection,
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
                let content = send.content.clone().unwrap_or_default();
                let id = self.send(run, &content, seq).await?;
                (Effect::Next(next), json!({"message_id": id}))
            }
            Kind::HttpRequest(http) => {
                let call = self.rendered(run, http).await?;
                let called = self.caller.call(&call, &format!("{}:{seq}", run.id)).await;
                if called.succeeded {
                    run.variables.0.extend(called.saved);
                    (Effect::Next(next), called.output)
                } else {
                    (Effect::Next(next_of(&http.failure_next)), called.output)
                }
            }
            Kind::Ask(ask) => {
                let question = ask.question.clone().unwrap_or_default();
                let id = self.send(run, &question, seq).await?;
                run.invalid_answers = 0;
                let until = Utc::now() + Duration::from_secs(u64::from(ask.timeout_seconds));
                (
                    Effect::Await(until),
                    json!({"message_id": id, "until": until.to_rfc3339()}),
                )
            }
            Kind::Branch(branch) => {
                let variables = run.variables.0.clone();
                let mut facts = Facts::new(
                    &self.peers,
                    run.workspace_id,
                    run.contact_id,
                    run.channel_id,
                    &run.trigger_text,
                    &variables,
                );
                let mut chosen = None;
                for (i, case) in branch.cases.iter().enumerate() {
                    if facts.all_hold(&case.all).await? {
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
                self.add_tags(run, add.tags.clone()).await?;
                (Effect::Next(next), json!({"tags": add.tags}))
            }
            Kind::Wait(wait) => {
                let until = if wait.seconds > 0 {
                    Utc::now() + Duration::from_secs(u64::from(wait.seconds))
                } else {
                    let local = Local::of(&self.peers, run.workspace_id).await?;
                    let at = match calendar::time(&wait.until_time) {
                        Some(time) => calendar::next_time(local.now, time),
                        None => calendar::next_open(&local.hours, local.now).unwrap_or(local.now),
                    };
                    local.instant(at)
                };
                let duration = (until - Utc::now()).to_std().unwrap_or_default();
                (
                    Effect::Wait(duration, next),
                    json!({"until": until.to_rfc3339()}),
                )
            }
            Kind::Assign(assign) => match &assign.rules {
                None => {
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
                Some(rules) => {
                    let request = cv::AssignNextRequest {
                        conversation_id,
                        rules: Some(cv::AssignmentRules {
                            team_id: assign.team_id.clone(),
                            ..rules.clone()
                        }),
                    };
                    let answer = self
                        .peers
                        .conversations
                        .call(ws, "conversation", request, |mut c, r| async move {
                            c.assign_next(r).await
                        })
                        .await?;
                    let now = Utc::now();
                    let deadline = run.deadline.unwrap_or_else(|| {
                        now + Duration::from_secs(u64::from(assign.timeout_seconds))
                    });
                    if answer.assigned {
                        let user = answer
                            .conversation
                            .map(|c| c.assignee_user_id)
                            .unwrap_or_default();
                        (Effect::Next(next), json!({"assigned_to": user}))
                    } else if now >= deadline {
                        (
                            Effect::Next(next_of(&assign.timeout_next)),
                            json!({"assigned": false, "timed_out": true}),
                        )
                    } else {
                        let again = (now + Duration::from_secs(self.config.assign_retry_seconds))
                            .min(deadline);
                        (
                            Effect::Retry(again, deadline),
                            json!({"assigned": false, "next_try": again.to_rfc3339()}),
                        )
                    }
                }
            },
            Kind::Unassign(_) => {
                let request = cv::UnassignConversationRequest {
                    id: conversation_id,
                };
                self.peers
                    .conversations
                    .call(ws, "conversation", request, |mut c, r| async move {
                        c.unassign_conversation(r).await
                    })
                    .await?;
                (Effect::Next(next), json!({"unassigned": true}))
            }
            Kind::RemoveTags(remove) => {
                let request = ct::RemoveTagsRequest {
                    contact_ids: vec![run.contact_id.to_string()],
                    tags: remove.tags.clone(),
                };
                self.peers
                    .contacts
                    .call(ws, "contact", request, |mut c, r| async move {
                        c.remove_tags(r).await
                    })
                    .await?;
                (Effect::Next(next), json!({"removed": remove.tags}))
            }
            Kind::UpdateField(update) => {
                let value = if personalize::has_variables(&update.value) {
                    personalize::render(&update.value, &self.variables(run).await?).map_err(
                        |e| Error::precondition("update_field", format!("cannot be rendered: {e}")),
                    )?
                } else {
                    update.value.clone()
                };
                let value = value.trim();
                self.set_field(run, &update.key, (!value.is_empty()).then_some(value))
                    .await?;
                (
                    Effect::Next(next),
                    json!({"key": update.key, "value": value}),
                )
            }
            Kind::UpdateLifecycle(update) => {
                let patch = ct::UpdateContactRequest {
                    lifecycle_stage: Some(update.stage.clone()),
                    ..Default::default()
                };
                self.update_contact(run, patch).await?;
                (Effect::Next(next), json!({"stage": update.stage}))
            }
            Kind::Open(_) => {
                let request = cv::OpenConversationRequest {
                    id: conversation_id,
                };
                let open = self
                    .peers
                    .conversations
                    .call(ws, "conversation", request, |mut c, r| async move {
                        c.open_conversation(r).await
                    })
                    .await?;
                if let Some(id) = open.conversation.as_ref().map(|c| c.id.as_str()) {
                    run.conversation_id = Uuid::parse_str(id).map_err(|_| {
                        Error::Unexpected(anyhow::anyhow!("conversation id {id:?}"))
                    })?;
                }
                (
                    Effect::Next(next),
                    json!({"conversation_id": run.conversation_id, "opened": open.opened}),
                )
            }
            Kind::StartWorkflow(start) => {
                let started = self.start_workflow(tx, run, &start.workflow_id).await?;
                (Effect::Next(next), json!({"started_run": started}))
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

    async fn contact(&self, run: &Run) -> Result<ct::Contact, Error> {
        let request = ct::GetContactRequest {
            id: run.contact_id.to_string(),
        };
        self.peers
            .contacts
            .call(
                run.workspace_id,
                "contact",
                request,
                |mut c, r| async move { c.get_contact(r).await },
            )
            .await?
            .contact
            .ok_or(Error::NotFound("contact"))
    }
}

/// Writes the run as it now is, with the event of a run that has just ended.
async fn settle(tx: &mut sqlx::PgConnection, run: &Run) -> Result<(), Error> {
    store::advance(tx, run).await?;
    announce::moved(tx, run).await?;
    Ok(())
}
