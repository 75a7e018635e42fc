//! The integrations service: outgoing event webhooks, each event delivered once per
//! subscribed endpoint, signed per the Standard Webhooks specification, retried on a
//! schedule over about 28 hours, logged, resendable and recoverable; and bots (Dialogflow
//! ES and CX, any OpenAI-compatible model) that answer Contacts until a human takes over.
mod api;
mod backend;
mod bindings;
mod bots;
mod catalog;
pub mod config;
mod dialogflow;
mod endpoints;
mod error;
mod google;
mod intake;
mod log;
mod openai;
mod sender;
mod states;
mod store;
mod turns;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use ism_platform::compressed;
use ism_platform::config::{ServiceName, Settings};
use ism_platform::egress::{Egress, EgressSettings};
use ism_platform::events::topology;
use ism_platform::ratelimit::Limiter;
use ism_platform::sealing::Sealer;
use ism_platform::service::Service;
use ism_platform::shutdown::Stop;
use ism_proto::contacts::v1::contact_service_client::ContactServiceClient;
use ism_proto::conversations::v1::conversation_service_client::ConversationServiceClient;
use ism_proto::integrations::v1::integration_service_server::IntegrationServiceServer;
use sqlx::migrate::Migrator;
use tokio::sync::Notify;

pub use error::Error;

/// This service's schema.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// How often a replica brings the events queue's bindings in line with the endpoints (they
/// change with every endpoint change; this heals a change made while the broker was away).
const BINDINGS_EVERY: Duration = Duration::from_secs(30);

/// Runs the integrations service until `stop`.
pub async fn run(settings: Arc<Settings>, stop: Stop) -> anyhow::Result<()> {
    let config: config::IntegrationsSettings = settings.section()?;
    let egress = Egress::new(&settings.section::<EgressSettings>()?);
    let sealer = Arc::new(Sealer::new(
        "integrations.secrets_key",
        &config.secrets_key,
        &config.secrets_previous_keys,
    )?);
    let limiter = Limiter::new(
        ServiceName::Integrations,
        &settings.redis,
        &settings.rate_limit,
    );
    let mut service = Service::start(ServiceName::Integrations, settings, stop, &MIGRATOR).await?;
    let wake = Arc::new(Notify::new());
    let poster = sender::Poster::new(&config, &egress, sealer.clone());
    let backends = backend::Backends::new(egress.clone());

    service.every_in_transaction("webhook-bindings", BINDINGS_EVERY, |amqp, tx| {
        Box::pin(bindings::sync(amqp, tx))
    });
    service.consume(
        topology::INTEGRATIONS_EVENTS,
        intake::Intake { wake: wake.clone() },
    );
    let (sender, delivered) = sender::Sender::new(
        service.pool.clone(),
        config.clone(),
        egress.clone(),
        poster.clone(),
        limiter,
        wake.clone(),
    );
    let sender = Arc::new(sender);
    service.spawn(
        sender
            .clone()
            .record_delivered(delivered, service.shutdown.clone()),
    );
    service.spawn(sender.run(service.shutdown.clone()));

    let turns_wake = Arc::new(Notify::new());
    service.consume(
        topology::INTEGRATIONS_BOTS,
        turns::Intake {
            wake: turns_wake.clone(),
        },
    );
    let worker = Arc::new(turns::Worker {
        pool: service.pool.clone(),
        sealer: sealer.clone(),
        backends: backends.clone(),
        peers: turns::Peers {
            conversations: service
                .peer(ServiceName::Conversations, ConversationServiceClient::new)?,
            contacts: service.peer(ServiceName::Contacts, ContactServiceClient::new)?,
        },
        wake: turns_wake,
    });
    service.spawn(worker.run(service.shutdown.clone()));

    let verifier = service.remote_verifier()?;
    let server = IntegrationServiceServer::new(api::Api {
        endpoints: endpoints::Endpoints {
            pool: service.pool.clone(),
            amqp: service.amqp.clone(),
            egress: egress.clone(),
            poster,
            config,
            wake: wake.clone(),
        },
        log: log::Log {
            pool: service.pool.clone(),
            wake,
        },
        bots: bots::Bots {
            pool: service.pool.clone(),
            amqp: service.amqp.clone(),
            egress: egress.clone(),
            sealer,
            backends,
        },
    });
    service.serve(compressed!(server), verifier, &[]).await
}
