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
    let body = message(&out).unwrap();
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
}
