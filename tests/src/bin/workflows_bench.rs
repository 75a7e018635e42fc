//! Workflow runs per second, and their step latency, beside n8n running the same flow on
//! this machine in the same run.
//!
//! The flow: a Contact's message starts a run that branches on its text, tags the Contact
//! and replies. Here the message is a signed webhook to the gateway's custom channel; the
//! run's tag is a write to the contacts service and its reply a message stored by
//! conversations and handed by the gateway to a stand-in provider, where it is counted.
//! In n8n (the npm package, installed here on first use, its defaults kept: executions
//! saved in its own SQLite database) the same flow is a Webhook node, an IF node on the
//! text, a Set node adding the tag to the item and an HTTP Request node posting the reply
//! to an equal stand-in. Both are fed the same number of messages, the same number at
//! once; a rate runs from the first message posted to the last reply counted. The
//! Channel is unthrottled (its default pace is 100 messages/s), as n8n's HTTP node is.
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use ism_e2e::fixtures::text_content;
use ism_e2e::{Platform, Tenant, eventually};
use ism_proto::workflows::v1 as wf;
use ism_proto::workflows::v1::step::Kind;
use serde_json::json;

/// Runs measured on each side, after a warm-up.
const RUNS: usize = 3_000;
const WARM_UP: usize = 100;
/// Messages posted at once.
const IN_FLIGHT: usize = 32;
const REPLY: &str = "Our prices: example.com/pricing";
const AIM_RATE: f64 = 1_000.0;
const AIM_STEP_P99_MS: f64 = 50.0;
const AIM_TIMES_N8N: f64 = 3.0;
/// The n8n release measured.
const N8N_VERSION: &str = "1";
const N8N_PORT: u16 = 5679;
/// The longest a phase may take before the bench gives up.
const PHASE: Duration = Duration::from_secs(900);

/// Replies a stand-in received: when each recipient's arrived.
#[derive(Default)]
struct Replies(Mutex<HashMap<String, Instant>>);

impl Replies {
    fn count(&self) -> usize {
        self.0.lock().expect("lock").len()
    }

    fn at(&self, to: &str) -> Option<Instant> {
        self.0.lock().expect("lock").get(to).copied()
    }

    fn last(&self) -> Option<Instant> {
        self.0.lock().expect("lock").values().max().copied()
    }
}

async fn receive(State(replies): State<Arc<Replies>>, body: Bytes) -> String {
    let to = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|b| b["to"].as_str().map(str::to_owned))
        .unwrap_or_default();
    let mut all = replies.0.lock().expect("lock");
    let n = all.len();
    all.entry(to).or_insert_with(Instant::now);
    format!("{{\"message_id\":\"biz-{n}\"}}")
}

/// A stand-in provider counting replies by recipient; its URL.
async fn stand_in() -> anyhow::Result<(Arc<Replies>, String)> {
    let replies = Arc::new(Replies::default());
    let app = Router::new()
        .route("/", post(receive))
        .with_state(replies.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((replies, url))
}

/// Posts one message per sender, `IN_FLIGHT` at once, through `post`; when each was posted.
async fn feed<F, Fut>(senders: &[String], post: F) -> anyhow::Result<HashMap<String, Instant>>
where
    F: Fn(String) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let sent = Arc::new(Mutex::new(HashMap::new()));
    let queue = Arc::new(Mutex::new(senders.to_vec()));
    let mut posters = tokio::task::JoinSet::new();
    for _ in 0..IN_FLIGHT {
        let (queue, sent, post) = (queue.clone(), sent.clone(), post.clone());
        posters.spawn(async move {
            loop {
                let Some(sender) = queue.lock().expect("lock").pop() else {
                    return Ok::<_, anyhow::Error>(());
                };
                let at = Instant::now();
                post(sender.clone()).await?;
                sent.lock().expect("lock").insert(sender, at);
            }
        });
    }
    while let Some(done) = posters.join_next().await {
        done??;
    }
    let sent = std::mem::take(&mut *sent.lock().expect("lock"));
    Ok(sent)
}

async fn wait_for(replies: &Replies, n: usize, what: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + PHASE;
    let mut shown = Instant::now();
    while replies.count() < n {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{what}: {} of {n} replies",
            replies.count()
        );
        if shown.elapsed() > Duration::from_secs(10) {
            eprintln!("  {what}: {} of {n} replies", replies.count());
            shown = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// What one side achieved: runs per second, and each message's time to its reply.
struct Measured {
    rate: f64,
    to_reply: Vec<Duration>,
}

/// Feeds `RUNS` messages from new senders named `prefix-<i>` and waits for every reply.
async fn measure<F, Fut>(replies: &Replies, prefix: &str, post: F) -> anyhow::Result<Measured>
where
    F: Fn(String) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let warm: Vec<String> = (0..WARM_UP).map(|i| format!("{prefix}-warm-{i}")).collect();
    let before = replies.count();
    feed(&warm, post.clone()).await?;
    wait_for(replies, before + WARM_UP, "warm-up").await?;
    let senders: Vec<String> = (0..RUNS).map(|i| format!("{prefix}-{i}")).collect();
    let start = Instant::now();
    let sent = feed(&senders, post).await?;
    wait_for(replies, before + WARM_UP + RUNS, prefix).await?;
    let last = replies.last().context("no reply")?;
    let mut to_reply: Vec<Duration> = sent
        .iter()
        .filter_map(|(sender, at)| Some(replies.at(sender)?.duration_since(*at)))
        .collect();
    to_reply.sort();
    Ok(Measured {
        rate: RUNS as f64 / last.duration_since(start).as_secs_f64(),
        to_reply,
    })
}

fn step(id: &str, next: &str, kind: Kind) -> wf::Step {
    wf::Step {
        id: id.into(),
        next: next.into(),
        kind: Some(kind),
        position: None,
    }
}

/// message received → branch on "price" → tag → reply.
fn flow() -> wf::WorkflowDefinition {
    let branch = Kind::Branch(wf::BranchStep {
        cases: vec![wf::BranchCase {
            all: vec![wf::Condition {
                kind: Some(wf::condition::Kind::TextContains("price".into())),
            }],
            next: "tag".into(),
        }],
        otherwise: String::new(),
    });
    wf::WorkflowDefinition {
        name: "Pricing".into(),
        trigger: Some(wf::Trigger {
            kind: Some(wf::trigger::Kind::MessageReceived(
                wf::MessageReceived::default(),
            )),
            conditions: Vec::new(),
        }),
        steps: vec![
            step("check", "", branch),
            step(
                "tag",
                "reply",
                Kind::AddTags(wf::AddTagsStep {
                    tags: vec!["asked-price".into()],
                }),
            ),
            step(
                "reply",
                "",
                Kind::SendMessage(wf::SendMessageStep {
                    content: Some(text_content(REPLY)),
                }),
            ),
        ],
        ..Default::default()
    }
}

async fn ours(platform: &Platform, tenant: &Tenant, replies: &Replies) -> anyhow::Result<Measured> {
    let api = platform.api(tenant).await;
    // The custom Channel's default pace (100 messages/s) would measure the Channel, not
    // the runs: unthrottled, as n8n's HTTP node is.
    let unthrottled = ism_proto::gateway::v1::UpdateChannelRequest {
        id: tenant.channel_id.clone(),
        rate_limit_per_second: Some(100_000),
        ..Default::default()
    };
    api.gateway
        .clone()
        .update_channel(api.authed(unthrottled))
        .await?;
    let created = api.create_workflow(flow()).await;
    api.publish_workflow(&created.id).await;
    let http = reqwest::Client::new();
    let url = format!(
        "http://127.0.0.1:{}/webhooks/custom/{}",
        platform.http_port, tenant.channel_id
    );
    let secret = tenant.webhook_secret.clone();
    let post = move |sender: String| {
        let (http, url, secret) = (http.clone(), url.clone(), secret.clone());
        async move {
            let body = serde_json::to_vec(&json!({
                "message_id": format!("m-{sender}"),
                "from": {"id": sender, "name": "Bench"},
                "text": "What is the price?",
            }))?;
            let answer = http
                .post(&url)
                .header("content-type", "application/json")
                .header("x-ism-signature", ism_e2e::sign(&secret, &body))
                .body(body)
                .send()
                .await?;
            anyhow::ensure!(
                answer.status().is_success(),
                "gateway answered {}",
                answer.status()
            );
            Ok(())
        }
    };
    measure(replies, "ism", post).await
}

/// The same flow as n8n workflow JSON, replying to `reply_url`.
fn n8n_flow(reply_url: &str) -> serde_json::Value {
    json!({
        "id": "benchflow0000001",
        "name": "Pricing",
        "active": true,
        "settings": {"executionOrder": "v1"},
        "nodes": [
            {
                "id": "0b0b0b0b-0000-4000-8000-000000000001",
                "name": "Webhook",
                "type": "n8n-nodes-base.webhook",
                "typeVersion": 2,
                "position": [0, 0],
                "webhookId": "0b0b0b0b-0000-4000-8000-0000000000ff",
                "parameters": {"httpMethod": "POST", "path": "bench", "responseMode": "onReceived", "options": {}}
            },
            {
                "id": "0b0b0b0b-0000-4000-8000-000000000002",
                "name": "Branch",
                "type": "n8n-nodes-base.if",
                "typeVersion": 2,
                "position": [200, 0],
                "parameters": {
                    "conditions": {
                        "options": {"caseSensitive": false, "leftValue": "", "typeValidation": "strict"},
                        "conditions": [{
                            "id": "0b0b0b0b-0000-4000-8000-000000000010",
                            "leftValue": "={{ $json.body.text }}",
                            "rightValue": "price",
                            "operator": {"type": "string", "operation": "contains"}
                        }],
                        "combinator": "and"
                    },
                    "options": {"ignoreCase": true}
                }
            },
            {
                "id": "0b0b0b0b-0000-4000-8000-000000000003",
                "name": "Tag",
                "type": "n8n-nodes-base.set",
                "typeVersion": 3.4,
                "position": [400, 0],
                "parameters": {
                    "assignments": {"assignments": [{
                        "id": "0b0b0b0b-0000-4000-8000-000000000011",
                        "name": "tag", "value": "asked-price", "type": "string"
                    }]},
                    "includeOtherFields": true,
                    "options": {}
                }
            },
            {
                "id": "0b0b0b0b-0000-4000-8000-000000000004",
                "name": "Reply",
                "type": "n8n-nodes-base.httpRequest",
                "typeVersion": 4.2,
                "position": [600, 0],
                "parameters": {
                    "method": "POST",
                    "url": reply_url,
                    "sendBody": true,
                    "specifyBody": "json",
                    "jsonBody": format!("={{{{ JSON.stringify({{to: $json.body.from.id, text: '{REPLY}'}}) }}}}"),
                    "options": {}
                }
            }
        ],
        "connections": {
            "Webhook": {"main": [[{"node": "Branch", "type": "main", "index": 0}]]},
            "Branch": {"main": [[{"node": "Tag", "type": "main", "index": 0}], []]},
            "Tag": {"main": [[{"node": "Reply", "type": "main", "index": 0}]]}
        }
    })
}

/// n8n's command, installed under `dir` with npm when it is not there yet.
fn n8n_installed(dir: &Path) -> anyhow::Result<PathBuf> {
    let bin = dir.join("node_modules/.bin/n8n");
    if !bin.exists() {
        eprintln!(
            "installing n8n@{N8N_VERSION} with npm into {}",
            dir.display()
        );
        std::fs::create_dir_all(dir)?;
        // n8n's spreadsheet dependency points at its maker's own server, which this
        // machine may not reach: the same library's last release on npm stands in. Its
        // sandbox module's current release does not build on Node 20: the 5.x line does.
        let manifest = json!({
            "name": "n8n-peer",
            "private": true,
            "dependencies": {"n8n": N8N_VERSION},
            "overrides": {"xlsx": "0.18.5", "isolated-vm": "5.0.4"},
        });
        std::fs::write(dir.join("package.json"), serde_json::to_vec(&manifest)?)?;
        let status = Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
            .current_dir(dir)
            .status()
            .context("npm (Node.js) is needed to install n8n")?;
        anyhow::ensure!(status.success(), "npm install n8n failed: {status}");
    }
    Ok(bin)
}

/// An n8n process, killed when dropped.
struct N8n(Child);

impl Drop for N8n {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn n8n_command(bin: &Path, home: &Path) -> Command {
    let mut command = Command::new(bin);
    command
        .env("N8N_USER_FOLDER", home)
        .env("N8N_PORT", N8N_PORT.to_string())
        .env("N8N_LISTEN_ADDRESS", "127.0.0.1")
        .env("N8N_DIAGNOSTICS_ENABLED", "false")
        .env("N8N_VERSION_NOTIFICATIONS_ENABLED", "false")
        .env("N8N_PERSONALIZATION_ENABLED", "false")
        .env("N8N_LOG_LEVEL", "warn")
        .env("N8N_ENFORCE_SETTINGS_FILE_PERMISSIONS", "false")
        .env("N8N_SECURE_COOKIE", "false");
    command
}

async fn n8n(target: &Path, reply_url: &str, replies: &Replies) -> anyhow::Result<Measured> {
    let bin = n8n_installed(&target.join("peers/n8n"))?;
    let home = target.join(format!("peers/n8n-home-{}", std::process::id()));
    std::fs::create_dir_all(&home)?;
    let file = home.join("flow.json");
    std::fs::write(&file, serde_json::to_vec(&n8n_flow(reply_url))?)?;
    let imported = n8n_command(&bin, &home)
        .args(["import:workflow", "--input"])
        .arg(&file)
        .stdout(Stdio::null())
        .status()?;
    anyhow::ensure!(imported.success(), "n8n import:workflow failed: {imported}");
    let activated = n8n_command(&bin, &home)
        .args(["update:workflow", "--id=benchflow0000001", "--active=true"])
        .stdout(Stdio::null())
        .status()?;
    anyhow::ensure!(
        activated.success(),
        "n8n update:workflow failed: {activated}"
    );
    let _n8n = N8n(n8n_command(&bin, &home)
        .arg("start")
        .stdout(Stdio::null())
        .spawn()
        .context("n8n start")?);
    let http = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{N8N_PORT}/webhook/bench");
    // n8n answers its health check before it has activated its workflows: wait until the
    // webhook takes a message that asks nothing (it takes the IF node's other way, so
    // nothing replies).
    eventually(Duration::from_secs(180), "n8n to take webhooks", || async {
        let probe = http
            .post(&url)
            .json(&json!({"from": {"id": "probe"}, "text": "hello"}))
            .send()
            .await
            .ok()?;
        probe.status().is_success().then_some(())
    })
    .await;
    let post = move |sender: String| {
        let (http, url) = (http.clone(), url.clone());
        async move {
            let answer = http
                .post(&url)
                .json(&json!({"from": {"id": sender}, "text": "What is the price?"}))
                .send()
                .await?;
            anyhow::ensure!(
                answer.status().is_success(),
                "n8n answered {}",
                answer.status()
            );
            Ok(())
        }
    };
    let measured = measure(replies, "n8n", post).await;
    let _ = std::fs::remove_dir_all(&home);
    measured
}

fn percentile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let target =
        PathBuf::from(std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".to_owned()));
    let (replies, reply_url) = stand_in().await?;
    let (n8n_replies, n8n_reply_url) = stand_in().await?;
    let mut platform = Platform::new();
    platform.set("ISM_TELEMETRY__LOG_FILTER", "warn");
    // The production pool size (the harness's 5 suits many platforms at once).
    platform.set("ISM_DATABASE__MAX_CONNECTIONS", "10");
    let tenant = platform.bootstrap(&reply_url);
    platform.spawn("all");
    platform.wait_ready().await;
    eprintln!(
        "platform {} up; {RUNS} runs, {IN_FLIGHT} messages at once",
        platform.id
    );
    let measured = ours(&platform, &tenant, &replies).await?;
    let workflows = platform.database("workflows").await;
    let steps: Vec<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM finished_at - started_at)::float8 * 1000 FROM run_steps
         WHERE finished_at IS NOT NULL ORDER BY 1",
    )
    .fetch_all(&workflows)
    .await?;
    let step_p = |q: f64| {
        let i = ((steps.len() as f64 * q).ceil() as usize).clamp(1, steps.len().max(1)) - 1;
        steps.get(i).copied().unwrap_or_default()
    };
    drop(platform);

    eprintln!("n8n: the same flow");
    let peer = n8n(&target, &n8n_reply_url, &n8n_replies).await;
    println!();
    println!("  {:<52} {:>10}  {:<16} baseline", "figure", "value", "aim");
    let peer_text = match &peer {
        Ok(m) => format!(
            "n8n {N8N_VERSION}.x, same flow, same feed: {:.0} runs/s",
            m.rate
        ),
        Err(e) => format!("n8n could not be measured: {e:#}"),
    };
    println!(
        "  {:<52} {:>10.0}  {:<16} {peer_text}",
        format!("runs/s (message -> branch -> tag -> reply, {RUNS})"),
        measured.rate,
        format!(">= {AIM_RATE:.0} {}", verdict(measured.rate >= AIM_RATE)),
    );
    if let Ok(m) = &peer {
        let times = measured.rate / m.rate;
        println!(
            "  {:<52} {:>10.1}  {:<16}",
            "times n8n's rate",
            times,
            format!(">= {AIM_TIMES_N8N:.0} {}", verdict(times >= AIM_TIMES_N8N)),
        );
        println!(
            "  {:<52} {:>10.1}  {:<16} n8n: {:.1} ms",
            "message to reply, p99 (ms)",
            percentile_ms(&measured.to_reply, 0.99),
            "-",
            percentile_ms(&m.to_reply, 0.99),
        );
    }
    println!(
        "  {:<52} {:>10.1}  {:<16} p50 {:.1} ms, {} steps timed",
        "step latency, p99 (ms)",
        step_p(0.99),
        format!(
            "< {AIM_STEP_P99_MS:.0} {}",
            verdict(step_p(0.99) < AIM_STEP_P99_MS)
        ),
        step_p(0.50),
        steps.len(),
    );
    println!(
        "  {:<52} {:>10.1}  {:<16}",
        "message to reply, p50 (ms)",
        percentile_ms(&measured.to_reply, 0.50),
        "-",
    );
    Ok(())
}
