//! The event types endpoints subscribe to, and each event's webhook body: the Standard
//! Webhooks shape `{"type", "timestamp", "workspace_id", "data_type", "data"}`, `data`
//! being the event's payload in proto3 JSON with the proto's field names and `data_type`
//! that payload's proto message, whose package carries the payload's version.
use std::sync::LazyLock;

use ism_platform::events::{Topic, topics};
use ism_proto::events::v1::Event;
use prost::Name;
use serde_json::{Value, json};

/// A subscribable event type.
#[derive(Debug, Clone)]
pub struct EventType {
    pub name: &'static str,
    pub payload: String,
}

fn entry<P: Name + Default>(topic: Topic<P>) -> EventType {
    EventType {
        name: topic.key(),
        payload: P::full_name(),
    }
}

/// Every event type a business's systems may follow: the domain events of each service.
/// Requests between services (`*.delivery.requested`) and the gateway's raw intake are
/// internal and not offered.
pub static EVENT_TYPES: LazyLock<Vec<EventType>> = LazyLock::new(|| {
    use topics::*;
    let mut all = vec![
        entry(MESSAGE_CREATED),
        entry(CONVERSATION_MESSAGE_STATUS_CHANGED),
        entry(COMMENT_ADDED),
        entry(CONVERSATION_OPENED),
        entry(CONVERSATION_CLOSED),
        entry(CONVERSATION_SNOOZED),
        entry(CONVERSATION_WOKEN),
        entry(CONVERSATION_ASSIGNED),
        entry(CONVERSATION_UNASSIGNED),
        entry(CONTACT_CREATED),
        entry(CONTACT_UPDATED),
        entry(CONTACT_FIELD_CHANGED),
        entry(CONTACT_DELETED),
        entry(CONTACT_RESTORED),
        entry(CONTACT_BLOCKED),
        entry(CONTACT_UNBLOCKED),
        entry(CONTACT_OPTED_OUT),
        entry(CONTACT_OPTED_IN),
        entry(CONTACT_LIFECYCLE_UPDATED),
        entry(CONTACT_MERGED),
        entry(TAG_ADDED),
        entry(TAG_REMOVED),
        entry(TAG_RENAMED),
        entry(TAG_DELETED),
        entry(BROADCAST_STATE_CHANGED),
        entry(WORKFLOW_RUN_STARTED),
        entry(WORKFLOW_RUN_COMPLETED),
        entry(WORKFLOW_RUN_FAILED),
        entry(WORKFLOW_RUN_CANCELLED),
        entry(USER_AVAILABILITY_CHANGED),
        entry(WEBHOOK_ENDPOINT_FAILING),
        entry(WEBHOOK_ENDPOINT_DISABLED),
    ];
    all.sort_by_key(|t| t.name);
    all
});

/// Whether `name` is a subscribable event type.
pub fn known(name: &str) -> bool {
    EVENT_TYPES.binary_search_by_key(&name, |t| t.name).is_ok()
}

/// The type of the event [`TestWebhookEndpoint`] sends; not subscribable.
pub const TEST_EVENT: &str = "integrations.endpoint.test";

/// What an event says that endpoints filter on.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Facets {
    pub channel_id: Option<String>,
    pub tag: Option<String>,
}

/// An event as a webhook: its body and what it can be filtered by.
#[derive(Debug, Clone)]
pub struct Rendered {
    pub body: String,
    pub facets: Facets,
}

/// The webhook body of `event`, or why it cannot have one (a payload the descriptors do
/// not know: the event is dead-lettered with this reason).
pub fn render(event: &Event) -> Result<Rendered, String> {
    let any = event.payload.as_ref().ok_or("event has no payload")?;
    let data = ism_platform::json::any(any)?;
    let data_type = any.type_url.rsplit('/').next().unwrap_or_default();
    let facets = Facets {
        channel_id: text(&data, "channel_id"),
        tag: event
            .r#type
            .starts_with("contacts.tag.")
            .then(|| text(&data, "tag"))
            .flatten(),
    };
    let timestamp = event
        .occurred_at
        .as_ref()
        .and_then(ism_platform::convert::from_timestamp)
        .unwrap_or_else(chrono::Utc::now);
    Ok(Rendered {
        body: body(
            &event.r#type,
            data_type,
            timestamp,
            &event.workspace_id,
            data,
        ),
        facets,
    })
}

/// A webhook body of `event_type` carrying `data`, a `data_type` in JSON.
pub fn body(
    event_type: &str,
    data_type: &str,
    at: chrono::DateTime<chrono::Utc>,
    workspace_id: &str,
    data: Value,
) -> String {
    json!({
        "type": event_type,
        "timestamp": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "workspace_id": workspace_id,
        "data_type": data_type,
        "data": data,
    })
    .to_string()
}

fn text(data: &Value, field: &str) -> Option<String> {
    data.get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ism_proto::events::v1::{ContactTagChanged, MessageCreated};

    #[test]
    fn every_offered_type_renders_and_the_list_is_sorted() {
        assert!(EVENT_TYPES.windows(2).all(|w| w[0].name < w[1].name));
        for t in EVENT_TYPES.iter() {
            assert!(ism_platform::json::known(&t.payload), "{}", t.name);
        }
        assert!(known("conversations.message.created"));
        assert!(!known("conversations.delivery.requested"));
        assert!(!known("gateway.message.received"));
    }

    #[test]
    fn a_body_carries_the_payload_in_json_with_its_facets() {
        let workspace = uuid::Uuid::now_v7();
        let event = topics::MESSAGE_CREATED.event(
            workspace,
            "c",
            &MessageCreated {
                message_id: "m1".into(),
                channel_id: "ch1".into(),
                ..Default::default()
            },
        );
        let rendered = render(&event).unwrap();
        let body: Value = serde_json::from_str(&rendered.body).unwrap();
        assert_eq!(body["type"], "conversations.message.created");
        assert_eq!(body["workspace_id"], workspace.to_string());
        assert_eq!(body["data"]["message_id"], "m1");
        assert_eq!(body["data_type"], "ism.events.v1.MessageCreated");
        assert_eq!(rendered.facets.channel_id.as_deref(), Some("ch1"));
        assert_eq!(rendered.facets.tag, None);

        let tagged = topics::TAG_ADDED.event(
            workspace,
            "k",
            &ContactTagChanged {
                contact_id: "c1".into(),
                tag: "vip".into(),
            },
        );
        assert_eq!(render(&tagged).unwrap().facets.tag.as_deref(), Some("vip"));
    }
}
