//! Facebook Messenger and Instagram through Meta's Graph API webhooks: the GET
//! verification handshake, `X-Hub-Signature-256` (also used by WhatsApp), and the
//! `messaging` events (messages, attachments, postbacks, quick replies, reactions,
//! delivery and read receipts, echoes).

use ism_proto::types::v1::{
    ButtonReply, DeliveryStatus, Location, Media, MediaType, MessageContent, Reaction, Text,
    message_content::Kind as Content,
};
use serde::Deserialize;

use super::{
    Handshake, InboundMessage, Item, Receipt, ReceiptTarget, Webhook, epoch_millis,
    hmac_sha256_matches, secrets_equal,
};

/// The header Meta signs webhooks with: `sha256=<hex>` of the raw body under the app
/// secret.
pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

/// Checks `X-Hub-Signature-256` over the raw body, in constant time.
pub fn verify(app_secret: &str, webhook: &Webhook<'_>) -> bool {
    let Some(hex_digest) = webhook
        .header(SIGNATURE_HEADER)
        .and_then(|h| h.trim().strip_prefix("sha256="))
    else {
        return false;
    };
    hex::decode(hex_digest)
        .is_ok_and(|sig| hmac_sha256_matches(app_secret.as_bytes(), webhook.body, &sig))
}

/// Meta's webhook verification: `hub.mode=subscribe`, `hub.verify_token`, `hub.challenge`.
pub fn handshake(verify_token: &str, query: &str) -> Handshake {
    let (mut mode, mut token, mut challenge) = (None, None, None);
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "hub.mode" => mode = Some(value.into_owned()),
            "hub.verify_token" => token = Some(value.into_owned()),
            "hub.challenge" => challenge = Some(value.into_owned()),
            _ => {}
        }
    }
    match (mode.as_deref(), token, challenge) {
        (Some("subscribe"), Some(token), Some(challenge)) => {
            if secrets_equal(&token, verify_token) {
                Handshake::Accept(challenge)
            } else {
                Handshake::Forbidden
            }
        }
        _ => {
            Handshake::BadRequest("expected hub.mode=subscribe, hub.verify_token and hub.challenge")
        }
    }
}

/// Which product a webhook is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Object {
    Page,
    Instagram,
}

#[derive(Deserialize)]
struct Body {
    object: String,
    entry: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    messaging: Vec<Event>,
    #[serde(default)]
    standby: Vec<serde_json::Value>,
    #[serde(default)]
    changes: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct Party {
    id: String,
}

#[derive(Deserialize)]
struct Event {
    sender: Party,
    recipient: Party,
    #[serde(default)]
    timestamp: i64,
    message: Option<Message>,
    postback: Option<Postback>,
    reaction: Option<ReactionEvent>,
    delivery: Option<Watermark>,
    read: Option<Watermark>,
}

#[derive(Deserialize)]
struct Message {
    mid: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    is_echo: bool,
    #[serde(default)]
    quick_reply: Option<QuickReply>,
    #[serde(default)]
    reply_to: Option<ReplyTo>,
    #[serde(default)]
    attachments: Vec<Attachment>,
    #[serde(default)]
    is_deleted: bool,
}

#[derive(Deserialize)]
struct QuickReply {
    payload: String,
}

#[derive(Deserialize)]
struct ReplyTo {
    #[serde(default)]
    mid: String,
}

#[derive(Deserialize)]
struct Attachment {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    payload: Option<AttachmentPayload>,
}

#[derive(Deserialize, Default)]
struct AttachmentPayload {
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    coordinates: Option<Coordinates>,
}

#[derive(Deserialize)]
struct Coordinates {
    lat: f64,
    long: f64,
}

#[derive(Deserialize)]
struct Postback {
    #[serde(default)]
    title: String,
    #[serde(default)]
    payload: String,
    #[serde(default)]
    mid: Option<String>,
}

#[derive(Deserialize)]
struct ReactionEvent {
    #[serde(default)]
    emoji: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    mid: String,
}

#[derive(Deserialize)]
struct Watermark {
    #[serde(default)]
    mids: Vec<String>,
    #[serde(default)]
    mid: Option<String>,
    #[serde(default)]
    watermark: Option<i64>,
}

/// Normalizes a Messenger (`object: page`) or Instagram (`object: instagram`) webhook.
pub fn parse(body: &[u8], object: Object) -> Result<Vec<Item>, String> {
    let body: Body =
        serde_json::from_slice(body).map_err(|e| format!("not a Meta webhook: {e}"))?;
    let expected = match object {
        Object::Page => "page",
        Object::Instagram => "instagram",
    };
    if body.object != expected {
        return Err(format!(
            "object is {:?}; this channel receives {expected:?} webhooks",
            body.object
        ));
    }
    let mut items = Vec::new();
    for entry in body.entry {
        for event in entry.messaging {
            items.extend(event_items(event));
        }
        if !entry.standby.is_empty() {
            items.push(Item::Ignored("standby (another app has the thread)".into()));
        }
        if !entry.changes.is_empty() {
            items.push(Item::Ignored("changes".into()));
        }
    }
    Ok(items)
}

fn content(kind: Content, reply_to: String) -> MessageContent {
    MessageContent {
        kind: Some(kind),
        reply_to_external_id: reply_to,
        ..Default::default()
    }
}

fn event_items(event: Event) -> Vec<Item> {
    let sent_at = epoch_millis(event.timestamp);
    if let Some(message) = event.message {
        if message.is_deleted {
            return vec![Item::Ignored("message deleted".into())];
        }
        let echo = message.is_echo;
        // An echo is the business's message: the Contact is its recipient.
        let contact = if echo {
            event.recipient.id
        } else {
            event.sender.id
        };
        let reply_to = message.reply_to.map(|r| r.mid).unwrap_or_default();
        let mut contents = Vec::new();
        for attachment in &message.attachments {
            if let Some(kind) = attachment_content(attachment, message.text.as_deref()) {
                contents.push(kind);
            }
        }
        if contents.is_empty() {
            match (message.quick_reply, message.text) {
                (Some(quick), text) => contents.push(Content::ButtonReply(ButtonReply {
                    title: text.unwrap_or_default(),
                    payload: quick.payload,
                })),
                (None, Some(text)) if !text.is_empty() => {
                    contents.push(Content::Text(Text { body: text }))
                }
                _ => return vec![Item::Ignored("message without supported content".into())],
            }
        }
        return contents
            .into_iter()
            .enumerate()
            .map(|(i, kind)| {
                let message = InboundMessage {
                    // Several attachments share one mid: each gets its own stable id.
                    external_message_id: if i == 0 {
                        message.mid.clone()
                    } else {
                        format!("{}#{i}", message.mid)
                    },
                    sender_id: contact.clone(),
                    sender_name: String::new(),
                    content: content(kind, reply_to.clone()),
                    sent_at,
                };
                if echo {
                    Item::Echo(message)
                } else {
                    Item::Message(message)
                }
            })
            .collect();
    }
    if let Some(postback) = event.postback {
        let id = postback
            .mid
            .unwrap_or_else(|| format!("postback:{}:{}", event.sender.id, event.timestamp));
        return vec![Item::Message(InboundMessage {
            external_message_id: id,
            sender_id: event.sender.id,
            sender_name: String::new(),
            content: content(
                Content::ButtonReply(ButtonReply {
                    title: postback.title,
                    payload: postback.payload,
                }),
                String::new(),
            ),
            sent_at,
        })];
    }
    if let Some(reaction) = event.reaction {
        let removed = reaction.action == "unreact";
        return vec![Item::Message(InboundMessage {
            external_message_id: format!(
                "reaction:{}:{}:{}",
                reaction.mid, event.sender.id, event.timestamp
            ),
            sender_id: event.sender.id,
            sender_name: String::new(),
            content: content(
                Content::Reaction(Reaction {
                    emoji: if removed {
                        String::new()
                    } else {
                        reaction.emoji
                    },
                    removed,
                }),
                reaction.mid,
            ),
            sent_at,
        })];
    }
    let receipt = |watermark: Watermark, status| {
        let mut ids = watermark.mids;
        ids.extend(watermark.mid);
        let target = if !ids.is_empty() {
            Some(ReceiptTarget::Ids(ids))
        } else {
            watermark
                .watermark
                .and_then(epoch_millis)
                .map(|until| ReceiptTarget::Watermark {
                    recipient: event.sender.id.clone(),
                    until,
                })
        };
        match target {
            Some(target) => Item::Receipt(Receipt::new(target, status, String::new())),
            None => Item::Ignored("receipt without ids or watermark".into()),
        }
    };
    if let Some(delivery) = event.delivery {
        return vec![receipt(delivery, DeliveryStatus::Delivered)];
    }
    if let Some(read) = event.read {
        return vec![receipt(read, DeliveryStatus::Read)];
    }
    vec![Item::Ignored("messaging event of an unhandled kind".into())]
}

fn attachment_content(attachment: &Attachment, caption: Option<&str>) -> Option<Content> {
    let payload = attachment.payload.as_ref();
    if attachment.kind == "location" {
        let at = payload?.coordinates.as_ref()?;
        return Some(Content::Location(Location {
            latitude: at.lat,
            longitude: at.long,
            name: payload?.title.clone().unwrap_or_default(),
            address: String::new(),
        }));
    }
    let url = payload?.url.clone().filter(|u| !u.is_empty())?;
    let kind = match attachment.kind.as_str() {
        "image" => MediaType::Image,
        "video" | "ig_reel" | "reel" => MediaType::Video,
        "audio" => MediaType::Audio,
        _ => MediaType::File,
    };
    Some(Content::Media(Media {
        r#type: kind as i32,
        url,
        caption: caption.unwrap_or_default().to_owned(),
    }))
}

mod send;

pub use send::{answer, message};

#[cfg(test)]
mod tests;
