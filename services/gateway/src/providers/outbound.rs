//! Sending one message through a provider's API, and what its answer means: the
//! provider's message id, or a [`Failure`] in one of the canonical kinds the delivery
//! worker acts on (retry, fail, flag the channel).
use std::time::Duration;

use ism_platform::telemetry;
use ism_proto::types::v1::{DeliveryFailure, MessageContent};
use serde_json::Value;
use uuid::Uuid;

use super::{Kind, custom, line, meta, telegram, twilio, viber, whatsapp};
use crate::credentials::Credentials;

/// One message to send.
pub struct Outgoing<'a> {
    /// Our id: providers that take an idempotency key get it (LINE's retry key).
    pub message_id: Uuid,
    pub channel_id: Uuid,
    /// The channel's name: Viber shows it as the sender.
    pub channel_name: &'a str,
    /// The recipient's id on the channel.
    pub recipient: &'a str,
    pub content: &'a MessageContent,
    /// Our webhook URL for this channel, for providers that take a status callback.
    pub status_callback: &'a str,
    /// A custom channel's outbound URL.
    pub outbound_url: &'a str,
}

/// Why a send did not succeed, by what should happen next.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    /// Outside the provider's reply window: only a template can reach the Contact now.
    Window(String),
    /// Too many messages: retry after the provider's delay, or our backoff.
    RateLimited {
        after: Option<Duration>,
        reason: String,
    },
    /// The recipient cannot be reached (unknown, blocked, unsubscribed): permanent.
    Recipient(String),
    /// A cap on what this recipient may receive (WhatsApp's per-user marketing limit):
    /// permanent for now, worth trying much later.
    Capped(String),
    /// The provider refused our credentials or configuration: the channel is unhealthy.
    Auth(String),
    /// Worth retrying with backoff (timeouts, 5xx, temporary provider errors).
    Transient(String),
    /// The provider (or we) cannot send this content: permanent.
    Refused(String),
}

impl Failure {
    /// The reason shown to a person.
    pub fn reason(&self) -> &str {
        match self {
            Failure::Window(r)
            | Failure::RateLimited { reason: r, .. }
            | Failure::Recipient(r)
            | Failure::Capped(r)
            | Failure::Auth(r)
            | Failure::Transient(r)
            | Failure::Refused(r) => r,
        }
    }

    /// What a final failure of this kind tells the sender (retryable kinds end as
    /// given up once the retry time is over).
    pub fn delivery_failure(&self) -> DeliveryFailure {
        match self {
            Failure::Window(_) => DeliveryFailure::Window,
            Failure::RateLimited { .. } | Failure::Transient(_) => DeliveryFailure::GaveUp,
            Failure::Recipient(_) => DeliveryFailure::Recipient,
            Failure::Capped(_) => DeliveryFailure::Capped,
            Failure::Auth(_) => DeliveryFailure::Channel,
            Failure::Refused(_) => DeliveryFailure::Content,
        }
    }

    /// This answer of a `kind` provider in words saying what happened and what to do,
    /// with the provider's own words kept at the end. Retryable kinds keep their words:
    /// they are retried, and a final give-up says what to do (see `delivery`).
    pub fn advised(self, kind: Kind) -> Failure {
        let provider = kind.provider();
        match self {
            Failure::Auth(said) => Failure::Auth(format!(
                "{provider} refused the channel's {credential}: reconnect the channel with a valid {credential}; it answered: {said}",
                credential = kind.credential()
            )),
            Failure::Recipient(said) => Failure::Recipient(format!(
                "{provider} cannot deliver to this Contact: reach them on another channel; it answered: {said}"
            )),
            Failure::Capped(said) => Failure::Capped(format!(
                "{provider} will not take more of these messages for this Contact now: try again in a day or more; it answered: {said}"
            )),
            Failure::Refused(said) => Failure::Refused(format!(
                "{provider} refused this message: change its content or settings and send it again; it answered: {said}"
            )),
            retryable_or_worded => retryable_or_worded,
        }
    }

    /// A low-cardinality label for metrics.
    pub fn label(&self) -> &'static str {
        match self {
            Failure::Window(_) => "window",
            Failure::RateLimited { .. } => "rate_limited",
            Failure::Recipient(_) => "recipient",
            Failure::Capped(_) => "capped",
            Failure::Auth(_) => "auth",
            Failure::Transient(_) => "transient",
            Failure::Refused(_) => "refused",
        }
    }
}

/// What a media file's server says of it, for providers that need it up front.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaFile {
    /// In bytes.
    pub size: u64,
    /// The URL's last path segment, or "file".
    pub name: String,
}

impl MediaFile {
    /// Asks the server behind `url` (HEAD) for the file's size.
    pub async fn probe(
        http: &reqwest::Client,
        timeout: Duration,
        url: &str,
    ) -> Result<MediaFile, Failure> {
        let parsed =
            url::Url::parse(url).map_err(|e| Failure::Refused(format!("media URL {url}: {e}")))?;
        let response = http
            .head(parsed.clone())
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| Failure::Transient(format!("cannot reach the media at {url}: {e}")))?;
        let status = response.status();
        if !status.is_success() {
            let reason = format!("the media at {url} answered HTTP {}", status.as_u16());
            return Err(if status.is_server_error() {
                Failure::Transient(reason)
            } else {
                Failure::Refused(reason)
            });
        }
        let size = response
            .headers()
            .get(reqwest::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|size| *size > 0)
            .ok_or_else(|| {
                Failure::Refused(format!(
                    "the media at {url} gives no size (Content-Length), which the provider needs"
                ))
            })?;
        let name = parsed
            .path_segments()
            .and_then(|mut s| s.next_back())
            .filter(|s| !s.is_empty())
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .unwrap_or_else(|| "file".to_owned());
        Ok(MediaFile { size, name })
    }
}

/// A provider's HTTP answer.
pub struct Reply {
    pub code: u16,
    /// The `Retry-After` header, in seconds, when present.
    pub retry_after: Option<Duration>,
    /// The body as JSON (Null when it is not JSON).
    pub body: Value,
    /// The body's first characters, for reasons.
    pub snippet: String,
}

impl Reply {
    /// A string or number at `pointer`, as text ("" when absent).
    pub fn text(&self, pointer: &str) -> String {
        match self.body.pointer(pointer) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Null) | None => String::new(),
            Some(other) => other.to_string(),
        }
    }

    pub fn int(&self, pointer: &str) -> Option<i64> {
        self.body.pointer(pointer).and_then(Value::as_i64)
    }
}

/// Reads a provider's answer: its message id, or why not.
type Classify = fn(&Reply) -> Result<String, Failure>;

/// Sends `out` on a channel of `kind` whose API is at `base`; the provider's message id.
pub async fn send(
    http: &reqwest::Client,
    timeout: Duration,
    kind: Kind,
    base: &str,
    credentials: &Credentials,
    out: &Outgoing<'_>,
) -> Result<String, Failure> {
    let (request, classify): (reqwest::RequestBuilder, Classify) = match (kind, credentials) {
        (Kind::Custom, Credentials::Custom { webhook_secret }) => {
            (custom::request(http, webhook_secret, out)?, custom::answer)
        }
        (
            Kind::Messenger | Kind::Instagram,
            Credentials::Meta {
                account_id,
                access_token,
                ..
            },
        ) => {
            let object = if kind == Kind::Instagram {
                meta::Object::Instagram
            } else {
                meta::Object::Page
            };
            (
                http.post(format!("{base}/{account_id}/messages"))
                    .bearer_auth(access_token)
                    .json(&meta::message(out, object)?),
                meta::answer,
            )
        }
        (
            Kind::WhatsApp,
            Credentials::WhatsApp {
                phone_number_id,
                access_token,
                ..
            },
        ) => (
            http.post(format!("{base}/{phone_number_id}/messages"))
                .bearer_auth(access_token)
                .json(&whatsapp::message(out)?),
            whatsapp::answer,
        ),
        (Kind::Telegram, Credentials::Telegram { bot_token, .. }) => {
            let (method, body) = telegram::message(out)?;
            (
                http.post(format!("{base}/bot{bot_token}/{method}"))
                    .json(&body),
                telegram::answer,
            )
        }
        (
            Kind::TwilioSms | Kind::TwilioWhatsApp,
            Credentials::Twilio {
                account_sid,
                auth_token,
                from,
            },
        ) => (
            http.post(format!(
                "{base}/2010-04-01/Accounts/{account_sid}/Messages.json"
            ))
            .basic_auth(account_sid, Some(auth_token))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(
                url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(twilio::message(kind == Kind::TwilioWhatsApp, from, out)?)
                    .finish(),
            ),
            twilio::answer,
        ),
        (
            Kind::Line,
            Credentials::Line {
                channel_access_token,
                ..
            },
        ) => (
            http.post(format!("{base}/v2/bot/message/push"))
                .bearer_auth(channel_access_token)
                // LINE accepts a retry key once: a repeated send is answered 409.
                .header("x-line-retry-key", out.message_id.to_string())
                .json(&line::message(out)?),
            line::answer,
        ),
        (Kind::Viber, Credentials::Viber { auth_token }) => {
            let file = match viber::needs_size(out.content) {
                Some(url) => Some(MediaFile::probe(http, timeout, url).await?),
                None => None,
            };
            (
                http.post(format!("{base}/pa/send_message"))
                    .header("x-viber-auth-token", auth_token)
                    .json(&viber::message(out, file.as_ref())?),
                viber::answer,
            )
        }
        _ => {
            return Err(Failure::Auth(
                "the channel's credentials do not match its type".into(),
            ));
        }
    };
    let response = telemetry::send_http(request.timeout(timeout))
        .await
        .map_err(|e| {
            if e.is_timeout() {
                Failure::Transient("the provider did not answer in time".into())
            } else {
                Failure::Transient(format!("cannot reach the provider: {e}"))
            }
        })?;
    let code = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(super::retry_after);
    let bytes = response.bytes().await.unwrap_or_default();
    let reply = Reply {
        code,
        retry_after,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        snippet: String::from_utf8_lossy(&bytes).chars().take(200).collect(),
    };
    classify(&reply).map_err(|failure| failure.advised(kind))
}

/// The canonical answer to HTTP statuses a provider gave no better words for.
pub fn by_status(provider: &str, reply: &Reply, detail: &str) -> Failure {
    let detail = if detail.is_empty() {
        reply.snippet.as_str()
    } else {
        detail
    };
    // Final failures are worded with the provider's name by `Failure::advised`.
    let answered = format!("HTTP {}: {detail}", reply.code);
    let reason = format!("{provider} answered {answered}");
    match reply.code {
        429 => Failure::RateLimited {
            after: reply.retry_after,
            reason,
        },
        401 | 403 => Failure::Auth(answered),
        408 | 500..=599 => Failure::Transient(reason),
        _ => Failure::Refused(answered),
    }
}

/// The refusal for content a provider cannot carry.
pub fn unsupported(provider: &str, what: &str) -> Failure {
    Failure::Refused(format!("{provider} cannot send {what}"))
}

/// The name of the content's kind, for refusals.
pub fn kind_name(content: &MessageContent) -> &'static str {
    use ism_proto::types::v1::message_content::Kind as C;
    match &content.kind {
        Some(C::Text(_)) => "text",
        Some(C::Media(_)) => "media",
        Some(C::Location(_)) => "a location",
        Some(C::Contact(_)) => "a contact card",
        Some(C::Template(_)) => "a template (templates are WhatsApp's)",
        Some(C::ButtonReply(_)) => "a button reply (Contacts send those)",
        Some(C::Reaction(_)) => "a reaction",
        None => "an empty message",
    }
}

#[cfg(test)]
impl Reply {
    /// A provider's answer as a test receives it.
    pub fn sample(code: u16, body: &str) -> Self {
        Reply {
            code,
            retry_after: None,
            body: serde_json::from_str(body).unwrap_or(Value::Null),
            snippet: body.to_owned(),
        }
    }
}

#[cfg(test)]
impl<'a> Outgoing<'a> {
    /// `content` to `recipient` on a channel named "shop".
    pub fn sample(recipient: &'a str, content: &'a MessageContent) -> Self {
        Outgoing {
            message_id: Uuid::nil(),
            channel_id: Uuid::nil(),
            channel_name: "shop",
            recipient,
            content,
            status_callback: "",
            outbound_url: "",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn final_reason(kind: Kind, code: u16, body: &str) -> String {
        let classify: Classify = match kind {
            Kind::TwilioSms => twilio::answer,
            Kind::Viber => viber::answer,
            Kind::Telegram => telegram::answer,
            Kind::Line => line::answer,
            _ => unreachable!("not one of the examples"),
        };
        classify(&Reply::sample(code, body))
            .map_err(|failure| failure.advised(kind))
            .expect_err("a failure")
            .reason()
            .to_owned()
    }

    #[test]
    fn final_failures_say_what_happened_and_what_to_do() {
        for (kind, code, body, said) in [
            (
                Kind::TwilioSms,
                401,
                r#"{"code":20003,"message":"Authenticate"}"#,
                "Twilio refused the channel's Account SID, auth token or sender: reconnect the channel with a valid Account SID, auth token or sender; it answered: Twilio error 20003 (Authenticate)",
            ),
            (
                Kind::Viber,
                200,
                r#"{"status":2,"status_message":"invalidAuthToken"}"#,
                "Viber refused the channel's auth token: reconnect the channel with a valid auth token; it answered: status 2: invalidAuthToken",
            ),
            (
                Kind::Telegram,
                401,
                r#"{"ok":false,"error_code":401,"description":"Unauthorized"}"#,
                "Telegram refused the channel's bot token: reconnect the channel with a valid bot token; it answered: Unauthorized",
            ),
            (
                Kind::Line,
                400,
                r#"{"message":"Failed to send messages"}"#,
                "LINE refused this message: change its content or settings and send it again; it answered: HTTP 400: Failed to send messages",
            ),
        ] {
            assert_eq!(final_reason(kind, code, body), said);
        }
    }

    #[test]
    fn retried_failures_keep_the_providers_name_for_the_give_up() {
        let failure = line::answer(&Reply::sample(503, "{}"))
            .map_err(|failure| failure.advised(Kind::Line))
            .unwrap_err();
        assert_eq!(
            failure,
            Failure::Transient("LINE answered HTTP 503: {}".into())
        );
    }
}
