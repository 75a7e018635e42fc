//! Bad webhooks get a clear HTTP error and store nothing; a provider's retry of the same
//! message stores one message.
use std::time::Duration;

use ism_e2e::oversize::{declared_length_status, trickle};
use ism_e2e::{Platform, Receiver, sign};
use serde_json::json;

#[tokio::test]
async fn bad_webhooks_are_refused_with_a_reason_and_change_nothing() {
    let receiver = Receiver::start().await;
    let (platform, tenant) = Platform::start(&receiver.url).await;
    let good = serde_json::to_vec(&json!({"message_id": "m1", "from": {"id": "c1"}, "text": "hi"}))
        .unwrap();
    let channel = tenant.channel_id.as_str();
    let secret = tenant.webhook_secret.as_str();

    let (code, _) = platform.webhook(channel, None, &good).await;
    assert_eq!(code, 401, "unsigned");
    let (code, body) = platform
        .webhook(channel, Some("not-the-secret"), &good)
        .await;
    assert_eq!(code, 401, "wrongly signed");
    assert!(body["error"].as_str().unwrap().contains("X-ISM-Signature"));

    let (code, body) = platform
        .webhook(channel, Some(secret), b"{\"message_id\": ")
        .await;
    assert_eq!(code, 400);
    assert!(
        body["error"].as_str().unwrap().contains("malformed JSON"),
        "{body}"
    );
    let (code, body) = platform
        .webhook(
            channel,
            Some(secret),
            br#"{"message_id":"m2","from":{"id":"c1"}}"#,
        )
        .await;
    assert_eq!(code, 400);
    assert!(
        body["error"].as_str().unwrap().contains("text or media"),
        "{body}"
    );

    let (code, body) = platform
        .webhook(
            channel,
            Some(secret),
            br#"{"message_id":"m\u0000","from":{"id":"c1"},"text":"hi"}"#,
        )
        .await;
    assert_eq!(code, 400);
    assert!(body["error"].as_str().unwrap().contains("NUL"), "{body}");

    let huge = serde_json::to_vec(
        &json!({"message_id": "m3", "from": {"id": "c1"}, "text": "x".repeat(1_100_000)}),
    )
    .unwrap();
    let headers = [
        ("content-type", "application/json".to_owned()),
        ("x-ism-signature", sign(secret, &huge)),
    ];
    let path = format!("/webhooks/custom/{channel}");
    assert_eq!(
        declared_length_status(platform.http_port, &path, &headers, huge.len()).await,
        413
    );

    // The body is right and signed, but not sent as the provider sends it.
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}{path}", platform.http_port))
        .header("content-type", "text/plain")
        .header("x-ism-signature", sign(secret, &good))
        .body(good.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 415);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("application/json"),
        "{body}"
    );

    assert_eq!(
        platform
            .webhook(&uuid::Uuid::now_v7().to_string(), Some(secret), &good)
            .await
            .0,
        404
    );
    assert_eq!(
        platform.webhook("not-a-uuid", Some(secret), &good).await.0,
        404
    );

    // Let anything wrongly accepted travel through, then check nothing was stored.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        platform
            .api(&tenant)
            .await
            .list_conversations()
            .await
            .is_empty(),
        "nothing is stored from refused webhooks"
    );
    let gateway = platform.database("gateway").await;
    let inbound: i64 = sqlx::query_scalar("SELECT count(*) FROM inbound_messages")
        .fetch_one(&gateway)
        .await
        .unwrap();
    assert_eq!(inbound, 0);
}

#[tokio::test]
async fn the_same_webhook_sent_twice_is_one_message() {
    let receiver = Receiver::start().await;
    let (platform, tenant) = Platform::start(&receiver.url).await;
    let body = serde_json::to_vec(
        &json!({"message_id": "retry-me", "from": {"id": "c9"}, "text": "once"}),
    )
    .unwrap();
    let first = platform
        .webhook(&tenant.channel_id, Some(&tenant.webhook_secret), &body)
        .await;
    let second = platform
        .webhook(&tenant.channel_id, Some(&tenant.webhook_secret), &body)
        .await;
    assert_eq!((first.0, second.0), (200, 200));
    assert_eq!(first.1["status"], "accepted");
    assert_eq!(second.1["status"], "duplicate");
    // A second, distinct message proves the pipeline ran past the duplicate.
    let later =
        serde_json::to_vec(&json!({"message_id": "after", "from": {"id": "c9"}, "text": "twice"}))
            .unwrap();
    assert_eq!(
        platform
            .webhook(&tenant.channel_id, Some(&tenant.webhook_secret), &later)
            .await
            .0,
        200
    );

    // A NUL, which JSON can escape and Postgres text cannot hold, in the sender's name and
    // the text: the message is still kept.
    let nul =
        br#"{"message_id":"with-nul","from":{"id":"c9","name":"Ada\u0000"},"text":"a\u0000b"}"#;
    let (code, body) = platform
        .webhook(&tenant.channel_id, Some(&tenant.webhook_secret), nul)
        .await;
    assert_eq!((code, &body["status"]), (200, &json!("accepted")), "{body}");

    let ids = platform.stored_external_ids(&tenant, 3).await;
    assert_eq!(ids, vec!["with-nul", "after", "retry-me"]);
}

#[tokio::test]
async fn slow_clients_are_cut_off_while_others_are_served() {
    let receiver = Receiver::start().await;
    let (platform, tenant) = Platform::start_with(
        &receiver.url,
        &[
            ("ISM_GATEWAY__HTTP_HEADER_TIMEOUT_MS", "1000"),
            ("ISM_GATEWAY__HTTP_REQUEST_TIMEOUT_MS", "2000"),
        ],
    )
    .await;
    let body = br#"{"message_id":"slow","from":{"id":"c1"},"text":"hi"}"#;
    let head = |length: usize| {
        format!(
            "POST /webhooks/custom/{} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n\
             x-ism-signature: {}\r\ncontent-length: {length}\r\n\r\n",
            tenant.channel_id,
            sign(&tenant.webhook_secret, body)
        )
    };
    let every = Duration::from_millis(300);
    let port = platform.http_port;
    // Two send their headers a byte at a time, two their body (after whole headers).
    let slow_headers: Vec<_> = (0..2)
        .map(|_| tokio::spawn(trickle(port, head(body.len()).into_bytes(), 0, every)))
        .collect();
    let slow_bodies: Vec<_> = (0..2)
        .map(|_| {
            let mut request = head(body.len()).into_bytes();
            let whole_head = request.len();
            request.extend_from_slice(body);
            tokio::spawn(trickle(port, request, whole_head, every))
        })
        .collect();

    // Meanwhile a provider's webhook is served as usual.
    let prompt =
        serde_json::to_vec(&json!({"message_id": "quick", "from": {"id": "c2"}, "text": "hi"}))
            .unwrap();
    let (code, _) = platform
        .webhook(&tenant.channel_id, Some(&tenant.webhook_secret), &prompt)
        .await;
    assert_eq!(code, 200);

    for slow in slow_headers {
        let (answer, after) = slow.await.unwrap();
        assert!(
            after < Duration::from_secs(6),
            "headers trickled for {after:?}: {answer:?}"
        );
        assert!(!answer.contains(" 200 "), "{answer:?}");
    }
    for slow in slow_bodies {
        let (answer, after) = slow.await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
        assert!(
            after < Duration::from_secs(8),
            "a body trickled for {after:?}"
        );
    }
}
