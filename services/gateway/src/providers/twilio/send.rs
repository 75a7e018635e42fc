//! Twilio Programmable Messaging: `POST /2010-04-01/Accounts/{sid}/Messages.json`.
use ism_proto::types::v1::message_content::Kind as Content;
use serde_json::json;

use super::error_reason;
use crate::providers::outbound::{Failure, Outgoing, Reply, by_status, kind_name, unsupported};

/// The form parameters for `out`. WhatsApp addresses take the `whatsapp:` prefix; a
/// `from` starting with `MG` is a Messaging Service. A template is a Content API
/// template (`HX...` sid) with its variables. SMS carries no buttons: only the text goes.
pub fn message(
    whatsapp: bool,
    from: &str,
    out: &Outgoing<'_>,
) -> Result<Vec<(&'static str, String)>, Failure> {
    let address = |number: &str| {
        if whatsapp {
            format!("whatsapp:{}", number.trim_start_matches("whatsapp:"))
        } else {
            number.to_owned()
        }
    };
    let mut form = vec![("To", address(out.recipient))];
    if from.starts_with("MG") {
        form.push(("MessagingServiceSid", from.to_owned()));
    } else {
        form.push(("From", address(from)));
    }
    let content = out.content;
    match &content.kind {
        Some(Content::Text(text)) => form.push(("Body", text.body.clone())),
        Some(Content::Media(media)) => {
            form.push(("MediaUrl", media.url.clone()));
            if !media.caption.is_empty() {
                form.push(("Body", media.caption.clone()));
            }
        }
        Some(Content::Template(template)) if whatsapp => {
            form.push(("ContentSid", template.name.clone()));
            let variables: serde_json::Map<String, serde_json::Value> = template
                .variables
                .iter()
                .enumerate()
                .map(|(i, v)| ((i + 1).to_string(), json!(v)))
                .collect();
            form.push((
                "ContentVariables",
                serde_json::Value::Object(variables).to_string(),
            ));
        }
        _ => return Err(unsupported("Twilio", kind_name(content))),
    }
    if !out.status_callback.is_empty() {
        form.push(("StatusCallback", out.status_callback.to_owned()));
    }
    Ok(form)
}

/// Twilio's answer: the message `sid`, or the error by its `code` (Twilio's error
/// dictionary).
pub fn answer(reply: &Reply) -> Result<String, Failure> {
    if (200..300).contains(&reply.code) {
        return Ok(reply.text("/sid"));
    }
    let Some(code) = reply.int("/code") else {
        return Err(by_status("Twilio", reply, ""));
    };
    let mut reason = error_reason(&code.to_string());
    let message = reply.text("/message");
    if !message.is_empty() {
        reason = format!("{reason} ({message})");
    }
    Err(match code {
        63016 => Failure::Window(reason),
        20429 | 14107 | 63018 => Failure::RateLimited {
            after: reply.retry_after,
            reason,
        },
        21211 | 21610 | 21612 | 21614 | 21408 | 63024 | 30003..=30006 => Failure::Recipient(reason),
        20003 | 20404 | 21606 | 21659 | 63007 => Failure::Auth(reason),
        _ => match by_status("Twilio", reply, &message) {
            Failure::Refused(_) => Failure::Refused(reason),
            Failure::Transient(_) => Failure::Transient(reason),
            other => other,
        },
    })
}
