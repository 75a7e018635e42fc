//! Throughput, latency and memory of the first flow (a signed custom webhook through the
//! gateway, RabbitMQ, contacts and conversations into the conversations database) on
//! this machine, beside the raw rates of RabbitMQ and Postgres measured in the same run.
//!
//! Boots `ism serve all` like the end-to-end tests do (set `ISM_BIN` to bench a release
//! build); `make bench` runs it through `scripts/bench.sh`.
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use ism_e2e::statements::{self, Statements};
use ism_e2e::{Platform, Receiver, Tenant, baseline, sign};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::task::JoinSet;

/// The broker the harness points the platform at.
const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// Distinct senders, so that many contacts and conversations exist, as in reality.
const SENDERS: u64 = 1_000;
/// Webhooks warming the platform up (connections, tokens, first contacts) before timing.
const WARM_UP: u64 = 200;
/// Concurrent HTTP clients of the max-rate phase.
const CLIENTS: usize = 64;
/// Length of the max-rate phase.
const MAX_RATE_FOR: Duration = Duration::from_secs(10);
/// Webhooks per second of the fixed-rate (latency) phase, and its length.
const FIXED_RATE: u64 = 500;
const FIXED_RATE_FOR: Duration = Duration::from_secs(10);
/// How long accepted messages may take to be stored before the bench gives up on them.
const DRAIN_LIMIT: Duration = Duration::from_secs(60);
/// How often the conversations database is polled for stored messages.
const POLL: Duration = Duration::from_millis(100);
/// Length of each baseline.
const BASELINE_FOR: Duration = Duration::from_secs(4);
/// Connections of the wider Postgres baseline, as many as a service pool has.
const INSERT_CONNECTIONS: usize = 10;
/// Linux reports process CPU time in ticks of 1/100 s (USER_HZ) on every architecture
/// we run on.
const TICKS_PER_SECOND: f64 = 100.0;

/// Cores of other work on the machine above which the report warns that it skewed the run.
const OTHER_LOAD_WARNING: f64 = 0.2;

/// The first flow's aims: every webhook accepted and stored at 2,000/s on a 2-core machine.
const AIM_ACCEPTED: f64 = 2_000.0;
const AIM_STORED: f64 = 2_000.0;
const AIM_P99_MS: f64 = 100.0;
const AIM_MEMORY_MIB: f64 = 300.0;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let receiver = Receiver::start().await;
    let mut platform = Platform::new();
    platform.set("ISM_TELEMETRY__LOG_FILTER", "warn");
    // The harness shrinks pools so many tests fit on one Postgres; bench what ships.
    platform.set("ISM_DATABASE__MAX_CONNECTIONS", "10");
    let tenant = platform.bootstrap(&receiver.url);
    let serve = platform.spawn("all");
    platform.wait_ready().await;
    let pid = platform.pid(serve);
    let conversations = platform.database("conversations").await;
    let gateway = platform.database("gateway").await;
    eprintln!(
        "platform {} up (pid {pid}); measuring the baselines",
        platform.id
    );

    let rabbitmq =
        baseline::confirmed_publishes(&format!("{}.bench.baseline", platform.id), BASELINE_FOR)
            .await?;
    let inserts_one = postgres_baseline(&conversations, 1).await?;
    let inserts_many = postgres_baseline(&conversations, INSERT_CONNECTIONS).await?;

    let webhooks = Webhooks::new(&platform, &tenant)?;
    eprintln!("warming up with {WARM_UP} webhooks");
    let before = stored(&conversations).await?;
    for n in 0..WARM_UP {
        anyhow::ensure!(
            webhooks.send(&format!("warm-{n}"), n).await,
            "the warm-up webhook {n} was not accepted"
        );
    }
    let target = before + WARM_UP as i64;
    let (count, _) = wait_stored(&conversations, target).await?;
    anyhow::ensure!(count >= target, "the warm-up messages were not stored");

    let statements = Statements::connect(&platform.id).await;
    let statements_before = match &statements {
        Ok(reader) => Some(reader.snapshot().await?),
        Err(why) => {
            eprintln!("{why}");
            None
        }
    };
    let stored_before = stored(&conversations).await?;
    eprintln!(
        "max rate: {CLIENTS} clients for {} s",
        MAX_RATE_FOR.as_secs()
    );
    let max = max_rate(&webhooks, &conversations, &gateway, &platform, pid).await?;
    eprintln!(
        "fixed rate: {FIXED_RATE}/s for {} s",
        FIXED_RATE_FOR.as_secs()
    );
    let fixed = fixed_rate(&webhooks, &conversations, pid).await?;

    let memory = Memory::of(pid)?;
    let log = platform_log(&platform);
    report(&Report {
        max,
        fixed,
        memory,
        rabbitmq,
        inserts_one,
        inserts_many,
        log,
    });
    if let (Ok(reader), Some(before)) = (&statements, statements_before) {
        let stored_during = stored(&conversations).await? - stored_before;
        println!();
        statements::print_top(&before, &reader.snapshot().await?, stored_during as u64, 12);
    }
    Ok(())
}

/// Sends signed webhooks to the tenant's custom channel.
#[derive(Clone)]
struct Webhooks {
    http: reqwest::Client,
    url: Arc<str>,
    secret: Arc<str>,
}

impl Webhooks {
    fn new(platform: &Platform, tenant: &Tenant) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(CLIENTS)
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Self {
            http,
            url: format!(
                "http://127.0.0.1:{}/webhooks/custom/{}",
                platform.http_port, tenant.channel_id
            )
            .into(),
            secret: tenant.webhook_secret.as_str().into(),
        })
    }

    /// Sends message `id` from sender number `n % SENDERS`; true when it was accepted.
    async fn send(&self, id: &str, n: u64) -> bool {
        let sender = n % SENDERS;
        let body = serde_json::json!({
            "message_id": id,
            "from": { "id": format!("bench-sender-{sender}"), "name": format!("Customer {sender}") },
            "text": "Hello, I ordered a blue jacket last week; has it been shipped yet?",
        })
        .to_string();
        let signature = sign(&self.secret, body.as_bytes());
        let response = self
            .http
            .post(&*self.url)
            .header("content-type", "application/json")
            .header("x-ism-signature", signature)
            .body(body)
            .send()
            .await;
        matches!(response, Ok(r) if r.status() == reqwest::StatusCode::OK)
    }
}

/// What the max-rate phase measured.
struct MaxRate {
    accepted: u64,
    refused: u64,
    accepted_per_second: f64,
    /// Accepted messages stored, and how many per second from the first send until the
    /// last was stored.
    stored: u64,
    stored_per_second: f64,
    /// Where the not yet stored messages were when sending stopped.
    stored_when_sending_stopped: u64,
    outbox_backlog: i64,
    queue_depth: u32,
    /// Stored per second once sending had stopped: the consumer's pace on a backlog.
    drain_per_second: f64,
    cpu_sending: Cpu,
    cpu_draining: Cpu,
}

async fn max_rate(
    webhooks: &Webhooks,
    db: &PgPool,
    gateway: &PgPool,
    platform: &Platform,
    pid: u32,
) -> anyhow::Result<MaxRate> {
    let before = stored(db).await?;
    let next = Arc::new(AtomicU64::new(0));
    let cpu = CpuSample::take(pid);
    let started = Instant::now();
    let mut clients = JoinSet::new();
    for _ in 0..CLIENTS {
        let (webhooks, next) = (webhooks.clone(), next.clone());
        clients.spawn(async move {
            let (mut accepted, mut refused) = (0u64, 0u64);
            while started.elapsed() < MAX_RATE_FOR {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if webhooks.send(&format!("max-{n}"), n).await {
                    accepted += 1;
                } else {
                    refused += 1;
                }
            }
            (accepted, refused)
        });
    }
    let (mut accepted, mut refused) = (0, 0);
    while let Some(counts) = clients.join_next().await {
        let (a, r) = counts?;
        accepted += a;
        refused += r;
    }
    let sent_for = started.elapsed();
    let cpu_sending = cpu.since(pid);

    let sending_stopped = Instant::now();
    let stored_then = stored(db).await? - before;
    let outbox_backlog =
        sqlx::query_scalar("SELECT count(*) FROM platform_outbox WHERE published_at IS NULL")
            .fetch_one(gateway)
            .await?;
    let queue_depth = queue_depth(&platform.queue("conversations.inbound")).await?;
    let cpu = CpuSample::take(pid);
    let (count, done) = wait_stored(db, before + accepted as i64).await?;
    let cpu_draining = cpu.since(pid);
    let stored = (count - before).max(0) as u64;
    let drain_for = done.duration_since(sending_stopped).as_secs_f64();
    Ok(MaxRate {
        accepted,
        refused,
        accepted_per_second: accepted as f64 / sent_for.as_secs_f64(),
        stored,
        stored_per_second: stored as f64 / done.duration_since(started).as_secs_f64(),
        stored_when_sending_stopped: stored_then.max(0) as u64,
        outbox_backlog,
        queue_depth,
        drain_per_second: (stored as f64 - stored_then as f64) / drain_for.max(f64::EPSILON),
        cpu_sending,
        cpu_draining,
    })
}

/// What the fixed-rate phase measured.
struct FixedRate {
    accepted: u64,
    refused: u64,
    sent_per_second: f64,
    /// Send to stored, in microseconds; `u64::MAX` for a message never stored.
    end_to_end_us: Vec<u64>,
    /// Send to the gateway's answer, in microseconds.
    answer_us: Vec<u64>,
    cpu: Cpu,
}

async fn fixed_rate(webhooks: &Webhooks, db: &PgPool, pid: u32) -> anyhow::Result<FixedRate> {
    let before = stored(db).await?;
    let total = FIXED_RATE * FIXED_RATE_FOR.as_secs();
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / FIXED_RATE as u32);
    let cpu = CpuSample::take(pid);
    let started = Instant::now();
    let mut sends = JoinSet::new();
    for n in 0..total {
        ticks.tick().await;
        let webhooks = webhooks.clone();
        sends.spawn(async move {
            let id = format!("lat-{n}");
            let sent_at = micros_since_epoch();
            let clock = Instant::now();
            let accepted = webhooks.send(&id, n).await;
            (id, sent_at, clock.elapsed(), accepted)
        });
    }
    let mut sent = HashMap::with_capacity(total as usize);
    let mut answer_us = Vec::with_capacity(total as usize);
    let mut refused = 0;
    while let Some(outcome) = sends.join_next().await {
        let (id, sent_at, answered_in, accepted) = outcome?;
        if accepted {
            sent.insert(id, sent_at);
            answer_us.push(answered_in.as_micros() as u64);
        } else {
            refused += 1;
        }
    }
    let sent_for = started.elapsed();
    let accepted = sent.len() as u64;
    wait_stored(db, before + accepted as i64).await?;
    let cpu = cpu.since(pid);

    // created_at is now() of the storing transaction: its start, a few milliseconds
    // before its commit makes the row visible.
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT external_message_id, (extract(epoch FROM created_at) * 1000000)::int8
         FROM messages WHERE direction = 'inbound' AND external_message_id LIKE 'lat-%'",
    )
    .fetch_all(db)
    .await?;
    let mut end_to_end_us: Vec<u64> = Vec::with_capacity(sent.len());
    for (id, created) in rows {
        if let Some(sent_at) = sent.remove(&id) {
            end_to_end_us.push((created - sent_at).max(0) as u64);
        }
    }
    end_to_end_us.extend(sent.values().map(|_| u64::MAX));
    end_to_end_us.sort_unstable();
    answer_us.sort_unstable();
    Ok(FixedRate {
        accepted,
        refused,
        sent_per_second: (accepted + refused) as f64 / sent_for.as_secs_f64(),
        end_to_end_us,
        answer_us,
        cpu,
    })
}

fn micros_since_epoch() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Messages in the conversations database.
async fn stored(db: &PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(db)
        .await?)
}

/// Polls until `target` messages are stored or [`DRAIN_LIMIT`] passes; the count and when
/// it was seen.
async fn wait_stored(db: &PgPool, target: i64) -> anyhow::Result<(i64, Instant)> {
    let deadline = Instant::now() + DRAIN_LIMIT;
    loop {
        let count = stored(db).await?;
        let now = Instant::now();
        if count >= target || now >= deadline {
            return Ok((count, now));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Messages ready in `queue`.
async fn queue_depth(queue: &str) -> anyhow::Result<u32> {
    let conn = Connection::connect(AMQP, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let depth = channel
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await?
        .message_count();
    conn.close(200, "done".into()).await?;
    Ok(depth)
}

/// Single-row INSERTs per second (one statement each, autocommit) into a table shaped
/// like `messages`, over `connections` connections inserting side by side.
async fn postgres_baseline(db: &PgPool, connections: usize) -> anyhow::Result<f64> {
    sqlx::query(
        "CREATE TABLE bench_inserts (
             id                  uuid PRIMARY KEY,
             workspace_id        uuid NOT NULL,
             external_message_id text NOT NULL,
             content             bytea NOT NULL,
             created_at          timestamptz NOT NULL DEFAULT now())",
    )
    .execute(db)
    .await?;
    sqlx::query(
        "CREATE UNIQUE INDEX bench_inserts_once ON bench_inserts (workspace_id, external_message_id)",
    )
    .execute(db)
    .await?;
    let workspace_id = uuid::Uuid::new_v4();
    let content = vec![b'x'; 96];
    let pool = PgPoolOptions::new()
        .max_connections(connections as u32)
        .connect_with((*db.connect_options()).clone())
        .await?;
    let mut conns = Vec::with_capacity(connections);
    for _ in 0..connections {
        conns.push(pool.acquire().await?);
    }
    let next = Arc::new(AtomicU64::new(0));
    let mut inserters = JoinSet::new();
    let started = Instant::now();
    for mut conn in conns {
        let (next, content) = (next.clone(), content.clone());
        inserters.spawn(async move {
            while started.elapsed() < BASELINE_FOR {
                let n = next.fetch_add(1, Ordering::Relaxed);
                sqlx::query(
                    "INSERT INTO bench_inserts (id, workspace_id, external_message_id, content)
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(uuid::Uuid::now_v7())
                .bind(workspace_id)
                .bind(format!("insert-{n}"))
                .bind(&content)
                .execute(&mut *conn)
                .await?;
            }
            anyhow::Ok(())
        });
    }
    let mut outcome = Ok(());
    while let Some(done) = inserters.join_next().await {
        if let Err(e) = done.context("an inserter panicked").and_then(|r| r) {
            outcome = Err(e);
        }
    }
    let elapsed = started.elapsed();
    pool.close().await;
    let inserted: i64 = sqlx::query_scalar("SELECT count(*) FROM bench_inserts")
        .fetch_one(db)
        .await?;
    sqlx::query("DROP TABLE bench_inserts").execute(db).await?;
    outcome?;
    Ok(inserted as f64 / elapsed.as_secs_f64())
}

/// CPU time used so far by the platform, Postgres, RabbitMQ, this bench and the whole
/// machine, in ticks.
#[derive(Clone, Copy, Default)]
struct CpuSample {
    platform: u64,
    postgres: u64,
    rabbitmq: u64,
    bench: u64,
    machine: u64,
    at: Option<Instant>,
}

/// Cores busy on average over a phase.
#[derive(Clone, Copy, Default)]
struct Cpu {
    platform: f64,
    postgres: f64,
    rabbitmq: f64,
    bench: f64,
    /// Everything else busy on the machine: builds, other tests, the kernel's own work.
    other: f64,
}

impl CpuSample {
    fn take(pid: u32) -> Self {
        let mut sample = Self {
            platform: ticks(&format!("/proc/{pid}/stat")),
            bench: ticks("/proc/self/stat"),
            machine: machine_ticks(),
            at: Some(Instant::now()),
            ..Default::default()
        };
        // Every Postgres backend and RabbitMQ on the machine: other users' load counts too.
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return sample;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(comm) = std::fs::read_to_string(path.join("comm")) else {
                continue;
            };
            let used = || ticks(&path.join("stat").to_string_lossy());
            match comm.trim() {
                "postgres" => sample.postgres += used(),
                "beam.smp" => sample.rabbitmq += used(),
                _ => {}
            }
        }
        sample
    }

    fn since(self, pid: u32) -> Cpu {
        let now = Self::take(pid);
        let seconds = match (self.at, now.at) {
            (Some(start), Some(end)) => end.duration_since(start).as_secs_f64(),
            _ => return Cpu::default(),
        };
        let cores = |a: u64, b: u64| b.saturating_sub(a) as f64 / TICKS_PER_SECOND / seconds;
        let mut cpu = Cpu {
            platform: cores(self.platform, now.platform),
            postgres: cores(self.postgres, now.postgres),
            rabbitmq: cores(self.rabbitmq, now.rabbitmq),
            bench: cores(self.bench, now.bench),
            other: 0.0,
        };
        let ours = cpu.platform + cpu.postgres + cpu.rabbitmq + cpu.bench;
        cpu.other = (cores(self.machine, now.machine) - ours).max(0.0);
        cpu
    }
}

/// User plus system CPU ticks of the process whose `stat` file is at `path`; 0 if gone.
fn ticks(path: &str) -> u64 {
    let Ok(stat) = std::fs::read_to_string(path) else {
        return 0;
    };
    // The command name may hold spaces and parentheses; the fields follow the last ')'.
    let Some((_, fields)) = stat.rsplit_once(')') else {
        return 0;
    };
    let fields: Vec<&str> = fields.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat(5); these start at field 3.
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    field(14).unwrap_or(0) + field(15).unwrap_or(0)
}

/// Busy CPU ticks of the whole machine, all CPUs together, from /proc/stat.
fn machine_ticks() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0;
    };
    let Some(total) = stat.lines().find_map(|l| l.strip_prefix("cpu ")) else {
        return 0;
    };
    let fields: Vec<u64> = total
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: all but idle and iowait are busy.
    [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| fields.get(i))
        .sum()
}

/// Resident memory of the platform process, in MiB.
struct Memory {
    peak: f64,
    last: f64,
}

impl Memory {
    fn of(pid: u32) -> anyhow::Result<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .context("the platform process is gone")?;
        let kib = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
                .with_context(|| format!("{key} missing in /proc/{pid}/status"))
        };
        Ok(Self {
            peak: kib("VmHWM:")? / 1024.0,
            last: kib("VmRSS:")? / 1024.0,
        })
    }
}

/// Warnings and errors the platform logged during the run, and where.
fn platform_log(platform: &Platform) -> (usize, String) {
    let path = format!("target/e2e-logs/{}.log", platform.id);
    let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(&path);
    let lines = std::fs::read_to_string(file).map_or(0, |log| log.lines().count());
    (lines, path)
}

struct Report {
    max: MaxRate,
    fixed: FixedRate,
    memory: Memory,
    rabbitmq: f64,
    inserts_one: f64,
    inserts_many: f64,
    log: (usize, String),
}

fn report(r: &Report) {
    let (max, fixed) = (&r.max, &r.fixed);
    let p50 = percentile_ms(&fixed.end_to_end_us, 0.50);
    let p99 = percentile_ms(&fixed.end_to_end_us, 0.99);
    let verdict = |pass: bool| if pass { "PASS" } else { "MISS" };
    let line = |what: &str, measured: String, aim: &str, result: &str| {
        println!("{what:<62}{measured:>12}  {aim:>10}  {result}");
    };
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!();
    println!(
        "IS-Messenger first flow: {} serve all, {cpus} CPUs, {SENDERS} senders",
        ism_e2e::platform::binary().display()
    );
    println!();
    line("", "measured".into(), "aim", "");
    line(
        &format!(
            "webhooks accepted /s ({CLIENTS} in flight, {} s)",
            MAX_RATE_FOR.as_secs()
        ),
        thousands(max.accepted_per_second),
        &format!("≥ {}", thousands(AIM_ACCEPTED)),
        verdict(max.accepted_per_second >= AIM_ACCEPTED),
    );
    line(
        "messages stored end to end /s (the same webhooks)",
        thousands(max.stored_per_second),
        &format!("≥ {}", thousands(AIM_STORED)),
        verdict(max.stored_per_second >= AIM_STORED && max.stored == max.accepted),
    );
    line(
        &format!(
            "end-to-end latency p99 at {FIXED_RATE} webhooks/s ({} s)",
            FIXED_RATE_FOR.as_secs()
        ),
        ms(p99),
        &format!("< {AIM_P99_MS:.0} ms"),
        verdict(p99.is_some_and(|p| p < AIM_P99_MS)),
    );
    line("end-to-end latency p50, same", ms(p50), "", "");
    line(
        "peak memory of `ism serve all` (VmHWM)",
        format!("{:.0} MiB", r.memory.peak),
        &format!("< {AIM_MEMORY_MIB:.0} MiB"),
        verdict(r.memory.peak < AIM_MEMORY_MIB),
    );
    println!();
    println!("baselines: one client of this machine's RabbitMQ and Postgres, same run");
    line(
        &format!(
            "RabbitMQ confirmed publishes /s (window {})",
            baseline::CONFIRM_WINDOW
        ),
        thousands(r.rabbitmq),
        "",
        "",
    );
    line(
        "Postgres single-row INSERTs /s (1 connection)",
        thousands(r.inserts_one),
        "",
        "",
    );
    line(
        &format!("Postgres single-row INSERTs /s ({INSERT_CONNECTIONS} connections side by side)"),
        thousands(r.inserts_many),
        "",
        "",
    );
    println!(
        "  RabbitMQ: persistent {}-byte messages to a durable quorum queue, one connection and \
         channel in confirm mode",
        baseline::EVENT_BYTES
    );
    println!(
        "  Postgres: one autocommit INSERT per statement into a table shaped like messages \
         (uuid key, unique index)"
    );
    println!();
    println!("details");
    println!(
        "  max rate: {} accepted, {} refused or failed; when sending stopped {} were stored, \
         {} waited in the gateway outbox, {} in the conversations queue",
        max.accepted,
        max.refused,
        max.stored_when_sending_stopped,
        max.outbox_backlog,
        max.queue_depth,
    );
    if max.stored < max.accepted {
        println!(
            "  max rate: only {} of {} accepted messages stored within {} s of the end of sending",
            max.stored,
            max.accepted,
            DRAIN_LIMIT.as_secs()
        );
    }
    println!(
        "  the backlog drained at {} messages/s once sending stopped",
        thousands(max.drain_per_second)
    );
    println!(
        "  fixed rate: {} sent /s, {} accepted, {} refused or failed; the gateway answered in \
         p50 {} / p99 {}",
        thousands(fixed.sent_per_second),
        fixed.accepted,
        fixed.refused,
        ms(percentile_ms(&fixed.answer_us, 0.50)),
        ms(percentile_ms(&fixed.answer_us, 0.99)),
    );
    println!(
        "  end-to-end latency: from sending the webhook to the storing transaction's start \
         (messages.created_at); max {}",
        ms(percentile_ms(&fixed.end_to_end_us, 1.0)),
    );
    println!(
        "  {:<28}{:>9}{:>10}{:>10}{:>7}{:>7}",
        "CPU, cores busy on average", "platform", "postgres", "rabbitmq", "bench", "other"
    );
    let phases = [
        ("max rate, sending", max.cpu_sending),
        ("max rate, draining", max.cpu_draining),
        ("fixed rate", fixed.cpu),
    ];
    for (phase, cpu) in phases {
        println!(
            "    {phase:<26}{:>9.2}{:>10.2}{:>10.2}{:>7.2}{:>7.2}",
            cpu.platform, cpu.postgres, cpu.rabbitmq, cpu.bench, cpu.other
        );
    }
    let busiest_other = phases.iter().map(|(_, c)| c.other).fold(0.0, f64::max);
    if busiest_other > OTHER_LOAD_WARNING {
        println!(
            "  other work on this machine took up to {busiest_other:.2} cores during the run: \
             the figures above understate the platform"
        );
    }
    println!(
        "  resident memory of the platform at the end: {:.0} MiB",
        r.memory.last
    );
    println!(
        "  platform log (warn and above): {} lines in {}",
        r.log.0, r.log.1
    );
}

/// The `q` quantile of sorted microseconds, in milliseconds; `None` if that message was
/// never stored.
fn percentile_ms(sorted_us: &[u64], q: f64) -> Option<f64> {
    if sorted_us.is_empty() {
        return None;
    }
    let rank = ((q * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len());
    let us = sorted_us[rank - 1];
    (us != u64::MAX).then(|| us as f64 / 1000.0)
}

fn ms(value: Option<f64>) -> String {
    value.map_or_else(|| "not stored".to_owned(), |v| format!("{v:.0} ms"))
}

/// `value` rounded, with thousands separated by commas.
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
