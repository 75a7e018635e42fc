//! A typed client of the calls tests make most: one method per RPC, returning the
//! response's useful value and panicking with the RPC's name and the status when the
//! call fails. Tests that assert on an error status use the raw clients it exposes.
use std::time::Duration;

use ism_proto::broadcasts::v1 as bc;
use ism_proto::broadcasts::v1::broadcast_service_client::BroadcastServiceClient;
use ism_proto::contacts::v1 as ct;
use ism_proto::contacts::v1::contact_service_client::ContactServiceClient;
use ism_proto::conversations::v1 as conv;
use ism_proto::conversations::v1::conversation_service_client::ConversationServiceClient;
use ism_proto::gateway::v1 as gw;
use ism_proto::gateway::v1::gateway_service_client::GatewayServiceClient;
use ism_proto::integrations::v1 as ig;
use ism_proto::integrations::v1::integration_service_client::IntegrationServiceClient;
use ism_proto::workflows::v1 as wf;
use ism_proto::workflows::v1::workflow_service_client::WorkflowServiceClient;
use ism_proto::workspaces::v1 as ws;
use ism_proto::workspaces::v1::workspace_service_client::WorkspaceServiceClient;
use tonic::Status;
use tonic::transport::Channel;

use crate::platform::{Platform, Tenant, authed, eventually};

/// A page as large as the services allow: every item a test creates fits in it.
const WHOLE_PAGE: i32 = 100;

/// One client per service of a platform, and the token its calls carry.
#[derive(Clone)]
pub struct Api {
    /// The access token every call of the typed methods carries.
    pub token: String,
    /// The raw WorkspaceService client, for calls whose error a test asserts.
    pub workspaces: WorkspaceServiceClient<Channel>,
    /// The raw GatewayService client.
    pub gateway: GatewayServiceClient<Channel>,
    /// The raw ContactService client.
    pub contacts: ContactServiceClient<Channel>,
    /// The raw ConversationService client.
    pub conversations: ConversationServiceClient<Channel>,
    /// The raw BroadcastService client.
    pub broadcasts: BroadcastServiceClient<Channel>,
    /// The raw IntegrationService client.
    pub integrations: IntegrationServiceClient<Channel>,
    /// The raw WorkflowService client.
    pub workflows: WorkflowServiceClient<Channel>,
}

/// The response of a call that must succeed.
fn answer<T>(rpc: &str, result: Result<tonic::Response<T>, Status>) -> T {
    match result {
        Ok(response) => response.into_inner(),
        Err(status) => panic!("{rpc} failed: {status:?}"),
    }
}

/// The resource a successful response must carry.
fn carried<T>(rpc: &str, value: Option<T>) -> T {
    value.unwrap_or_else(|| panic!("{rpc} answered without its resource"))
}

impl Platform {
    /// An [`Api`] acting as `tenant`'s owner API key.
    pub async fn api(&self, tenant: &Tenant) -> Api {
        Api::connect(self, self.token(tenant).await).await
    }
}

impl Api {
    /// Connects to every service of `platform`; calls carry `token`.
    pub async fn connect(platform: &Platform, token: impl Into<String>) -> Self {
        let connect = |service: &'static str| async move {
            platform
                .channel(service)
                .connect()
                .await
                .unwrap_or_else(|e| panic!("{service} unreachable: {e}"))
        };
        Self {
            token: token.into(),
            workspaces: WorkspaceServiceClient::new(connect("workspaces").await),
            gateway: GatewayServiceClient::new(connect("gateway").await),
            contacts: ContactServiceClient::new(connect("contacts").await),
            conversations: ConversationServiceClient::new(connect("conversations").await),
            broadcasts: BroadcastServiceClient::new(connect("broadcasts").await),
            integrations: IntegrationServiceClient::new(connect("integrations").await),
            workflows: WorkflowServiceClient::new(connect("workflows").await),
        }
    }

    /// The same connections, acting as the caller of `token`.
    pub fn with_token(&self, token: impl Into<String>) -> Self {
        Self {
            token: token.into(),
            ..self.clone()
        }
    }

    /// `message` with this client's token.
    pub fn authed<T>(&self, message: T) -> tonic::Request<T> {
        authed(&self.token, message)
    }

    // Workspaces.

    /// ExchangeApiKey (needs no token): the access token of `api_key` and its expiry.
    pub async fn exchange_api_key(&self, api_key: &str) -> ws::ExchangeApiKeyResponse {
        let request = ws::ExchangeApiKeyRequest {
            api_key: api_key.into(),
        };
        answer(
            "ExchangeApiKey",
            self.workspaces.clone().exchange_api_key(request).await,
        )
    }

    /// IssueServiceToken (needs no token): the access token of an internal service.
    pub async fn issue_service_token(&self, service: &str, secret: &str) -> String {
        let request = ws::IssueServiceTokenRequest {
            service: service.into(),
            secret: secret.into(),
        };
        answer(
            "IssueServiceToken",
            self.workspaces.clone().issue_service_token(request).await,
        )
        .access_token
    }

    /// CreateApiKey: the new key and its secret.
    pub async fn create_api_key(&self, name: &str, role: ws::Role) -> ws::CreateApiKeyResponse {
        let request = ws::CreateApiKeyRequest {
            name: name.into(),
            role: role as i32,
        };
        answer(
            "CreateApiKey",
            self.workspaces
                .clone()
                .create_api_key(self.authed(request))
                .await,
        )
    }

    /// An access token of a new API key named `name` with `role`.
    pub async fn key_token(&self, name: &str, role: ws::Role) -> String {
        let secret = self.create_api_key(name, role).await.secret;
        self.exchange_api_key(&secret).await.access_token
    }

    /// ListApiKeys: the first page of API keys.
    pub async fn list_api_keys(&self) -> Vec<ws::ApiKey> {
        let request = ws::ListApiKeysRequest::default();
        answer(
            "ListApiKeys",
            self.workspaces
                .clone()
                .list_api_keys(self.authed(request))
                .await,
        )
        .api_keys
    }

    /// RevokeApiKey: the revoked key.
    pub async fn revoke_api_key(&self, id: &str) -> ws::ApiKey {
        let request = ws::RevokeApiKeyRequest { id: id.into() };
        let response = self
            .workspaces
            .clone()
            .revoke_api_key(self.authed(request))
            .await;
        carried("RevokeApiKey", answer("RevokeApiKey", response).api_key)
    }

    /// GetWorkspace: the caller's Workspace.
    pub async fn get_workspace(&self) -> ws::Workspace {
        let request = ws::GetWorkspaceRequest {};
        let response = self
            .workspaces
            .clone()
            .get_workspace(self.authed(request))
            .await;
        carried("GetWorkspace", answer("GetWorkspace", response).workspace)
    }

    /// UpdateWorkspace: the Workspace as updated.
    pub async fn update_workspace(&self, request: ws::UpdateWorkspaceRequest) -> ws::Workspace {
        let response = self
            .workspaces
            .clone()
            .update_workspace(self.authed(request))
            .await;
        carried(
            "UpdateWorkspace",
            answer("UpdateWorkspace", response).workspace,
        )
    }

    /// CreateWorkspace: a Workspace named `name` in the caller's Organization, and its
    /// owner API key.
    pub async fn create_workspace(&self, name: &str) -> ws::CreateWorkspaceResponse {
        let request = ws::CreateWorkspaceRequest {
            name: name.into(),
            ..Default::default()
        };
        answer(
            "CreateWorkspace",
            self.workspaces
                .clone()
                .create_workspace(self.authed(request))
                .await,
        )
    }

    /// ListWorkspaces: the first page of the Organization's Workspaces.
    pub async fn list_workspaces(&self) -> Vec<ws::Workspace> {
        let request = ws::ListWorkspacesRequest::default();
        answer(
            "ListWorkspaces",
            self.workspaces
                .clone()
                .list_workspaces(self.authed(request))
                .await,
        )
        .workspaces
    }

    /// ArchiveWorkspace.
    pub async fn archive_workspace(&self, id: &str) {
        let request = ws::ArchiveWorkspaceRequest { id: id.into() };
        answer(
            "ArchiveWorkspace",
            self.workspaces
                .clone()
                .archive_workspace(self.authed(request))
                .await,
        );
    }

    /// GetOrganization: the caller's Organization.
    pub async fn get_organization(&self) -> ws::Organization {
        let request = ws::GetOrganizationRequest {};
        let response = self
            .workspaces
            .clone()
            .get_organization(self.authed(request))
            .await;
        carried(
            "GetOrganization",
            answer("GetOrganization", response).organization,
        )
    }

    /// RenameOrganization: the Organization as renamed.
    pub async fn rename_organization(&self, name: &str) -> ws::Organization {
        let request = ws::RenameOrganizationRequest { name: name.into() };
        let response = self
            .workspaces
            .clone()
            .rename_organization(self.authed(request))
            .await;
        carried(
            "RenameOrganization",
            answer("RenameOrganization", response).organization,
        )
    }

    /// CreateUser: the new User.
    pub async fn create_user(&self, email: &str, display_name: &str, role: ws::Role) -> ws::User {
        let request = ws::CreateUserRequest {
            email: email.into(),
            display_name: display_name.into(),
            role: role as i32,
        };
        let response = self
            .workspaces
            .clone()
            .create_user(self.authed(request))
            .await;
        carried("CreateUser", answer("CreateUser", response).user)
    }

    /// GetUser.
    pub async fn get_user(&self, id: &str) -> ws::User {
        let request = ws::GetUserRequest { id: id.into() };
        let response = self.workspaces.clone().get_user(self.authed(request)).await;
        carried("GetUser", answer("GetUser", response).user)
    }

    /// ListUsers: the first page of Users, deactivated ones too if asked.
    pub async fn list_users(&self, include_deactivated: bool) -> Vec<ws::User> {
        let request = ws::ListUsersRequest {
            include_deactivated,
            ..Default::default()
        };
        answer(
            "ListUsers",
            self.workspaces
                .clone()
                .list_users(self.authed(request))
                .await,
        )
        .users
    }

    /// UpdateUser: the User as updated.
    pub async fn update_user(&self, request: ws::UpdateUserRequest) -> ws::User {
        let response = self
            .workspaces
            .clone()
            .update_user(self.authed(request))
            .await;
        carried("UpdateUser", answer("UpdateUser", response).user)
    }

    /// DeactivateUser: the User as deactivated.
    pub async fn deactivate_user(&self, id: &str) -> ws::User {
        let request = ws::DeactivateUserRequest { id: id.into() };
        let response = self
            .workspaces
            .clone()
            .deactivate_user(self.authed(request))
            .await;
        carried("DeactivateUser", answer("DeactivateUser", response).user)
    }

    /// SetUserAvailability: the User with their new availability.
    pub async fn set_user_availability(
        &self,
        user_id: &str,
        availability: ws::Availability,
    ) -> ws::User {
        let request = ws::SetUserAvailabilityRequest {
            user_id: user_id.into(),
            availability: availability as i32,
        };
        let response = self
            .workspaces
            .clone()
            .set_user_availability(self.authed(request))
            .await;
        carried(
            "SetUserAvailability",
            answer("SetUserAvailability", response).user,
        )
    }

    /// IssueUserToken: an access token acting as the User.
    pub async fn issue_user_token(&self, user_id: &str) -> String {
        let request = ws::IssueUserTokenRequest {
            user_id: user_id.into(),
        };
        answer(
            "IssueUserToken",
            self.workspaces
                .clone()
                .issue_user_token(self.authed(request))
                .await,
        )
        .access_token
    }

    /// CreateTeam: the new Team.
    pub async fn create_team(&self, name: &str) -> ws::Team {
        let request = ws::CreateTeamRequest { name: name.into() };
        let response = self
            .workspaces
            .clone()
            .create_team(self.authed(request))
            .await;
        carried("CreateTeam", answer("CreateTeam", response).team)
    }

    /// ListTeams: the first page of Teams.
    pub async fn list_teams(&self) -> Vec<ws::Team> {
        let request = ws::ListTeamsRequest::default();
        answer(
            "ListTeams",
            self.workspaces
                .clone()
                .list_teams(self.authed(request))
                .await,
        )
        .teams
    }

    /// AddTeamMember.
    pub async fn add_team_member(&self, team_id: &str, user_id: &str) {
        let request = ws::AddTeamMemberRequest {
            team_id: team_id.into(),
            user_id: user_id.into(),
        };
        answer(
            "AddTeamMember",
            self.workspaces
                .clone()
                .add_team_member(self.authed(request))
                .await,
        );
    }

    /// ListTeamMembers: the first page of the Team's Users.
    pub async fn list_team_members(&self, team_id: &str) -> Vec<ws::User> {
        let request = ws::ListTeamMembersRequest {
            team_id: team_id.into(),
            ..Default::default()
        };
        answer(
            "ListTeamMembers",
            self.workspaces
                .clone()
                .list_team_members(self.authed(request))
                .await,
        )
        .users
    }

    /// ListUserTeams: the first page of the User's Teams.
    pub async fn list_user_teams(&self, user_id: &str) -> Vec<ws::Team> {
        let request = ws::ListUserTeamsRequest {
            user_id: user_id.into(),
            ..Default::default()
        };
        answer(
            "ListUserTeams",
            self.workspaces
                .clone()
                .list_user_teams(self.authed(request))
                .await,
        )
        .teams
    }

    /// ListAuditEvents: the first page of the audit log.
    pub async fn list_audit_events(&self) -> Vec<ws::AuditEvent> {
        let request = ws::ListAuditEventsRequest::default();
        answer(
            "ListAuditEvents",
            self.workspaces
                .clone()
                .list_audit_events(self.authed(request))
                .await,
        )
        .events
    }

    // Gateway.

    /// ConnectChannel: the connected channel.
    pub async fn connect_channel(&self, request: gw::ConnectChannelRequest) -> gw::Channel {
        let response = self
            .gateway
            .clone()
            .connect_channel(self.authed(request))
            .await;
        carried("ConnectChannel", answer("ConnectChannel", response).channel)
    }

    /// GetChannel.
    pub async fn get_channel(&self, id: &str) -> gw::Channel {
        let request = gw::GetChannelRequest { id: id.into() };
        let response = self.gateway.clone().get_channel(self.authed(request)).await;
        carried("GetChannel", answer("GetChannel", response).channel)
    }

    /// DeleteChannel.
    pub async fn delete_channel(&self, id: &str) {
        let request = gw::DeleteChannelRequest { id: id.into() };
        answer(
            "DeleteChannel",
            self.gateway
                .clone()
                .delete_channel(self.authed(request))
                .await,
        );
    }

    // Contacts.

    /// ResolveContact: the Contact behind `external_id` on the channel, created if new.
    pub async fn resolve_contact(
        &self,
        channel_id: &str,
        external_id: &str,
        display_name: &str,
    ) -> ct::Contact {
        let request = ct::ResolveContactRequest {
            channel_id: channel_id.into(),
            external_id: external_id.into(),
            display_name: display_name.into(),
        };
        let response = self
            .contacts
            .clone()
            .resolve_contact(self.authed(request))
            .await;
        carried("ResolveContact", answer("ResolveContact", response).contact)
    }

    /// SetBroadcastOptOut: the Contact, opted out of broadcasts or back in.
    pub async fn set_broadcast_opt_out(&self, id: &str, opted_out: bool) -> ct::Contact {
        let request = ct::SetBroadcastOptOutRequest {
            id: id.into(),
            opted_out,
        };
        let response = self
            .contacts
            .clone()
            .set_broadcast_opt_out(self.authed(request))
            .await;
        carried(
            "SetBroadcastOptOut",
            answer("SetBroadcastOptOut", response).contact,
        )
    }

    /// CreateContact: the new Contact.
    pub async fn create_contact(&self, profile: ct::ContactProfile) -> ct::Contact {
        let request = ct::CreateContactRequest {
            profile: Some(profile),
        };
        let response = self
            .contacts
            .clone()
            .create_contact(self.authed(request))
            .await;
        carried("CreateContact", answer("CreateContact", response).contact)
    }

    /// GetContact.
    pub async fn get_contact(&self, id: &str) -> ct::Contact {
        let request = ct::GetContactRequest { id: id.into() };
        let response = self
            .contacts
            .clone()
            .get_contact(self.authed(request))
            .await;
        carried("GetContact", answer("GetContact", response).contact)
    }

    /// UpdateContact: the Contact as updated.
    pub async fn update_contact(&self, request: ct::UpdateContactRequest) -> ct::Contact {
        let response = self
            .contacts
            .clone()
            .update_contact(self.authed(request))
            .await;
        carried("UpdateContact", answer("UpdateContact", response).contact)
    }

    /// SetLifecycleStages: `(key, name)` in order.
    pub async fn set_lifecycle_stages(&self, stages: &[(&str, &str)]) -> Vec<ct::LifecycleStage> {
        let request = ct::SetLifecycleStagesRequest {
            stages: stages
                .iter()
                .map(|(key, name)| ct::LifecycleStage {
                    key: (*key).into(),
                    name: (*name).into(),
                })
                .collect(),
        };
        let response = self
            .contacts
            .clone()
            .set_lifecycle_stages(self.authed(request))
            .await;
        answer("SetLifecycleStages", response).stages
    }

    /// DeleteContact.
    pub async fn delete_contact(&self, id: &str) {
        let request = ct::DeleteContactRequest { id: id.into() };
        answer(
            "DeleteContact",
            self.contacts
                .clone()
                .delete_contact(self.authed(request))
                .await,
        );
    }

    /// RestoreContact: the restored Contact.
    pub async fn restore_contact(&self, id: &str) -> ct::Contact {
        let request = ct::RestoreContactRequest { id: id.into() };
        let response = self
            .contacts
            .clone()
            .restore_contact(self.authed(request))
            .await;
        carried("RestoreContact", answer("RestoreContact", response).contact)
    }

    /// SetContactBlocked: the Contact as (un)blocked.
    pub async fn set_contact_blocked(&self, id: &str, blocked: bool) -> ct::Contact {
        let request = ct::SetContactBlockedRequest {
            id: id.into(),
            blocked,
        };
        let response = self
            .contacts
            .clone()
            .set_contact_blocked(self.authed(request))
            .await;
        carried(
            "SetContactBlocked",
            answer("SetContactBlocked", response).contact,
        )
    }

    /// CreateContactField: the new Contact Field.
    pub async fn create_contact_field(&self, field: ct::ContactField) -> ct::ContactField {
        let request = ct::CreateContactFieldRequest { field: Some(field) };
        let response = self
            .contacts
            .clone()
            .create_contact_field(self.authed(request))
            .await;
        carried(
            "CreateContactField",
            answer("CreateContactField", response).field,
        )
    }

    /// DeleteContactField.
    pub async fn delete_contact_field(&self, key: &str) {
        let request = ct::DeleteContactFieldRequest { key: key.into() };
        answer(
            "DeleteContactField",
            self.contacts
                .clone()
                .delete_contact_field(self.authed(request))
                .await,
        );
    }

    /// AddTags: how many Tags were newly added.
    pub async fn add_tags(&self, contact_ids: Vec<String>, tags: &[&str]) -> i64 {
        let request = ct::AddTagsRequest {
            contact_ids,
            tags: tags.iter().map(|&t| t.to_owned()).collect(),
        };
        answer(
            "AddTags",
            self.contacts.clone().add_tags(self.authed(request)).await,
        )
        .added
    }

    /// ListTags: every Tag with its Contact count.
    pub async fn list_tags(&self) -> Vec<ct::Tag> {
        let request = ct::ListTagsRequest {};
        answer(
            "ListTags",
            self.contacts.clone().list_tags(self.authed(request)).await,
        )
        .tags
    }

    /// SearchContacts: one page of matches and the total.
    pub async fn search_contacts(
        &self,
        request: ct::SearchContactsRequest,
    ) -> ct::SearchContactsResponse {
        answer(
            "SearchContacts",
            self.contacts
                .clone()
                .search_contacts(self.authed(request))
                .await,
        )
    }

    /// StreamContacts: the Contacts of each batch, batch by batch, to the stream's end.
    pub async fn stream_contacts(
        &self,
        request: ct::StreamContactsRequest,
    ) -> Vec<Vec<ct::Contact>> {
        let response = self
            .contacts
            .clone()
            .stream_contacts(self.authed(request))
            .await;
        let mut stream = answer("StreamContacts", response);
        let mut batches = Vec::new();
        while let Some(batch) = stream
            .message()
            .await
            .unwrap_or_else(|status| panic!("StreamContacts broke off: {status:?}"))
        {
            batches.push(batch.contacts);
        }
        batches
    }

    /// MatchContacts: which of `contact_ids` match `filter`.
    pub async fn match_contacts(
        &self,
        filter: Option<ct::Filter>,
        contact_ids: Vec<String>,
    ) -> Vec<String> {
        let request = ct::MatchContactsRequest {
            filter,
            contact_ids,
        };
        answer(
            "MatchContacts",
            self.contacts
                .clone()
                .match_contacts(self.authed(request))
                .await,
        )
        .contact_ids
    }

    /// CreateSegment: the new Segment.
    pub async fn create_segment(&self, name: &str, filter: ct::Filter) -> ct::Segment {
        let request = ct::CreateSegmentRequest {
            name: name.into(),
            filter: Some(filter),
        };
        let response = self
            .contacts
            .clone()
            .create_segment(self.authed(request))
            .await;
        carried("CreateSegment", answer("CreateSegment", response).segment)
    }

    /// MergeContacts: the surviving Contact.
    pub async fn merge_contacts(&self, request: ct::MergeContactsRequest) -> ct::Contact {
        let response = self
            .contacts
            .clone()
            .merge_contacts(self.authed(request))
            .await;
        carried("MergeContacts", answer("MergeContacts", response).contact)
    }

    /// ListDuplicates: the first page of suggested duplicate groups.
    pub async fn list_duplicates(&self) -> Vec<ct::DuplicateGroup> {
        let request = ct::ListDuplicatesRequest::default();
        answer(
            "ListDuplicates",
            self.contacts
                .clone()
                .list_duplicates(self.authed(request))
                .await,
        )
        .groups
    }

    /// ImportContacts: the finished import and its report.
    pub async fn import_contacts(
        &self,
        upload: impl futures::Stream<Item = ct::ImportContactsRequest> + Send + 'static,
    ) -> ct::Import {
        let response = self
            .contacts
            .clone()
            .import_contacts(self.authed(upload))
            .await;
        carried("ImportContacts", answer("ImportContacts", response).import)
    }

    /// GetImport.
    pub async fn get_import(&self, id: &str) -> ct::Import {
        let request = ct::GetImportRequest { id: id.into() };
        let response = self.contacts.clone().get_import(self.authed(request)).await;
        carried("GetImport", answer("GetImport", response).import)
    }

    /// ExportContacts: the whole CSV file, its chunks joined.
    pub async fn export_contacts(&self, request: ct::ExportContactsRequest) -> Vec<u8> {
        let response = self
            .contacts
            .clone()
            .export_contacts(self.authed(request))
            .await;
        let mut stream = answer("ExportContacts", response);
        let mut file = Vec::new();
        while let Some(chunk) = stream
            .message()
            .await
            .unwrap_or_else(|status| panic!("ExportContacts broke off: {status:?}"))
        {
            file.extend(chunk.data);
        }
        file
    }

    // Conversations.

    /// ListConversations: every conversation of the Workspace (one page of 100).
    pub async fn list_conversations(&self) -> Vec<conv::Conversation> {
        let request = conv::ListConversationsRequest {
            page_size: WHOLE_PAGE,
            ..Default::default()
        };
        answer(
            "ListConversations",
            self.conversations
                .clone()
                .list_conversations(self.authed(request))
                .await,
        )
        .conversations
    }

    /// The first conversation `matches`, once one does (panics after `within`).
    pub async fn wait_for_conversation(
        &self,
        within: Duration,
        matches: impl Fn(&conv::Conversation) -> bool,
    ) -> conv::Conversation {
        let matches = &matches;
        eventually(within, "the conversation", move || async move {
            let request = conv::ListConversationsRequest {
                page_size: WHOLE_PAGE,
                ..Default::default()
            };
            let mut client = self.conversations.clone();
            let list = client.list_conversations(self.authed(request)).await.ok()?;
            list.into_inner().conversations.into_iter().find(matches)
        })
        .await
    }

    /// GetConversation.
    pub async fn get_conversation(&self, id: &str) -> conv::Conversation {
        let request = conv::GetConversationRequest { id: id.into() };
        let response = self
            .conversations
            .clone()
            .get_conversation(self.authed(request))
            .await;
        carried(
            "GetConversation",
            answer("GetConversation", response).conversation,
        )
    }

    /// ListMessages: every message of the conversation (one page of 100), newest first.
    pub async fn list_messages(&self, conversation_id: &str) -> Vec<conv::Message> {
        let request = conv::ListMessagesRequest {
            conversation_id: conversation_id.into(),
            page_size: WHOLE_PAGE,
            ..Default::default()
        };
        answer(
            "ListMessages",
            self.conversations
                .clone()
                .list_messages(self.authed(request))
                .await,
        )
        .messages
    }

    /// SendMessage: the stored message.
    pub async fn send_message(&self, request: conv::SendMessageRequest) -> conv::Message {
        let response = self
            .conversations
            .clone()
            .send_message(self.authed(request))
            .await;
        carried("SendMessage", answer("SendMessage", response).message)
    }

    /// GetMessage.
    pub async fn get_message(&self, id: &str) -> conv::Message {
        let request = conv::GetMessageRequest { id: id.into() };
        let response = self
            .conversations
            .clone()
            .get_message(self.authed(request))
            .await;
        carried("GetMessage", answer("GetMessage", response).message)
    }

    /// The message `id` once it `matches` (panics after `within`, naming `what`).
    pub async fn wait_for_message(
        &self,
        id: &str,
        within: Duration,
        what: &str,
        matches: impl Fn(&conv::Message) -> bool,
    ) -> conv::Message {
        let matches = &matches;
        eventually(within, what, move || async move {
            let request = conv::GetMessageRequest { id: id.into() };
            let mut client = self.conversations.clone();
            let message = client
                .get_message(self.authed(request))
                .await
                .ok()?
                .into_inner()
                .message?;
            matches(&message).then_some(message)
        })
        .await
    }

    /// AddComment: the internal comment.
    pub async fn add_comment(&self, request: conv::AddCommentRequest) -> conv::Message {
        let response = self
            .conversations
            .clone()
            .add_comment(self.authed(request))
            .await;
        carried("AddComment", answer("AddComment", response).message)
    }

    /// SnoozeConversation: the snoozed conversation.
    pub async fn snooze_conversation(
        &self,
        id: &str,
        until: prost_types::Timestamp,
    ) -> conv::Conversation {
        let request = conv::SnoozeConversationRequest {
            id: id.into(),
            until: Some(until),
        };
        let response = self
            .conversations
            .clone()
            .snooze_conversation(self.authed(request))
            .await;
        carried(
            "SnoozeConversation",
            answer("SnoozeConversation", response).conversation,
        )
    }

    /// CloseConversation: the closed conversation.
    pub async fn close_conversation(
        &self,
        request: conv::CloseConversationRequest,
    ) -> conv::Conversation {
        let response = self
            .conversations
            .clone()
            .close_conversation(self.authed(request))
            .await;
        carried(
            "CloseConversation",
            answer("CloseConversation", response).conversation,
        )
    }

    /// AssignConversation to a User (or none: `""`) and a Team (or none).
    pub async fn assign_conversation(
        &self,
        id: &str,
        user_id: &str,
        team_id: &str,
    ) -> conv::Conversation {
        let request = conv::AssignConversationRequest {
            id: id.into(),
            user_id: user_id.into(),
            team_id: team_id.into(),
        };
        let response = self
            .conversations
            .clone()
            .assign_conversation(self.authed(request))
            .await;
        carried(
            "AssignConversation",
            answer("AssignConversation", response).conversation,
        )
    }

    /// AssignNext: whether `rules` found an assignee, and the conversation.
    pub async fn assign_next(
        &self,
        conversation_id: &str,
        rules: conv::AssignmentRules,
    ) -> conv::AssignNextResponse {
        let request = conv::AssignNextRequest {
            conversation_id: conversation_id.into(),
            rules: Some(rules),
        };
        answer(
            "AssignNext",
            self.conversations
                .clone()
                .assign_next(self.authed(request))
                .await,
        )
    }

    /// UpdateConversationSettings: the settings as saved.
    pub async fn update_conversation_settings(
        &self,
        settings: conv::ConversationSettings,
    ) -> conv::ConversationSettings {
        let request = conv::UpdateConversationSettingsRequest {
            settings: Some(settings),
        };
        let response = self
            .conversations
            .clone()
            .update_conversation_settings(self.authed(request))
            .await;
        carried(
            "UpdateConversationSettings",
            answer("UpdateConversationSettings", response).settings,
        )
    }

    /// CreateSnippet: the new Snippet.
    pub async fn create_snippet(&self, request: conv::CreateSnippetRequest) -> conv::Snippet {
        let response = self
            .conversations
            .clone()
            .create_snippet(self.authed(request))
            .await;
        carried("CreateSnippet", answer("CreateSnippet", response).snippet)
    }

    /// CreateInbox: the new custom inbox.
    pub async fn create_inbox(&self, name: &str, conditions: conv::InboxConditions) -> conv::Inbox {
        let request = conv::CreateInboxRequest {
            name: name.into(),
            conditions: Some(conditions),
        };
        let response = self
            .conversations
            .clone()
            .create_inbox(self.authed(request))
            .await;
        carried("CreateInbox", answer("CreateInbox", response).inbox)
    }

    /// ListInboxes: the first page of custom inboxes.
    pub async fn list_inboxes(&self) -> Vec<conv::Inbox> {
        let request = conv::ListInboxesRequest::default();
        answer(
            "ListInboxes",
            self.conversations
                .clone()
                .list_inboxes(self.authed(request))
                .await,
        )
        .inboxes
    }

    /// ListInboxConversations: one page of an inbox and its total.
    pub async fn list_inbox_conversations(
        &self,
        request: conv::ListInboxConversationsRequest,
    ) -> conv::ListInboxConversationsResponse {
        answer(
            "ListInboxConversations",
            self.conversations
                .clone()
                .list_inbox_conversations(self.authed(request))
                .await,
        )
    }

    // Broadcasts.

    /// CreateBroadcast: the new draft.
    pub async fn create_broadcast(&self, definition: bc::BroadcastDefinition) -> bc::Broadcast {
        let request = bc::CreateBroadcastRequest {
            definition: Some(definition),
        };
        let response = self
            .broadcasts
            .clone()
            .create_broadcast(self.authed(request))
            .await;
        carried(
            "CreateBroadcast",
            answer("CreateBroadcast", response).broadcast,
        )
    }

    /// GetBroadcast, with its live stats.
    pub async fn get_broadcast(&self, id: &str) -> bc::Broadcast {
        let request = bc::GetBroadcastRequest { id: id.into() };
        let response = self
            .broadcasts
            .clone()
            .get_broadcast(self.authed(request))
            .await;
        carried("GetBroadcast", answer("GetBroadcast", response).broadcast)
    }

    /// StartBroadcast.
    pub async fn start_broadcast(&self, id: &str) -> bc::Broadcast {
        let request = bc::StartBroadcastRequest { id: id.into() };
        let response = self
            .broadcasts
            .clone()
            .start_broadcast(self.authed(request))
            .await;
        carried(
            "StartBroadcast",
            answer("StartBroadcast", response).broadcast,
        )
    }

    /// ScheduleBroadcast at `send_at`, sending late if the time is missed.
    pub async fn schedule_broadcast(
        &self,
        id: &str,
        send_at: prost_types::Timestamp,
    ) -> bc::Broadcast {
        let request = bc::ScheduleBroadcastRequest {
            id: id.into(),
            send_at: Some(send_at),
            missed_schedule: bc::MissedSchedule::SendLate as i32,
        };
        let response = self
            .broadcasts
            .clone()
            .schedule_broadcast(self.authed(request))
            .await;
        carried(
            "ScheduleBroadcast",
            answer("ScheduleBroadcast", response).broadcast,
        )
    }

    /// PauseBroadcast.
    pub async fn pause_broadcast(&self, id: &str) -> bc::Broadcast {
        let request = bc::PauseBroadcastRequest { id: id.into() };
        let response = self
            .broadcasts
            .clone()
            .pause_broadcast(self.authed(request))
            .await;
        carried(
            "PauseBroadcast",
            answer("PauseBroadcast", response).broadcast,
        )
    }

    /// ResumeBroadcast.
    pub async fn resume_broadcast(&self, id: &str) -> bc::Broadcast {
        let request = bc::ResumeBroadcastRequest { id: id.into() };
        let response = self
            .broadcasts
            .clone()
            .resume_broadcast(self.authed(request))
            .await;
        carried(
            "ResumeBroadcast",
            answer("ResumeBroadcast", response).broadcast,
        )
    }

    /// CancelBroadcast.
    pub async fn cancel_broadcast(&self, id: &str) -> bc::Broadcast {
        let request = bc::CancelBroadcastRequest { id: id.into() };
        let response = self
            .broadcasts
            .clone()
            .cancel_broadcast(self.authed(request))
            .await;
        carried(
            "CancelBroadcast",
            answer("CancelBroadcast", response).broadcast,
        )
    }

    /// Every recipient of the broadcast, page after page, in Contact order.
    pub async fn list_recipients(&self, broadcast_id: &str) -> Vec<bc::Recipient> {
        let mut all = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = bc::ListRecipientsRequest {
                broadcast_id: broadcast_id.into(),
                page_size: WHOLE_PAGE,
                page_token,
                ..Default::default()
            };
            let response = self
                .broadcasts
                .clone()
                .list_recipients(self.authed(request))
                .await;
            let page = answer("ListRecipients", response);
            all.extend(page.recipients);
            if page.next_page_token.is_empty() {
                return all;
            }
            page_token = page.next_page_token;
        }
    }

    /// ExportRecipients: the whole CSV file.
    pub async fn export_recipients(&self, broadcast_id: &str) -> String {
        let request = bc::ExportRecipientsRequest {
            broadcast_id: broadcast_id.into(),
            statuses: Vec::new(),
        };
        let response = self
            .broadcasts
            .clone()
            .export_recipients(self.authed(request))
            .await;
        let mut stream = answer("ExportRecipients", response);
        let mut csv = Vec::new();
        while let Some(chunk) = stream.message().await.expect("ExportRecipients chunk") {
            csv.extend(chunk.data);
        }
        String::from_utf8(csv).expect("UTF-8 CSV")
    }

    /// ResendToFailed: the new draft, named after the old one.
    pub async fn resend_to_failed(&self, broadcast_id: &str) -> bc::Broadcast {
        let request = bc::ResendToFailedRequest {
            broadcast_id: broadcast_id.into(),
            name: String::new(),
        };
        let response = self
            .broadcasts
            .clone()
            .resend_to_failed(self.authed(request))
            .await;
        carried(
            "ResendToFailed",
            answer("ResendToFailed", response).broadcast,
        )
    }

    /// The broadcast once `done` holds of it, polling GetBroadcast.
    pub async fn wait_for_broadcast(
        &self,
        id: &str,
        within: Duration,
        what: &str,
        done: impl Fn(&bc::Broadcast) -> bool,
    ) -> bc::Broadcast {
        let done = &done;
        eventually(within, what, || async move {
            let broadcast = self.get_broadcast(id).await;
            done(&broadcast).then_some(broadcast)
        })
        .await
    }

    // Integrations.

    /// ListWebhookEventTypes: every subscribable type.
    pub async fn list_webhook_event_types(&self) -> Vec<ig::WebhookEventType> {
        let request = ig::ListWebhookEventTypesRequest {};
        let response = self
            .integrations
            .clone()
            .list_webhook_event_types(self.authed(request))
            .await;
        answer("ListWebhookEventTypes", response).event_types
    }

    /// CreateWebhookEndpoint: the endpoint and its signing secret.
    pub async fn create_webhook_endpoint(
        &self,
        definition: ig::WebhookEndpointDefinition,
    ) -> (ig::WebhookEndpoint, String) {
        let request = ig::CreateWebhookEndpointRequest {
            definition: Some(definition),
        };
        let response = self
            .integrations
            .clone()
            .create_webhook_endpoint(self.authed(request))
            .await;
        let response = answer("CreateWebhookEndpoint", response);
        (
            carried("CreateWebhookEndpoint", response.endpoint),
            response.secret,
        )
    }

    /// GetWebhookEndpoint, with its health.
    pub async fn get_webhook_endpoint(&self, id: &str) -> ig::WebhookEndpoint {
        let request = ig::GetWebhookEndpointRequest {
            endpoint_id: id.into(),
        };
        let response = self
            .integrations
            .clone()
            .get_webhook_endpoint(self.authed(request))
            .await;
        carried(
            "GetWebhookEndpoint",
            answer("GetWebhookEndpoint", response).endpoint,
        )
    }

    /// SetWebhookEndpointEnabled.
    pub async fn set_webhook_endpoint_enabled(
        &self,
        id: &str,
        enabled: bool,
    ) -> ig::WebhookEndpoint {
        let request = ig::SetWebhookEndpointEnabledRequest {
            endpoint_id: id.into(),
            enabled,
        };
        let response = self
            .integrations
            .clone()
            .set_webhook_endpoint_enabled(self.authed(request))
            .await;
        carried(
            "SetWebhookEndpointEnabled",
            answer("SetWebhookEndpointEnabled", response).endpoint,
        )
    }

    /// RotateWebhookSecret: the new secret.
    pub async fn rotate_webhook_secret(&self, id: &str, overlap_seconds: u32) -> String {
        let request = ig::RotateWebhookSecretRequest {
            endpoint_id: id.into(),
            overlap_seconds,
        };
        let response = self
            .integrations
            .clone()
            .rotate_webhook_secret(self.authed(request))
            .await;
        answer("RotateWebhookSecret", response).secret
    }

    /// TestWebhookEndpoint: what the receiver answered.
    pub async fn test_webhook_endpoint(&self, id: &str) -> ig::WebhookAttempt {
        let request = ig::TestWebhookEndpointRequest {
            endpoint_id: id.into(),
        };
        let response = self
            .integrations
            .clone()
            .test_webhook_endpoint(self.authed(request))
            .await;
        carried(
            "TestWebhookEndpoint",
            answer("TestWebhookEndpoint", response).attempt,
        )
    }

    /// ListWebhookDeliveries: the first page (all a test makes), newest first.
    pub async fn list_webhook_deliveries(&self, endpoint_id: &str) -> Vec<ig::WebhookDelivery> {
        let request = ig::ListWebhookDeliveriesRequest {
            endpoint_id: endpoint_id.into(),
            page_size: WHOLE_PAGE,
            ..Default::default()
        };
        let response = self
            .integrations
            .clone()
            .list_webhook_deliveries(self.authed(request))
            .await;
        answer("ListWebhookDeliveries", response).deliveries
    }

    /// ListWebhookAttempts, oldest first.
    pub async fn list_webhook_attempts(&self, delivery_id: &str) -> Vec<ig::WebhookAttempt> {
        let request = ig::ListWebhookAttemptsRequest {
            delivery_id: delivery_id.into(),
        };
        let response = self
            .integrations
            .clone()
            .list_webhook_attempts(self.authed(request))
            .await;
        answer("ListWebhookAttempts", response).attempts
    }

    /// ResendWebhookDelivery.
    pub async fn resend_webhook_delivery(&self, delivery_id: &str) -> ig::WebhookDelivery {
        let request = ig::ResendWebhookDeliveryRequest {
            delivery_id: delivery_id.into(),
        };
        let response = self
            .integrations
            .clone()
            .resend_webhook_delivery(self.authed(request))
            .await;
        carried(
            "ResendWebhookDelivery",
            answer("ResendWebhookDelivery", response).delivery,
        )
    }

    /// RecoverWebhookEndpoint: how many deliveries were queued again.
    pub async fn recover_webhook_endpoint(
        &self,
        endpoint_id: &str,
        since: prost_types::Timestamp,
    ) -> i64 {
        let request = ig::RecoverWebhookEndpointRequest {
            endpoint_id: endpoint_id.into(),
            since: Some(since),
        };
        let response = self
            .integrations
            .clone()
            .recover_webhook_endpoint(self.authed(request))
            .await;
        answer("RecoverWebhookEndpoint", response).recovered
    }

    /// CreateBot.
    pub async fn create_bot(&self, definition: ig::BotDefinition) -> ig::Bot {
        let request = ig::CreateBotRequest {
            definition: Some(definition),
        };
        let response = self
            .integrations
            .clone()
            .create_bot(self.authed(request))
            .await;
        carried("CreateBot", answer("CreateBot", response).bot)
    }

    /// GetBot, with its health.
    pub async fn get_bot(&self, id: &str) -> ig::Bot {
        let request = ig::GetBotRequest { bot_id: id.into() };
        let response = self
            .integrations
            .clone()
            .get_bot(self.authed(request))
            .await;
        carried("GetBot", answer("GetBot", response).bot)
    }

    /// SetBotEnabled.
    pub async fn set_bot_enabled(&self, id: &str, enabled: bool) -> ig::Bot {
        let request = ig::SetBotEnabledRequest {
            bot_id: id.into(),
            enabled,
        };
        let response = self
            .integrations
            .clone()
            .set_bot_enabled(self.authed(request))
            .await;
        carried("SetBotEnabled", answer("SetBotEnabled", response).bot)
    }

    /// TestBot: what the bot answers to `text`.
    pub async fn test_bot(&self, id: &str, text: &str) -> ig::TestBotResponse {
        let request = ig::TestBotRequest {
            bot_id: id.into(),
            text: text.into(),
        };
        let response = self
            .integrations
            .clone()
            .test_bot(self.authed(request))
            .await;
        answer("TestBot", response)
    }

    // Workflows.

    /// CreateWorkflow: the new draft.
    pub async fn create_workflow(&self, definition: wf::WorkflowDefinition) -> wf::Workflow {
        let request = wf::CreateWorkflowRequest {
            definition: Some(definition),
        };
        let response = self
            .workflows
            .clone()
            .create_workflow(self.authed(request))
            .await;
        carried(
            "CreateWorkflow",
            answer("CreateWorkflow", response).workflow,
        )
    }

    /// PublishWorkflow: the workflow with its new version, enabled.
    pub async fn publish_workflow(&self, id: &str) -> wf::Workflow {
        let request = wf::PublishWorkflowRequest {
            workflow_id: id.into(),
        };
        let response = self
            .workflows
            .clone()
            .publish_workflow(self.authed(request))
            .await;
        carried(
            "PublishWorkflow",
            answer("PublishWorkflow", response).workflow,
        )
    }

    /// GetWorkflow: its draft and published version.
    pub async fn get_workflow(&self, id: &str) -> wf::Workflow {
        let request = wf::GetWorkflowRequest {
            workflow_id: id.into(),
        };
        let response = self
            .workflows
            .clone()
            .get_workflow(self.authed(request))
            .await;
        carried("GetWorkflow", answer("GetWorkflow", response).workflow)
    }

    /// SetWorkflowEnabled.
    pub async fn set_workflow_enabled(&self, id: &str, enabled: bool) -> wf::Workflow {
        let request = wf::SetWorkflowEnabledRequest {
            workflow_id: id.into(),
            enabled,
        };
        let response = self
            .workflows
            .clone()
            .set_workflow_enabled(self.authed(request))
            .await;
        carried(
            "SetWorkflowEnabled",
            answer("SetWorkflowEnabled", response).workflow,
        )
    }

    /// StartRun: the run, unless the workflow's policy started none.
    pub async fn start_run(&self, workflow_id: &str, conversation_id: &str) -> Option<wf::Run> {
        let request = wf::StartRunRequest {
            workflow_id: workflow_id.into(),
            conversation_id: conversation_id.into(),
        };
        let response = self.workflows.clone().start_run(self.authed(request)).await;
        answer("StartRun", response).run
    }

    /// GetRun, with its steps.
    pub async fn get_run(&self, id: &str) -> wf::Run {
        let request = wf::GetRunRequest { run_id: id.into() };
        let response = self.workflows.clone().get_run(self.authed(request)).await;
        carried("GetRun", answer("GetRun", response).run)
    }

    /// ListRuns of a workflow: the first page, newest first.
    pub async fn list_runs(&self, workflow_id: &str) -> Vec<wf::Run> {
        let request = wf::ListRunsRequest {
            workflow_id: workflow_id.into(),
            page_size: WHOLE_PAGE,
            ..Default::default()
        };
        let response = self.workflows.clone().list_runs(self.authed(request)).await;
        answer("ListRuns", response).runs
    }

    /// CancelRun.
    pub async fn cancel_run(&self, id: &str) -> wf::Run {
        let request = wf::CancelRunRequest { run_id: id.into() };
        let response = self
            .workflows
            .clone()
            .cancel_run(self.authed(request))
            .await;
        carried("CancelRun", answer("CancelRun", response).run)
    }

    /// RetryRun.
    pub async fn retry_run(&self, id: &str) -> wf::Run {
        let request = wf::RetryRunRequest { run_id: id.into() };
        let response = self.workflows.clone().retry_run(self.authed(request)).await;
        carried("RetryRun", answer("RetryRun", response).run)
    }

    /// The run once `done` holds of it, polling GetRun.
    pub async fn wait_for_run(
        &self,
        id: &str,
        within: Duration,
        what: &str,
        done: impl Fn(&wf::Run) -> bool,
    ) -> wf::Run {
        let done = &done;
        eventually(within, what, || async move {
            let run = self.get_run(id).await;
            done(&run).then_some(run)
        })
        .await
    }
}
