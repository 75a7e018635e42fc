//! What an outbound message may carry on each channel type: checked when a reply, a
//! broadcast or an automation's message is accepted, so the provider never refuses it
//! for a reason known in advance.
use ism_proto::types::v1::message_content::Kind;
use ism_proto::types::v1::{ChannelType, MessageContent};

use crate::error::FieldError;

/// The longest text a channel of `channel_type` delivers, in bytes.
pub fn text_limit(channel_type: i32) -> usize {
    match ChannelType::try_from(channel_type) {
        Ok(ChannelType::Messenger) => 2000,
        Ok(ChannelType::Instagram) => 1000,
        Ok(ChannelType::TwilioSms | ChannelType::TwilioWhatsapp) => 1600,
        Ok(ChannelType::Line) => 5000,
        Ok(ChannelType::Viber) => 7000,
        _ => 4096,
    }
}

fn http_url(url: &str) -> bool {
    url.starts_with("https://") || url.starts_with("http://")
}

/// The message to send, or the field that makes it unsendable on a channel of
/// `channel_type`.
pub fn outbound(
    content: Option<&MessageContent>,
    channel_type: i32,
) -> Result<MessageContent, FieldError> {
    let content = content.cloned().unwrap_or_default();
    let limit = text_limit(channel_type);
    match &content.kind {
        Some(Kind::Text(text)) if text.body.trim().is_empty() => {
            return Err(FieldError::new("content.text.body", "must not be empty"));
        }
        Some(Kind::Text(text)) if text.body.len() > limit => {
            return Err(FieldError::new(
                "content.text.body",
                format!("must be at most {limit} bytes on this channel"),
            ));
        }
        Some(Kind::Media(media)) if !http_url(&media.url) => {
            return Err(FieldError::new(
                "content.media.url",
                "must be an http(s) URL",
            ));
        }
        Some(Kind::Media(media)) if media.caption.len() > limit => {
            return Err(FieldError::new(
                "content.media.caption",
                format!("must be at most {limit} bytes on this channel"),
            ));
        }
        Some(Kind::Location(place))
            if !(-90.0..=90.0).contains(&place.latitude)
                || !(-180.0..=180.0).contains(&place.longitude) =>
        {
            return Err(FieldError::new(
                "content.location",
                "latitude must be within ±90 and longitude within ±180",
            ));
        }
        Some(Kind::Contact(card)) if card.name.trim().is_empty() => {
            return Err(FieldError::new("content.contact.name", "is required"));
        }
        Some(Kind::Template(template)) if template.name.trim().is_empty() => {
            return Err(FieldError::new("content.template.name", "is required"));
        }
        Some(Kind::ButtonReply(_) | Kind::Reaction(_)) => {
            return Err(FieldError::new(
                "content",
                "button replies and reactions come from Contacts; send text, media, a location, a contact card or a template",
            ));
        }
        Some(_) => {}
        None => {
            return Err(FieldError::new(
                "content",
                "is required: text, media, location, contact card or template",
            ));
        }
    }
    if content.buttons.len() > 13 {
        return Err(FieldError::new("content.buttons", "at most 13 buttons"));
    }
    if content
        .buttons
        .iter()
        .any(|b| b.title.trim().is_empty() || (!b.url.is_empty() && !http_url(&b.url)))
    {
        return Err(FieldError::new(
            "content.buttons",
            "each button needs a title, and a link button an http(s) URL",
        ));
    }
    Ok(content)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ism_proto::types::v1::{Media, Text};

    fn text(body: &str) -> MessageContent {
        MessageContent {
            kind: Some(Kind::Text(Text { body: body.into() })),
            ..Default::default()
        }
    }

    #[test]
    fn replies_need_real_content_within_the_channel_limit() {
        let instagram = ChannelType::Instagram as i32;
        assert!(outbound(Some(&text("hello")), instagram).is_ok());
        assert_eq!(
            outbound(Some(&text("  ")), instagram).unwrap_err().field,
            "content.text.body"
        );
        assert_eq!(
            outbound(Some(&text(&"x".repeat(1001))), instagram)
                .unwrap_err()
                .field,
            "content.text.body"
        );
        assert!(outbound(Some(&text(&"x".repeat(1001))), ChannelType::Custom as i32).is_ok());
        assert_eq!(outbound(None, 0).unwrap_err().field, "content");
        let media = MessageContent {
            kind: Some(Kind::Media(Media {
                r#type: 1,
                url: "file:///etc/passwd".into(),
                caption: String::new(),
            })),
            ..Default::default()
        };
        assert_eq!(
            outbound(Some(&media), 0).unwrap_err().field,
            "content.media.url"
        );
    }
}
