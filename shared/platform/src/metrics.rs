//! Prometheus metrics: one recorder per process, rendered on each service's metrics port.
use std::sync::OnceLock;

use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Seconds: from a fast gRPC call (1 ms) to a delivery retried for half a minute.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Messages per intake transaction: from one (quiet) to the intake's largest batch.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// Seconds an event waited between its commit and its handling: up to an hour, which is
/// an outage's backlog.
const LAG_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// What kind of family a metric is, for its description.
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every family the platform and its services record, with its HELP text: one table, so
/// that `/metrics` explains each family and a test can see none is missing.
const FAMILIES: &[(&str, Kind, &str)] = &[
    (
        "ism_build_info",
        Kind::Gauge,
        "Always 1; the version and commit of the running binary in its labels.",
    ),
    (
        "ism_grpc_requests_total",
        Kind::Counter,
        "gRPC calls answered, by service, method (known methods only) and canonical status code; counted when the call ends, including cancelled and timed-out calls.",
    ),
    (
        "ism_grpc_request_seconds",
        Kind::Histogram,
        "Time from a gRPC call's arrival to its end (a stream's last message).",
    ),
    (
        "ism_dependency_up",
        Kind::Gauge,
        "1 while a service's dependency (database, broker) answers its readiness check, else 0.",
    ),
    (
        "ism_db_pool_connections",
        Kind::Gauge,
        "Database connections of a service's pool, idle or in use.",
    ),
    (
        "ism_outbox_backlog",
        Kind::Gauge,
        "Events committed to a service's outbox and not yet confirmed by the broker.",
    ),
    (
        "ism_outbox_oldest_seconds",
        Kind::Gauge,
        "Age of the oldest event still waiting in a service's outbox; 0 when it is empty.",
    ),
    (
        "ism_outbox_published_total",
        Kind::Counter,
        "Events the outbox relay published and the broker confirmed.",
    ),
    (
        "ism_queue_depth",
        Kind::Gauge,
        "Messages waiting in a consumer's queue.",
    ),
    (
        "ism_events_consumed_total",
        Kind::Counter,
        "Events handled by a consumer, by outcome (processed, duplicate, requeued, dead_lettered).",
    ),
    (
        "ism_event_handle_seconds",
        Kind::Histogram,
        "Time a consumer took to handle an event.",
    ),
    (
        "ism_event_lag_seconds",
        Kind::Histogram,
        "Time from an event's commit in its producer to its handling by a consumer.",
    ),
    (
        "ism_job_runs_total",
        Kind::Counter,
        "Rounds of a periodic job, by outcome.",
    ),
    (
        "ism_rate_limited_total",
        Kind::Counter,
        "Calls refused by the per-Workspace rate limit.",
    ),
    (
        "ism_rate_limit_fail_open_total",
        Kind::Counter,
        "Calls let through because the rate limiter's Redis did not answer.",
    ),
    (
        "ism_credential_failures_total",
        Kind::Counter,
        "Wrong API keys or service secrets presented, by RPC.",
    ),
    (
        "ism_public_calls_refused_total",
        Kind::Counter,
        "Calls needing no token refused for a spent budget, by RPC and why.",
    ),
    (
        "ism_webhooks_total",
        Kind::Counter,
        "Provider webhooks answered by the gateway, by provider and HTTP status.",
    ),
    (
        "ism_webhook_seconds",
        Kind::Histogram,
        "Time the gateway took to answer a provider webhook.",
    ),
    (
        "ism_gateway_intake_batch_size",
        Kind::Histogram,
        "Inbound messages recorded per intake transaction.",
    ),
    (
        "ism_deliveries_total",
        Kind::Counter,
        "Outbound delivery attempts, by channel type, outcome and failure reason.",
    ),
    (
        "ism_deliveries_postponed_total",
        Kind::Counter,
        "Outbound deliveries put back because their channel's pace was spent.",
    ),
    (
        "ism_media_fetches_total",
        Kind::Counter,
        "Inbound media fetched from providers, by provider and outcome.",
    ),
    (
        "ism_broadcast_recipients_handed_over_total",
        Kind::Counter,
        "Broadcast recipients handed to the gateway.",
    ),
    (
        "ism_workflow_runs_total",
        Kind::Counter,
        "Workflow runs started and ended, by outcome (started, completed, failed, cancelled).",
    ),
    (
        "ism_webhook_attempts_total",
        Kind::Counter,
        "Event webhook POSTs to endpoints, by outcome.",
    ),
];

/// The process-wide recorder, installed on first use, with every family described.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        // Histograms with buckets (not summaries): quantiles can then be aggregated across
        // replicas in PromQL (`histogram_quantile`), as the runbook's alerts do.
        let recorder = PrometheusBuilder::new()
            .set_buckets(LATENCY_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full("ism_gateway_intake_batch_size".into()),
                    BATCH_BUCKETS,
                )
            })
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Full("ism_event_lag_seconds".into()), LAG_BUCKETS)
            })
            .expect("the bucket lists are not empty")
            .build_recorder();
        let handle = recorder.handle();
        // A recorder installed earlier (tests) keeps working; ours then renders nothing new.
        let _ = metrics::set_global_recorder(recorder);
        process().describe();
        for (name, kind, help) in FAMILIES {
            match kind {
                Kind::Counter => metrics::describe_counter!(*name, *help),
                Kind::Gauge => metrics::describe_gauge!(*name, *help),
                Kind::Histogram => metrics::describe_histogram!(*name, *help),
            }
        }
        handle
    })
}

/// The standard `process_*` families (CPU, memory, file descriptors, start time).
fn process() -> &'static metrics_process::Collector {
    static PROCESS: OnceLock<metrics_process::Collector> = OnceLock::new();
    PROCESS.get_or_init(metrics_process::Collector::default)
}

/// Records `ism_build_info{version, commit}` for this process.
pub fn build_info(version: &'static str, commit: &'static str) {
    handle();
    metrics::gauge!("ism_build_info", "version" => version, "commit" => commit).set(1.0);
}

/// Serves `GET /metrics` until `shutdown`; each scrape also samples `pool`'s use.
pub async fn serve(
    service: &'static str,
    listener: TcpListener,
    pool: PgPool,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let handle = handle();
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let pool = pool.clone();
            async move {
                let idle = pool.num_idle() as f64;
                metrics::gauge!("ism_db_pool_connections", "service" => service, "state" => "idle").set(idle);
                metrics::gauge!("ism_db_pool_connections", "service" => service, "state" => "in_use").set(pool.size() as f64 - idle);
                process().collect();
                handle.render()
            }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}
