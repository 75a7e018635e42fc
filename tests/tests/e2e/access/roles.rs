//! Roles: every administrative RPC is allowed to the roles at or above the least one it
//! needs, and refused to the others.
use std::sync::Arc;

use ism_e2e::fixtures::{
    Reply, Side, commenting_workflow, import_stream, openai_bot, populate, report_of_today,
};
use ism_e2e::{Api, Platform, Receiver};
use ism_proto::broadcasts::v1 as broadcasts;
use ism_proto::contacts::v1 as contacts;
use ism_proto::conversations::v1 as conversations;
use ism_proto::gateway::v1 as gateway;
use ism_proto::integrations::v1 as integrations;
use ism_proto::types::v1::ChannelType;
use ism_proto::workflows::v1 as workflows;
use ism_proto::workspaces::v1 as ws;
use tonic::Code;

/// One row of the role matrix: an administrative RPC and the least role allowed it.
struct RoleCase {
    rpc: &'static str,
    least: ws::Role,
    call: fn(Api, Arc<Side>) -> Reply,
}

/// `admin!("Method", least role, client.method(|a| request))`: one line per RPC.
macro_rules! admin {
    ($rpc:literal, $least:ident, $client:ident . $method:ident(|$a:ident| $request:expr)) => {
        RoleCase {
            rpc: $rpc,
            least: ws::Role::$least,
            call: |api: Api, $a: Arc<Side>| -> Reply {
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
            "SetLifecycleStages",
            Manager,
            contacts.set_lifecycle_stages(|_a| contacts::SetLifecycleStagesRequest {
                stages: vec![contacts::LifecycleStage {
                    key: "lead".into(),
                    name: unique("Lead"),
                }],
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
        admin!(
            "CreateBroadcast",
            Manager,
            broadcasts.create_broadcast(|a| broadcasts::CreateBroadcastRequest {
                definition: Some(broadcasts::BroadcastDefinition {
                    name: unique("broadcast"),
                    channel_id: a.channel_id.clone(),
                    ..Default::default()
                })
            })
        ),
        admin!(
            "UpdateBroadcast",
            Manager,
            broadcasts.update_broadcast(|a| broadcasts::UpdateBroadcastRequest {
                id: a.broadcast_id.clone(),
                definition: None,
            })
        ),
        admin!(
            "ScheduleBroadcast",
            Manager,
            broadcasts.schedule_broadcast(|a| broadcasts::ScheduleBroadcastRequest {
                id: a.broadcast_id.clone(),
                send_at: None,
                missed_schedule: 0,
            })
        ),
        admin!(
            "StartBroadcast",
            Manager,
            broadcasts.start_broadcast(|a| broadcasts::StartBroadcastRequest {
                id: a.broadcast_id.clone()
            })
        ),
        admin!(
            "PauseBroadcast",
            Manager,
            broadcasts.pause_broadcast(|a| broadcasts::PauseBroadcastRequest {
                id: a.broadcast_id.clone()
            })
        ),
        admin!(
            "ResumeBroadcast",
            Manager,
            broadcasts.resume_broadcast(|a| broadcasts::ResumeBroadcastRequest {
                id: a.broadcast_id.clone()
            })
        ),
        admin!(
            "CancelBroadcast",
            Manager,
            broadcasts.cancel_broadcast(|a| broadcasts::CancelBroadcastRequest {
                id: a.broadcast_id.clone()
            })
        ),
        admin!(
            "ResendToFailed",
            Manager,
            broadcasts.resend_to_failed(|a| broadcasts::ResendToFailedRequest {
                broadcast_id: a.broadcast_id.clone(),
                name: String::new(),
            })
        ),
        admin!(
            "DeleteBroadcast",
            Manager,
            broadcasts.delete_broadcast(|a| broadcasts::DeleteBroadcastRequest {
                id: a.broadcast_id.clone()
            })
        ),
        admin!(
            "CreateWebhookEndpoint",
            Manager,
            integrations.create_webhook_endpoint(|_a| integrations::CreateWebhookEndpointRequest {
                definition: Some(integrations::WebhookEndpointDefinition {
                    url: "http://127.0.0.1:9/roles".into(),
                    event_types: vec!["contacts.contact.created".into()],
                    ..Default::default()
                }),
            })
        ),
        admin!(
            "UpdateWebhookEndpoint",
            Manager,
            integrations.update_webhook_endpoint(|a| integrations::UpdateWebhookEndpointRequest {
                endpoint_id: a.webhook_endpoint_id.clone(),
                definition: Some(integrations::WebhookEndpointDefinition {
                    url: "http://127.0.0.1:9/roles".into(),
                    event_types: vec!["contacts.tag.added".into()],
                    ..Default::default()
                }),
            })
        ),
        admin!(
            "SetWebhookEndpointEnabled",
            Manager,
            integrations.set_webhook_endpoint_enabled(|a| {
                integrations::SetWebhookEndpointEnabledRequest {
                    endpoint_id: a.webhook_endpoint_id.clone(),
                    enabled: false,
                }
            })
        ),
        admin!(
            "RotateWebhookSecret",
            Manager,
            integrations.rotate_webhook_secret(|a| integrations::RotateWebhookSecretRequest {
                endpoint_id: a.webhook_endpoint_id.clone(),
                overlap_seconds: 60,
            })
        ),
        admin!(
            "TestWebhookEndpoint",
            Manager,
            integrations.test_webhook_endpoint(|a| integrations::TestWebhookEndpointRequest {
                endpoint_id: a.webhook_endpoint_id.clone()
            })
        ),
        admin!(
            "ResendWebhookDelivery",
            Manager,
            integrations.resend_webhook_delivery(|a| integrations::ResendWebhookDeliveryRequest {
                delivery_id: a.webhook_delivery_id.clone()
            })
        ),
        admin!(
            "RecoverWebhookEndpoint",
            Manager,
            integrations.recover_webhook_endpoint(|a| {
                integrations::RecoverWebhookEndpointRequest {
                    endpoint_id: a.webhook_endpoint_id.clone(),
                    since: Some(prost_types::Timestamp {
                        seconds: std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_secs() as i64)
                            - 3600,
                        nanos: 0,
                    }),
                }
            })
        ),
        admin!(
            "CreateBot",
            Manager,
            integrations.create_bot(|a| integrations::CreateBotRequest {
                definition: Some(openai_bot(&a.openai_url)),
            })
        ),
        admin!(
            "UpdateBot",
            Manager,
            integrations.update_bot(|a| integrations::UpdateBotRequest {
                bot_id: a.bot_id.clone(),
                definition: Some(openai_bot(&a.openai_url)),
            })
        ),
        admin!(
            "SetBotEnabled",
            Manager,
            integrations.set_bot_enabled(|a| integrations::SetBotEnabledRequest {
                bot_id: a.bot_id.clone(),
                enabled: false,
            })
        ),
        admin!(
            "TestBot",
            Manager,
            integrations.test_bot(|a| integrations::TestBotRequest {
                bot_id: a.bot_id.clone(),
                text: "hello".into(),
            })
        ),
        admin!(
            "DeleteBot",
            Manager,
            integrations.delete_bot(|a| integrations::DeleteBotRequest {
                bot_id: a.bot_id.clone()
            })
        ),
        admin!(
            "CreateWorkflow",
            Manager,
            workflows.create_workflow(|_a| workflows::CreateWorkflowRequest {
                definition: Some(commenting_workflow("roles")),
            })
        ),
        admin!(
            "UpdateWorkflow",
            Manager,
            workflows.update_workflow(|a| workflows::UpdateWorkflowRequest {
                workflow_id: a.workflow_id.clone(),
                definition: Some(commenting_workflow("roles")),
            })
        ),
        admin!(
            "PublishWorkflow",
            Manager,
            workflows.publish_workflow(|a| workflows::PublishWorkflowRequest {
                workflow_id: a.workflow_id.clone()
            })
        ),
        admin!(
            "SetWorkflowEnabled",
            Manager,
            workflows.set_workflow_enabled(|a| workflows::SetWorkflowEnabledRequest {
                workflow_id: a.workflow_id.clone(),
                enabled: true,
            })
        ),
        admin!(
            "StartRun",
            Manager,
            workflows.start_run(|a| workflows::StartRunRequest {
                workflow_id: a.workflow_id.clone(),
                conversation_id: a.conversation_id.clone(),
            })
        ),
        admin!(
            "CancelRun",
            Manager,
            workflows.cancel_run(|a| workflows::CancelRunRequest {
                run_id: a.run_id.clone()
            })
        ),
        admin!(
            "RetryRun",
            Manager,
            workflows.retry_run(|a| workflows::RetryRunRequest {
                run_id: a.run_id.clone()
            })
        ),
        admin!(
            "DeleteWorkflow",
            Manager,
            workflows.delete_workflow(|a| workflows::DeleteWorkflowRequest {
                workflow_id: a.workflow_id.clone()
            })
        ),
        admin!(
            "DeleteWebhookEndpoint",
            Manager,
            integrations.delete_webhook_endpoint(|a| integrations::DeleteWebhookEndpointRequest {
                endpoint_id: a.webhook_endpoint_id.clone()
            })
        ),
    ]
}

#[tokio::test]
async fn each_role_may_call_exactly_the_administrative_rpcs_it_should() {
    let receiver = Receiver::start().await;
    let (platform, tenant) = Platform::start(&receiver.url).await;
    let a = Arc::new(populate(&platform, tenant, "ca").await);
    let owner = Api::connect(&platform, &a.token).await;
    let mut roles = Vec::new();
    for role in [ws::Role::Agent, ws::Role::Manager, ws::Role::Owner] {
        roles.push((role, owner.key_token("role", role).await));
    }
    // A sibling Workspace for ArchiveWorkspace (its id travels in `channel_id`).
    let sibling = owner
        .create_workspace("to archive")
        .await
        .workspace
        .expect("CreateWorkspace answers with the Workspace");
    let fixtures = Arc::new(Side {
        channel_id: sibling.id,
        ..(*a).clone()
    });

    for case in role_matrix() {
        // Weakest role first, so a successful destructive call comes last.
        for (role, token) in &roles {
            let result = (case.call)(owner.with_token(token), fixtures.clone()).await;
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
