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
use ism_proto::workspaces::v1::{
    CreateApiKeyRequest, CreateUserRequest, DeactivateUserRequest, ExchangeApiKeyRequest,
    GetPublicKeysRequest, IssueServiceTokenRequest, IssueUserTokenRequest, RevokeApiKeyRequest,
};
use serde_json::json;
use tonic::Code;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

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
        let mut client =
            ServerReflectionClient::new(platform.channel(service).connect().await.unwrap());
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        };
        let mut stream = client
            .server_reflection_info(futures::stream::iter([request]))
            .await
            .unwrap()
            .into_inner();
        let Some(MessageResponse::ListServicesResponse(list)) =
            stream.message().await.unwrap().unwrap().message_response
        else {
            panic!("{service}: no service list");
        };
        let names: Vec<_> = list.service.into_iter().map(|s| s.name).collect();
        assert!(
            names.iter().any(|n| n == expected),
            "{service} lists {names:?}"
        );

        let metrics = reqwest::get(format!(
            "http://127.0.0.1:{}/metrics",
            platform.metrics_ports[service]
        ))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
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

/// Credential guessing is slowed: a handful of wrong API keys or service secrets from one
/// address, or for one key, and further calls are refused with a retry time (even with
/// the right key) until the budget refills. Failures are counted and logged as warnings.
#[tokio::test]
async fn credential_guessing_is_refused_after_a_few_tries_and_counted() {
    let receiver = Receiver::start().await;
    let mut platform = Platform::new();
    platform.set("ISM_WORKSPACES__CREDENTIAL_FAILURE_BURST", "5");
    platform.set("ISM_WORKSPACES__CREDENTIAL_FAILURES_PER_MINUTE", "60");
    platform.set("ISM_WORKSPACES__PUBLIC_CALL_BURST", "40");
    platform.set("ISM_WORKSPACES__PUBLIC_CALLS_PER_SECOND", "5");
    let tenant = platform.bootstrap(&receiver.url);
    platform.spawn("all");
    platform.wait_ready().await;
    let mut workspaces =
        WorkspaceServiceClient::new(platform.channel("workspaces").connect().await.unwrap());
    let (prefix, _) = tenant
        .api_key
        .rsplit_once('_')
        .expect("ism_<prefix>_<secret>");
    let guess = |n: usize| ExchangeApiKeyRequest {
        api_key: format!("{prefix}_wrong{n}"),
    };

    let mut answers = Vec::new();
    for n in 0..300 {
        answers.push(workspaces.exchange_api_key(guess(n)).await.unwrap_err());
    }
    let refused_credentials = answers
        .iter()
        .filter(|s| s.code() == Code::Unauthenticated)
        .count();
    assert!(
        (5..=7).contains(&refused_credentials),
        "five wrong guesses are answered, then the rest are refused: {refused_credentials}"
    );
    let limited = answers.last().expect("answers");
    assert_eq!(limited.code(), Code::ResourceExhausted, "{limited:?}");
    assert!(limited.metadata().get("retry-after").is_some());

    let right = ExchangeApiKeyRequest {
        api_key: tenant.api_key.clone(),
    };
    let locked = workspaces
        .exchange_api_key(right.clone())
        .await
        .unwrap_err();
    assert_eq!(
        locked.code(),
        Code::ResourceExhausted,
        "while the budget is spent even the right key waits: {locked:?}"
    );
    let exchanged = eventually(Duration::from_secs(10), "the budget refilled", || {
        let mut workspaces = workspaces.clone();
        let right = right.clone();
        async move { workspaces.exchange_api_key(right).await.ok() }
    })
    .await;
    assert!(!exchanged.into_inner().access_token.is_empty());

    // A wrong service secret is limited per address (a service name has no budget of its
    // own, or anyone could lock the platform's services out).
    let mut service_answers = Vec::new();
    for _ in 0..30 {
        service_answers.push(
            workspaces
                .issue_service_token(IssueServiceTokenRequest {
                    service: "contacts".into(),
                    secret: "guess".into(),
                })
                .await
                .unwrap_err()
                .code(),
        );
    }
    assert_eq!(
        service_answers
            .iter()
            .filter(|c| **c == Code::Unauthenticated)
            .count(),
        5,
        "{service_answers:?}"
    );
    assert_eq!(service_answers.last(), Some(&Code::ResourceExhausted));

    let metrics = reqwest::get(format!(
        "http://127.0.0.1:{}/metrics",
        platform.metrics_ports["workspaces"]
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    let counted = |rpc: &str| {
        metrics
            .lines()
            .find(|l| {
                l.starts_with("ism_credential_failures_total")
                    && l.contains(&format!("rpc=\"{rpc}\""))
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    assert_eq!(counted("ExchangeApiKey"), Some(refused_credentials as f64));
    assert_eq!(counted("IssueServiceToken"), Some(5.0));
    let log = platform.log();
    assert!(
        log.contains("wrong credential presented"),
        "failures are logged"
    );
    assert!(
        !log.lines().any(|l| l.contains("ERROR")
            && (l.contains("not recognised") || l.contains("wrong credential"))),
        "a wrong credential is the caller's mistake, not an ERROR"
    );

    // Calls needing no token are limited per address too.
    let mut keys_answers = Vec::new();
    for _ in 0..100 {
        keys_answers.push(
            workspaces
                .get_public_keys(GetPublicKeysRequest {})
                .await
                .map(|_| Code::Ok)
                .unwrap_or_else(|s| s.code()),
        );
    }
    assert!(keys_answers.contains(&Code::Ok));
    assert!(keys_answers.contains(&Code::ResourceExhausted));
}

/// The token-signing key is stored sealed, never in clear, and its seal key rotates: a
/// start with a new key (the old one listed as previous) re-seals it, tokens signed
/// before keep working, and a start without any key that opens it stops with the reason.
#[tokio::test]
async fn the_signing_key_is_sealed_at_rest_and_its_seal_key_rotates() {
    let receiver = Receiver::start().await;
    let mut platform = Platform::new();
    let tenant = platform.bootstrap(&receiver.url);
    let all = platform.spawn("all");
    platform.wait_ready().await;
    let token = platform.token(&tenant).await;
    let db = platform.database("workspaces").await;
    let stored = || async {
        sqlx::query_as::<_, (String, Option<Vec<u8>>, Option<Vec<u8>>)>(
            "SELECT kid, pkcs8, sealed FROM signing_keys",
        )
        .fetch_all(&db)
        .await
        .unwrap()
    };
    let before = stored().await;
    assert_eq!(before.len(), 1, "one key");
    let (kid, clear, sealed) = before[0].clone();
    assert_eq!(clear, None, "no key in clear");
    let sealed = sealed.expect("sealed");

    platform.kill(all);
    let old = "ZGV2LW9ubHktdG9rZW4tc2VhbC1rZXktY2hhbmdlISE=";
    let new = "bmV3LXNlYWwta2V5LWZvci10b2tlbi1zaWduZXItMzI=";
    platform.set("ISM_WORKSPACES__SIGNING_KEY_SEAL_KEY", new);
    platform.set(
        "ISM_WORKSPACES__SIGNING_KEY_SEAL_PREVIOUS_KEYS",
        &format!("[\"{old}\"]"),
    );
    let all = platform.spawn("all");
    platform.wait_ready().await;
    let after = stored().await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].0, kid, "the same signing key");
    let resealed = after[0].2.clone().expect("sealed");
    assert_ne!(
        resealed[1..5],
        sealed[1..5],
        "sealed under the new seal key"
    );
    lists(&platform, &token)
        .await
        .expect("a token signed before the rotation still works");

    // The old seal key dropped: the key opens with the new one alone.
    platform.kill(all);
    platform.set("ISM_WORKSPACES__SIGNING_KEY_SEAL_PREVIOUS_KEYS", "[]");
    let all = platform.spawn("all");
    platform.wait_ready().await;
    lists(&platform, &token).await.expect("still works");

    // A seal key that opens nothing stops the start, saying why.
    platform.kill(all);
    platform.set(
        "ISM_WORKSPACES__SIGNING_KEY_SEAL_KEY",
        "YS13cm9uZy1zZWFsLWtleS1vcGVuaW5nLW5vdGhpbmc=",
    );
    let workspaces = platform.spawn("workspaces");
    let exit = platform.wait_exit(workspaces, Duration::from_secs(30));
    assert!(exit.is_some_and(|e| !e.success()), "{exit:?}");
    let log = platform.log();
    assert!(
        log.contains("sealed with a key that is not configured (workspaces.signing_key_seal_key"),
        "the reason is logged"
    );
}

async fn lists(
    platform: &Platform,
    token: &str,
) -> Result<tonic::Response<ism_proto::conversations::v1::ListConversationsResponse>, tonic::Status>
{
    platform
        .conversations()
        .await
        .list_conversations(authed(token, ListConversationsRequest::default()))
        .await
}

/// Whether every service refuses `token`, by a read each of them serves.
async fn refused_everywhere(api: &ism_e2e::Api, token: &str) -> Vec<(&'static str, Code)> {
    let code = |result: Result<(), tonic::Status>| result.err().map_or(Code::Ok, |s| s.code());
    vec![
        (
            "workspaces",
            code(
                api.workspaces
                    .clone()
                    .list_users(authed(token, Default::default()))
                    .await
                    .map(drop),
            ),
        ),
        (
            "gateway",
            code(
                api.gateway
                    .clone()
                    .list_channels(authed(token, Default::default()))
                    .await
                    .map(drop),
            ),
        ),
        (
            "contacts",
            code(
                api.contacts
                    .clone()
                    .list_contacts(authed(token, Default::default()))
                    .await
                    .map(drop),
            ),
        ),
        (
            "conversations",
            code(
                api.conversations
                    .clone()
                    .list_conversations(authed(token, Default::default()))
                    .await
                    .map(drop),
            ),
        ),
        (
            "broadcasts",
            code(
                api.broadcasts
                    .clone()
                    .list_broadcasts(authed(token, Default::default()))
                    .await
                    .map(drop),
            ),
        ),
        (
            "integrations",
            code(
                api.integrations
                    .clone()
                    .list_webhook_endpoints(authed(token, Default::default()))
                    .await
                    .map(drop),
            ),
        ),
        (
            "workflows",
            code(
                api.workflows
                    .clone()
                    .list_workflows(authed(token, Default::default()))
                    .await
                    .map(drop),
            ),
        ),
    ]
}

/// Revoking an API key or deactivating a User travels as an event: within seconds every
/// service refuses their unexpired tokens, and so does a process started afterwards.
#[tokio::test]
async fn a_revoked_keys_and_a_deactivated_users_tokens_are_refused_within_seconds() {
    let receiver = Receiver::start().await;
    let mut platform = Platform::new();
    let tenant = platform.bootstrap(&receiver.url);
    let all = platform.spawn("all");
    platform.wait_ready().await;
    let api = platform.api(&tenant).await;
    let key = api.create_api_key("soon revoked", Role::Manager).await;
    let key_token = api.exchange_api_key(&key.secret).await.access_token;
    let user = api
        .workspaces
        .clone()
        .create_user(api.authed(CreateUserRequest {
            email: "leaving@example.com".into(),
            display_name: "Leaving".into(),
            role: Role::Agent as i32,
        }))
        .await
        .unwrap()
        .into_inner()
        .user
        .expect("user");
    let user_token = api
        .workspaces
        .clone()
        .issue_user_token(api.authed(IssueUserTokenRequest {
            user_id: user.id.clone(),
        }))
        .await
        .unwrap()
        .into_inner()
        .access_token;
    for token in [&key_token, &user_token] {
        let answers = refused_everywhere(&api, token).await;
        assert!(
            answers.iter().all(|(_, code)| *code == Code::Ok),
            "valid before: {answers:?}"
        );
    }

    api.workspaces
        .clone()
        .revoke_api_key(api.authed(RevokeApiKeyRequest {
            id: key.api_key.expect("key").id,
        }))
        .await
        .unwrap();
    api.workspaces
        .clone()
        .deactivate_user(api.authed(DeactivateUserRequest {
            id: user.id.clone(),
        }))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    for token in [&key_token, &user_token] {
        eventually(
            Duration::from_secs(5),
            "refused by every service",
            || async {
                let answers = refused_everywhere(&api, token).await;
                answers
                    .iter()
                    .all(|(_, code)| *code == Code::Unauthenticated)
                    .then_some(())
            },
        )
        .await;
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    let others = refused_everywhere(&api, &api.token).await;
    assert!(
        others.iter().all(|(_, code)| *code == Code::Ok),
        "other tokens keep working: {others:?}"
    );

    // A process started after the revocation learns of it from the stream.
    platform.kill(all);
    platform.spawn("all");
    platform.wait_ready().await;
    for token in [&key_token, &user_token] {
        eventually(
            Duration::from_secs(5),
            "refused after a restart",
            || async {
                let answers = refused_everywhere(&api, token).await;
                answers
                    .iter()
                    .all(|(_, code)| *code == Code::Unauthenticated)
                    .then_some(())
            },
        )
        .await;
    }
}
