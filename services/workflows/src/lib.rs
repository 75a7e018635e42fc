//! The workflows service: a trigger and a graph of steps that automate conversations,
//! versioned, with durable runs that resume where they were after a restart and never
//! take a step's effect twice.
mod announce;
mod answers;
mod api;
mod bindings;
mod calendar;
mod calls;
mod conditions;
pub mod config;
mod definition;
mod engine;
mod error;
mod incoming;
mod runs;
mod schedules;
mod states;
mod store;
mod triggers;
mod wire;
mod workflows;

use std::sync::Arc;
use std::time::Duration;

use ism_platform::compressed;
use ism_platform::config::{ServiceName, Settings};
use ism_platform::egress::{Egress, EgressSettings};
use ism_platform::events::topology;
use ism_platform::service::Service;
use ism_platform::shutdown::Stop;
use ism_proto::contacts::v1::contact_service_client::ContactServiceClient;
use ism_proto::conversations::v1::conversation_service_client::ConversationServiceClient;
use ism_proto::workflows::v1::workflow_service_server::WorkflowServiceServer;
use ism_proto::workspaces::v1::workspace_service_client::WorkspaceServiceClient;
use sqlx::migrate::Migrator;
use tokio::sync::Notify;

pub use error::Error;

/// This service's schema.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// How often a replica brings the triggers queue's bindings in line with the workflows.
const BINDINGS_EVERY: Duration = Duration::from_secs(30);
/// How often schedules due are looked for.
const SCHEDULES_EVERY: Duration = Duration::from_secs(1);
/// How often webhook ids taken are purged, and how long each is kept: far longer than the
/// five minutes a webhook's signature is accepted for.
const WEBHOOK_IDS_PURGED_EVERY: Duration = Duration::from_secs(3600);
const WEBHOOK_IDS_KEPT: chrono::TimeDelta = chrono::TimeDelta::days(1);

/// Runs the workflows service until `stop`.
pub async fn run(settings: Arc<Settings>, stop: Stop) -> anyhow::Result<()> {
    let config: config::WorkflowsSettings = settings.section()?;
    let egress = Egress::new(&settings.section::<EgressSettings>()?);
    let mut service = Service::start(ServiceName::Workflows, settings, stop, &MIGRATOR).await?;
    let peers = engine::Peers {
        conversations: service.peer(ServiceName::Conversations, ConversationServiceClient::new)?,
        contacts: service.peer(ServiceName::Contacts, ContactServiceClient::new)?,
        workspaces: service.peer(ServiceName::Workspaces, WorkspaceServiceClient::new)?,
    };
    let wake = Arc::new(Notify::new());
    announce::describe();
    service.every_in_transaction("trigger-bindings", BINDINGS_EVERY, |amqp, tx| {
        Box::pin(bindings::sync(amqp, tx))
    });
    let pool = service.pool.clone();
    service.every("purge webhook ids", WEBHOOK_IDS_PURGED_EVERY, move || {
        let pool = pool.clone();
        async move {
            store::purge_webhooks(&pool, chrono::Utc::now() - WEBHOOK_IDS_KEPT)
                .await
                .map(drop)
        }
    });
    service.consume(
        topology::WORKFLOWS_TRIGGERS,
        triggers::Triggers {
            wake: wake.clone(),
            patterns: triggers::Patterns::default(),
            peers: peers.clone(),
        },
    );
    let engine = Arc::new(engine::Engine::new(
        service.pool.clone(),
        peers.clone(),
        config.clone(),
        wake.clone(),
        calls::Caller::new(egress.clone()),
    ));
    service.spawn(engine.run(service.shutdown.clone()));
    let scheduler = Arc::new(schedules::Scheduler {
        pool: service.pool.clone(),
        peers: peers.clone(),
        wake: wake.clone(),
    });
    service.every("fire schedules", SCHEDULES_EVERY, move || {
        let scheduler = scheduler.clone();
        async move { scheduler.fire_due().await }
    });
    let verifier = service.remote_verifier()?;
    let server = WorkflowServiceServer::new(api::Api {
        workflows: workflows::Workflows {
            pool: service.pool.clone(),
            amqp: service.amqp.clone(),
            config,
            peers: peers.clone(),
            egress,
        },
        runs: runs::Runs {
            pool: service.pool.clone(),
            peers,
            wake,
        },
    });
    service.serve(compressed!(server), verifier, &[]).await
}
