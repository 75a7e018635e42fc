//! The providers: for each, its webhook signature, its webhook payloads normalized into
//! the canonical message model, and its API client. Dispatch is a `match` on [`Kind`].
pub mod client;
pub mod custom;
pub mod line;
pub mod media;
pub mod meta;
pub mod outbound;
pub mod telegram;
pub mod twilio;
pub mod viber;
pub mod whatsapp;

use std::time::Duration;

use axum::http::HeaderMap;
use chrono::{DateTime, Utc};
use hmac::{Hmac, KeyInit, Mac};
use ism_platform::convert::{clipped, cut, storable};
use ism_proto::types::v1::{ChannelType, DeliveryFailure, DeliveryStatus, MessageContent};
use sha2::Sha256;

use crate::credentials::Credentials;

/// The most characters of a sender's name or a failure reason a webhook brings: the
/// rest is cut.
const MAX_WORDS: usize = 1000;

/// A channel's type, as stored and as it appears in webhook paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Custom,
    Messenger,
    Instagram,
    WhatsApp,
    Telegram,
    TwilioSms,
    TwilioWhatsApp,
    Line,
    Viber,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::Custom,
        Kind::Messenger,
        Kind::Instagram,
        Kind::WhatsApp,
        Kind::Telegram,
        Kind::TwilioSms,
        Kind::TwilioWhatsApp,
        Kind::Line,
        Kind::Viber,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Custom => "custom",
            Kind::Messenger => "messenger",
            Kind::Instagram => "instagram",
            Kind::WhatsApp => "whatsapp",
            Kind::Telegram => "telegram",
            Kind::TwilioSms => "twilio_sms",
            Kind::TwilioWhatsApp => "twilio_whatsapp",
            Kind::Line => "line",
            Kind::Viber => "viber",
        }
    }

    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == name)
    }

    pub fn channel_type(self) -> ChannelType {
        match self {
            Kind::Custom => ChannelType::Custom,
            Kind::Messenger => ChannelType::Messenger,
            Kind::Instagram => ChannelType::Instagram,
            Kind::WhatsApp => ChannelType::Whatsapp,
            Kind::Telegram => ChannelType::Telegram,
            Kind::TwilioSms => ChannelType::TwilioSms,
            Kind::TwilioWhatsApp => ChannelType::TwilioWhatsapp,
            Kind::Line => ChannelType::Line,
            Kind::Viber => ChannelType::Viber,
        }
    }

    pub fn from_channel_type(value: i32) -> Option<Kind> {
        let wanted = ChannelType::try_from(value).ok()?;
        Kind::ALL.into_iter().find(|k| k.channel_type() == wanted)
    }

    /// The provider's public API, used when a channel sets no `api_base_url`.
    pub fn default_api_base_url(self) -> &'static str {
        match self {
            Kind::Custom => "",
            // The Graph API version is part of the base URL so it can be moved per channel.
            Kind::Messenger | Kind::Instagram | Kind::WhatsApp => {
                "https://graph.facebook.com/v21.0"
            }
            Kind::Telegram => "https://api.telegram.org",
            Kind::TwilioSms | Kind::TwilioWhatsApp => "https://api.twilio.com",
            Kind::Line => "https://api.line.me",
            Kind::Viber => "https://chatapi.viber.com",
        }
    }

    /// The provider's name, as its users know it.
    pub fn provider(self) -> &'static str {
        match self {
            Kind::Custom => "The receiver",
            Kind::Messenger => "Messenger",
            Kind::Instagram => "Instagram",
            Kind::WhatsApp => "WhatsApp",
            Kind::Telegram => "Telegram",
            Kind::TwilioSms | Kind::TwilioWhatsApp => "Twilio",
            Kind::Line => "LINE",
            Kind::Viber => "Viber",
        }
    }

    /// What the provider checks of a channel when it sends, by the name its console uses.
    pub fn credential(self) -> &'static str {
        match self {
            Kind::Custom => "webhook secret",
            Kind::Messenger | Kind::Instagram => "Page access token",
            Kind::WhatsApp => "access token or phone number id",
            Kind::Telegram => "bot token",
            Kind::TwilioSms | Kind::TwilioWhatsApp => "Account SID, auth token or sender",
            Kind::Line => "channel access token",
            Kind::Viber => "auth token",
        }
    }

    /// Outbound messages per second when a channel sets none: the providers' published
    /// limits (WhatsApp Cloud API 80/s per number, Telegram 30/s per bot, Twilio 10/s
    /// per sender, Instagram 100/s per account, LINE 2,000/s per channel).
    pub fn default_rate_limit_per_second(self) -> u32 {
        match self {
            Kind::Custom => 100,
            Kind::Messenger => 250,
            Kind::Instagram => 100,
            Kind::WhatsApp => 80,
            Kind::Telegram => 30,
            Kind::TwilioSms | Kind::TwilioWhatsApp => 10,
            Kind::Line => 2000,
            Kind::Viber => 100,
        }
    }

    /// Whether the provider lets a business answer freely only within 24 hours of the
    /// Contact's last message (templates aside): Meta's products and WhatsApp.
    pub fn has_reply_window(self) -> bool {
        matches!(
            self,
            Kind::Messenger | Kind::Instagram | Kind::WhatsApp | Kind::TwilioWhatsApp
        )
    }

    /// How the references start that this provider's inbound media arrive as, when it
    /// keeps them behind its API (see [`media`]).
    pub fn media_reference(self) -> Option<&'static str> {
        match self {
            Kind::WhatsApp => Some(whatsapp::MEDIA_REFERENCE),
            Kind::Telegram => Some(telegram::MEDIA_REFERENCE),
            Kind::Line => Some(line::MEDIA_REFERENCE),
            _ => None,
        }
    }

    /// Whether the provider also limits messages per chat (Telegram: 1 per second).
    pub fn per_chat_rate_limit(self) -> Option<f64> {
        (self == Kind::Telegram).then_some(1.0)
    }

    /// Whether `credentials` are the kind this channel type needs.
    pub fn accepts(self, credentials: &Credentials) -> bool {
        matches!(
            (self, credentials),
            (Kind::Custom, Credentials::Custom { .. })
                | (Kind::Messenger | Kind::Instagram, Credentials::Meta { .. })
                | (Kind::WhatsApp, Credentials::WhatsApp { .. })
                | (Kind::Telegram, Credentials::Telegram { .. })
                | (
                    Kind::TwilioSms | Kind::TwilioWhatsApp,
                    Credentials::Twilio { .. }
                )
                | (Kind::Line, Credentials::Line { .. })
                | (Kind::Viber, Credentials::Viber { .. })
        )
    }
}

/// A webhook as it arrived: the exact bytes, the headers, and the public URL the provider
/// called (Twilio signs it).
pub struct Webhook<'a> {
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    pub url: &'a str,
}

impl Webhook<'_> {
    /// A header's value as text, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A message from a Contact (or, for an echo, from the business to a Contact).
#[derive(Debug, Clone, PartialEq)]
pub struct InboundMessage {
    /// The provider's id for the message: the dedupe key, unique per channel.
    pub external_message_id: String,
    /// The Contact's id on the channel (PSID, phone number, chat id...).
    pub sender_id: String,
    pub sender_name: String,
    pub content: MessageContent,
    pub sent_at: Option<DateTime<Utc>>,
}

/// Which of our sent messages a receipt is about.
#[derive(Debug, Clone, PartialEq)]
pub enum ReceiptTarget {
    /// By the provider's message ids.
    Ids(Vec<String>),
    /// Everything sent to `recipient` up to `until` (Messenger's watermarks).
    Watermark {
        recipient: String,
        until: DateTime<Utc>,
    },
}

/// A delivery receipt for messages we sent.
#[derive(Debug, Clone, PartialEq)]
pub struct Receipt {
    pub target: ReceiptTarget,
    pub status: DeliveryStatus,
    /// Why it failed, in words a person understands; empty unless failed.
    pub reason: String,
    /// What kind of failure; unspecified unless failed.
    pub failure: DeliveryFailure,
}

impl Receipt {
    /// A receipt from a provider whose failures name no kind: a failed message is taken
    /// as one this recipient cannot get.
    pub fn new(target: ReceiptTarget, status: DeliveryStatus, reason: String) -> Self {
        let failure = if status == DeliveryStatus::Failed {
            DeliveryFailure::Recipient
        } else {
            DeliveryFailure::Unspecified
        };
        Self {
            target,
            status,
            reason,
            failure,
        }
    }
}

/// One thing a webhook told us.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    Message(InboundMessage),
    /// The business sent this from the provider's own app.
    Echo(InboundMessage),
    Receipt(Receipt),
    /// A kind of event we do not handle: acknowledged and logged.
    Ignored(String),
}

/// Checks a webhook's signature with the channel's credentials; the error is the reason
/// for a 401.
pub fn verify(kind: Kind, credentials: &Credentials, webhook: &Webhook<'_>) -> Result<(), String> {
    let ok = match (kind, credentials) {
        (Kind::Custom, Credentials::Custom { webhook_secret }) => webhook
            .header(custom::signature::HEADER)
            .is_some_and(|sig| {
                custom::signature::verify(webhook_secret.as_bytes(), webhook.body, sig)
            }),
        (Kind::Messenger | Kind::Instagram, Credentials::Meta { app_secret, .. })
        | (Kind::WhatsApp, Credentials::WhatsApp { app_secret, .. }) => {
            meta::verify(app_secret, webhook)
        }
        (Kind::Telegram, Credentials::Telegram { secret_token, .. }) => {
            telegram::verify(secret_token, webhook)
        }
        (Kind::TwilioSms | Kind::TwilioWhatsApp, Credentials::Twilio { auth_token, .. }) => {
            twilio::verify(auth_token, webhook)
        }
        (Kind::Line, Credentials::Line { channel_secret, .. }) => {
            line::verify(channel_secret, webhook)
        }
        (Kind::Viber, Credentials::Viber { auth_token }) => viber::verify(auth_token, webhook),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("missing or invalid {}", signature_header(kind)))
    }
}

/// The header that carries `kind`'s webhook signature.
pub fn signature_header(kind: Kind) -> &'static str {
    match kind {
        Kind::Custom => "X-ISM-Signature",
        Kind::Messenger | Kind::Instagram | Kind::WhatsApp => "X-Hub-Signature-256",
        Kind::Telegram => "X-Telegram-Bot-Api-Secret-Token",
        Kind::TwilioSms | Kind::TwilioWhatsApp => "X-Twilio-Signature",
        Kind::Line => "X-Line-Signature",
        Kind::Viber => "X-Viber-Content-Signature",
    }
}

/// The media type of the webhooks `kind`'s provider sends: Twilio posts a form, every
/// other provider JSON.
pub fn content_type(kind: Kind) -> &'static str {
    match kind {
        Kind::TwilioSms | Kind::TwilioWhatsApp => "application/x-www-form-urlencoded",
        _ => "application/json",
    }
}

/// Whether a webhook's `Content-Type` header names `kind`'s media type (parameters such
/// as `charset` aside); the reason for a 415 otherwise.
pub fn check_content_type(kind: Kind, headers: &HeaderMap) -> Result<(), String> {
    let expected = content_type(kind);
    let sent = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    match sent {
        Some(sent) if sent.eq_ignore_ascii_case(expected) => Ok(()),
        Some(_) => Err(format!("{} webhooks are {expected}", kind.as_str())),
        None => Err(format!("Content-Type is required: {expected}")),
    }
}

/// Normalizes a verified webhook body; the error is the reason for a 400.
pub fn parse(kind: Kind, body: &[u8]) -> Result<Vec<Item>, String> {
    let items = match kind {
        Kind::Custom => custom::parse(body),
        Kind::Messenger => meta::parse(body, meta::Object::Page),
        Kind::Instagram => meta::parse(body, meta::Object::Instagram),
        Kind::WhatsApp => whatsapp::parse(body),
        Kind::Telegram => telegram::parse(body),
        Kind::TwilioSms | Kind::TwilioWhatsApp => twilio::parse(body),
        Kind::Line => line::parse(body),
        Kind::Viber => viber::parse(body),
    }
    .map_err(clipped)?;
    items.into_iter().map(Item::storable).collect()
}

impl Item {
    /// The item once what Postgres text cannot hold (U+0000, which JSON can escape) is
    /// dealt with, before it can fail a shared write and every webhook beside it. No
    /// provider id holds one, so an id with one refuses the webhook; in a name or a
    /// reason it becomes U+FFFD, and the message is kept. Content travels as protobuf
    /// bytes and keeps it.
    fn storable(mut self) -> Result<Item, String> {
        let id = |what: &'static str, value: &str| {
            storable(what, value).map(drop).map_err(|e| e.to_string())
        };
        let words = |value: &mut String| {
            if value.contains('\0') {
                *value = value.replace('\0', "\u{FFFD}");
            }
            // The contacts service takes names up to its request limit: a longer one is
            // cut rather than failing the message.
            if let Some(head) = cut(value, MAX_WORDS) {
                *value = head.to_owned();
            }
        };
        match &mut self {
            Item::Message(m) | Item::Echo(m) => {
                id("message id", &m.external_message_id)?;
                id("sender id", &m.sender_id)?;
                words(&mut m.sender_name);
            }
            Item::Receipt(r) => {
                match &r.target {
                    ReceiptTarget::Ids(ids) => ids.iter().try_for_each(|i| id("message id", i))?,
                    ReceiptTarget::Watermark { recipient, .. } => id("recipient", recipient)?,
                }
                words(&mut r.reason);
            }
            Item::Ignored(_) => {}
        }
        Ok(self)
    }
}

/// The answer to a GET on a webhook URL: Meta's verification handshake.
pub enum Handshake {
    /// Echo this challenge with 200.
    Accept(String),
    /// The verify token is wrong: 403.
    Forbidden,
    /// Not a handshake (missing parameters): 400 with the reason.
    BadRequest(&'static str),
    /// This provider does not GET: 405.
    NotSupported,
}

/// Answers Meta's `hub.mode=subscribe` verification for Messenger, Instagram, WhatsApp.
pub fn handshake(kind: Kind, credentials: &Credentials, query: &str) -> Handshake {
    match (kind, credentials) {
        (Kind::Messenger | Kind::Instagram, Credentials::Meta { verify_token, .. })
        | (Kind::WhatsApp, Credentials::WhatsApp { verify_token, .. }) => {
            meta::handshake(verify_token, query)
        }
        _ => Handshake::NotSupported,
    }
}

/// Constant-time equality of two secrets.
pub fn secrets_equal(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Whether `signature` (raw bytes) is the HMAC-SHA256 of `body` under `key`, in
/// constant time.
pub fn hmac_sha256_matches(key: &[u8], body: &[u8], signature: &[u8]) -> bool {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts keys of any length");
    mac.update(body);
    mac.verify_slice(signature).is_ok()
}

/// Seconds or milliseconds since the epoch as a time, if in range.
pub fn epoch_seconds(seconds: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(seconds, 0)
}

pub fn epoch_millis(millis: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_millis(millis)
}

/// How long to wait before retrying, as a provider said it (seconds), bounded.
pub fn retry_after(seconds: u64) -> Duration {
    Duration::from_secs(seconds.clamp(1, 3600))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn credentials() -> Vec<(Kind, Credentials)> {
        let meta = Credentials::Meta {
            account_id: "1".into(),
            access_token: "t".into(),
            app_secret: "s".into(),
            verify_token: "v".into(),
        };
        vec![
            (
                Kind::Custom,
                Credentials::Custom {
                    webhook_secret: "s".into(),
                },
            ),
            (Kind::Messenger, meta.clone()),
            (Kind::Instagram, meta),
            (
                Kind::WhatsApp,
                Credentials::WhatsApp {
                    phone_number_id: "1".into(),
                    access_token: "t".into(),
                    app_secret: "s".into(),
                    verify_token: "v".into(),
                },
            ),
            (
                Kind::Telegram,
                Credentials::Telegram {
                    bot_token: "1:a".into(),
                    secret_token: "s".into(),
                },
            ),
            (
                Kind::TwilioSms,
                Credentials::Twilio {
                    account_sid: "AC1".into(),
                    auth_token: "t".into(),
                    from: "+1".into(),
                },
            ),
            (
                Kind::Line,
                Credentials::Line {
                    channel_secret: "s".into(),
                    channel_access_token: "t".into(),
                },
            ),
            (
                Kind::Viber,
                Credentials::Viber {
                    auth_token: "t".into(),
                },
            ),
        ]
    }

    #[test]
    fn kinds_round_trip_through_names_and_channel_types() {
        for kind in Kind::ALL {
            assert_eq!(Kind::parse(kind.as_str()), Some(kind));
            assert_eq!(
                Kind::from_channel_type(kind.channel_type() as i32),
                Some(kind)
            );
        }
        for (kind, credentials) in credentials() {
            assert!(kind.accepts(&credentials));
        }
        assert!(!Kind::Line.accepts(&Credentials::Viber {
            auth_token: "t".into()
        }));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn no_bytes_make_a_parser_or_a_verifier_panic(body in proptest::collection::vec(any::<u8>(), 0..512), sig in ".{0,80}") {
            let mut headers = HeaderMap::new();
            for kind in Kind::ALL {
                if let Ok(value) = sig.parse() {
                    headers.insert(signature_header(kind), value);
                }
            }
            let webhook = Webhook { headers: &headers, body: &body, url: "https://x.test/w" };
            for (kind, credentials) in credentials() {
                let _ = parse(kind, &body);
                let _ = verify(kind, &credentials, &webhook);
                let _ = handshake(kind, &credentials, &sig);
            }
        }

        #[test]
        fn no_json_makes_a_parser_panic(json in json_value()) {
            let body = serde_json::to_vec(&json).unwrap();
            for kind in Kind::ALL {
                let _ = parse(kind, &body);
            }
        }

        #[test]
        fn no_provider_answer_makes_a_sender_panic(code in 100u16..600, json in json_value()) {
            let reply = outbound::Reply::sample(code, &json.to_string());
            for answer in [custom::answer, meta::answer, whatsapp::answer, telegram::answer,
                twilio::answer, line::answer, viber::answer] {
                let _ = answer(&reply);
            }
        }
    }

    /// JSON built from the providers' own field names, so the parsers go deep.
    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let names = prop::sample::select(vec![
            "object",
            "entry",
            "messaging",
            "message",
            "sender",
            "recipient",
            "id",
            "mid",
            "text",
            "attachments",
            "payload",
            "url",
            "type",
            "changes",
            "value",
            "messages",
            "statuses",
            "from",
            "timestamp",
            "events",
            "source",
            "userId",
            "event",
            "message_token",
            "update_id",
            "chat",
            "message_id",
            "photo",
            "file_id",
            "callback_query",
            "data",
            "location",
            "latitude",
            "longitude",
            "contacts",
            "errors",
            "code",
            "delivery",
            "read",
            "watermark",
            "mids",
            "reaction",
            "interactive",
            "button_reply",
            "field",
            "status",
            "error",
            "error_code",
            "error_subcode",
            "description",
            "ok",
            "result",
            "parameters",
            "retry_after",
            "sentMessages",
            "sid",
        ]);
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(|f| serde_json::Number::from_f64(f)
                .map_or(serde_json::Value::Null, serde_json::Value::Number)),
            prop::sample::select(vec![
                "page",
                "instagram",
                "whatsapp_business_account",
                "message",
                "text",
                "image",
                "location",
                "delivered",
                "failed",
                "subscribe",
                ""
            ])
            .prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(5, 64, 8, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
                prop::collection::vec((names.clone(), inner), 0..6).prop_map(|pairs| {
                    serde_json::Value::Object(
                        pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
                    )
                }),
            ]
        })
    }
}
