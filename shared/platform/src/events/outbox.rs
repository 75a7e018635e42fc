//! Writing events in the caller's transaction.
use ism_proto::events::v1::Event;
use prost::Message;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::telemetry;

/// Stores `event` in the outbox within the caller's transaction; the relay publishes it
/// once that transaction commits. The current trace context travels with it.
pub async fn enqueue(conn: &mut PgConnection, event: &Event) -> sqlx::Result<()> {
    let id: Uuid = event
        .id
        .parse()
        .map_err(|e| sqlx::Error::Protocol(format!("event id {:?}: {e}", event.id)))?;
    let headers = serde_json::to_value(telemetry::current_context_headers())
        .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
    sqlx::query(
        "INSERT INTO platform_outbox (id, routing_key, body, headers) VALUES ($1, $2, $3, $4)",
    )
    .bind(id)
    .bind(&event.r#type)
    .bind(event.encode_to_vec())
    .bind(headers)
    .execute(conn)
    .await?;
    Ok(())
}

/// Stores many events in the outbox with one statement (bulk writes such as imports),
/// within the caller's transaction; in the given order.
pub async fn enqueue_all(conn: &mut PgConnection, events: &[Event]) -> sqlx::Result<()> {
    if events.is_empty() {
        return Ok(());
    }
    let headers = serde_json::to_value(telemetry::current_context_headers())
        .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
    let mut ids = Vec::with_capacity(events.len());
    let mut keys = Vec::with_capacity(events.len());
    let mut bodies = Vec::with_capacity(events.len());
    for event in events {
        ids.push(
            event
                .id
                .parse::<Uuid>()
                .map_err(|e| sqlx::Error::Protocol(format!("event id {:?}: {e}", event.id)))?,
        );
        keys.push(event.r#type.clone());
        bodies.push(event.encode_to_vec());
    }
    sqlx::query(
        "INSERT INTO platform_outbox (id, routing_key, body, headers)
         SELECT id, routing_key, body, $4 FROM unnest($1::uuid[], $2::text[], $3::bytea[])
             WITH ORDINALITY AS e(id, routing_key, body, n)
         ORDER BY n",
    )
    .bind(ids)
    .bind(keys)
    .bind(bodies)
    .bind(headers)
    .execute(conn)
    .await?;
    Ok(())
}
