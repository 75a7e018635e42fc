//! Bots answering conversations. A Contact's message on a Channel with a bot becomes a
//! turn (stored with the event's inbox row, so a redelivery adds nothing); a worker
//! answers each conversation's turns in order, one at a time: it asks the backend, sends
//! the replies through conversations (marked as a bot's, each with a client message id
//! derived from the turn, so a turn redone after a crash never sends a reply twice), adds
//! Tags, closes, or hands the conversation to a human. Any human assignment ends the
//! bot's part; so does a backend that refuses its credentials, keeps failing, or does not
//! answer in time.
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use ism_platform::events::{Batch, EventContext, EventHandler, HandlerError, topics};
use ism_platform::peer::Peer;
use ism_platform::sealing::Sealer;
use ism_proto::contacts::v1 as ct;
use ism_proto::contacts::v1::contact_service_client::ContactServiceClient;
use ism_proto::conversations::v1 as cv;
use ism_proto::conversations::v1::conversation_service_client::ConversationServiceClient;
use ism_proto::events::v1::Event;
use ism_proto::types::v1::{Direction, MessageContent, message_content};
use sqlx::{PgConnection, PgPool};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use uuid::Uuid;

use crate::backend::{Answer, Backend, Backends, BotError, Query, Speaker};
use crate::error::Error;
use crate::states::{SessionState, TurnState};
use crate::store::{self, Turn};

/// Attempts of a turn whose backend failed for a passing reason, before a human takes over.
const ATTEMPTS: i32 = 3;
/// How long a replica holds a claimed turn.
const LEASE: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(500);
const BATCH: i64 = 32;

/// What a Contact wrote, as a bot reads it: text, or the chosen button.
fn said(content: &MessageContent) -> Option<String> {
    match content.kind.as_ref()? {
        message_content::Kind::Text(text) => Some(text.body.clone()),
        message_content::Kind::ButtonReply(reply) => Some(if reply.payload.is_empty() {
            reply.title.clone()
        } else {
            reply.payload.clone()
        }),
        _ => None,
    }
}

/// A Contact Field value from a bot's JSON: text, a number or a checkbox.
fn field_value(value: &serde_json::Value) -> ct::FieldValue {
    use ct::field_value::Kind;
    let kind = match value {
        serde_json::Value::Bool(b) => Kind::Checkbox(*b),
        serde_json::Value::Number(n) => Kind::Number(n.as_f64().unwrap_or_default()),
        other => Kind::Text(other.as_str().unwrap_or_default().to_owned()),
    };
    ct::FieldValue { kind: Some(kind) }
}

fn uuid_of(value: &str, what: &str) -> Result<Uuid, HandlerError> {
    Uuid::parse_str(value).map_err(|_| {
        HandlerError::Permanent(format!(
            "{what} {} is not a UUID",
            ism_platform::convert::quoted(value)
        ))
    })
}

/// Records what bots must answer and what ends their part.
pub struct Intake {
    pub wake: Arc<Notify>,
}

async fn take(conn: &mut PgConnection, event: &Event) -> Result<bool, HandlerError> {
    let workspace_id = uuid_of(&event.workspace_id, "workspace_id")?;
    if event.r#type == topics::CONVERSATION_ASSIGNED.key() {
        let assigned = topics::CONVERSATION_ASSIGNED
            .decode(event)
            .map_err(HandlerError::Permanent)?;
        if !assigned.user_id.is_empty() {
            let conversation_id = uuid_of(&assigned.conversation_id, "conversation_id")?;
            store::end_session(
                conn,
                conversation_id,
                SessionState::Ended,
                "assigned to a User",
            )
            .await?;
        }
        return Ok(false);
    }
    let created = topics::MESSAGE_CREATED
        .decode(event)
        .map_err(HandlerError::Permanent)?;
    let inbound = created.direction == Direction::Inbound as i32;
    let (Some(text), true) = (created.content.as_ref().and_then(said), inbound) else {
        return Ok(false);
    };
    let conversation_id = uuid_of(&created.conversation_id, "conversation_id")?;
    let channel_id = uuid_of(&created.channel_id, "channel_id")?;
    let bot_id = match store::session_state(conn, conversation_id).await? {
        Some(SessionState::Active) | None => store::bot_for(conn, workspace_id, channel_id).await?,
        Some(_) => None,
    };
    let Some(bot_id) = bot_id else {
        return Ok(false);
    };
    store::start_session(conn, workspace_id, conversation_id, bot_id).await?;
    store::insert_turn(
        conn,
        &Turn {
            message_id: uuid_of(&created.message_id, "message_id")?,
            workspace_id,
            conversation_id,
            contact_id: uuid_of(&created.contact_id, "contact_id")?,
            channel_id,
            bot_id,
            text,
            attempts: 0,
        },
    )
    .await?;
    Ok(true)
}

impl EventHandler for Intake {
    async fn handle(&self, event: Event, ctx: EventContext) -> Result<(), HandlerError> {
        let Some(mut tx) = ctx.begin().await? else {
            return Ok(());
        };
        let turn = take(&mut tx, &event).await?;
        tx.commit().await?;
        if turn {
            self.wake.notify_one();
        }
        Ok(())
    }

    fn batch_size(&self) -> usize {
        32
    }

    async fn handle_batch(&self, batch: Batch) -> Result<(), HandlerError> {
        let (mut tx, events) = batch.begin().await?;
        let mut turns = false;
        for event in &events {
            turns |= take(&mut tx, event).await?;
        }
        tx.commit().await?;
        if turns {
            self.wake.notify_one();
        }
        Ok(())
    }
}

/// The conversations and contacts services, as bots use them.
#[derive(Clone)]
pub struct Peers {
    pub conversations: Peer<ConversationServiceClient<Channel>>,
    pub contacts: Peer<ContactServiceClient<Channel>>,
}

/// Answers turns until shutdown.
pub struct Worker {
    pub pool: PgPool,
    pub sealer: Arc<Sealer>,
    pub backends: Backends,
    pub peers: Peers,
    pub wake: Arc<Notify>,
}

/// What to do with a turn after asking.
enum Outcome {
    /// The answer, and the version of the Contact it was asked for.
    Answered(Answer, i64),
    /// The session is over (a human has the conversation, or it is closed): not answered.
    Over(&'static str),
    /// The bot is gone or disabled.
    NoBot,
}

/// A turn's outcome once the answer is applied, recorded in one transaction.
enum Step {
    Answered(Answer),
    /// Handed to a human: `words` for the bot's health and session, `note` for the Users.
    Failed {
        note: String,
        words: String,
    },
    Over(&'static str),
    NoBot,
    /// Asked again later after a passing failure, in these words.
    Retry(String),
}

impl Worker {
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) -> anyhow::Result<()> {
        loop {
            match store::claim_turns(&self.pool, BATCH, LEASE).await {
                Ok(turns) => {
                    let mut tasks = tokio::task::JoinSet::new();
                    for turn in turns {
                        let this = self.clone();
                        tasks.spawn(async move { this.answer(turn).await });
                    }
                    let claimed = !tasks.is_empty();
                    while tasks.join_next().await.is_some() {}
                    if claimed {
                        continue;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "claiming bot turns failed; retrying"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }

    async fn answer(&self, turn: Turn) {
        if let Err(e) = self.try_answer(&turn).await {
            // Attempted again after the lease.
            tracing::warn!(message = %turn.message_id, error = %e, "answering a bot turn failed");
        }
    }

    async fn try_answer(&self, turn: &Turn) -> Result<(), Error> {
        let step = match self.ask(turn).await? {
            Ok(Outcome::Answered(answer, version)) => {
                match self.act(turn, &answer, version).await {
                    Ok(()) => Step::Answered(answer),
                    // A passing failure: the turn is redone after its lease.
                    Err(e @ (Error::Unavailable(_) | Error::Aborted(_))) => return Err(e),
                    // Refused for good (a reply the Channel cannot take, an unknown Contact
                    // Field): retrying would fail alike, so a human takes over.
                    Err(refused) => {
                        let words = format!("its answer could not be applied: {refused}");
                        Step::Failed {
                            note: words.clone(),
                            words,
                        }
                    }
                }
            }
            Ok(Outcome::Over(why)) => Step::Over(why),
            Ok(Outcome::NoBot) => Step::NoBot,
            Err(BotError::Unavailable(words)) if turn.attempts < ATTEMPTS => Step::Retry(words),
            Err(error) => {
                let words = error.to_string();
                Step::Failed {
                    note: format!("the bot failed: {words}"),
                    words,
                }
            }
        };
        if let Step::Failed { note, words } = &step {
            // The bot's health is committed before the note is posted, so whoever the note
            // sends to the bot finds the error there too.
            let mut conn = ism_platform::db::acquire(&self.pool).await?;
            store::bot_failed(&mut conn, turn.bot_id, words).await?;
            drop(conn);
            self.hand_over(turn, note).await?;
        }
        let mut tx = self.pool.begin().await?;
        match step {
            Step::Answered(answer) => {
                store::bot_answered(&mut tx, turn.bot_id).await?;
                match &answer.handover {
                    Some(reason) => {
                        store::end_session(
                            &mut tx,
                            turn.conversation_id,
                            SessionState::HandedOver,
                            reason,
                        )
                        .await?
                    }
                    None if answer.end => {
                        store::end_session(
                            &mut tx,
                            turn.conversation_id,
                            SessionState::Ended,
                            "ended by the bot",
                        )
                        .await?
                    }
                    None => {}
                }
                store::finish_turn(&mut tx, turn.message_id, TurnState::Done).await?;
            }
            Step::Failed { words, .. } => {
                store::end_session(
                    &mut tx,
                    turn.conversation_id,
                    SessionState::HandedOver,
                    &words,
                )
                .await?;
                store::finish_turn(&mut tx, turn.message_id, TurnState::Done).await?;
            }
            Step::Over(why) => {
                store::end_session(&mut tx, turn.conversation_id, SessionState::Ended, why).await?;
            }
            Step::NoBot => store::finish_turn(&mut tx, turn.message_id, TurnState::Skipped).await?,
            Step::Retry(words) => {
                let wait = chrono::Duration::seconds(1 << turn.attempts);
                tracing::info!(message = %turn.message_id, error = %words, "bot unavailable; retrying");
                store::retry_turn(&mut tx, turn.message_id, Utc::now() + wait).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Asks the turn's bot, once the conversation is still the bot's to answer.
    async fn ask(&self, turn: &Turn) -> Result<Result<Outcome, BotError>, Error> {
        let mut conn = ism_platform::db::acquire(&self.pool).await?;
        let Some(bot) = store::bot(&mut conn, turn.workspace_id, turn.bot_id)
            .await?
            .filter(|b| b.enabled)
        else {
            return Ok(Ok(Outcome::NoBot));
        };
        drop(conn);
        let backend: Backend = self
            .sealer
            .open(bot.id, &bot.backend)
            .map_err(|e| Error::Unexpected(anyhow::anyhow!("bot {}: {e}", bot.id)))?;
        let conversation = self
            .peers
            .conversations
            .call(
                turn.workspace_id,
                "conversation",
                cv::GetConversationRequest {
                    id: turn.conversation_id.to_string(),
                },
                |mut c, r| async move { c.get_conversation(r).await },
            )
            .await?
            .conversation
            .unwrap_or_default();
        if !conversation.assignee_user_id.is_empty() {
            return Ok(Ok(Outcome::Over("assigned to a User")));
        }
        if conversation.status == cv::ConversationStatus::Closed as i32 {
            return Ok(Ok(Outcome::Over("closed")));
        }
        let contact = self
            .peers
            .contacts
            .call(
                turn.workspace_id,
                "contact",
                ct::GetContactRequest {
                    id: turn.contact_id.to_string(),
                },
                |mut c, r| async move { c.get_contact(r).await },
            )
            .await?
            .contact
            .unwrap_or_default();
        let history = match &backend {
            Backend::OpenAi {
                history_messages, ..
            } => self.history(turn, *history_messages).await?,
            _ => vec![(Speaker::Contact, turn.text.clone())],
        };
        let query = Query {
            session: turn.conversation_id.to_string(),
            text: turn.text.clone(),
            language: Some(contact.language.clone()).filter(|l| !l.is_empty()),
            history,
        };
        let timeout = Duration::from_millis(bot.timeout_ms as u64);
        let version = contact.version;
        Ok(self
            .backends
            .ask(&backend, &query, timeout)
            .await
            .map(|answer| Outcome::Answered(answer, version)))
    }

    /// The conversation's last `count` messages, oldest first, up to the turn's own.
    async fn history(&self, turn: &Turn, count: u32) -> Result<Vec<(Speaker, String)>, Error> {
        let request = cv::ListMessagesRequest {
            conversation_id: turn.conversation_id.to_string(),
            page_size: count as i32,
            page_token: String::new(),
        };
        let page = self
            .peers
            .conversations
            .call(
                turn.workspace_id,
                "conversation",
                request,
                |mut c, r| async move { c.list_messages(r).await },
            )
            .await?;
        let mut history: Vec<(Speaker, String)> = page
            .messages
            .into_iter()
            .filter(|m| !m.internal)
            .skip_while(|m| m.id != turn.message_id.to_string())
            .filter_map(|m| {
                let speaker = if m.direction == Direction::Inbound as i32 {
                    Speaker::Contact
                } else {
                    Speaker::Business
                };
                m.content
                    .as_ref()
                    .and_then(said)
                    .map(|text| (speaker, text))
            })
            .collect();
        history.reverse();
        if history.is_empty() {
            history.push((Speaker::Contact, turn.text.clone()));
        }
        Ok(history)
    }

    /// Sends the replies, adds the Tags and Contact Field values, hands over or closes.
    async fn act(&self, turn: &Turn, answer: &Answer, version: i64) -> Result<(), Error> {
        let conversation_id = turn.conversation_id.to_string();
        for (i, content) in answer.replies.iter().enumerate() {
            let request = cv::SendMessageRequest {
                conversation_id: conversation_id.clone(),
                content: Some(content.clone()),
                client_message_id: format!("bot:{}:{i}", turn.message_id),
                snippet_id: String::new(),
            };
            self.peers
                .conversations
                .call(
                    turn.workspace_id,
                    "conversation",
                    request,
                    |mut c, r| async move { c.send_message(r).await },
                )
                .await?;
        }
        if !answer.tags.is_empty() {
            let request = ct::AddTagsRequest {
                contact_ids: vec![turn.contact_id.to_string()],
                tags: answer.tags.clone(),
            };
            self.peers
                .contacts
                .call(
                    turn.workspace_id,
                    "contact",
                    request,
                    |mut c, r| async move { c.add_tags(r).await },
                )
                .await?;
        }
        if !answer.fields.is_empty() {
            let request = ct::UpdateContactRequest {
                id: turn.contact_id.to_string(),
                version,
                custom_fields: answer
                    .fields
                    .iter()
                    .map(|(key, value)| (key.clone(), field_value(value)))
                    .collect(),
                ..Default::default()
            };
            self.peers
                .contacts
                .call(
                    turn.workspace_id,
                    "contact",
                    request,
                    |mut c, r| async move { c.update_contact(r).await },
                )
                .await?;
        }
        if let Some(reason) = &answer.handover {
            self.hand_over(turn, reason).await?;
        } else if answer.end {
            let request = cv::CloseConversationRequest {
                id: conversation_id,
                closing_category: String::new(),
                closing_summary: "Ended by the bot".into(),
            };
            self.peers
                .conversations
                .call(
                    turn.workspace_id,
                    "conversation",
                    request,
                    |mut c, r| async move { c.close_conversation(r).await },
                )
                .await?;
        }
        Ok(())
    }

    /// Leaves a note for the Users who take the conversation over.
    async fn hand_over(&self, turn: &Turn, reason: &str) -> Result<(), Error> {
        let request = cv::AddCommentRequest {
            conversation_id: turn.conversation_id.to_string(),
            body: format!("The bot handed this conversation over: {reason}"),
            mentioned_user_ids: Vec::new(),
        };
        self.peers
            .conversations
            .call(
                turn.workspace_id,
                "conversation",
                request,
                |mut c, r| async move { c.add_comment(r).await },
            )
            .await?;
        Ok(())
    }
}
