//! A stand-in for the providers' send APIs (Graph API for Messenger, Instagram and
//! WhatsApp; Telegram Bot API; Twilio Messages; LINE push; Viber send_message) and
//! their media APIs (WhatsApp media URLs, Telegram getFile and file downloads, LINE
//! message content): records every request and answers as the provider documents, or
//! as scripted (its error bodies), so the gateway's real HTTP client is exercised end to
//! end. It also hosts plain files, as a business's own media server would.
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
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

/// Bytes the provider keeps, with their type.
#[derive(Clone)]
struct File {
    content_type: String,
    bytes: Bytes,
}

#[derive(Default)]
struct Inner {
    /// This server's own URL: WhatsApp's media lookups answer with a download URL.
    url: String,
    calls: Vec<Call>,
    /// Answers for the next sends whose path ends with the key, in order.
    script: Vec<(String, u16, String)>,
    /// Inbound media by provider id (WhatsApp media id, Telegram file id, LINE message id).
    media: HashMap<String, File>,
    /// Plain files by path, as any web server serves them.
    files: HashMap<String, File>,
}

/// A local HTTP server speaking the providers' send APIs.
#[derive(Clone)]
pub struct FakeProvider {
    inner: Arc<Mutex<Inner>>,
    pub url: String,
}

impl FakeProvider {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let inner = Arc::new(Mutex::new(Inner {
            url: url.clone(),
            ..Inner::default()
        }));
        let app = Router::new().fallback(answer).with_state(inner.clone());
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

    /// Keeps `bytes` as the inbound media `id`, served by each provider's media API.
    pub fn keep_media(&self, id: &str, content_type: &str, bytes: &[u8]) {
        let mut inner = self.inner.lock().expect("provider lock");
        inner.media.insert(
            id.to_owned(),
            File {
                content_type: content_type.to_owned(),
                bytes: Bytes::copy_from_slice(bytes),
            },
        );
    }

    /// Serves `bytes` at `path` (GET, and HEAD with its length); the file's URL.
    pub fn host_file(&self, path: &str, content_type: &str, bytes: &[u8]) -> String {
        let mut inner = self.inner.lock().expect("provider lock");
        inner.files.insert(
            path.to_owned(),
            File {
                content_type: content_type.to_owned(),
                bytes: Bytes::copy_from_slice(bytes),
            },
        );
        format!("{}{path}", self.url)
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

    /// The secret token the gateway registered with Telegram's `setWebhook` (empty
    /// before it has), which Telegram sends back on every update.
    pub fn telegram_secret(&self) -> String {
        self.calls("/setWebhook")
            .first()
            .and_then(|call| call.json()["secret_token"].as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

async fn answer(
    State(inner): State<Arc<Mutex<Inner>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut inner = inner.lock().expect("provider lock");
    let path = uri.path().to_owned();
    let bearer = headers.contains_key("authorization");
    inner.calls.push(Call {
        method: method.clone(),
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
        )
            .into_response();
    }
    if (method == Method::GET || method == Method::HEAD)
        && let Some(response) = media(&inner, &path, uri.query().unwrap_or_default(), bearer)
    {
        return response;
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
        .into_response()
}

/// The media APIs, as documented: WhatsApp `GET /{media id}` (a download URL, fetched
/// with the same bearer token), Telegram `getFile` and `/file/bot{token}/{file_path}`,
/// LINE `GET /v2/bot/message/{id}/content`; and plain hosted files. `None` for other paths.
fn media(inner: &Inner, path: &str, query: &str, bearer: bool) -> Option<Response> {
    let bytes = |file: &File| {
        (
            StatusCode::OK,
            [("content-type", file.content_type.clone())],
            file.bytes.clone(),
        )
            .into_response()
    };
    let json = |code: u16, body: Value| {
        (
            StatusCode::from_u16(code).unwrap_or(StatusCode::OK),
            [("content-type", "application/json".to_owned())],
            body.to_string(),
        )
            .into_response()
    };
    let no_token = || {
        json(
            401,
            json!({"error": {"message": "Invalid OAuth access token.", "type": "OAuthException", "code": 190}}),
        )
    };
    if let Some(file) = inner.files.get(path) {
        return Some(bytes(file));
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segments.as_slice() {
        [id] if inner.media.contains_key(*id) => Some(if !bearer {
            no_token()
        } else {
            let file = &inner.media[*id];
            json(
                200,
                json!({"messaging_product": "whatsapp", "url": format!("{}/whatsapp/media/{id}", inner.url),
                    "mime_type": file.content_type, "sha256": "", "file_size": file.bytes.len(), "id": id}),
            )
        }),
        ["whatsapp", "media", id] => Some(match inner.media.get(*id) {
            Some(file) if bearer => bytes(file),
            Some(_) => no_token(),
            None => json(404, json!({"error": {"message": "Not found", "code": 100}})),
        }),
        [bot, "getFile"] if bot.starts_with("bot") => {
            let id = url::form_urlencoded::parse(query.as_bytes())
                .find(|(k, _)| k == "file_id")
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            Some(match inner.media.get(&id) {
                Some(file) => json(
                    200,
                    json!({"ok": true, "result": {"file_id": id, "file_unique_id": "AgADBAAD",
                        "file_size": file.bytes.len(), "file_path": format!("documents/{id}")}}),
                ),
                None => json(
                    400,
                    json!({"ok": false, "error_code": 400, "description": "Bad Request: invalid file_id"}),
                ),
            })
        }
        ["file", bot, "documents", id] if bot.starts_with("bot") => {
            Some(match inner.media.get(*id) {
                Some(file) => bytes(file),
                None => json(
                    404,
                    json!({"ok": false, "error_code": 404, "description": "Not Found"}),
                ),
            })
        }
        ["v2", "bot", "message", id, "content"] => Some(match inner.media.get(*id) {
            Some(file) if bearer => bytes(file),
            Some(_) => json(401, json!({"message": "Authentication failed"})),
            None => json(404, json!({"message": "Not found"})),
        }),
        _ => None,
    }
}
