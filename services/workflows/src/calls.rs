//! The HTTP request step: one call through the egress policy (addresses checked after DNS
//! resolution, no redirects), with the run's idempotency key, a time limit and a cap on
//! the answer; fields of a 2xx JSON answer are saved as variables.
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use ism_platform::egress::{Egress, error_chain};
use ism_platform::telemetry;
use ism_proto::workflows::v1::HttpRequestStep;
use reqwest::Method;
use reqwest::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use serde_json::{Value, json};

/// The longest a call may take.
pub const MAX_TIMEOUT_SECONDS: u32 = 30;
const DEFAULT_TIMEOUT_SECONDS: u32 = 10;
/// The largest answer read; a larger one is a failure.
const MAX_ANSWER: usize = 1 << 20;
/// How much of an answer the run's history keeps.
const KEPT: usize = 1000;

/// The methods a step may use.
pub const METHODS: [&str; 5] = ["GET", "POST", "PUT", "PATCH", "DELETE"];

/// The start of an answer, as the history keeps it.
fn kept(answer: &str) -> &str {
    ism_platform::convert::cut(answer, KEPT).unwrap_or(answer)
}

/// What a call came to.
pub struct Called {
    /// A 2xx answer, read whole.
    pub succeeded: bool,
    /// For the run's history: status, duration, the start of the answer or the error.
    pub output: Value,
    /// The variables saved from the answer.
    pub saved: BTreeMap<String, String>,
}

#[derive(Clone)]
pub struct Caller {
    egress: Egress,
    client: reqwest::Client,
}

impl Caller {
    pub fn new(egress: Egress) -> Self {
        let client = egress.client(Duration::from_secs(MAX_TIMEOUT_SECONDS.into()));
        Self { egress, client }
    }

    /// Calls `step` (its texts already rendered) with `Idempotency-Key: key`.
    pub async fn call(&self, step: &HttpRequestStep, key: &str) -> Called {
        let clock = Instant::now();
        let failed = |error: String, status: u16, answer: &str| Called {
            succeeded: false,
            output: json!({
                "status": status,
                "error": error,
                "answer": kept(answer),
                "duration_ms": clock.elapsed().as_millis() as u64,
            }),
            saved: BTreeMap::new(),
        };
        if let Err(refusal) = self.egress.check_url(&step.url) {
            return failed(format!("url {refusal}"), 0, "");
        }
        let method = Method::from_bytes(step.method.as_bytes()).unwrap_or(Method::GET);
        let seconds = match step.timeout_seconds {
            0 => DEFAULT_TIMEOUT_SECONDS,
            s => s.min(MAX_TIMEOUT_SECONDS),
        };
        let mut request = self
            .client
            .request(method, &step.url)
            .timeout(Duration::from_secs(seconds.into()))
            .header("idempotency-key", key);
        for (name, value) in &step.headers {
            if let (Ok(name), Ok(value)) = (
                HeaderName::from_bytes(name.as_bytes()),
                HeaderValue::from_str(value),
            ) {
                request = request.header(name, value);
            }
        }
        if !step.body.is_empty() {
            let content_type = if serde_json::from_str::<Value>(&step.body).is_ok() {
                "application/json"
            } else {
                "text/plain; charset=utf-8"
            };
            if !step
                .headers
                .keys()
                .any(|h| h.eq_ignore_ascii_case("content-type"))
            {
                request = request.header(CONTENT_TYPE, content_type);
            }
            request = request.body(step.body.clone());
        }
        let mut response = match telemetry::send_http(request).await {
            Ok(response) => response,
            Err(e) if e.is_timeout() => {
                return failed(format!("no answer within {seconds} s"), 0, "");
            }
            Err(e) => return failed(format!("could not call: {}", error_chain(&e)), 0, ""),
        };
        let status = response.status();
        let mut answer = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) if answer.len() + chunk.len() <= MAX_ANSWER => {
                    answer.extend_from_slice(&chunk)
                }
                Ok(Some(_)) => {
                    return failed(
                        format!("the answer is larger than {} KiB", MAX_ANSWER / 1024),
                        status.as_u16(),
                        "",
                    );
                }
                Ok(None) => break,
                Err(e) if e.is_timeout() => {
                    return failed(
                        format!("no whole answer within {seconds} s"),
                        status.as_u16(),
                        "",
                    );
                }
                Err(e) => {
                    return failed(
                        format!("the answer broke off: {}", error_chain(&e)),
                        status.as_u16(),
                        "",
                    );
                }
            }
        }
        let text = String::from_utf8_lossy(&answer);
        if !status.is_success() {
            let why = if status.is_redirection() {
                format!("answered {status} (redirects are not followed)")
            } else {
                format!("answered {status}")
            };
            return failed(why, status.as_u16(), &text);
        }
        let json: Option<Value> = serde_json::from_slice(&answer).ok();
        let saved: BTreeMap<String, String> = step
            .save
            .iter()
            .map(|(variable, pointer)| {
                let value =
                    json.as_ref()
                        .and_then(|j| j.pointer(pointer))
                        .map_or_else(String::new, |v| match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        });
                (variable.clone(), value)
            })
            .collect();
        Called {
            succeeded: true,
            output: json!({
                "status": status.as_u16(),
                "answer": kept(&text),
                "saved": saved,
                "duration_ms": clock.elapsed().as_millis() as u64,
            }),
            saved,
        }
    }
}
