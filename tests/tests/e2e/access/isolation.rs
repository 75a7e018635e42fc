//! The wall between workspaces: every RPC of every service, called with a token of
//! Workspace A on Workspace B's resources, answers as if they did not exist, shows none of
//! B's ids, and changes nothing of B's.
use std::collections::BTreeMap;
use std::sync::Arc;

use ism_e2e::fixtures::{
    Reply, Side, commenting_workflow, import_stream, openai_bot, populate, report_of_today,
};
use ism_e2e::{Api, Platform, Receiver, authed};
use ism_proto::broadcasts::v1 as broadcasts;
use ism_proto::contacts::v1 as contacts;
use ism_proto::conversations::v1 as conversations;
use ism_proto::gateway::v1 as gateway;
use ism_proto::integrations::v1 as integrations;
use ism_proto::types::v1::{ChannelType, MessageContent, Text, message_content};
use ism_proto::workflows::v1 as workflows;
use ism_proto::workspaces::v1 as ws;
use prost::Message;
use tonic::Code;

/// What a token of Workspace A gets when it addresses Workspace B.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// B's resource named: answered exactly as if it did not exist.
    NotFound,
    /// Names no resource: acts in A only and shows none of B's ids.
    OwnWorkspace,
    /// Needs no token (credential exchange, public keys); nothing of B to address.
    Public,
}

/// One row of the isolation matrix.
struct Case {
    rpc: &'static str,
    expect: Expect,
    call: fn(Api, Arc<Side>) -> Reply,
}

/// `rpc!("Service/Method", client.method(|b| request), Expect)`: one line per RPC.
macro_rules! rpc {
    ($rpc:literal, stream $client:ident . $method:ident(|$b:ident| $request:expr), $expect:ident) => {
        Case {
            rpc: $rpc,
            expect: Expect::$expect,
            call: |api: Api, $b: Arc<Side>| -> Reply {
                Box::pin(async move {
                    let request = api.authed($request);
                    let mut client = api.$client;
                    let mut stream = client.$method(request).await?.into_inner();
                    let mut all = Vec::new();
                    while let Some(message) = stream.message().await? {
                        all.push(format!("{message:?}"));
                    }
                    Ok(all.join("\n"))
                })
            },
        }
    };
    ($rpc:literal, $client:ident . $method:ident(|$b:ident| $request:expr), $expect:ident) => {
        Case {
            rpc: $rpc,
            expect: Expect::$expect,
            call: |api: Api, $b: Arc<Side>| -> Reply {
                Box::pin(async move {
                    let request = api.authed($request);
                    let mut client = api.$client;
                    client
                        .$method(request)
                        .await
                        .map(|r| format!("{:?}", r.into_inner()))
                })
            },
        }
    };
}

fn text(body: &str) -> Option<MessageContent> {
    Some(MessageContent {
        kind: Some(message_content::Kind::Text(Text { body: body.into() })),
        ..Default::default()
    })
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn in_an_hour() -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: unix_now() + 3600,
        nanos: 0,
    }
}

/// Every RPC of every service. A new RPC joins with one line here; the test fails until
/// it does.
fn isolation_matrix() -> Vec<Case> {
    vec![
        rpc!(
            "ism.workspaces.v1.WorkspaceService/ExchangeApiKey",
            workspaces.exchange_api_key(|_b| ws::ExchangeApiKeyRequest::default()),
            Public
        ),
        rpc!(
            "ism.workspaces.v1.WorkspaceService/IssueServiceToken",
            workspaces.issue_service_token(|_b| ws::IssueServiceTokenRequest::default()),
            Public
        ),
        rpc!(
            "ism.workspaces.v1.WorkspaceService/GetPublicKeys",
            workspaces.get_public_keys(|_b| ws::GetPublicKeysRequest {}),
            Public
        ),
        rpc!(
            "ism.workspaces.v1.WorkspaceService/GetWorkspace",
            workspaces.get_workspace(|_b| ws::GetWorkspaceRequest {}),
            OwnWorkspace
        ),
        rpc!(
            "ism.workspaces.v1.WorkspaceService/CreateApiKey",
            workspaces.create_api_key(|_b| ws::CreateApiKeyRequest {
                name: "m".into(),
                role: ws::Role::Agent as i32
            }),
            OwnWorkspace
        ),
        rpc!(
            "ism.workspaces.v1.WorkspaceService/ListApiKeys",
            workspaces.list_api_keys(|_b| ws::ListApiKeysRequest::default()),
            OwnWorkspace
        ),
        rpc!(
            "ism.workspaces.v1.WorkspaceService/RevokeApiKey",
            workspaces.revoke_api_key(|b| ws::RevokeApiKeyRequest {
                id: b.api_key_id.clone()
            }),
            NotFound
        ),
        rpc!(
            "ism.workspaces.v1.WorkspaceService/UpdateWorkspace",
            workspaces.update_workspace(|_b| ws::UpdateWorkspaceRequest {
                name: Some("A renamed".into()),
                ..Default::default()
            }),
            OwnWorkspace
        ),
        rpc!(
            "ism.workspaces.v1.WorkspaceService/CreateWorkspace",
            workspaces.create_workspace(|_b| ws::CreateWorkspaceRequest {
                name: "A sibling".into(),
                ..Default::default()
            }),
            OwnWorkspace
        ),
        rpc!(
            "ism.workspaces.v1.WorkspaceService/ListWorkspaces",
            workspaces.list_workspaces(|_b| ws::ListWorkspacesRequest::default()),
            OwnWorkspace
        ),
        rpc!(
            "ism.workspaces.v1.WorkspaceService/ArchiveWorkspace",
            workspaces.archive_workspace(|b| ws::ArchiveWorkspaceRequest {
                id: b.workspace_id.clone()
            }),
            NotFound
        ),
        rpc!(
            "ism.workspaces.v1.WorkspaceService/GetOrganization",
            workspaces.get_organization(|_b| ws::GetOrganizationRequest {}),
            OwnWorkspace
        ),
        rpc!(
            "ism.workspaces.v1.WorkspaceService/RenameOrganization",
            workspaces.rename_organization(|_b| ws::RenameOrganizationRequest {
                name: "A Inc".into()
            }),
            OwnWorkspace
        ),
        rpc!(
            "ism.workspaces.v1.WorkspaceService/CreateUser",
            workspaces.create_user(|_b| ws::CreateUserRequest {
                email: "agent-cb@example.com".into(),
                display_name: "x".into(),
                role: ws::Role::Agent as i32
            }),
            OwnWorkspace
        ),
        rpc!(
            "ism.workspaces.v1.WorkspaceService/GetUser",
            workspaces.get_user(|b| ws::GetUserRequest {
                id: b.user_id.clone()
            }),
            NotFound
        ),
        rpc!(
            "ism.workspaces.v1.WorkspaceService/ListUsers",
            workspaces.list_users(|_b| ws::ListUsersRequest {
                include_deactivated: true,
                ..Default::default()
            }),
            OwnWorkspace
        ),
        rpc!(
            "ism.workspaces.v1.WorkspaceService/UpdateUser",
            workspaces.update_user(|b| ws::UpdateUserRequest {
                id: b.user_id.clone(),
                display_name: Some("x".into()),
                role: ws::Role::Owner as i32
            }),
            NotFound
        ),
        rpc!(
            "ism.workspaces.v1.WorkspaceService/DeactivateUser",
            workspaces.deactivate_user(|b| ws::DeactivateUserRequest {
                id: b.user_id.clone()
            }),
            NotFound
        ),
        rpc!(
            "ism.workspaces.v1.WorkspaceService/SetUserAvailability",
            workspaces.set_user_availability(|b| ws::SetUserAvailabilityRequest {
                user_id: b.user_id.clone(),
                availability: ws::Availability::Online as i32
            }),
            NotFound
        ),
        rpc!(
            "ism.workspaces.v1.WorkspaceService/IssueUserToken",
            workspaces.issue_user_token(|b| ws::IssueUserTokenRequest {
                user_id: b.tenant.owner_user_id.clone()
            }),
            NotFound
        ),
        rpc!(
            "ism.workspaces.v1.WorkspaceService/CreateTeam",
            workspaces.create_team(|_b| ws::CreateTeamRequest {
                name: "Escalations".into()
            }),
            OwnWorkspace
        ),
        rpc!(
            "ism.workspaces.v1.WorkspaceService/ListTeams",
            workspaces.list_teams(|_b| ws::ListTeamsRequest::default()),
            OwnWorkspace
        ),
        rpc!(
            "ism.workspaces.v1.WorkspaceService/RenameTeam",
            workspaces.rename_team(|b| ws::RenameTeamRequest {
                id: b.team_id.clone(),
                name: "x".into()
            }),
            NotFound
        ),
        rpc!(
            "ism.workspaces.v1.WorkspaceService/DeleteTeam",
            workspaces.delete_team(|b| ws::DeleteTeamRequest {
                id: b.team_id.clone()
            }),
            NotFound
        ),
        rpc!(
            "ism.workspaces.v1.WorkspaceService/AddTeamMember",
            workspaces.add_team_member(|b| ws::AddTeamMemberRequest {
                team_id: b.team_id.clone(),
                user_id: b.user_id.clone()
            }),
            NotFound
        ),
        rpc!(
            "ism.workspaces.v1.WorkspaceService/RemoveTeamMember",
            workspaces.remove_team_member(|b| ws::RemoveTeamMemberRequest {
                team_id: b.team_id.clone(),
                user_id: b.user_id.clone()
            }),
            NotFound
        ),
        rpc!(
            "ism.workspaces.v1.WorkspaceService/ListTeamMembers",
            workspaces.list_team_members(|b| ws::ListTeamMembersRequest {
                team_id: b.team_id.clone(),
                ..Default::default()
            }),
            NotFound
        ),
        rpc!(
            "ism.workspaces.v1.WorkspaceService/ListUserTeams",
            workspaces.list_user_teams(|b| ws::ListUserTeamsRequest {
                user_id: b.user_id.clone(),
                ..Default::default()
            }),
            NotFound
        ),
        rpc!(
            "ism.workspaces.v1.WorkspaceService/ListAuditEvents",
            workspaces.list_audit_events(|_b| ws::ListAuditEventsRequest::default()),
            OwnWorkspace
        ),
        rpc!(
            "ism.gateway.v1.GatewayService/CreateChannel",
            gateway.create_channel(|_b| gateway::CreateChannelRequest {
                r#type: ChannelType::Custom as i32,
                name: "A2".into(),
                outbound_url: "http://127.0.0.1:9/out".into()
            }),
            OwnWorkspace
        ),
        rpc!(
            "ism.gateway.v1.GatewayService/GetChannel",
            gateway.get_channel(|b| gateway::GetChannelRequest {
                id: b.channel_id.clone()
            }),
            NotFound
        ),
        rpc!(
            "ism.gateway.v1.GatewayService/ListChannels",
            gateway.list_channels(|_b| gateway::ListChannelsRequest::default()),
            OwnWorkspace
        ),
        rpc!(
            "ism.gateway.v1.GatewayService/ConnectChannel",
            gateway.connect_channel(|_b| gateway::ConnectChannelRequest {
                r#type: ChannelType::Custom as i32,
                name: "A3".into(),
                outbound_url: "http://127.0.0.1:9/out".into(),
                ..Default::default()
            }),
            OwnWorkspace
        ),
        rpc!(
            "ism.gateway.v1.GatewayService/UpdateChannel",
            gateway.update_channel(|b| gateway::UpdateChannelRequest {
                id: b.channel_id.clone(),
                name: Some("taken over".into()),
                ..Default::default()
            }),
            NotFound
        ),
        rpc!(
            "ism.gateway.v1.GatewayService/TestChannel",
            gateway.test_channel(|b| gateway::TestChannelRequest {
                id: b.channel_id.clone()
            }),
            NotFound
        ),
        rpc!(
            "ism.gateway.v1.GatewayService/DeleteChannel",
            gateway.delete_channel(|b| gateway::DeleteChannelRequest {
                id: b.channel_id.clone()
            }),
            NotFound
        ),
        rpc!(
            "ism.contacts.v1.ContactService/ResolveContact",
            contacts.resolve_contact(|b| contacts::ResolveContactRequest {
                channel_id: b.channel_id.clone(),
                external_id: "cb".into(),
                display_name: "B's sender".into()
            }),
            NotFound
        ),
        rpc!(
            "ism.contacts.v1.ContactService/GetContact",
            contacts.get_contact(|b| contacts::GetContactRequest {
                id: b.contact_id.clone()
            }),
            NotFound
        ),
        rpc!(
            "ism.contacts.v1.ContactService/ListContacts",
            contacts.list_contacts(|_b| contacts::ListContactsRequest::default()),
            OwnWorkspace
        ),
        rpc!(
            "ism.contacts.v1.ContactService/CreateContact",
            contacts.create_contact(|_b| contacts::CreateContactRequest::default()),
            OwnWorkspace
        ),
        rpc!(
            "ism.contacts.v1.ContactService/UpdateContact",
            contacts.update_contact(|b| contacts::UpdateContactRequest {
                id: b.contact_id.clone(),
                version: 1,
                first_name: Some("from A".into()),
                ..Default::default()
            }),
            NotFound
        ),
        rpc!(
            "ism.contacts.v1.ContactService/SetContactBlocked",
            contacts.set_contact_blocked(|b| contacts::SetContactBlockedRequest {
                id: b.contact_id.clone(),
                blocked: true
            }),
            NotFound
        ),
        rpc!(
            "ism.contacts.v1.ContactService/SetBroadcastOptOut",
            contacts.set_broadcast_opt_out(|b| contacts::SetBroadcastOptOutRequest {
                id: b.contact_id.clone(),
                opted_out: true,
            }),
            NotFound
        ),
        rpc!(
            "ism.contacts.v1.ContactService/AddTags",
            contacts.add_tags(|b| contacts::AddTagsRequest {
                contact_ids: vec![b.contact_id.clone()],
                tags: vec!["from-a".into()]
            }),
            NotFound
        ),
        rpc!(
            "ism.contacts.v1.ContactService/RemoveTags",
            contacts.remove_tags(|b| contacts::RemoveTagsRequest {
                contact_ids: vec![b.contact_id.clone()],
                tags: vec!["tag-cb".into()]
            }),
            NotFound
        ),
        rpc!(
            "ism.contacts.v1.ContactService/ListTags",
            contacts.list_tags(|_b| contacts::ListTagsRequest {}),
            OwnWorkspace
        ),
        rpc!(
            "ism.contacts.v1.ContactService/RenameTag",
            contacts.rename_tag(|_b| contacts::RenameTagRequest {
                name: "tag-cb".into(),
                new_name: "from-a".into()
            }),
            NotFound
        ),
        rpc!(
            "ism.contacts.v1.ContactService/DeleteTag",
            contacts.delete_tag(|_b| contacts::DeleteTagRequest {
                name: "tag-cb".into()
            }),
            NotFound
        ),
        rpc!(
            "ism.contacts.v1.ContactService/MergeContacts",
            contacts.merge_contacts(|b| contacts::MergeContactsRequest {
                target_id: b.contact_id.clone(),
                source_id: uuid::Uuid::now_v7().to_string(),
                target_version: 1,
                ..Default::default()
            }),
            NotFound
        ),
        rpc!(
            "ism.contacts.v1.ContactService/ListDuplicates",
            contacts.list_duplicates(|_b| contacts::ListDuplicatesRequest::default()),
            OwnWorkspace
        ),
        rpc!(
            "ism.contacts.v1.ContactService/DeleteContact",
            contacts.delete_contact(|b| contacts::DeleteContactRequest {
                id: b.contact_id.clone()
            }),
            NotFound
        ),
        rpc!(
            "ism.contacts.v1.ContactService/RestoreContact",
            contacts.restore_contact(|b| contacts::RestoreContactRequest {
                id: b.contact_id.clone()
            }),
            NotFound
        ),
        rpc!(
            "ism.contacts.v1.ContactService/CreateContactField",
            contacts.create_contact_field(|_b| contacts::CreateContactFieldRequest {
                field: Some(contacts::ContactField {
                    key: "from_a".into(),
                    label: "From A".into(),
                    r#type: contacts::FieldType::Number as i32,
                    ..Default::default()
                })
            }),
            OwnWorkspace
        ),
        rpc!(
            "ism.contacts.v1.ContactService/ListContactFields",
            contacts.list_contact_fields(|_b| contacts::ListContactFieldsRequest {}),
            OwnWorkspace
        ),
        rpc!(
            "ism.contacts.v1.ContactService/SetLifecycleStages",
            contacts.set_lifecycle_stages(|_b| contacts::SetLifecycleStagesRequest {
                stages: vec![contacts::LifecycleStage {
                    key: "lead".into(),
                    name: "Lead of A".into(),
                }],
            }),
            OwnWorkspace
        ),
        rpc!(
            "ism.contacts.v1.ContactService/ListLifecycleStages",
            contacts.list_lifecycle_stages(|_b| contacts::ListLifecycleStagesRequest {}),
            OwnWorkspace
        ),
        rpc!(
            "ism.contacts.v1.ContactService/UpdateContactField",
            contacts.update_contact_field(|_b| contacts::UpdateContactFieldRequest {
                field: Some(contacts::ContactField {
                    key: "tier".into(),
                    label: "Changed by A".into(),
                    r#type: contacts::FieldType::Text as i32,
                    ..Default::default()
                })
            }),
            OwnWorkspace
        ),
        rpc!(
            "ism.contacts.v1.ContactService/DeleteContactField",
            contacts.delete_contact_field(|_b| contacts::DeleteContactFieldRequest {
                key: "tier".into()
            }),
            OwnWorkspace
        ),
        rpc!(
            "ism.contacts.v1.ContactService/SearchContacts",
            contacts.search_contacts(|_b| contacts::SearchContactsRequest::default()),
            OwnWorkspace
        ),
        rpc!(
            "ism.contacts.v1.ContactService/StreamContacts",
            stream contacts.stream_contacts(|_b| contacts::StreamContactsRequest::default()),
            OwnWorkspace
        ),
        rpc!(
            "ism.contacts.v1.ContactService/MatchContacts",
            contacts.match_contacts(|b| contacts::MatchContactsRequest {
                filter: None,
                contact_ids: vec![b.contact_id.clone()]
            }),
            OwnWorkspace
        ),
        rpc!(
            "ism.contacts.v1.ContactService/ExportContacts",
            stream contacts.export_contacts(|_b| contacts::ExportContactsRequest::default()),
            OwnWorkspace
        ),
        rpc!(
            "ism.contacts.v1.ContactService/CreateSegment",
            contacts.create_segment(|_b| contacts::CreateSegmentRequest {
                name: "from A".into(),
                filter: None
            }),
            OwnWorkspace
        ),
        rpc!(
            "ism.contacts.v1.ContactService/GetSegment",
            contacts.get_segment(|b| contacts::GetSegmentRequest {
                id: b.segment_id.clone()
            }),
            NotFound
        ),
        rpc!(
            "ism.contacts.v1.ContactService/ListSegments",
            contacts.list_segments(|_b| contacts::ListSegmentsRequest::default()),
            OwnWorkspace
        ),
        rpc!(
            "ism.contacts.v1.ContactService/UpdateSegment",
            contacts.update_segment(|b| contacts::UpdateSegmentRequest {
                id: b.segment_id.clone(),
                name: "from A".into(),
                filter: None
            }),
            NotFound
        ),
        rpc!(
            "ism.contacts.v1.ContactService/DeleteSegment",
            contacts.delete_segment(|b| contacts::DeleteSegmentRequest {
                id: b.segment_id.clone()
            }),
            NotFound
        ),
        rpc!(
            "ism.contacts.v1.ContactService/ImportContacts",
            contacts.import_contacts(|_b| import_stream("from-a@example.com")),
            OwnWorkspace
        ),
        rpc!(
            "ism.contacts.v1.ContactService/GetImport",
            contacts.get_import(|b| contacts::GetImportRequest {
                id: b.import_id.clone()
            }),
            NotFound
        ),
        rpc!(
            "ism.conversations.v1.ConversationService/ListConversations",
            conversations
                .list_conversations(|_b| conversations::ListConversationsRequest::default()),
            OwnWorkspace
        ),
        rpc!(
            "ism.conversations.v1.ConversationService/GetConversation",
            conversations.get_conversation(|b| conversations::GetConversationRequest {
                id: b.conversation_id.clone()
            }),
            NotFound
        ),
        rpc!(
            "ism.conversations.v1.ConversationService/ListMessages",
            conversations.list_messages(|b| conversations::ListMessagesRequest {
                conversation_id: b.conversation_id.clone(),
                ..Default::default()
            }),
            NotFound
        ),
        rpc!(
            "ism.conversations.v1.ConversationService/SendMessage",
            conversations.send_message(|b| conversations::SendMessageRequest {
                conversation_id: b.conversation_id.clone(),
                content: text("from A"),
                client_message_id: String::new(),
                snippet_id: String::new()
            }),
            NotFound
        ),
        rpc!(
            "ism.conversations.v1.ConversationService/GetMessage",
            conversations.get_message(|b| conversations::GetMessageRequest {
                id: b.message_id.clone()
            }),
            NotFound
        ),
        rpc!(
            "ism.conversations.v1.ConversationService/AddComment",
            conversations.add_comment(|b| conversations::AddCommentRequest {
                conversation_id: b.conversation_id.clone(),
                body: "from A".into(),
                mentioned_user_ids: vec![]
            }),
            NotFound
        ),
        rpc!(
            "ism.conversations.v1.ConversationService/SnoozeConversation",
            conversations.snooze_conversation(|b| conversations::SnoozeConversationRequest {
                id: b.conversation_id.clone(),
                until: Some(in_an_hour())
            }),
            NotFound
        ),
        rpc!(
            "ism.conversations.v1.ConversationService/WakeConversation",
            conversations.wake_conversation(|b| conversations::WakeConversationRequest {
                id: b.conversation_id.clone()
            }),
            NotFound
        ),
        rpc!(
            "ism.conversations.v1.ConversationService/CloseConversation",
            conversations.close_conversation(|b| conversations::CloseConversationRequest {
                id: b.conversation_id.clone(),
                ..Default::default()
            }),
            NotFound
        ),
        rpc!(
            "ism.conversations.v1.ConversationService/OpenConversation",
            conversations.open_conversation(|b| conversations::OpenConversationRequest {
                id: b.conversation_id.clone(),
            }),
            NotFound
        ),
        rpc!(
            "ism.conversations.v1.ConversationService/AssignConversation",
            conversations.assign_conversation(|b| conversations::AssignConversationRequest {
                id: b.conversation_id.clone(),
                user_id: b.user_id.clone(),
                team_id: b.team_id.clone()
            }),
            NotFound
        ),
        rpc!(
            "ism.conversations.v1.ConversationService/UnassignConversation",
            conversations.unassign_conversation(|b| conversations::UnassignConversationRequest {
                id: b.conversation_id.clone()
            }),
            NotFound
        ),
        rpc!(
            "ism.conversations.v1.ConversationService/AssignNext",
            conversations.assign_next(|b| conversations::AssignNextRequest {
                conversation_id: b.conversation_id.clone(),
                rules: Some(conversations::AssignmentRules {
                    strategy: conversations::AssignmentStrategy::LeastOpen as i32,
                    ..Default::default()
                })
            }),
            NotFound
        ),
        rpc!(
            "ism.conversations.v1.ConversationService/GetConversationSettings",
            conversations
                .get_conversation_settings(|_b| conversations::GetConversationSettingsRequest {}),
            OwnWorkspace
        ),
        rpc!(
            "ism.conversations.v1.ConversationService/UpdateConversationSettings",
            conversations.update_conversation_settings(|_b| {
                conversations::UpdateConversationSettingsRequest {
                    settings: Some(conversations::ConversationSettings {
                        auto_close_minutes: 60,
                        reply_to_closed: true,
                        ..Default::default()
                    }),
                }
            }),
            OwnWorkspace
        ),
        rpc!(
            "ism.conversations.v1.ConversationService/GetReport",
            conversations.get_report(|_b| report_of_today()),
            OwnWorkspace
        ),
        rpc!(
            "ism.conversations.v1.ConversationService/CreateSnippet",
            conversations.create_snippet(|_b| conversations::CreateSnippetRequest {
                shortcut: "from-a".into(),
                title: "From A".into(),
                body: "Hello".into(),
                personal: false
            }),
            OwnWorkspace
        ),
        rpc!(
            "ism.conversations.v1.ConversationService/ListSnippets",
            conversations.list_snippets(|_b| conversations::ListSnippetsRequest::default()),
            OwnWorkspace
        ),
        rpc!(
            "ism.conversations.v1.ConversationService/UpdateSnippet",
            conversations.update_snippet(|b| conversations::UpdateSnippetRequest {
                id: b.snippet_id.clone(),
                shortcut: "x".into(),
                title: "x".into(),
                body: "x".into()
            }),
            NotFound
        ),
        rpc!(
            "ism.conversations.v1.ConversationService/DeleteSnippet",
            conversations.delete_snippet(|b| conversations::DeleteSnippetRequest {
                id: b.snippet_id.clone()
            }),
            NotFound
        ),
        rpc!(
            "ism.conversations.v1.ConversationService/CreateInbox",
            conversations.create_inbox(|_b| conversations::CreateInboxRequest {
                name: "A's view".into(),
                conditions: None
            }),
            OwnWorkspace
        ),
        rpc!(
            "ism.conversations.v1.ConversationService/ListInboxes",
            conversations.list_inboxes(|_b| conversations::ListInboxesRequest::default()),
            OwnWorkspace
        ),
        rpc!(
            "ism.conversations.v1.ConversationService/UpdateInbox",
            conversations.update_inbox(|b| conversations::UpdateInboxRequest {
                id: b.inbox_id.clone(),
                name: "x".into(),
                conditions: None
            }),
            NotFound
        ),
        rpc!(
            "ism.conversations.v1.ConversationService/DeleteInbox",
            conversations.delete_inbox(|b| conversations::DeleteInboxRequest {
                id: b.inbox_id.clone()
            }),
            NotFound
        ),
        rpc!(
            "ism.conversations.v1.ConversationService/ListInboxConversations",
            conversations.list_inbox_conversations(|b| {
                conversations::ListInboxConversationsRequest {
                    inbox_id: b.inbox_id.clone(),
                    ..Default::default()
                }
            }),
            NotFound
        ),
        rpc!(
            "ism.broadcasts.v1.BroadcastService/CreateBroadcast",
            broadcasts.create_broadcast(|b| broadcasts::CreateBroadcastRequest {
                definition: Some(broadcasts::BroadcastDefinition {
                    name: "to B".into(),
                    channel_id: b.channel_id.clone(),
                    audience: Some(broadcasts::Audience {
                        source: Some(broadcasts::audience::Source::SegmentId(
                            b.segment_id.clone()
                        )),
                        exclude: None,
                    }),
                    content: text("hi"),
                    labels: Vec::new(),
                })
            }),
            NotFound
        ),
        rpc!(
            "ism.broadcasts.v1.BroadcastService/GetBroadcast",
            broadcasts.get_broadcast(|b| broadcasts::GetBroadcastRequest {
                id: b.broadcast_id.clone()
            }),
            NotFound
        ),
        rpc!(
            "ism.broadcasts.v1.BroadcastService/ListBroadcasts",
            broadcasts.list_broadcasts(|_b| broadcasts::ListBroadcastsRequest::default()),
            OwnWorkspace
        ),
        rpc!(
            "ism.broadcasts.v1.BroadcastService/UpdateBroadcast",
            broadcasts.update_broadcast(|b| broadcasts::UpdateBroadcastRequest {
                id: b.broadcast_id.clone(),
                definition: None,
            }),
            NotFound
        ),
        rpc!(
            "ism.broadcasts.v1.BroadcastService/DeleteBroadcast",
            broadcasts.delete_broadcast(|b| broadcasts::DeleteBroadcastRequest {
                id: b.broadcast_id.clone()
            }),
            NotFound
        ),
        rpc!(
            "ism.broadcasts.v1.BroadcastService/ScheduleBroadcast",
            broadcasts.schedule_broadcast(|b| broadcasts::ScheduleBroadcastRequest {
                id: b.broadcast_id.clone(),
                send_at: Some(in_an_hour()),
                missed_schedule: 0,
            }),
            NotFound
        ),
        rpc!(
            "ism.broadcasts.v1.BroadcastService/StartBroadcast",
            broadcasts.start_broadcast(|b| broadcasts::StartBroadcastRequest {
                id: b.broadcast_id.clone()
            }),
            NotFound
        ),
        rpc!(
            "ism.broadcasts.v1.BroadcastService/PauseBroadcast",
            broadcasts.pause_broadcast(|b| broadcasts::PauseBroadcastRequest {
                id: b.broadcast_id.clone()
            }),
            NotFound
        ),
        rpc!(
            "ism.broadcasts.v1.BroadcastService/ResumeBroadcast",
            broadcasts.resume_broadcast(|b| broadcasts::ResumeBroadcastRequest {
                id: b.broadcast_id.clone()
            }),
            NotFound
        ),
        rpc!(
            "ism.broadcasts.v1.BroadcastService/CancelBroadcast",
            broadcasts.cancel_broadcast(|b| broadcasts::CancelBroadcastRequest {
                id: b.broadcast_id.clone()
            }),
            NotFound
        ),
        rpc!(
            "ism.broadcasts.v1.BroadcastService/ExportRecipients",
            stream broadcasts.export_recipients(|b| broadcasts::ExportRecipientsRequest {
                broadcast_id: b.broadcast_id.clone(),
                statuses: Vec::new(),
            }),
            NotFound
        ),
        rpc!(
            "ism.broadcasts.v1.BroadcastService/ResendToFailed",
            broadcasts.resend_to_failed(|b| broadcasts::ResendToFailedRequest {
                broadcast_id: b.broadcast_id.clone(),
                name: String::new(),
            }),
            NotFound
        ),
        rpc!(
            "ism.broadcasts.v1.BroadcastService/ListRecipients",
            broadcasts.list_recipients(|b| broadcasts::ListRecipientsRequest {
                broadcast_id: b.broadcast_id.clone(),
                ..Default::default()
            }),
            NotFound
        ),
        rpc!(
            "ism.integrations.v1.IntegrationService/ListWebhookEventTypes",
            integrations
                .list_webhook_event_types(|_b| integrations::ListWebhookEventTypesRequest {}),
            OwnWorkspace
        ),
        rpc!(
            "ism.integrations.v1.IntegrationService/CreateWebhookEndpoint",
            integrations.create_webhook_endpoint(|b| integrations::CreateWebhookEndpointRequest {
                definition: Some(integrations::WebhookEndpointDefinition {
                    url: "http://127.0.0.1:9/a".into(),
                    event_types: vec!["contacts.tag.added".into()],
                    channel_ids: vec![b.channel_id.clone()],
                    ..Default::default()
                }),
            }),
            OwnWorkspace
        ),
        rpc!(
            "ism.integrations.v1.IntegrationService/GetWebhookEndpoint",
            integrations.get_webhook_endpoint(|b| integrations::GetWebhookEndpointRequest {
                endpoint_id: b.webhook_endpoint_id.clone()
            }),
            NotFound
        ),
        rpc!(
            "ism.integrations.v1.IntegrationService/ListWebhookEndpoints",
            integrations.list_webhook_endpoints(|_b| integrations::ListWebhookEndpointsRequest {}),
            OwnWorkspace
        ),
        rpc!(
            "ism.integrations.v1.IntegrationService/UpdateWebhookEndpoint",
            integrations.update_webhook_endpoint(|b| integrations::UpdateWebhookEndpointRequest {
                endpoint_id: b.webhook_endpoint_id.clone(),
                definition: Some(integrations::WebhookEndpointDefinition {
                    url: "http://127.0.0.1:9/b".into(),
                    event_types: vec!["contacts.contact.created".into()],
                    ..Default::default()
                }),
            }),
            NotFound
        ),
        rpc!(
            "ism.integrations.v1.IntegrationService/DeleteWebhookEndpoint",
            integrations.delete_webhook_endpoint(|b| integrations::DeleteWebhookEndpointRequest {
                endpoint_id: b.webhook_endpoint_id.clone()
            }),
            NotFound
        ),
        rpc!(
            "ism.integrations.v1.IntegrationService/SetWebhookEndpointEnabled",
            integrations.set_webhook_endpoint_enabled(|b| {
                integrations::SetWebhookEndpointEnabledRequest {
                    endpoint_id: b.webhook_endpoint_id.clone(),
                    enabled: false,
                }
            }),
            NotFound
        ),
        rpc!(
            "ism.integrations.v1.IntegrationService/RotateWebhookSecret",
            integrations.rotate_webhook_secret(|b| integrations::RotateWebhookSecretRequest {
                endpoint_id: b.webhook_endpoint_id.clone(),
                overlap_seconds: 0,
            }),
            NotFound
        ),
        rpc!(
            "ism.integrations.v1.IntegrationService/TestWebhookEndpoint",
            integrations.test_webhook_endpoint(|b| integrations::TestWebhookEndpointRequest {
                endpoint_id: b.webhook_endpoint_id.clone()
            }),
            NotFound
        ),
        rpc!(
            "ism.integrations.v1.IntegrationService/ListWebhookDeliveries",
            integrations.list_webhook_deliveries(|b| integrations::ListWebhookDeliveriesRequest {
                endpoint_id: b.webhook_endpoint_id.clone(),
                ..Default::default()
            }),
            NotFound
        ),
        rpc!(
            "ism.integrations.v1.IntegrationService/ListWebhookAttempts",
            integrations.list_webhook_attempts(|b| integrations::ListWebhookAttemptsRequest {
                delivery_id: b.webhook_delivery_id.clone()
            }),
            NotFound
        ),
        rpc!(
            "ism.integrations.v1.IntegrationService/ResendWebhookDelivery",
            integrations.resend_webhook_delivery(|b| integrations::ResendWebhookDeliveryRequest {
                delivery_id: b.webhook_delivery_id.clone()
            }),
            NotFound
        ),
        rpc!(
            "ism.integrations.v1.IntegrationService/RecoverWebhookEndpoint",
            integrations.recover_webhook_endpoint(|b| {
                integrations::RecoverWebhookEndpointRequest {
                    endpoint_id: b.webhook_endpoint_id.clone(),
                    since: Some(prost_types::Timestamp {
                        seconds: unix_now() - 3600,
                        nanos: 0,
                    }),
                }
            }),
            NotFound
        ),
        rpc!(
            "ism.integrations.v1.IntegrationService/CreateBot",
            integrations.create_bot(|b| integrations::CreateBotRequest {
                definition: Some(openai_bot(&b.openai_url)),
            }),
            OwnWorkspace
        ),
        rpc!(
            "ism.integrations.v1.IntegrationService/GetBot",
            integrations.get_bot(|b| integrations::GetBotRequest {
                bot_id: b.bot_id.clone()
            }),
            NotFound
        ),
        rpc!(
            "ism.integrations.v1.IntegrationService/ListBots",
            integrations.list_bots(|_b| integrations::ListBotsRequest {}),
            OwnWorkspace
        ),
        rpc!(
            "ism.integrations.v1.IntegrationService/UpdateBot",
            integrations.update_bot(|b| integrations::UpdateBotRequest {
                bot_id: b.bot_id.clone(),
                definition: Some(openai_bot(&b.openai_url)),
            }),
            NotFound
        ),
        rpc!(
            "ism.integrations.v1.IntegrationService/DeleteBot",
            integrations.delete_bot(|b| integrations::DeleteBotRequest {
                bot_id: b.bot_id.clone()
            }),
            NotFound
        ),
        rpc!(
            "ism.integrations.v1.IntegrationService/SetBotEnabled",
            integrations.set_bot_enabled(|b| integrations::SetBotEnabledRequest {
                bot_id: b.bot_id.clone(),
                enabled: true,
            }),
            NotFound
        ),
        rpc!(
            "ism.integrations.v1.IntegrationService/TestBot",
            integrations.test_bot(|b| integrations::TestBotRequest {
                bot_id: b.bot_id.clone(),
                text: "hello".into(),
            }),
            NotFound
        ),
        rpc!(
            "ism.workflows.v1.WorkflowService/CreateWorkflow",
            workflows.create_workflow(|_b| workflows::CreateWorkflowRequest {
                definition: Some(commenting_workflow("mine")),
            }),
            OwnWorkspace
        ),
        rpc!(
            "ism.workflows.v1.WorkflowService/GetWorkflow",
            workflows.get_workflow(|b| workflows::GetWorkflowRequest {
                workflow_id: b.workflow_id.clone()
            }),
            NotFound
        ),
        rpc!(
            "ism.workflows.v1.WorkflowService/ListWorkflows",
            workflows.list_workflows(|_b| workflows::ListWorkflowsRequest {}),
            OwnWorkspace
        ),
        rpc!(
            "ism.workflows.v1.WorkflowService/UpdateWorkflow",
            workflows.update_workflow(|b| workflows::UpdateWorkflowRequest {
                workflow_id: b.workflow_id.clone(),
                definition: Some(commenting_workflow("changed")),
            }),
            NotFound
        ),
        rpc!(
            "ism.workflows.v1.WorkflowService/PublishWorkflow",
            workflows.publish_workflow(|b| workflows::PublishWorkflowRequest {
                workflow_id: b.workflow_id.clone()
            }),
            NotFound
        ),
        rpc!(
            "ism.workflows.v1.WorkflowService/SetWorkflowEnabled",
            workflows.set_workflow_enabled(|b| workflows::SetWorkflowEnabledRequest {
                workflow_id: b.workflow_id.clone(),
                enabled: true,
            }),
            NotFound
        ),
        rpc!(
            "ism.workflows.v1.WorkflowService/DeleteWorkflow",
            workflows.delete_workflow(|b| workflows::DeleteWorkflowRequest {
                workflow_id: b.workflow_id.clone()
            }),
            NotFound
        ),
        rpc!(
            "ism.workflows.v1.WorkflowService/StartRun",
            workflows.start_run(|b| workflows::StartRunRequest {
                workflow_id: b.workflow_id.clone(),
                conversation_id: b.conversation_id.clone(),
            }),
            NotFound
        ),
        rpc!(
            "ism.workflows.v1.WorkflowService/ListRuns",
            workflows.list_runs(|b| workflows::ListRunsRequest {
                workflow_id: b.workflow_id.clone(),
                ..Default::default()
            }),
            OwnWorkspace
        ),
        rpc!(
            "ism.workflows.v1.WorkflowService/GetRun",
            workflows.get_run(|b| workflows::GetRunRequest {
                run_id: b.run_id.clone()
            }),
            NotFound
        ),
        rpc!(
            "ism.workflows.v1.WorkflowService/CancelRun",
            workflows.cancel_run(|b| workflows::CancelRunRequest {
                run_id: b.run_id.clone()
            }),
            NotFound
        ),
        rpc!(
            "ism.workflows.v1.WorkflowService/RetryRun",
            workflows.retry_run(|b| workflows::RetryRunRequest {
                run_id: b.run_id.clone()
            }),
            NotFound
        ),
        rpc!(
            "ism.workflows.v1.WorkflowService/ReceiveWebhook",
            workflows.receive_webhook(|b| workflows::ReceiveWebhookRequest {
                workflow_id: b.workflow_id.clone(),
                body: b"{}".to_vec(),
                ..Default::default()
            }),
            NotFound
        ),
    ]
}

/// `Service/Method` of every RPC the platform serves, from its own descriptors.
fn served_rpcs() -> Vec<String> {
    let set = prost_types::FileDescriptorSet::decode(ism_proto::FILE_DESCRIPTOR_SET)
        .expect("descriptor set");
    let mut rpcs = Vec::new();
    for file in set.file {
        let package = file.package().to_owned();
        if !package.starts_with("ism.") {
            continue;
        }
        for service in file.service {
            let name = service.name().to_owned();
            for method in service.method {
                rpcs.push(format!("{package}.{name}/{}", method.name()));
            }
        }
    }
    rpcs
}

#[test]
fn the_isolation_matrix_names_every_rpc_of_every_service() {
    let listed: Vec<&str> = isolation_matrix().iter().map(|c| c.rpc).collect();
    let missing: Vec<String> = served_rpcs()
        .into_iter()
        .filter(|rpc| !listed.contains(&rpc.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "add a line to isolation_matrix() for {missing:?}"
    );
    let mut unique = listed.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), listed.len(), "an RPC is listed twice");
}

#[tokio::test]
async fn a_workspace_never_reaches_another_through_any_rpc() {
    let receiver = Receiver::start().await;
    let (platform, tenant_a) = Platform::start(&receiver.url).await;
    let tenant_b = platform.bootstrap(&receiver.url);
    let a = populate(&platform, tenant_a, "ca").await;
    let b = Arc::new(populate(&platform, tenant_b, "cb").await);
    let as_a = Api::connect(&platform, &a.token).await;
    let before = snapshot(&as_a, &b).await;

    for case in isolation_matrix() {
        if case.expect == Expect::Public {
            continue;
        }
        let result = (case.call)(as_a.clone(), b.clone()).await;
        match (case.expect, result) {
            (Expect::NotFound, Err(status)) => {
                assert_eq!(status.code(), Code::NotFound, "{}: {status:?}", case.rpc);
                for id in b.secret_ids() {
                    assert!(!status.message().contains(id), "{} reveals {id}", case.rpc);
                }
            }
            (Expect::OwnWorkspace, Ok(response)) => {
                for id in b.secret_ids() {
                    assert!(
                        !response.contains(id),
                        "{} shows B's {id}: {response}",
                        case.rpc
                    );
                }
            }
            (expect, result) => panic!("{}: expected {expect:?}, got {result:?}", case.rpc),
        }
    }

    assert_eq!(snapshot(&as_a, &b).await, before, "B's data changed");
}

/// Everything `side` can read about itself, through the APIs.
async fn snapshot(api: &Api, side: &Side) -> Vec<String> {
    let c = api.clone();
    let t = &side.token;
    let (mut w, mut g, mut k, mut v) = (c.workspaces, c.gateway, c.contacts, c.conversations);
    let mut casts = c.broadcasts;
    let mut hooks = c.integrations;
    let mut flows = c.workflows;
    let all_users = ws::ListUsersRequest {
        include_deactivated: true,
        ..Default::default()
    };
    let members = ws::ListTeamMembersRequest {
        team_id: side.team_id.clone(),
        ..Default::default()
    };
    let messages = conversations::ListMessagesRequest {
        conversation_id: side.conversation_id.clone(),
        ..Default::default()
    };
    vec![
        format!(
            "{:?}",
            w.get_workspace(authed(t, ws::GetWorkspaceRequest {})).await
        ),
        format!(
            "{:?}",
            w.get_organization(authed(t, ws::GetOrganizationRequest {}))
                .await
        ),
        format!(
            "{:?}",
            w.list_api_keys(authed(t, ws::ListApiKeysRequest::default()))
                .await
        ),
        format!("{:?}", w.list_users(authed(t, all_users)).await),
        format!(
            "{:?}",
            w.list_teams(authed(t, ws::ListTeamsRequest::default()))
                .await
        ),
        format!("{:?}", w.list_team_members(authed(t, members)).await),
        // Details are a map: sorted, so that equal data prints equally.
        format!(
            "{:?}",
            w.list_audit_events(authed(t, ws::ListAuditEventsRequest::default()))
                .await
                .map(|r| r
                    .into_inner()
                    .events
                    .into_iter()
                    .map(|e| (e.id, e.actor, e.action, e.target, e.occurred_at, {
                        e.details.into_iter().collect::<BTreeMap<_, _>>()
                    }))
                    .collect::<Vec<_>>())
        ),
        format!(
            "{:?}",
            g.list_channels(authed(t, gateway::ListChannelsRequest::default()))
                .await
        ),
        format!(
            "{:?}",
            k.list_contacts(authed(t, contacts::ListContactsRequest::default()))
                .await
        ),
        format!(
            "{:?}",
            k.list_contact_fields(authed(t, contacts::ListContactFieldsRequest {}))
                .await
        ),
        format!(
            "{:?}",
            k.list_lifecycle_stages(authed(t, contacts::ListLifecycleStagesRequest {}))
                .await
        ),
        format!(
            "{:?}",
            k.list_tags(authed(t, contacts::ListTagsRequest {})).await
        ),
        format!(
            "{:?}",
            k.list_segments(authed(t, contacts::ListSegmentsRequest::default()))
                .await
        ),
        format!(
            "{:?}",
            v.list_conversations(authed(
                t,
                conversations::ListConversationsRequest::default()
            ))
            .await
        ),
        format!("{:?}", v.list_messages(authed(t, messages)).await),
        format!(
            "{:?}",
            casts
                .list_broadcasts(authed(t, broadcasts::ListBroadcastsRequest::default()))
                .await
        ),
        format!(
            "{:?}",
            hooks
                .list_webhook_endpoints(authed(t, integrations::ListWebhookEndpointsRequest {}))
                .await
                .map(|r| r
                    .into_inner()
                    .endpoints
                    .into_iter()
                    .map(|e| (
                        e.id,
                        e.definition,
                        e.state,
                        e.disabled_reason,
                        e.update_time
                    ))
                    .collect::<Vec<_>>())
        ),
        format!(
            "{:?}",
            flows
                .list_workflows(authed(t, workflows::ListWorkflowsRequest {}))
                .await
        ),
        format!(
            "{:?}",
            flows
                .list_runs(authed(
                    t,
                    workflows::ListRunsRequest {
                        workflow_id: side.workflow_id.clone(),
                        ..Default::default()
                    }
                ))
                .await
        ),
        format!(
            "{:?}",
            hooks
                .list_bots(authed(t, integrations::ListBotsRequest {}))
                .await
                .map(|r| r
                    .into_inner()
                    .bots
                    .into_iter()
                    .map(|b| (b.id, b.definition, b.enabled))
                    .collect::<Vec<_>>())
        ),
        format!(
            "{:?}",
            hooks
                .list_webhook_deliveries(authed(
                    t,
                    integrations::ListWebhookDeliveriesRequest {
                        endpoint_id: side.webhook_endpoint_id.clone(),
                        ..Default::default()
                    }
                ))
                .await
                .map(|r| r
                    .into_inner()
                    .deliveries
                    .into_iter()
                    .map(|d| (d.id, d.state))
                    .collect::<Vec<_>>())
        ),
    ]
    .into_iter()
    // Metadata carries per-call values (dates, request ids); the messages are the data.
    .map(|s| s.split("message: ").nth(1).unwrap_or(&s).to_owned())
    .collect()
}
