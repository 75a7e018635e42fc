//! Broadcasts at 100,000 recipients, unthrottled, to a receiver behind a custom channel:
//! recipients handed to the provider per second beside the gateway's own outbound rate
//! on the same channel, measured in the same run (the physical limit of the path), the
//! whole broadcast's time, and the broadcasts process's peak memory after 10,000 and after
//! 100,000 recipients.
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use ism_e2e::{Platform, Tenant};
use ism_proto::broadcasts::v1 as bc;
use ism_proto::contacts::v1 as ct;
use ism_proto::gateway::v1 as gw;
use ism_proto::types::v1::{MessageContent, Text, message_content};
use prost::Message;

const CONTACTS: i64 = 100_000;
/// The first broadcast's audience (Contacts whose last name is `Small`).
const SMALL: i64 = 10_000;
/// Deliveries queued straight in the gateway for its own rate.
const BASELINE: i64 = 20_000;
const AIM_SHARE: f64 = 0.8;
const AIM_WHOLE: Duration = Duration::from_secs(60);

/// A receiver that only counts: when the first and the latest POST of each text prefix
/// arrived, and how many.
#[derive(Default)]
struct Counter {
    count: AtomicU64,
    first: std::sync::Mutex<Option<Instant>>,
    last: std::sync::Mutex<Option<Instant>>,
}

impl Counter {
    fn reset(&self) {
        self.count.store(0, Ordering::SeqCst);
        *self.first.lock().expect("lock") = None;
        *self.last.lock().expect("lock") = None;
    }

    /// Messages per second between the first and the last arrival.
    fn rate(&self) -> f64 {
        let first = self
            .first
            .lock()
            .expect("lock")
            .unwrap_or_else(Instant::now);
        let last = self.last.lock().expect("lock").unwrap_or_else(Instant::now);
        self.count.load(Ordering::SeqCst) as f64
            / last.duration_since(first).as_secs_f64().max(1e-3)
    }
}

async fn receive(State(counter): State<Arc<Counter>>, _body: Bytes) -> &'static str {
    let now = Instant::now();
    counter.first.lock().expect("lock").get_or_insert(now);
    *counter.last.lock().expect("lock") = Some(now);
    counter.count.fetch_add(1, Ordering::SeqCst);
    "{}"
}

async fn start_counter() -> anyhow::Result<(Arc<Counter>, String)> {
    let counter = Arc::new(Counter::default());
    let app = Router::new()
        .route("/outbound", post(receive))
        .with_state(counter.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/outbound", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((counter, url))
}

/// Peak resident memory of process `pid` so far, in MiB.
fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn wait_for(counter: &Counter, n: u64, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    while counter.count.load(Ordering::SeqCst) < n {
        anyhow::ensure!(
            Instant::now() < deadline,
            "only {} of {n} messages reached the receiver",
            counter.count.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// `CONTACTS` Contacts reachable on the channel, the first `SMALL` of them named `Small`,
/// written straight in the contacts database as a bulk import would.
async fn seed(platform: &Platform, tenant: &Tenant) -> anyhow::Result<()> {
    let db = platform.database("contacts").await;
    let workspace: uuid::Uuid = tenant.workspace_id.parse()?;
    let channel: uuid::Uuid = tenant.channel_id.parse()?;
    sqlx::query(
        "INSERT INTO contacts (id, workspace_id, first_name, last_name)
         SELECT (lpad(to_hex((extract(epoch FROM now()) * 1000)::bigint - $2 + i), 12, '0')
                 || '7' || substr(md5(i::text), 1, 19))::uuid,
             $1, 'Person' || i, CASE WHEN i <= $3 THEN 'Small' ELSE 'Large' END
         FROM generate_series(1, $2) AS i",
    )
    .bind(workspace)
    .bind(CONTACTS)
    .bind(SMALL)
    .execute(&db)
    .await?;
    sqlx::query(
        "INSERT INTO channel_identities (workspace_id, channel_id, external_id, contact_id)
         SELECT $1, $2, 'r' || first_name, id FROM contacts WHERE workspace_id = $1",
    )
    .bind(workspace)
    .bind(channel)
    .execute(&db)
    .await?;
    sqlx::query("VACUUM ANALYZE contacts, channel_identities")
        .execute(&db)
        .await?;
    Ok(())
}

/// Queues `count` deliveries on the tenant's channel straight in the gateway's table.
async fn queue_in_gateway(platform: &Platform, tenant: &Tenant, count: i64) -> anyhow::Result<()> {
    let db = platform.database("gateway").await;
    let content = MessageContent {
        kind: Some(message_content::Kind::Text(Text {
            body: "baseline".into(),
        })),
        ..Default::default()
    }
    .encode_to_vec();
    sqlx::query(
        "INSERT INTO deliveries (message_id, workspace_id, channel_id, requested_by, recipient, content)
         SELECT gen_random_uuid(), $1, $2, 'bench', 'r' || g, $3 FROM generate_series(1, $4) g",
    )
    .bind(tenant.workspace_id.parse::<uuid::Uuid>()?)
    .bind(tenant.channel_id.parse::<uuid::Uuid>()?)
    .bind(content)
    .bind(count)
    .execute(&db)
    .await?;
    Ok(())
}

fn definition(tenant: &Tenant, name: &str, last_name: Option<&str>) -> bc::BroadcastDefinition {
    let filter = match last_name {
        Some(value) => ct::Filter {
            groups: vec![ct::ConditionGroup {
                conditions: vec![ct::Condition {
                    kind: Some(ct::condition::Kind::Field(ct::FieldCondition {
                        field: "last_name".into(),
                        operator: ct::FieldOperator::Is as i32,
                        values: vec![ct::FieldValue {
                            kind: Some(ct::field_value::Kind::Text(value.into())),
                        }],
                    })),
                }],
                ..Default::default()
            }],
            ..Default::default()
        },
        None => ct::Filter::default(),
    };
    bc::BroadcastDefinition {
        name: name.into(),
        channel_id: tenant.channel_id.clone(),
        audience: Some(bc::Audience {
            source: Some(bc::audience::Source::Filter(filter)),
            exclude: None,
        }),
        content: Some(MessageContent {
            kind: Some(message_content::Kind::Text(Text {
                body: "Our spring sale starts today".into(),
            })),
            ..Default::default()
        }),
        labels: Vec::new(),
    }
}

/// Runs one broadcast to `n` recipients: (recipients handed to the provider per second,
/// time from start to completed).
async fn broadcast(
    platform: &Platform,
    tenant: &Tenant,
    counter: &Counter,
    definition: bc::BroadcastDefinition,
    n: i64,
) -> anyhow::Result<(f64, Duration)> {
    counter.reset();
    let api = platform.api(tenant).await;
    let created = api.create_broadcast(definition).await;
    let started = Instant::now();
    api.start_broadcast(&created.id).await;
    wait_for(counter, n as u64, Duration::from_secs(600)).await?;
    let rate = counter.rate();
    // A fresh token: the first may have expired meanwhile.
    let api = platform.api(tenant).await;
    api.wait_for_broadcast(&created.id, Duration::from_secs(600), "completed", |b| {
        b.state == bc::BroadcastState::Completed as i32
    })
    .await;
    Ok((rate, started.elapsed()))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (counter, url) = start_counter().await?;
    let mut platform = Platform::new();
    platform.set("ISM_TELEMETRY__LOG_FILTER", "warn");
    let tenant = platform.bootstrap(&url);
    // Each service in a process of its own, so the broadcasts one is measured alone.
    let broadcasts = platform.spawn_each()["broadcasts"];
    platform.wait_ready().await;
    let api = platform.api(&tenant).await;
    let unthrottled = gw::UpdateChannelRequest {
        id: tenant.channel_id.clone(),
        rate_limit_per_second: Some(100_000),
        ..Default::default()
    };
    api.gateway
        .clone()
        .update_channel(api.authed(unthrottled))
        .await?;
    eprintln!("platform {} up; seeding {CONTACTS} contacts", platform.id);
    seed(&platform, &tenant).await?;

    eprintln!("gateway alone: {BASELINE} deliveries queued on the channel");
    counter.reset();
    queue_in_gateway(&platform, &tenant, BASELINE).await?;
    wait_for(&counter, BASELINE as u64, Duration::from_secs(600)).await?;
    let gateway_rate = counter.rate();

    eprintln!("broadcast to {SMALL}");
    let (_, small_took) = broadcast(
        &platform,
        &tenant,
        &counter,
        definition(&tenant, "Small", Some("Small")),
        SMALL,
    )
    .await?;
    let rss_small = peak_rss_mib(platform.pid(broadcasts));
    eprintln!(
        "broadcast to {CONTACTS} (the first took {:.1} s)",
        small_took.as_secs_f64()
    );
    let (rate, took) = broadcast(
        &platform,
        &tenant,
        &counter,
        definition(&tenant, "All", None),
        CONTACTS,
    )
    .await?;
    let rss_large = peak_rss_mib(platform.pid(broadcasts));

    let share = rate / gateway_rate;
    println!();
    println!("  {:<58} {:>10}  {:<14} baseline", "figure", "value", "aim");
    println!(
        "  {:<58} {:>10.0}  {:<14} gateway alone on the same channel: {gateway_rate:.0}/s",
        "recipients handed to the provider /s (100,000)",
        rate,
        format!(
            ">= {:.0} ({}%)",
            gateway_rate * AIM_SHARE,
            (AIM_SHARE * 100.0) as u32
        ),
    );
    println!(
        "  {:<58} {:>10.2}  {:<14}",
        "share of the gateway's own outbound rate",
        share,
        format!(">= {AIM_SHARE} {}", verdict(share >= AIM_SHARE)),
    );
    println!(
        "  {:<58} {:>10.1}  {:<14}",
        "whole broadcast, start to completed (s)",
        took.as_secs_f64(),
        format!("< {} {}", AIM_WHOLE.as_secs(), verdict(took < AIM_WHOLE)),
    );
    println!(
        "  {:<58} {:>10.0}  {:<14}",
        "broadcasts process peak RSS after 10,000 recipients (MiB)", rss_small, "flat",
    );
    println!(
        "  {:<58} {:>10.0}  {:<14}",
        "broadcasts process peak RSS after 100,000 recipients (MiB)",
        rss_large,
        format!("flat {}", verdict(rss_large < rss_small * 1.5 + 16.0)),
    );
    Ok(())
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}
