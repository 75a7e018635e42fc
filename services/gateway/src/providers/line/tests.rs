use axum::http::{HeaderMap, HeaderValue};

use super::*;

#[test]
fn matches_the_line_sdks_signature_test() {
    // line-bot-sdk-python tests/test_webhook.py, TestSignatureValidator.
    let mut headers = HeaderMap::new();
    headers.insert(
        SIGNATURE_HEADER,
        HeaderValue::from_static("/gg9a+LvFevTH1sd7XCQycD7tsWclCsInj7MhBHxN7k="),
    );
    let hook = |body: &'static [u8]| Webhook {
        headers: &headers,
        body,
        url: "",
    };
    assert!(verify("channel_secret", &hook(b"bodybodybodybody")));
    assert!(!verify("channel_secret", &hook(b"bodybodybodybodY")));
    assert!(!verify("other_secret", &hook(b"bodybodybodybody")));
}

#[test]
fn message_and_postback_events_from_the_documented_samples() {
    // Messaging API reference, "Webhook event objects".
    let body = br#"{"destination":"xxxxxxxxxx","events":[
      {"replyToken":"nHuyWiB7yP5Zw52FIkcQobQuGDXCTA","type":"message","mode":"active","timestamp":1462629479859,"source":{"type":"user","userId":"U4af4980629"},"webhookEventId":"01FZ74A0TDDPYRVKNK77XKC3ZR","deliveryContext":{"isRedelivery":false},"message":{"id":"444573844083572737","type":"text","quoteToken":"q3Plxr4AgKd","text":"@All @example Good Morning!! (love)","quotedMessageId":"444573844083572700"}},
      {"type":"message","timestamp":1,"source":{"type":"group","groupId":"Ca56f94637c","userId":"U4af4980629"},"message":{"id":"325708","type":"image","contentProvider":{"type":"line"}}},
      {"type":"message","timestamp":1,"source":{"type":"user","userId":"U1"},"message":{"id":"325709","type":"location","title":"my location","address":"Tokyo","latitude":35.65910807942215,"longitude":139.70372892916203}},
      {"type":"postback","timestamp":1,"webhookEventId":"01FZ74ASS536FW97EX38NKCZQK","source":{"type":"user","userId":"U1"},"postback":{"data":"action=buy&itemid=111"}},
      {"type":"follow","timestamp":1,"source":{"type":"user","userId":"U1"}}
    ]}"#;
    let items = parse(body).unwrap();
    let Item::Message(text) = &items[0] else {
        panic!()
    };
    assert_eq!(
        (text.external_message_id.as_str(), text.sender_id.as_str()),
        ("444573844083572737", "U4af4980629")
    );
    assert_eq!(text.content.reply_to_external_id, "444573844083572700");
    let Item::Message(image) = &items[1] else {
        panic!()
    };
    assert_eq!(image.sender_id, "Ca56f94637c", "replies go to the group");
    assert!(
        matches!(&image.content.kind, Some(Content::Media(m)) if m.url == "line:content/325708")
    );
    assert!(
        matches!(&items[2], Item::Message(m) if matches!(&m.content.kind, Some(Content::Location(l)) if l.address == "Tokyo"))
    );
    assert!(
        matches!(&items[3], Item::Message(m) if m.external_message_id == "01FZ74ASS536FW97EX38NKCZQK")
    );
    assert!(matches!(&items[4], Item::Ignored(_)));
}

#[test]
fn the_verify_button_sends_no_events_and_other_shapes_are_refused() {
    assert!(
        parse(br#"{"destination":"U","events":[]}"#)
            .unwrap()
            .is_empty()
    );
    assert!(parse(br#"{"destination":"U"}"#).is_err());
}

#[test]
fn pushes_carry_quick_replies_and_errors_map_to_what_they_mean() {
    use crate::providers::outbound::{Failure, Outgoing, Reply};
    use ism_proto::types::v1::Button;
    let content = MessageContent {
        kind: Some(Content::Text(Text {
            body: "Hello".into(),
        })),
        buttons: vec![Button {
            title: "Buy".into(),
            payload: "action=buy".into(),
            url: String::new(),
        }],
        ..Default::default()
    };
    let body = message(&Outgoing::sample("U4af4980629", &content)).unwrap();
    assert_eq!(body["to"], "U4af4980629");
    assert_eq!(body["messages"][0]["text"], "Hello");
    assert_eq!(
        body["messages"][0]["quickReply"]["items"][0]["action"]["data"],
        "action=buy"
    );
    // Messaging API reference, "Send push message" and "Error responses".
    assert_eq!(
        answer(&Reply::sample(
            200,
            r#"{"sentMessages":[{"id":"461230966842064897","quoteToken":"IStG5h1Tz7b..."}]}"#
        )),
        Ok("461230966842064897".into())
    );
    assert_eq!(
        answer(&Reply::sample(
            409,
            r#"{"message":"The retry key is already accepted"}"#
        )),
        Ok(String::new())
    );
    assert!(matches!(
        answer(&Reply::sample(
            401,
            r#"{"message":"Authentication failed due to the following reason: invalid token."}"#
        )),
        Err(Failure::Auth(_))
    ));
    assert!(matches!(
        answer(&Reply::sample(
            429,
            r#"{"message":"The API rate limit has been exceeded. Try again later."}"#
        )),
        Err(Failure::RateLimited { .. })
    ));
    assert!(
        matches!(answer(&Reply::sample(400, r#"{"message":"The request body has 1 error(s)","details":[{"message":"May not be empty","property":"messages[0].text"}]}"#)), Err(Failure::Refused(r)) if r.contains("May not be empty"))
    );
}

#[test]
fn a_file_goes_as_its_caption_and_link_since_line_has_no_file_message() {
    use crate::providers::outbound::Outgoing;
    let file = MessageContent {
        kind: Some(Content::Media(Media {
            r#type: MediaType::File as i32,
            url: "https://shop.example/d/invoice.pdf".into(),
            caption: "Your invoice".into(),
        })),
        ..Default::default()
    };
    let body = message(&Outgoing::sample("U4af4980629", &file)).unwrap();
    assert_eq!(body["messages"][0]["type"], "text");
    assert_eq!(
        body["messages"][0]["text"],
        "Your invoice\nhttps://shop.example/d/invoice.pdf"
    );
}
