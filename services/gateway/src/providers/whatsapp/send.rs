//! WhatsApp Cloud API: `POST /{phone number id}/messages`.
use ism_proto::types::v1::{MediaType, message_content::Kind as Content};
use serde_json::{Value, json};

use super::error_reason;
use crate::providers::outbound::{Failure, Outgoing, Reply, by_status, kind_name, unsupported};

/// The Cloud API body for `out`: text (with reply buttons or one URL button as an
/// interactive message), media, location, contacts, templates with their variables;
/// `reply_to_external_id` becomes the `context` of a reply.
pub fn message(out: &Outgoing<'_>) -> Result<Value, Failure> {
    let content = out.content;
    let mut body = json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": out.recipient,
    });
    let (kind, value) = match &content.kind {
        Some(Content::Text(text)) if content.buttons.is_empty() => (
            "text",
            json!({"body": text.body, "preview_url": text.body.contains("https://")}),
        ),
        Some(Content::Text(text)) => match content.buttons.iter().find(|b| !b.url.is_empty()) {
            Some(link) => (
                "interactive",
                json!({"type": "cta_url", "body": {"text": text.body}, "action": {
                    "name": "cta_url", "parameters": {"display_text": link.title, "url": link.url}}}),
            ),
            None => (
                "interactive",
                json!({"type": "button", "body": {"text": text.body}, "action": {"buttons":
                    content.buttons.iter().take(3).map(|b| json!({"type": "reply", "reply": {
                        "id": if b.payload.is_empty() { &b.title } else { &b.payload },
                        "title": b.title}})).collect::<Vec<_>>()}}),
            ),
        },
        Some(Content::Media(media)) => {
            let kind = match MediaType::try_from(media.r#type) {
                Ok(MediaType::Image) => "image",
                Ok(MediaType::Sticker) => "sticker",
                Ok(MediaType::Video) => "video",
                Ok(MediaType::Audio) => "audio",
                _ => "document",
            };
            let mut value = json!({"link": media.url});
            if !media.caption.is_empty() && !matches!(kind, "audio" | "sticker") {
                value["caption"] = json!(media.caption);
            }
            (kind, value)
        }
        Some(Content::Location(at)) => (
            "location",
            json!({"latitude": at.latitude, "longitude": at.longitude, "name": at.name, "address": at.address}),
        ),
        Some(Content::Contact(card)) => (
            "contacts",
            json!([{
                "name": {"formatted_name": card.name, "first_name": card.name},
                "phones": card.phones.iter().map(|p| json!({"phone": p})).collect::<Vec<_>>(),
                "emails": card.emails.iter().map(|e| json!({"email": e})).collect::<Vec<_>>(),
            }]),
        ),
        Some(Content::Template(template)) => {
            let mut value = json!({"name": template.name, "language": {"code": template.language}});
            if !template.variables.is_empty() {
                value["components"] = json!([{"type": "body", "parameters":
                    template.variables.iter().map(|v| json!({"type": "text", "text": v})).collect::<Vec<_>>()}]);
            }
            ("template", value)
        }
        Some(Content::Reaction(reaction)) => (
            "reaction",
            json!({"message_id": content.reply_to_external_id, "emoji": reaction.emoji}),
        ),
        _ => return Err(unsupported("WhatsApp", kind_name(content))),
    };
    body["type"] = json!(kind);
    body[kind] = value;
    if !content.reply_to_external_id.is_empty() && kind != "reaction" {
        body["context"] = json!({"message_id": content.reply_to_external_id});
    }
    Ok(body)
}

/// The Cloud API's answer: `messages[0].id`, or the error by its code (WhatsApp's
/// error-code reference).
pub fn answer(reply: &Reply) -> Result<String, Failure> {
    if reply.code == 200 {
        return Ok(reply.text("/messages/0/id"));
    }
    let Some(code) = reply.int("/error/code") else {
        return Err(by_status("WhatsApp", reply, ""));
    };
    let title = reply.text("/error/message");
    let reason = error_reason(code, &title);
    Err(match classify(code, reason, reply.retry_after) {
        Failure::Refused(reason) if reply.code >= 500 => Failure::Transient(reason),
        failure => failure,
    })
}

/// What WhatsApp error `code` means, whether it answered a send or came later as a
/// failed status (WhatsApp's error-code reference).
pub fn classify(code: i64, reason: String, after: Option<std::time::Duration>) -> Failure {
    match code {
        131047 => Failure::Window(reason),
        130429 | 131056 | 80007 | 4 => Failure::RateLimited { after, reason },
        131049 => Failure::Capped(reason),
        131026 | 131021 | 131030 | 131050 => Failure::Recipient(reason),
        0 | 3 | 10 | 190 | 200..=299 | 131005 | 131031 | 133010 => Failure::Auth(reason),
        1 | 2 | 131000 | 131016 | 133004 => Failure::Transient(reason),
        _ => Failure::Refused(reason),
    }
}
