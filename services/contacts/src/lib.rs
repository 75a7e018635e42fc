//! The contacts service: the one place that knows who a person is across every channel.
mod api;
mod error;
pub mod store;

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
    let service = Service::start(ServiceName::Contacts, settings, shutdown, &MIGRATOR).await?;
    let verifier = service.remote_verifier()?;
    let routes = Routes::new(ContactServiceServer::new(api::Api {
        pool: service.pool.clone(),
    }));
    service.serve(routes, verifier, &[]).await
}
