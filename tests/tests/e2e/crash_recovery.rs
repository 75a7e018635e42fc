//! Nothing lost, nothing doubled: a process killed with SIGKILL mid-flow, restarted, ends
//! with every accepted message stored exactly once; an outage of a peer service delays
//! events and dead-letters none; poison events are dead-lettered with their reason;
//! SIGTERM drains and exits cleanly.
use std::time::Duration;

use ism_e2e::{Platform, Receiver, eventually};
use lapin::options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::AMQPValue;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

fn message(id: &str, from: &str) -> Vec<u8> {
    serde_json::to_vec(
        &json!({"message_id": id, "from": {"id": from}, "text": format!("message {id}")}),
    )
    .unwrap()
}

#[tokio::test]
async fn a_gateway_killed_after_answering_200_loses_nothing() {
    let receiver = Receiver::start().await;
    let mut platform = Platform::new();
    let tenant = platform.bootstrap(&receiver.url);
    // Only the gateway runs: the message is accepted but cannot be stored downstream yet.
    let gateway = platform.spawn("gateway");
    eventually(WAIT, "the gateway", || {
        let url = format!("http://127.0.0.1:{}/readyz", platform.http_port);
        async move {
            reqwest::get(url)
                .await
                .ok()
                .filter(|r| r.status().is_success())
        }
    })
    .await;
    let (code, _) = platform
        .webhook(
            &tenant.channel_id,
            Some(&tenant.webhook_secret),
            &message("crash-1", "c1"),
        )
        .await;
    assert_eq!(code, 200);
    platform.kill(gateway);

    platform.spawn("all");
    platform.wait_ready().await;
    // The provider retries after the crash, as providers do.
    let (code, body) = platform
        .webhook(
            &tenant.channel_id,
            Some(&tenant.webhook_secret),
            &message("crash-1", "c1"),
        )
        .await;
    assert_eq!((code, body["status"].as_str()), (200, Some("duplicate")));
    let marker = platform
        .webhook(
            &tenant.channel_id,
            Some(&tenant.webhook_secret),
            &message("marker", "c1"),
        )
        .await;
    assert_eq!(marker.0, 200);

    platform.stored_external_ids(&tenant, 2).await;
    // A late duplicate would be stored after the first two: read again after a wait.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut ids = platform.stored_external_ids(&tenant, 2).await;
    ids.sort();
    assert_eq!(ids, vec!["crash-1", "marker"], "stored exactly once");
}

#[tokio::test]
async fn the_whole_platform_killed_mid_burst_stores_every_accepted_message_once() {
    let receiver = Receiver::start().await;
    let (mut platform, tenant) = Platform::start(&receiver.url).await;
    let mut accepted = Vec::new();
    for i in 0..40 {
        let id = format!("burst-{i}");
        let (code, _) = platform
            .webhook(
                &tenant.channel_id,
                Some(&tenant.webhook_secret),
                &message(&id, &format!("c{}", i % 5)),
            )
            .await;
        assert_eq!(code, 200);
        accepted.push(id);
    }
    platform.kill(0);
    platform.spawn("all");
    platform.wait_ready().await;

    let mut ids = platform.stored_external_ids(&tenant, accepted.len()).await;
    // Redeliveries after the crash have had time to arrive; none may add a row.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut again = platform.stored_external_ids(&tenant, accepted.len()).await;
    ids.sort();
    again.sort();
    accepted.sort();
    assert_eq!(ids, accepted);
    assert_eq!(again, accepted);
}

#[tokio::test]
async fn poison_events_go_to_the_dead_letter_queue_with_the_reason() {
    let receiver = Receiver::start().await;
    let (platform, tenant) = Platform::start(&receiver.url).await;
    let conn = Connection::connect(
        "amqp://guest:guest@127.0.0.1:5672/%2f",
        ConnectionProperties::default(),
    )
    .await
    .unwrap();
    let channel = conn.create_channel().await.unwrap();
    channel
        .basic_publish(
            platform.exchange().as_str().into(),
            "gateway.message.received".into(),
            BasicPublishOptions::default(),
            b"this is not protobuf \xff\xff",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();

    let dlq = format!("{}.dlq", platform.queue("conversations.inbound"));
    let dead = eventually(WAIT, "the dead letter", || {
        let channel = channel.clone();
        let dlq = dlq.clone();
        async move {
            channel
                .basic_get(dlq.as_str().into(), BasicGetOptions { no_ack: true })
                .await
                .ok()
                .flatten()
        }
    })
    .await;
    let reason = dead
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-ism-dead-letter-reason").cloned());
    let Some(AMQPValue::LongString(reason)) = reason else {
        panic!("no reason header: {:?}", dead.properties)
    };
    assert!(String::from_utf8_lossy(reason.as_bytes()).contains("not an ism.events.v1.Event"));

    // The consumer kept going: a real message after the poison one is stored.
    let (code, _) = platform
        .webhook(
            &tenant.channel_id,
            Some(&tenant.webhook_secret),
            &message("after-poison", "c1"),
        )
        .await;
    assert_eq!(code, 200);
    assert_eq!(
        platform.stored_external_ids(&tenant, 1).await,
        vec!["after-poison"]
    );
    let _ = channel.close(200, "done".into()).await;
    drop(conn);
}

#[tokio::test]
async fn sigterm_drains_and_exits_cleanly() {
    let receiver = Receiver::start().await;
    let (mut platform, tenant) = Platform::start(&receiver.url).await;
    let (code, _) = platform
        .webhook(
            &tenant.channel_id,
            Some(&tenant.webhook_secret),
            &message("before-stop", "c1"),
        )
        .await;
    assert_eq!(code, 200);
    let status = platform
        .terminate(0, Duration::from_secs(25))
        .expect("ism exits within the drain time");
    assert!(status.success(), "exit status {status:?}");
    // Nothing accepted before the stop is lost: a restart finishes the work.
    platform.spawn("all");
    platform.wait_ready().await;
    assert_eq!(
        platform.stored_external_ids(&tenant, 1).await,
        vec!["before-stop"]
    );
}

/// Longer than the whole retry schedule of a fixed attempt count (8 attempts from the
/// harness' 50 ms, doubling, with jitter: 13 s at most), well short of the retry time
/// budget.
const OUTAGE: Duration = Duration::from_secs(15);

/// Messages waiting in `queue`, without consuming them.
async fn waiting(queue: &str) -> u32 {
    let conn = Connection::connect(
        "amqp://guest:guest@127.0.0.1:5672/%2f",
        ConnectionProperties::default(),
    )
    .await
    .unwrap();
    let channel = conn.create_channel().await.unwrap();
    let declared = channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .unwrap();
    declared.message_count()
}

#[tokio::test]
async fn a_contacts_outage_delays_inbound_messages_and_dead_letters_none() {
    let receiver = Receiver::start().await;
    let mut platform = Platform::new();
    platform.set("ISM_AMQP__RETRY_MAX_DELAY_MS", "1000");
    let tenant = platform.bootstrap(&receiver.url);
    // Everything but contacts, which conversations asks for every inbound sender; calls
    // to it are refused, as to a service that is down.
    platform.unbind("contacts.grpc");
    for service in ["workspaces", "gateway", "conversations"] {
        platform.spawn(service);
    }
    eventually(
        Duration::from_secs(60),
        "the gateway and conversations",
        || {
            let platform = &platform;
            async move {
                (platform.serving("gateway").await && platform.serving("conversations").await)
                    .then_some(())
            }
        },
    )
    .await;

    let body = serde_json::to_vec(&json!({
        "message_id": "during-the-outage",
        "from": {"id": "c-outage"},
        "text": "hello while contacts is down",
    }))
    .unwrap();
    let (code, _) = platform
        .webhook(&tenant.channel_id, Some(&tenant.webhook_secret), &body)
        .await;
    assert_eq!(code, 200, "accepted while contacts is down");

    tokio::time::sleep(OUTAGE).await;
    let dlq = format!("{}.dlq", platform.queue("conversations.inbound"));
    assert_eq!(
        waiting(&dlq).await,
        0,
        "nothing dead-lettered by the outage"
    );

    platform.spawn("contacts");
    let stored = platform.stored_external_ids(&tenant, 1).await;
    assert_eq!(stored, ["during-the-outage"], "stored once the outage ends");
    assert_eq!(waiting(&dlq).await, 0);
}

/// The gateway's record of what a receiver answered fails for longer than the delivery's
/// lease (the gateway's database refuses the write): the reply is still POSTed once, and
/// the record lands when the database takes writes again.
#[tokio::test]
async fn a_reply_whose_outcome_cannot_be_recorded_is_not_sent_again() {
    use ism_proto::conversations::v1 as conv;
    use ism_proto::types::v1::{MessageContent, Text, message_content};

    let receiver = Receiver::start().await;
    // A lease of 2 × 2 s + 5 s = 9 s.
    let (platform, tenant) = Platform::start_with(
        &receiver.url,
        &[("ISM_GATEWAY__DELIVERY_TIMEOUT_MS", "2000")],
    )
    .await;
    let (code, _) = platform
        .webhook(
            &tenant.channel_id,
            Some(&tenant.webhook_secret),
            &message("hello-1", "c-record"),
        )
        .await;
    assert_eq!(code, 200);
    let api = platform.api(&tenant).await;
    let conversation = api.wait_for_conversation(WAIT, |_| true).await;

    let gate = receiver.hold_answers();
    let reply = api
        .send_message(conv::SendMessageRequest {
            conversation_id: conversation.id.clone(),
            content: Some(MessageContent {
                kind: Some(message_content::Kind::Text(Text {
                    body: "answered once".into(),
                })),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await;
    eventually(WAIT, "the reply at the receiver", || {
        let posted = receiver.received().len();
        async move { (posted == 1).then_some(()) }
    })
    .await;
    // While the receiver holds its 200, the gateway's database starts refusing every
    // change of a delivery, for longer than the lease.
    let gateway = platform.database("gateway").await;
    for statement in [
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN RAISE EXCEPTION 'refused for the test'; END $$",
        "CREATE TRIGGER refuse BEFORE UPDATE ON deliveries FOR EACH ROW EXECUTE FUNCTION refuse()",
    ] {
        sqlx::query(statement).execute(&gateway).await.unwrap();
    }
    gate.add_permits(100);
    tokio::time::sleep(Duration::from_secs(12)).await;
    sqlx::query("DROP TRIGGER refuse ON deliveries")
        .execute(&gateway)
        .await
        .unwrap();

    api.wait_for_message(&reply.id, WAIT, "the reply recorded as sent", |m| {
        m.status == ism_proto::types::v1::DeliveryStatus::Sent as i32
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.received().len(), 1, "POSTed once");
}
