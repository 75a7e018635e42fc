//! Writing events in the caller's transaction.
use std::collections::{BTreeMap, BTreeSet};

use ism_proto::events::v1::Event;
use prost::Message;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{Topic, relay};
use crate::telemetry;

/// Stores a new event of `topic` in the outbox within the caller's transaction, keyed by
/// `partition_key` so the events of one conversation or Contact stay in order; the relay
/// publishes it once that transaction commits. The current trace context travels with it.
pub async fn emit<P: prost::Name + Default>(
    conn: &mut PgConnection,
    topic: &Topic<P>,
    workspace_id: Uuid,
    partition_key: &str,
    payload: &P,
) -> sqlx::Result<()> {
    enqueue(conn, &topic.event(workspace_id, partition_key, payload)).await
}

/// Stores `event` in the outbox within the caller's transaction; the relay publishes it
/// once that transaction commits. The current trace context travels with it.
pub async fn enqueue(conn: &mut PgConnection, event: &Event) -> sqlx::Result<()> {
    enqueue_all(conn, std::slice::from_ref(event)).await
}

/// An event with the trace context it was raised in, for a writer that stores events
/// raised by many requests in one transaction.
#[derive(Debug, Clone)]
pub struct TracedEvent {
    pub event: Event,
    pub trace: BTreeMap<String, String>,
}

impl TracedEvent {
    /// `event`, created in the current span: it carries the context of a PRODUCER span
    /// there.
    pub fn here(event: Event) -> Self {
        let trace = produced(std::slice::from_ref(&event));
        Self { event, trace }
    }
}

/// The context of a PRODUCER span for `events` created now (OpenTelemetry's messaging
/// "create" operation), in the current span: it travels with the events, so each
/// consumer's span is its child, and the trace shows where the events were raised.
fn produced(events: &[Event]) -> BTreeMap<String, String> {
    let kind = match events {
        [first, rest @ ..] if rest.iter().all(|e| e.r#type == first.r#type) => {
            first.r#type.as_str()
        }
        _ => "events",
    };
    let span = tracing::info_span!(
        "event.create",
        otel.name = %format!("create {kind}"),
        otel.kind = "producer",
        messaging.system = "rabbitmq",
        messaging.operation.type = "create",
        messaging.destination.name = kind,
        messaging.batch.message_count = events.len(),
    );
    span.in_scope(telemetry::current_context_headers)
}

/// Stores many events in the outbox with one statement (bulk writes such as imports),
/// within the caller's transaction; in the given order.
pub async fn enqueue_all(conn: &mut PgConnection, events: &[Event]) -> sqlx::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let trace = produced(events);
    insert(conn, events.iter().map(|event| (event, &trace))).await
}

/// Stores many events, each with its own trace context, with one statement, within the
/// caller's transaction; in the given order.
pub async fn enqueue_traced(conn: &mut PgConnection, events: &[TracedEvent]) -> sqlx::Result<()> {
    insert(conn, events.iter().map(|e| (&e.event, &e.trace))).await
}

async fn insert<'a>(
    conn: &mut PgConnection,
    events: impl ExactSizeIterator<Item = (&'a Event, &'a BTreeMap<String, String>)>,
) -> sqlx::Result<()> {
    if events.len() == 0 {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(events.len());
    let mut keys = Vec::with_capacity(events.len());
    let mut bodies = Vec::with_capacity(events.len());
    let mut traces = Vec::with_capacity(events.len());
    let mut services = BTreeSet::new();
    for (event, trace) in events {
        services.insert(event.r#type.split('.').next().unwrap_or_default());
        ids.push(
            event
                .id
                .parse::<Uuid>()
                .map_err(|e| sqlx::Error::Protocol(format!("event id {:?}: {e}", event.id)))?,
        );
        keys.push(event.r#type.clone());
        bodies.push(event.encode_to_vec());
        traces.push(serde_json::to_value(trace).map_err(|e| sqlx::Error::Protocol(e.to_string()))?);
    }
    sqlx::query(
        "INSERT INTO platform_outbox (id, routing_key, body, headers)
         SELECT id, routing_key, body, headers
         FROM unnest($1::uuid[], $2::text[], $3::bytea[], $4::jsonb[])
             WITH ORDINALITY AS e(id, routing_key, body, headers, n)
         ORDER BY n",
    )
    .bind(ids)
    .bind(keys)
    .bind(bodies)
    .bind(traces)
    .execute(conn)
    .await?;
    for service in services {
        relay::wake(service);
    }
    Ok(())
}
