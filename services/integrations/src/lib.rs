//! The integrations service: bots and outgoing event webhooks.
//!
//! It already runs like every other service (its own database, migrations, outbox
//! relay, health, reflection, metrics, auth); its RPCs and consumers arrive with the
//! capability that needs them.
use std::sync::Arc;

use ism_platform::config::{ServiceName, Settings};
use ism_platform::service::Service;
use ism_proto::integrations::v1::integration_service_server::{
    IntegrationService, IntegrationServiceServer,
};
use sqlx::migrate::Migrator;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

/// This service's schema.
pub static MIGRATOR: Migrator = sqlx::migrate!();

struct Api;

impl IntegrationService for Api {}

/// Runs the integrations service until `shutdown`.
pub async fn run(settings: Arc<Settings>, shutdown: CancellationToken) -> anyhow::Result<()> {
    let service = Service::start(ServiceName::Integrations, settings, shutdown, &MIGRATOR).await?;
    let verifier = service.remote_verifier()?;
    service
        .serve(
            Routes::new(IntegrationServiceServer::new(Api)),
            verifier,
            &[],
        )
        .await
}
