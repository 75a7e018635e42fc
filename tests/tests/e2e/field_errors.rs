//! A request with several bad fields is answered with every violation at once, as one
//! INVALID_ARGUMENT with a `BadRequest` naming each field, by every service; and nothing
//! is created.
use ism_e2e::{Platform, Receiver, authed};
use ism_proto::contacts::v1::contact_service_client::ContactServiceClient;
use ism_proto::contacts::v1::{ContactProfile, CreateContactRequest};
use ism_proto::conversations::v1::CreateSnippetRequest;
use ism_proto::gateway::v1::ConnectChannelRequest;
use ism_proto::gateway::v1::gateway_service_client::GatewayServiceClient;
use ism_proto::types::v1::ChannelType;
use ism_proto::workspaces::v1::CreateUserRequest;
use ism_proto::workspaces::v1::workspace_service_client::WorkspaceServiceClient;
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// The fields an INVALID_ARGUMENT names, in order.
fn violations(result: Result<impl std::fmt::Debug, Status>) -> Vec<String> {
    let status = result.expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    status
        .get_details_bad_request()
        .expect("a BadRequest detail")
        .field_violations
        .into_iter()
        .map(|v| v.field)
        .collect()
}

#[tokio::test]
async fn three_bad_fields_are_three_violations_in_every_service() {
    let receiver = Receiver::start().await;
    let (platform, tenant) = Platform::start(&receiver.url).await;
    let token = platform.token(&tenant).await;
    let platform = &platform;
    let connect = |service| async move { platform.channel(service).connect().await.unwrap() };

    let mut contacts = ContactServiceClient::new(connect("contacts").await);
    let profile = ContactProfile {
        first_name: "Ada".into(),
        email: "ada@".into(),
        language: "portuguese".into(),
        timezone: "Mars/Olympus".into(),
        ..Default::default()
    };
    let refused = contacts
        .create_contact(authed(
            &token,
            CreateContactRequest {
                profile: Some(profile),
            },
        ))
        .await;
    assert_eq!(violations(refused), ["email", "language", "timezone"]);

    let mut workspaces = WorkspaceServiceClient::new(connect("workspaces").await);
    let refused = workspaces
        .create_user(authed(
            &token,
            CreateUserRequest {
                email: "not an email".into(),
                display_name: " ".into(),
                role: 99,
            },
        ))
        .await;
    assert_eq!(violations(refused), ["email", "display_name", "role"]);

    let mut conversations = platform.conversations().await;
    let refused = conversations
        .create_snippet(authed(
            &token,
            CreateSnippetRequest {
                shortcut: "two words".into(),
                title: String::new(),
                body: "{{ contact.shoe_size }}".into(),
                personal: false,
            },
        ))
        .await;
    assert_eq!(violations(refused), ["shortcut", "title", "body"]);

    let mut gateway = GatewayServiceClient::new(connect("gateway").await);
    let refused = gateway
        .connect_channel(authed(
            &token,
            ConnectChannelRequest {
                r#type: ChannelType::Custom as i32,
                name: String::new(),
                outbound_url: "ftp://example.com".into(),
                api_base_url: "not a url".into(),
                ..Default::default()
            },
        ))
        .await;
    assert_eq!(
        violations(refused),
        ["name", "outbound_url", "api_base_url"]
    );
}
