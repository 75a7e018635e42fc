//! Every provider through the real binary: a signed webhook in the provider's own format
//! becomes a stored message; a reply leaves through a local stand-in of the provider's
//! send API; its status (and the provider's receipts) come back to the conversation.
//! Provider errors end as statuses a person understands.
use std::time::Duration;

use ism_e2e::oversize::declared_length_status;
use ism_e2e::{Api, FakeProvider, Platform, Receiver, credentials, eventually, sign};
use ism_proto::conversations::v1::{Conversation, Message, SendMessageRequest};
use ism_proto::gateway::v1 as gw;
use ism_proto::gateway::v1::channel_credentials::Kind as Given;
use ism_proto::types::v1::{
    ChannelType, DeliveryStatus, Media, MediaType, MessageContent, Template, Text,
    message_content::Kind,
};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(30);

/// A platform whose gateway knows its public URL (Twilio signs it), and a client acting
/// as its tenant's owner.
struct World {
    platform: Platform,
    api: Api,
    provider: FakeProvider,
    http: reqwest::Client,
}

impl World {
    async fn start() -> Self {
        let receiver = Receiver::start().await;
        let provider = FakeProvider::start().await;
        let (platform, tenant) = Platform::start(&receiver.url).await;
        let api = platform.api(&tenant).await;
        Self {
            platform,
            api,
            provider,
            http: reqwest::Client::new(),
        }
    }

    async fn connect(&self, kind: ChannelType, credentials: Given) -> gw::Channel {
        self.api
            .connect_channel(gw::ConnectChannelRequest {
                r#type: kind as i32,
                name: format!("{kind:?} shop"),
                credentials: Some(gw::ChannelCredentials {
                    kind: Some(credentials),
                }),
                api_base_url: self.provider.url.clone(),
                ..Default::default()
            })
            .await
    }

    fn url(&self, channel: &gw::Channel) -> String {
        format!(
            "http://127.0.0.1:{}{}",
            self.platform.http_port, channel.webhook_path
        )
    }

    /// POSTs a webhook with `headers`; the status code and the body.
    async fn post(
        &self,
        channel: &gw::Channel,
        content_type: &str,
        headers: &[(&str, String)],
        body: &[u8],
    ) -> (u16, String) {
        let mut request = self
            .http
            .post(self.url(channel))
            .header("content-type", content_type)
            .body(body.to_vec());
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.unwrap();
        (
            response.status().as_u16(),
            response.text().await.unwrap_or_default(),
        )
    }

    /// Sends `webhook` to the channel: the status code and the body.
    async fn send_webhook(&self, channel: &gw::Channel, webhook: &Webhook) -> (u16, String) {
        let Webhook {
            content_type,
            headers,
            body,
        } = webhook;
        self.post(channel, content_type, headers, body).await
    }

    /// Sends `webhook`, which must be accepted (200).
    async fn deliver(&self, channel: &gw::Channel, webhook: &Webhook) {
        let (status, answer) = self.send_webhook(channel, webhook).await;
        assert_eq!(status, 200, "{answer}");
    }

    /// Delivers a Contact's first message: the conversation it opens.
    async fn chat(&self, channel: &gw::Channel, webhook: &Webhook) -> Conversation {
        self.deliver(channel, webhook).await;
        self.conversation(channel).await
    }

    /// The conversation opened on `channel`, once it exists.
    async fn conversation(&self, channel: &gw::Channel) -> Conversation {
        self.api
            .wait_for_conversation(WAIT, |c| c.channel_id == channel.id)
            .await
    }

    async fn messages(&self, conversation: &Conversation) -> Vec<Message> {
        self.api.list_messages(&conversation.id).await
    }

    async fn send(&self, conversation: &Conversation, content: MessageContent) -> Message {
        self.api
            .send_message(SendMessageRequest {
                conversation_id: conversation.id.clone(),
                content: Some(content),
                client_message_id: uuid::Uuid::new_v4().to_string(),
                ..Default::default()
            })
            .await
    }

    /// The message once its status is `status`.
    async fn status(&self, message: &Message, status: DeliveryStatus) -> Message {
        let what = format!("{status:?} for {}", message.id);
        self.api
            .wait_for_message(&message.id, WAIT, &what, |m| m.status == status as i32)
            .await
    }
}

fn text(body: &str) -> MessageContent {
    MessageContent {
        kind: Some(Kind::Text(Text {
            body: body.to_owned(),
        })),
        ..Default::default()
    }
}

fn now_seconds() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn whatsapp_body(value: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA", "changes": [{"field": "messages", "value": value}]}]})).unwrap()
}

fn whatsapp_text(id: &str, from: &str, at: i64) -> Vec<u8> {
    whatsapp_body(json!({"messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000000", "phone_number_id": "106540352242922"},
        "contacts": [{"profile": {"name": "Kerry Fisher"}, "wa_id": from}],
        "messages": [{"from": from, "id": id, "timestamp": at.to_string(), "type": "text", "text": {"body": "hello"}}]}))
}

fn hub(body: &[u8]) -> Vec<(&'static str, String)> {
    vec![("x-hub-signature-256", credentials::meta_signature(body))]
}

/// A webhook as its provider sends it: content type, signature headers and body.
struct Webhook {
    content_type: &'static str,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

impl Webhook {
    /// JSON signed with the app secret, as Meta sends it (Messenger, Instagram, WhatsApp).
    fn meta(body: Vec<u8>) -> Self {
        Self {
            content_type: "application/json",
            headers: hub(&body),
            body,
        }
    }

    /// JSON carrying the secret the gateway gave Telegram's setWebhook.
    fn telegram(secret: String, body: Vec<u8>) -> Self {
        Self {
            content_type: "application/json",
            headers: vec![("x-telegram-bot-api-secret-token", secret)],
            body,
        }
    }

    /// A form signed with the auth token over the webhook's URL, as Twilio sends it.
    fn twilio(url: &str, form: &str) -> Self {
        Self {
            content_type: "application/x-www-form-urlencoded",
            headers: vec![(
                "x-twilio-signature",
                credentials::twilio_signature(url, form),
            )],
            body: form.as_bytes().to_vec(),
        }
    }

    /// JSON signed with the channel secret, as LINE sends it.
    fn line(body: Vec<u8>) -> Self {
        Self {
            content_type: "application/json",
            headers: vec![("x-line-signature", credentials::line_signature(&body))],
            body,
        }
    }

    /// JSON signed with the auth token, as Viber sends it.
    fn viber(body: Vec<u8>) -> Self {
        Self {
            content_type: "application/json",
            headers: vec![(
                "x-viber-content-signature",
                credentials::viber_signature(&body),
            )],
            body,
        }
    }
}

/// A Messenger text message from `sender` to the page 1234567890.
fn messenger_text(sender: &str, mid: &str, text: &str, now: i64) -> Webhook {
    Webhook::meta(serde_json::to_vec(&json!({"object": "page", "entry": [{"id": "1234567890", "time": now * 1000,
        "messaging": [{"sender": {"id": sender}, "recipient": {"id": "1234567890"}, "timestamp": now * 1000,
            "message": {"mid": mid, "text": text}}]}]})).unwrap())
}

/// An Instagram text message from `sender` to the account 17841400000000000.
fn instagram_text(sender: &str, mid: &str, text: &str, now: i64) -> Webhook {
    Webhook::meta(serde_json::to_vec(&json!({"object": "instagram", "entry": [{"id": "17841400000000000", "time": now * 1000,
        "messaging": [{"sender": {"id": sender}, "recipient": {"id": "17841400000000000"}, "timestamp": now * 1000,
            "message": {"mid": mid, "text": text}}]}]})).unwrap())
}

/// A LINE message event from the user `user`.
fn line_message(event_id: &str, user: &str, message: serde_json::Value, now: i64) -> Webhook {
    Webhook::line(serde_json::to_vec(&json!({"destination": "U0", "events": [{"type": "message", "mode": "active",
        "timestamp": now * 1000, "webhookEventId": event_id, "source": {"type": "user", "userId": user},
        "message": message}]})).unwrap())
}

/// A Viber text message from `sender`.
fn viber_text(token: u64, sender: (&str, &str), text: &str, now: i64) -> Webhook {
    let (id, name) = sender;
    let body = json!({"event": "message", "timestamp": now * 1000, "message_token": token,
        "sender": {"id": id, "name": name}, "message": {"type": "text", "text": text}});
    Webhook::viber(serde_json::to_vec(&body).unwrap())
}

/// The receipt `kind`'s provider sends once reply `id` reached `recipient`, to the
/// channel's webhook at `url`, and the status it moves the reply to; none for providers
/// that report no delivery to bots.
fn receipt(
    kind: ChannelType,
    url: &str,
    id: &str,
    recipient: &str,
    now: i64,
) -> Option<(Webhook, DeliveryStatus)> {
    let delivered = DeliveryStatus::Delivered;
    Some(match kind {
        ChannelType::Whatsapp => {
            let body = whatsapp_body(json!({"messaging_product": "whatsapp", "statuses": [
                {"id": id, "status": "delivered", "timestamp": now.to_string(), "recipient_id": recipient}]}));
            (Webhook::meta(body), delivered)
        }
        ChannelType::Messenger => {
            let body = serde_json::to_vec(
                &json!({"object": "page", "entry": [{"id": "1234567890", "time": 1,
                "messaging": [{"sender": {"id": recipient}, "recipient": {"id": "1234567890"},
                    "delivery": {"mids": [id], "watermark": now * 1000}}]}]}),
            )
            .unwrap();
            (Webhook::meta(body), delivered)
        }
        // Instagram reports reads (messaging_seen), not deliveries.
        ChannelType::Instagram => {
            let body = serde_json::to_vec(&json!({"object": "instagram", "entry": [{"id": "17841400000000000", "time": 1,
                "messaging": [{"sender": {"id": recipient}, "recipient": {"id": "17841400000000000"},
                    "timestamp": now * 1000, "read": {"mid": id}}]}]})).unwrap();
            (Webhook::meta(body), DeliveryStatus::Read)
        }
        ChannelType::TwilioSms | ChannelType::TwilioWhatsapp => {
            let (status, from) = if kind == ChannelType::TwilioWhatsapp {
                (DeliveryStatus::Read, "whatsapp:+15017122661")
            } else {
                (delivered, "+15017122661")
            };
            let word = if status == DeliveryStatus::Read {
                "read"
            } else {
                "delivered"
            };
            let body = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs([
                    ("SmsSid", id),
                    ("SmsStatus", word),
                    ("MessageStatus", word),
                    ("To", recipient),
                    ("MessageSid", id),
                    ("AccountSid", "ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"),
                    ("From", from),
                    ("ApiVersion", "2010-04-01"),
                ])
                .finish();
            (Webhook::twilio(url, &body), status)
        }
        ChannelType::Viber => {
            let body = format!(
                r#"{{"event":"delivered","timestamp":{},"message_token":{id},"user_id":"01234567890A="}}"#,
                now * 1000
            )
            .into_bytes();
            (Webhook::viber(body), delivered)
        }
        _ => return None,
    })
}

#[tokio::test]
async fn every_provider_round_trips_through_the_real_binary() {
    let world = World::start().await;
    let now = now_seconds();

    // Each case: the channel, its signed inbound webhook (sent twice: a provider retry),
    // the path the reply must reach, and the Contact it must be addressed to.
    struct Case {
        channel: gw::Channel,
        inbound: Webhook,
        send_path: &'static str,
        recipient: &'static str,
    }
    let messenger = world
        .connect(ChannelType::Messenger, credentials::meta("1234567890"))
        .await;
    let instagram = world
        .connect(
            ChannelType::Instagram,
            credentials::meta("17841400000000000"),
        )
        .await;
    let whatsapp = world
        .connect(
            ChannelType::Whatsapp,
            credentials::whatsapp("106540352242922"),
        )
        .await;
    let telegram = world
        .connect(ChannelType::Telegram, credentials::telegram())
        .await;
    let twilio = world
        .connect(ChannelType::TwilioSms, credentials::twilio())
        .await;
    let twilio_whatsapp = world
        .connect(ChannelType::TwilioWhatsapp, credentials::twilio())
        .await;
    let line = world.connect(ChannelType::Line, credentials::line()).await;
    let viber = world
        .connect(ChannelType::Viber, credentials::viber())
        .await;

    // Connecting the Telegram channel set its webhook with the secret it now checks.
    let set = world.provider.calls("/setWebhook");
    assert_eq!(set.len(), 1);
    assert_eq!(set[0].json()["url"], world.url(&telegram).as_str());
    let telegram_secret = world.provider.telegram_secret();

    let cases = vec![
        Case {
            inbound: messenger_text("PSID-1", "m_inbound_1", "hello, world!", now),
            channel: messenger,
            send_path: "/1234567890/messages",
            recipient: "PSID-1",
        },
        Case {
            inbound: instagram_text(
                "IGSID-1",
                "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQx",
                "is this in stock?",
                now,
            ),
            channel: instagram,
            send_path: "/17841400000000000/messages",
            recipient: "IGSID-1",
        },
        Case {
            inbound: Webhook::meta(whatsapp_text("wamid.inbound1", "16315551181", now)),
            channel: whatsapp,
            send_path: "/106540352242922/messages",
            recipient: "16315551181",
        },
        Case {
            inbound: Webhook::telegram(
                telegram_secret,
                serde_json::to_vec(&json!({"update_id": 10000, "message": {"message_id": 1365, "date": now,
                    "chat": {"id": 1111111, "type": "private", "first_name": "Test"},
                    "from": {"id": 1111111, "is_bot": false, "first_name": "Test", "last_name": "User"}, "text": "/start"}})).unwrap(),
            ),
            channel: telegram,
            send_path: "/sendMessage",
            recipient: "1111111",
        },
        Case {
            inbound: Webhook::twilio(
                &world.url(&twilio),
                "ToCountry=US&SmsMessageSid=SMinbound1&NumMedia=0&SmsStatus=received&Body=Hello&To=%2B15017122661&MessageSid=SMinbound1&AccountSid=ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX&From=%2B15558675310&ApiVersion=2010-04-01",
            ),
            channel: twilio,
            send_path: "/Messages.json",
            recipient: "+15558675310",
        },
        Case {
            inbound: Webhook::twilio(
                &world.url(&twilio_whatsapp),
                "SmsMessageSid=SMwhatsapp1&NumMedia=0&ProfileName=Ada&MessageType=text&WaId=15558675311&SmsStatus=received&Body=Hola&To=whatsapp%3A%2B15017122661&NumSegments=1&MessageSid=SMwhatsapp1&AccountSid=ACXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX&From=whatsapp%3A%2B15558675311&ApiVersion=2010-04-01",
            ),
            channel: twilio_whatsapp,
            send_path: "/Messages.json",
            recipient: "whatsapp:+15558675311",
        },
        Case {
            inbound: line_message(
                "01FZ74A0TDDPYRVKNK77XKC3ZR",
                "U4af4980629",
                json!({"id": "444573844083572737", "type": "text", "text": "Good Morning!!"}),
                now,
            ),
            channel: line,
            send_path: "/v2/bot/message/push",
            recipient: "U4af4980629",
        },
        Case {
            inbound: viber_text(
                4912661846655238145,
                ("01234567890A=", "John McClane"),
                "a message to the service",
                now,
            ),
            channel: viber,
            send_path: "/pa/send_message",
            recipient: "01234567890A=",
        },
    ];

    for case in &cases {
        let kind = case.channel.r#type;
        for attempt in 0..2 {
            let (code, answer) = world.send_webhook(&case.channel, &case.inbound).await;
            assert_eq!(code, 200, "{kind} webhook attempt {attempt}: {answer}");
        }
        let conversation = world.conversation(&case.channel).await;
        // Both Twilio channels send to the same path: this reply's call is the next one.
        let before = world.provider.calls(case.send_path).len();
        let reply = world.send(&conversation, text("Thanks for writing!")).await;
        let call = eventually(WAIT, "the provider's send API call", || {
            let calls = world.provider.calls(case.send_path);
            async move { calls.into_iter().nth(before) }
        })
        .await;
        let body = call
            .form("Body")
            .unwrap_or_else(|| String::from_utf8_lossy(&call.body).into_owned());
        assert!(
            body.contains("Thanks for writing!"),
            "{kind}: the reply's text reaches the provider: {body}"
        );
        let to = call
            .form("To")
            .or_else(|| {
                let json = call.json();
                ["/recipient/id", "/to", "/chat_id", "/receiver"]
                    .iter()
                    .find_map(|p| json.pointer(p).and_then(|v| v.as_str()).map(str::to_owned))
            })
            .unwrap_or_default();
        assert_eq!(to, case.recipient, "{kind}: addressed to the Contact");
        let sent = world.status(&reply, DeliveryStatus::Sent).await;
        assert!(
            !sent.external_message_id.is_empty(),
            "{kind}: the provider's id is kept"
        );
        let messages = world.messages(&conversation).await;
        assert_eq!(
            messages.len(),
            2,
            "{kind}: the provider's retry stored no second message"
        );
    }

    // Receipts: WhatsApp statuses, Twilio status callbacks (SMS and WhatsApp), Viber and
    // Messenger delivery events, Instagram's read events move the sent replies forward.
    for case in &cases {
        let conversation = world.conversation(&case.channel).await;
        let reply = world
            .messages(&conversation)
            .await
            .into_iter()
            .find(|m| m.status == DeliveryStatus::Sent as i32)
            .unwrap();
        let kind = ChannelType::try_from(case.channel.r#type).unwrap();
        let url = world.url(&case.channel);
        let id = &reply.external_message_id;
        // Telegram and LINE report no delivery to bots.
        let Some((receipt, status)) = receipt(kind, &url, id, case.recipient, now) else {
            continue;
        };
        world.deliver(&case.channel, &receipt).await;
        world.status(&reply, status).await;
    }
}

#[tokio::test]
async fn provider_errors_end_as_statuses_a_person_understands() {
    let world = World::start().await;
    let whatsapp = world
        .connect(
            ChannelType::Whatsapp,
            credentials::whatsapp("106540352242922"),
        )
        .await;

    // A Contact who last wrote two days ago: refused before calling WhatsApp.
    let two_days_ago = now_seconds() - 2 * 86_400;
    let inbound = whatsapp_text("wamid.old", "4915100000001", two_days_ago);
    let old = world.chat(&whatsapp, &Webhook::meta(inbound)).await;
    let late = world.send(&old, text("Sorry for the wait")).await;
    let failed = world.status(&late, DeliveryStatus::Failed).await;
    assert!(
        failed.failure_reason.contains("24-hour")
            && failed.failure_reason.contains("use a template"),
        "{}",
        failed.failure_reason
    );
    assert!(
        world.provider.calls("/messages").is_empty(),
        "nothing reached WhatsApp"
    );
    // A template still goes, with its variables.
    let template = world
        .send(
            &old,
            MessageContent {
                kind: Some(Kind::Template(Template {
                    name: "order_update".into(),
                    language: "en_US".into(),
                    variables: vec!["Ada".into()],
                })),
                ..Default::default()
            },
        )
        .await;
    world.status(&template, DeliveryStatus::Sent).await;
    let call = &world.provider.calls("/messages")[0];
    assert_eq!(
        call.json()["template"]["components"][0]["parameters"][0]["text"],
        "Ada"
    );
    assert_eq!(
        call.headers["authorization"].to_str().unwrap(),
        "Bearer system-user-token"
    );

    // WhatsApp's own answers: rate limited (retried, then accepted), then an unknown
    // recipient (failed for good, with WhatsApp's reason).
    world.provider.script(
        "/messages",
        400,
        r#"{"error":{"message":"(#130429) Rate limit hit","type":"OAuthException","code":130429,"error_data":{"messaging_product":"whatsapp","details":"Cloud API message throughput has been reached."},"fbtrace_id":"A"}}"#,
    );
    let hello = || MessageContent {
        kind: Some(Kind::Template(Template {
            name: "hello_world".into(),
            language: "en_US".into(),
            variables: vec![],
        })),
        ..Default::default()
    };
    let retried = world.send(&old, hello()).await;
    world.status(&retried, DeliveryStatus::Sent).await;
    assert_eq!(
        world.provider.calls("/messages").len(),
        3,
        "one refusal, one retry"
    );
    world.provider.script(
        "/messages",
        400,
        r#"{"error":{"message":"(#131026) Message undeliverable","type":"OAuthException","code":131026,"error_data":{"messaging_product":"whatsapp","details":"Message Undeliverable."},"fbtrace_id":"B"}}"#,
    );
    let undeliverable = world.send(&old, hello()).await;
    let failed = world.status(&undeliverable, DeliveryStatus::Failed).await;
    assert!(
        failed.failure_reason.contains("131026")
            && failed.failure_reason.contains("cannot receive"),
        "{}",
        failed.failure_reason
    );

    // Telegram: one chat's messages leave in order, at most one a second; a revoked bot
    // token fails the message and flags the channel unhealthy.
    let telegram = world
        .connect(ChannelType::Telegram, credentials::telegram())
        .await;
    let update = serde_json::to_vec(
        &json!({"update_id": 1, "message": {"message_id": 1, "date": now_seconds(),
        "chat": {"id": 2222, "type": "private"}, "text": "hi"}}),
    )
    .unwrap();
    let secret = world.provider.telegram_secret();
    let chat = world
        .chat(&telegram, &Webhook::telegram(secret, update))
        .await;
    let mut sent = Vec::new();
    for word in ["one", "two", "three"] {
        sent.push(world.send(&chat, text(word)).await);
    }
    for message in &sent {
        world.status(message, DeliveryStatus::Sent).await;
    }
    let calls = world.provider.calls("/sendMessage");
    let words: Vec<String> = calls
        .iter()
        .map(|c| c.json()["text"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(
        words,
        ["one", "two", "three"],
        "in the order they were sent"
    );
    for pair in calls.windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at);
        assert!(
            gap >= Duration::from_millis(900),
            "Telegram allows one message a second per chat: {gap:?}"
        );
    }
    world.provider.script(
        "/sendMessage",
        401,
        r#"{"ok":false,"error_code":401,"description":"Unauthorized"}"#,
    );
    let refused = world.send(&chat, text("four")).await;
    let failed = world.status(&refused, DeliveryStatus::Failed).await;
    assert!(
        failed.failure_reason.contains("Unauthorized"),
        "{}",
        failed.failure_reason
    );
    let channel = world.api.get_channel(&telegram.id).await;
    assert_eq!(channel.health, gw::ChannelHealth::Unhealthy as i32);
    assert!(
        channel.health_reason.contains("Unauthorized"),
        "{}",
        channel.health_reason
    );
}

#[tokio::test]
async fn bad_provider_webhooks_are_refused_with_a_reason_and_store_nothing() {
    let world = World::start().await;
    let whatsapp = world
        .connect(
            ChannelType::Whatsapp,
            credentials::whatsapp("106540352242922"),
        )
        .await;
    let instagram = world
        .connect(
            ChannelType::Instagram,
            credentials::meta("17841400000000000"),
        )
        .await;
    let body = whatsapp_text("wamid.bad", "16315551181", now_seconds());

    // Meta's verification handshake: the right token echoes the challenge.
    let get = |query: &str| {
        world
            .http
            .get(format!("{}?{query}", world.url(&instagram)))
            .send()
    };
    let ok = get("hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=meatyhamhock")
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    assert_eq!(ok.text().await.unwrap(), "1158201444");
    let wrong = get("hub.mode=subscribe&hub.challenge=1&hub.verify_token=guess")
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 403);

    let (code, _) = world.post(&whatsapp, "application/json", &[], &body).await;
    assert_eq!(code, 401, "unsigned");
    let forged = vec![("x-hub-signature-256", sign("not-the-app-secret", &body))];
    let (code, answer) = world
        .post(&whatsapp, "application/json", &forged, &body)
        .await;
    assert_eq!(code, 401, "{answer}");
    assert!(answer.contains("X-Hub-Signature-256"), "{answer}");
    let not_whatsapp = Webhook::meta(br#"{"object":"page","entry":[]}"#.to_vec());
    let (code, answer) = world.send_webhook(&whatsapp, &not_whatsapp).await;
    assert_eq!(code, 400);
    assert!(answer.contains("whatsapp_business_account"), "{answer}");
    let huge = vec![b' '; 2 * 1024 * 1024];
    let mut headers = hub(&huge);
    headers.push(("content-type", "application/json".into()));
    assert_eq!(
        declared_length_status(
            world.platform.http_port,
            &whatsapp.webhook_path,
            &headers,
            huge.len()
        )
        .await,
        413
    );
    let elsewhere = gw::Channel {
        webhook_path: format!("/webhooks/whatsapp/{}", uuid::Uuid::now_v7()),
        ..whatsapp.clone()
    };
    let signed = Webhook::meta(body);
    assert_eq!(world.send_webhook(&elsewhere, &signed).await.0, 404);
    // An event of a kind we do not handle is acknowledged, so Meta does not retry it.
    let other = whatsapp_body(
        json!({"messaging_product": "whatsapp", "statuses": [], "messages": [
        {"from": "1", "id": "wamid.unsupported", "timestamp": "1", "type": "unsupported", "errors": [{"code": 131051}]}]}),
    );
    let other = Webhook::meta(other);
    assert_eq!(world.send_webhook(&whatsapp, &other).await.0, 200);

    tokio::time::sleep(Duration::from_secs(2)).await;
    let conversations = world.api.list_conversations().await;
    assert!(
        conversations.is_empty(),
        "nothing stored: {conversations:?}"
    );
}

/// The media link of the conversation's first message.
async fn media_link(world: &World, channel: &gw::Channel) -> String {
    let conversation = world.conversation(channel).await;
    let messages = world.messages(&conversation).await;
    match messages
        .first()
        .and_then(|m| m.content.clone())
        .and_then(|c| c.kind)
    {
        Some(Kind::Media(media)) => media.url,
        other => panic!("not a media message: {other:?}"),
    }
}

#[tokio::test]
async fn inbound_media_open_through_the_gateway_from_whatsapp_telegram_and_line() {
    let world = World::start().await;
    let now = now_seconds();
    let public = format!("http://127.0.0.1:{}/media/", world.platform.http_port);

    let whatsapp = world
        .connect(
            ChannelType::Whatsapp,
            credentials::whatsapp("106540352242922"),
        )
        .await;
    world
        .provider
        .keep_media("1013859600285441", "image/jpeg", b"a receipt photographed");
    let whatsapp_in = whatsapp_body(json!({"messaging_product": "whatsapp",
        "metadata": {"display_phone_number": "15550000000", "phone_number_id": "106540352242922"},
        "contacts": [{"profile": {"name": "Kerry Fisher"}, "wa_id": "16315551181"}],
        "messages": [{"from": "16315551181", "id": "wamid.image1", "timestamp": now.to_string(), "type": "image",
            "image": {"caption": "my receipt", "mime_type": "image/jpeg", "sha256": "HASH", "id": "1013859600285441"}}]}));
    world.deliver(&whatsapp, &Webhook::meta(whatsapp_in)).await;

    let telegram = world
        .connect(ChannelType::Telegram, credentials::telegram())
        .await;
    let secret = world.provider.telegram_secret();
    world.provider.keep_media(
        "BQACAgIAAxkBAAIBaGVvZ3Rl",
        "application/pdf",
        b"%PDF-1.7 an invoice",
    );
    let telegram_in = serde_json::to_vec(&json!({"update_id": 20, "message": {"message_id": 7, "date": now,
        "chat": {"id": 3333, "type": "private", "first_name": "Ada"}, "from": {"id": 3333, "is_bot": false, "first_name": "Ada"},
        "document": {"file_name": "invoice.pdf", "mime_type": "application/pdf", "file_id": "BQACAgIAAxkBAAIBaGVvZ3Rl",
            "file_unique_id": "AgADBAAD", "file_size": 19}}})).unwrap();
    world
        .deliver(&telegram, &Webhook::telegram(secret, telegram_in))
        .await;

    let line = world.connect(ChannelType::Line, credentials::line()).await;
    world
        .provider
        .keep_media("325708", "image/png", b"a png from a LINE chat");
    let line_in = line_message(
        "01FZ74A0TDDPYRVKNK77XKC3ZS",
        "U77",
        json!({"id": "325708", "type": "image", "contentProvider": {"type": "line"}}),
        now,
    );
    world.deliver(&line, &line_in).await;

    // Each message carries a gateway link that gives the provider's bytes.
    let mut links = Vec::new();
    for (channel, content_type, bytes) in [
        (&whatsapp, "image/jpeg", &b"a receipt photographed"[..]),
        (&telegram, "application/pdf", &b"%PDF-1.7 an invoice"[..]),
        (&line, "image/png", &b"a png from a LINE chat"[..]),
    ] {
        let link = media_link(&world, channel).await;
        assert!(link.starts_with(&public), "{link}");
        let response = world.http.get(&link).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 200, "{link}");
        assert_eq!(response.headers()["content-type"], content_type);
        assert_eq!(response.bytes().await.unwrap().as_ref(), bytes);
        links.push(link);
    }
    let download = &world.provider.calls("/whatsapp/media/1013859600285441")[0];
    assert_eq!(
        download.headers["authorization"].to_str().unwrap(),
        "Bearer system-user-token",
        "WhatsApp's download URL is fetched with the channel's token"
    );

    // A link cannot be forged or extended.
    let (whatsapp_link, telegram_link, line_link) = (&links[0], &links[1], &links[2]);
    let forged = whatsapp_link.replace("sig=", "sig=AA");
    assert_eq!(world.http.get(&forged).send().await.unwrap().status(), 403);
    let (path, query) = whatsapp_link.split_once('?').unwrap();
    let expires: i64 = url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "expires")
        .unwrap()
        .1
        .parse()
        .unwrap();
    let extended = format!(
        "{path}?{}",
        query.replace(
            &format!("expires={expires}"),
            &format!("expires={}", expires + 86_400)
        )
    );
    let response = world.http.get(&extended).send().await.unwrap();
    assert_eq!(response.status(), 403);
    assert!(response.text().await.unwrap().contains("signature"));
    let unsigned = world.http.get(path).send().await.unwrap();
    assert_eq!(unsigned.status(), 403);

    // The provider's refusals come back as 502 with its reason.
    world.provider.script(
        "/getFile",
        400,
        r#"{"ok":false,"error_code":400,"description":"Bad Request: file is too big"}"#,
    );
    let response = world.http.get(telegram_link).send().await.unwrap();
    assert_eq!(response.status(), 502);
    let reason = response.text().await.unwrap();
    assert!(reason.contains("file is too big"), "{reason}");
    world.provider.script(
        "/1013859600285441",
        400,
        r#"{"error":{"message":"Unsupported get request. Object with ID '1013859600285441' does not exist","type":"GraphMethodException","code":100,"error_subcode":33,"fbtrace_id":"Ax"}}"#,
    );
    let response = world.http.get(whatsapp_link).send().await.unwrap();
    assert_eq!(response.status(), 502);
    let reason = response.text().await.unwrap();
    assert!(
        reason.contains("WhatsApp") && reason.contains("does not exist"),
        "{reason}"
    );

    // A disconnected channel's links lead nowhere.
    world.api.delete_channel(&line.id).await;
    assert_eq!(
        world.http.get(line_link).send().await.unwrap().status(),
        404
    );
}

#[tokio::test]
async fn videos_files_and_replies_leave_in_each_providers_own_shape() {
    let world = World::start().await;
    let now = now_seconds();
    let viber = world
        .connect(ChannelType::Viber, credentials::viber())
        .await;
    let viber_in = viber_text(
        4912661846655238146,
        ("01234567890B=", "Jane"),
        "send me the manual",
        now,
    );
    let chat = world.chat(&viber, &viber_in).await;
    let media = |kind: MediaType, url: &str| MessageContent {
        kind: Some(Kind::Media(Media {
            r#type: kind as i32,
            url: url.to_owned(),
            caption: "the manual".into(),
        })),
        ..Default::default()
    };

    // Viber's video and file messages carry the size its server gives.
    let video_url = world
        .provider
        .host_file("/v/setup.mp4", "video/mp4", &[7u8; 4096]);
    let video = world.send(&chat, media(MediaType::Video, &video_url)).await;
    world.status(&video, DeliveryStatus::Sent).await;
    let manual_url =
        world
            .provider
            .host_file("/d/user%20manual.pdf", "application/pdf", &[1u8; 1500]);
    let file = world.send(&chat, media(MediaType::File, &manual_url)).await;
    world.status(&file, DeliveryStatus::Sent).await;
    let sent: Vec<serde_json::Value> = world
        .provider
        .calls("/pa/send_message")
        .iter()
        .map(|c| c.json())
        .collect();
    assert_eq!(
        (sent[0]["type"].as_str(), sent[0]["size"].as_u64()),
        (Some("video"), Some(4096))
    );
    assert_eq!(sent[0]["media"], video_url.as_str());
    assert_eq!(
        (
            sent[1]["type"].as_str(),
            sent[1]["size"].as_u64(),
            sent[1]["file_name"].as_str()
        ),
        (Some("file"), Some(1500), Some("user manual.pdf"))
    );
    // A file its server does not have fails with why, before reaching Viber.
    let gone = world
        .send(
            &chat,
            media(
                MediaType::File,
                &format!("{}/d/missing.pdf", world.provider.url),
            ),
        )
        .await;
    let failed = world.status(&gone, DeliveryStatus::Failed).await;
    assert!(
        failed.failure_reason.contains("missing.pdf") && failed.failure_reason.contains("404"),
        "{}",
        failed.failure_reason
    );
    assert_eq!(world.provider.calls("/pa/send_message").len(), 2);

    // LINE has no file message: the Contact gets the caption and the link.
    let line = world.connect(ChannelType::Line, credentials::line()).await;
    let line_in = line_message(
        "01FZ74A0TDDPYRVKNK77XKC3ZT",
        "U99",
        json!({"id": "444573844083572799", "type": "text", "text": "the manual please"}),
        now,
    );
    let line_chat = world.chat(&line, &line_in).await;
    let linked = world
        .send(&line_chat, media(MediaType::File, &manual_url))
        .await;
    world.status(&linked, DeliveryStatus::Sent).await;
    let push = world.provider.calls("/v2/bot/message/push")[0].json();
    assert_eq!(push["messages"][0]["type"], "text");
    assert_eq!(
        push["messages"][0]["text"],
        format!("the manual\n{manual_url}").as_str()
    );

    // A Messenger reply names the message it answers.
    let messenger = world
        .connect(ChannelType::Messenger, credentials::meta("1234567890"))
        .await;
    let messenger_in = messenger_text("PSID-9", "m_question", "does it come in blue?", now);
    let messenger_chat = world.chat(&messenger, &messenger_in).await;
    let answer = world
        .send(
            &messenger_chat,
            MessageContent {
                reply_to_external_id: "m_question".into(),
                ..text("It does.")
            },
        )
        .await;
    world.status(&answer, DeliveryStatus::Sent).await;
    let call = world.provider.calls("/1234567890/messages")[0].json();
    assert_eq!(call["reply_to"]["mid"], "m_question");
    assert_eq!(call["message"]["text"], "It does.");
}
