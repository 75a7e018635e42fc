//! The contacts service: the one place that knows who a person is across every channel.
mod api;
mod error;
mod export;
pub mod fields;
pub mod filter;
pub mod import;
pub mod interactions;
pub mod lifecycle;
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

use ism_platform::compressed;
use ism_platform::config::{ServiceName, Settings};
use ism_platform::service::Service;
use ism_platform::shutdown::Stop;
use ism_proto::contacts::v1::contact_service_server::ContactServiceServer;
use ism_proto::gateway::v1::gateway_service_client::GatewayServiceClient;
use sqlx::migrate::Migrator;

pub use error::Error;

/// This service's schema.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// Runs the contacts service until `stop`.
pub async fn run(settings: Arc<Settings>, stop: Stop) -> anyhow::Result<()> {
    let mut service = Service::start(ServiceName::Contacts, settings, stop, &MIGRATOR).await?;
    let pool = service.pool.clone();
    service.every("purge old imports", CLEAN_UP_EVERY, move || {
        let pool = pool.clone();
        async move { import::purge(&pool, 30).await.map(drop) }
    });
    let pool = service.pool.clone();
    service.every("purge deleted contacts", CLEAN_UP_EVERY, move || {
        let pool = pool.clone();
        async move { in_batches(|| store::purge(&pool, BATCH)).await }
    });
    let pool = service.pool.clone();
    service.every("sweep deleted tags", CLEAN_UP_EVERY, move || {
        let pool = pool.clone();
        async move { in_batches(|| tags::sweep(&pool, BATCH)).await }
    });
    let interactions = Arc::new(interactions::Interactions::default());
    service.spawn({
        let (interactions, pool) = (interactions.clone(), service.pool.clone());
        let shutdown = service.shutdown.clone();
        async move { interactions.run(pool, shutdown).await }
    });
    let verifier = service.remote_verifier()?;
    let server = ContactServiceServer::new(api::Api {
        pool: service.pool.clone(),
        resolver: resolver::Resolver::new(service.pool.clone()),
        interactions,
        gateway: service.peer(ServiceName::Gateway, GatewayServiceClient::new)?,
    });
    service.serve(compressed!(server), verifier, &[]).await
}

/// Rows purged or swept per statement.
const BATCH: i64 = 1000;
/// How often Contacts whose restore period ended and imports older than 30 days are
/// purged, and deleted Tags swept off the Contacts that held them.
const CLEAN_UP_EVERY: std::time::Duration = std::time::Duration::from_secs(300);

/// Runs `step` until a batch comes back short of [`BATCH`], in small transactions.
async fn in_batches<F, Fut>(step: F) -> Result<(), Error>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<u64, Error>>,
{
    while step().await? == BATCH as u64 {}
    Ok(())
}
