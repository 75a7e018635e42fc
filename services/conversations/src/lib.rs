//! The conversations service: where Users work on a Contact's conversations.
mod api;
mod assign;
mod assigner;
pub mod clock;
pub mod config;
mod directory;
mod error;
mod handling;
pub mod inbound;
pub mod inbox;
pub mod lifecycle;
pub mod merges;
mod messages;
mod publish;
pub mod report;
pub mod settings;
pub mod snippets;
pub mod states;
pub mod store;
mod view;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use ism_platform::compressed;
use ism_platform::config::{ServiceName, Settings};
use ism_platform::events::topology;
use ism_platform::service::Service;
use ism_platform::shutdown::Stop;
use ism_proto::contacts::v1::contact_service_client::ContactServiceClient;
use ism_proto::conversations::v1::conversation_service_server::ConversationServiceServer;
use ism_proto::workspaces::v1::workspace_service_client::WorkspaceServiceClient;
use sqlx::PgPool;
use sqlx::migrate::Migrator;

pub use assign::{Candidate, Rules, Strategy, assign, decide, oldest_unassigned};
pub use error::Error;

use crate::assigner::Assigner;
use crate::clock::Clock;
use crate::directory::Directory;

/// This service's name in events it emits and status reports it claims.
const SERVICE: &str = "conversations";
/// Timers fired per transaction.
const TIMER_BATCH: i64 = 100;

/// This service's schema.
pub static MIGRATOR: Migrator = sqlx::migrate!();

/// Runs the conversations service until `stop`.
pub async fn run(settings: Arc<Settings>, stop: Stop) -> anyhow::Result<()> {
    let config: config::ConversationsSettings = settings.section()?;
    let clock = Clock::offset_by(config.clock_offset_seconds);
    let poll = Duration::from_millis(config.timer_poll_ms);
    let mut service = Service::start(ServiceName::Conversations, settings, stop, &MIGRATOR).await?;
    let contacts = service.peer(ServiceName::Contacts, ContactServiceClient::new)?;
    let workspaces = service.peer(ServiceName::Workspaces, WorkspaceServiceClient::new)?;
    let assigner = Assigner {
        pool: service.pool.clone(),
        directory: Directory::new(workspaces, contacts.clone()),
    };
    service.consume(
        topology::CONVERSATIONS_INBOUND,
        inbound::Received {
            contacts,
            assigner: assigner.clone(),
            consent: inbound::Consent::new(&config.opt_out_keywords, &config.opt_in_keywords),
        },
    );
    service.consume(topology::CONVERSATIONS_STATUS, inbound::StatusReports);
    service.consume(
        topology::CONVERSATIONS_AVAILABILITY,
        inbound::Availability {
            assigner: assigner.clone(),
        },
    );
    service.consume(topology::CONVERSATIONS_MERGES, merges::Merges { clock });
    let (pool, timers) = (service.pool.clone(), assigner.clone());
    service.every("fire conversation timers", poll, move || {
        let (pool, assigner) = (pool.clone(), timers.clone());
        async move { fire_timers(&pool, clock, &assigner).await }
    });
    let verifier = service.remote_verifier()?;
    let server = ConversationServiceServer::new(api::Api {
        pool: service.pool.clone(),
        clock,
        assigner,
    });
    service.serve(compressed!(server), verifier, &[]).await
}

/// Fires due snooze wake-ups and auto-closes, a batch at a time until none is left; what
/// a crash interrupts stays due and fires after the restart.
async fn fire_timers(pool: &PgPool, clock: Clock, assigner: &Assigner) -> Result<(), Error> {
    loop {
        let fired = lifecycle::fire_due(pool, clock.now(), TIMER_BATCH).await?;
        for &(workspace_id, id) in &fired.woken {
            let reassigned = assigner.auto_assign(workspace_id, id);
            assigner.best_effort("reassign woken", reassigned).await;
        }
        let mut freed: Vec<_> = fired.closed.iter().map(|&(ws, _)| ws).collect();
        freed.sort();
        freed.dedup();
        for workspace_id in freed {
            let drained = async { assigner.drain_backlog(workspace_id).await.map(|_| ()) };
            assigner.best_effort("hand out the backlog", drained).await;
        }
        if fired.woken.len() + fired.closed.len() < TIMER_BATCH as usize {
            return Ok(());
        }
    }
}
