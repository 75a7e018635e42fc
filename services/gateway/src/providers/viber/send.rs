//! Viber REST bot API: `POST /pa/send_message`.
use ism_proto::types::v1::{MediaType, message_content::Kind as Content};
use serde_json::{Value, json};

use crate::providers::outbound::{Failure, Outgoing, Reply, by_status, kind_name, unsupported};

/// Viber's limit on the sender name.
const MAX_SENDER_NAME: usize = 28;

/// The send_message body for `out`, sent in the channel's name. Buttons become a
/// keyboard (reply, or open-url). Videos and files go as links: Viber needs their size.
pub fn message(out: &Outgoing<'_>) -> Result<Value, Failure> {
    let content = out.content;
    let mut body = match &content.kind {
        Some(Content::Text(text)) => json!({"type": "text", "text": text.body}),
        Some(Content::Media(media))
            if matches!(
                MediaType::try_from(media.r#type),
                Ok(MediaType::Image | MediaType::Sticker)
            ) =>
        {
            json!({"type": "picture", "text": media.caption, "media": media.url})
        }
        Some(Content::Media(media)) => json!({"type": "url", "media": media.url}),
        Some(Content::Location(at)) => {
            json!({"type": "location", "location": {"lat": at.latitude, "lon": at.longitude}})
        }
        Some(Content::Contact(card)) => json!({"type": "contact", "contact": {
            "name": card.name, "phone_number": card.phones.first().cloned().unwrap_or_default()}}),
        _ => return Err(unsupported("Viber", kind_name(content))),
    };
    body["receiver"] = json!(out.recipient);
    body["sender"] =
        json!({"name": out.channel_name.chars().take(MAX_SENDER_NAME).collect::<String>()});
    if !content.buttons.is_empty() {
        let buttons: Vec<Value> = content
            .buttons
            .iter()
            .map(|b| {
                if b.url.is_empty() {
                    json!({"ActionType": "reply", "ActionBody": b.payload, "Text": b.title})
                } else {
                    json!({"ActionType": "open-url", "ActionBody": b.url, "Text": b.title})
                }
            })
            .collect();
        body["keyboard"] = json!({"Type": "keyboard", "Buttons": buttons});
    }
    Ok(body)
}

/// Viber answers 200 with a `status` (0 is ok; the REST bot API's error codes
/// otherwise) and the `message_token`.
pub fn answer(reply: &Reply) -> Result<String, Failure> {
    let Some(status) = reply.int("/status") else {
        return Err(by_status("Viber", reply, ""));
    };
    if status == 0 {
        return Ok(reply.text("/message_token"));
    }
    let reason = format!("Viber status {status}: {}", reply.text("/status_message"));
    Err(match status {
        5 | 6 | 11 => Failure::Recipient(format!(
            "{reason}: the recipient is not registered, not subscribed, or has no suitable device"
        )),
        12 => Failure::RateLimited {
            after: reply.retry_after,
            reason,
        },
        1 | 2 | 7 | 8 | 9 | 10 => Failure::Auth(reason),
        _ => Failure::Refused(reason),
    })
}
