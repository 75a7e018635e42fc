//! Event webhooks to local receivers: deliveries per second to one endpoint and the time
//! from each domain event to its arrival at the receiver (p50, p99), beside a bare HTTP
//! client POSTing the same body with the same headers to an equal receiver in the same run
//! (the physical limit of the path here), at the service's concurrency per endpoint and
//! wider; and how much one receiver answering in 2 s lowers another endpoint's rate.
//!
//! The events are `contacts.contact.created`, one per row of a contacts import (the
//! contacts service stamps each event in the transaction of its 5,000-row chunk). The
//! latency runs from the body's `timestamp` (the event's time, in milliseconds) to the
//! request's arrival at the receiver, which answers 200 at once; rates count between the
//! first and the last arrival.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use ism_e2e::{Platform, Tenant};
use ism_proto::contacts::v1 as ct;
use ism_proto::integrations::v1 as ig;

const EVENT_TYPE: &str = "contacts.contact.created";
/// Contacts imported for the main figures, one event each.
const EVENTS: u64 = 20_000;
/// Contacts imported for each half of the slow-neighbour comparison.
const NEIGHBOUR_EVENTS: u64 = 5_000;
/// How long the slow receiver takes to answer.
const SLOW_ANSWER: Duration = Duration::from_secs(2);
/// POSTs in flight per endpoint (`integrations.endpoint_concurrency`, left at its default),
/// the bare client's first concurrency.
const SERVICE_CONCURRENCY: u64 = 8;
/// The bare client's wider concurrency.
const WIDE_CONCURRENCY: u64 = 64;
const AIM_RATE: f64 = 2_000.0;
const AIM_SHARE: f64 = 0.5;
const AIM_DROP_PERCENT: f64 = 10.0;
/// The longest any phase may take before the bench gives up.
const PHASE: Duration = Duration::from_secs(600);
/// Bytes per ImportContacts data message.
const IMPORT_CHUNK: usize = 1 << 20;

/// What a receiver saw since its last reset.
#[derive(Default)]
struct Window {
    count: u64,
    first: Option<Instant>,
    last: Option<Instant>,
    /// From each body's `timestamp` to its arrival.
    latencies: Vec<Duration>,
    /// The first POST's content-type and `webhook-*` headers, and its body.
    sample: Option<(HeaderMap, Bytes)>,
}

/// A receiver that counts POSTs and answers 200 after `delay`.
struct Counter {
    delay: Duration,
    window: Mutex<Window>,
}

impl Counter {
    fn reset(&self) {
        *self.window.lock().expect("lock") = Window::default();
    }

    fn count(&self) -> u64 {
        self.window.lock().expect("lock").count
    }

    /// POSTs per second between the first and the last arrival.
    fn rate(&self) -> f64 {
        let window = self.window.lock().expect("lock");
        let (Some(first), Some(last)) = (window.first, window.last) else {
            return 0.0;
        };
        window.count as f64 / last.duration_since(first).as_secs_f64().max(1e-3)
    }

    /// The latencies recorded so far, shortest first.
    fn latencies(&self) -> Vec<Duration> {
        let mut latencies = self.window.lock().expect("lock").latencies.clone();
        latencies.sort_unstable();
        latencies
    }

    fn sample(&self) -> Option<(HeaderMap, Bytes)> {
        self.window.lock().expect("lock").sample.clone()
    }
}

/// When the event of a webhook body happened: its `timestamp` (RFC 3339).
fn event_time(body: &[u8]) -> Option<SystemTime> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let at: prost_types::Timestamp = value.get("timestamp")?.as_str()?.parse().ok()?;
    SystemTime::try_from(at).ok()
}

async fn receive(
    State(counter): State<Arc<Counter>>,
    headers: HeaderMap,
    body: Bytes,
) -> &'static str {
    let arrived = Instant::now();
    let latency = event_time(&body).and_then(|at| SystemTime::now().duration_since(at).ok());
    {
        let mut window = counter.window.lock().expect("lock");
        window.first.get_or_insert(arrived);
        window.last = Some(arrived);
        window.count += 1;
        window.latencies.extend(latency);
        if window.sample.is_none() {
            let kept: HeaderMap = headers
                .iter()
                .filter(|(name, _)| {
                    name.as_str() == "content-type" || name.as_str().starts_with("webhook-")
                })
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect();
            window.sample = Some((kept, body));
        }
    }
    if !counter.delay.is_zero() {
        tokio::time::sleep(counter.delay).await;
    }
    "{}"
}

/// A counting receiver on loopback answering after `delay`, and its URL.
async fn start_counter(delay: Duration) -> anyhow::Result<(Arc<Counter>, String)> {
    let counter = Arc::new(Counter {
        delay,
        window: Mutex::default(),
    });
    let app = Router::new()
        .route("/outbound", post(receive))
        .with_state(counter.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/outbound", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((counter, url))
}

/// Waits until `counter` has seen `n` POSTs, telling how far it got every 10 s.
async fn wait_for(counter: &Counter, n: u64) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut told = started;
    loop {
        let count = counter.count();
        if count >= n {
            return Ok(());
        }
        anyhow::ensure!(
            started.elapsed() < PHASE,
            "only {count} of {n} webhooks reached the receiver in {} s",
            PHASE.as_secs()
        );
        if told.elapsed() >= Duration::from_secs(10) {
            eprintln!("  {count} of {n} arrived");
            told = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An unordered endpoint without rate limit, following new Contacts.
fn definition(url: &str) -> ig::WebhookEndpointDefinition {
    ig::WebhookEndpointDefinition {
        url: url.into(),
        description: "webhooks bench".into(),
        event_types: vec![EVENT_TYPE.into()],
        ..Default::default()
    }
}

/// Imports `rows` new Contacts (one `contacts.contact.created` each), named after `prefix`.
async fn import(
    platform: &Platform,
    tenant: &Tenant,
    prefix: &str,
    rows: u64,
) -> anyhow::Result<()> {
    use ct::import_contacts_request::Part;
    let columns = ["first_name", "last_name", "email"];
    let mut csv = columns.join(",") + "\n";
    for i in 0..rows {
        csv.push_str(&format!(
            "Bench,{prefix}{i},{prefix}{i}@webhooks.example.com\n"
        ));
    }
    let settings = ct::ImportSettings {
        columns: columns
            .iter()
            .map(|c| ct::ColumnMapping {
                column: (*c).into(),
                field: (*c).into(),
            })
            .collect(),
        r#match: ct::ImportMatch::None as i32,
        channel_id: String::new(),
    };
    let mut parts = vec![ct::ImportContactsRequest {
        part: Some(Part::Settings(settings)),
    }];
    parts.extend(
        csv.as_bytes()
            .chunks(IMPORT_CHUNK)
            .map(|chunk| ct::ImportContactsRequest {
                part: Some(Part::Data(chunk.to_vec())),
            }),
    );
    // A fresh token each time: an earlier one may have expired meanwhile.
    let api = platform.api(tenant).await;
    let outcome = tokio::time::timeout(PHASE, api.import_contacts(futures::stream::iter(parts)))
        .await
        .context("the import took too long")?;
    anyhow::ensure!(
        outcome.created == rows as i64,
        "the import created {} of {rows} Contacts ({} failed)",
        outcome.created,
        outcome.failed
    );
    Ok(())
}

/// Imports `n` Contacts and waits for their webhooks at `counter`: its deliveries per second.
async fn deliver(
    platform: &Platform,
    tenant: &Tenant,
    counter: &Counter,
    prefix: &str,
    n: u64,
) -> anyhow::Result<f64> {
    counter.reset();
    import(platform, tenant, prefix, n).await?;
    wait_for(counter, n).await?;
    let rate = counter.rate();
    eprintln!("  {rate:.0}/s");
    Ok(rate)
}

/// A bare HTTP client POSTing `sample` `EVENTS` times to `url`, `concurrency` at once,
/// reading each answer as the service does: `counter`'s arrivals per second.
async fn bare(
    url: &str,
    counter: &Counter,
    sample: &(HeaderMap, Bytes),
    concurrency: u64,
) -> anyhow::Result<f64> {
    counter.reset();
    let client = reqwest::Client::new();
    let next = Arc::new(AtomicU64::new(0));
    let mut posters = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let client = client.clone();
        let next = next.clone();
        let (url, headers, body) = (url.to_owned(), sample.0.clone(), sample.1.clone());
        posters.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < EVENTS {
                let response = client
                    .post(&url)
                    .headers(headers.clone())
                    .body(body.clone())
                    .send()
                    .await?;
                let status = response.status();
                response.bytes().await?;
                anyhow::ensure!(status.is_success(), "the receiver answered {status}");
            }
            anyhow::Ok(())
        });
    }
    tokio::time::timeout(PHASE, async {
        while let Some(done) = posters.join_next().await {
            done??;
        }
        anyhow::Ok(())
    })
    .await
    .context("the bare client took too long")??;
    anyhow::ensure!(
        counter.count() == EVENTS,
        "the receiver counted {} of {EVENTS} bare POSTs",
        counter.count()
    );
    let rate = counter.rate();
    eprintln!("  {rate:.0}/s");
    Ok(rate)
}

/// The `q` quantile of `sorted`, in milliseconds.
fn percentile_ms(sorted: &[Duration], q: f64) -> f64 {
    let index = (sorted.len().saturating_sub(1) as f64 * q).round() as usize;
    sorted.get(index).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (fast, fast_url) = start_counter(Duration::ZERO).await?;
    let (plain, plain_url) = start_counter(Duration::ZERO).await?;
    let (slow, slow_url) = start_counter(SLOW_ANSWER).await?;
    let mut platform = Platform::new();
    platform.set("ISM_TELEMETRY__LOG_FILTER", "warn");
    // The production pool size (the harness's 5 suits many platforms at once).
    platform.set("ISM_DATABASE__MAX_CONNECTIONS", "10");
    // The channel's outbound URL: this bench sends no message on it.
    let tenant = platform.bootstrap(&plain_url);
    platform.spawn("all");
    platform.wait_ready().await;
    eprintln!("platform {} up", platform.id);
    let api = platform.api(&tenant).await;
    api.create_webhook_endpoint(definition(&fast_url)).await;

    eprintln!("endpoint A: {EVENTS} Contacts imported, their webhooks to a receiver");
    let rate = deliver(&platform, &tenant, &fast, "main", EVENTS).await?;
    let latencies = fast.latencies();
    anyhow::ensure!(
        !latencies.is_empty(),
        "no webhook body carried a readable timestamp"
    );
    let sample = fast.sample().context("no webhook was captured")?;

    eprintln!("bare client: the same body {EVENTS} times, {SERVICE_CONCURRENCY} at once");
    let bare_rate = bare(&plain_url, &plain, &sample, SERVICE_CONCURRENCY).await?;
    eprintln!("bare client: the same body {EVENTS} times, {WIDE_CONCURRENCY} at once");
    let wide_rate = bare(&plain_url, &plain, &sample, WIDE_CONCURRENCY).await?;

    eprintln!("endpoint A alone: {NEIGHBOUR_EVENTS} more Contacts");
    let alone = deliver(&platform, &tenant, &fast, "alone", NEIGHBOUR_EVENTS).await?;
    eprintln!(
        "endpoint A beside endpoint B answering in {} s: {NEIGHBOUR_EVENTS} more Contacts",
        SLOW_ANSWER.as_secs()
    );
    let api = platform.api(&tenant).await;
    api.create_webhook_endpoint(definition(&slow_url)).await;
    slow.reset();
    let beside = deliver(&platform, &tenant, &fast, "beside", NEIGHBOUR_EVENTS).await?;
    let slow_reached = slow.count();

    let share = rate / bare_rate;
    let drop_percent = (alone - beside) / alone * 100.0;
    println!();
    println!("  {:<58} {:>10}  {:<14} baseline", "figure", "value", "aim");
    println!(
        "  {:<58} {:>10.0}  {:<14} bare client, same body: {bare_rate:.0}/s {SERVICE_CONCURRENCY} at once, \
         {wide_rate:.0}/s {WIDE_CONCURRENCY} at once",
        format!("webhook deliveries /s ({EVENTS} events, one endpoint)"),
        rate,
        format!(">= {AIM_RATE:.0} {}", verdict(rate >= AIM_RATE)),
    );
    println!(
        "  {:<58} {:>10.2}  {:<14}",
        format!("share of the bare client's rate ({SERVICE_CONCURRENCY} at once)"),
        share,
        format!(">= {AIM_SHARE} {}", verdict(share >= AIM_SHARE)),
    );
    println!(
        "  {:<58} {:>10.1}  {:<14} {} events timed",
        "event to receiver, p50 (ms)",
        percentile_ms(&latencies, 0.50),
        "-",
        latencies.len(),
    );
    println!(
        "  {:<58} {:>10.1}  {:<14}",
        "event to receiver, p99 (ms)",
        percentile_ms(&latencies, 0.99),
        "-",
    );
    println!(
        "  {:<58} {:>10.0}  {:<14}",
        format!("endpoint A deliveries /s alone ({NEIGHBOUR_EVENTS} events)"),
        alone,
        "-",
    );
    println!(
        "  {:<58} {:>10.0}  {:<14} B's receiver got {slow_reached} meanwhile",
        format!(
            "endpoint A deliveries /s beside B answering in {} s",
            SLOW_ANSWER.as_secs()
        ),
        beside,
        "-",
    );
    println!(
        "  {:<58} {:>10.1}  {:<14}",
        "drop of A's rate beside the slow endpoint (%)",
        drop_percent,
        format!(
            "<= {AIM_DROP_PERCENT:.0} {}",
            verdict(drop_percent <= AIM_DROP_PERCENT)
        ),
    );
    Ok(())
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}
