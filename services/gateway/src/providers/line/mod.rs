//! LINE Messaging API webhooks: `X-Line-Signature` (base64 HMAC-SHA256 of the raw body
//! under the channel secret), message and postback events, and delivery completion
//! events. An empty `events` array is LINE's "Verify" button and is answered 200.
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ism_proto::types::v1::{
    ButtonReply, Location, Media, MediaType, MessageContent, Text, message_content::Kind as Content,
};
use serde::Deserialize;

use super::{InboundMessage, Item, Webhook, epoch_millis, hmac_sha256_matches};

/// The header LINE signs webhooks with.
pub const SIGNATURE_HEADER: &str = "x-line-signature";

/// Checks `X-Line-Signature` over the raw body, in constant time.
pub fn verify(channel_secret: &str, webhook: &Webhook<'_>) -> bool {
    webhook
        .header(SIGNATURE_HEADER)
        .and_then(|h| STANDARD.decode(h.trim()).ok())
        .is_some_and(|sig| hmac_sha256_matches(channel_secret.as_bytes(), webhook.body, &sig))
}

#[derive(Deserialize)]
struct Body {
    events: Vec<Event>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    webhook_event_id: String,
    #[serde(default)]
    timestamp: i64,
    #[serde(default)]
    source: Option<Source>,
    #[serde(default)]
    message: Option<Message>,
    #[serde(default)]
    postback: Option<Postback>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Source {
    #[serde(default)]
    user_id: String,
    #[serde(default)]
    group_id: String,
    #[serde(default)]
    room_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Message {
    id: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    address: String,
    #[serde(default)]
    latitude: f64,
    #[serde(default)]
    longitude: f64,
    #[serde(default)]
    file_name: String,
    #[serde(default)]
    quoted_message_id: String,
    #[serde(default)]
    content_provider: Option<ContentProvider>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContentProvider {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    original_content_url: String,
}

#[derive(Deserialize)]
struct Postback {
    data: String,
}

/// How a content reference starts: LINE keeps the message's content for us, `GET
/// {api-data base}/v2/bot/message/{id}/content` with the channel access token.
pub const MEDIA_REFERENCE: &str = "line:content/";

pub fn content_reference(message_id: &str) -> String {
    format!("{MEDIA_REFERENCE}{message_id}")
}

/// Normalizes a LINE webhook.
pub fn parse(body: &[u8]) -> Result<Vec<Item>, String> {
    let body: Body =
        serde_json::from_slice(body).map_err(|e| format!("not a LINE webhook: {e}"))?;
    Ok(body.events.into_iter().map(event_item).collect())
}

fn event_item(event: Event) -> Item {
    let source = event.source.as_ref();
    // Replies go to the group or room when the message was written there.
    let sender_id = source
        .map(|s| {
            [&s.group_id, &s.room_id, &s.user_id]
                .into_iter()
                .find(|id| !id.is_empty())
                .cloned()
                .unwrap_or_default()
        })
        .unwrap_or_default();
    if sender_id.is_empty() {
        return Item::Ignored(format!("{} event without a source", event.kind));
    }
    let sent_at = epoch_millis(event.timestamp);
    match (event.kind.as_str(), event.message, event.postback) {
        ("message", Some(message), _) => {
            let media = |kind: MediaType, caption: String| {
                let url = message
                    .content_provider
                    .as_ref()
                    .filter(|p| p.kind == "external" && !p.original_content_url.is_empty())
                    .map(|p| p.original_content_url.clone())
                    .unwrap_or_else(|| content_reference(&message.id));
                Content::Media(Media {
                    r#type: kind as i32,
                    url,
                    caption,
                })
            };
            let kind = match message.kind.as_str() {
                "text" => Content::Text(Text {
                    body: message.text.clone(),
                }),
                "image" => media(MediaType::Image, String::new()),
                "video" => media(MediaType::Video, String::new()),
                "audio" => media(MediaType::Audio, String::new()),
                "file" => media(MediaType::File, message.file_name.clone()),
                "location" => Content::Location(Location {
                    latitude: message.latitude,
                    longitude: message.longitude,
                    name: message.title.clone(),
                    address: message.address.clone(),
                }),
                other => return Item::Ignored(format!("message type {other}")),
            };
            Item::Message(InboundMessage {
                external_message_id: message.id,
                sender_id,
                sender_name: String::new(),
                content: MessageContent {
                    kind: Some(kind),
                    reply_to_external_id: message.quoted_message_id,
                    ..Default::default()
                },
                sent_at,
            })
        }
        ("postback", _, Some(postback)) => Item::Message(InboundMessage {
            external_message_id: if event.webhook_event_id.is_empty() {
                format!("postback:{sender_id}:{}", event.timestamp)
            } else {
                event.webhook_event_id
            },
            sender_id,
            sender_name: String::new(),
            content: MessageContent {
                kind: Some(Content::ButtonReply(ButtonReply {
                    title: String::new(),
                    payload: postback.data,
                })),
                ..Default::default()
            },
            sent_at,
        }),
        // Delivery completion events carry only the hash we chose for a notification
        // message, which we do not send; they are acknowledged.
        (other, _, _) => Item::Ignored(format!("{other} event")),
    }
}

mod send;

pub use send::{answer, message};

#[cfg(test)]
mod tests;
