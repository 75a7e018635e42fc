//! Twilio Programmable Messaging (SMS and WhatsApp) webhooks: form-encoded bodies
//! signed with `X-Twilio-Signature` (base64 HMAC-SHA1, under the auth token, of the full
//! URL followed by every POST parameter sorted by name, name then value), messages with
//! media (`NumMedia`, `MediaUrlN`), and status callbacks.
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use ism_proto::types::v1::{
    ButtonReply, DeliveryStatus, Location, Media, MediaType, MessageContent, Text,
    message_content::Kind as Content,
};
use sha1::Sha1;

use super::{InboundMessage, Item, Receipt, ReceiptTarget, Webhook};

/// The header Twilio signs requests with.
pub const SIGNATURE_HEADER: &str = "x-twilio-signature";

/// The form parameters of a body, in the order sent.
pub fn form(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// Twilio's signature of a request to `url` with `params`.
pub fn sign(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort();
    let mut mac = Hmac::<Sha1>::new_from_slice(auth_token.as_bytes())
        .expect("HMAC accepts keys of any length");
    mac.update(url.as_bytes());
    for (key, value) in sorted {
        mac.update(key.as_bytes());
        mac.update(value.as_bytes());
    }
    STANDARD.encode(mac.finalize().into_bytes())
}

/// Checks `X-Twilio-Signature` against the public URL and the form body, in constant time.
pub fn verify(auth_token: &str, webhook: &Webhook<'_>) -> bool {
    webhook.header(SIGNATURE_HEADER).is_some_and(|given| {
        super::secrets_equal(
            given.trim(),
            &sign(auth_token, webhook.url, &form(webhook.body)),
        )
    })
}

/// A reason a person understands for a Twilio error code.
pub fn error_reason(code: &str) -> String {
    let meaning = match code {
        "30003" => "the recipient's phone is unreachable",
        "30004" => "the recipient blocked the message",
        "30005" => "unknown recipient: the number does not exist",
        "30006" => "the recipient is a landline or an unreachable carrier",
        "30007" => "the carrier filtered the message",
        "30008" => "unknown error from the carrier",
        "21610" => "the recipient unsubscribed (replied STOP)",
        "21211" => "the recipient's number is not valid",
        "63016" => "outside the 24-hour WhatsApp window; use a template",
        "63024" => "the recipient is not a valid WhatsApp user",
        _ => "",
    };
    if meaning.is_empty() {
        format!("Twilio error {code}")
    } else {
        format!("Twilio error {code}: {meaning}")
    }
}

fn strip_channel(address: &str) -> String {
    address
        .strip_prefix("whatsapp:")
        .unwrap_or(address)
        .to_owned()
}

/// Normalizes a message webhook or a status callback.
pub fn parse(body: &[u8]) -> Result<Vec<Item>, String> {
    let params = form(body);
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let sid = get("MessageSid")
        .or_else(|| get("SmsMessageSid"))
        .filter(|s| !s.is_empty())
        .ok_or("not a Twilio messaging webhook: MessageSid is missing")?;
    let is_message =
        get("SmsStatus") == Some("received") || get("Body").is_some() || get("NumMedia").is_some();
    if !is_message {
        let status = get("MessageStatus")
            .or_else(|| get("SmsStatus"))
            .ok_or("not a Twilio messaging webhook: neither a message nor a status")?;
        let (delivery, reason) = match status {
            "sent" => (DeliveryStatus::Sent, String::new()),
            "delivered" => (DeliveryStatus::Delivered, String::new()),
            "read" => (DeliveryStatus::Read, String::new()),
            "undelivered" | "failed" => (
                DeliveryStatus::Failed,
                get("ErrorCode")
                    .filter(|c| !c.is_empty())
                    .map(error_reason)
                    .unwrap_or_else(|| format!("Twilio reported the message as {status}")),
            ),
            other => return Ok(vec![Item::Ignored(format!("status {other}"))]),
        };
        return Ok(vec![Item::Receipt(Receipt::new(
            ReceiptTarget::Ids(vec![sid.to_owned()]),
            delivery,
            reason,
        ))]);
    }
    let from = get("From")
        .filter(|f| !f.is_empty())
        .ok_or("From is missing")?;
    let message = |kind: Content, id: String| {
        Item::Message(InboundMessage {
            external_message_id: id,
            sender_id: strip_channel(from),
            sender_name: get("ProfileName").unwrap_or_default().to_owned(),
            content: MessageContent {
                kind: Some(kind),
                reply_to_external_id: get("OriginalRepliedMessageSid")
                    .unwrap_or_default()
                    .to_owned(),
                ..Default::default()
            },
            sent_at: None,
        })
    };
    let body_text = get("Body").unwrap_or_default();
    let media_count: usize = get("NumMedia")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
        .min(10);
    let mut items = Vec::new();
    for i in 0..media_count {
        let Some(url) = get(&format!("MediaUrl{i}")) else {
            continue;
        };
        let content_type = get(&format!("MediaContentType{i}")).unwrap_or_default();
        let kind = match content_type.split('/').next() {
            Some("image") => MediaType::Image,
            Some("video") => MediaType::Video,
            Some("audio") => MediaType::Audio,
            _ => MediaType::File,
        };
        let id = if i == 0 {
            sid.to_owned()
        } else {
            format!("{sid}#{i}")
        };
        items.push(message(
            Content::Media(Media {
                r#type: kind as i32,
                url: url.to_owned(),
                caption: if i == 0 {
                    body_text.to_owned()
                } else {
                    String::new()
                },
            }),
            id,
        ));
    }
    if !items.is_empty() {
        return Ok(items);
    }
    let lat_long = get("Latitude")
        .zip(get("Longitude"))
        .and_then(|(lat, long)| Some((lat.parse::<f64>().ok()?, long.parse::<f64>().ok()?)));
    let kind = if let Some(payload) = get("ButtonPayload") {
        Content::ButtonReply(ButtonReply {
            title: get("ButtonText").unwrap_or(body_text).to_owned(),
            payload: payload.to_owned(),
        })
    } else if let Some((latitude, longitude)) = lat_long {
        Content::Location(Location {
            latitude,
            longitude,
            name: get("Label").unwrap_or_default().to_owned(),
            address: get("Address").unwrap_or_default().to_owned(),
        })
    } else if !body_text.is_empty() {
        Content::Text(Text {
            body: body_text.to_owned(),
        })
    } else {
        return Ok(vec![Item::Ignored("message without content".into())]);
    };
    Ok(vec![message(kind, sid.to_owned())])
}

mod send;

pub use send::{answer, message};

#[cfg(test)]
mod tests;
