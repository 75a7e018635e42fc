//! Messenger and Instagram Send API: `POST /{page or IG account id}/messages`.
use ism_proto::types::v1::{MediaType, message_content::Kind as Content};
use serde_json::{Value, json};

use super::Object;
use crate::providers::outbound::{Failure, Outgoing, Reply, by_status, kind_name, unsupported};

/// The Send API body for `out`. Buttons become quick replies, or a button template
/// when one of them opens a URL. On Messenger a reply names the message it answers
/// (`reply_to.mid`, Graph API "Page Messages"); Instagram's messaging API documents no
/// replies, so there it goes without.
pub fn message(out: &Outgoing<'_>, object: Object) -> Result<Value, Failure> {
    let content = out.content;
    let message = match &content.kind {
        Some(Content::Text(text)) if content.buttons.iter().any(|b| !b.url.is_empty()) => {
            let buttons: Vec<Value> = content
                .buttons
                .iter()
                .take(3)
                .map(|b| {
                    if b.url.is_empty() {
                        json!({"type": "postback", "title": b.title, "payload": b.payload})
                    } else {
                        json!({"type": "web_url", "title": b.title, "url": b.url})
                    }
                })
                .collect();
            json!({"attachment": {"type": "template", "payload": {
                "template_type": "button", "text": text.body, "buttons": buttons}}})
        }
        Some(Content::Text(text)) => {
            let mut message = json!({"text": text.body});
            if !content.buttons.is_empty() {
                message["quick_replies"] = content
                    .buttons
                    .iter()
                    .take(13)
                    .map(
                        |b| json!({"content_type": "text", "title": b.title, "payload": b.payload}),
                    )
                    .collect();
            }
            message
        }
        Some(Content::Media(media)) => {
            let kind = match MediaType::try_from(media.r#type) {
                Ok(MediaType::Image | MediaType::Sticker) => "image",
                Ok(MediaType::Video) => "video",
                Ok(MediaType::Audio) => "audio",
                _ => "file",
            };
            json!({"attachment": {"type": kind, "payload": {"url": media.url, "is_reusable": true}}})
        }
        _ => return Err(unsupported("Messenger", kind_name(content))),
    };
    let mut body = json!({
        "recipient": {"id": out.recipient},
        "messaging_type": "RESPONSE",
        "message": message,
    });
    if object == Object::Page && !content.reply_to_external_id.is_empty() {
        body["reply_to"] = json!({"mid": content.reply_to_external_id});
    }
    Ok(body)
}

/// The Send API's answer: `message_id`, or the Graph error mapped to its meaning.
pub fn answer(reply: &Reply) -> Result<String, Failure> {
    if reply.code == 200 {
        return Ok(reply.text("/message_id"));
    }
    Err(graph_error("Facebook", reply))
}

/// A Graph API error (`{"error": {"code", "error_subcode", "message"}}`) by meaning;
/// codes from Meta's Messenger Platform error reference.
fn graph_error(provider: &str, reply: &Reply) -> Failure {
    let Some(code) = reply.int("/error/code") else {
        return by_status(provider, reply, "");
    };
    let subcode = reply.int("/error/error_subcode").unwrap_or(0);
    let message = reply.text("/error/message");
    let reason = format!("{provider} error {code}: {message}");
    match (code, subcode) {
        (10, 2018278) => Failure::Window(format!(
            "{reason}: outside the 24-hour reply window; use a message tag or wait for the Contact"
        )),
        (551, _) | (100, 2018001) => {
            Failure::Recipient(format!("{reason}: the recipient cannot be reached"))
        }
        (4 | 17 | 32 | 613, _) => Failure::RateLimited {
            after: reply.retry_after,
            reason: format!("{reason}: rate limited"),
        },
        (190 | 102 | 10 | 200 | 230 | 368, _) => Failure::Auth(reason),
        (1 | 2 | 1200, _) => Failure::Transient(reason),
        _ if reply.code >= 500 => Failure::Transient(reason),
        _ => Failure::Refused(reason),
    }
}
