//! Viber REST bot API callbacks: `X-Viber-Content-Signature` (hex HMAC-SHA256 of the raw
//! body under the bot's auth token), `message` events, and the delivery events
//! `delivered`, `seen` and `failed` about messages we sent.
use ism_proto::types::v1::{
    ContactCard, DeliveryStatus, Location, Media, MediaType, MessageContent, Text,
    message_content::Kind as Content,
};
use serde::Deserialize;

use super::{
    InboundMessage, Item, Receipt, ReceiptTarget, Webhook, epoch_millis, hmac_sha256_matches,
};

/// The header Viber signs callbacks with.
pub const SIGNATURE_HEADER: &str = "x-viber-content-signature";

/// Checks `X-Viber-Content-Signature` over the raw body, in constant time.
pub fn verify(auth_token: &str, webhook: &Webhook<'_>) -> bool {
    webhook
        .header(SIGNATURE_HEADER)
        .and_then(|h| hex::decode(h.trim()).ok())
        .is_some_and(|sig| hmac_sha256_matches(auth_token.as_bytes(), webhook.body, &sig))
}

#[derive(Deserialize)]
struct Callback {
    event: String,
    #[serde(default)]
    timestamp: i64,
    #[serde(default)]
    message_token: Option<u64>,
    #[serde(default)]
    sender: Option<Sender>,
    #[serde(default)]
    message: Option<Message>,
    #[serde(default)]
    desc: String,
}

#[derive(Deserialize)]
struct Sender {
    id: String,
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct Message {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    media: String,
    #[serde(default)]
    file_name: String,
    #[serde(default)]
    location: Option<LocationBody>,
    #[serde(default)]
    contact: Option<Contact>,
}

#[derive(Deserialize)]
struct LocationBody {
    lat: f64,
    lon: f64,
}

#[derive(Deserialize)]
struct Contact {
    #[serde(default)]
    name: String,
    #[serde(default)]
    phone_number: String,
}

/// Normalizes one Viber callback.
pub fn parse(body: &[u8]) -> Result<Vec<Item>, String> {
    let callback: Callback =
        serde_json::from_slice(body).map_err(|e| format!("not a Viber callback: {e}"))?;
    let token = callback.message_token.map(|t| t.to_string());
    let receipt = |status, reason: String| -> Result<Vec<Item>, String> {
        let token = token
            .clone()
            .ok_or("a delivery event needs message_token")?;
        Ok(vec![Item::Receipt(Receipt::new(
            ReceiptTarget::Ids(vec![token]),
            status,
            reason,
        ))])
    };
    match callback.event.as_str() {
        "message" => {
            let (Some(token), Some(sender), Some(message)) =
                (token.clone(), callback.sender, callback.message)
            else {
                return Err("a message event needs message_token, sender and message".into());
            };
            let media = |kind: MediaType, caption: String| {
                Content::Media(Media {
                    r#type: kind as i32,
                    url: message.media.clone(),
                    caption,
                })
            };
            let kind = match message.kind.as_str() {
                "text" => Content::Text(Text {
                    body: message.text.clone(),
                }),
                "url" => Content::Text(Text {
                    body: message.media.clone(),
                }),
                "picture" => media(MediaType::Image, message.text.clone()),
                "sticker" => media(MediaType::Sticker, String::new()),
                "video" => media(MediaType::Video, message.text.clone()),
                "file" => media(MediaType::File, message.file_name.clone()),
                "location" => match &message.location {
                    Some(at) => Content::Location(Location {
                        latitude: at.lat,
                        longitude: at.lon,
                        ..Default::default()
                    }),
                    None => return Err("a location message needs location".into()),
                },
                "contact" => match &message.contact {
                    Some(c) => Content::Contact(ContactCard {
                        name: c.name.clone(),
                        phones: vec![c.phone_number.clone()],
                        emails: Vec::new(),
                    }),
                    None => return Err("a contact message needs contact".into()),
                },
                other => return Ok(vec![Item::Ignored(format!("message type {other}"))]),
            };
            Ok(vec![Item::Message(InboundMessage {
                external_message_id: token,
                sender_id: sender.id,
                sender_name: sender.name,
                content: MessageContent {
                    kind: Some(kind),
                    ..Default::default()
                },
                sent_at: epoch_millis(callback.timestamp),
            })])
        }
        "delivered" => receipt(DeliveryStatus::Delivered, String::new()),
        "seen" => receipt(DeliveryStatus::Read, String::new()),
        "failed" => receipt(
            DeliveryStatus::Failed,
            if callback.desc.is_empty() {
                "Viber could not deliver the message".to_owned()
            } else {
                format!("Viber could not deliver the message: {}", callback.desc)
            },
        ),
        other => Ok(vec![Item::Ignored(format!("{other} event"))]),
    }
}

mod send;

pub use send::{answer, message, needs_size};

#[cfg(test)]
mod tests;
