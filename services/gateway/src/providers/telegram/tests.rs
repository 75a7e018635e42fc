use axum::http::{HeaderMap, HeaderValue};

use super::*;

fn message(items: Vec<Item>) -> InboundMessage {
    match items.into_iter().next() {
        Some(Item::Message(m)) => m,
        other => panic!("not a message: {other:?}"),
    }
}

#[test]
fn the_secret_token_header_must_match() {
    let mut headers = HeaderMap::new();
    headers.insert(SECRET_HEADER, HeaderValue::from_static("s3cret"));
    let hook = Webhook {
        headers: &headers,
        body: b"{}",
        url: "",
    };
    assert!(verify("s3cret", &hook));
    assert!(!verify("s3cret!", &hook));
    let empty = HeaderMap::new();
    assert!(!verify(
        "s3cret",
        &Webhook {
            headers: &empty,
            body: b"{}",
            url: ""
        }
    ));
}

#[test]
fn a_text_message_from_the_bot_api_sample() {
    // The Update object of the Telegram Bot API documentation.
    let body = br#"{"update_id":10000,"message":{"date":1441645532,"chat":{"last_name":"Test Lastname","id":1111111,"type":"private","first_name":"Test Firstname","username":"Testusername"},"message_id":1365,"from":{"last_name":"Test Lastname","id":1111111,"is_bot":false,"first_name":"Test Firstname","username":"Testusername"},"text":"/start","reply_to_message":{"message_id":1300,"date":1,"chat":{"id":1111111,"type":"private"}}}}"#;
    let m = message(parse(body).unwrap());
    assert_eq!(m.external_message_id, "1111111:1365");
    assert_eq!(m.sender_id, "1111111");
    assert_eq!(m.sender_name, "Test Firstname Test Lastname");
    assert_eq!(m.content.reply_to_external_id, "1111111:1300");
    assert_eq!(m.sent_at.unwrap().timestamp(), 1441645532);
}

#[test]
fn photos_locations_contacts_edits_and_callbacks() {
    let photo = br#"{"update_id":1,"message":{"message_id":2,"date":1,"chat":{"id":5,"type":"private"},"caption":"look","photo":[{"file_id":"small","file_unique_id":"a","width":90,"height":90},{"file_id":"large","file_unique_id":"b","width":800,"height":800}]}}"#;
    let m = message(parse(photo).unwrap());
    assert!(
        matches!(&m.content.kind, Some(Content::Media(x)) if x.url == "telegram:file/large" && x.caption == "look")
    );
    let location = br#"{"update_id":2,"message":{"message_id":3,"date":1,"chat":{"id":5,"type":"private"},"location":{"latitude":48.85,"longitude":2.35}}}"#;
    assert!(
        matches!(message(parse(location).unwrap()).content.kind, Some(Content::Location(l)) if l.latitude == 48.85)
    );
    let contact = br#"{"update_id":3,"message":{"message_id":4,"date":1,"chat":{"id":5,"type":"private"},"contact":{"phone_number":"+33100000000","first_name":"Ada"}}}"#;
    assert!(
        matches!(message(parse(contact).unwrap()).content.kind, Some(Content::Contact(c)) if c.phones == ["+33100000000"])
    );
    let edited = br#"{"update_id":4,"edited_message":{"message_id":4,"date":1,"edit_date":9,"chat":{"id":5,"type":"private"},"text":"fixed"}}"#;
    assert_eq!(
        message(parse(edited).unwrap()).external_message_id,
        "5:4:edit:9"
    );
    let callback = br#"{"update_id":5,"callback_query":{"id":"4382bfdwdsb323b2d9","from":{"id":5,"is_bot":false,"first_name":"Ada"},"message":{"message_id":77,"date":1,"chat":{"id":5,"type":"private"}},"chat_instance":"x","data":"Data from button callback"}}"#;
    let m = message(parse(callback).unwrap());
    assert_eq!(m.external_message_id, "callback:4382bfdwdsb323b2d9");
    assert!(
        matches!(&m.content.kind, Some(Content::ButtonReply(b)) if b.payload == "Data from button callback")
    );
    assert_eq!(m.content.reply_to_external_id, "5:77");
}

#[test]
fn other_updates_are_acknowledged_and_bad_shapes_refused() {
    assert!(matches!(
        parse(br#"{"update_id":6,"my_chat_member":{}}"#).unwrap()[0],
        Item::Ignored(_)
    ));
    assert!(parse(br#"{"message":{"text":"no update id"}}"#).is_err());
}

#[test]
fn photos_replies_and_keyboards_take_the_bot_api_shapes() {
    use crate::providers::outbound::Outgoing;
    use ism_proto::types::v1::Button;
    let content = MessageContent {
        kind: Some(Content::Media(Media {
            r#type: MediaType::Image as i32,
            url: "https://example.com/a.jpg".into(),
            caption: "look".into(),
        })),
        buttons: vec![
            Button {
                title: "Yes".into(),
                payload: "yes".into(),
                url: String::new(),
            },
            Button {
                title: "Site".into(),
                payload: String::new(),
                url: "https://example.com".into(),
            },
        ],
        reply_to_external_id: "1111111:1365".into(),
    };
    let (method, body) = send::message(&Outgoing::sample("1111111", &content)).unwrap();
    assert_eq!(method, "sendPhoto");
    assert_eq!(body["chat_id"], "1111111");
    assert_eq!(body["photo"], "https://example.com/a.jpg");
    assert_eq!(body["reply_parameters"]["message_id"], 1365);
    assert_eq!(
        body["reply_markup"]["inline_keyboard"][0][0]["callback_data"],
        "yes"
    );
    assert_eq!(
        body["reply_markup"]["inline_keyboard"][1][0]["url"],
        "https://example.com"
    );
}

#[test]
fn bot_api_answers_map_to_what_they_mean() {
    use crate::providers::outbound::{Failure, Reply};
    use std::time::Duration;
    assert_eq!(
        answer(&Reply::sample(
            200,
            r#"{"ok":true,"result":{"message_id":1366,"date":1441645600,"chat":{"id":1111111,"type":"private"},"text":"hi"}}"#
        )),
        Ok("1111111:1366".into()),
        "the id matches the one inbound messages of the chat carry"
    );
    assert_eq!(
        answer(&Reply::sample(
            429,
            r#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 7","parameters":{"retry_after":7}}"#
        )),
        Err(Failure::RateLimited {
            after: Some(Duration::from_secs(7)),
            reason: "Telegram: Too Many Requests: retry after 7".into()
        })
    );
    assert!(matches!(
        answer(&Reply::sample(
            403,
            r#"{"ok":false,"error_code":403,"description":"Forbidden: bot was blocked by the user"}"#
        )),
        Err(Failure::Recipient(_))
    ));
    assert!(matches!(
        answer(&Reply::sample(
            400,
            r#"{"ok":false,"error_code":400,"description":"Bad Request: chat not found"}"#
        )),
        Err(Failure::Recipient(_))
    ));
    assert!(matches!(
        answer(&Reply::sample(
            401,
            r#"{"ok":false,"error_code":401,"description":"Unauthorized"}"#
        )),
        Err(Failure::Auth(_))
    ));
    assert!(matches!(
        answer(&Reply::sample(
            400,
            r#"{"ok":false,"error_code":400,"description":"Bad Request: message text is empty"}"#
        )),
        Err(Failure::Refused(_))
    ));
    assert!(matches!(
        answer(&Reply::sample(502, "Bad Gateway")),
        Err(Failure::Transient(_))
    ));
}

#[test]
fn stickers_arrive_as_stickers_and_leave_through_send_sticker() {
    // A sticker Update as the Bot API documents the Sticker object (file_id, dimensions).
    let body = br#"{"update_id":10001,"message":{"date":1441645532,"chat":{"id":1111111,"type":"private"},"message_id":1366,"from":{"id":1111111,"is_bot":false,"first_name":"Test"},"sticker":{"file_id":"CAACAgIAAxkBAAE","file_unique_id":"AgADBQAD","width":512,"height":512,"is_animated":false,"is_video":false,"type":"regular"}}}"#;
    let m = message(parse(body).unwrap());
    assert!(
        matches!(&m.content.kind, Some(Content::Media(media)) if media.r#type == MediaType::Sticker as i32),
        "{:?}",
        m.content
    );

    use crate::providers::outbound::Outgoing;
    let content = MessageContent {
        kind: Some(Content::Media(Media {
            r#type: MediaType::Sticker as i32,
            url: "https://example.com/s.webp".into(),
            caption: "stickers take no caption".into(),
        })),
        ..Default::default()
    };
    let (method, body) = send::message(&Outgoing::sample("1111111", &content)).unwrap();
    assert_eq!(method, "sendSticker");
    assert_eq!(body["sticker"], "https://example.com/s.webp");
    assert!(body.get("caption").is_none(), "{body}");
}
