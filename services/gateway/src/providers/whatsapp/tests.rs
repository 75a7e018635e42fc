use super::*;

fn wrap(value: &str) -> Vec<u8> {
    format!(r#"{{"object":"whatsapp_business_account","entry":[{{"id":"WHATSAPP_BUSINESS_ACCOUNT_ID","changes":[{{"value":{value},"field":"messages"}}]}}]}}"#).into_bytes()
}

fn message(item: &Item) -> &InboundMessage {
    match item {
        Item::Message(m) => m,
        other => panic!("not a message: {other:?}"),
    }
}

#[test]
fn a_text_message_from_the_documented_sample() {
    // Meta's WhatsApp Cloud API docs, "Webhooks payload examples: text messages".
    let body = wrap(
        r#"{"messaging_product":"whatsapp","metadata":{"display_phone_number":"16505551111","phone_number_id":"123456123"},"contacts":[{"profile":{"name":"Kerry Fisher"},"wa_id":"16315551181"}],"messages":[{"from":"16315551181","id":"wamid.ABGGFlA5Fpa","timestamp":"1504902988","type":"text","text":{"body":"this is a text message"}}]}"#,
    );
    let items = parse(&body).unwrap();
    let m = message(&items[0]);
    assert_eq!(
        (m.sender_id.as_str(), m.sender_name.as_str()),
        ("16315551181", "Kerry Fisher")
    );
    assert_eq!(m.external_message_id, "wamid.ABGGFlA5Fpa");
    assert_eq!(m.sent_at.unwrap().timestamp(), 1504902988);
    assert!(
        matches!(&m.content.kind, Some(Content::Text(t)) if t.body == "this is a text message")
    );
}

#[test]
fn media_location_contacts_interactive_and_button_replies() {
    let body = wrap(
        r#"{"messages":[
      {"from":"1","id":"w1","timestamp":"1","type":"image","image":{"caption":"CAPTION","mime_type":"image/jpeg","sha256":"IMAGE_HASH","id":"ID"}},
      {"from":"1","id":"w2","timestamp":"1","type":"location","location":{"latitude":37.48,"longitude":-122.15,"name":"Meta HQ","address":"1 Hacker Way"}},
      {"from":"1","id":"w3","timestamp":"1","type":"contacts","contacts":[{"name":{"formatted_name":"John Smith","first_name":"John"},"phones":[{"phone":"+1 (940) 555-1234","type":"HOME","wa_id":"19405551234"}],"emails":[{"email":"john@example.com"}]}]},
      {"from":"1","id":"w4","timestamp":"1","type":"interactive","interactive":{"type":"button_reply","button_reply":{"id":"unique-button-identifier-here","title":"button-text"}},"context":{"from":"16505553333","id":"wamid.gBGGFmkaNFKJ"}},
      {"from":"1","id":"w5","timestamp":"1","type":"interactive","interactive":{"type":"list_reply","list_reply":{"id":"list_reply_id","title":"list_reply_title","description":"d"}}},
      {"from":"1","id":"w6","timestamp":"1","type":"button","button":{"text":"No","payload":"No-Button-Payload"}},
      {"from":"1","id":"w7","timestamp":"1","type":"reaction","reaction":{"message_id":"wamid.ours","emoji":"\uD83D\uDE00"}},
      {"from":"1","id":"w8","timestamp":"1","type":"unsupported","errors":[{"code":131051}]}
    ]}"#,
    );
    let items = parse(&body).unwrap();
    assert!(
        matches!(&message(&items[0]).content.kind, Some(Content::Media(m)) if m.url == "whatsapp:media/ID" && m.caption == "CAPTION")
    );
    assert!(
        matches!(&message(&items[1]).content.kind, Some(Content::Location(l)) if l.name == "Meta HQ" && l.longitude == -122.15)
    );
    assert!(
        matches!(&message(&items[2]).content.kind, Some(Content::Contact(c)) if c.name == "John Smith" && c.phones == ["+1 (940) 555-1234"] && c.emails == ["john@example.com"])
    );
    let reply = message(&items[3]);
    assert!(
        matches!(&reply.content.kind, Some(Content::ButtonReply(b)) if b.payload == "unique-button-identifier-here")
    );
    assert_eq!(reply.content.reply_to_external_id, "wamid.gBGGFmkaNFKJ");
    assert!(
        matches!(&message(&items[4]).content.kind, Some(Content::ButtonReply(b)) if b.payload == "list_reply_id")
    );
    assert!(
        matches!(&message(&items[5]).content.kind, Some(Content::ButtonReply(b)) if b.payload == "No-Button-Payload" && b.title == "No")
    );
    assert_eq!(
        message(&items[6]).content.reply_to_external_id,
        "wamid.ours"
    );
    assert!(matches!(&items[7], Item::Ignored(_)));
}

#[test]
fn statuses_become_receipts_with_a_reason_for_failures() {
    let body = wrap(
        r#"{"statuses":[
      {"id":"wamid.1","status":"delivered","timestamp":"1","recipient_id":"1"},
      {"id":"wamid.2","status":"read","timestamp":"1","recipient_id":"1"},
      {"id":"wamid.3","status":"failed","timestamp":"1","recipient_id":"1","errors":[{"code":131047,"title":"Re-engagement message","message":"Re-engagement message","error_data":{"details":"Message failed to send because more than 24 hours have passed since the customer last replied to this number."}}]},
      {"id":"wamid.4","status":"failed","timestamp":"1","recipient_id":"1","errors":[{"code":131049,"title":"This message was not delivered to maintain healthy ecosystem engagement.","message":"healthy ecosystem engagement"}]},
      {"id":"wamid.5","status":"failed","timestamp":"1","recipient_id":"1","errors":[{"code":132001,"title":"Template name does not exist in the translation","message":"Template does not exist"}]}
    ]}"#,
    );
    let items = parse(&body).unwrap();
    assert!(
        matches!(&items[0], Item::Receipt(r) if r.status == DeliveryStatus::Delivered && r.target == ReceiptTarget::Ids(vec!["wamid.1".into()]))
    );
    assert!(matches!(&items[1], Item::Receipt(r) if r.status == DeliveryStatus::Read));
    let Item::Receipt(failed) = &items[2] else {
        panic!()
    };
    assert_eq!(failed.status, DeliveryStatus::Failed);
    assert!(
        failed.reason.contains("131047") && failed.reason.contains("use a template"),
        "{}",
        failed.reason
    );
    // What each failure means for a sender deciding what to do next.
    let kinds: Vec<DeliveryFailure> = items[2..]
        .iter()
        .map(|item| match item {
            Item::Receipt(r) => r.failure,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            DeliveryFailure::Window,
            DeliveryFailure::Capped,
            DeliveryFailure::Content
        ]
    );
}

#[test]
fn other_shapes_are_refused_with_a_reason() {
    assert!(
        parse(br#"{"object":"page","entry":[]}"#)
            .unwrap_err()
            .contains("whatsapp_business_account")
    );
    assert!(parse(br#"{"hello":"world"}"#).is_err());
}

#[test]
fn templates_media_and_replies_take_the_cloud_api_shapes() {
    use crate::providers::outbound::Outgoing;
    let template = MessageContent {
        kind: Some(Content::Template(ism_proto::types::v1::Template {
            name: "order_update".into(),
            language: "en_US".into(),
            variables: vec!["Ada".into(), "#1234".into()],
        })),
        ..Default::default()
    };
    let body = send::message(&Outgoing::sample("16315551181", &template)).unwrap();
    assert_eq!(body["messaging_product"], "whatsapp");
    assert_eq!(body["to"], "16315551181");
    assert_eq!(body["type"], "template");
    assert_eq!(body["template"]["language"]["code"], "en_US");
    assert_eq!(
        body["template"]["components"][0]["parameters"][1]["text"],
        "#1234"
    );
    let image = MessageContent {
        kind: Some(Content::Media(Media {
            r#type: MediaType::Image as i32,
            url: "https://example.com/a.jpg".into(),
            caption: "look".into(),
        })),
        reply_to_external_id: "wamid.HBgLM".into(),
        ..Default::default()
    };
    let body = send::message(&Outgoing::sample("1", &image)).unwrap();
    assert_eq!(body["image"]["link"], "https://example.com/a.jpg");
    assert_eq!(body["context"]["message_id"], "wamid.HBgLM");
    let buttons = MessageContent {
        kind: Some(Content::Text(Text {
            body: "Confirm?".into(),
        })),
        buttons: vec![ism_proto::types::v1::Button {
            title: "Yes".into(),
            payload: "YES".into(),
            url: String::new(),
        }],
        ..Default::default()
    };
    let body = send::message(&Outgoing::sample("1", &buttons)).unwrap();
    assert_eq!(
        body["interactive"]["action"]["buttons"][0]["reply"]["id"],
        "YES"
    );
}

#[test]
fn cloud_api_errors_map_to_what_they_mean() {
    use crate::providers::outbound::{Failure, Reply};
    // Cloud API "Send messages" response and the error-codes reference.
    assert_eq!(
        answer(&Reply::sample(
            200,
            r#"{"messaging_product":"whatsapp","contacts":[{"input":"+16505551234","wa_id":"16505551234"}],"messages":[{"id":"wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3N0EyQUJDMjFEQ0ZCMDAA"}]}"#
        )),
        Ok("wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBI3N0EyQUJDMjFEQ0ZCMDAA".into())
    );
    let error = |code: i64| {
        answer(&Reply::sample(
            400,
            &format!(
                r#"{{"error":{{"message":"title","type":"OAuthException","code":{code},"error_data":{{"messaging_product":"whatsapp","details":"d"}},"fbtrace_id":"A"}}}}"#
            ),
        ))
    };
    assert!(matches!(error(131047), Err(Failure::Window(r)) if r.contains("use a template")));
    assert!(matches!(error(130429), Err(Failure::RateLimited { .. })));
    assert!(matches!(error(131056), Err(Failure::RateLimited { .. })));
    assert!(matches!(error(131026), Err(Failure::Recipient(_))));
    assert!(matches!(error(190), Err(Failure::Auth(_))));
    assert!(matches!(error(131000), Err(Failure::Transient(_))));
    assert!(matches!(error(132001), Err(Failure::Refused(r)) if r.contains("template")));
}
