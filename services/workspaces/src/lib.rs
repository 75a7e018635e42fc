//! The workspaces service: tenancy and credentials. It signs the access tokens every
//! other service verifies.
pub mod admin;
mod api;
mod api_keys;
mod audit;
mod domain;
mod error;
mod keys;
mod store;
mod teams;
mod tenancy;
mod tokens;
mod users;
mod wire;

use std::sync::Arc;

use ism_platform::config::{ServiceName, Settings};
use ism_platform::service::Service;
use ism_proto::workspaces::v1::workspace_service_server::WorkspaceServiceServer;
use sqlx::migrate::Migrator;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

pub use error::Error;

/// This service's schema.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// Runs the workspaces service until `shutdown`.
pub async fn run(settings: Arc<Settings>, shutdown: CancellationToken) -> anyhow::Result<()> {
    let service = Service::start(
        ServiceName::Workspaces,
        settings.clone(),
        shutdown,
        &MIGRATOR,
    )
    .await?;
    let signer = keys::Signer::load(
        &service.pool,
        &settings.auth.signing_key_pem,
        settings.auth.token_ttl_seconds,
    )
    .await?;
    let verifier = signer.verifier()?;
    let api = api::Api {
        pool: service.pool.clone(),
        signer,
        service_secret: settings.auth.service_secret.clone(),
    };
    let routes = Routes::new(WorkspaceServiceServer::new(api));
    service.serve(routes, verifier, api::PUBLIC_RPCS).await
}
