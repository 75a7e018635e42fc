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
