//! Starting runs from events: a Contact's message (unless a run awaits it as an answer),
//! an opened or closed conversation, a Tag, custom Field or lifecycle stage change (the
//! run acting in the
//! Contact's most recently active conversation), matched
//! against the enabled workflows of the Workspace, in the transaction that marks the event
//! processed (a redelivered event starts nothing twice). The queue is bound to an event
//! type only while some enabled workflow has its trigger (ADR 26).
use std::collections::BTreeMap;
use std::sync::Arc;

use ism_platform::events::{Batch, EventContext, EventHandler, HandlerError, topics};
use ism_proto::events::v1::Event;
use ism_proto::types::v1::{Direction, message_content};
use ism_proto::workflows::v1 as pb;
use prost::Message;
use sqlx::PgConnection;
use tokio::sync::Notify;
use uuid::Uuid;

use ism_platform::peer::Peer;
use ism_proto::conversations::v1 as cv;
use ism_proto::conversations::v1::conversation_service_client::ConversationServiceClient;
use tonic::transport::Channel;

use crate::announce;
use crate::conditions::Facts;
use crate::engine::Peers;
use crate::error::Error;
use crate::states::TriggerKind;
use crate::store::{self, NewRun, Published};

/// Where a run acts and what started it.
pub struct Subject {
    pub workspace_id: Uuid,
    pub contact_id: Uuid,
    pub conversation_id: Uuid,
    pub channel_id: Uuid,
    pub text: String,
    /// Variables the run starts with (an incoming webhook's).
    pub variables: BTreeMap<String, String>,
}

/// Starts a run of `workflow` for `subject` unless its trigger's conditions do not hold or
/// its reentry policy or once-per-Contact says not to; the run, if one started.
pub async fn start(
    conn: &mut PgConnection,
    peers: &Peers,
    workflow: &Published,
    definition: &pb::WorkflowDefinition,
    subject: &Subject,
) -> Result<Option<store::Run>, Error> {
    let Some(first) = definition.steps.first() else {
        return Ok(None);
    };
    let conditions = definition
        .trigger
        .as_ref()
        .map_or(&[][..], |t| t.conditions.as_slice());
    if !conditions.is_empty() {
        let mut facts = Facts::new(
            peers,
            subject.workspace_id,
            subject.contact_id,
            subject.channel_id,
            &subject.text,
            &subject.variables,
        );
        if !facts.all_hold(conditions).await? {
            return Ok(None);
        }
    }
    let (active, any) = store::runs_of(conn, workflow.id, subject.contact_id).await?;
    if definition.once_per_contact && any {
        return Ok(None);
    }
    if active {
        if definition.reentry() != pb::Reentry::Restart {
            return Ok(None);
        }
        for cancelled in store::cancel_active(conn, workflow.id, subject.contact_id).await? {
            announce::moved(conn, &cancelled).await?;
        }
    }
    let run = store::insert_run(
        conn,
        &NewRun {
            workspace_id: subject.workspace_id,
            workflow_id: workflow.id,
            version: workflow.version,
            contact_id: subject.contact_id,
            conversation_id: subject.conversation_id,
            channel_id: subject.channel_id,
            trigger_text: subject.text.clone(),
            first_step: first.id.clone(),
            variables: subject.variables.clone(),
        },
    )
    .await?;
    if let Some(run) = &run {
        announce::started(conn, run).await?;
    }
    Ok(run)
}

fn uuid_of(value: &str, what: &str) -> Result<Uuid, HandlerError> {
    Uuid::parse_str(value).map_err(|_| {
        HandlerError::Permanent(format!(
            "{what} {} is not a UUID",
            ism_platform::convert::quoted(value)
        ))
    })
}

/// Compiled trigger patterns by their text: a pattern is compiled once per process, not
/// once per message.
#[derive(Default)]
pub struct Patterns(std::sync::Mutex<std::collections::HashMap<String, Option<regex::Regex>>>);

impl Patterns {
    fn matches(&self, pattern: &str, text: &str) -> bool {
        let mut compiled = self.0.lock().expect("not poisoned");
        compiled
            .entry(pattern.to_owned())
            .or_insert_with(|| regex::Regex::new(pattern).ok())
            .as_ref()
            .is_some_and(|re| re.is_match(text))
    }
}

/// Whether a message-received trigger takes `text` on `channel`.
fn takes(trigger: &pb::MessageReceived, channel: &str, text: &str, patterns: &Patterns) -> bool {
    let channel_ok =
        trigger.channel_ids.is_empty() || trigger.channel_ids.iter().any(|c| c == channel);
    let text = text.trim();
    let keyword = trigger
        .keywords
        .iter()
        .any(|k| k.trim().eq_ignore_ascii_case(text));
    let pattern = !trigger.pattern.is_empty() && patterns.matches(&trigger.pattern, text);
    let text_ok = (trigger.keywords.is_empty() && trigger.pattern.is_empty()) || keyword || pattern;
    channel_ok && text_ok
}

pub struct Triggers {
    pub wake: Arc<Notify>,
    pub patterns: Patterns,
    pub peers: Peers,
}

/// What changed on a Contact, for the Tag and Field triggers.
enum Change {
    None,
    Tag {
        name: String,
        added: bool,
    },
    Field(String),
    /// The stage's key the Contact moved to ("" for none).
    Stage(String),
}

/// Whether `trigger` takes the change `change` on `channel` with `text`.
fn wanted(
    trigger: Option<&pb::trigger::Kind>,
    channel: &str,
    text: &str,
    change: &Change,
    patterns: &Patterns,
) -> bool {
    use pb::trigger::Kind as T;
    let on_channel = |ids: &[String]| ids.is_empty() || ids.iter().any(|id| id == channel);
    match (trigger, change) {
        (Some(T::MessageReceived(m)), _) => takes(m, channel, text, patterns),
        (Some(T::ConversationOpened(o)), _) => on_channel(&o.channel_ids),
        (Some(T::ConversationClosed(c)), _) => on_channel(&c.channel_ids),
        (Some(T::ContactTagUpdated(t)), Change::Tag { name, added }) => {
            let direction = match t.change() {
                pb::TagChange::Unspecified | pb::TagChange::Added => *added,
                pb::TagChange::Removed => !added,
                pb::TagChange::Any => true,
            };
            direction
                && (t.tags.is_empty()
                    || t.tags
                        .iter()
                        .any(|tag| tag.trim().eq_ignore_ascii_case(name)))
        }
        (Some(T::ContactFieldUpdated(f)), Change::Field(key)) => {
            f.keys.is_empty() || f.keys.contains(key)
        }
        (Some(T::LifecycleUpdated(l)), Change::Stage(stage)) => {
            l.stages.is_empty() || l.stages.contains(stage)
        }
        _ => false,
    }
}

/// The Contact's most recently active conversation and its Channel, if any.
pub async fn latest_conversation(
    conversations: &Peer<ConversationServiceClient<Channel>>,
    workspace_id: Uuid,
    contact_id: Uuid,
) -> Result<Option<(Uuid, Uuid)>, Error> {
    let request = cv::ListConversationsRequest {
        page_size: 1,
        contact_id: contact_id.to_string(),
        ..Default::default()
    };
    let page = conversations
        .call(
            workspace_id,
            "conversations",
            request,
            |mut c, r| async move { c.list_conversations(r).await },
        )
        .await?;
    let Some(latest) = page.conversations.into_iter().next() else {
        return Ok(None);
    };
    let id = |value: &str| {
        Uuid::parse_str(value).map_err(|_| {
            Error::Unexpected(anyhow::anyhow!(
                "conversations answered a bad id {}",
                ism_platform::convert::quoted(value)
            ))
        })
    };
    Ok(Some((id(&latest.id)?, id(&latest.channel_id)?)))
}

impl Triggers {
    /// Starts the runs `event` triggers, or hands a Contact's message to the run awaiting
    /// their answer (it then starts nothing); how many runs are due now.
    async fn take(&self, conn: &mut PgConnection, event: &Event) -> Result<usize, HandlerError> {
        let workspace_id = uuid_of(&event.workspace_id, "workspace_id")?;
        let contact_subject = |contact_id: &str| -> Result<Subject, HandlerError> {
            Ok(Subject {
                workspace_id,
                contact_id: uuid_of(contact_id, "contact_id")?,
                conversation_id: Uuid::nil(),
                channel_id: Uuid::nil(),
                text: String::new(),
                variables: BTreeMap::new(),
            })
        };
        let (kind, mut subject, change) = if event.r#type == topics::CONVERSATION_OPENED.key() {
            let opened = topics::CONVERSATION_OPENED
                .decode(event)
                .map_err(HandlerError::Permanent)?;
            (
                TriggerKind::ConversationOpened,
                Subject {
                    workspace_id,
                    contact_id: uuid_of(&opened.contact_id, "contact_id")?,
                    conversation_id: uuid_of(&opened.conversation_id, "conversation_id")?,
                    channel_id: uuid_of(&opened.channel_id, "channel_id")?,
                    text: String::new(),
                    variables: BTreeMap::new(),
                },
                Change::None,
            )
        } else if event.r#type == topics::CONVERSATION_CLOSED.key() {
            let closed = topics::CONVERSATION_CLOSED
                .decode(event)
                .map_err(HandlerError::Permanent)?;
            (
                TriggerKind::ConversationClosed,
                Subject {
                    workspace_id,
                    contact_id: uuid_of(&closed.contact_id, "contact_id")?,
                    conversation_id: uuid_of(&closed.conversation_id, "conversation_id")?,
                    // Events written before closed conversations named their Channel.
                    channel_id: Uuid::parse_str(&closed.channel_id).unwrap_or_default(),
                    text: String::new(),
                    variables: BTreeMap::new(),
                },
                Change::None,
            )
        } else if event.r#type == topics::TAG_ADDED.key()
            || event.r#type == topics::TAG_REMOVED.key()
        {
            let added = event.r#type == topics::TAG_ADDED.key();
            let tagged = if added {
                topics::TAG_ADDED
            } else {
                topics::TAG_REMOVED
            }
            .decode(event)
            .map_err(HandlerError::Permanent)?;
            (
                TriggerKind::ContactTagUpdated,
                contact_subject(&tagged.contact_id)?,
                Change::Tag {
                    name: tagged.tag,
                    added,
                },
            )
        } else if event.r#type == topics::CONTACT_FIELD_CHANGED.key() {
            let changed = topics::CONTACT_FIELD_CHANGED
                .decode(event)
                .map_err(HandlerError::Permanent)?;
            (
                TriggerKind::ContactFieldUpdated,
                contact_subject(&changed.contact_id)?,
                Change::Field(changed.key),
            )
        } else if event.r#type == topics::CONTACT_LIFECYCLE_UPDATED.key() {
            let moved = topics::CONTACT_LIFECYCLE_UPDATED
                .decode(event)
                .map_err(HandlerError::Permanent)?;
            (
                TriggerKind::LifecycleUpdated,
                contact_subject(&moved.contact_id)?,
                Change::Stage(moved.new_stage),
            )
        } else {
            let created = topics::MESSAGE_CREATED
                .decode(event)
                .map_err(HandlerError::Permanent)?;
            let text = match created.content.as_ref().and_then(|c| c.kind.as_ref()) {
                Some(message_content::Kind::Text(t)) => t.body.clone(),
                Some(message_content::Kind::ButtonReply(b)) => b.title.clone(),
                _ => String::new(),
            };
            if created.direction != Direction::Inbound as i32 {
                return Ok(0);
            }
            let conversation_id = uuid_of(&created.conversation_id, "conversation_id")?;
            if store::hand_answer(conn, conversation_id, &text).await? {
                return Ok(1);
            }
            (
                TriggerKind::MessageReceived,
                Subject {
                    workspace_id,
                    contact_id: uuid_of(&created.contact_id, "contact_id")?,
                    conversation_id,
                    channel_id: uuid_of(&created.channel_id, "channel_id")?,
                    text,
                    variables: BTreeMap::new(),
                },
                Change::None,
            )
        };
        let mut started = 0;
        for workflow in store::triggered(conn, workspace_id, kind).await? {
            let definition = pb::WorkflowDefinition::decode(workflow.definition.as_slice())
                .map_err(|e| {
                    HandlerError::Permanent(format!("stored workflow {}: {e}", workflow.id))
                })?;
            let channel = subject.channel_id.to_string();
            let trigger = definition.trigger.as_ref().and_then(|t| t.kind.as_ref());
            if !wanted(trigger, &channel, &subject.text, &change, &self.patterns) {
                continue;
            }
            if subject.conversation_id.is_nil() {
                match latest_conversation(
                    &self.peers.conversations,
                    workspace_id,
                    subject.contact_id,
                )
                .await?
                {
                    Some((conversation_id, channel_id)) => {
                        subject.conversation_id = conversation_id;
                        subject.channel_id = channel_id;
                    }
                    None => return Ok(started),
                }
            }
            if start(conn, &self.peers, &workflow, &definition, &subject)
                .await?
                .is_some()
            {
                started += 1;
            }
        }
        Ok(started)
    }
}

impl EventHandler for Triggers {
    async fn handle(&self, event: Event, ctx: EventContext) -> Result<(), HandlerError> {
        let Some(mut tx) = ctx.begin().await? else {
            return Ok(());
        };
        let started = self.take(&mut tx, &event).await?;
        tx.commit().await?;
        if started > 0 {
            self.wake.notify_one();
        }
        Ok(())
    }

    fn batch_size(&self) -> usize {
        32
    }

    async fn handle_batch(&self, batch: Batch) -> Result<(), HandlerError> {
        let (mut tx, events) = batch.begin().await?;
        let mut started = 0;
        for event in &events {
            started += self.take(&mut tx, event).await?;
        }
        tx.commit().await?;
        if started > 0 {
            self.wake.notify_one();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_patterns_and_channels_decide_a_message_trigger() {
        let patterns = Patterns::default();
        let any = pb::MessageReceived::default();
        assert!(takes(&any, "c1", "anything", &patterns));
        let keywords = pb::MessageReceived {
            keywords: vec!["Pricing".into()],
            ..Default::default()
        };
        assert!(takes(&keywords, "c1", " pricing ", &patterns));
        assert!(!takes(&keywords, "c1", "pricing please", &patterns));
        let pattern = pb::MessageReceived {
            pattern: r"(?i)\border\s+#?\d+".into(),
            ..Default::default()
        };
        assert!(takes(&pattern, "c1", "Where is ORDER 123?", &patterns));
        let elsewhere = pb::MessageReceived {
            channel_ids: vec!["c2".into()],
            ..Default::default()
        };
        assert!(!takes(&elsewhere, "c1", "hi", &patterns));
    }
}
