//! One bot abstraction over three backends: a query in (what the Contact wrote, the
//! conversation as the session), an [`Answer`] out (replies, handover, end, Tags), and
//! failures sorted by what the platform does about them.
use std::time::Duration;

use ism_platform::egress::Egress;
use ism_proto::types::v1::MessageContent;
use serde::{Deserialize, Serialize};

use crate::dialogflow;
use crate::google::{ServiceAccount, Tokens};
use crate::openai;

/// A bot's backend, with its secrets; stored sealed.
#[derive(Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Backend {
    DialogflowEs {
        account: ServiceAccount,
        region: String,
        language: String,
        api_base_url: String,
    },
    DialogflowCx {
        account: ServiceAccount,
        location: String,
        agent_id: String,
        environment: String,
        language: String,
        api_base_url: String,
    },
    OpenAi {
        base_url: String,
        api_key: String,
        model: String,
        system_prompt: String,
        history_messages: u32,
    },
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Backend({}, redacted)", self.kind())
    }
}

impl Backend {
    /// The stored kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Backend::DialogflowEs { .. } => "dialogflow_es",
            Backend::DialogflowCx { .. } => "dialogflow_cx",
            Backend::OpenAi { .. } => "openai",
        }
    }
}

/// Who wrote a message of the conversation's history, for a chat model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    Contact,
    Business,
}

/// What a bot is asked.
#[derive(Debug, Clone)]
pub struct Query {
    /// The conversation's id: the bot's session.
    pub session: String,
    pub text: String,
    /// The Contact's language, when known.
    pub language: Option<String>,
    /// The conversation's last messages, oldest first, the query's own included.
    pub history: Vec<(Speaker, String)>,
}

/// What a bot answered, mapped from any backend.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answer {
    pub replies: Vec<MessageContent>,
    /// Hand the conversation to a human, for this reason.
    pub handover: Option<String>,
    /// End the conversation (close it).
    pub end: bool,
    /// Tags to add to the Contact.
    pub tags: Vec<String>,
    /// Contact Field values to set, by key: text, a number or a checkbox.
    pub fields: Vec<(String, serde_json::Value)>,
}

/// Why a bot did not answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BotError {
    /// The backend refused the credentials: a human takes over, the bot is marked failing.
    #[error("credentials refused: {0}")]
    Credentials(String),
    /// A passing failure (5xx, 429, network): retried a few times, then a human takes over.
    #[error("{0}")]
    Unavailable(String),
    /// No answer in time: the query may have been processed (a CX detectIntent is not
    /// idempotent), so it is not retried; a human takes over.
    #[error("no answer within {0} ms")]
    Timeout(u128),
    /// Any other refusal (a bad agent id, a malformed answer).
    #[error("{0}")]
    Refused(String),
}

/// Calls backends: one HTTP client through the egress policy, and cached Google tokens.
#[derive(Clone)]
pub struct Backends {
    pub client: reqwest::Client,
    pub egress: Egress,
    pub tokens: Tokens,
}

impl Backends {
    pub fn new(egress: Egress) -> Self {
        Self {
            client: egress.client(Duration::from_secs(60)),
            egress,
            tokens: Tokens::default(),
        }
    }

    /// Asks `backend` to answer `query` within `timeout`.
    pub async fn ask(
        &self,
        backend: &Backend,
        query: &Query,
        timeout: Duration,
    ) -> Result<Answer, BotError> {
        match backend {
            Backend::DialogflowEs { .. } | Backend::DialogflowCx { .. } => {
                dialogflow::detect_intent(self, backend, query, timeout).await
            }
            Backend::OpenAi { .. } => openai::complete(self, backend, query, timeout).await,
        }
    }

    /// Whether the backend accepts the credentials (a token from Google; the model list of
    /// an OpenAI-compatible API), or why not.
    pub async fn check_credentials(
        &self,
        backend: &Backend,
        timeout: Duration,
    ) -> Result<(), BotError> {
        match backend {
            Backend::DialogflowEs { account, .. } | Backend::DialogflowCx { account, .. } => {
                self.tokens.fetch(self, account, timeout).await.map(|_| ())
            }
            Backend::OpenAi { .. } => openai::check(self, backend, timeout).await,
        }
    }

    /// POSTs `body` as JSON with a bearer token and reads the JSON answer, mapping the
    /// failures every backend shares.
    pub async fn post_json(
        &self,
        url: &str,
        bearer: &str,
        body: &serde_json::Value,
        timeout: Duration,
    ) -> Result<serde_json::Value, BotError> {
        self.egress
            .check_url(url)
            .map_err(|refusal| BotError::Refused(format!("{url} {refusal}")))?;
        let sent = self
            .client
            .post(url)
            .bearer_auth(bearer)
            .json(body)
            .timeout(timeout)
            .send()
            .await;
        answer_json(sent, timeout).await
    }
}

/// The JSON of an answer, or the failure it stands for.
pub async fn answer_json(
    sent: reqwest::Result<reqwest::Response>,
    timeout: Duration,
) -> Result<serde_json::Value, BotError> {
    let response = match sent {
        Ok(response) => response,
        Err(e) if e.is_timeout() => return Err(BotError::Timeout(timeout.as_millis())),
        Err(e) => return Err(BotError::Unavailable(format!("unreachable: {e}"))),
    };
    let status = response.status();
    let text = match response.text().await {
        Ok(text) => text,
        Err(e) if e.is_timeout() => return Err(BotError::Timeout(timeout.as_millis())),
        Err(e) => return Err(BotError::Unavailable(format!("the answer broke off: {e}"))),
    };
    let json: serde_json::Value = serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
    if status.is_success() {
        return Ok(json);
    }
    let detail = error_words(&json).unwrap_or_else(|| text.chars().take(200).collect());
    let words = format!("answered {status}: {detail}");
    Err(match status.as_u16() {
        401 | 403 => BotError::Credentials(words),
        408 | 429 | 500..=599 => BotError::Unavailable(words),
        _ => BotError::Refused(words),
    })
}

/// The message of Google's (`{"error":{"message"}}`), OpenAI's (the same) or OAuth's
/// (`{"error_description"}`) error answers.
fn error_words(json: &serde_json::Value) -> Option<String> {
    json.pointer("/error/message")
        .or_else(|| json.get("error_description"))
        .or_else(|| json.get("error").filter(|e| e.is_string()))
        .and_then(|m| m.as_str())
        .map(str::to_owned)
}
