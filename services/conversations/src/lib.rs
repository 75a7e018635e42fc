//! The conversations service: where Users work on a Contact's conversations.
mod api;
mod error;
mod inbound;
pub mod store;

use std::sync::Arc;

use ism_platform::config::{ServiceName, Settings};
use ism_platform::events::topology;
use ism_platform::grpc;
use ism_platform::service::Service;
use ism_proto::contacts::v1::contact_service_client::ContactServiceClient;
use ism_proto::conversations::v1::conversation_service_server::ConversationServiceServer;
use sqlx::migrate::Migrator;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;

pub use error::Error;

/// This service's name in events it emits and status reports it claims.
const SERVICE: &str = "conversations";

/// This service's schema.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// Runs the conversations service until `shutdown`.
pub async fn run(settings: Arc<Settings>, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut service =
        Service::start(ServiceName::Conversations, settings, shutdown, &MIGRATOR).await?;
    let contacts =
        ContactServiceClient::new(grpc::channel(service.endpoint(ServiceName::Contacts))?);
    let tokens = service.service_tokens()?;
    service.consume(
        topology::CONVERSATIONS_INBOUND,
        inbound::Received { contacts, tokens },
    );
    service.consume(topology::CONVERSATIONS_STATUS, inbound::StatusReports);
    let verifier = service.remote_verifier()?;
    let routes = Routes::new(ConversationServiceServer::new(api::Api {
        pool: service.pool.clone(),
    }));
    service.serve(routes, verifier, &[]).await
}
