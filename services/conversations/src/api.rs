//! The ConversationService gRPC API.
use chrono::{DateTime, Utc};
use ism_platform::auth::{Caller, Role};
use ism_platform::convert::{timestamp, uuid};
use ism_platform::error::FieldError;
use ism_platform::paging;
use ism_proto::conversations::v1 as pb;
use ism_proto::conversations::v1::conversation_service_server::ConversationService;
use ism_proto::events::v1::{CommentAdded, ConversationOpened, DeliveryRequested, MessageCreated};
use ism_proto::types::v1::{Direction, MessageContent, Text, message_content::Kind};
use prost::Message as _;
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::assign;
use crate::assigner::Assigner;
use crate::clock::Clock;
use crate::error::Error;
use crate::inbox;
use crate::lifecycle::{self, Closing};
use crate::publish::emit;
use crate::report;
use crate::settings;
use crate::snippets;
use crate::store::{self, NewMessage};
use crate::view::{self, View};
use crate::wire;

pub struct Api {
    pub pool: PgPool,
    pub clock: Clock,
    pub assigner: Assigner,
}

type Cursor = (DateTime<Utc>, Uuid);

/// `user:<id>` or the token's subject: who made a change, in events.
fn actor(caller: &Caller) -> &str {
    &caller.subject
}

fn client_message_id(raw: &str) -> Result<Option<&str>, FieldError> {
    let id = Some(raw.trim()).filter(|id| !id.is_empty());
    if id.is_some_and(|id| id.len() > 128) {
        return Err(FieldError::new(
            "client_message_id",
            "must be at most 128 bytes",
        ));
    }
    Ok(id)
}

impl Api {
    /// Has the contacts service check a view's Contact Filter, so a bad one is refused
    /// when saved, naming `conditions.contact_filter`.
    async fn check_contact_filter(
        &self,
        workspace_id: Uuid,
        conditions: &pb::InboxConditions,
    ) -> Result<(), Error> {
        if let Some(filter) = &conditions.contact_filter {
            self.assigner
                .directory
                .match_contacts(workspace_id, filter, &[])
                .await?;
        }
        Ok(())
    }

    /// The snippet rendered for the conversation's Contact and the caller.
    async fn render(
        &self,
        caller: &Caller,
        workspace_id: Uuid,
        conversation_id: Uuid,
        snippet_id: Uuid,
    ) -> Result<MessageContent, Error> {
        let mut conn = self.pool.acquire().await?;
        let conversation = store::conversation(&mut conn, workspace_id, conversation_id).await?;
        let snippet = snippets::visible(&mut conn, workspace_id, &caller.subject, snippet_id)
            .await
            .map_err(|e| match e {
                Error::NotFound(_) => FieldError::new("snippet_id", "no such snippet").into(),
                other => other,
            })?;
        drop(conn);
        let variables = self
            .assigner
            .directory
            .variables(workspace_id, conversation.contact_id, &caller.subject)
            .await?;
        let body = snippets::render(&snippet.body, &variables)?;
        Ok(MessageContent {
            kind: Some(Kind::Text(Text { body })),
            ..Default::default()
        })
    }

    /// Checks a snippet's fields against the Workspace's Contact Fields.
    async fn check_snippet(
        &self,
        workspace_id: Uuid,
        shortcut: &str,
        title: &str,
        body: &str,
    ) -> Result<(), Error> {
        let keys = self.assigner.directory.field_keys(workspace_id).await?;
        Ok(snippets::validate(shortcut, title, body, &keys)?)
    }

    async fn open_from_workspace(
        &self,
        tx: &mut sqlx::PgConnection,
        closed: &store::Conversation,
        sender: &str,
        sender_id: &str,
        now: DateTime<Utc>,
    ) -> Result<store::Conversation, Error> {
        let settings = settings::load(tx, closed.workspace_id).await?;
        if !settings.reply_to_closed {
            return Err(Error::precondition(
                "conversation_id",
                "the conversation is closed and this Workspace does not reopen closed conversations with a reply",
            ));
        }
        let opened = store::open_from_workspace(tx, closed, sender, sender_id, now).await?;
        let event = ConversationOpened {
            conversation_id: opened.id.to_string(),
            contact_id: opened.contact_id.to_string(),
            channel_id: opened.channel_id.to_string(),
            opened_by: sender.to_owned(),
            opened_by_id: sender_id.to_owned(),
        };
        emit(
            tx,
            "conversations.conversation.opened",
            opened.workspace_id,
            opened.id,
            &event,
        )
        .await?;
        Ok(opened)
    }

    async fn send(
        &self,
        caller: &Caller,
        workspace_id: Uuid,
        request: pb::SendMessageRequest,
    ) -> Result<pb::Message, Error> {
        let conversation_id = uuid("conversation_id", &request.conversation_id)?;
        let client_message_id = client_message_id(&request.client_message_id)?;
        let (sender, sender_id) = wire::author(caller);
        let content = match wire::optional_uuid(&request.snippet_id, "snippet_id")? {
            None => request.content,
            Some(_) if request.content.is_some() => {
                return Err(
                    FieldError::new("content", "give content or snippet_id, not both").into(),
                );
            }
            Some(snippet_id) => Some(
                self.render(caller, workspace_id, conversation_id, snippet_id)
                    .await?,
            ),
        };
        let now = self.clock.now();

        let mut tx = self.pool.begin().await?;
        let mut conversation =
            store::lock_conversation(&mut tx, workspace_id, conversation_id).await?;
        let content = wire::outbound_content(content.as_ref(), conversation.channel_type)?;
        if let Some(id) = client_message_id
            && let Some(existing) = store::message_by_client_id(&mut tx, workspace_id, id).await?
        {
            return Ok(wire::message(existing));
        }
        if conversation.status == "closed" {
            conversation = self
                .open_from_workspace(&mut tx, &conversation, sender, &sender_id, now)
                .await?;
        }
        let new = NewMessage {
            workspace_id,
            conversation_id: conversation.id,
            channel_id: conversation.channel_id,
            direction: "outbound",
            content: content.encode_to_vec(),
            status: "pending",
            external_message_id: "",
            client_message_id,
            sent_at: now,
            sender,
            sender_id: &sender_id,
            mentions: &[],
        };
        let message = store::insert_message(&mut tx, &new)
            .await?
            .ok_or(Error::Aborted(
                "a concurrent send with the same client_message_id won; retry to read it".into(),
            ))?;
        store::record_message(&mut tx, conversation.id, sender, now, now).await?;
        let created = MessageCreated {
            message_id: message.id.to_string(),
            conversation_id: conversation.id.to_string(),
            contact_id: conversation.contact_id.to_string(),
            channel_id: conversation.channel_id.to_string(),
            direction: Direction::Outbound as i32,
            content: Some(content.clone()),
            sent_at: Some(timestamp(now)),
            sender: sender.to_owned(),
            sender_id: sender_id.clone(),
        };
        let delivery = DeliveryRequested {
            message_id: message.id.to_string(),
            channel_id: conversation.channel_id.to_string(),
            recipient_external_id: conversation.contact_external_id.clone(),
            content: Some(content),
            requested_by: crate::SERVICE.to_owned(),
        };
        emit(
            &mut tx,
            "conversations.message.created",
            workspace_id,
            conversation.id,
            &created,
        )
        .await?;
        emit(
            &mut tx,
            "conversations.delivery.requested",
            workspace_id,
            conversation.id,
            &delivery,
        )
        .await?;
        tx.commit().await?;
        Ok(wire::message(message))
    }
}

fn respond<T>(result: Result<T, Error>) -> Result<Response<T>, Status> {
    result.map(Response::new).map_err(Status::from)
}

#[tonic::async_trait]
impl ConversationService for Api {
    #[tracing::instrument(skip_all, err)]
    async fn list_conversations(
        &self,
        request: Request<pb::ListConversationsRequest>,
    ) -> Result<Response<pb::ListConversationsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let workspace_id = caller.workspace_id()?;
        let request = request.into_inner();
        respond(
            async {
                let limit = paging::page_size(request.page_size)?;
                let before: Option<Cursor> = paging::decode_token(&request.page_token)?;
                let rows =
                    store::list_conversations(&self.pool, workspace_id, before, limit + 1).await?;
                let (rows, next_page_token) =
                    paging::finish(rows, limit, |c| (c.last_message_at, c.id));
                Ok(pb::ListConversationsResponse {
                    conversations: rows.into_iter().map(wire::conversation).collect(),
                    next_page_token,
                })
            }
            .await,
        )
    }

    #[tracing::instrument(skip_all, err)]
    async fn get_conversation(
        &self,
        request: Request<pb::GetConversationRequest>,
    ) -> Result<Response<pb::GetConversationResponse>, Status> {
        let caller = Caller::of(&request)?;
        let workspace_id = caller.workspace_id()?;
        respond(
            async {
                let id = uuid("id", &request.get_ref().id)?;
                let mut conn = self.pool.acquire().await?;
                let conversation = store::conversation(&mut conn, workspace_id, id).await?;
                Ok(pb::GetConversationResponse {
                    conversation: Some(wire::conversation(conversation)),
                })
            }
            .await,
        )
    }

    #[tracing::instrument(skip_all, err)]
    async fn list_messages(
        &self,
        request: Request<pb::ListMessagesRequest>,
    ) -> Result<Response<pb::ListMessagesResponse>, Status> {
        let caller = Caller::of(&request)?;
        let workspace_id = caller.workspace_id()?;
        let request = request.into_inner();
        respond(
            async {
                let conversation_id = uuid("conversation_id", &request.conversation_id)?;
                let limit = paging::page_size(request.page_size)?;
                let before: Option<Cursor> = paging::decode_token(&request.page_token)?;
                let mut conn = self.pool.acquire().await?;
                store::conversation(&mut conn, workspace_id, conversation_id).await?;
                drop(conn);
                let rows = store::list_messages(
                    &self.pool,
                    workspace_id,
                    conversation_id,
                    before,
                    limit + 1,
                )
                .await?;
                let (rows, next_page_token) = paging::finish(rows, limit, |m| (m.sent_at, m.id));
                Ok(pb::ListMessagesResponse {
                    messages: rows.into_iter().map(wire::message).collect(),
                    next_page_token,
                })
            }
            .await,
        )
    }

    #[tracing::instrument(skip_all, err)]
    async fn send_message(
        &self,
        request: Request<pb::SendMessageRequest>,
    ) -> Result<Response<pb::SendMessageResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Agent)?;
        let workspace_id = caller.workspace_id()?;
        let message = self
            .send(&caller, workspace_id, request.into_inner())
            .await?;
        Ok(Response::new(pb::SendMessageResponse {
            message: Some(message),
        }))
    }

    #[tracing::instrument(skip_all, err)]
    async fn get_message(
        &self,
        request: Request<pb::GetMessageRequest>,
    ) -> Result<Response<pb::GetMessageResponse>, Status> {
        let caller = Caller::of(&request)?;
        let workspace_id = caller.workspace_id()?;
        respond(
            async {
                let id = uuid("id", &request.get_ref().id)?;
                let message = store::message(&self.pool, workspace_id, id).await?;
                Ok(pb::GetMessageResponse {
                    message: Some(wire::message(message)),
                })
            }
            .await,
        )
    }

    #[tracing::instrument(skip_all, err)]
    async fn add_comment(
        &self,
        request: Request<pb::AddCommentRequest>,
    ) -> Result<Response<pb::AddCommentResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Agent)?;
        let workspace_id = caller.workspace_id()?;
        let request = request.into_inner();
        respond(
            async {
                let conversation_id = uuid("conversation_id", &request.conversation_id)?;
                let body = request.body.trim();
                if body.is_empty() || body.len() > wire::MAX_COMMENT {
                    return Err(FieldError::new(
                        "body",
                        format!("must have 1 to {} bytes", wire::MAX_COMMENT),
                    )
                    .into());
                }
                let mut mentions = Vec::with_capacity(request.mentioned_user_ids.len());
                for id in &request.mentioned_user_ids {
                    let id = uuid("mentioned_user_ids", id)?;
                    if !mentions.contains(&id) {
                        mentions.push(id);
                    }
                }
                if mentions.len() > 50 {
                    return Err(FieldError::new("mentioned_user_ids", "at most 50 Users").into());
                }
                for &id in &mentions {
                    self.assigner
                        .directory
                        .user(workspace_id, id, "mentioned_user_ids")
                        .await?;
                }
                let (sender, sender_id) = wire::author(&caller);
                let now = self.clock.now();
                let content = MessageContent {
                    kind: Some(Kind::Text(Text {
                        body: body.to_owned(),
                    })),
                    ..Default::default()
                };
                let mut tx = self.pool.begin().await?;
                let conversation =
                    store::lock_conversation(&mut tx, workspace_id, conversation_id).await?;
                let new = NewMessage {
                    workspace_id,
                    conversation_id,
                    channel_id: conversation.channel_id,
                    direction: "internal",
                    content: content.encode_to_vec(),
                    status: "none",
                    external_message_id: "",
                    client_message_id: None,
                    sent_at: now,
                    sender,
                    sender_id: &sender_id,
                    mentions: &mentions,
                };
                let message = store::insert_message(&mut tx, &new)
                    .await?
                    .ok_or(Error::Aborted("the comment collided; retry".into()))?;
                let added = CommentAdded {
                    message_id: message.id.to_string(),
                    conversation_id: conversation_id.to_string(),
                    author_id: sender_id.clone(),
                    body: body.to_owned(),
                    mentioned_user_ids: mentions.iter().map(Uuid::to_string).collect(),
                };
                emit(
                    &mut tx,
                    "conversations.comment.added",
                    workspace_id,
                    conversation_id,
                    &added,
                )
                .await?;
                tx.commit().await?;
                Ok(pb::AddCommentResponse {
                    message: Some(wire::message(message)),
                })
            }
            .await,
        )
    }

    #[tracing::instrument(skip_all, err)]
    async fn snooze_conversation(
        &self,
        request: Request<pb::SnoozeConversationRequest>,
    ) -> Result<Response<pb::SnoozeConversationResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Agent)?;
        let workspace_id = caller.workspace_id()?;
        let request = request.into_inner();
        respond(
            async {
                let id = uuid("id", &request.id)?;
                let until = wire::required_time(request.until.as_ref(), "until")?;
                let mut tx = self.pool.begin().await?;
                let conversation =
                    lifecycle::snooze(&mut tx, workspace_id, id, until, self.clock.now()).await?;
                tx.commit().await?;
                Ok(pb::SnoozeConversationResponse {
                    conversation: Some(wire::conversation(conversation)),
                })
            }
            .await,
        )
    }

    #[tracing::instrument(skip_all, err)]
    async fn wake_conversation(
        &self,
        request: Request<pb::WakeConversationRequest>,
    ) -> Result<Response<pb::WakeConversationResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Agent)?;
        let workspace_id = caller.workspace_id()?;
        respond(
            async {
                let id = uuid("id", &request.get_ref().id)?;
                let mut tx = self.pool.begin().await?;
                let conversation = lifecycle::wake(&mut tx, workspace_id, id, "user").await?;
                tx.commit().await?;
                self.assigner
                    .best_effort(
                        "reassign woken",
                        self.assigner.auto_assign(workspace_id, id),
                    )
                    .await;
                let mut conn = self.pool.acquire().await?;
                let conversation =
                    store::conversation(&mut conn, workspace_id, conversation.id).await?;
                Ok(pb::WakeConversationResponse {
                    conversation: Some(wire::conversation(conversation)),
                })
            }
            .await,
        )
    }

    #[tracing::instrument(skip_all, err)]
    async fn close_conversation(
        &self,
        request: Request<pb::CloseConversationRequest>,
    ) -> Result<Response<pb::CloseConversationResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Agent)?;
        let workspace_id = caller.workspace_id()?;
        let request = request.into_inner();
        respond(
            async {
                let id = uuid("id", &request.id)?;
                let mut tx = self.pool.begin().await?;
                let settings = settings::load(&mut tx, workspace_id).await?;
                let (category, summary) =
                    settings.closing_note(&request.closing_category, &request.closing_summary)?;
                let closing = Closing {
                    closed_by: actor(&caller),
                    category: &category,
                    summary: &summary,
                    at: self.clock.now(),
                };
                let conversation = lifecycle::close(&mut tx, workspace_id, id, &closing).await?;
                tx.commit().await?;
                if conversation.assignee_user_id.is_some() {
                    let drained =
                        async { self.assigner.drain_backlog(workspace_id).await.map(|_| ()) };
                    self.assigner
                        .best_effort("hand out the backlog", drained)
                        .await;
                }
                Ok(pb::CloseConversationResponse {
                    conversation: Some(wire::conversation(conversation)),
                })
            }
            .await,
        )
    }

    #[tracing::instrument(skip_all, err)]
    async fn assign_conversation(
        &self,
        request: Request<pb::AssignConversationRequest>,
    ) -> Result<Response<pb::AssignConversationResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Agent)?;
        let workspace_id = caller.workspace_id()?;
        let request = request.into_inner();
        respond(
            async {
                let id = uuid("id", &request.id)?;
                let user_id = wire::optional_uuid(&request.user_id, "user_id")?;
                let team_id = wire::optional_uuid(&request.team_id, "team_id")?;
                if user_id.is_none() && team_id.is_none() {
                    return Err(FieldError::new("user_id", "name a User, a Team or both").into());
                }
                let mut conn = self.pool.acquire().await?;
                store::conversation(&mut conn, workspace_id, id).await?;
                drop(conn);
                if let Some(user_id) = user_id {
                    self.assigner
                        .directory
                        .user(workspace_id, user_id, "user_id")
                        .await?;
                }
                if let Some(team_id) = team_id {
                    self.assigner
                        .directory
                        .candidates(workspace_id, Some(team_id), "team_id")
                        .await?;
                }
                let mut tx = self.pool.begin().await?;
                let current = store::lock_conversation(&mut tx, workspace_id, id).await?;
                if current.status == "closed" {
                    return Err(Error::precondition(
                        "id",
                        "a closed conversation is not assigned",
                    ));
                }
                let conversation =
                    assign::assign(&mut tx, &current, user_id, team_id, actor(&caller)).await?;
                tx.commit().await?;
                Ok(pb::AssignConversationResponse {
                    conversation: Some(wire::conversation(conversation)),
                })
            }
            .await,
        )
    }

    #[tracing::instrument(skip_all, err)]
    async fn unassign_conversation(
        &self,
        request: Request<pb::UnassignConversationRequest>,
    ) -> Result<Response<pb::UnassignConversationResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Agent)?;
        let workspace_id = caller.workspace_id()?;
        respond(
            async {
                let id = uuid("id", &request.get_ref().id)?;
                let mut tx = self.pool.begin().await?;
                let current = store::lock_conversation(&mut tx, workspace_id, id).await?;
                let conversation = assign::unassign(&mut tx, &current).await?;
                tx.commit().await?;
                Ok(pb::UnassignConversationResponse {
                    conversation: Some(wire::conversation(conversation)),
                })
            }
            .await,
        )
    }

    #[tracing::instrument(skip_all, err)]
    async fn assign_next(
        &self,
        request: Request<pb::AssignNextRequest>,
    ) -> Result<Response<pb::AssignNextResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Agent)?;
        let workspace_id = caller.workspace_id()?;
        let request = request.into_inner();
        respond(
            async {
                let id = uuid("conversation_id", &request.conversation_id)?;
                let rules =
                    wire::rules(request.rules.as_ref(), "rules.team_id")?.ok_or_else(|| {
                        FieldError::new("rules.strategy", "choose round-robin or least open")
                    })?;
                let (conversation, assigned) = self
                    .assigner
                    .assign_next(workspace_id, id, &rules, actor(&caller))
                    .await?;
                Ok(pb::AssignNextResponse {
                    conversation: Some(wire::conversation(conversation)),
                    assigned,
                })
            }
            .await,
        )
    }

    #[tracing::instrument(skip_all, err)]
    async fn get_conversation_settings(
        &self,
        request: Request<pb::GetConversationSettingsRequest>,
    ) -> Result<Response<pb::GetConversationSettingsResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Manager)?;
        let workspace_id = caller.workspace_id()?;
        respond(
            async {
                let mut conn = self.pool.acquire().await?;
                let settings = settings::load(&mut conn, workspace_id).await?;
                Ok(pb::GetConversationSettingsResponse {
                    settings: Some(wire::settings_to_pb(settings)),
                })
            }
            .await,
        )
    }

    #[tracing::instrument(skip_all, err)]
    async fn update_conversation_settings(
        &self,
        request: Request<pb::UpdateConversationSettingsRequest>,
    ) -> Result<Response<pb::UpdateConversationSettingsResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Manager)?;
        let workspace_id = caller.workspace_id()?;
        let request = request.into_inner();
        respond(
            async {
                let submitted = request
                    .settings
                    .ok_or_else(|| FieldError::new("settings", "is required"))?;
                let settings = wire::settings_from_pb(submitted)?;
                if let Some(team_id) = settings.auto_assign_team_id {
                    self.assigner
                        .directory
                        .candidates(workspace_id, Some(team_id), "settings.auto_assign.team_id")
                        .await?;
                }
                let mut conn = self.pool.acquire().await?;
                settings::save(&mut conn, workspace_id, &settings).await?;
                Ok(pb::UpdateConversationSettingsResponse {
                    settings: Some(wire::settings_to_pb(settings)),
                })
            }
            .await,
        )
    }

    #[tracing::instrument(skip_all, err)]
    async fn get_report(
        &self,
        request: Request<pb::GetReportRequest>,
    ) -> Result<Response<pb::GetReportResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Manager)?;
        let workspace_id = caller.workspace_id()?;
        let request = request.into_inner();
        respond(
            async {
                let from = wire::required_time(request.from.as_ref(), "from")?;
                let to = wire::required_time(request.to.as_ref(), "to")?;
                if to <= from || to - from > chrono::TimeDelta::days(366) {
                    return Err(
                        FieldError::new("to", "must be after `from`, within 366 days").into(),
                    );
                }
                let grouping = report::Grouping::try_from(request.group_by)?;
                let rows = report::report(&self.pool, workspace_id, from, to, grouping).await?;
                Ok(pb::GetReportResponse { rows })
            }
            .await,
        )
    }

    #[tracing::instrument(skip_all, err)]
    async fn create_snippet(
        &self,
        request: Request<pb::CreateSnippetRequest>,
    ) -> Result<Response<pb::CreateSnippetResponse>, Status> {
        let caller = Caller::of(&request)?;
        let request = request.into_inner();
        caller.require(if request.personal {
            Role::Agent
        } else {
            Role::Manager
        })?;
        let workspace_id = caller.workspace_id()?;
        respond(
            async {
                let (shortcut, title) = (request.shortcut.trim(), request.title.trim());
                self.check_snippet(workspace_id, shortcut, title, &request.body)
                    .await?;
                let new = snippets::NewSnippet {
                    workspace_id,
                    owner: request.personal.then_some(caller.subject.as_str()),
                    shortcut,
                    title,
                    body: &request.body,
                };
                let mut conn = self.pool.acquire().await?;
                let snippet = snippets::create(&mut conn, &new).await?;
                Ok(pb::CreateSnippetResponse {
                    snippet: Some(wire::snippet(snippet)),
                })
            }
            .await,
        )
    }

    #[tracing::instrument(skip_all, err)]
    async fn list_snippets(
        &self,
        request: Request<pb::ListSnippetsRequest>,
    ) -> Result<Response<pb::ListSnippetsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let workspace_id = caller.workspace_id()?;
        let request = request.into_inner();
        respond(
            async {
                let limit = paging::page_size(request.page_size)?;
                let after: Option<(String, Uuid)> = paging::decode_token(&request.page_token)?;
                let rows = snippets::search(
                    &self.pool,
                    workspace_id,
                    &caller.subject,
                    request.shortcut_prefix.trim(),
                    after,
                    limit + 1,
                )
                .await?;
                let (rows, next_page_token) =
                    paging::finish(rows, limit, |s| (s.shortcut.to_lowercase(), s.id));
                Ok(pb::ListSnippetsResponse {
                    snippets: rows.into_iter().map(wire::snippet).collect(),
                    next_page_token,
                })
            }
            .await,
        )
    }

    #[tracing::instrument(skip_all, err)]
    async fn update_snippet(
        &self,
        request: Request<pb::UpdateSnippetRequest>,
    ) -> Result<Response<pb::UpdateSnippetResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Agent)?;
        let workspace_id = caller.workspace_id()?;
        let request = request.into_inner();
        let id = uuid("id", &request.id).map_err(Error::from)?;
        let mut conn = self.pool.acquire().await.map_err(Error::from)?;
        let current = snippets::visible(&mut conn, workspace_id, &caller.subject, id).await?;
        if current.owner.is_none() {
            caller.require(Role::Manager)?;
        }
        respond(
            async {
                let (shortcut, title) = (request.shortcut.trim(), request.title.trim());
                self.check_snippet(workspace_id, shortcut, title, &request.body)
                    .await?;
                let snippet =
                    snippets::update(&mut conn, id, shortcut, title, &request.body).await?;
                Ok(pb::UpdateSnippetResponse {
                    snippet: Some(wire::snippet(snippet)),
                })
            }
            .await,
        )
    }

    #[tracing::instrument(skip_all, err)]
    async fn delete_snippet(
        &self,
        request: Request<pb::DeleteSnippetRequest>,
    ) -> Result<Response<pb::DeleteSnippetResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Agent)?;
        let workspace_id = caller.workspace_id()?;
        let id = uuid("id", &request.get_ref().id).map_err(Error::from)?;
        let mut conn = self.pool.acquire().await.map_err(Error::from)?;
        let current = snippets::visible(&mut conn, workspace_id, &caller.subject, id).await?;
        if current.owner.is_none() {
            caller.require(Role::Manager)?;
        }
        snippets::delete(&mut conn, id).await?;
        Ok(Response::new(pb::DeleteSnippetResponse {}))
    }

    #[tracing::instrument(skip_all, err)]
    async fn create_inbox(
        &self,
        request: Request<pb::CreateInboxRequest>,
    ) -> Result<Response<pb::CreateInboxResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Manager)?;
        let workspace_id = caller.workspace_id()?;
        let request = request.into_inner();
        respond(
            async {
                let (name, conditions) = wire::inbox_input(&request.name, request.conditions)?;
                self.check_contact_filter(workspace_id, &conditions).await?;
                let mut conn = self.pool.acquire().await?;
                let created = inbox::create(&mut conn, workspace_id, name, &conditions).await?;
                Ok(pb::CreateInboxResponse {
                    inbox: Some(wire::inbox(created)),
                })
            }
            .await,
        )
    }

    #[tracing::instrument(skip_all, err)]
    async fn list_inboxes(
        &self,
        request: Request<pb::ListInboxesRequest>,
    ) -> Result<Response<pb::ListInboxesResponse>, Status> {
        let caller = Caller::of(&request)?;
        let workspace_id = caller.workspace_id()?;
        let request = request.into_inner();
        respond(
            async {
                let limit = paging::page_size(request.page_size)?;
                let after: Option<(String, Uuid)> = paging::decode_token(&request.page_token)?;
                let rows = inbox::list(&self.pool, workspace_id, after, limit + 1).await?;
                let (rows, next_page_token) =
                    paging::finish(rows, limit, |i| (i.name.to_lowercase(), i.id));
                Ok(pb::ListInboxesResponse {
                    inboxes: rows.into_iter().map(wire::inbox).collect(),
                    next_page_token,
                })
            }
            .await,
        )
    }

    #[tracing::instrument(skip_all, err)]
    async fn update_inbox(
        &self,
        request: Request<pb::UpdateInboxRequest>,
    ) -> Result<Response<pb::UpdateInboxResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Manager)?;
        let workspace_id = caller.workspace_id()?;
        let request = request.into_inner();
        respond(
            async {
                let id = uuid("id", &request.id)?;
                let (name, conditions) = wire::inbox_input(&request.name, request.conditions)?;
                self.check_contact_filter(workspace_id, &conditions).await?;
                let mut conn = self.pool.acquire().await?;
                let updated = inbox::update(&mut conn, workspace_id, id, name, &conditions).await?;
                Ok(pb::UpdateInboxResponse {
                    inbox: Some(wire::inbox(updated)),
                })
            }
            .await,
        )
    }

    #[tracing::instrument(skip_all, err)]
    async fn delete_inbox(
        &self,
        request: Request<pb::DeleteInboxRequest>,
    ) -> Result<Response<pb::DeleteInboxResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Manager)?;
        let workspace_id = caller.workspace_id()?;
        respond(
            async {
                let id = uuid("id", &request.get_ref().id)?;
                let mut conn = self.pool.acquire().await?;
                inbox::delete(&mut conn, workspace_id, id).await?;
                Ok(pb::DeleteInboxResponse {})
            }
            .await,
        )
    }

    #[tracing::instrument(skip_all, err)]
    async fn list_inbox_conversations(
        &self,
        request: Request<pb::ListInboxConversationsRequest>,
    ) -> Result<Response<pb::ListInboxConversationsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let workspace_id = caller.workspace_id()?;
        let request = request.into_inner();
        let me = caller
            .subject
            .strip_prefix("user:")
            .and_then(|id| id.parse().ok());
        respond(
            async {
                let limit = paging::page_size(request.page_size)?;
                let before: Option<Cursor> = paging::decode_token(&request.page_token)?;
                let view = match wire::optional_uuid(&request.inbox_id, "inbox_id")? {
                    Some(id) => {
                        let mut conn = self.pool.acquire().await?;
                        let conditions =
                            inbox::get(&mut conn, workspace_id, id).await?.conditions();
                        View {
                            conversations: inbox::filter(&conditions, me, self.clock.now()),
                            contacts: conditions.contact_filter,
                        }
                    }
                    None => View {
                        conversations: wire::built_in(request.built_in, &request.team_id, me)?,
                        contacts: None,
                    },
                };
                let directory = &self.assigner.directory;
                let (rows, total) = tokio::try_join!(
                    view::page(
                        &self.pool,
                        directory,
                        workspace_id,
                        &view,
                        before,
                        limit + 1
                    ),
                    view::count(&self.pool, directory, workspace_id, &view),
                )?;
                let (rows, next_page_token) =
                    paging::finish(rows, limit, |c| (c.last_message_at, c.id));
                Ok(pb::ListInboxConversationsResponse {
                    conversations: rows.into_iter().map(wire::conversation).collect(),
                    next_page_token,
                    total,
                })
            }
            .await,
        )
    }
}
