//! What every gRPC server promises: health, reflection, metrics, authentication, and a
//! wall between workspaces.
use std::time::Duration;

use ism_e2e::{Platform, Receiver, authed, eventually};
use ism_proto::conversations::v1::{
    GetConversationRequest, ListConversationsRequest, ListMessagesRequest,
};
use ism_proto::gateway::v1::{CreateChannelRequest, GetChannelRequest};
use ism_proto::types::v1::ChannelType;
use ism_proto::workspaces::v1::Role;
use ism_proto::workspaces::v1::workspace_service_client::WorkspaceServiceClient;
use ism_proto::workspaces::v1::{CreateApiKeyRequest, ExchangeApiKeyRequest};
use serde_json::json;
use tonic::Code;

#[tokio::test]
async fn every_server_has_health_reflection_and_metrics() {
    let receiver = Receiver::start().await;
    let (platform, _) = Platform::start(&receiver.url).await;
    for (service, expected) in [
        ("workspaces", "ism.workspaces.v1.WorkspaceService"),
        ("gateway", "ism.gateway.v1.GatewayService"),
        ("contacts", "ism.contacts.v1.ContactService"),
        ("conversations", "ism.conversations.v1.ConversationService"),
        ("broadcasts", "ism.broadcasts.v1.BroadcastService"),
        ("workflows", "ism.workflows.v1.WorkflowService"),
        ("integrations", "ism.integrations.v1.IntegrationService"),
    ] {
        assert!(platform.serving(service).await, "{service} health");
        // What reflection lists is checked exactly in operability.rs.
        assert!(
            platform.reflected(service).await.contains(expected),
            "{service} reflects {expected}"
        );

        let metrics = platform.metrics(service).await;
        assert!(
            metrics.contains("ism_db_pool_connections"),
            "{service} metrics"
        );
    }
    let gateway_metrics = eventually(Duration::from_secs(10), "gRPC request metrics", || async {
        let text = reqwest::get(format!(
            "http://127.0.0.1:{}/metrics",
            platform.metrics_ports["gateway"]
        ))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
        text.contains("ism_grpc_requests_total").then_some(text)
    })
    .await;
    assert!(gateway_metrics.contains("ism_outbox_backlog"));
    // Histograms, so that quantiles aggregate across replicas.
    assert!(gateway_metrics.contains("ism_grpc_request_seconds_bucket{"));
}

#[tokio::test]
async fn calls_without_a_valid_token_are_unauthenticated() {
    let receiver = Receiver::start().await;
    let (platform, tenant) = Platform::start(&receiver.url).await;
    let mut conversations = platform.conversations().await;
    let status = conversations
        .list_conversations(ListConversationsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let token = platform.token(&tenant).await;
    let mut tampered = token.clone();
    tampered.insert(token.len() - 5, 'x');
    for bad in ["garbage", tampered.as_str()] {
        let status = conversations
            .list_conversations(authed(bad, ListConversationsRequest::default()))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{bad}");
    }
    let mut workspaces =
        WorkspaceServiceClient::new(platform.channel("workspaces").connect().await.unwrap());
    let status = workspaces
        .exchange_api_key(ExchangeApiKeyRequest {
            api_key: format!("{}x", tenant.api_key),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn one_workspace_never_sees_another_and_roles_are_enforced() {
    let receiver = Receiver::start().await;
    let (platform, a) = Platform::start(&receiver.url).await;
    let b = platform.bootstrap(&receiver.url);
    let body = serde_json::to_vec(
        &json!({"message_id": "b-1", "from": {"id": "cb"}, "text": "for B only"}),
    )
    .unwrap();
    assert_eq!(
        platform
            .webhook(&b.channel_id, Some(&b.webhook_secret), &body)
            .await
            .0,
        200
    );
    let api_a = platform.api(&a).await;
    let api_b = api_a.with_token(platform.token(&b).await);
    let b_conversation = api_b
        .wait_for_conversation(Duration::from_secs(20), |_| true)
        .await;

    assert!(
        api_a.list_conversations().await.is_empty(),
        "A lists none of B's conversations"
    );
    let mut conversations = api_a.conversations.clone();
    let get = conversations
        .get_conversation(api_a.authed(GetConversationRequest {
            id: b_conversation.id.clone(),
        }))
        .await
        .unwrap_err();
    assert_eq!(get.code(), Code::NotFound);
    let messages = conversations
        .list_messages(api_a.authed(ListMessagesRequest {
            conversation_id: b_conversation.id.clone(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(messages.code(), Code::NotFound);
    let mut gateway = api_a.gateway.clone();
    let channel = gateway
        .get_channel(api_a.authed(GetChannelRequest {
            id: b.channel_id.clone(),
        }))
        .await
        .unwrap_err();
    assert_eq!(channel.code(), Code::NotFound);

    // An agent key may read but not connect channels or mint keys.
    let mut workspaces = api_a.workspaces.clone();
    let agent = api_a.key_token("agent", Role::Agent).await;
    let create = CreateChannelRequest {
        r#type: ChannelType::Custom as i32,
        name: "x".into(),
        outbound_url: receiver.url.clone(),
    };
    assert_eq!(
        gateway
            .create_channel(authed(&agent, create))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    let mint = CreateApiKeyRequest {
        name: "escalate".into(),
        role: Role::Owner as i32,
    };
    assert_eq!(
        workspaces
            .create_api_key(authed(&agent, mint))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );

    let bad = CreateChannelRequest {
        r#type: ChannelType::Custom as i32,
        name: String::new(),
        outbound_url: "ftp://x".into(),
    };
    let status = gateway.create_channel(api_a.authed(bad)).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().starts_with("name"), "{}", status.message());
}
