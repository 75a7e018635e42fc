//! The broadcasts service: one content to an audience of Contacts through one Channel,
//! each recipient handed to the gateway exactly once, pausable, resumable and cancellable
//! at any point.
mod api;
pub mod config;
mod definition;
mod directory;
mod error;
mod lifecycle;
mod reads;
mod runner;
mod states;
mod status;
mod store;
mod wire;

use std::sync::Arc;

use ism_platform::compressed;
use ism_platform::config::{ServiceName, Settings};
use ism_platform::events::topology;
use ism_platform::service::Service;
use ism_platform::shutdown::Stop;
use ism_proto::broadcasts::v1::broadcast_service_server::BroadcastServiceServer;
use ism_proto::contacts::v1::contact_service_client::ContactServiceClient;
use ism_proto::gateway::v1::gateway_service_client::GatewayServiceClient;
use sqlx::migrate::Migrator;
use tokio::sync::Notify;

pub use error::Error;

/// This service's schema.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// Runs the broadcasts service until `stop`.
pub async fn run(settings: Arc<Settings>, stop: Stop) -> anyhow::Result<()> {
    let config: config::BroadcastsSettings = settings.section()?;
    let mut service = Service::start(ServiceName::Broadcasts, settings, stop, &MIGRATOR).await?;
    let directory = directory::Directory {
        gateway: service.peer(ServiceName::Gateway, GatewayServiceClient::new)?,
        contacts: service.peer(ServiceName::Contacts, ContactServiceClient::new)?,
    };
    let wake = Arc::new(Notify::new());
    service.consume(
        topology::BROADCASTS_STATUS,
        status::StatusReports {
            wake: wake.clone(),
            breaker: status::Breaker::new(&config),
        },
    );
    let runner = Arc::new(runner::Runner::new(
        service.pool.clone(),
        directory.clone(),
        config,
        wake.clone(),
    ));
    service.spawn(runner.run(service.shutdown.clone()));
    let verifier = service.remote_verifier()?;
    let server = BroadcastServiceServer::new(api::Api {
        broadcasts: lifecycle::Broadcasts {
            pool: service.pool.clone(),
            directory,
            wake,
        },
    });
    service.serve(compressed!(server), verifier, &[]).await
}
