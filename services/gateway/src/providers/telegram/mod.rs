//! Telegram Bot API webhooks: `X-Telegram-Bot-Api-Secret-Token` (the secret we gave
//! Telegram in setWebhook), and the `message`, `edited_message` and `callback_query`
//! updates. Message ids are `<chat id>:<message id>`: Telegram numbers messages per chat.
use ism_proto::types::v1::{
    ButtonReply, ContactCard, Location, Media, MediaType, MessageContent, Text,
    message_content::Kind as Content,
};
use serde::Deserialize;

use super::{InboundMessage, Item, Webhook, epoch_seconds, secrets_equal};

/// The header carrying our secret token.
pub const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

/// Whether the webhook carries the channel's secret token.
pub fn verify(secret_token: &str, webhook: &Webhook<'_>) -> bool {
    webhook
        .header(SECRET_HEADER)
        .is_some_and(|given| secrets_equal(given, secret_token))
}

#[derive(Deserialize)]
struct Update {
    update_id: i64,
    #[serde(default)]
    message: Option<Message>,
    #[serde(default)]
    edited_message: Option<Message>,
    #[serde(default)]
    callback_query: Option<CallbackQuery>,
}

#[derive(Deserialize)]
struct User {
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
}

#[derive(Deserialize)]
struct Chat {
    id: i64,
}

#[derive(Deserialize)]
struct Message {
    message_id: i64,
    chat: Chat,
    #[serde(default)]
    from: Option<User>,
    #[serde(default)]
    date: i64,
    #[serde(default)]
    edit_date: Option<i64>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    caption: Option<String>,
    #[serde(default)]
    photo: Vec<File>,
    #[serde(default)]
    video: Option<File>,
    #[serde(default)]
    voice: Option<File>,
    #[serde(default)]
    audio: Option<File>,
    #[serde(default)]
    document: Option<File>,
    #[serde(default)]
    sticker: Option<File>,
    #[serde(default)]
    location: Option<LocationBody>,
    #[serde(default)]
    venue: Option<Venue>,
    #[serde(default)]
    contact: Option<Contact>,
    #[serde(default)]
    reply_to_message: Option<Box<Replied>>,
}

#[derive(Deserialize)]
struct Replied {
    message_id: i64,
}

#[derive(Deserialize)]
struct File {
    file_id: String,
}

#[derive(Deserialize)]
struct LocationBody {
    latitude: f64,
    longitude: f64,
}

#[derive(Deserialize)]
struct Venue {
    location: LocationBody,
    #[serde(default)]
    title: String,
    #[serde(default)]
    address: String,
}

#[derive(Deserialize)]
struct Contact {
    phone_number: String,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: String,
}

#[derive(Deserialize)]
struct CallbackQuery {
    id: String,
    from: User,
    #[serde(default)]
    message: Option<CallbackMessage>,
    #[serde(default)]
    data: String,
}

#[derive(Deserialize)]
struct CallbackMessage {
    message_id: i64,
    chat: Chat,
}

/// How a file reference starts: the Bot API resolves the file id after it (getFile,
/// with the bot token) to a download path.
pub const MEDIA_REFERENCE: &str = "telegram:file/";

pub fn file_reference(file_id: &str) -> String {
    format!("{MEDIA_REFERENCE}{file_id}")
}

fn full_name(user: &User) -> String {
    format!("{} {}", user.first_name, user.last_name)
        .trim()
        .to_owned()
}

/// Normalizes one Telegram update.
pub fn parse(body: &[u8]) -> Result<Vec<Item>, String> {
    let update: Update =
        serde_json::from_slice(body).map_err(|e| format!("not a Telegram update: {e}"))?;
    if let Some(message) = update.message {
        return Ok(vec![message_item(message, false)]);
    }
    if let Some(message) = update.edited_message {
        return Ok(vec![message_item(message, true)]);
    }
    if let Some(query) = update.callback_query {
        let Some(message) = query.message else {
            return Ok(vec![Item::Ignored(
                "callback_query from an inline message".into(),
            )]);
        };
        let chat = message.chat.id;
        return Ok(vec![Item::Message(InboundMessage {
            external_message_id: format!("callback:{}", query.id),
            sender_id: chat.to_string(),
            sender_name: full_name(&query.from),
            content: MessageContent {
                kind: Some(Content::ButtonReply(ButtonReply {
                    title: String::new(),
                    payload: query.data,
                })),
                reply_to_external_id: format!("{chat}:{}", message.message_id),
                ..Default::default()
            },
            sent_at: None,
        })]);
    }
    Ok(vec![Item::Ignored(format!(
        "update {} of an unhandled kind",
        update.update_id
    ))])
}

fn message_item(message: Message, edited: bool) -> Item {
    let chat = message.chat.id;
    let caption = message.caption.clone().unwrap_or_default();
    let media = |kind: MediaType, file: &File| {
        Content::Media(Media {
            r#type: kind as i32,
            url: file_reference(&file.file_id),
            caption: caption.clone(),
        })
    };
    let kind = if let Some(text) = message.text.clone() {
        Some(Content::Text(Text { body: text }))
    } else if let Some(largest) = message.photo.last() {
        Some(media(MediaType::Image, largest))
    } else if let Some(file) = &message.video {
        Some(media(MediaType::Video, file))
    } else if let Some(file) = message.voice.as_ref().or(message.audio.as_ref()) {
        Some(media(MediaType::Audio, file))
    } else if let Some(file) = &message.sticker {
        Some(media(MediaType::Sticker, file))
    } else if let Some(file) = &message.document {
        Some(media(MediaType::File, file))
    } else if let Some(venue) = message.venue {
        Some(Content::Location(Location {
            latitude: venue.location.latitude,
            longitude: venue.location.longitude,
            name: venue.title,
            address: venue.address,
        }))
    } else if let Some(at) = message.location {
        Some(Content::Location(Location {
            latitude: at.latitude,
            longitude: at.longitude,
            ..Default::default()
        }))
    } else {
        message.contact.map(|c| {
            Content::Contact(ContactCard {
                name: format!("{} {}", c.first_name, c.last_name)
                    .trim()
                    .to_owned(),
                phones: vec![c.phone_number],
                emails: Vec::new(),
            })
        })
    };
    let Some(kind) = kind else {
        return Item::Ignored("message without supported content".into());
    };
    // An edit is a new version of the message: its own id, so it is not a duplicate.
    let id = match (edited, message.edit_date) {
        (true, Some(at)) => format!("{chat}:{}:edit:{at}", message.message_id),
        (true, None) => format!("{chat}:{}:edit", message.message_id),
        _ => format!("{chat}:{}", message.message_id),
    };
    Item::Message(InboundMessage {
        external_message_id: id,
        sender_id: chat.to_string(),
        sender_name: message.from.as_ref().map(full_name).unwrap_or_default(),
        content: MessageContent {
            kind: Some(kind),
            reply_to_external_id: message
                .reply_to_message
                .map(|r| format!("{chat}:{}", r.message_id))
                .unwrap_or_default(),
            ..Default::default()
        },
        sent_at: epoch_seconds(message.edit_date.unwrap_or(message.date)),
    })
}

mod send;

pub use send::{answer, message};

#[cfg(test)]
mod tests;
