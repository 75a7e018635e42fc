//! Publishes outbox rows with publisher confirms and marks them published. Rows stay
//! pending until RabbitMQ confirms them, so a crash or a broker outage loses nothing;
//! a crash between confirm and mark publishes twice, which consumers absorb by event id.
//!
//! Writers in this process wake their service's relay when they enqueue (see [`wake`]);
//! a poll every second finds what other processes wrote and never woke us for.
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel};
use sqlx::{PgPool, Row};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::Amqp;
use crate::health::BrokerLink;

/// How often the relay looks even without a wake-up (rows of another process, or of a
/// transaction that committed after the look its wake-up caused).
const POLL_INTERVAL: Duration = Duration::from_secs(1);
/// After a wake-up that found nothing (the writer had not committed yet), the relay
/// looks again after 1, 2, 4, ... ms, this many times, before waiting for the poll.
const SETTLE_LOOKS: u32 = 8;
/// The longest a batch may take to publish and be confirmed: a connection lost under a
/// publish may leave it waiting for ever, while its rows stay pending.
const BATCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Published rows are kept this long for inspection, then pruned.
const KEEP_PUBLISHED: &str = "1 hour";

/// Each service's relay wake-up, by service name.
static WAKES: LazyLock<Mutex<HashMap<String, Arc<Notify>>>> = LazyLock::new(Default::default);

fn wake_of(service: &str) -> Arc<Notify> {
    WAKES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .entry(service.to_owned())
        .or_default()
        .clone()
}

/// Wakes the relay of `service`, the first part of the type of the events it emits
/// (`<service>.<noun>.<verb>`; a [`Topic`](super::Topic) whose key starts otherwise does
/// not compile, and events are only made through topics). Writers call it as they enqueue, before their commit,
/// which is why a relay that finds nothing looks again shortly.
///
/// Postgres' LISTEN/NOTIFY would wake relays in every process, but a committing
/// transaction that notified holds one cluster-wide lock through its WAL flush, which
/// serialises every such commit of every service.
pub(crate) fn wake(service: &str) {
    wake_of(service).notify_one();
}

/// Runs until `shutdown`, reconnecting to RabbitMQ and Postgres as needed; `link`
/// follows its broker connection.
pub async fn run_relay(
    service: &'static str,
    pool: PgPool,
    amqp: Amqp,
    link: BrokerLink,
    shutdown: CancellationToken,
) {
    let mut delay = Duration::from_millis(100);
    while !shutdown.is_cancelled() {
        match relay_once(service, &pool, &amqp, &link, &shutdown).await {
            Ok(()) => return,
            Err(e) => {
                link.lost();
                tracing::warn!(service, error = %format!("{e:#}"), retry_in_ms = delay.as_millis() as u64, "outbox relay interrupted");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn relay_once(
    service: &'static str,
    pool: &PgPool,
    amqp: &Amqp,
    link: &BrokerLink,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let conn = amqp.connect().await?;
    let channel = amqp.publisher(&conn).await?;
    link.connected(conn.status().clone());
    let wake = wake_of(service);
    tracing::info!(service, "outbox relay connected");
    let mut last_prune = tokio::time::Instant::now();
    // Due at once, so that the backlog is on /metrics from the first scrape.
    let mut next_gauge = last_prune;
    // The looks left after a wake-up, each `1 << n` ms after the one before.
    let mut settle = 0..0;
    loop {
        // An idle relay would not notice a lost connection until its next publish; it
        // reconnects now, and readiness (which follows this connection) sees the loss.
        if !conn.status().connected() {
            anyhow::bail!("the broker connection was lost");
        }
        let mut published = false;
        while let Some(full) = publish_batch(service, pool, amqp, &channel).await? {
            published = true;
            if !full {
                break;
            }
        }
        if published {
            settle = 0..0;
        }
        if tokio::time::Instant::now() >= next_gauge {
            let (count, oldest) = backlog(pool).await?;
            metrics::gauge!("ism_outbox_backlog", "service" => service).set(count as f64);
            metrics::gauge!("ism_outbox_oldest_seconds", "service" => service).set(oldest);
            next_gauge = tokio::time::Instant::now() + POLL_INTERVAL;
        }
        if last_prune.elapsed() > Duration::from_secs(60) {
            prune(pool).await?;
            last_prune = tokio::time::Instant::now();
        }
        let next_look = settle
            .next()
            .map_or(POLL_INTERVAL, |n| Duration::from_millis(1 << n));
        tokio::select! {
            _ = shutdown.cancelled() => {
                // One last pass so events committed before shutdown leave now.
                while publish_batch(service, pool, amqp, &channel).await?.is_some_and(|full| full) {}
                let _ = conn.close(200, "shutdown".into()).await;
                return Ok(());
            }
            _ = wake.notified() => settle = 0..SETTLE_LOOKS,
            _ = tokio::time::sleep(next_look) => {}
        }
    }
}

/// Publishes one batch: `None` when nothing was pending, else whether the batch was
/// full (more may be waiting).
async fn publish_batch(
    service: &'static str,
    pool: &PgPool,
    amqp: &Amqp,
    channel: &Channel,
) -> anyhow::Result<Option<bool>> {
    tokio::time::timeout(BATCH_TIMEOUT, publish(service, pool, amqp, channel))
        .await
        .map_err(|_| anyhow::anyhow!("a batch was not confirmed within {BATCH_TIMEOUT:?}"))?
}

async fn publish(
    service: &'static str,
    pool: &PgPool,
    amqp: &Amqp,
    channel: &Channel,
) -> anyhow::Result<Option<bool>> {
    let batch = amqp.settings.relay_batch;
    let mut tx = pool.begin().await?;
    let rows = sqlx::query(
        "SELECT id, routing_key, body, headers FROM platform_outbox
         WHERE published_at IS NULL ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(batch)
    .fetch_all(&mut *tx)
    .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut confirms = Vec::with_capacity(rows.len());
    let mut ids = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: Uuid = row.try_get("id")?;
        let routing_key: String = row.try_get("routing_key")?;
        let body: Vec<u8> = row.try_get("body")?;
        let trace: sqlx::types::Json<BTreeMap<String, String>> = row.try_get("headers")?;
        let mut headers = FieldTable::default();
        for (k, v) in trace.0 {
            headers.insert(ShortString::from(k), AMQPValue::LongString(v.into()));
        }
        let props = BasicProperties::default()
            .with_message_id(id.to_string().into())
            .with_content_type("application/x-protobuf".into())
            .with_delivery_mode(2)
            .with_headers(headers);
        let confirm = channel
            .basic_publish(
                amqp.exchange().into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                &body,
                props,
            )
            .await?;
        confirms.push(confirm);
        ids.push(id);
    }
    for confirm in confirms {
        let confirmation = confirm.await?;
        anyhow::ensure!(confirmation.is_ack(), "RabbitMQ refused a publish (nack)");
    }
    sqlx::query("UPDATE platform_outbox SET published_at = now() WHERE id = ANY($1)")
        // Planned afresh each time: a plan cached while the outbox was empty scans it
        // whole once it holds an hour of events.
        .persistent(false)
        .bind(&ids)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    metrics::counter!("ism_outbox_published_total", "service" => service)
        .increment(ids.len() as u64);
    Ok(Some(ids.len() as i64 == batch))
}

async fn prune(pool: &PgPool) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM platform_outbox WHERE published_at < now() - $1::interval")
        .bind(KEEP_PUBLISHED)
        .execute(pool)
        .await?;
    Ok(())
}

/// Events waiting, and the oldest one's age in seconds (0 when none waits).
async fn backlog(pool: &PgPool) -> sqlx::Result<(i64, f64)> {
    sqlx::query_as(
        "SELECT count(*),
                COALESCE(extract(epoch FROM now() - (
                    SELECT created_at FROM platform_outbox WHERE published_at IS NULL
                    ORDER BY seq LIMIT 1)), 0)::float8
         FROM platform_outbox WHERE published_at IS NULL",
    )
    .fetch_one(pool)
    .await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{wake, wake_of};

    #[tokio::test]
    async fn an_enqueue_wakes_its_own_services_relay_only() {
        let (gateway, conversations) = (wake_of("test-gateway"), wake_of("test-conversations"));
        // Rung before the relay waits, as when a writer enqueues while the relay publishes:
        // the wake-up is kept for it.
        wake("test-gateway");
        tokio::time::timeout(Duration::from_secs(1), gateway.notified())
            .await
            .expect("the gateway relay is woken");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), conversations.notified())
                .await
                .is_err(),
            "another service's relay sleeps on"
        );
    }
}
