use axum::http::{HeaderMap, HeaderValue};

use super::*;
use crate::providers::outbound::{Failure, Outgoing, Reply};

#[test]
fn the_signature_is_hex_hmac_sha256_of_the_body_under_the_auth_token() {
    // RFC 4231 test case 2 as a Viber signature: key "Jefe".
    let mut headers = HeaderMap::new();
    headers.insert(
        SIGNATURE_HEADER,
        HeaderValue::from_static(
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        ),
    );
    let hook = |body: &'static [u8]| Webhook {
        headers: &headers,
        body,
        url: "",
    };
    assert!(verify("Jefe", &hook(b"what do ya want for nothing?")));
    assert!(!verify("Jefe", &hook(b"what do ya want for nothing")));
}

#[test]
fn a_message_callback_from_the_documented_sample() {
    // Viber REST Bot API, "Receive message from user".
    let body = br#"{"event":"message","timestamp":1457764197627,"message_token":4912661846655238145,"sender":{"id":"01234567890A=","name":"John McClane","avatar":"http://avatar.example.com","country":"UK","language":"en","api_version":1},"message":{"type":"text","text":"a message to the service","media":"http://example.com","location":{"lat":50.76891,"lon":6.11499},"tracking_data":"tracking data"}}"#;
    let Item::Message(m) = &parse(body).unwrap()[0] else {
        panic!()
    };
    assert_eq!(m.external_message_id, "4912661846655238145");
    assert_eq!(
        (m.sender_id.as_str(), m.sender_name.as_str()),
        ("01234567890A=", "John McClane")
    );
    assert!(
        matches!(&m.content.kind, Some(Content::Text(t)) if t.body == "a message to the service")
    );
    assert_eq!(m.sent_at.unwrap().timestamp_millis(), 1457764197627);
    let picture = br#"{"event":"message","timestamp":1,"message_token":5,"sender":{"id":"u"},"message":{"type":"picture","text":"look","media":"https://dl-media.viber.com/a.jpg"}}"#;
    assert!(
        matches!(&parse(picture).unwrap()[0], Item::Message(m) if matches!(&m.content.kind, Some(Content::Media(x)) if x.caption == "look"))
    );
}

#[test]
fn delivered_seen_and_failed_become_receipts() {
    let delivered = br#"{"event":"delivered","timestamp":1457764197627,"message_token":491266184665523145,"user_id":"01234567890A="}"#;
    assert!(
        matches!(&parse(delivered).unwrap()[0], Item::Receipt(r) if r.status == DeliveryStatus::Delivered && r.target == ReceiptTarget::Ids(vec!["491266184665523145".into()]))
    );
    let seen = br#"{"event":"seen","timestamp":1,"message_token":7,"user_id":"u"}"#;
    assert!(
        matches!(&parse(seen).unwrap()[0], Item::Receipt(r) if r.status == DeliveryStatus::Read)
    );
    let failed = br#"{"event":"failed","timestamp":1,"message_token":8,"user_id":"u","desc":"failure description"}"#;
    assert!(
        matches!(&parse(failed).unwrap()[0], Item::Receipt(r) if r.reason.contains("failure description"))
    );
    assert!(matches!(
        &parse(br#"{"event":"webhook","timestamp":1,"message_token":9}"#).unwrap()[0],
        Item::Ignored(_)
    ));
    assert!(parse(br#"{"event":"message","timestamp":1}"#).is_err());
}

#[test]
fn matches_the_viber_sdks_signature_test() {
    // viber-bot-python tests/api/test_api.py, test_verify_signature.
    let body =
        br#"{"event":"webhook","timestamp":4977069964384421269,"message_token":1478683725125}"#;
    let mut headers = HeaderMap::new();
    headers.insert(
        SIGNATURE_HEADER,
        HeaderValue::from_static(
            "d21b343448c8aee33b8e93768ef6ceb64a6ba6163099973a2b8bd028fea510ef",
        ),
    );
    let hook = Webhook {
        headers: &headers,
        body,
        url: "",
    };
    assert!(verify(
        "44dafb7e0f40021e-61a47a1e6778d187-f2c5a676a07050b3",
        &hook
    ));
    assert!(!verify(
        "44dafb7e0f40021e-61a47a1e6778d187-f2c5a676a07050b4",
        &hook
    ));
}

#[test]
fn sends_in_the_channels_name_and_maps_viber_statuses() {
    // REST Bot API, "Send message": response and error codes.
    let content = MessageContent {
        kind: Some(Content::Text(Text {
            body: "Hello world!".into(),
        })),
        buttons: vec![ism_proto::types::v1::Button {
            title: "Yes".into(),
            payload: "YES".into(),
            url: String::new(),
        }],
        ..Default::default()
    };
    let out = Outgoing {
        channel_name: "A very long shop name that Viber would cut",
        ..Outgoing::sample("01234567890A=", &content)
    };
    let body = message(&out, None).unwrap();
    assert_eq!(body["receiver"], "01234567890A=");
    assert_eq!(body["type"], "text");
    assert_eq!(body["sender"]["name"].as_str().unwrap().chars().count(), 28);
    assert_eq!(body["keyboard"]["Buttons"][0]["ActionBody"], "YES");
    assert_eq!(
        answer(&Reply::sample(
            200,
            r#"{"status":0,"status_message":"ok","message_token":5741311803571721087,"chat_hostname":"SN-CHAT-05_"}"#
        )),
        Ok("5741311803571721087".into())
    );
    assert!(matches!(
        answer(&Reply::sample(
            200,
            r#"{"status":6,"status_message":"receiverNotSubscribed"}"#
        )),
        Err(Failure::Recipient(_))
    ));
    assert!(matches!(
        answer(&Reply::sample(
            200,
            r#"{"status":2,"status_message":"invalidAuthToken"}"#
        )),
        Err(Failure::Auth(_))
    ));
    assert!(matches!(
        answer(&Reply::sample(
            200,
            r#"{"status":12,"status_message":"tooManyRequests"}"#
        )),
        Err(Failure::RateLimited { .. })
    ));
    assert!(matches!(
        answer(&Reply::sample(502, "bad gateway")),
        Err(Failure::Transient(_))
    ));
    assert!(
        matches!(
            answer(&Reply::sample(
                500,
                r#"{"status":500,"status_message":"internal error"}"#
            )),
            Err(Failure::Transient(_))
        ),
        "an HTTP 500 is retried whatever status its JSON body holds"
    );
}

#[test]
fn videos_and_files_go_natively_with_their_size_and_name() {
    use crate::providers::outbound::MediaFile;
    let media = |kind: MediaType, url: &str| MessageContent {
        kind: Some(Content::Media(Media {
            r#type: kind as i32,
            url: url.into(),
            caption: "see this".into(),
        })),
        ..Default::default()
    };
    let video = media(MediaType::Video, "https://shop.example/v/unboxing.mp4");
    let file = MediaFile {
        size: 10_000,
        name: "unboxing.mp4".into(),
    };
    assert_eq!(
        needs_size(&video),
        Some("https://shop.example/v/unboxing.mp4")
    );
    // REST Bot API, "Video message" and "File message".
    let body = message(&Outgoing::sample("01234567890A=", &video), Some(&file)).unwrap();
    assert_eq!(body["type"], "video");
    assert_eq!(body["media"], "https://shop.example/v/unboxing.mp4");
    assert_eq!(body["size"], 10_000);
    let document = media(MediaType::File, "https://shop.example/d/invoice%201.pdf");
    let named = MediaFile {
        size: 20_000,
        name: "invoice 1.pdf".into(),
    };
    let body = message(&Outgoing::sample("01234567890A=", &document), Some(&named)).unwrap();
    assert_eq!(
        (
            body["type"].as_str(),
            body["size"].as_u64(),
            body["file_name"].as_str()
        ),
        (Some("file"), Some(20_000), Some("invoice 1.pdf"))
    );
    let audio = media(MediaType::Audio, "https://shop.example/a.mp3");
    let body = message(&Outgoing::sample("1", &audio), Some(&file)).unwrap();
    assert_eq!(body["type"], "file", "Viber has no audio message");
    let image = media(MediaType::Image, "https://shop.example/a.jpg");
    assert_eq!(needs_size(&image), None);
    assert_eq!(
        message(&Outgoing::sample("1", &image), None).unwrap()["type"],
        "picture"
    );

    let huge = MediaFile {
        size: 27 * 1024 * 1024,
        name: "long.mp4".into(),
    };
    let refused = message(&Outgoing::sample("1", &video), Some(&huge)).unwrap_err();
    assert!(
        matches!(&refused, Failure::Refused(r) if r.contains("26 MB")),
        "{refused:?}"
    );
    assert!(matches!(
        message(&Outgoing::sample("1", &video), None),
        Err(Failure::Refused(_))
    ));
}
