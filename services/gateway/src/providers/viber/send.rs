//! Viber REST bot API: `POST /pa/send_message`.
use ism_proto::types::v1::{MediaType, MessageContent, message_content::Kind as Content};
use serde_json::{Value, json};

use crate::providers::outbound::{
    Failure, MediaFile, Outgoing, Reply, by_status, kind_name, unsupported,
};

/// Viber's limit on the sender name.
const MAX_SENDER_NAME: usize = 28;
/// Viber's limits on a video's and a file's size, and on a file's name.
const MAX_VIDEO_BYTES: u64 = 26 * 1024 * 1024;
const MAX_FILE_BYTES: u64 = 50 * 1024 * 1024;
const MAX_FILE_NAME: usize = 256;

/// The URL of media Viber sends only with its size (videos, and files: audio goes as a
/// file too), which the sender must learn first.
pub fn needs_size(content: &MessageContent) -> Option<&str> {
    match &content.kind {
        Some(Content::Media(media))
            if !matches!(
                MediaType::try_from(media.r#type),
                Ok(MediaType::Image | MediaType::Sticker)
            ) =>
        {
            Some(&media.url)
        }
        _ => None,
    }
}

/// The send_message body for `out`, sent in the channel's name; `file` is the size and
/// name of the media [`needs_size`] named. Buttons become a keyboard (reply, or
/// open-url).
pub fn message(out: &Outgoing<'_>, file: Option<&MediaFile>) -> Result<Value, Failure> {
    let content = out.content;
    let mut body = match (&content.kind, file) {
        (Some(Content::Text(text)), _) => json!({"type": "text", "text": text.body}),
        (Some(Content::Media(media)), _) if needs_size(content).is_none() => {
            json!({"type": "picture", "text": media.caption, "media": media.url})
        }
        (Some(Content::Media(media)), Some(file)) if media.r#type == MediaType::Video as i32 => {
            within("videos", file.size, MAX_VIDEO_BYTES)?;
            json!({"type": "video", "media": media.url, "size": file.size})
        }
        (Some(Content::Media(media)), Some(file)) => {
            within("files", file.size, MAX_FILE_BYTES)?;
            let name: String = file.name.chars().take(MAX_FILE_NAME).collect();
            json!({"type": "file", "media": media.url, "size": file.size, "file_name": name})
        }
        (Some(Content::Media(_)), None) => {
            return Err(Failure::Refused(
                "Viber needs the size of a video or file before sending it".into(),
            ));
        }
        (Some(Content::Location(at)), _) => {
            json!({"type": "location", "location": {"lat": at.latitude, "lon": at.longitude}})
        }
        (Some(Content::Contact(card)), _) => json!({"type": "contact", "contact": {
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

fn within(what: &str, size: u64, max: u64) -> Result<(), Failure> {
    if size > max {
        return Err(Failure::Refused(format!(
            "Viber takes {what} up to {} MB; this one has {:.1} MB",
            max / (1024 * 1024),
            size as f64 / (1024.0 * 1024.0)
        )));
    }
    Ok(())
}

/// Viber answers 200 with a `status` (0 is ok; the REST bot API's error codes
/// otherwise) and the `message_token`. Any other HTTP answer is read by its HTTP status
/// first, whatever its body says: a 500 stays worth retrying.
pub fn answer(reply: &Reply) -> Result<String, Failure> {
    let status = match reply.int("/status") {
        Some(status) if reply.code == 200 => status,
        _ => return Err(by_status("Viber", reply, "")),
    };
    if status == 0 {
        return Ok(reply.text("/message_token"));
    }
    let reason = format!("status {status}: {}", reply.text("/status_message"));
    Err(match status {
        5 | 6 | 11 => Failure::Recipient(format!(
            "{reason}: the recipient is not registered, not subscribed, or has no suitable device"
        )),
        12 => Failure::RateLimited {
            after: reply.retry_after,
            reason: format!("Viber {reason}"),
        },
        1 | 2 | 7 | 8 | 9 | 10 => Failure::Auth(reason),
        _ => Failure::Refused(reason),
    })
}
