//! The workspaces service: tenancy and credentials. It signs the access tokens every
//! other service verifies.
pub mod admin;
mod api;
mod api_keys;
mod audit;
mod config;
mod domain;
mod error;
mod guard;
mod keys;
mod store;
mod teams;
mod tenancy;
mod tokens;
mod users;
mod wire;

use std::sync::Arc;

use ism_platform::compressed;
use ism_platform::config::{ServiceName, Settings};
use ism_platform::ratelimit::Limiter;
use ism_platform::service::Service;
use ism_platform::shutdown::Stop;
use ism_proto::workspaces::v1::workspace_service_server::WorkspaceServiceServer;
use sqlx::migrate::Migrator;

pub use error::Error;

/// This service's schema.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// Runs the workspaces service until `stop`.
pub async fn run(settings: Arc<Settings>, stop: Stop) -> anyhow::Result<()> {
    let service =
        Service::start(ServiceName::Workspaces, settings.clone(), stop, &MIGRATOR).await?;
    let config: config::WorkspacesSettings = settings.section()?;
    let signer = keys::Signer::load(&service.pool, &settings).await?;
    let verifier = signer.verifier()?;
    let limiter = Limiter::new(
        ServiceName::Workspaces,
        &settings.redis,
        &settings.rate_limit,
    );
    let api = api::Api {
        pool: service.pool.clone(),
        signer,
        service_secret: settings.auth.service_secret.clone(),
        guard: guard::Guard::new(limiter, config.clone()),
    };
    let server = WorkspaceServiceServer::new(api);
    service
        .serve(compressed!(server), verifier, api::PUBLIC_RPCS)
        .await
}
