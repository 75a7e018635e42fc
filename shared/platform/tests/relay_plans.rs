//! The plan guard (ADR 21) over the outbox relay, which every service runs: its batch read
//! of a never-analysed outbox holding a thousand published events stays on the pending
//! index.
use std::time::Duration;

use ism_platform::config::{ServiceName, Settings};
use ism_platform::events::{self, Amqp};
use ism_platform::{db, plans};
use ism_proto::events::v1::Event;
use sqlx::migrate::Migrator;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

const GROWING: &[&str] = &["platform_outbox", "platform_inbox"];

#[tokio::test]
async fn the_relay_reads_pending_events_by_index_on_an_outbox_never_analysed() {
    let pool = db::scratch(ServiceName::Broadcasts, &Migrator::DEFAULT)
        .await
        .unwrap();
    plans::never_analysed(&pool, GROWING).await.unwrap();
    sqlx::query(
        "INSERT INTO platform_outbox (id, routing_key, body, published_at)
         SELECT gen_random_uuid(), 'plans.event.published', '', now() FROM generate_series(1, 1000)",
    )
    .execute(&*pool)
    .await
    .unwrap();

    let guarded = plans::guarded_pool(&pool).await.unwrap();
    let event = Event {
        id: Uuid::now_v7().to_string(),
        r#type: "plans.event.pending".into(),
        ..Default::default()
    };
    let mut tx = guarded.begin().await.unwrap();
    events::enqueue(&mut tx, &event).await.unwrap();
    tx.commit().await.unwrap();
    let amqp = Amqp::new(Settings::load().unwrap().amqp);
    let shutdown = CancellationToken::new();
    let relay = tokio::spawn(events::run_relay(
        "plans",
        guarded.clone(),
        amqp,
        Default::default(),
        shutdown.clone(),
    ));
    let pending = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT count(*) FROM platform_outbox WHERE published_at IS NULL",
        )
        .fetch_one(&*pool)
        .await
        .unwrap()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while pending().await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the relay published"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    relay.await.unwrap();

    plans::assert_probes_by_key(&guarded, GROWING, 2).await;
    guarded.close().await;
}
