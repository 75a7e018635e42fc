//! A stand-in for the providers' send APIs (Graph API for Messenger, Instagram and
//! WhatsApp; Telegram Bot API; Twilio Messages; LINE push; Viber send_message): records
//! every request and answers as the provider documents, or as scripted (its error
//! bodies), so the gateway's real HTTP client is exercised end to end.
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use serde_json::{Value, json};

/// One request the provider got.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// When it arrived.
    pub at: Instant,
}

impl Call {
    /// The body as JSON (Null when it is a form or not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// A form parameter of the body.
    pub fn form(&self, name: &str) -> Option<String> {
        url::form_urlencoded::parse(&self.body)
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }
}

#[derive(Default)]
struct Inner {
    calls: Vec<Call>,
    /// Answers for the next sends whose path ends with the key, in order.
    script: Vec<(String, u16, String)>,
}

/// A local HTTP server speaking the providers' send APIs.
#[derive(Clone)]
pub struct FakeProvider {
    inner: Arc<Mutex<Inner>>,
    pub url: String,
}

impl FakeProvider {
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new().fallback(answer).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { inner, url }
    }

    /// The next request whose path ends with `path_end` gets this answer instead of
    /// success (several calls queue in order).
    pub fn script(&self, path_end: &str, code: u16, body: &str) {
        let mut inner = self.inner.lock().expect("provider lock");
        inner
            .script
            .push((path_end.to_owned(), code, body.to_owned()));
    }

    /// When each request whose path ends with `path_end` arrived.
    pub fn arrivals(&self, path_end: &str) -> Vec<Instant> {
        let inner = self.inner.lock().expect("provider lock");
        inner
            .calls
            .iter()
            .filter(|c| c.path.ends_with(path_end))
            .map(|c| c.at)
            .collect()
    }

    /// Every request so far whose path ends with `path_end`.
    pub fn calls(&self, path_end: &str) -> Vec<Call> {
        let inner = self.inner.lock().expect("provider lock");
        inner
            .calls
            .iter()
            .filter(|c| c.path.ends_with(path_end))
            .cloned()
            .collect()
    }
}

async fn answer(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, [(&'static str, &'static str); 1], String) {
    let mut inner = inner.lock().expect("provider lock");
    let path = uri.path().to_owned();
    inner.calls.push(Call {
        method,
        path: path.clone(),
        headers,
        body: body.clone(),
        at: Instant::now(),
    });
    let n = inner.calls.len();
    let json_type = [("content-type", "application/json")];
    if let Some(i) = inner
        .script
        .iter()
        .position(|(end, ..)| path.ends_with(end))
    {
        let (_, code, body) = inner.script.remove(i);
        return (
            StatusCode::from_u16(code).unwrap_or(StatusCode::OK),
            json_type,
            body,
        );
    }
    let sent: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let (code, reply) = if path.ends_with("/setWebhook") || path.ends_with("/deleteWebhook") {
        (
            200,
            json!({"ok": true, "result": true, "description": "Webhook was set"}),
        )
    } else if path.contains("/bot") && path.contains("/send") {
        let chat = sent["chat_id"]
            .as_str()
            .unwrap_or_default()
            .parse::<i64>()
            .unwrap_or(0);
        (
            200,
            json!({"ok": true, "result": {"message_id": 5000 + n, "date": 1, "chat": {"id": chat, "type": "private"}}}),
        )
    } else if path.ends_with("/Messages.json") {
        (
            201,
            json!({"sid": format!("SMfake{n}"), "status": "queued"}),
        )
    } else if path.ends_with("/v2/bot/message/push") {
        (
            200,
            json!({"sentMessages": [{"id": format!("{}", 460_000_000 + n), "quoteToken": "q"}]}),
        )
    } else if path.ends_with("/pa/send_message") {
        (
            200,
            json!({"status": 0, "status_message": "ok", "message_token": 7_000_000_000_u64 + n as u64}),
        )
    } else if path.ends_with("/messages") && sent["messaging_product"] == "whatsapp" {
        (
            200,
            json!({"messaging_product": "whatsapp", "contacts": [{"input": sent["to"], "wa_id": sent["to"]}], "messages": [{"id": format!("wamid.fake{n}")}]}),
        )
    } else if path.ends_with("/messages") {
        (
            200,
            json!({"recipient_id": sent["recipient"]["id"], "message_id": format!("m_fake{n}")}),
        )
    } else {
        (
            404,
            json!({"error": {"message": format!("unknown path {path}"), "code": 803}}),
        )
    };
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::OK),
        json_type,
        reply.to_string(),
    )
}
