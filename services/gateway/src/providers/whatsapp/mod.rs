//! WhatsApp Cloud API webhooks (`object: whatsapp_business_account`): inbound text,
//! media, location, contacts, interactive and button replies, reactions; status updates
//! sent, delivered, read and failed with the error's code and title. The handshake and
//! signature are Meta's (see [`super::meta`]).
use ism_proto::types::v1::{
    ButtonReply, ContactCard, DeliveryFailure, DeliveryStatus, Location, Media, MediaType,
    MessageContent, Reaction, Text, message_content::Kind as Content,
};
use serde::Deserialize;

use super::outbound::Failure;
use super::{InboundMessage, Item, Receipt, ReceiptTarget, epoch_seconds};

#[derive(Deserialize)]
struct Body {
    object: String,
    entry: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(default)]
    changes: Vec<Change>,
}

#[derive(Deserialize)]
struct Change {
    field: String,
    value: Value,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Value {
    contacts: Vec<Profile>,
    messages: Vec<Message>,
    statuses: Vec<Status>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Profile {
    wa_id: String,
    profile: ProfileName,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ProfileName {
    name: String,
}

#[derive(Deserialize)]
struct Message {
    from: String,
    id: String,
    #[serde(default)]
    timestamp: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    context: Option<Context>,
    #[serde(default)]
    text: Option<TextBody>,
    #[serde(default)]
    image: Option<MediaBody>,
    #[serde(default)]
    video: Option<MediaBody>,
    #[serde(default)]
    audio: Option<MediaBody>,
    #[serde(default)]
    document: Option<MediaBody>,
    #[serde(default)]
    sticker: Option<MediaBody>,
    #[serde(default)]
    location: Option<LocationBody>,
    #[serde(default)]
    contacts: Vec<ContactBody>,
    #[serde(default)]
    interactive: Option<Interactive>,
    #[serde(default)]
    button: Option<ButtonBody>,
    #[serde(default)]
    reaction: Option<ReactionBody>,
}

#[derive(Deserialize)]
struct Context {
    #[serde(default)]
    id: String,
}

#[derive(Deserialize)]
struct TextBody {
    body: String,
}

#[derive(Deserialize)]
struct MediaBody {
    id: String,
    #[serde(default)]
    caption: String,
    #[serde(default)]
    filename: String,
}

#[derive(Deserialize)]
struct LocationBody {
    latitude: f64,
    longitude: f64,
    #[serde(default)]
    name: String,
    #[serde(default)]
    address: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ContactBody {
    name: ContactName,
    phones: Vec<Phone>,
    emails: Vec<Email>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ContactName {
    formatted_name: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Phone {
    phone: String,
    wa_id: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Email {
    email: String,
}

#[derive(Deserialize)]
struct Interactive {
    #[serde(default)]
    button_reply: Option<Choice>,
    #[serde(default)]
    list_reply: Option<Choice>,
}

#[derive(Deserialize)]
struct Choice {
    id: String,
    title: String,
}

#[derive(Deserialize)]
struct ButtonBody {
    #[serde(default)]
    payload: String,
    #[serde(default)]
    text: String,
}

#[derive(Deserialize)]
struct ReactionBody {
    message_id: String,
    #[serde(default)]
    emoji: String,
}

#[derive(Deserialize)]
struct Status {
    id: String,
    status: String,
    #[serde(default)]
    errors: Vec<ErrorBody>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ErrorBody {
    code: i64,
    title: String,
    message: String,
}

/// How a media reference starts: the Graph API resolves the id after it (with the
/// channel's token) to a short-lived download URL, `GET {api_base_url}/{media id}`.
pub const MEDIA_REFERENCE: &str = "whatsapp:media/";

pub fn media_reference(id: &str) -> String {
    format!("{MEDIA_REFERENCE}{id}")
}

/// A reason a person understands for a WhatsApp error code.
pub fn error_reason(code: i64, title: &str) -> String {
    let advice = match code {
        131047 => "more than 24 hours have passed since the customer last wrote; use a template",
        131026 => "the recipient cannot receive this message (not on WhatsApp, or an old app)",
        131051 => "this message type is not supported",
        130429 | 131056 => "rate limited by WhatsApp; the message will be retried",
        131048 => "spam rate limit reached for this number",
        132000..=132999 => "the template or its variables do not match what WhatsApp approved",
        190 => "the access token expired or is invalid",
        _ => "",
    };
    if advice.is_empty() {
        format!("WhatsApp error {code}: {title}")
    } else {
        format!("WhatsApp error {code} ({title}): {advice}")
    }
}

/// Normalizes a WhatsApp Cloud API webhook.
pub fn parse(body: &[u8]) -> Result<Vec<Item>, String> {
    let body: Body =
        serde_json::from_slice(body).map_err(|e| format!("not a WhatsApp webhook: {e}"))?;
    if body.object != "whatsapp_business_account" {
        return Err(format!(
            "object is {:?}; expected \"whatsapp_business_account\"",
            body.object
        ));
    }
    let mut items = Vec::new();
    for change in body.entry.into_iter().flat_map(|e| e.changes) {
        if change.field != "messages" {
            items.push(Item::Ignored(format!("field {}", change.field)));
            continue;
        }
        let value = change.value;
        for message in value.messages {
            let name = value
                .contacts
                .iter()
                .find(|c| c.wa_id == message.from)
                .map(|c| c.profile.name.clone())
                .unwrap_or_default();
            items.push(message_item(message, name));
        }
        for status in value.statuses {
            items.push(status_item(status));
        }
    }
    Ok(items)
}

fn media(kind: MediaType, body: MediaBody) -> Content {
    let caption = if body.caption.is_empty() {
        body.filename
    } else {
        body.caption
    };
    Content::Media(Media {
        r#type: kind as i32,
        url: media_reference(&body.id),
        caption,
    })
}

fn message_item(message: Message, sender_name: String) -> Item {
    let mut reply_to = message.context.map(|c| c.id).unwrap_or_default();
    let kind = match message.kind.as_str() {
        "text" => message.text.map(|t| Content::Text(Text { body: t.body })),
        "image" => message.image.map(|m| media(MediaType::Image, m)),
        "sticker" => message.sticker.map(|m| media(MediaType::Sticker, m)),
        "video" => message.video.map(|m| media(MediaType::Video, m)),
        "audio" => message.audio.map(|m| media(MediaType::Audio, m)),
        "document" => message.document.map(|m| media(MediaType::File, m)),
        "location" => message.location.map(|l| {
            Content::Location(Location {
                latitude: l.latitude,
                longitude: l.longitude,
                name: l.name,
                address: l.address,
            })
        }),
        "contacts" => message.contacts.into_iter().next().map(|c| {
            Content::Contact(ContactCard {
                name: c.name.formatted_name,
                phones: c
                    .phones
                    .into_iter()
                    .map(|p| if p.phone.is_empty() { p.wa_id } else { p.phone })
                    .collect(),
                emails: c.emails.into_iter().map(|e| e.email).collect(),
            })
        }),
        "interactive" => message
            .interactive
            .and_then(|i| i.button_reply.or(i.list_reply))
            .map(|choice| {
                Content::ButtonReply(ButtonReply {
                    title: choice.title,
                    payload: choice.id,
                })
            }),
        "button" => message.button.map(|b| {
            Content::ButtonReply(ButtonReply {
                title: b.text,
                payload: b.payload,
            })
        }),
        "reaction" => message.reaction.map(|r| {
            reply_to = r.message_id;
            Content::Reaction(Reaction {
                removed: r.emoji.is_empty(),
                emoji: r.emoji,
            })
        }),
        other => return Item::Ignored(format!("message type {other}")),
    };
    let Some(kind) = kind else {
        return Item::Ignored(format!("message type {} without its body", message.kind));
    };
    Item::Message(InboundMessage {
        external_message_id: message.id,
        sender_id: message.from,
        sender_name,
        content: MessageContent {
            kind: Some(kind),
            reply_to_external_id: reply_to,
            ..Default::default()
        },
        sent_at: message.timestamp.parse().ok().and_then(epoch_seconds),
    })
}

fn status_item(status: Status) -> Item {
    let none = DeliveryFailure::Unspecified;
    let (delivery, reason, failure) = match status.status.as_str() {
        "sent" => (DeliveryStatus::Sent, String::new(), none),
        "delivered" => (DeliveryStatus::Delivered, String::new(), none),
        "read" => (DeliveryStatus::Read, String::new(), none),
        "failed" => {
            let failure = status.errors.first().map_or_else(
                || Failure::Refused("WhatsApp reported the message as failed".to_owned()),
                |e| {
                    let title = if e.title.is_empty() {
                        &e.message
                    } else {
                        &e.title
                    };
                    send::classify(e.code, error_reason(e.code, title), None)
                },
            );
            let kind = failure.delivery_failure();
            (DeliveryStatus::Failed, failure.reason().to_owned(), kind)
        }
        other => return Item::Ignored(format!("status {other}")),
    };
    Item::Receipt(Receipt {
        target: ReceiptTarget::Ids(vec![status.id]),
        status: delivery,
        reason,
        failure,
    })
}

mod send;

pub use send::{answer, message};

#[cfg(test)]
mod tests;
