use axum::http::{HeaderMap, HeaderValue};

use super::*;

fn params(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn matches_twilios_published_request_validation_example() {
    // Twilio's request-validation docs and twilio-python tests/unit/test_request_validator.py.
    let url = "https://mycompany.com/myapp.php?foo=1&bar=2";
    let form = params(&[
        ("CallSid", "CA1234567890ABCDE"),
        ("Caller", "+14158675309"),
        ("Digits", "1234"),
        ("From", "+14158675309"),
        ("To", "+18005551212"),
    ]);
    assert_eq!(sign("12345", url, &form), "RSOYDt4T1cUTdK1PDd93/VVr8B8=");
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form.iter().rev())
        .finish();
    let mut headers = HeaderMap::new();
    headers.insert(
        SIGNATURE_HEADER,
        HeaderValue::from_static("RSOYDt4T1cUTdK1PDd93/VVr8B8="),
    );
    let hook = |url| Webhook {
        headers: &headers,
        body: body.as_bytes(),
        url,
    };
    assert!(
        verify("12345", &hook(url)),
        "order of the parameters does not matter"
    );
    assert!(!verify("12346", &hook(url)));
    assert!(!verify(
        "12345",
        &hook("https://mycompany.com/myapp.php?foo=1&bar=3")
    ));
}

#[test]
fn an_sms_with_media_becomes_one_message_per_attachment() {
    let body = b"ToCountry=US&MediaContentType0=image%2Fjpeg&NumMedia=2&MediaUrl0=https%3A%2F%2Fapi.twilio.com%2F2010-04-01%2FAccounts%2FAC1%2FMessages%2FMM1%2FMedia%2FME1&MediaContentType1=application%2Fpdf&MediaUrl1=https%3A%2F%2Fapi.twilio.com%2Fm2&SmsMessageSid=SM1&SmsSid=SM1&SmsStatus=received&Body=Look&To=%2B15017250604&MessageSid=SM1&AccountSid=AC1&From=%2B15558675310&ApiVersion=2010-04-01";
    let items = parse(body).unwrap();
    assert_eq!(items.len(), 2);
    let Item::Message(first) = &items[0] else {
        panic!()
    };
    assert_eq!(
        (first.external_message_id.as_str(), first.sender_id.as_str()),
        ("SM1", "+15558675310")
    );
    assert!(
        matches!(&first.content.kind, Some(Content::Media(m)) if m.r#type == MediaType::Image as i32 && m.caption == "Look" && m.url.ends_with("/ME1"))
    );
    assert!(matches!(&items[1], Item::Message(m) if m.external_message_id == "SM1#1"));
}

#[test]
fn whatsapp_texts_buttons_and_locations() {
    let text = b"SmsStatus=received&Body=Hello&MessageSid=SM2&From=whatsapp%3A%2B14155238886&To=whatsapp%3A%2B15005550006&ProfileName=Ada&NumMedia=0";
    let Item::Message(m) = &parse(text).unwrap()[0] else {
        panic!()
    };
    assert_eq!(
        (m.sender_id.as_str(), m.sender_name.as_str()),
        ("+14155238886", "Ada")
    );
    assert!(matches!(&m.content.kind, Some(Content::Text(t)) if t.body == "Hello"));
    let button = b"SmsStatus=received&Body=Yes&ButtonText=Yes&ButtonPayload=CONFIRM&MessageSid=SM3&From=whatsapp%3A%2B1&NumMedia=0";
    assert!(
        matches!(&parse(button).unwrap()[0], Item::Message(m) if matches!(&m.content.kind, Some(Content::ButtonReply(b)) if b.payload == "CONFIRM"))
    );
    let location = b"SmsStatus=received&Latitude=37.7&Longitude=-122.4&Label=Office&MessageSid=SM4&From=whatsapp%3A%2B1&NumMedia=0";
    assert!(
        matches!(&parse(location).unwrap()[0], Item::Message(m) if matches!(&m.content.kind, Some(Content::Location(l)) if l.name == "Office"))
    );
}

#[test]
fn status_callbacks_become_receipts() {
    let delivered = b"SmsSid=SM5&SmsStatus=delivered&MessageStatus=delivered&To=%2B1&MessageSid=SM5&AccountSid=AC1&From=%2B2&ApiVersion=2010-04-01";
    assert!(
        matches!(&parse(delivered).unwrap()[0], Item::Receipt(r) if r.status == DeliveryStatus::Delivered && r.target == ReceiptTarget::Ids(vec!["SM5".into()]))
    );
    let failed = b"MessageStatus=undelivered&ErrorCode=30005&MessageSid=SM6&AccountSid=AC1";
    let Item::Receipt(r) = &parse(failed).unwrap()[0] else {
        panic!()
    };
    assert_eq!(r.status, DeliveryStatus::Failed);
    assert!(
        r.reason.contains("30005") && r.reason.contains("unknown recipient"),
        "{}",
        r.reason
    );
    assert!(matches!(
        &parse(b"MessageStatus=queued&MessageSid=SM7").unwrap()[0],
        Item::Ignored(_)
    ));
    assert!(parse(b"hello=world").unwrap_err().contains("MessageSid"));
}

#[test]
fn whatsapp_addresses_templates_and_status_callbacks_go_in_the_form() {
    use crate::providers::outbound::Outgoing;
    let template = MessageContent {
        kind: Some(Content::Template(ism_proto::types::v1::Template {
            name: "HXb5b62575e6e4ff6129ad7c8efe1f983e".into(),
            language: "en".into(),
            variables: vec!["12/1".into(), "3pm".into()],
        })),
        ..Default::default()
    };
    let out = Outgoing {
        status_callback: "https://gw.example/webhooks/twilio_whatsapp/c",
        ..Outgoing::sample("+15005550006", &template)
    };
    let form = message(true, "+14155238886", &out).unwrap();
    let get = |k: &str| {
        form.iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("To"), Some("whatsapp:+15005550006"));
    assert_eq!(get("From"), Some("whatsapp:+14155238886"));
    assert_eq!(
        get("ContentSid"),
        Some("HXb5b62575e6e4ff6129ad7c8efe1f983e")
    );
    assert_eq!(get("ContentVariables"), Some(r#"{"1":"12/1","2":"3pm"}"#));
    assert_eq!(
        get("StatusCallback"),
        Some("https://gw.example/webhooks/twilio_whatsapp/c")
    );
    let text = MessageContent {
        kind: Some(Content::Text(Text { body: "hi".into() })),
        ..Default::default()
    };
    let form = message(
        false,
        "MG9752274e9e519418a7406176694466fa",
        &Outgoing::sample("+1", &text),
    )
    .unwrap();
    assert!(form.contains(&(
        "MessagingServiceSid",
        "MG9752274e9e519418a7406176694466fa".into()
    )));
}

#[test]
fn twilio_errors_map_to_what_they_mean() {
    use crate::providers::outbound::{Failure, Reply};
    // The Messages resource's response and Twilio's error dictionary.
    assert_eq!(
        answer(&Reply::sample(
            201,
            r#"{"sid":"SM1f0e8ae6ade43cb3c0ce4525424e404f","status":"queued","to":"+15558675310"}"#
        )),
        Ok("SM1f0e8ae6ade43cb3c0ce4525424e404f".into())
    );
    let error = |status: u16, code: i64| {
        answer(&Reply::sample(
            status,
            &format!(
                r#"{{"code":{code},"message":"m","more_info":"https://www.twilio.com/docs/errors/{code}","status":{status}}}"#
            ),
        ))
    };
    assert!(matches!(error(400, 21211), Err(Failure::Recipient(_))));
    assert!(matches!(error(400, 21610), Err(Failure::Recipient(_))));
    assert!(matches!(error(400, 63016), Err(Failure::Window(r)) if r.contains("template")));
    assert!(matches!(
        error(429, 20429),
        Err(Failure::RateLimited { .. })
    ));
    assert!(matches!(error(401, 20003), Err(Failure::Auth(_))));
    assert!(matches!(error(503, 20500), Err(Failure::Transient(_))));
}
