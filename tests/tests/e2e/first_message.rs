//! The first flow through the real binary: a signed webhook becomes a Contact, a
//! Conversation and a Message; a reply is delivered, signed, to the business's system and
//! its status comes back.
use std::time::Duration;

use ism_e2e::{Api, Platform, Receiver, Tenant, eventually, sign};
use ism_proto::conversations::v1::{Conversation, SendMessageRequest};
use ism_proto::types::v1::{
    DeliveryStatus, Direction, MessageContent, Text, message_content::Kind,
};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

/// The conversation a Contact opens by writing "hi" through the tenant's channel.
async fn contact_says_hi(platform: &Platform, tenant: &Tenant, api: &Api) -> Conversation {
    let body = br#"{"message_id":"m1","from":{"id":"c1"},"text":"hi"}"#;
    let (code, _) = platform
        .webhook(&tenant.channel_id, Some(&tenant.webhook_secret), body)
        .await;
    assert_eq!(code, 200);
    api.wait_for_conversation(WAIT, |_| true).await
}

/// A text reply in `conversation` with the client message id `client_id`.
fn text_reply(conversation: &str, body: &str, client_id: &str) -> SendMessageRequest {
    SendMessageRequest {
        conversation_id: conversation.to_owned(),
        content: text(body),
        client_message_id: client_id.to_owned(),
        snippet_id: String::new(),
    }
}

fn text(body: &str) -> Option<MessageContent> {
    Some(MessageContent {
        kind: Some(Kind::Text(Text {
            body: body.to_owned(),
        })),
        ..Default::default()
    })
}

#[tokio::test]
async fn a_webhook_becomes_a_conversation_and_a_reply_reaches_the_business() {
    let receiver = Receiver::start().await;
    let (platform, tenant) = Platform::start(&receiver.url).await;
    let api = platform.api(&tenant).await;

    let body = serde_json::to_vec(&json!({
        "message_id": "biz-msg-1",
        "from": { "id": "customer-42", "name": "Ada Lovelace" },
        "timestamp": "2026-11-25T10:00:00Z",
        "text": "Hello, is my order shipped?"
    }))
    .unwrap();
    let (code, answer) = platform
        .webhook(&tenant.channel_id, Some(&tenant.webhook_secret), &body)
        .await;
    assert_eq!(code, 200, "{answer}");
    assert_eq!(answer["status"], "accepted");

    let conversation = api.wait_for_conversation(WAIT, |_| true).await;
    assert_eq!(conversation.channel_id, tenant.channel_id);
    assert_eq!(conversation.workspace_id, tenant.workspace_id);

    let messages = api.list_messages(&conversation.id).await;
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].content, text("Hello, is my order shipped?"));
    assert_eq!(messages[0].direction, Direction::Inbound as i32);
    assert_eq!(messages[0].external_message_id, "biz-msg-1");
    assert_eq!(messages[0].sent_at.unwrap().seconds, 1_795_600_800);

    let contact = api.get_contact(&conversation.contact_id).await;
    assert_eq!(
        (contact.first_name.as_str(), contact.last_name.as_str()),
        ("Ada", "Lovelace")
    );
    assert_eq!(contact.identities[0].external_id, "customer-42");

    let reply = api
        .send_message(text_reply(
            &conversation.id,
            "Yes, it left this morning.",
            "reply-1",
        ))
        .await;
    assert_eq!(reply.status, DeliveryStatus::Pending as i32);

    let delivered = eventually(WAIT, "the outbound POST", || {
        let receiver = receiver.clone();
        async move { receiver.received().into_iter().next() }
    })
    .await;
    let posted: serde_json::Value = serde_json::from_slice(&delivered.body).unwrap();
    assert_eq!(posted["to"], "customer-42");
    assert_eq!(posted["text"], "Yes, it left this morning.");
    assert_eq!(posted["message_id"], reply.id.as_str());
    assert_eq!(
        delivered.headers["x-ism-signature"].to_str().unwrap(),
        sign(&tenant.webhook_secret, &delivered.body),
        "outbound messages are signed with the channel secret"
    );

    let sent = api
        .wait_for_message(&reply.id, WAIT, "the sent status", |m| {
            m.status == DeliveryStatus::Sent as i32
        })
        .await;
    assert_eq!(sent.external_message_id, "biz-1");

    // A retried SendMessage with the same client id is the same message, sent once.
    let again = api
        .send_message(text_reply(
            &conversation.id,
            "Yes, it left this morning.",
            "reply-1",
        ))
        .await;
    assert_eq!(again.id, reply.id);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), 1);
}

#[tokio::test]
async fn a_refused_reply_fails_with_the_receivers_reason_and_a_flaky_one_is_retried() {
    let receiver = Receiver::start().await;
    let (platform, tenant) = Platform::start(&receiver.url).await;
    let api = platform.api(&tenant).await;
    let conversation = contact_says_hi(&platform, &tenant, &api).await;

    receiver.script(&[
        (400, "unknown recipient"),
        (503, "busy"),
        (200, r#"{"message_id":"ok-2"}"#),
    ]);
    let mut statuses = Vec::new();
    for client_id in ["refused", "flaky"] {
        let message = api
            .send_message(text_reply(&conversation.id, client_id, client_id))
            .await;
        let done = api
            .wait_for_message(&message.id, WAIT, "a final status", |m| {
                m.status != DeliveryStatus::Pending as i32
            })
            .await;
        statuses.push(done);
    }
    assert_eq!(statuses[0].status, DeliveryStatus::Failed as i32);
    assert!(
        statuses[0].failure_reason.contains("HTTP 400")
            && statuses[0].failure_reason.contains("unknown recipient"),
        "{}",
        statuses[0].failure_reason
    );
    assert_eq!(
        statuses[1].status,
        DeliveryStatus::Sent as i32,
        "a 503 is retried, then sent"
    );
    assert_eq!(statuses[1].external_message_id, "ok-2");
    assert_eq!(receiver.received().len(), 3);
}

/// A receiver that answers 503 for a while (a restart) gets the reply once it is back:
/// retries run for a time budget, not a handful of attempts.
#[tokio::test]
async fn a_reply_rides_out_a_receivers_restart() {
    let receiver = Receiver::start().await;
    let (platform, tenant) = Platform::start(&receiver.url).await;
    let api = platform.api(&tenant).await;
    let conversation = contact_says_hi(&platform, &tenant, &api).await;

    let restarting = [(503, "restarting"); 6];
    receiver.script(&restarting);
    let reply = api
        .send_message(text_reply(
            &conversation.id,
            "Still there?",
            "after-restart",
        ))
        .await;
    let retrying = api
        .wait_for_message(&reply.id, WAIT, "its next attempt shown", |m| {
            m.next_attempt_at.is_some()
        })
        .await;
    assert_eq!(retrying.status, DeliveryStatus::Pending as i32);
    assert!(
        retrying.retry_reason.contains("HTTP 503") && retrying.retry_reason.contains("restarting"),
        "{}",
        retrying.retry_reason
    );
    let next = retrying.next_attempt_at.expect("shown").seconds;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs() as i64;
    assert!(
        (now - 60..=now + 60).contains(&next),
        "the next attempt is due within the minute: {next} vs {now}"
    );
    let done = api
        .wait_for_message(&reply.id, Duration::from_secs(60), "a final status", |m| {
            m.status != DeliveryStatus::Pending as i32
        })
        .await;
    assert_eq!(
        done.status,
        DeliveryStatus::Sent as i32,
        "{}",
        done.failure_reason
    );
    assert_eq!(receiver.received().len(), 7, "six 503s, then the 200");
    assert_eq!(
        done.next_attempt_at, None,
        "a sent message has no next attempt"
    );
    assert_eq!(done.retry_reason, "");
}

/// Each channel type retries for its own time: here custom channels give up after two
/// seconds, and the message fails saying why and what to do.
#[tokio::test]
async fn a_reply_fails_once_its_channel_types_retry_time_is_over() {
    let receiver = Receiver::start().await;
    let (platform, tenant) = Platform::start_with(
        &receiver.url,
        &[(
            "ISM_GATEWAY__DELIVERY_RETRY_FOR_SECONDS_BY_TYPE__CUSTOM",
            "2",
        )],
    )
    .await;
    let api = platform.api(&tenant).await;
    let conversation = contact_says_hi(&platform, &tenant, &api).await;

    receiver.script(&[(503, "down for maintenance"); 100]);
    let reply = api
        .send_message(text_reply(&conversation.id, "Anyone?", "budget"))
        .await;
    let done = api
        .wait_for_message(&reply.id, WAIT, "a final status", |m| {
            m.status != DeliveryStatus::Pending as i32
        })
        .await;
    assert_eq!(done.status, DeliveryStatus::Failed as i32);
    assert!(
        done.failure_reason.starts_with("gave up after ")
            && done
                .failure_reason
                .contains("send it again once the provider is reachable")
            && done.failure_reason.contains("down for maintenance"),
        "{}",
        done.failure_reason
    );
    let tries = receiver.received().len();
    assert!(
        (2..40).contains(&tries),
        "retried within its two seconds, then stopped: {tries}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(receiver.received().len(), tries, "no attempt after failing");
}
