//! The custom API channel's JSON: what a business's system POSTs to us, and what we
//! POST to its outbound URL. Documented in docs/custom-channel.md.
pub mod signature;

use chrono::{DateTime, Utc};
use ism_proto::types::v1::{Media, MediaType, MessageContent, Text, message_content::Kind};
use serde::{Deserialize, Serialize};

use super::outbound::{Failure, Outgoing, Reply};

/// An inbound webhook body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundWebhook {
    /// The sender's id for this message; a retry carries the same id.
    pub message_id: String,
    pub from: Sender,
    /// When the message was sent; defaults to when we received it.
    #[serde(default)]
    pub timestamp: Option<DateTime<Utc>>,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub media: Option<MediaBody>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sender {
    pub id: String,
    #[serde(default)]
    pub name: String,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct MediaBody {
    #[serde(rename = "type")]
    pub kind: MediaKind,
    pub url: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub caption: String,
}

#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Image,
    Video,
    Audio,
    File,
}

/// Longest text we accept, in bytes.
const MAX_TEXT: usize = 64 * 1024;
/// Longest id we accept, in bytes.
const MAX_ID: usize = 256;

/// Parses and checks a webhook body; the error is a reason for a 400 answer.
pub fn parse_inbound(body: &[u8]) -> Result<(InboundWebhook, MessageContent), String> {
    let webhook: InboundWebhook =
        serde_json::from_slice(body).map_err(|e| format!("malformed JSON: {e}"))?;
    if webhook.message_id.trim().is_empty() || webhook.message_id.len() > MAX_ID {
        return Err(format!("message_id must be 1 to {MAX_ID} bytes"));
    }
    if webhook.from.id.trim().is_empty() || webhook.from.id.len() > MAX_ID {
        return Err(format!("from.id must be 1 to {MAX_ID} bytes"));
    }
    let content = match (&webhook.text, &webhook.media) {
        (Some(text), None) if !text.is_empty() && text.len() <= MAX_TEXT => {
            Kind::Text(Text { body: text.clone() })
        }
        (Some(_), None) => return Err(format!("text must be 1 to {MAX_TEXT} bytes")),
        (None, Some(media)) => {
            let url = url_ok(&media.url).ok_or("media.url must be an http(s) URL")?;
            Kind::Media(Media {
                r#type: media_type(media.kind) as i32,
                url,
                caption: media.caption.clone(),
            })
        }
        _ => return Err("exactly one of text or media is required".to_owned()),
    };
    Ok((
        webhook,
        MessageContent {
            kind: Some(content),
            ..Default::default()
        },
    ))
}

/// The webhook as one canonical item.
pub fn parse(body: &[u8]) -> Result<Vec<super::Item>, String> {
    let (webhook, content) = parse_inbound(body)?;
    Ok(vec![super::Item::Message(super::InboundMessage {
        external_message_id: webhook.message_id,
        sender_id: webhook.from.id,
        sender_name: webhook.from.name,
        content,
        sent_at: webhook.timestamp,
    })])
}

fn url_ok(raw: &str) -> Option<String> {
    let parsed = reqwest::Url::parse(raw).ok()?;
    matches!(parsed.scheme(), "http" | "https").then(|| parsed.to_string())
}

fn media_type(kind: MediaKind) -> MediaType {
    match kind {
        MediaKind::Image => MediaType::Image,
        MediaKind::Video => MediaType::Video,
        MediaKind::Audio => MediaType::Audio,
        MediaKind::File => MediaType::File,
    }
}

/// The body we POST to a custom channel's outbound URL.
#[derive(Debug, Serialize)]
pub struct OutboundMessage<'a> {
    /// Our id for the message; a redelivery carries the same id.
    pub message_id: String,
    pub channel_id: String,
    /// The recipient's id, as the business's system knows them.
    pub to: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media: Option<MediaBody>,
}

/// The outbound JSON for `content`, or why it cannot be sent on a custom channel.
pub fn outbound<'a>(
    message_id: String,
    channel_id: String,
    to: &'a str,
    content: &'a MessageContent,
) -> Result<OutboundMessage<'a>, String> {
    let (text, media) = match &content.kind {
        Some(Kind::Text(text)) => (Some(text.body.as_str()), None),
        Some(Kind::Media(media)) => {
            let kind = match MediaType::try_from(media.r#type) {
                Ok(MediaType::Image | MediaType::Sticker) => MediaKind::Image,
                Ok(MediaType::Video) => MediaKind::Video,
                Ok(MediaType::Audio) => MediaKind::Audio,
                _ => MediaKind::File,
            };
            let media = MediaBody {
                kind,
                url: media.url.clone(),
                caption: media.caption.clone(),
            };
            (None, Some(media))
        }
        Some(_) => {
            return Err(
                "a custom channel carries text or media only; this content has another kind"
                    .to_owned(),
            );
        }
        None => return Err("the message has no content".to_owned()),
    };
    Ok(OutboundMessage {
        message_id,
        channel_id,
        to,
        text,
        media,
    })
}

/// The signed POST of `out` to the channel's outbound URL.
pub fn request(
    http: &reqwest::Client,
    webhook_secret: &str,
    out: &Outgoing<'_>,
) -> Result<reqwest::RequestBuilder, Failure> {
    let message = outbound(
        out.message_id.to_string(),
        out.channel_id.to_string(),
        out.recipient,
        out.content,
    )
    .map_err(Failure::Refused)?;
    let body = serde_json::to_vec(&message)
        .map_err(|e| Failure::Refused(format!("cannot encode the message: {e}")))?;
    Ok(http
        .post(out.outbound_url)
        .header("content-type", "application/json")
        .header("x-ism-message-id", out.message_id.to_string())
        .header(
            signature::HEADER,
            signature::sign(webhook_secret.as_bytes(), &body),
        )
        .body(body))
}

/// The business system's answer: 2xx is sent (with its `message_id`, if any); 5xx, 408
/// and 429 are retried; 404 and 410 name a recipient it does not know, 401 and 403 a
/// channel it refuses; any other status refuses the message.
pub fn answer(reply: &Reply) -> Result<String, Failure> {
    let code = reply.code;
    if (200..300).contains(&code) {
        return Ok(reply.text("/message_id"));
    }
    let snippet = &reply.snippet;
    match code {
        429 => Err(Failure::RateLimited {
            after: reply.retry_after,
            reason: format!("the receiver answered HTTP 429: {snippet}"),
        }),
        408 | 500..=599 => Err(Failure::Transient(format!(
            "the receiver answered HTTP {code}: {snippet}"
        ))),
        404 | 410 => Err(Failure::Recipient(format!(
            "it does not know this recipient (HTTP {code}): {snippet}"
        ))),
        401 | 403 => Err(Failure::Auth(format!("HTTP {code}: {snippet}"))),
        _ => Err(Failure::Refused(format!("HTTP {code}: {snippet}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_webhooks_parse() {
        let (hook, content) =
            parse_inbound(br#"{"message_id":"m1","from":{"id":"u1","name":"Ada"},"text":"hi"}"#)
                .unwrap();
        assert_eq!(hook.from.name, "Ada");
        assert!(matches!(content.kind, Some(Kind::Text(ref t)) if t.body == "hi"));
    }

    #[test]
    fn media_webhooks_parse() {
        let (_, content) = parse_inbound(br#"{"message_id":"m1","from":{"id":"u1"},"media":{"type":"image","url":"https://x.test/a.png"}}"#).unwrap();
        assert!(
            matches!(content.kind, Some(Kind::Media(ref m)) if m.r#type == MediaType::Image as i32)
        );
    }

    #[test]
    fn bad_bodies_say_why() {
        for (body, needle) in [
            (&br#"{"message_id":"m1""#[..], "malformed JSON"),
            (br#"{"message_id":"","from":{"id":"u"},"text":"x"}"#, "message_id"),
            (br#"{"message_id":"m","from":{"id":""},"text":"x"}"#, "from.id"),
            (br#"{"message_id":"m","from":{"id":"u"}}"#, "exactly one"),
            (br#"{"message_id":"m","from":{"id":"u"},"text":"x","media":{"type":"image","url":"https://a"}}"#, "exactly one"),
            (br#"{"message_id":"m","from":{"id":"u"},"media":{"type":"image","url":"ftp://a"}}"#, "media.url"),
            (br#"{"message_id":"m","from":{"id":"u"},"text":"x","extra":1}"#, "unknown field"),
            (br#"[1,2]"#, "malformed JSON"),
        ] {
            let err = parse_inbound(body).unwrap_err();
            assert!(err.contains(needle), "{err} should mention {needle}");
        }
    }
}
