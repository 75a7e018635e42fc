//! LINE Messaging API push messages: `POST /v2/bot/message/push`.
use ism_proto::types::v1::{MediaType, message_content::Kind as Content};
use serde_json::{Value, json};

use crate::providers::outbound::{Failure, Outgoing, Reply, by_status, kind_name, unsupported};

/// The push body for `out`. Buttons become quick replies (postback, or URI when the
/// button opens a URL). LINE has no file message: a file goes as a text with its
/// caption and link, which LINE shows as a link the Contact can open.
pub fn message(out: &Outgoing<'_>) -> Result<Value, Failure> {
    let content = out.content;
    let mut message = match &content.kind {
        Some(Content::Text(text)) => json!({"type": "text", "text": text.body}),
        Some(Content::Media(media)) => match MediaType::try_from(media.r#type) {
            Ok(MediaType::Image | MediaType::Sticker) => json!({"type": "image",
                "originalContentUrl": media.url, "previewImageUrl": media.url}),
            Ok(MediaType::Video) => json!({"type": "video",
                "originalContentUrl": media.url, "previewImageUrl": media.url}),
            // LINE requires a duration; the client shows the real one once loaded.
            Ok(MediaType::Audio) => json!({"type": "audio",
                "originalContentUrl": media.url, "duration": 1000}),
            _ => {
                let text = if media.caption.is_empty() {
                    media.url.clone()
                } else {
                    format!("{}\n{}", media.caption, media.url)
                };
                json!({"type": "text", "text": text})
            }
        },
        Some(Content::Location(at)) => json!({"type": "location",
            "title": if at.name.is_empty() { "Location" } else { &at.name },
            "address": if at.address.is_empty() { "-" } else { &at.address },
            "latitude": at.latitude, "longitude": at.longitude}),
        _ => return Err(unsupported("LINE", kind_name(content))),
    };
    if !content.buttons.is_empty() {
        let items: Vec<Value> = content
            .buttons
            .iter()
            .take(13)
            .map(|b| {
                let action = if b.url.is_empty() {
                    json!({"type": "postback", "label": b.title, "data": b.payload, "displayText": b.title})
                } else {
                    json!({"type": "uri", "label": b.title, "uri": b.url})
                };
                json!({"type": "action", "action": action})
            })
            .collect();
        message["quickReply"] = json!({ "items": items });
    }
    Ok(json!({"to": out.recipient, "messages": [message]}))
}

/// LINE's answer: `sentMessages[0].id`. A 409 means this retry key was accepted before:
/// the message is sent (its id is not repeated).
pub fn answer(reply: &Reply) -> Result<String, Failure> {
    match reply.code {
        200 => Ok(reply.text("/sentMessages/0/id")),
        409 => Ok(String::new()),
        _ => {
            let message = reply.text("/message");
            let details = reply.text("/details/0/message");
            let detail = if details.is_empty() {
                message
            } else {
                format!("{message}: {details}")
            };
            Err(match by_status("LINE", reply, &detail) {
                Failure::Refused(reason) if detail.contains("not found") => {
                    Failure::Recipient(reason)
                }
                other => other,
            })
        }
    }
}
