use axum::http::{HeaderMap, HeaderValue};

use super::*;
use crate::providers::outbound::{Failure, Outgoing, Reply};

fn only(items: Vec<Item>) -> Item {
    assert_eq!(items.len(), 1, "{items:?}");
    items.into_iter().next().unwrap()
}

fn message(item: Item) -> InboundMessage {
    match item {
        Item::Message(m) => m,
        other => panic!("not a message: {other:?}"),
    }
}

#[test]
fn the_signature_is_hmac_sha256_of_the_raw_body_under_the_app_secret() {
    // RFC 4231 test case 2 as an X-Hub-Signature-256 header: key "Jefe".
    let body = b"what do ya want for nothing?";
    let mut headers = HeaderMap::new();
    headers.insert(
        SIGNATURE_HEADER,
        HeaderValue::from_static(
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        ),
    );
    let webhook = |body: &'static [u8], headers: &'static HeaderMap| Webhook {
        headers,
        body,
        url: "",
    };
    let headers: &'static HeaderMap = Box::leak(Box::new(headers));
    assert!(verify("Jefe", &webhook(body, headers)));
    assert!(!verify("jefe", &webhook(body, headers)));
    assert!(!verify(
        "Jefe",
        &webhook(b"what do ya want for nothing?!", headers)
    ));
    assert!(!verify(
        "Jefe",
        &webhook(body, Box::leak(Box::new(HeaderMap::new())))
    ));
}

#[test]
fn matches_the_published_x_hub_signature_256_example() {
    // The X-Hub-Signature-256 scheme's published example (GitHub's webhook docs,
    // "Validating webhook deliveries"): Meta signs the same way with the app secret.
    let mut headers = HeaderMap::new();
    headers.insert(
        SIGNATURE_HEADER,
        HeaderValue::from_static(
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        ),
    );
    let hook = |body: &'static [u8]| Webhook {
        headers: &headers,
        body,
        url: "",
    };
    assert!(verify(
        "It's a Secret to Everybody",
        &hook(b"Hello, World!")
    ));
    assert!(!verify(
        "It's a Secret to Everybody",
        &hook(b"Hello, World?")
    ));
}

#[test]
fn the_handshake_echoes_the_challenge_only_for_the_right_token() {
    let q = "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=meatyhamhock";
    assert!(matches!(handshake("meatyhamhock", q), Handshake::Accept(c) if c == "1158201444"));
    assert!(matches!(handshake("other", q), Handshake::Forbidden));
    assert!(matches!(
        handshake("meatyhamhock", "hub.mode=subscribe"),
        Handshake::BadRequest(_)
    ));
}

#[test]
fn a_messenger_text_message_from_the_documented_sample() {
    // Meta's Messenger Platform docs, "messages" webhook event.
    let body = br#"{"object":"page","entry":[{"id":"PAGE-ID","time":1458692752478,"messaging":[{"sender":{"id":"PSID"},"recipient":{"id":"PAGE-ID"},"timestamp":1458692752478,"message":{"mid":"mid.1457764197618:41d102a3e1ae206a38","text":"hello, world!","reply_to":{"mid":"m_earlier"}}}]}]}"#;
    let m = message(only(parse(body, Object::Page).unwrap()));
    assert_eq!(
        m.external_message_id,
        "mid.1457764197618:41d102a3e1ae206a38"
    );
    assert_eq!(m.sender_id, "PSID");
    assert_eq!(m.content.reply_to_external_id, "m_earlier");
    assert!(matches!(m.content.kind, Some(Content::Text(ref t)) if t.body == "hello, world!"));
    assert_eq!(m.sent_at.unwrap().timestamp_millis(), 1458692752478);
}

#[test]
fn attachments_quick_replies_postbacks_and_reactions_are_normalized() {
    let body = br#"{"object":"page","entry":[{"id":"P","time":1,"messaging":[
      {"sender":{"id":"U"},"recipient":{"id":"P"},"timestamp":2,"message":{"mid":"m1","attachments":[{"type":"image","payload":{"url":"https://scontent.xx.fbcdn.net/a.jpg"}},{"type":"file","payload":{"url":"https://cdn.fb/b.pdf"}}]}},
      {"sender":{"id":"U"},"recipient":{"id":"P"},"timestamp":3,"message":{"mid":"m2","text":"Red","quick_reply":{"payload":"DEVELOPER_DEFINED_PAYLOAD"}}},
      {"sender":{"id":"U"},"recipient":{"id":"P"},"timestamp":4,"postback":{"mid":"m3","title":"Get Started","payload":"START"}},
      {"sender":{"id":"U"},"recipient":{"id":"P"},"timestamp":5,"reaction":{"reaction":"love","emoji":"\u2764\uFE0F","action":"react","mid":"m_ours"}},
      {"sender":{"id":"U"},"recipient":{"id":"P"},"timestamp":6,"message":{"mid":"m4","attachments":[{"type":"location","payload":{"coordinates":{"lat":52.5,"long":13.4},"title":"Berlin"}}]}}
    ]}]}"#;
    let items: Vec<InboundMessage> = parse(body, Object::Page)
        .unwrap()
        .into_iter()
        .map(message)
        .collect();
    assert_eq!(items.len(), 6);
    assert_eq!(items[0].external_message_id, "m1");
    assert_eq!(
        items[1].external_message_id, "m1#1",
        "each attachment has its own id"
    );
    assert!(
        matches!(&items[0].content.kind, Some(Content::Media(m)) if m.r#type == MediaType::Image as i32)
    );
    assert!(
        matches!(&items[1].content.kind, Some(Content::Media(m)) if m.r#type == MediaType::File as i32)
    );
    assert!(
        matches!(&items[2].content.kind, Some(Content::ButtonReply(b)) if b.payload == "DEVELOPER_DEFINED_PAYLOAD" && b.title == "Red")
    );
    assert!(
        matches!(&items[3].content.kind, Some(Content::ButtonReply(b)) if b.payload == "START")
    );
    assert!(
        matches!(&items[4].content.kind, Some(Content::Reaction(r)) if r.emoji == "\u{2764}\u{FE0F}" && !r.removed)
    );
    assert_eq!(items[4].content.reply_to_external_id, "m_ours");
    assert!(
        matches!(&items[5].content.kind, Some(Content::Location(l)) if l.latitude == 52.5 && l.name == "Berlin")
    );
}

#[test]
fn receipts_and_echoes_are_told_apart_from_messages() {
    let body = br#"{"object":"page","entry":[{"id":"P","time":1,"messaging":[
      {"sender":{"id":"U"},"recipient":{"id":"P"},"delivery":{"mids":["mid.1458668856218:ed81099e15d3f4f233"],"watermark":1458668856253}},
      {"sender":{"id":"U"},"recipient":{"id":"P"},"timestamp":1458668856463,"read":{"watermark":1458668856253}},
      {"sender":{"id":"P"},"recipient":{"id":"U"},"timestamp":7,"message":{"is_echo":true,"app_id":1517776481860111,"mid":"m_echo","text":"sent from the Page inbox"}}
    ]}]}"#;
    let items = parse(body, Object::Page).unwrap();
    assert_eq!(
        items[0],
        Item::Receipt(Receipt {
            failure: ism_proto::types::v1::DeliveryFailure::Unspecified,
            target: ReceiptTarget::Ids(vec!["mid.1458668856218:ed81099e15d3f4f233".into()]),
            status: DeliveryStatus::Delivered,
            reason: String::new(),
        })
    );
    assert!(
        matches!(&items[1], Item::Receipt(Receipt { target: ReceiptTarget::Watermark { recipient, .. }, status: DeliveryStatus::Read, .. }) if recipient == "U")
    );
    assert!(
        matches!(&items[2], Item::Echo(m) if m.sender_id == "U" && m.external_message_id == "m_echo")
    );
}

#[test]
fn instagram_webhooks_share_the_shape_and_other_objects_are_refused() {
    let body = br#"{"object":"instagram","entry":[{"id":"IG","time":1,"messaging":[{"sender":{"id":"IGSID"},"recipient":{"id":"IG"},"timestamp":1,"message":{"mid":"aWdfZ","text":"hi"}},{"sender":{"id":"IGSID"},"recipient":{"id":"IG"},"timestamp":2,"read":{"mid":"aWdfOURS"}}]}]}"#;
    let items = parse(body, Object::Instagram).unwrap();
    assert!(matches!(&items[0], Item::Message(m) if m.sender_id == "IGSID"));
    assert!(
        matches!(&items[1], Item::Receipt(r) if r.target == ReceiptTarget::Ids(vec!["aWdfOURS".into()]))
    );
    let err = parse(body, Object::Page).unwrap_err();
    assert!(err.contains("instagram"), "{err}");
    assert!(parse(br#"{"entry":[]}"#, Object::Page).is_err());
    assert!(
        parse(
            br#"{"object":"page","entry":[{"id":"P","changes":[{"field":"feed"}]}]}"#,
            Object::Page
        )
        .unwrap()
        .iter()
        .all(|i| matches!(i, Item::Ignored(_)))
    );
}

#[test]
fn text_with_quick_replies_and_buttons_with_links_take_their_send_api_shapes() {
    let button = |title: &str, payload: &str, url: &str| ism_proto::types::v1::Button {
        title: title.into(),
        payload: payload.into(),
        url: url.into(),
    };
    let mut content = MessageContent {
        kind: Some(Content::Text(Text {
            body: "Pick a color".into(),
        })),
        buttons: vec![button("Red", "RED", "")],
        ..Default::default()
    };
    let body = send::message(&Outgoing::sample("PSID", &content), Object::Page).unwrap();
    assert_eq!(body["recipient"]["id"], "PSID");
    assert_eq!(body["messaging_type"], "RESPONSE");
    assert_eq!(body["message"]["quick_replies"][0]["payload"], "RED");
    content
        .buttons
        .push(button("Shop", "", "https://shop.example"));
    let body = send::message(&Outgoing::sample("PSID", &content), Object::Page).unwrap();
    assert_eq!(
        body["message"]["attachment"]["payload"]["template_type"],
        "button"
    );
    assert_eq!(
        body["message"]["attachment"]["payload"]["buttons"][1]["type"],
        "web_url"
    );
    let location = MessageContent {
        kind: Some(Content::Location(Location::default())),
        ..Default::default()
    };
    assert!(matches!(
        send::message(&Outgoing::sample("PSID", &location), Object::Page),
        Err(Failure::Refused(_))
    ));
}

#[test]
fn a_reply_names_its_message_on_messenger_and_goes_without_on_instagram() {
    let reply = MessageContent {
        kind: Some(Content::Text(Text {
            body: "Yes, in blue too".into(),
        })),
        reply_to_external_id: "m_earlier".into(),
        ..Default::default()
    };
    let body = send::message(&Outgoing::sample("PSID", &reply), Object::Page).unwrap();
    assert_eq!(body["reply_to"]["mid"], "m_earlier");
    assert_eq!(body["message"]["text"], "Yes, in blue too");
    let body = send::message(&Outgoing::sample("IGSID", &reply), Object::Instagram).unwrap();
    assert!(body.get("reply_to").is_none(), "{body}");
    assert_eq!(body["message"]["text"], "Yes, in blue too");
}

#[test]
fn send_api_errors_map_to_what_they_mean() {
    // Messenger Platform error codes reference.
    assert_eq!(
        answer(&Reply::sample(200, r#"{"recipient_id":"1254477777772919","message_id":"m_AG5Hz2Uq7tuwNEhXfYYKj8mJEM_QPpz5jdCK48PnKAjSdjfipqxqMvK8ma6AC8fplwlqLP_5cgXIbu7I3rBN0P"}"#)),
        Ok("m_AG5Hz2Uq7tuwNEhXfYYKj8mJEM_QPpz5jdCK48PnKAjSdjfipqxqMvK8ma6AC8fplwlqLP_5cgXIbu7I3rBN0P".into())
    );
    let window = answer(&Reply::sample(
        400,
        r#"{"error":{"message":"(#10) This message is sent outside of allowed window.","type":"OAuthException","code":10,"error_subcode":2018278,"fbtrace_id":"A"}}"#,
    ));
    assert!(
        matches!(window, Err(Failure::Window(ref r)) if r.contains("24-hour")),
        "{window:?}"
    );
    assert!(matches!(
        answer(&Reply::sample(
            400,
            r#"{"error":{"message":"(#551) This person isn't available right now.","code":551}}"#
        )),
        Err(Failure::Recipient(_))
    ));
    assert!(matches!(
        answer(&Reply::sample(
            400,
            r#"{"error":{"message":"(#613) Calls to this api have exceeded the rate limit.","code":613}}"#
        )),
        Err(Failure::RateLimited { .. })
    ));
    assert!(matches!(
        answer(&Reply::sample(
            401,
            r#"{"error":{"message":"Error validating access token","type":"OAuthException","code":190}}"#
        )),
        Err(Failure::Auth(_))
    ));
    assert!(matches!(
        answer(&Reply::sample(
            500,
            r#"{"error":{"message":"An unexpected error has occurred.","code":2}}"#
        )),
        Err(Failure::Transient(_))
    ));
}
