//! Access: the wall between workspaces for every RPC of every service, roles against every
//! administrative RPC, and what happens to expired, revoked and tampered tokens.
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ism_e2e::{Platform, Receiver, Tenant, authed, eventually};
use ism_proto::contacts::v1 as contacts;
use ism_proto::contacts::v1::contact_service_client::ContactServiceClient;
use ism_proto::conversations::v1 as conversations;
use ism_proto::conversations::v1::conversation_service_client::ConversationServiceClient;
use ism_proto::gateway::v1 as gateway;
use ism_proto::gateway::v1::gateway_service_client::GatewayServiceClient;
use ism_proto::types::v1::{ChannelType, MessageContent, Text, message_content};
use ism_proto::workspaces::v1 as ws;
use ism_proto::workspaces::v1::workspace_service_client::WorkspaceServiceClient;
use prost::Message;
use serde_json::json;
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// One client per service of a platform.
#[derive(Clone)]
struct Clients {
    workspaces: WorkspaceServiceClient<Channel>,
    gateway: GatewayServiceClient<Channel>,
    contacts: ContactServiceClient<Channel>,
    conversations: ConversationServiceClient<Channel>,
}

impl Clients {
    async fn of(platform: &Platform) -> Self {
        let connect = |service: &'static str| async move {
            platform
                .channel(service)
                .connect()
                .await
                .expect("reachable")
        };
        Self {
            workspaces: WorkspaceServiceClient::new(connect("workspaces").await),
            gateway: GatewayServiceClient::new(connect("gateway").await),
            contacts: ContactServiceClient::new(connect("contacts").await),
            conversations: ConversationServiceClient::new(connect("conversations").await),
        }
    }
}

/// A Workspace with one of everything: a channel, a contact with a conversation and a
/// message, a User in a Team, and an extra API key.
#[derive(Debug, Clone)]
struct Side {
    tenant: Tenant,
    token: String,
    workspace_id: String,
    channel_id: String,
    contact_id: String,
    conversation_id: String,
    message_id: String,
    user_id: String,
    team_id: String,
    api_key_id: String,
    snippet_id: String,
    inbox_id: String,
    segment_id: String,
    import_id: String,
}

impl Side {
    /// Ids a response to another Workspace must never contain (the channel id is left
    /// out: a caller may name it in ResolveContact).
    fn secret_ids(&self) -> [&str; 12] {
        [
            &self.snippet_id,
            &self.inbox_id,
            &self.segment_id,
            &self.import_id,
            &self.workspace_id,
            &self.contact_id,
            &self.conversation_id,
            &self.message_id,
            &self.user_id,
            &self.team_id,
            &self.api_key_id,
            &self.tenant.owner_user_id,
        ]
    }
}

/// An ImportContacts upload of one row with `email`.
fn import_stream(
    email: &str,
) -> impl futures::Stream<Item = contacts::ImportContactsRequest> + Send + 'static {
    use contacts::import_contacts_request::Part;
    let settings = contacts::ImportSettings {
        columns: vec![contacts::ColumnMapping {
            column: "email".into(),
            field: "email".into(),
        }],
        r#match: contacts::ImportMatch::Email as i32,
        channel_id: String::new(),
    };
    futures::stream::iter([
        contacts::ImportContactsRequest {
            part: Some(Part::Settings(settings)),
        },
        contacts::ImportContactsRequest {
            part: Some(Part::Data(format!("email\n{email}\n").into_bytes())),
        },
    ])
}

async fn populate(platform: &Platform, clients: &Clients, tenant: Tenant, sender: &str) -> Side {
    let body = serde_json::to_vec(
        &json!({"message_id": format!("{sender}-1"), "from": {"id": sender}, "text": "hello"}),
    )
    .unwrap();
    let (code, _) = platform
        .webhook(&tenant.channel_id, Some(&tenant.webhook_secret), &body)
        .await;
    assert_eq!(code, 200);
    let token = platform.token(&tenant).await;
    let conversation = eventually(Duration::from_secs(30), "the conversation", || {
        let mut client = clients.conversations.clone();
        let token = token.clone();
        async move {
            client
                .list_conversations(authed(
                    &token,
                    conversations::ListConversationsRequest::default(),
                ))
                .await
                .ok()?
                .into_inner()
                .conversations
                .pop()
        }
    })
    .await;
    let message = eventually(Duration::from_secs(30), "the message", || {
        let mut client = clients.conversations.clone();
        let request = conversations::ListMessagesRequest {
            conversation_id: conversation.id.clone(),
            ..Default::default()
        };
        let token = token.clone();
        async move {
            client
                .list_messages(authed(&token, request))
                .await
                .ok()?
                .into_inner()
                .messages
                .pop()
        }
    })
    .await;
    let mut w = clients.workspaces.clone();
    let user = w
        .create_user(authed(
            &token,
            ws::CreateUserRequest {
                email: format!("agent-{sender}@example.com"),
                display_name: "Agent".into(),
                role: ws::Role::Agent as i32,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    let team = w
        .create_team(authed(
            &token,
            ws::CreateTeamRequest {
                name: "Support".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .team
        .unwrap();
    w.add_team_member(authed(
        &token,
        ws::AddTeamMemberRequest {
            team_id: team.id.clone(),
            user_id: user.id.clone(),
        },
    ))
    .await
    .unwrap();
    let key = w
        .create_api_key(authed(
            &token,
            ws::CreateApiKeyRequest {
                name: "integration".into(),
                role: ws::Role::Agent as i32,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .api_key
        .unwrap();
    let mut v = clients.conversations.clone();
    let snippet = v
        .create_snippet(authed(
            &token,
            conversations::CreateSnippetRequest {
                shortcut: "thanks".into(),
                title: "Thanks".into(),
                body: "Thank you, {{ contact.first_name }}!".into(),
                personal: false,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .snippet
        .unwrap();
    let inbox = v
        .create_inbox(authed(
            &token,
            conversations::CreateInboxRequest {
                name: "Waiting".into(),
                conditions: Some(conversations::InboxConditions {
                    unread: true,
                    ..Default::default()
                }),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .inbox
        .unwrap();
    let mut k = clients.contacts.clone();
    k.add_tags(authed(
        &token,
        contacts::AddTagsRequest {
            contact_ids: vec![conversation.contact_id.clone()],
            tags: vec![format!("tag-{sender}")],
        },
    ))
    .await
    .unwrap();
    k.create_contact_field(authed(
        &token,
        contacts::CreateContactFieldRequest {
            field: Some(contacts::ContactField {
                key: "tier".into(),
                label: "Tier".into(),
                r#type: contacts::FieldType::Text as i32,
                ..Default::default()
            }),
        },
    ))
    .await
    .unwrap();
    let segment = k
        .create_segment(authed(
            &token,
            contacts::CreateSegmentRequest {
                name: format!("segment-{sender}"),
                filter: Some(contacts::Filter::default()),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .segment
        .unwrap();
    let import = k
        .import_contacts(authed(
            &token,
            import_stream(&format!("{sender}@example.com")),
        ))
        .await
        .unwrap()
        .into_inner()
        .import
        .unwrap();
    Side {
        snippet_id: snippet.id,
        inbox_id: inbox.id,
        segment_id: segment.id,
        import_id: import.id,
        workspace_id: tenant.workspace_id.clone(),
        channel_id: tenant.channel_id.clone(),
        tenant,
        token,
        contact_id: conversation.contact_id.clone(),
        conversation_id: conversation.id,
        message_id: message.id,
        user_id: user.id,
        team_id: team.id,
        api_key_id: key.id,
    }
}

/// Everything `side` can read about itself, through the APIs.
async fn snapshot(clients: &Clients, side: &Side) -> Vec<String> {
    let c = clients.clone();
    let t = &side.token;
    let (mut w, mut g, mut k, mut v) = (c.workspaces, c.gateway, c.contacts, c.conversations);
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
    ]
    .into_iter()
    // Metadata carries per-call values (dates, request ids); the messages are the data.
    .map(|s| s.split("message: ").nth(1).unwrap_or(&s).to_owned())
    .collect()
}

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

type Reply = Pin<Box<dyn Future<Output = Result<String, Status>> + Send>>;

/// One row of the isolation matrix.
struct Case {
    rpc: &'static str,
    expect: Expect,
    call: fn(Clients, String, Arc<Side>) -> Reply,
}

/// `rpc!("Service/Method", client.method(|b| request), Expect)`: one line per RPC.
macro_rules! rpc {
    ($rpc:literal, stream $client:ident . $method:ident(|$b:ident| $request:expr), $expect:ident) => {
        Case {
            rpc: $rpc,
            expect: Expect::$expect,
            call: |clients: Clients, token: String, $b: Arc<Side>| -> Reply {
                Box::pin(async move {
                    let mut client = clients.$client;
                    let request = $request;
                    let mut stream = client.$method(authed(&token, request)).await?.into_inner();
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
            call: |clients: Clients, token: String, $b: Arc<Side>| -> Reply {
                Box::pin(async move {
                    let mut client = clients.$client;
                    let request = $request;
                    client
                        .$method(authed(&token, request))
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

fn report_of_today() -> conversations::GetReportRequest {
    let now = unix_now();
    conversations::GetReportRequest {
        from: Some(prost_types::Timestamp {
            seconds: now - 86_400,
            nanos: 0,
        }),
        to: Some(prost_types::Timestamp {
            seconds: now + 60,
            nanos: 0,
        }),
        group_by: conversations::ReportGrouping::Day as i32,
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
            OwnWorkspace
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
            OwnWorkspace
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
    let clients = Clients::of(&platform).await;
    let a = populate(&platform, &clients, tenant_a, "ca").await;
    let b = Arc::new(populate(&platform, &clients, tenant_b, "cb").await);
    let before = snapshot(&clients, &b).await;

    for case in isolation_matrix() {
        if case.expect == Expect::Public {
            continue;
        }
        let result = (case.call)(clients.clone(), a.token.clone(), b.clone()).await;
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

    assert_eq!(snapshot(&clients, &b).await, before, "B's data changed");
}

/// One row of the role matrix: an administrative RPC and the least role allowed it.
struct RoleCase {
    rpc: &'static str,
    least: ws::Role,
    call: fn(Clients, String, Arc<Side>) -> Reply,
}

/// `admin!("Method", least role, client.method(|a| request))`: one line per RPC.
macro_rules! admin {
    ($rpc:literal, $least:ident, $client:ident . $method:ident(|$a:ident| $request:expr)) => {
        RoleCase {
            rpc: $rpc,
            least: ws::Role::$least,
            call: |clients: Clients, token: String, $a: Arc<Side>| -> Reply {
                Box::pin(async move {
                    let mut client = clients.$client;
                    let request = $request;
                    client
                        .$method(authed(&token, request))
                        .await
                        .map(|r| format!("{:?}", r.into_inner()))
                })
            },
        }
    };
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

fn role_matrix() -> Vec<RoleCase> {
    vec![
        admin!(
            "CreateApiKey",
            Owner,
            workspaces.create_api_key(|_a| ws::CreateApiKeyRequest {
                name: "k".into(),
                role: ws::Role::Agent as i32
            })
        ),
        admin!(
            "ListApiKeys",
            Owner,
            workspaces.list_api_keys(|_a| ws::ListApiKeysRequest::default())
        ),
        admin!(
            "RevokeApiKey",
            Owner,
            workspaces.revoke_api_key(|a| ws::RevokeApiKeyRequest {
                id: a.api_key_id.clone()
            })
        ),
        admin!(
            "UpdateWorkspace",
            Manager,
            workspaces.update_workspace(|_a| ws::UpdateWorkspaceRequest {
                timezone: Some("Europe/Berlin".into()),
                ..Default::default()
            })
        ),
        admin!(
            "CreateWorkspace",
            Owner,
            workspaces.create_workspace(|_a| ws::CreateWorkspaceRequest {
                name: unique("ws"),
                ..Default::default()
            })
        ),
        admin!(
            "ListWorkspaces",
            Owner,
            workspaces.list_workspaces(|_a| ws::ListWorkspacesRequest::default())
        ),
        admin!(
            "ArchiveWorkspace",
            Owner,
            workspaces.archive_workspace(|a| ws::ArchiveWorkspaceRequest {
                id: a.channel_id.clone()
            })
        ),
        admin!(
            "RenameOrganization",
            Owner,
            workspaces.rename_organization(|_a| ws::RenameOrganizationRequest {
                name: unique("org")
            })
        ),
        admin!(
            "ListAuditEvents",
            Owner,
            workspaces.list_audit_events(|_a| ws::ListAuditEventsRequest::default())
        ),
        admin!(
            "CreateUser",
            Manager,
            workspaces.create_user(|_a| ws::CreateUserRequest {
                email: format!("{}@example.com", unique("u")),
                display_name: "U".into(),
                role: ws::Role::Agent as i32
            })
        ),
        admin!(
            "UpdateUser",
            Manager,
            workspaces.update_user(|a| ws::UpdateUserRequest {
                id: a.user_id.clone(),
                display_name: Some(unique("n")),
                role: 0
            })
        ),
        admin!(
            "SetUserAvailability",
            Manager,
            workspaces.set_user_availability(|a| ws::SetUserAvailabilityRequest {
                user_id: a.user_id.clone(),
                availability: ws::Availability::Away as i32
            })
        ),
        admin!(
            "IssueUserToken",
            Manager,
            workspaces.issue_user_token(|a| ws::IssueUserTokenRequest {
                user_id: a.user_id.clone()
            })
        ),
        admin!(
            "CreateTeam",
            Manager,
            workspaces.create_team(|_a| ws::CreateTeamRequest {
                name: unique("team")
            })
        ),
        admin!(
            "RenameTeam",
            Manager,
            workspaces.rename_team(|a| ws::RenameTeamRequest {
                id: a.team_id.clone(),
                name: unique("team")
            })
        ),
        admin!(
            "AddTeamMember",
            Manager,
            workspaces.add_team_member(|a| ws::AddTeamMemberRequest {
                team_id: a.team_id.clone(),
                user_id: a.user_id.clone()
            })
        ),
        admin!(
            "RemoveTeamMember",
            Manager,
            workspaces.remove_team_member(|a| ws::RemoveTeamMemberRequest {
                team_id: a.team_id.clone(),
                user_id: a.user_id.clone()
            })
        ),
        admin!(
            "DeleteTeam",
            Manager,
            workspaces.delete_team(|a| ws::DeleteTeamRequest {
                id: a.team_id.clone()
            })
        ),
        admin!(
            "DeactivateUser",
            Manager,
            workspaces.deactivate_user(|a| ws::DeactivateUserRequest {
                id: a.user_id.clone()
            })
        ),
        admin!(
            "GetConversationSettings",
            Manager,
            conversations
                .get_conversation_settings(|_a| conversations::GetConversationSettingsRequest {})
        ),
        admin!(
            "UpdateConversationSettings",
            Manager,
            conversations.update_conversation_settings(|_a| {
                conversations::UpdateConversationSettingsRequest {
                    settings: Some(conversations::ConversationSettings {
                        auto_close_minutes: 1440,
                        reply_to_closed: true,
                        ..Default::default()
                    }),
                }
            })
        ),
        admin!(
            "GetReport",
            Manager,
            conversations.get_report(|_a| report_of_today())
        ),
        admin!(
            "CreateSnippet",
            Manager,
            conversations.create_snippet(|_a| conversations::CreateSnippetRequest {
                shortcut: unique("s"),
                title: "Shared".into(),
                body: "Hello".into(),
                personal: false
            })
        ),
        admin!(
            "UpdateSnippet",
            Manager,
            conversations.update_snippet(|a| conversations::UpdateSnippetRequest {
                id: a.snippet_id.clone(),
                shortcut: unique("s"),
                title: "Shared".into(),
                body: "Hi".into()
            })
        ),
        admin!(
            "DeleteSnippet",
            Manager,
            conversations.delete_snippet(|a| conversations::DeleteSnippetRequest {
                id: a.snippet_id.clone()
            })
        ),
        admin!(
            "CreateInbox",
            Manager,
            conversations.create_inbox(|_a| conversations::CreateInboxRequest {
                name: unique("view"),
                conditions: None
            })
        ),
        admin!(
            "UpdateInbox",
            Manager,
            conversations.update_inbox(|a| conversations::UpdateInboxRequest {
                id: a.inbox_id.clone(),
                name: unique("view"),
                conditions: None
            })
        ),
        admin!(
            "DeleteInbox",
            Manager,
            conversations.delete_inbox(|a| conversations::DeleteInboxRequest {
                id: a.inbox_id.clone()
            })
        ),
        admin!(
            "CreateChannel",
            Manager,
            gateway.create_channel(|_a| gateway::CreateChannelRequest {
                r#type: ChannelType::Custom as i32,
                name: unique("ch"),
                outbound_url: "http://127.0.0.1:9/out".into()
            })
        ),
        admin!(
            "ConnectChannel",
            Manager,
            gateway.connect_channel(|_a| gateway::ConnectChannelRequest {
                r#type: ChannelType::Custom as i32,
                name: unique("ch"),
                outbound_url: "http://127.0.0.1:9/out".into(),
                ..Default::default()
            })
        ),
        admin!(
            "CreateContactField",
            Manager,
            contacts.create_contact_field(|_a| contacts::CreateContactFieldRequest {
                field: Some(contacts::ContactField {
                    key: "f_".to_owned() + &uuid::Uuid::new_v4().simple().to_string()[..8],
                    label: "F".into(),
                    r#type: contacts::FieldType::Text as i32,
                    ..Default::default()
                })
            })
        ),
        admin!(
            "UpdateContactField",
            Manager,
            contacts.update_contact_field(|_a| contacts::UpdateContactFieldRequest {
                field: Some(contacts::ContactField {
                    key: "tier".into(),
                    label: unique("Tier"),
                    r#type: contacts::FieldType::Text as i32,
                    ..Default::default()
                })
            })
        ),
        admin!(
            "DeleteContactField",
            Manager,
            contacts.delete_contact_field(|_a| contacts::DeleteContactFieldRequest {
                key: "tier".into()
            })
        ),
        admin!(
            "RenameTag",
            Manager,
            contacts.rename_tag(|_a| contacts::RenameTagRequest {
                name: "tag-ca".into(),
                new_name: unique("tag")
            })
        ),
        admin!(
            "DeleteTag",
            Manager,
            contacts.delete_tag(|_a| contacts::DeleteTagRequest {
                name: "tag-ca".into()
            })
        ),
        admin!(
            "DeleteSegment",
            Manager,
            contacts.delete_segment(|a| contacts::DeleteSegmentRequest {
                id: a.segment_id.clone()
            })
        ),
        admin!(
            "ImportContacts",
            Manager,
            contacts.import_contacts(|_a| import_stream("role@example.com"))
        ),
        admin!(
            "GetImport",
            Manager,
            contacts.get_import(|a| contacts::GetImportRequest {
                id: a.import_id.clone()
            })
        ),
        admin!(
            "MergeContacts",
            Manager,
            contacts.merge_contacts(|a| contacts::MergeContactsRequest {
                target_id: a.contact_id.clone(),
                source_id: uuid::Uuid::now_v7().to_string(),
                target_version: 1,
                ..Default::default()
            })
        ),
        admin!(
            "UpdateChannel",
            Manager,
            gateway.update_channel(|a| gateway::UpdateChannelRequest {
                id: a.channel_id.clone(),
                rate_limit_per_second: Some(5),
                ..Default::default()
            })
        ),
        admin!(
            "TestChannel",
            Manager,
            gateway.test_channel(|a| gateway::TestChannelRequest {
                id: a.channel_id.clone()
            })
        ),
        admin!(
            "DeleteChannel",
            Manager,
            gateway.delete_channel(|a| gateway::DeleteChannelRequest {
                id: a.channel_id.clone()
            })
        ),
        admin!(
            "DeleteContact",
            Manager,
            contacts.delete_contact(|a| contacts::DeleteContactRequest {
                id: a.contact_id.clone()
            })
        ),
        admin!(
            "RestoreContact",
            Manager,
            contacts.restore_contact(|a| contacts::RestoreContactRequest {
                id: a.contact_id.clone()
            })
        ),
    ]
}

async fn key_token(clients: &Clients, owner: &str, role: ws::Role) -> String {
    let mut w = clients.workspaces.clone();
    let secret = w
        .create_api_key(authed(
            owner,
            ws::CreateApiKeyRequest {
                name: "role".into(),
                role: role as i32,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .secret;
    w.exchange_api_key(ws::ExchangeApiKeyRequest { api_key: secret })
        .await
        .unwrap()
        .into_inner()
        .access_token
}

#[tokio::test]
async fn each_role_may_call_exactly_the_administrative_rpcs_it_should() {
    let receiver = Receiver::start().await;
    let (platform, tenant) = Platform::start(&receiver.url).await;
    let clients = Clients::of(&platform).await;
    let a = Arc::new(populate(&platform, &clients, tenant, "ca").await);
    let mut roles = Vec::new();
    for role in [ws::Role::Agent, ws::Role::Manager, ws::Role::Owner] {
        roles.push((role, key_token(&clients, &a.token, role).await));
    }
    // A sibling Workspace for ArchiveWorkspace (its id travels in `channel_id`).
    let sibling = clients
        .workspaces
        .clone()
        .create_workspace(authed(
            &a.token,
            ws::CreateWorkspaceRequest {
                name: "to archive".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .workspace
        .unwrap();
    let fixtures = Arc::new(Side {
        channel_id: sibling.id,
        ..(*a).clone()
    });

    for case in role_matrix() {
        // Weakest role first, so a successful destructive call comes last.
        for (role, token) in &roles {
            let result = (case.call)(clients.clone(), token.clone(), fixtures.clone()).await;
            let allowed = (*role as i32) <= (case.least as i32);
            match result {
                Err(status) if status.code() == Code::PermissionDenied => {
                    assert!(!allowed, "{} denied to {role:?}: {status:?}", case.rpc)
                }
                other => assert!(allowed, "{} allowed to {role:?}: {other:?}", case.rpc),
            }
        }
    }
}

/// Signs `claims` with the platform's own signing key, read from its database.
async fn sign_with_platform_key(platform: &Platform, claims: serde_json::Value) -> String {
    let pool = platform.database("workspaces").await;
    let pkcs8: Vec<u8> = sqlx::query_scalar("SELECT pkcs8 FROM signing_keys LIMIT 1")
        .fetch_one(&pool)
        .await
        .unwrap();
    let mut keys =
        WorkspaceServiceClient::new(platform.channel("workspaces").connect().await.unwrap());
    let kid = keys
        .get_public_keys(ws::GetPublicKeysRequest {})
        .await
        .unwrap()
        .into_inner()
        .keys
        .remove(0)
        .kid;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(kid);
    jsonwebtoken::encode(
        &header,
        &claims,
        &jsonwebtoken::EncodingKey::from_ed_der(&pkcs8),
    )
    .unwrap()
}

#[tokio::test]
async fn expired_revoked_forged_and_tampered_tokens_are_refused() {
    let receiver = Receiver::start().await;
    let (platform, tenant) = Platform::start(&receiver.url).await;
    let clients = Clients::of(&platform).await;
    let owner = platform.token(&tenant).await;
    let now = chrono_now();
    let claims = |exp: i64, ws: Option<&str>| {
        let mut c = json!({"iss": "ism-workspaces", "sub": "api_key:x", "iat": now - 600, "exp": exp, "role": "owner"});
        if let Some(ws) = ws {
            c["ws"] = json!(ws);
        }
        c
    };
    let expired =
        sign_with_platform_key(&platform, claims(now - 60, Some(&tenant.workspace_id))).await;
    let no_workspace = sign_with_platform_key(&platform, claims(now + 60, None)).await;
    let valid =
        sign_with_platform_key(&platform, claims(now + 60, Some(&tenant.workspace_id))).await;
    let mut parts: Vec<String> = valid.split('.').map(str::to_owned).collect();
    let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    parts[1] = URL_SAFE_NO_PAD.encode(payload.replace("api_key:x", "api_key:y"));
    let tampered = parts.join(".");
    let mut forged_parts: Vec<String> = valid.split('.').map(str::to_owned).collect();
    forged_parts[2] = URL_SAFE_NO_PAD.encode([7u8; 64]);
    let forged = forged_parts.join(".");

    let mut w = clients.workspaces.clone();
    let mut v = clients.conversations.clone();
    assert!(
        w.get_workspace(authed(&valid, ws::GetWorkspaceRequest {}))
            .await
            .is_ok()
    );
    for (what, token) in [
        ("expired", &expired),
        ("no workspace", &no_workspace),
        ("tampered", &tampered),
        ("forged", &forged),
    ] {
        let status = w
            .get_workspace(authed(token, ws::GetWorkspaceRequest {}))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{what}: {status:?}");
        let status = v
            .list_conversations(authed(
                token,
                conversations::ListConversationsRequest::default(),
            ))
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            Code::Unauthenticated,
            "{what} at conversations"
        );
    }
    let status = w
        .get_workspace(authed(&expired, ws::GetWorkspaceRequest {}))
        .await
        .unwrap_err();
    assert!(status.message().contains("expired"), "{status:?}");

    // Revocation: the key stops exchanging at once; its tokens live at most 5 minutes.
    let created = w
        .create_api_key(authed(
            &owner,
            ws::CreateApiKeyRequest {
                name: "temp".into(),
                role: ws::Role::Agent as i32,
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let exchanged = w
        .exchange_api_key(ws::ExchangeApiKeyRequest {
            api_key: created.secret.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let lifetime = exchanged.expires_at.unwrap().seconds - chrono_now();
    assert!((1..=300).contains(&lifetime), "token lives {lifetime} s");
    let listed = w
        .list_api_keys(authed(&owner, ws::ListApiKeysRequest::default()))
        .await
        .unwrap();
    assert!(
        !format!("{listed:?}").contains(&created.secret),
        "a listed key shows its secret"
    );
    let id = created.api_key.unwrap().id;
    w.revoke_api_key(authed(&owner, ws::RevokeApiKeyRequest { id }))
        .await
        .unwrap();
    let status = w
        .exchange_api_key(ws::ExchangeApiKeyRequest {
            api_key: created.secret,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The field a refusal names: in a `PreconditionFailure` for FAILED_PRECONDITION, in a
/// `BadRequest` otherwise, as every service answers.
fn field_of(status: &Status) -> String {
    if status.code() == Code::FailedPrecondition {
        return status
            .get_details_precondition_failure()
            .and_then(|p| p.violations.first().map(|v| v.subject.clone()))
            .unwrap_or_default();
    }
    status
        .get_details_bad_request()
        .and_then(|b| b.field_violations.first().map(|v| v.field.clone()))
        .unwrap_or_default()
}

#[tokio::test]
async fn users_teams_and_their_bad_input_leave_nothing_changed() {
    let receiver = Receiver::start().await;
    let (platform, tenant) = Platform::start(&receiver.url).await;
    let other = platform.bootstrap(&receiver.url);
    let clients = Clients::of(&platform).await;
    let owner = platform.token(&tenant).await;
    let other_token = platform.token(&other).await;
    let mut w = clients.workspaces.clone();

    let ada = w
        .create_user(authed(
            &owner,
            ws::CreateUserRequest {
                email: "Ada@Example.com".into(),
                display_name: "Ada".into(),
                role: ws::Role::Agent as i32,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    let team = w
        .create_team(authed(
            &owner,
            ws::CreateTeamRequest {
                name: "Sales".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .team
        .unwrap();
    let outsider = w
        .create_user(authed(
            &other_token,
            ws::CreateUserRequest {
                email: "ada@example.com".into(),
                display_name: "Other Ada".into(),
                role: ws::Role::Agent as i32,
            },
        ))
        .await
        .expect("emails are unique per workspace only")
        .into_inner()
        .user
        .unwrap();
    let before = snapshot_users(&mut w, &owner).await;

    let cases: Vec<(&str, Code, &str, Result<(), Status>)> = vec![
        (
            "empty team name",
            Code::InvalidArgument,
            "name",
            w.create_team(authed(&owner, ws::CreateTeamRequest { name: "  ".into() }))
                .await
                .map(drop),
        ),
        (
            "long team name",
            Code::InvalidArgument,
            "name",
            w.rename_team(authed(
                &owner,
                ws::RenameTeamRequest {
                    id: team.id.clone(),
                    name: "x".repeat(101),
                },
            ))
            .await
            .map(drop),
        ),
        (
            "duplicate team name",
            Code::AlreadyExists,
            "name",
            w.create_team(authed(
                &owner,
                ws::CreateTeamRequest {
                    name: "sales".into(),
                },
            ))
            .await
            .map(drop),
        ),
        (
            "unknown role",
            Code::InvalidArgument,
            "role",
            w.create_user(authed(
                &owner,
                ws::CreateUserRequest {
                    email: "bob@example.com".into(),
                    display_name: "Bob".into(),
                    role: 42,
                },
            ))
            .await
            .map(drop),
        ),
        (
            "bad email",
            Code::InvalidArgument,
            "email",
            w.create_user(authed(
                &owner,
                ws::CreateUserRequest {
                    email: "bob".into(),
                    display_name: "Bob".into(),
                    role: ws::Role::Agent as i32,
                },
            ))
            .await
            .map(drop),
        ),
        (
            "empty user name",
            Code::InvalidArgument,
            "display_name",
            w.create_user(authed(
                &owner,
                ws::CreateUserRequest {
                    email: "bob@example.com".into(),
                    display_name: String::new(),
                    role: ws::Role::Agent as i32,
                },
            ))
            .await
            .map(drop),
        ),
        (
            "duplicate email",
            Code::AlreadyExists,
            "email",
            w.create_user(authed(
                &owner,
                ws::CreateUserRequest {
                    email: "ADA@example.com".into(),
                    display_name: "Ada 2".into(),
                    role: ws::Role::Agent as i32,
                },
            ))
            .await
            .map(drop),
        ),
        (
            "another workspace's user",
            Code::FailedPrecondition,
            "user_id",
            w.add_team_member(authed(
                &owner,
                ws::AddTeamMemberRequest {
                    team_id: team.id.clone(),
                    user_id: outsider.id.clone(),
                },
            ))
            .await
            .map(drop),
        ),
        (
            "deactivating the last owner",
            Code::FailedPrecondition,
            "id",
            w.deactivate_user(authed(
                &owner,
                ws::DeactivateUserRequest {
                    id: tenant.owner_user_id.clone(),
                },
            ))
            .await
            .map(drop),
        ),
        (
            "demoting the last owner",
            Code::FailedPrecondition,
            "id",
            w.update_user(authed(
                &owner,
                ws::UpdateUserRequest {
                    id: tenant.owner_user_id.clone(),
                    display_name: None,
                    role: ws::Role::Agent as i32,
                },
            ))
            .await
            .map(drop),
        ),
        (
            "bad time zone",
            Code::InvalidArgument,
            "timezone",
            w.update_workspace(authed(
                &owner,
                ws::UpdateWorkspaceRequest {
                    timezone: Some("Mars/Base".into()),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        ),
        (
            "closing before opening",
            Code::InvalidArgument,
            "business_hours",
            w.update_workspace(authed(
                &owner,
                ws::UpdateWorkspaceRequest {
                    business_hours: Some(ws::BusinessHours {
                        intervals: vec![ws::BusinessHoursInterval {
                            weekday: 1,
                            open: "18:00".into(),
                            close: "09:00".into(),
                        }],
                    }),
                    ..Default::default()
                },
            ))
            .await
            .map(drop),
        ),
    ];
    for (what, code, field, result) in cases {
        let status = result.expect_err(what);
        assert_eq!(status.code(), code, "{what}: {status:?}");
        assert_eq!(field_of(&status), field, "{what}: {status:?}");
        assert!(
            status.message().starts_with(field),
            "{what}: {}",
            status.message()
        );
    }
    assert_eq!(
        snapshot_users(&mut w, &owner).await,
        before,
        "bad input changed something"
    );

    // Membership is visible from both sides.
    w.add_team_member(authed(
        &owner,
        ws::AddTeamMemberRequest {
            team_id: team.id.clone(),
            user_id: ada.id.clone(),
        },
    ))
    .await
    .unwrap();
    let members = w
        .list_team_members(authed(
            &owner,
            ws::ListTeamMembersRequest {
                team_id: team.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .users;
    assert_eq!(
        members.iter().map(|u| u.id.as_str()).collect::<Vec<_>>(),
        [ada.id.as_str()]
    );
    let teams = w
        .list_user_teams(authed(
            &owner,
            ws::ListUserTeamsRequest {
                user_id: ada.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .teams;
    assert_eq!(
        teams.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        ["Sales"]
    );

    // Settings round-trip.
    let updated = w
        .update_workspace(authed(
            &owner,
            ws::UpdateWorkspaceRequest {
                timezone: Some("America/Sao_Paulo".into()),
                default_language: Some("pt-BR".into()),
                business_hours: Some(ws::BusinessHours {
                    intervals: vec![ws::BusinessHoursInterval {
                        weekday: 1,
                        open: "9:00".into(),
                        close: "18:00".into(),
                    }],
                }),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .workspace
        .unwrap();
    assert_eq!(
        (updated.timezone.as_str(), updated.default_language.as_str()),
        ("America/Sao_Paulo", "pt-BR")
    );
    assert_eq!(updated.business_hours.unwrap().intervals[0].open, "09:00");

    // A second owner makes the first one removable.
    let grace = w
        .create_user(authed(
            &owner,
            ws::CreateUserRequest {
                email: "grace@example.com".into(),
                display_name: "Grace".into(),
                role: ws::Role::Owner as i32,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    let demoted = w
        .update_user(authed(
            &owner,
            ws::UpdateUserRequest {
                id: tenant.owner_user_id.clone(),
                display_name: None,
                role: ws::Role::Manager as i32,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(demoted.role, ws::Role::Manager as i32);

    // A manager's user token cannot mint an owner's token or make owners.
    let manager = w
        .issue_user_token(authed(
            &owner,
            ws::IssueUserTokenRequest {
                user_id: tenant.owner_user_id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .access_token;
    let escalate = w
        .issue_user_token(authed(
            &manager,
            ws::IssueUserTokenRequest {
                user_id: grace.id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(escalate.code(), Code::PermissionDenied);
    let promote = w
        .update_user(authed(
            &manager,
            ws::UpdateUserRequest {
                id: ada.id.clone(),
                display_name: None,
                role: ws::Role::Owner as i32,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(promote.code(), Code::PermissionDenied);

    // The audit log says who did what, with which key.
    let events = w
        .list_audit_events(authed(&owner, ws::ListAuditEventsRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .events;
    let demotion = events
        .iter()
        .find(|e| {
            e.action == "user.updated" && e.target == format!("user:{}", tenant.owner_user_id)
        })
        .expect("demotion audited");
    assert!(
        demotion.actor.starts_with("api_key:") && !demotion.api_key_id.is_empty(),
        "{demotion:?}"
    );
    assert_eq!(
        demotion.details.get("role").map(String::as_str),
        Some("manager")
    );
    assert!(events.iter().any(|e| e.action == "user.token_issued"));
    assert!(
        events
            .iter()
            .all(|e| e.action != "team.created"
                || e.details.get("name") != Some(&"sales".to_owned()))
    );
    let agent = key_token(&clients, &owner, ws::Role::Agent).await;
    assert_eq!(
        w.list_audit_events(authed(&agent, ws::ListAuditEventsRequest::default()))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
}

async fn snapshot_users(w: &mut WorkspaceServiceClient<Channel>, token: &str) -> String {
    let users = w
        .list_users(authed(
            token,
            ws::ListUsersRequest {
                include_deactivated: true,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let teams = w
        .list_teams(authed(token, ws::ListTeamsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    let workspace = w
        .get_workspace(authed(token, ws::GetWorkspaceRequest {}))
        .await
        .unwrap()
        .into_inner();
    format!("{users:?}{teams:?}{workspace:?}")
}

#[tokio::test]
async fn availability_is_kept_and_published_as_an_event() {
    let receiver = Receiver::start().await;
    let (platform, tenant) = Platform::start(&receiver.url).await;
    let clients = Clients::of(&platform).await;
    let owner = platform.token(&tenant).await;
    let mut w = clients.workspaces.clone();
    let amqp =
        lapin::Connection::connect("amqp://guest:guest@127.0.0.1:5672/%2f", Default::default())
            .await
            .unwrap();
    let channel = amqp.create_channel().await.unwrap();
    let queue = format!("{}.test.availability", platform.id);
    channel
        .queue_declare(
            queue.as_str().into(),
            lapin::options::QueueDeclareOptions {
                auto_delete: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            queue.as_str().into(),
            platform.exchange().as_str().into(),
            "workspaces.user.availability_changed".into(),
            Default::default(),
            Default::default(),
        )
        .await
        .unwrap();

    let agent = w
        .create_user(authed(
            &owner,
            ws::CreateUserRequest {
                email: "agent@example.com".into(),
                display_name: "Agent".into(),
                role: ws::Role::Agent as i32,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    let other = w
        .create_user(authed(
            &owner,
            ws::CreateUserRequest {
                email: "other@example.com".into(),
                display_name: "Other".into(),
                role: ws::Role::Agent as i32,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(agent.availability, ws::Availability::Offline as i32);
    let agent_token = w
        .issue_user_token(authed(
            &owner,
            ws::IssueUserTokenRequest {
                user_id: agent.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .access_token;

    // The agent sets their own availability, but nobody else's.
    let online = w
        .set_user_availability(authed(
            &agent_token,
            ws::SetUserAvailabilityRequest {
                user_id: agent.id.clone(),
                availability: ws::Availability::Online as i32,
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(online.availability, ws::Availability::Online as i32);
    let status = w
        .set_user_availability(authed(
            &agent_token,
            ws::SetUserAvailabilityRequest {
                user_id: other.id.clone(),
                availability: ws::Availability::Online as i32,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let fetched = w
        .get_user(authed(
            &agent_token,
            ws::GetUserRequest {
                id: agent.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(fetched.availability, ws::Availability::Online as i32);

    let delivery = eventually(Duration::from_secs(20), "the availability event", || {
        let channel = channel.clone();
        let queue = queue.clone();
        async move {
            channel
                .basic_get(
                    queue.as_str().into(),
                    lapin::options::BasicGetOptions { no_ack: true },
                )
                .await
                .ok()?
        }
    })
    .await;
    let event = ism_proto::events::v1::Event::decode(delivery.delivery.data.as_slice()).unwrap();
    assert_eq!(event.r#type, "workspaces.user.availability_changed");
    assert_eq!(event.workspace_id, tenant.workspace_id);
    let payload: ism_proto::events::v1::UserAvailabilityChanged =
        event.payload.unwrap().to_msg().unwrap();
    assert_eq!(
        (
            payload.user_id.as_str(),
            payload.availability(),
            payload.previous_availability()
        ),
        (
            agent.id.as_str(),
            ws::Availability::Online,
            ws::Availability::Offline
        )
    );

    // Deactivation takes the User offline and stops new tokens for them.
    let gone = w
        .deactivate_user(authed(
            &owner,
            ws::DeactivateUserRequest {
                id: agent.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .user
        .unwrap();
    assert_eq!(gone.availability, ws::Availability::Offline as i32);
    assert!(gone.deactivated_at.is_some());
    let status = w
        .issue_user_token(authed(
            &owner,
            ws::IssueUserTokenRequest {
                user_id: agent.id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    let listed = w
        .list_users(authed(&owner, ws::ListUsersRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .users;
    assert!(
        listed.iter().all(|u| u.id != agent.id),
        "deactivated Users are hidden by default"
    );
}

#[tokio::test]
async fn a_busy_workspace_is_slowed_down_alone_with_a_retry_hint() {
    let receiver = Receiver::start().await;
    let mut platform = Platform::new();
    platform.set("ISM_RATE_LIMIT__REQUESTS_PER_SECOND", "0.5");
    platform.set("ISM_RATE_LIMIT__BURST", "3");
    let busy = platform.bootstrap(&receiver.url);
    let calm = platform.bootstrap(&receiver.url);
    platform.spawn("all");
    platform.wait_ready().await;
    let (busy_token, calm_token) = (platform.token(&busy).await, platform.token(&calm).await);
    let mut w =
        WorkspaceServiceClient::new(platform.channel("workspaces").connect().await.unwrap());

    for _ in 0..3 {
        w.get_workspace(authed(&busy_token, ws::GetWorkspaceRequest {}))
            .await
            .unwrap();
    }
    let status = w
        .get_workspace(authed(&busy_token, ws::GetWorkspaceRequest {}))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    let retry_after: u64 = status
        .metadata()
        .get("retry-after")
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "retry-after {retry_after}");
    let retry = status.get_details_retry_info().expect("RetryInfo detail");
    assert!(retry.retry_delay.unwrap() <= Duration::from_secs(2));
    // Another workspace, and the token exchange itself, are not held back.
    w.get_workspace(authed(&calm_token, ws::GetWorkspaceRequest {}))
        .await
        .unwrap();
    platform.token(&busy).await;
}

#[tokio::test]
async fn traffic_flows_when_redis_is_down() {
    let receiver = Receiver::start().await;
    let mut platform = Platform::new();
    platform.set("ISM_REDIS__URL", "redis://127.0.0.1:1");
    platform.set("ISM_RATE_LIMIT__BURST", "1");
    let tenant = platform.bootstrap(&receiver.url);
    platform.spawn("all");
    platform.wait_ready().await;
    let token = platform.token(&tenant).await;
    let mut w =
        WorkspaceServiceClient::new(platform.channel("workspaces").connect().await.unwrap());
    for _ in 0..5 {
        w.get_workspace(authed(&token, ws::GetWorkspaceRequest {}))
            .await
            .unwrap();
    }
    let metrics = reqwest::get(format!(
        "http://127.0.0.1:{}/metrics",
        platform.metrics_ports["workspaces"]
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    assert!(
        metrics.contains("ism_rate_limit_fail_open_total"),
        "fail-open is counted"
    );
}

#[tokio::test]
async fn an_organizations_workspaces_are_created_listed_renamed_and_archived() {
    let receiver = Receiver::start().await;
    let (platform, tenant) = Platform::start(&receiver.url).await;
    let clients = Clients::of(&platform).await;
    let owner = platform.token(&tenant).await;
    let mut w = clients.workspaces.clone();
    let names = |list: ws::ListWorkspacesResponse| {
        let mut names: Vec<String> = list.workspaces.into_iter().map(|s| s.name).collect();
        names.sort();
        names
    };

    let created = w
        .create_workspace(authed(
            &owner,
            ws::CreateWorkspaceRequest {
                name: "Europe".into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let europe = created.workspace.unwrap();
    let europe_token = w
        .exchange_api_key(ws::ExchangeApiKeyRequest {
            api_key: created.owner_api_key.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .access_token;
    w.update_workspace(authed(
        &europe_token,
        ws::UpdateWorkspaceRequest {
            name: Some("Europe and Africa".into()),
            ..Default::default()
        },
    ))
    .await
    .unwrap();
    w.rename_organization(authed(
        &owner,
        ws::RenameOrganizationRequest {
            name: "Demo Group".into(),
        },
    ))
    .await
    .unwrap();
    let listed = w
        .list_workspaces(authed(&owner, ws::ListWorkspacesRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(names(listed), ["Europe and Africa", "demo"]);
    let organization = w
        .get_organization(authed(&europe_token, ws::GetOrganizationRequest {}))
        .await
        .unwrap()
        .into_inner()
        .organization
        .unwrap();
    assert_eq!(organization.name, "Demo Group");

    w.archive_workspace(authed(
        &owner,
        ws::ArchiveWorkspaceRequest {
            id: europe.id.clone(),
        },
    ))
    .await
    .unwrap();
    let listed = w
        .list_workspaces(authed(&owner, ws::ListWorkspacesRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(names(listed), ["demo"]);
    let refused = w
        .exchange_api_key(ws::ExchangeApiKeyRequest {
            api_key: created.owner_api_key,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated, "{refused:?}");
}
