//! The gateway store on a fresh Postgres database.
use chrono::{DateTime, Utc};
use ism_gateway::store::{self, Arrival, Channel, Finished, Outcome};
use ism_platform::config::ServiceName;
use ism_platform::db;
use ism_platform::events::{TracedEvent, topics};
use ism_proto::events::v1::{MessageReceived, MessageStatusChanged};
use sqlx::PgPool;
use uuid::Uuid;

fn custom_channel() -> Channel {
    Channel {
        id: Uuid::now_v7(),
        workspace_id: Uuid::now_v7(),
        kind: "custom".into(),
        name: "shop".into(),
        outbound_url: "http://127.0.0.1:9/out".into(),
        webhook_secret: "s".into(),
        credentials: None,
        api_base_url: String::new(),
        account_id: String::new(),
        healthy: true,
        health_reason: String::new(),
        rate_limit_per_second: 0,
        created_at: chrono::Utc::now(),
        updated_at: chrono::Utc::now(),
    }
}

/// A fresh gateway database holding one custom channel.
async fn scratch_with_channel() -> (db::Scratch, Channel) {
    let pool = db::scratch(ServiceName::Gateway, &ism_gateway::MIGRATOR)
        .await
        .unwrap();
    let channel = store::create_channel(&pool, &custom_channel())
        .await
        .unwrap();
    (pool, channel)
}

/// A message `id` arriving on `channel`, from a Contact with a reply window when given.
/// Queues a delivery to `recipient` on `channel`, asked for now; its message id.
async fn queue_delivery(pool: &PgPool, channel: &Channel, recipient: &str) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::query(
        "INSERT INTO deliveries (message_id, workspace_id, channel_id, requested_by, recipient, content, created_at)
         VALUES ($1, $2, $3, 'conversations', $4, '', clock_timestamp())",
    )
    .bind(id)
    .bind(channel.workspace_id)
    .bind(channel.id)
    .bind(recipient)
    .execute(pool)
    .await
    .unwrap();
    id
}

fn arrival(channel: &Channel, id: &str, window: Option<(&str, DateTime<Utc>)>) -> Arrival {
    let event =
        topics::MESSAGE_RECEIVED.event(channel.workspace_id, "k", &MessageReceived::default());
    Arrival {
        workspace_id: channel.workspace_id,
        channel_id: channel.id,
        external_message_id: id.into(),
        window: window.map(|(contact, at)| (contact.into(), at)),
        event: TracedEvent::here(event),
    }
}

#[tokio::test]
async fn an_inbound_message_and_its_event_are_recorded_once() {
    let (pool, channel) = scratch_with_channel().await;
    let one = |id| vec![arrival(&channel, id, None)];
    assert_eq!(
        store::accept_inbound(&pool, one("p-1")).await.unwrap(),
        [true]
    );
    assert_eq!(
        store::accept_inbound(&pool, one("p-1")).await.unwrap(),
        [false],
        "a provider retry is recognised"
    );
    let batch = ["p-2", "p-1", "p-2", "p-3"].map(|id| arrival(&channel, id, None));
    assert_eq!(
        store::accept_inbound(&pool, batch.into()).await.unwrap(),
        [true, false, false, true],
        "within one batch, a retry and a message given twice are recognised too"
    );
    let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM platform_outbox")
        .fetch_one(&*pool)
        .await
        .unwrap();
    assert_eq!(outbox, 3, "a duplicate writes no second event");

    // A due delivery is claimed by one worker; a second claim finds nothing while leased,
    // and the retry outcome puts it back in the future.
    queue_delivery(&pool, &channel, "c1").await;
    let claimed = store::claim_due(&pool, 10, 30.0, &[]).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(
        store::claim_due(&pool, 10, 30.0, &[])
            .await
            .unwrap()
            .is_empty(),
        "leased deliveries are not claimed twice"
    );
    let retry = Outcome::Retry {
        after_ms: 60_000,
        reason: "HTTP 503".into(),
        kind: "receiver_error",
    };
    store::finish_attempts(
        &pool,
        &[Finished {
            message_id: claimed[0].message_id,
            outcome: retry,
            event: None,
        }],
    )
    .await
    .unwrap();
    assert!(
        store::claim_due(&pool, 10, 30.0, &[])
            .await
            .unwrap()
            .is_empty(),
        "not due before its backoff"
    );
    let (status, attempts, error): (String, i32, String) =
        sqlx::query_as("SELECT status, attempts, last_error FROM deliveries")
            .fetch_one(&*pool)
            .await
            .unwrap();
    assert_eq!(
        (status.as_str(), attempts, error.as_str()),
        ("queued", 1, "HTTP 503")
    );
}

#[tokio::test]
async fn one_recipients_deliveries_are_claimed_one_at_a_time_in_order() {
    let (pool, channel) = scratch_with_channel().await;
    let queue = |recipient| queue_delivery(&pool, &channel, recipient);
    let (a1, a2, b1) = (queue("a").await, queue("a").await, queue("b").await);

    let mut claimed: Vec<Uuid> = store::claim_due(&pool, 10, 30.0, &[])
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.message_id)
        .collect();
    claimed.sort();
    assert_eq!(claimed, vec![a1, b1], "a's second waits for its first");
    let first = store::claim_due(&pool, 10, 30.0, &[]).await.unwrap();
    assert!(
        first.is_empty(),
        "nothing else is due while a1 is being sent"
    );

    // A rate-limit postponement keeps a1 ahead of a2.
    store::postpone(&pool, a1, 0).await.unwrap();
    let again: Vec<Uuid> = store::claim_due(&pool, 10, 30.0, &[])
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.message_id)
        .collect();
    assert_eq!(again, vec![a1]);
    let sent = Outcome::Sent {
        external_message_id: "p-a1".into(),
    };
    store::finish_attempts(
        &pool,
        &[Finished {
            message_id: a1,
            outcome: sent,
            event: None,
        }],
    )
    .await
    .unwrap();
    let external: String =
        sqlx::query_scalar("SELECT external_message_id FROM deliveries WHERE message_id = $1")
            .bind(a1)
            .fetch_one(&*pool)
            .await
            .unwrap();
    assert_eq!(external, "p-a1");
    let next: Vec<Uuid> = store::claim_due(&pool, 10, 30.0, &[])
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.message_id)
        .collect();
    assert_eq!(next, vec![a2], "once a1 is sent, a2 goes");
}

#[tokio::test]
async fn a_contacts_last_message_opens_the_reply_window_and_never_moves_it_back() {
    let (pool, channel) = scratch_with_channel().await;
    let c1 = [(channel.id, "c1".to_owned())];
    assert!(store::last_inbound(&pool, &c1).await.unwrap().is_empty());
    let recent = chrono::Utc::now() - chrono::TimeDelta::hours(1);
    let older = recent - chrono::TimeDelta::days(3);
    let oldest = older - chrono::TimeDelta::days(1);
    // One message alone, then two more of the same Contact in one batch.
    store::accept_inbound(&pool, vec![arrival(&channel, "m1", Some(("c1", recent)))])
        .await
        .unwrap();
    let batch =
        [("m2", older), ("m3", oldest)].map(|(id, at)| arrival(&channel, id, Some(("c1", at))));
    store::accept_inbound(&pool, batch.into()).await.unwrap();
    let last = store::last_inbound(&pool, &c1).await.unwrap()[&c1[0]];
    assert_eq!(
        last.timestamp_micros(),
        recent.timestamp_micros(),
        "a late-arriving older message does not close the window"
    );
}

#[tokio::test]
async fn a_batch_of_outcomes_is_recorded_with_its_status_events_at_once() {
    let (pool, channel) = scratch_with_channel().await;
    let mut ids = Vec::new();
    for recipient in ["a", "b", "c"] {
        ids.push(queue_delivery(&pool, &channel, recipient).await);
    }
    assert_eq!(
        store::claim_due(&pool, 10, 30.0, &[]).await.unwrap().len(),
        3
    );
    let event = || {
        topics::MESSAGE_STATUS.event(channel.workspace_id, "k", &MessageStatusChanged::default())
    };
    let finished = [
        Finished {
            message_id: ids[0],
            outcome: Outcome::Sent {
                external_message_id: "p-a".into(),
            },
            event: Some(TracedEvent::here(event())),
        },
        Finished {
            message_id: ids[1],
            outcome: Outcome::Failed {
                reason: "the recipient is blocked".into(),
                kind: "recipient",
                failure: ism_proto::types::v1::DeliveryFailure::Recipient,
            },
            event: Some(TracedEvent::here(event())),
        },
        Finished {
            message_id: ids[2],
            outcome: Outcome::Retry {
                after_ms: 60_000,
                reason: "HTTP 503".into(),
                kind: "transient",
            },
            event: None,
        },
    ];
    store::finish_attempts(&pool, &finished).await.unwrap();

    let rows: Vec<(String, String, String, i32, bool)> = sqlx::query_as(
        "SELECT status, external_message_id, last_error, attempts, next_attempt_at > now()
         FROM deliveries ORDER BY recipient",
    )
    .fetch_all(&*pool)
    .await
    .unwrap();
    assert_eq!(
        rows,
        vec![
            ("sent".into(), "p-a".into(), String::new(), 1, false),
            (
                "failed".into(),
                String::new(),
                "the recipient is blocked".into(),
                1,
                false
            ),
            ("queued".into(), String::new(), "HTTP 503".into(), 1, true),
        ]
    );
    let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM platform_outbox")
        .fetch_one(&*pool)
        .await
        .unwrap();
    assert_eq!(outbox, 2, "one status event per final outcome");
}

/// The plan guard (ADR 21) over the gateway's hot statements: inbound intake, reply
/// windows, delivery bookkeeping and receipts, on never-analysed tables holding a
/// thousand messages and deliveries.
#[tokio::test]
async fn hot_statements_probe_by_key_on_tables_never_analysed() {
    const GROWING: &[&str] = &[
        "inbound_messages",
        "reply_windows",
        "deliveries",
        "platform_outbox",
    ];
    let (pool, channel) = scratch_with_channel().await;
    ism_platform::plans::never_analysed(&pool, GROWING)
        .await
        .unwrap();
    let now = Utc::now();
    for chunk in 0..10 {
        let batch = (0..100)
            .map(|n| {
                let contact = format!("c{chunk}-{n}");
                arrival(&channel, &format!("m{chunk}-{n}"), Some((&contact, now)))
            })
            .collect();
        store::accept_inbound(&pool, batch).await.unwrap();
    }
    let mut queued = Vec::new();
    for n in 0..1000 {
        queued.push(queue_delivery(&pool, &channel, &format!("c0-{}", n % 100)).await);
    }

    let guarded = ism_platform::plans::guarded_pool(&pool).await.unwrap();
    let batch = ["m0-1", "new-1", "new-2"]
        .map(|id| arrival(&channel, id, Some(("c0-1", now))))
        .into();
    store::accept_inbound(&guarded, batch).await.unwrap();
    store::last_inbound(&guarded, &[(channel.id, "c0-1".to_owned())])
        .await
        .unwrap();
    let claimed = store::claim_due(&guarded, 10, 30.0, &[]).await.unwrap();
    store::postpone(&guarded, claimed[0].message_id, 0)
        .await
        .unwrap();
    let finished: Vec<Finished> = claimed
        .iter()
        .map(|d| Finished {
            message_id: d.message_id,
            outcome: Outcome::Sent {
                external_message_id: format!("p-{}", d.message_id),
            },
            event: None,
        })
        .collect();
    store::finish_attempts(&guarded, &finished).await.unwrap();
    let sent = format!("p-{}", claimed[1].message_id);
    assert!(
        store::is_our_message(&guarded, channel.id, &sent)
            .await
            .unwrap()
    );
    let status = |_: &store::Receipted| {
        topics::MESSAGE_STATUS.event(channel.workspace_id, "k", &MessageStatusChanged::default())
    };
    let receipted = [sent];
    store::apply_receipt(
        &guarded,
        channel.id,
        "delivered",
        "",
        Some(&receipted),
        None,
        status,
    )
    .await
    .unwrap();
    store::apply_receipt(
        &guarded,
        channel.id,
        "read",
        "",
        None,
        Some(("c0-2", now)),
        status,
    )
    .await
    .unwrap();

    ism_platform::plans::assert_probes_by_key(&guarded, GROWING, 6).await;
    assert_eq!(queued.len(), 1000);
    guarded.close().await;
}
