//! The ConversationService gRPC API.
use chrono::{DateTime, Utc};
use ism_platform::auth::{Caller, Role};
use ism_platform::convert::uuid;
use ism_platform::db;
use ism_platform::error::FieldError;
use ism_platform::paging;
use ism_proto::conversations::v1 as pb;
use ism_proto::conversations::v1::conversation_service_server::ConversationService;
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::assigner::Assigner;
use crate::clock::Clock;
use crate::error::Error;
use crate::handling::Handling;
use crate::inbox;
use crate::messages::Messages;
use crate::report;
use crate::settings;
use crate::snippets;
use crate::store;
use crate::view::{self, View};
use crate::wire;

pub struct Api {
    pub pool: PgPool,
    pub clock: Clock,
    pub assigner: Assigner,
}

type Cursor = (DateTime<Utc>, Uuid);

impl Api {
    /// The use cases of messages the Workspace writes, with this server's dependencies.
    fn messages(&self) -> Messages<'_> {
        Messages {
            pool: &self.pool,
            clock: self.clock,
            directory: &self.assigner.directory,
        }
    }

    /// The handling use cases (snooze, wake, close, assign), with this server's
    /// dependencies.
    fn handling(&self) -> Handling<'_> {
        Handling {
            pool: &self.pool,
            clock: self.clock,
            assigner: &self.assigner,
        }
    }

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
}

#[tonic::async_trait]
impl ConversationService for Api {
    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn list_conversations(
        &self,
        request: Request<pb::ListConversationsRequest>,
    ) -> Result<Response<pb::ListConversationsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let workspace_id = caller.workspace_id()?;
        let request = request.into_inner();
        let limit = paging::page_size(request.page_size)?;
        let before: Option<Cursor> = paging::decode_token(&request.page_token)?;
        let rows = if request.contact_id.is_empty() {
            store::list_conversations(&self.pool, workspace_id, before, limit + 1).await?
        } else {
            let contact_id = uuid("contact_id", &request.contact_id)?;
            store::contact_conversations(&self.pool, workspace_id, contact_id, before, limit + 1)
                .await?
        };
        let (rows, next_page_token) = paging::finish(rows, limit, |c| (c.last_message_at, c.id));
        Ok(Response::new(pb::ListConversationsResponse {
            conversations: rows.into_iter().map(wire::conversation).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn get_conversation(
        &self,
        request: Request<pb::GetConversationRequest>,
    ) -> Result<Response<pb::GetConversationResponse>, Status> {
        let caller = Caller::of(&request)?;
        let workspace_id = caller.workspace_id()?;
        let id = uuid("id", &request.get_ref().id)?;
        let mut conn = db::acquire(&self.pool).await?;
        let conversation = store::conversation(&mut conn, workspace_id, id).await?;
        Ok(Response::new(pb::GetConversationResponse {
            conversation: Some(wire::conversation(conversation)),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn list_messages(
        &self,
        request: Request<pb::ListMessagesRequest>,
    ) -> Result<Response<pb::ListMessagesResponse>, Status> {
        let caller = Caller::of(&request)?;
        let workspace_id = caller.workspace_id()?;
        let request = request.into_inner();
        let conversation_id = uuid("conversation_id", &request.conversation_id)?;
        let limit = paging::page_size(request.page_size)?;
        let before: Option<Cursor> = paging::decode_token(&request.page_token)?;
        let mut conn = db::acquire(&self.pool).await?;
        store::conversation(&mut conn, workspace_id, conversation_id).await?;
        drop(conn);
        let rows =
            store::list_messages(&self.pool, workspace_id, conversation_id, before, limit + 1)
                .await?;
        let (rows, next_page_token) = paging::finish(rows, limit, |m| (m.sent_at, m.id));
        Ok(Response::new(pb::ListMessagesResponse {
            messages: rows.into_iter().map(wire::message).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn send_message(
        &self,
        request: Request<pb::SendMessageRequest>,
    ) -> Result<Response<pb::SendMessageResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Agent)?;
        let workspace_id = caller.workspace_id()?;
        let message = self
            .messages()
            .send(&caller, workspace_id, request.into_inner())
            .await?;
        Ok(Response::new(pb::SendMessageResponse {
            message: Some(wire::message(message)),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn get_message(
        &self,
        request: Request<pb::GetMessageRequest>,
    ) -> Result<Response<pb::GetMessageResponse>, Status> {
        let caller = Caller::of(&request)?;
        let workspace_id = caller.workspace_id()?;
        let id = uuid("id", &request.get_ref().id)?;
        let message = store::message(&self.pool, workspace_id, id).await?;
        Ok(Response::new(pb::GetMessageResponse {
            message: Some(wire::message(message)),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn add_comment(
        &self,
        request: Request<pb::AddCommentRequest>,
    ) -> Result<Response<pb::AddCommentResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Agent)?;
        let workspace_id = caller.workspace_id()?;
        let request = request.into_inner();
        let message = self
            .messages()
            .comment(&caller, workspace_id, &request)
            .await?;
        Ok(Response::new(pb::AddCommentResponse {
            message: Some(wire::message(message)),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn snooze_conversation(
        &self,
        request: Request<pb::SnoozeConversationRequest>,
    ) -> Result<Response<pb::SnoozeConversationResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Agent)?;
        let workspace_id = caller.workspace_id()?;
        let request = request.into_inner();
        let id = uuid("id", &request.id)?;
        let until = wire::required_time(request.until.as_ref(), "until")?;
        let conversation = self.handling().snooze(workspace_id, id, until).await?;
        Ok(Response::new(pb::SnoozeConversationResponse {
            conversation: Some(wire::conversation(conversation)),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn wake_conversation(
        &self,
        request: Request<pb::WakeConversationRequest>,
    ) -> Result<Response<pb::WakeConversationResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Agent)?;
        let workspace_id = caller.workspace_id()?;
        let id = uuid("id", &request.get_ref().id)?;
        let conversation = self.handling().wake(workspace_id, id).await?;
        Ok(Response::new(pb::WakeConversationResponse {
            conversation: Some(wire::conversation(conversation)),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn close_conversation(
        &self,
        request: Request<pb::CloseConversationRequest>,
    ) -> Result<Response<pb::CloseConversationResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Agent)?;
        let workspace_id = caller.workspace_id()?;
        let request = request.into_inner();
        let id = uuid("id", &request.id)?;
        let conversation = self
            .handling()
            .close(
                workspace_id,
                id,
                caller.actor(),
                &request.closing_category,
                &request.closing_summary,
            )
            .await?;
        Ok(Response::new(pb::CloseConversationResponse {
            conversation: Some(wire::conversation(conversation)),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn open_conversation(
        &self,
        request: Request<pb::OpenConversationRequest>,
    ) -> Result<Response<pb::OpenConversationResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Agent)?;
        let workspace_id = caller.workspace_id()?;
        let id = uuid("id", &request.get_ref().id)?;
        let (conversation, opened) = self.handling().open(&caller, workspace_id, id).await?;
        Ok(Response::new(pb::OpenConversationResponse {
            conversation: Some(wire::conversation(conversation)),
            opened,
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn assign_conversation(
        &self,
        request: Request<pb::AssignConversationRequest>,
    ) -> Result<Response<pb::AssignConversationResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Agent)?;
        let workspace_id = caller.workspace_id()?;
        let request = request.into_inner();
        let id = uuid("id", &request.id)?;
        let user_id = wire::optional_uuid(&request.user_id, "user_id")?;
        let team_id = wire::optional_uuid(&request.team_id, "team_id")?;
        if user_id.is_none() && team_id.is_none() {
            return Err(FieldError::new("user_id", "name a User, a Team or both").into());
        }
        let conversation = self
            .handling()
            .assign(workspace_id, id, user_id, team_id, caller.actor())
            .await?;
        Ok(Response::new(pb::AssignConversationResponse {
            conversation: Some(wire::conversation(conversation)),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn unassign_conversation(
        &self,
        request: Request<pb::UnassignConversationRequest>,
    ) -> Result<Response<pb::UnassignConversationResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Agent)?;
        let workspace_id = caller.workspace_id()?;
        let id = uuid("id", &request.get_ref().id)?;
        let conversation = self.handling().unassign(workspace_id, id).await?;
        Ok(Response::new(pb::UnassignConversationResponse {
            conversation: Some(wire::conversation(conversation)),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn assign_next(
        &self,
        request: Request<pb::AssignNextRequest>,
    ) -> Result<Response<pb::AssignNextResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Agent)?;
        let workspace_id = caller.workspace_id()?;
        let request = request.into_inner();
        let id = uuid("conversation_id", &request.conversation_id)?;
        let rules = wire::rules(request.rules.as_ref(), "rules.team_id")?
            .ok_or_else(|| FieldError::new("rules.strategy", "choose round-robin or least open"))?;
        let (conversation, assigned) = self
            .assigner
            .assign_next(workspace_id, id, &rules, caller.actor())
            .await?;
        Ok(Response::new(pb::AssignNextResponse {
            conversation: Some(wire::conversation(conversation)),
            assigned,
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn get_conversation_settings(
        &self,
        request: Request<pb::GetConversationSettingsRequest>,
    ) -> Result<Response<pb::GetConversationSettingsResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Manager)?;
        let workspace_id = caller.workspace_id()?;
        let mut conn = db::acquire(&self.pool).await?;
        let settings = settings::load(&mut conn, workspace_id).await?;
        Ok(Response::new(pb::GetConversationSettingsResponse {
            settings: Some(wire::settings_to_pb(settings)),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn update_conversation_settings(
        &self,
        request: Request<pb::UpdateConversationSettingsRequest>,
    ) -> Result<Response<pb::UpdateConversationSettingsResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Manager)?;
        let workspace_id = caller.workspace_id()?;
        let request = request.into_inner();
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
        let mut conn = db::acquire(&self.pool).await?;
        settings::save(&mut conn, workspace_id, &settings).await?;
        Ok(Response::new(pb::UpdateConversationSettingsResponse {
            settings: Some(wire::settings_to_pb(settings)),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn get_report(
        &self,
        request: Request<pb::GetReportRequest>,
    ) -> Result<Response<pb::GetReportResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Manager)?;
        let workspace_id = caller.workspace_id()?;
        let request = request.into_inner();
        let from = wire::required_time(request.from.as_ref(), "from")?;
        let to = wire::required_time(request.to.as_ref(), "to")?;
        if to <= from || to - from > chrono::TimeDelta::days(366) {
            return Err(FieldError::new("to", "must be after `from`, within 366 days").into());
        }
        let grouping = report::Grouping::try_from(request.group_by)?;
        let rows = report::report(&self.pool, workspace_id, from, to, grouping).await?;
        Ok(Response::new(pb::GetReportResponse { rows }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
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
        let (shortcut, title) = (request.shortcut.trim(), request.title.trim());
        self.check_snippet(workspace_id, shortcut, title, &request.body)
            .await?;
        let new = snippets::NewSnippet {
            workspace_id,
            owner: request.personal.then_some(caller.actor()),
            shortcut,
            title,
            body: &request.body,
        };
        let mut conn = db::acquire(&self.pool).await?;
        let snippet = snippets::create(&mut conn, &new).await?;
        Ok(Response::new(pb::CreateSnippetResponse {
            snippet: Some(wire::snippet(snippet)),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn list_snippets(
        &self,
        request: Request<pb::ListSnippetsRequest>,
    ) -> Result<Response<pb::ListSnippetsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let workspace_id = caller.workspace_id()?;
        let request = request.into_inner();
        let limit = paging::page_size(request.page_size)?;
        let after: Option<(String, Uuid)> = paging::decode_token(&request.page_token)?;
        let rows = snippets::search(
            &self.pool,
            workspace_id,
            caller.actor(),
            request.shortcut_prefix.trim(),
            after,
            limit + 1,
        )
        .await?;
        let (rows, next_page_token) =
            paging::finish(rows, limit, |s| (s.shortcut.to_lowercase(), s.id));
        Ok(Response::new(pb::ListSnippetsResponse {
            snippets: rows.into_iter().map(wire::snippet).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn update_snippet(
        &self,
        request: Request<pb::UpdateSnippetRequest>,
    ) -> Result<Response<pb::UpdateSnippetResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Agent)?;
        let workspace_id = caller.workspace_id()?;
        let request = request.into_inner();
        let id = uuid("id", &request.id)?;
        let mut conn = db::acquire(&self.pool).await?;
        let current = snippets::visible(&mut conn, workspace_id, caller.actor(), id).await?;
        if current.owner.is_none() {
            caller.require(Role::Manager)?;
        }
        let (shortcut, title) = (request.shortcut.trim(), request.title.trim());
        self.check_snippet(workspace_id, shortcut, title, &request.body)
            .await?;
        let snippet = snippets::update(&mut conn, id, shortcut, title, &request.body).await?;
        Ok(Response::new(pb::UpdateSnippetResponse {
            snippet: Some(wire::snippet(snippet)),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn delete_snippet(
        &self,
        request: Request<pb::DeleteSnippetRequest>,
    ) -> Result<Response<pb::DeleteSnippetResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Agent)?;
        let workspace_id = caller.workspace_id()?;
        let id = uuid("id", &request.get_ref().id)?;
        let mut conn = db::acquire(&self.pool).await?;
        let current = snippets::visible(&mut conn, workspace_id, caller.actor(), id).await?;
        if current.owner.is_none() {
            caller.require(Role::Manager)?;
        }
        snippets::delete(&mut conn, id).await?;
        Ok(Response::new(pb::DeleteSnippetResponse {}))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn create_inbox(
        &self,
        request: Request<pb::CreateInboxRequest>,
    ) -> Result<Response<pb::CreateInboxResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Manager)?;
        let workspace_id = caller.workspace_id()?;
        let request = request.into_inner();
        let (name, conditions) = wire::inbox_input(&request.name, request.conditions)?;
        self.check_contact_filter(workspace_id, &conditions).await?;
        let mut conn = db::acquire(&self.pool).await?;
        let created = inbox::create(&mut conn, workspace_id, name, &conditions).await?;
        Ok(Response::new(pb::CreateInboxResponse {
            inbox: Some(wire::inbox(created)),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn list_inboxes(
        &self,
        request: Request<pb::ListInboxesRequest>,
    ) -> Result<Response<pb::ListInboxesResponse>, Status> {
        let caller = Caller::of(&request)?;
        let workspace_id = caller.workspace_id()?;
        let request = request.into_inner();
        let limit = paging::page_size(request.page_size)?;
        let after: Option<(String, Uuid)> = paging::decode_token(&request.page_token)?;
        let rows = inbox::list(&self.pool, workspace_id, after, limit + 1).await?;
        let (rows, next_page_token) =
            paging::finish(rows, limit, |i| (i.name.to_lowercase(), i.id));
        Ok(Response::new(pb::ListInboxesResponse {
            inboxes: rows.into_iter().map(wire::inbox).collect(),
            next_page_token,
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn update_inbox(
        &self,
        request: Request<pb::UpdateInboxRequest>,
    ) -> Result<Response<pb::UpdateInboxResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Manager)?;
        let workspace_id = caller.workspace_id()?;
        let request = request.into_inner();
        let id = uuid("id", &request.id)?;
        let (name, conditions) = wire::inbox_input(&request.name, request.conditions)?;
        self.check_contact_filter(workspace_id, &conditions).await?;
        let mut conn = db::acquire(&self.pool).await?;
        let updated = inbox::update(&mut conn, workspace_id, id, name, &conditions).await?;
        Ok(Response::new(pb::UpdateInboxResponse {
            inbox: Some(wire::inbox(updated)),
        }))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn delete_inbox(
        &self,
        request: Request<pb::DeleteInboxRequest>,
    ) -> Result<Response<pb::DeleteInboxResponse>, Status> {
        let caller = Caller::of(&request)?;
        caller.require(Role::Manager)?;
        let workspace_id = caller.workspace_id()?;
        let id = uuid("id", &request.get_ref().id)?;
        let mut conn = db::acquire(&self.pool).await?;
        inbox::delete(&mut conn, workspace_id, id).await?;
        Ok(Response::new(pb::DeleteInboxResponse {}))
    }

    #[tracing::instrument(skip_all, err(level = "debug"))]
    async fn list_inbox_conversations(
        &self,
        request: Request<pb::ListInboxConversationsRequest>,
    ) -> Result<Response<pb::ListInboxConversationsResponse>, Status> {
        let caller = Caller::of(&request)?;
        let workspace_id = caller.workspace_id()?;
        let request = request.into_inner();
        let me = caller.subject.user_id();
        let limit = paging::page_size(request.page_size)?;
        let before: Option<Cursor> = paging::decode_token(&request.page_token)?;
        let view = match wire::optional_uuid(&request.inbox_id, "inbox_id")? {
            Some(id) => {
                let mut conn = db::acquire(&self.pool).await?;
                let conditions = inbox::get(&mut conn, workspace_id, id).await?.conditions();
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
        let (rows, next_page_token) = paging::finish(rows, limit, |c| (c.last_message_at, c.id));
        Ok(Response::new(pb::ListInboxConversationsResponse {
            conversations: rows.into_iter().map(wire::conversation).collect(),
            next_page_token,
            total,
        }))
    }
}
