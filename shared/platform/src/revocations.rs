//! Revoked access, learnt from `workspaces.access.revoked` events (ADR 28): per subject,
//! the time until which its tokens are refused. One set per process, filled by one
//! reader of the revocations stream however many services the process serves, and read
//! by every verifier of the process.
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, RwLock};
use std::time::Duration;

use futures::StreamExt;
use ism_proto::events::v1::{AccessRevoked, Event};
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable};
use prost::Message;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::events::{Amqp, topics};

/// How long revocations are kept, in the stream and here: longer than any token lives.
const KEPT: Duration = Duration::from_secs(24 * 3600);

/// Per subject (`api_key:<id>`, `user:<id>`), the latest revocation (Unix seconds).
static REVOKED: LazyLock<RwLock<HashMap<String, i64>>> = LazyLock::new(Default::default);
/// Whether a reader of the stream runs in this process.
static FOLLOWED: AtomicBool = AtomicBool::new(false);

/// Whether `subject`'s access was revoked at or after `issued_at` (Unix seconds).
pub fn covers(subject: &str, issued_at: i64) -> bool {
    let revoked = REVOKED.read().unwrap_or_else(|p| p.into_inner());
    revoked.get(subject).is_some_and(|at| issued_at <= *at)
}

/// Refuses `subject`'s tokens issued at or before `at` from now on.
fn revoke(subject: String, at: i64) {
    let mut revoked = REVOKED.write().unwrap_or_else(|p| p.into_inner());
    // A revocation older than the stream keeps outlived every token it covered.
    let forgotten = at - KEPT.as_secs() as i64;
    revoked.retain(|_, when| *when > forgotten);
    let when = revoked.entry(subject).or_insert(at);
    *when = (*when).max(at);
}

/// Reads the revocations stream from its start until `shutdown`, reconnecting after
/// failures, unless another service of this process already does.
pub async fn follow(amqp: Amqp, shutdown: CancellationToken) -> anyhow::Result<()> {
    if FOLLOWED.swap(true, Ordering::SeqCst) {
        return Ok(());
    }
    let mut wait = Duration::from_millis(200);
    loop {
        let followed = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            followed = read(&amqp) => followed,
        };
        if let Err(e) = followed {
            tracing::warn!(error = %e, "reading revocations failed; reconnecting");
        }
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(Duration::from_secs(10));
    }
}

async fn read(amqp: &Amqp) -> anyhow::Result<()> {
    let connection = amqp.connect().await?;
    let channel = connection.create_channel().await?;
    amqp.declare_revocations(&channel).await?;
    // A stream is read with a prefetch and acknowledgements, from an offset.
    channel.basic_qos(100, BasicQosOptions::default()).await?;
    let mut from = FieldTable::default();
    from.insert(
        "x-stream-offset".into(),
        AMQPValue::LongString("first".into()),
    );
    let stream = amqp.revocations_stream();
    let mut deliveries = channel
        .basic_consume(
            stream.as_str().into(),
            format!("revocations-{}", Uuid::now_v7()).as_str().into(),
            BasicConsumeOptions::default(),
            from,
        )
        .await?;
    while let Some(delivery) = deliveries.next().await {
        let delivery = delivery?;
        let revoked = Event::decode(delivery.data.as_slice())
            .map_err(|e| e.to_string())
            .and_then(|event| topics::ACCESS_REVOKED.decode(&event));
        match revoked {
            Ok(AccessRevoked {
                subject,
                revoked_at: Some(at),
            }) => revoke(subject, at.seconds),
            Ok(_) => tracing::warn!("a revocation without its time; ignored"),
            Err(e) => tracing::warn!(error = %e, "an unreadable revocation; ignored"),
        }
        delivery.ack(BasicAckOptions::default()).await?;
    }
    anyhow::bail!("the revocations stream closed")
}
