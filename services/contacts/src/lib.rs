//! The contacts service: the one place that knows who a person is across every channel.
mod api;
mod error;
mod export;
pub mod fields;
pub mod filter;
pub mod import;
pub mod interactions;
pub mod matching;
pub mod merge;
pub mod profile;
pub mod resolver;
pub mod search;
pub mod segments;
pub mod store;
pub mod tags;
pub mod values;

use std::sync::Arc;

use ism_platform::config::{ServiceName, Settings};
use ism_platform::service::Service;
use ism_proto::contacts::v1::contact_service_server::ContactServiceServer;
use sqlx::migrate::Migrator;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

pub use error::Error;

/// This service's schema.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// Runs the contacts service until `shutdown`.
pub async fn run(settings: Arc<Settings>, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut service = Service::start(ServiceName::Contacts, settings, shutdown, &MIGRATOR).await?;
    service.spawn(purge_deleted(
        service.pool.clone(),
        service.shutdown.clone(),
    ));
    let interactions = Arc::new(interactions::Interactions::default());
    service.spawn({
        let (interactions, pool) = (interactions.clone(), service.pool.clone());
        let shutdown = service.shutdown.clone();
        async move { interactions.run(pool, shutdown).await }
    });
    let verifier = service.remote_verifier()?;
    let routes = Routes::new(ContactServiceServer::new(api::Api {
        pool: service.pool.clone(),
        resolver: resolver::Resolver::new(service.pool.clone()),
        interactions,
    }));
    service.serve(routes, verifier, &[]).await
}

/// Rows purged or swept per statement.
const BATCH: i64 = 1000;

/// Every few minutes: purges Contacts whose restore period ended and imports older than
/// 30 days, and sweeps deleted Tags off the Contacts that held them, in small batches.
async fn purge_deleted(pool: sqlx::PgPool, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(300));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = tick.tick() => {}
        }
        if let Err(e) = import::purge(&pool, 30).await {
            tracing::warn!(error = %e, "purging old imports failed; retrying later");
        }
        in_batches("purging deleted contacts", || store::purge(&pool, BATCH)).await;
        in_batches("sweeping deleted tags", || tags::sweep(&pool, BATCH)).await;
    }
}

/// Runs `step` until a batch comes back short of [`BATCH`], or fails (tried again on the
/// next round).
async fn in_batches<F, Fut>(task: &str, step: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<u64, Error>>,
{
    loop {
        match step().await {
            Ok(n) if n == BATCH as u64 => continue,
            Ok(_) => return,
            Err(e) => {
                tracing::warn!(error = %e, task, "failed; retrying later");
                return;
            }
        }
    }
}
