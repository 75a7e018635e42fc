//! The gateway's own figures on this machine: webhook acceptance latency at a fixed rate
//! across providers (beside a bare HTTP handler), outbound messages per second to a local
//! provider stand-in when unthrottled (beside raw confirmed RabbitMQ publishes), and how
//! closely a per-channel rate limit is held over a minute.
//!
//! Boots `ism serve gateway` and `ism serve workspaces` (set `ISM_BIN` to bench a release
//! build); `make bench` runs it through `scripts/bench.sh`.
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use ism_e2e::{FakeProvider, Platform, Receiver, authed, baseline, credentials};
use ism_proto::gateway::v1 as gw;
use ism_proto::gateway::v1::channel_credentials::Kind as Given;
use ism_proto::gateway::v1::gateway_service_client::GatewayServiceClient;
use ism_proto::types::v1::{ChannelType, MessageContent, Text, message_content};
use prost::Message as _;
use serde_json::json;
use tokio::task::JoinSet;

/// Webhooks per second of the acceptance phase, and its length.
const WEBHOOK_RATE: u64 = 2_000;
const WEBHOOK_FOR: Duration = Duration::from_secs(10);
/// Outbound messages queued for the unthrottled phase, to this many recipients.
const OUTBOUND: i64 = 30_000;
const RECIPIENTS: i64 = 10_000;
/// The per-channel limit held over [`LIMIT_WINDOW`], after [`LIMIT_SETTLE`].
const LIMIT: u32 = 50;
const LIMIT_SETTLE: Duration = Duration::from_secs(5);
const LIMIT_WINDOW: Duration = Duration::from_secs(60);
const BASELINE_FOR: Duration = Duration::from_secs(4);

/// The issue's aims.
const AIM_P99_MS: f64 = 20.0;
const AIM_OUTBOUND: f64 = 3_000.0;
const AIM_LIMIT_DEVIATION: f64 = 0.05;

/// One prepared webhook.
struct Webhook {
    url: String,
    content_type: &'static str,
    header: (&'static str, String),
    body: bytes::Bytes,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let receiver = Receiver::start().await;
    let provider = FakeProvider::start().await;
    let mut platform = Platform::new();
    let public = format!("http://127.0.0.1:{}", platform.http_port);
    platform.set("ISM_TELEMETRY__LOG_FILTER", "warn");
    platform.set("ISM_DATABASE__MAX_CONNECTIONS", "10");
    let tenant = platform.bootstrap(&receiver.url);
    platform.spawn("workspaces");
    platform.spawn("gateway");
    wait_ready(&platform, &public).await?;
    let token = platform.token(&tenant).await;
    let mut gateway = GatewayServiceClient::new(platform.channel("gateway").connect().await?);
    eprintln!("platform {} up; measuring the baselines", platform.id);

    let publishes =
        baseline::confirmed_publishes(&format!("{}.bench.baseline", platform.id), BASELINE_FOR)
            .await?;
    let bare = bare_handler().await?;
    let bare_latency = fire(Arc::new(vec![prepared_bare(&bare)])).await?;

    // One channel of each provider type, all calling the stand-in.
    let mut channels = Vec::new();
    for (kind, given) in [
        (
            ChannelType::Whatsapp,
            credentials::whatsapp("106540352242922"),
        ),
        (ChannelType::Messenger, credentials::meta("1234567890")),
        (ChannelType::Telegram, credentials::telegram()),
        (ChannelType::TwilioSms, credentials::twilio()),
        (ChannelType::Line, credentials::line()),
        (ChannelType::Viber, credentials::viber()),
    ] {
        channels.push(connect(&mut gateway, &token, kind, given, &provider.url, 0).await?);
    }
    let secret = provider.telegram_secret();
    let total = WEBHOOK_RATE * WEBHOOK_FOR.as_secs();
    let webhooks: Vec<Webhook> = (0..total)
        .map(|n| {
            let channel = &channels[n as usize % channels.len()];
            prepare(&public, channel, n, &secret)
        })
        .collect();
    eprintln!(
        "acceptance: {WEBHOOK_RATE} webhooks/s for {} s across 6 providers",
        WEBHOOK_FOR.as_secs()
    );
    let accepted = fire(Arc::new(webhooks)).await?;

    eprintln!("outbound: {OUTBOUND} messages to {RECIPIENTS} recipients, unthrottled");
    let fast = connect(
        &mut gateway,
        &token,
        ChannelType::Whatsapp,
        credentials::whatsapp("900000000000001"),
        &provider.url,
        100_000,
    )
    .await?;
    let db = platform.database("gateway").await;
    let outbound = queue_and_time(&db, &provider, &fast, OUTBOUND, RECIPIENTS).await?;

    eprintln!(
        "rate limit: {LIMIT}/s held over {} s",
        LIMIT_WINDOW.as_secs()
    );
    let slow = connect(
        &mut gateway,
        &token,
        ChannelType::Whatsapp,
        credentials::whatsapp("900000000000002"),
        &provider.url,
        LIMIT,
    )
    .await?;
    let queued = i64::from(LIMIT) * (LIMIT_SETTLE + LIMIT_WINDOW).as_secs() as i64 * 11 / 10;
    insert_deliveries(&db, &slow, queued, queued).await?;
    let started = Instant::now();
    tokio::time::sleep(LIMIT_SETTLE + LIMIT_WINDOW + Duration::from_secs(1)).await;
    let path = "/900000000000002/messages";
    let (from, to) = (
        started + LIMIT_SETTLE,
        started + LIMIT_SETTLE + LIMIT_WINDOW,
    );
    let in_window = provider
        .arrivals(path)
        .into_iter()
        .filter(|at| *at >= from && *at < to)
        .count();
    let held = in_window as f64 / LIMIT_WINDOW.as_secs_f64();

    println!();
    println!(
        "gateway benchmark (this machine, one run)            measured      aim         baseline"
    );
    let row = |what: &str, value: String, aim: String, base: String| {
        println!("  {what:<50} {value:>10}  {aim:<11} {base}");
    };
    row(
        "webhook acceptance p50 ms (2,000/s, 6 providers)",
        format!("{:.2}", accepted.p50),
        String::new(),
        format!("{:.2} (bare handler)", bare_latency.p50),
    );
    row(
        "webhook acceptance p99 ms",
        format!("{:.2}", accepted.p99),
        format!("< {AIM_P99_MS} {}", verdict(accepted.p99 < AIM_P99_MS)),
        format!("{:.2} (bare handler)", bare_latency.p99),
    );
    row(
        "webhooks answered non-200",
        accepted.errors.to_string(),
        String::new(),
        format!("{} (bare handler)", bare_latency.errors),
    );
    row(
        "outbound messages /s to a provider stand-in",
        format!("{outbound:.0}"),
        format!(">= {AIM_OUTBOUND} {}", verdict(outbound >= AIM_OUTBOUND)),
        format!("{publishes:.0} raw confirmed publishes /s"),
    );
    let deviation = (held - f64::from(LIMIT)).abs() / f64::from(LIMIT);
    row(
        &format!(
            "per-channel limit of {LIMIT}/s over {} s",
            LIMIT_WINDOW.as_secs()
        ),
        format!("{held:.2}/s"),
        format!("±5 % {}", verdict(deviation <= AIM_LIMIT_DEVIATION)),
        format!("{:+.2} % off", (held / f64::from(LIMIT) - 1.0) * 100.0),
    );
    Ok(())
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}

async fn wait_ready(platform: &Platform, public: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let http = reqwest::Client::new();
    loop {
        let up = http
            .get(format!("{public}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if up && platform.serving("gateway").await && platform.serving("workspaces").await {
            return Ok(());
        }
        anyhow::ensure!(Instant::now() < deadline, "the gateway did not start");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn connect(
    gateway: &mut GatewayServiceClient<tonic::transport::Channel>,
    token: &str,
    kind: ChannelType,
    credentials: Given,
    base: &str,
    rate_limit_per_second: u32,
) -> anyhow::Result<gw::Channel> {
    let request = gw::ConnectChannelRequest {
        r#type: kind as i32,
        name: format!("bench {kind:?}"),
        credentials: Some(gw::ChannelCredentials {
            kind: Some(credentials),
        }),
        api_base_url: base.to_owned(),
        rate_limit_per_second,
        ..Default::default()
    };
    gateway
        .connect_channel(authed(token, request))
        .await?
        .into_inner()
        .channel
        .ok_or_else(|| anyhow::anyhow!("no channel"))
}

/// The `n`th webhook for `channel`, in its provider's format, signed; one sender in 500.
fn prepare(public: &str, channel: &gw::Channel, n: u64, telegram_secret: &str) -> Webhook {
    let url = format!("{public}{}", channel.webhook_path);
    let from = 1000 + n % 500;
    let json = "application/json";
    let (content_type, header, body) = match ChannelType::try_from(channel.r#type) {
        Ok(ChannelType::Whatsapp) => {
            let body = serde_json::to_vec(
                &json!({"object": "whatsapp_business_account", "entry": [{"id": "W", "changes": [{"field": "messages", "value": {
                "contacts": [{"profile": {"name": "Bench"}, "wa_id": from.to_string()}],
                "messages": [{"from": from.to_string(), "id": format!("wamid.b{n}"), "timestamp": "1764460800", "type": "text", "text": {"body": "hello"}}]}}]}]}),
            );
            let body = body.unwrap_or_default();
            (
                json,
                ("x-hub-signature-256", credentials::meta_signature(&body)),
                body,
            )
        }
        Ok(ChannelType::Messenger) => {
            let body = serde_json::to_vec(&json!({"object": "page", "entry": [{"id": "1234567890", "time": 1, "messaging": [
                {"sender": {"id": from.to_string()}, "recipient": {"id": "1234567890"}, "timestamp": 1764460800000_i64,
                 "message": {"mid": format!("m_b{n}"), "text": "hello"}}]}]})).unwrap_or_default();
            (
                json,
                ("x-hub-signature-256", credentials::meta_signature(&body)),
                body,
            )
        }
        Ok(ChannelType::Telegram) => {
            let body = serde_json::to_vec(
                &json!({"update_id": n, "message": {"message_id": n, "date": 1764460800,
                "chat": {"id": from, "type": "private"}, "text": "hello"}}),
            )
            .unwrap_or_default();
            (
                json,
                (
                    "x-telegram-bot-api-secret-token",
                    telegram_secret.to_owned(),
                ),
                body,
            )
        }
        Ok(ChannelType::TwilioSms) => {
            let body = format!(
                "MessageSid=SMb{n}&SmsStatus=received&NumMedia=0&Body=hello&From=%2B1555{from}&To=%2B15017122661"
            );
            let signature = credentials::twilio_signature(&url, &body);
            (
                "application/x-www-form-urlencoded",
                ("x-twilio-signature", signature),
                body.into_bytes(),
            )
        }
        Ok(ChannelType::Line) => {
            let body = serde_json::to_vec(&json!({"destination": "U0", "events": [{"type": "message", "timestamp": 1764460800000_i64,
                "source": {"type": "user", "userId": format!("U{from}")}, "message": {"id": format!("{n}"), "type": "text", "text": "hello"}}]})).unwrap_or_default();
            (
                json,
                ("x-line-signature", credentials::line_signature(&body)),
                body,
            )
        }
        _ => {
            let body = serde_json::to_vec(&json!({"event": "message", "timestamp": 1764460800000_i64, "message_token": n,
                "sender": {"id": format!("v{from}"), "name": "Bench"}, "message": {"type": "text", "text": "hello"}})).unwrap_or_default();
            (
                json,
                (
                    "x-viber-content-signature",
                    credentials::viber_signature(&body),
                ),
                body,
            )
        }
    };
    Webhook {
        url,
        content_type,
        header,
        body: body.into(),
    }
}

/// A bare HTTP handler on this machine: answers every POST with 200.
async fn bare_handler() -> anyhow::Result<String> {
    let app = Router::new().route("/hook", post(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

fn prepared_bare(url: &str) -> Webhook {
    Webhook {
        url: url.to_owned(),
        content_type: "application/json",
        header: ("x-bench", "1".into()),
        body: bytes::Bytes::from_static(br#"{"object":"page","entry":[]}"#),
    }
}

/// Latency percentiles of a fixed-rate run.
struct Latency {
    p50: f64,
    p99: f64,
    errors: usize,
}

/// POSTs `webhooks` (cycling if fewer) at [`WEBHOOK_RATE`] for [`WEBHOOK_FOR`], each on
/// schedule whether or not earlier ones were answered; the answers' latencies.
async fn fire(webhooks: Arc<Vec<Webhook>>) -> anyhow::Result<Latency> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .build()?;
    let total = WEBHOOK_RATE * WEBHOOK_FOR.as_secs();
    let started = tokio::time::Instant::now();
    let mut tasks = JoinSet::new();
    for n in 0..total {
        let due = started + Duration::from_micros(n * 1_000_000 / WEBHOOK_RATE);
        tokio::time::sleep_until(due).await;
        let (http, webhooks) = (http.clone(), webhooks.clone());
        tasks.spawn(async move {
            let webhook = &webhooks[n as usize % webhooks.len()];
            let (name, value) = &webhook.header;
            let sent = Instant::now();
            let ok = http
                .post(&webhook.url)
                .header("content-type", webhook.content_type)
                .header(*name, value)
                .body(webhook.body.clone())
                .send()
                .await
                .is_ok_and(|r| r.status().as_u16() == 200);
            (sent.elapsed().as_secs_f64() * 1000.0, ok)
        });
    }
    let mut latencies = Vec::with_capacity(total as usize);
    let mut errors = 0;
    while let Some(joined) = tasks.join_next().await {
        let (ms, ok) = joined?;
        latencies.push(ms);
        errors += usize::from(!ok);
    }
    latencies.sort_by(f64::total_cmp);
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    Ok(Latency {
        p50: at(0.50),
        p99: at(0.99),
        errors,
    })
}

/// Queues `count` deliveries on `channel` to `recipients` distinct recipients straight in
/// the gateway's table (as its consumer would), in one statement.
async fn insert_deliveries(
    db: &sqlx::PgPool,
    channel: &gw::Channel,
    count: i64,
    recipients: i64,
) -> anyhow::Result<()> {
    let content = MessageContent {
        kind: Some(message_content::Kind::Text(Text {
            body: "Your order has shipped".into(),
        })),
        ..Default::default()
    }
    .encode_to_vec();
    let channel_id: uuid::Uuid = channel.id.parse()?;
    let workspace_id: uuid::Uuid = channel.workspace_id.parse()?;
    sqlx::query(
        "INSERT INTO deliveries (message_id, workspace_id, channel_id, requested_by, recipient, content)
         SELECT gen_random_uuid(), $1, $2, 'bench', 'r' || (g % $4), $3 FROM generate_series(1, $5) g",
    )
    .bind(workspace_id)
    .bind(channel_id)
    .bind(content)
    .bind(recipients)
    .bind(count)
    .execute(db)
    .await?;
    Ok(())
}

/// Queues `count` deliveries and measures the rate at which they reach the stand-in.
async fn queue_and_time(
    db: &sqlx::PgPool,
    provider: &FakeProvider,
    channel: &gw::Channel,
    count: i64,
    recipients: i64,
) -> anyhow::Result<f64> {
    let path = format!("/{}/messages", channel.account_id);
    insert_deliveries(db, channel, count, recipients).await?;
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let arrivals = provider.arrivals(&path);
        if arrivals.len() as i64 >= count {
            let first = arrivals.iter().min().copied().unwrap_or_else(Instant::now);
            let last = arrivals.iter().max().copied().unwrap_or_else(Instant::now);
            return Ok(count as f64 / last.duration_since(first).as_secs_f64().max(1e-3));
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {count} messages reached the provider",
            arrivals.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
