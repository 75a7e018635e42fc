//! The gateway store on a fresh Postgres database.
use ism_gateway::store::{self, Channel, Outcome};
use ism_platform::config::ServiceName;
use ism_platform::{db, events};
use ism_proto::events::v1::MessageReceived;
use uuid::Uuid;

#[tokio::test]
async fn an_inbound_message_and_its_event_are_recorded_once() {
    let pool = db::scratch(ServiceName::Gateway, &ism_gateway::MIGRATOR)
        .await
        .unwrap();
    let channel = Channel {
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
    };
    let channel = store::create_channel(&pool, &channel).await.unwrap();
    let event = || {
        events::new_event(
            "gateway.message.received",
            channel.workspace_id,
            "k",
            &MessageReceived::default(),
        )
    };
    assert!(
        store::accept_inbound(&pool, &channel, "p-1", None, &event())
            .await
            .unwrap()
    );
    assert!(
        !store::accept_inbound(&pool, &channel, "p-1", None, &event())
            .await
            .unwrap(),
        "a provider retry is recognised"
    );
    let outbox: i64 = sqlx::query_scalar("SELECT count(*) FROM platform_outbox")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(outbox, 1, "a duplicate writes no second event");

    // A due delivery is claimed by one worker; a second claim finds nothing while leased,
    // and the retry outcome puts it back in the future.
    sqlx::query("INSERT INTO deliveries (message_id, workspace_id, channel_id, requested_by, recipient, content) VALUES ($1, $2, $3, 'conversations', 'c1', '')")
        .bind(Uuid::now_v7())
        .bind(channel.workspace_id)
        .bind(channel.id)
        .execute(&pool)
        .await
        .unwrap();
    let claimed = store::claim_due(&pool, 10, 30.0).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(
        store::claim_due(&pool, 10, 30.0).await.unwrap().is_empty(),
        "leased deliveries are not claimed twice"
    );
    let retry = Outcome::Retry {
        after_ms: 60_000,
        reason: "HTTP 503".into(),
        kind: "receiver_error",
    };
    store::finish_attempt(&pool, &claimed[0], &retry, None)
        .await
        .unwrap();
    assert!(
        store::claim_due(&pool, 10, 30.0).await.unwrap().is_empty(),
        "not due before its backoff"
    );
    let (status, attempts, error): (String, i32, String) =
        sqlx::query_as("SELECT status, attempts, last_error FROM deliveries")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(
        (status.as_str(), attempts, error.as_str()),
        ("queued", 1, "HTTP 503")
    );
    db::drop_scratch(pool).await.unwrap();
}
