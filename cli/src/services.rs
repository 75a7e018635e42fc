//! Running and migrating services by name.
use std::sync::Arc;

use futures::future::BoxFuture;
use ism_platform::config::{ServiceName, Settings};
use ism_platform::shutdown::Stop;
use ism_platform::{db, shutdown, telemetry};
use sqlx::migrate::Migrator;

fn migrator(service: ServiceName) -> &'static Migrator {
    match service {
        ServiceName::Workspaces => &ism_workspaces::MIGRATOR,
        ServiceName::Gateway => &ism_gateway::MIGRATOR,
        ServiceName::Contacts => &ism_contacts::MIGRATOR,
        ServiceName::Conversations => &ism_conversations::MIGRATOR,
        ServiceName::Broadcasts => &ism_broadcasts::MIGRATOR,
        ServiceName::Workflows => &ism_workflows::MIGRATOR,
        ServiceName::Integrations => &ism_integrations::MIGRATOR,
    }
}

fn runner(
    service: ServiceName,
    settings: Arc<Settings>,
    stop: Stop,
) -> BoxFuture<'static, anyhow::Result<()>> {
    match service {
        ServiceName::Workspaces => Box::pin(ism_workspaces::run(settings, stop)),
        ServiceName::Gateway => Box::pin(ism_gateway::run(settings, stop)),
        ServiceName::Contacts => Box::pin(ism_contacts::run(settings, stop)),
        ServiceName::Conversations => Box::pin(ism_conversations::run(settings, stop)),
        ServiceName::Broadcasts => Box::pin(ism_broadcasts::run(settings, stop)),
        ServiceName::Workflows => Box::pin(ism_workflows::run(settings, stop)),
        ServiceName::Integrations => Box::pin(ism_integrations::run(settings, stop)),
    }
}

/// Creates if missing and migrates `service`'s database.
pub async fn migrate(settings: &Settings, service: ServiceName) -> anyhow::Result<()> {
    let pool = db::prepare(&settings.database, service, migrator(service)).await?;
    pool.close().await;
    Ok(())
}

/// Serves `name` (one service or `all`) until SIGTERM.
pub async fn serve(settings: Arc<Settings>, name: &str) -> anyhow::Result<()> {
    settings.refuse_public_secrets()?;
    let services = crate::selected(name)?;
    let process = if services.len() == 1 {
        format!("ism-{}", services[0])
    } else {
        "ism".to_owned()
    };
    let _telemetry = telemetry::init(&settings.telemetry, &process)?;
    let drain = std::time::Duration::from_secs(settings.shutdown.drain_seconds);
    let stop = shutdown::on_signal(
        std::time::Duration::from_secs(settings.shutdown.propagation_seconds),
        drain,
    );
    let runs = services.into_iter().map(|service| {
        let run = runner(service, settings.clone(), stop.clone());
        let stop = stop.clone();
        async move {
            let result = run.await;
            if let Err(e) = &result {
                tracing::error!(%service, error = %format!("{e:#}"), "service failed; stopping");
                stop.now();
            }
            result
        }
    });
    let all = futures::future::join_all(runs);
    tokio::pin!(all);
    // Work still in flight when the drain time is over is safe to drop: every step is
    // recorded before it is acknowledged, so it is redone after the restart, as after a
    // crash. A peer that accepts connections but no longer answers cannot hold a stop.
    let results = tokio::select! {
        results = &mut all => results,
        _ = async { stop.work().cancelled().await; tokio::time::sleep(drain).await } => {
            tracing::warn!("drain time over; stopping with work in flight, redone after the restart");
            return Ok(());
        }
    };
    tracing::info!("stopped");
    results.into_iter().collect()
}
