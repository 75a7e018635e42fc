//! Tokens: expired, revoked, forged and tampered tokens are refused by every service, and
//! a revoked API key stops exchanging at once.
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ism_e2e::{Platform, Receiver, authed};
use ism_proto::conversations::v1 as conversations;
use ism_proto::workspaces::v1 as ws;
use ism_proto::workspaces::v1::workspace_service_client::WorkspaceServiceClient;
use serde_json::json;
use tonic::Code;

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
    let owner = platform.api(&tenant).await;
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

    let mut w = owner.workspaces.clone();
    let mut v = owner.conversations.clone();
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
    let created = owner.create_api_key("temp", ws::Role::Agent).await;
    let exchanged = owner.exchange_api_key(&created.secret).await;
    let lifetime = exchanged.expires_at.unwrap().seconds - chrono_now();
    assert!((1..=300).contains(&lifetime), "token lives {lifetime} s");
    let listed = owner.list_api_keys().await;
    assert!(
        !format!("{listed:?}").contains(&created.secret),
        "a listed key shows its secret"
    );
    owner.revoke_api_key(&created.api_key.unwrap().id).await;
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

/// A service started before the workspaces service is not SERVING until it has the token
/// keys, and from then on takes a valid token on its first call.
#[tokio::test]
async fn a_service_started_before_workspaces_takes_valid_tokens_once_serving() {
    let receiver = Receiver::start().await;
    let mut platform = Platform::new();
    let tenant = platform.bootstrap(&receiver.url);
    // The workspaces service is down: calls to its port are refused.
    platform.unbind("workspaces.grpc");
    platform.spawn("conversations");
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert!(
        !platform.serving("conversations").await,
        "not SERVING without the keys to check tokens"
    );

    platform.spawn("workspaces");
    let token = ism_e2e::eventually(
        std::time::Duration::from_secs(30),
        "a token from workspaces",
        || {
            let platform = &platform;
            let tenant = &tenant;
            async move {
                let channel = platform.channel("workspaces").connect().await.ok()?;
                let answer = WorkspaceServiceClient::new(channel)
                    .exchange_api_key(ws::ExchangeApiKeyRequest {
                        api_key: tenant.api_key.clone(),
                    })
                    .await
                    .ok()?;
                Some(answer.into_inner().access_token)
            }
        },
    )
    .await;
    ism_e2e::eventually(
        std::time::Duration::from_secs(30),
        "conversations SERVING",
        || {
            let platform = &platform;
            async move { platform.serving("conversations").await.then_some(()) }
        },
    )
    .await;
    let first = platform
        .conversations()
        .await
        .list_conversations(authed(
            &token,
            conversations::ListConversationsRequest::default(),
        ))
        .await;
    assert!(first.is_ok(), "the first call is taken: {first:?}");
}
