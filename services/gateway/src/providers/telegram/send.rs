//! Telegram Bot API: `sendMessage`, `sendPhoto`, `sendVideo`, `sendAudio`,
//! `sendDocument`, `sendLocation`, `sendVenue`, `sendContact`.
use ism_proto::types::v1::{MediaType, message_content::Kind as Content};
use serde_json::{Value, json};

use crate::providers::outbound::{Failure, Outgoing, Reply, by_status, kind_name, unsupported};

/// The Bot API method and body for `out`. Buttons become an inline keyboard (one per
/// row); a reply names the message by its id within the chat (`<chat>:<id>`).
pub fn message(out: &Outgoing<'_>) -> Result<(&'static str, Value), Failure> {
    let content = out.content;
    let (method, mut body) = match &content.kind {
        Some(Content::Text(text)) => ("sendMessage", json!({"text": text.body})),
        Some(Content::Media(media)) => {
            let (method, field) = match MediaType::try_from(media.r#type) {
                Ok(MediaType::Image) => ("sendPhoto", "photo"),
                Ok(MediaType::Sticker) => ("sendSticker", "sticker"),
                Ok(MediaType::Video) => ("sendVideo", "video"),
                Ok(MediaType::Audio) => ("sendAudio", "audio"),
                _ => ("sendDocument", "document"),
            };
            let mut body = json!({ field: media.url });
            if !media.caption.is_empty() && method != "sendSticker" {
                body["caption"] = json!(media.caption);
            }
            (method, body)
        }
        Some(Content::Location(at)) if !at.name.is_empty() => (
            "sendVenue",
            json!({"latitude": at.latitude, "longitude": at.longitude, "title": at.name, "address": at.address}),
        ),
        Some(Content::Location(at)) => (
            "sendLocation",
            json!({"latitude": at.latitude, "longitude": at.longitude}),
        ),
        Some(Content::Contact(card)) => {
            let phone = card.phones.first().ok_or_else(|| {
                Failure::Refused("Telegram needs a phone number in a contact card".into())
            })?;
            (
                "sendContact",
                json!({"phone_number": phone, "first_name": card.name}),
            )
        }
        _ => return Err(unsupported("Telegram", kind_name(content))),
    };
    body["chat_id"] = json!(out.recipient);
    if let Some(id) = content
        .reply_to_external_id
        .rsplit_once(':')
        .and_then(|(_, id)| id.parse::<i64>().ok())
    {
        body["reply_parameters"] = json!({"message_id": id, "allow_sending_without_reply": true});
    }
    if !content.buttons.is_empty() {
        let rows: Vec<Value> = content
            .buttons
            .iter()
            .map(|b| {
                if b.url.is_empty() {
                    json!([{"text": b.title, "callback_data": b.payload}])
                } else {
                    json!([{"text": b.title, "url": b.url}])
                }
            })
            .collect();
        body["reply_markup"] = json!({ "inline_keyboard": rows });
    }
    Ok((method, body))
}

/// The Bot API's answer: `<chat id>:<message id>` (the id inbound messages use), or the
/// error by `error_code` and `description`; 429 carries `parameters.retry_after`.
pub fn answer(reply: &Reply) -> Result<String, Failure> {
    if reply.body["ok"] == json!(true) {
        return Ok(format!(
            "{}:{}",
            reply.text("/result/chat/id"),
            reply.text("/result/message_id")
        ));
    }
    let description = reply.text("/description");
    let reason = format!("Telegram: {description}");
    let code = reply.int("/error_code").unwrap_or(i64::from(reply.code));
    Err(match code {
        429 => Failure::RateLimited {
            after: reply
                .int("/parameters/retry_after")
                .and_then(|s| u64::try_from(s).ok())
                .map(crate::providers::retry_after)
                .or(reply.retry_after),
            reason,
        },
        403 => Failure::Recipient(description),
        400 if description.contains("chat not found") || description.contains("user not found") => {
            Failure::Recipient(description)
        }
        401 | 404 => Failure::Auth(description),
        _ if description.is_empty() => by_status("Telegram", reply, ""),
        500..=599 => Failure::Transient(reason),
        _ => Failure::Refused(description),
    })
}
