//! The `ism.events.v1.Event` envelope.
use ism_proto::events::v1::Event;
use prost::Name;
use uuid::Uuid;

/// A new event with a fresh UUIDv7 id, stamped now; made through a [`Topic`](super::Topic).
pub(super) fn new_event<M: Name>(
    event_type: &str,
    workspace_id: Uuid,
    partition_key: &str,
    payload: &M,
) -> Event {
    let now = chrono::Utc::now();
    Event {
        id: Uuid::now_v7().to_string(),
        r#type: event_type.to_owned(),
        workspace_id: workspace_id.to_string(),
        occurred_at: Some(prost_types::Timestamp {
            seconds: now.timestamp(),
            nanos: now.timestamp_subsec_nanos() as i32,
        }),
        payload: Some(
            prost_types::Any::from_msg(payload).expect("encoding into a Vec cannot fail"),
        ),
        partition_key: partition_key.to_owned(),
    }
}

/// The payload of `event` as `M`, or why it is not one.
pub fn decode_payload<M: Name + Default>(event: &Event) -> Result<M, String> {
    let any = event.payload.as_ref().ok_or("event has no payload")?;
    any.to_msg::<M>()
        .map_err(|e| format!("payload is not a {}: {e}", M::full_name()))
}
