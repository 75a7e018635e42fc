//! Tokens: expired, revoked, forged and tampered tokens are refused by every service, a
//! revoked API key stops exchanging at once and its tokens within seconds, credential
//! guessing is slowed, and the signing key is sealed at rest.
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::time::Duration;

use ism_e2e::{Api, Platform, Receiver, authed, eventually};
use ism_proto::conversations::v1 as conversations;
use ism_proto::conversations::v1::ListConversationsRequest;
use ism_proto::workspaces::v1 as ws;
use ism_proto::workspaces::v1::Role;
use ism_proto::workspaces::v1::workspace_service_client::WorkspaceServiceClient;
use ism_proto::workspaces::v1::{
    CreateUserRequest, DeactivateUserRequest, ExchangeApiKeyRequest, GetPublicKeysRequest,
    IssueServiceTokenRequest, IssueUserTokenRequest, RevokeApiKeyRequest,
};
use serde_json::json;
use tonic::Code;

/// The Ed25519 key the platform of these tests is configured to sign with
/// (`auth.signing_key_pem`), so that a test can forge tokens the platform would sign.
const SIGNING_KEY_PEM: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIDn823c9Rnnrbw2NwfZhrM7OpHYKXIVAlB0Zz/XZ5COc
-----END PRIVATE KEY-----";

/// Signs `claims` with the platform's own signing key ([`SIGNING_KEY_PEM`]).
async fn sign_with_platform_key(platform: &Platform, claims: serde_json::Value) -> String {
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
        &jsonwebtoken::EncodingKey::from_ed_pem(SIGNING_KEY_PEM.as_bytes()).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn expired_revoked_forged_and_tampered_tokens_are_refused() {
    let receiver = Receiver::start().await;
    let (platform, tenant) = Platform::start_with(
        &receiver.url,
        &[("ISM_AUTH__SIGNING_KEY_PEM", SIGNING_KEY_PEM)],
    )
    .await;
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

/// Credential guessing is slowed: a handful of wrong API keys or service secrets from one
/// address, or for one key, and further calls are refused with a retry time (even with
/// the right key) until the budget refills. Failures are counted and logged as warnings.
#[tokio::test]
async fn credential_guessing_is_refused_after_a_few_tries_and_counted() {
    let receiver = Receiver::start().await;
    let (platform, tenant) = Platform::start_with(
        &receiver.url,
        &[
            ("ISM_WORKSPACES__CREDENTIAL_FAILURE_BURST", "5"),
            ("ISM_WORKSPACES__CREDENTIAL_FAILURES_PER_MINUTE", "60"),
            ("ISM_WORKSPACES__PUBLIC_CALL_BURST", "40"),
            ("ISM_WORKSPACES__PUBLIC_CALLS_PER_SECOND", "5"),
        ],
    )
    .await;
    let mut workspaces =
        WorkspaceServiceClient::new(platform.channel("workspaces").connect().await.unwrap());
    let (prefix, _) = tenant
        .api_key
        .rsplit_once('_')
        .expect("ism_<prefix>_<secret>");
    let guess = |n: usize| ExchangeApiKeyRequest {
        api_key: format!("{prefix}_wrong{n}"),
    };

    // Five wrong guesses at once, then one a second as the budget refills.
    let answered_within = |elapsed: Duration| 5..=5 + elapsed.as_secs() as usize + 1;
    let started = std::time::Instant::now();
    let mut answers = Vec::new();
    for n in 0..300 {
        answers.push(workspaces.exchange_api_key(guess(n)).await.unwrap_err());
    }
    let refused_credentials = answers
        .iter()
        .filter(|s| s.code() == Code::Unauthenticated)
        .count();
    assert!(
        answered_within(started.elapsed()).contains(&refused_credentials),
        "five wrong guesses are answered, then the rest are refused: {refused_credentials} in {:?}",
        started.elapsed()
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
    let started = std::time::Instant::now();
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
    let refused_secrets = service_answers
        .iter()
        .filter(|c| **c == Code::Unauthenticated)
        .count();
    assert!(
        answered_within(started.elapsed()).contains(&refused_secrets),
        "{service_answers:?}"
    );
    assert_eq!(service_answers.last(), Some(&Code::ResourceExhausted));

    let metrics = platform.metrics("workspaces").await;
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
    assert_eq!(counted("IssueServiceToken"), Some(refused_secrets as f64));
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

/// A signing key stored in clear by an earlier version is sealed at the next start, its
/// clear copy erased, and it keeps signing the tokens every service accepts.
#[tokio::test]
async fn a_signing_key_stored_in_clear_is_sealed_at_start() {
    let receiver = Receiver::start().await;
    let mut platform = Platform::new();
    let tenant = platform.bootstrap(&receiver.url);
    let db = platform.database("workspaces").await;
    let body: String = SIGNING_KEY_PEM
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    let pkcs8 = base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap();
    sqlx::query(
        "INSERT INTO signing_keys (kid, pkcs8, created_at) VALUES ('legacy', $1, now() + interval '1 minute')",
    )
    .bind(&pkcs8)
    .execute(&db)
    .await
    .unwrap();
    platform.spawn("all");
    platform.wait_ready().await;

    let (clear, sealed): (Option<Vec<u8>>, Option<Vec<u8>>) =
        sqlx::query_as("SELECT pkcs8, sealed FROM signing_keys WHERE kid = 'legacy'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(clear, None, "the clear copy is erased");
    let sealed = sealed.expect("sealed");
    assert!(
        !sealed.windows(pkcs8.len()).any(|w| w == pkcs8.as_slice()),
        "the sealed form does not hold the key in clear"
    );
    let api = platform.api(&tenant).await;
    let forged = sign_with_platform_key(
        &platform,
        json!({"iss": "ism-workspaces", "sub": "api_key:x", "iat": chrono_now(), "exp": chrono_now() + 60,
               "role": "owner", "ws": tenant.workspace_id}),
    )
    .await;
    let answers = answers_everywhere(&api, &forged).await;
    assert!(
        answers.iter().all(|(_, code)| *code == Code::Ok),
        "the stored key still signs what every service accepts: {answers:?}"
    );
}

/// What each service answers `token`, by a read each of them serves.
async fn answers_everywhere(api: &Api, token: &str) -> Vec<(&'static str, Code)> {
    macro_rules! answer {
        ($client:expr, $read:ident) => {
            $client
                .clone()
                .$read(authed(token, Default::default()))
                .await
                .err()
                .map_or(Code::Ok, |s| s.code())
        };
    }
    vec![
        ("workspaces", answer!(api.workspaces, list_users)),
        ("gateway", answer!(api.gateway, list_channels)),
        ("contacts", answer!(api.contacts, list_contacts)),
        (
            "conversations",
            answer!(api.conversations, list_conversations),
        ),
        ("broadcasts", answer!(api.broadcasts, list_broadcasts)),
        (
            "integrations",
            answer!(api.integrations, list_webhook_endpoints),
        ),
        ("workflows", answer!(api.workflows, list_workflows)),
    ]
}

/// Waits up to 5 seconds for every service to refuse `token` as UNAUTHENTICATED.
async fn refused_everywhere_within_seconds(api: &Api, token: &str, what: &str) {
    eventually(Duration::from_secs(5), what, || async {
        answers_everywhere(api, token)
            .await
            .iter()
            .all(|(_, code)| *code == Code::Unauthenticated)
            .then_some(())
    })
    .await;
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
        let answers = answers_everywhere(&api, token).await;
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
        refused_everywhere_within_seconds(&api, token, "refused by every service").await;
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    let others = answers_everywhere(&api, &api.token).await;
    assert!(
        others.iter().all(|(_, code)| *code == Code::Ok),
        "other tokens keep working: {others:?}"
    );

    // A process started after the revocation learns of it from the stream.
    platform.kill(all);
    platform.spawn("all");
    platform.wait_ready().await;
    for token in [&key_token, &user_token] {
        refused_everywhere_within_seconds(&api, token, "refused after a restart").await;
    }
}
