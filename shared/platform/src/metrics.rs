//! Prometheus metrics: one recorder per process, rendered on each service's metrics port.
use std::sync::OnceLock;

use axum::Router;
use axum::routing::get;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Seconds: from a fast gRPC call (1 ms) to a delivery retried for half a minute.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The process-wide recorder, installed on first use.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        // Histograms with buckets (not summaries): quantiles can then be aggregated across
        // replicas in PromQL (`histogram_quantile`), as the runbook's alerts do.
        let recorder = PrometheusBuilder::new()
            .set_buckets(LATENCY_BUCKETS)
            .expect("the bucket list is not empty")
            .build_recorder();
        let handle = recorder.handle();
        // A recorder installed earlier (tests) keeps working; ours then renders nothing new.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
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
                handle.render()
            }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await?;
    Ok(())
}
