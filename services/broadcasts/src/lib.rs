//! The broadcasts service: broadcasts to Contact segments, with per-recipient delivery state.
//!
//! It already runs like every other service (its own database, migrations, outbox
//! relay, health, reflection, metrics, auth); its RPCs and consumers arrive with the
//! capability that needs them.
use std::sync::Arc;

use ism_platform::config::{ServiceName, Settings};
use ism_platform::service::Service;
use ism_proto::broadcasts::v1::broadcast_service_server::{
    BroadcastService, BroadcastServiceServer,
};
use sqlx::migrate::Migrator;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

/// This service's schema.
pub static MIGRATOR: Migrator = sqlx::migrate!();

struct Api;

impl BroadcastService for Api {}

/// Runs the broadcasts service until `shutdown`.
pub async fn run(settings: Arc<Settings>, shutdown: CancellationToken) -> anyhow::Result<()> {
    let service = Service::start(ServiceName::Broadcasts, settings, shutdown, &MIGRATOR).await?;
    let verifier = service.remote_verifier()?;
    service
        .serve(Routes::new(BroadcastServiceServer::new(Api)), verifier, &[])
        .await
}
