//! A stand-in for a business's system behind a custom channel's outbound URL: records
//! every POST and answers as scripted (success, or an HTTP error).
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use tokio::sync::Semaphore;

/// One POST the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    /// When it arrived.
    pub at: std::time::Instant,
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    /// Answers for the next requests, in order; then 200.
    script: Vec<(u16, String)>,
    /// Answers for the next requests to one recipient (the body's `to`), in order; they
    /// come before `script`.
    by_recipient: std::collections::HashMap<String, Vec<(u16, String)>>,
    /// When set, each answer waits for a permit of this gate.
    gate: Option<Arc<Semaphore>>,
}

/// A local HTTP server receiving outbound messages.
#[derive(Clone)]
pub struct Receiver {
    inner: Arc<Mutex<Inner>>,
    pub url: String,
}

impl Receiver {
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new()
            .route("/outbound", post(receive))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/outbound", listener.local_addr().expect("addr"));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { inner, url }
    }

    /// The next requests are answered with these codes and bodies, in order.
    pub fn script(&self, answers: &[(u16, &str)]) {
        let mut inner = self.inner.lock().expect("receiver lock");
        inner.script = answers.iter().map(|(c, b)| (*c, (*b).to_owned())).collect();
    }

    /// The next requests to `to` are answered with these codes and bodies, in order.
    pub fn script_for(&self, to: &str, answers: &[(u16, &str)]) {
        let mut inner = self.inner.lock().expect("receiver lock");
        inner.by_recipient.insert(
            to.to_owned(),
            answers.iter().map(|(c, b)| (*c, (*b).to_owned())).collect(),
        );
    }

    /// From now on each request is recorded at once but answered only when the returned
    /// gate lets it (`gate.add_permits(n)`).
    pub fn hold_answers(&self) -> Arc<Semaphore> {
        let gate = Arc::new(Semaphore::new(0));
        self.inner.lock().expect("receiver lock").gate = Some(gate.clone());
        gate
    }

    pub fn received(&self) -> Vec<Received> {
        self.inner.lock().expect("receiver lock").received.clone()
    }

    /// The texts of the messages POSTed for the Contact `to`, in order.
    pub fn texts_to(&self, to: &str) -> Vec<String> {
        self.received()
            .iter()
            .filter_map(|r| {
                let body: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
                (body["to"] == to).then(|| body["text"].as_str().unwrap_or_default().to_owned())
            })
            .collect()
    }

    /// [`Self::texts_to`] once it holds `count` texts, waiting up to a minute.
    pub async fn wait_texts_to(&self, to: &str, count: usize) -> Vec<String> {
        crate::eventually(
            std::time::Duration::from_secs(60),
            "the messages sent",
            || async {
                let sent = self.texts_to(to);
                (sent.len() >= count).then_some(sent)
            },
        )
        .await
    }
}

async fn receive(
    State(inner): State<Arc<Mutex<Inner>>>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let (code, body, gate) = {
        let mut inner = inner.lock().expect("receiver lock");
        let to = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|b| b["to"].as_str().map(str::to_owned))
            .unwrap_or_default();
        inner.received.push(Received {
            headers,
            body,
            at: std::time::Instant::now(),
        });
        let own = inner
            .by_recipient
            .get_mut(&to)
            .filter(|answers| !answers.is_empty())
            .map(|answers| answers.remove(0));
        let (code, body) = if let Some(answer) = own {
            answer
        } else if inner.script.is_empty() {
            (
                200,
                format!("{{\"message_id\":\"biz-{}\"}}", inner.received.len()),
            )
        } else {
            inner.script.remove(0)
        };
        (code, body, inner.gate.clone())
    };
    if let Some(gate) = gate {
        gate.acquire().await.expect("gate open").forget();
    }
    (StatusCode::from_u16(code).unwrap_or(StatusCode::OK), body)
}
