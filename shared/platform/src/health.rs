//! Readiness: whether a service can do its job now, which is what a load balancer or a
//! peer should route by. It is NOT_SERVING until the first check passes, while the
//! service's database or the broker does not answer, and from the moment a stop is
//! announced ([`Stop`]). Liveness (the gRPC health service's whole-server status `""`,
//! the gateway's `/healthz`) never looks at dependencies: restarting a process because
//! its database is down would only add a cold start to the outage.
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lapin::ConnectionStatus;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection, PgPool};
use tokio::sync::watch;

use crate::config::{HealthSettings, ServiceName};
use crate::shutdown::Stop;

/// The broker connection the outbox relay keeps open all the time: its state tells
/// whether the broker answers, without a connection of its own (each costs an IO thread
/// and megabytes in every process).
#[derive(Clone, Default)]
pub struct BrokerLink(Arc<Mutex<Option<ConnectionStatus>>>);

impl BrokerLink {
    /// The relay connected: follow this connection.
    pub(crate) fn connected(&self, status: ConnectionStatus) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(status);
    }

    /// The relay lost its connection and is reconnecting.
    pub(crate) fn lost(&self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn is_up(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .is_some_and(ConnectionStatus::connected)
    }
}

/// Whether the database answers, asked over a connection of the check's own: a pool
/// whose every connection is busy is load, not an outage, and a readiness that failed
/// under load would turn every replica away at once when they are busiest.
struct DatabaseProbe {
    options: PgConnectOptions,
    connection: Option<PgConnection>,
    timeout: Duration,
}

impl DatabaseProbe {
    async fn answers(&mut self) -> bool {
        let asked = tokio::time::timeout(self.timeout, async {
            // A connection that failed or timed out is dropped here, half-closed as it may
            // be: the next check opens a fresh one.
            let mut connection = match self.connection.take() {
                Some(connection) => connection,
                None => self.options.connect().await?,
            };
            connection.ping().await?;
            self.connection = Some(connection);
            Ok::<_, sqlx::Error>(())
        })
        .await;
        asked.is_ok_and(|answer| answer.is_ok())
    }
}

/// A service's readiness, as last checked.
#[derive(Clone)]
pub struct Readiness(watch::Receiver<bool>);

impl Readiness {
    /// Whether the service is ready now.
    pub fn is_ready(&self) -> bool {
        *self.0.borrow()
    }

    /// Waits for the next change; `false` once the checks have ended for good.
    pub async fn changed(&mut self) -> bool {
        self.0.changed().await.is_ok()
    }
}

/// Checks `service`'s database and broker every `settings.check_interval_ms` until the
/// stop closes listeners; the returned [`Readiness`] follows, and
/// `ism_dependency_up{service, dependency}` shows each dependency as 1 or 0.
pub fn follow(
    service: ServiceName,
    pool: PgPool,
    broker: BrokerLink,
    settings: &HealthSettings,
    stop: Stop,
) -> (
    Readiness,
    impl Future<Output = anyhow::Result<()>> + Send + 'static,
) {
    let (ready, readiness) = watch::channel(false);
    let interval = Duration::from_millis(settings.check_interval_ms);
    let mut probe = DatabaseProbe {
        options: (*pool.connect_options()).clone(),
        connection: None,
        timeout: Duration::from_millis(settings.check_timeout_ms),
    };
    let task = async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.closed().cancelled() => return Ok(()),
                _ = stop.announced().cancelled(), if !stop.announced().is_cancelled() => {}
                _ = tick.tick() => {}
            }
            let database = probe.answers().await;
            let broker = broker.is_up();
            for (dependency, up) in [("database", database), ("broker", broker)] {
                metrics::gauge!("ism_dependency_up", "service" => service.as_str(), "dependency" => dependency)
                    .set(if up { 1.0 } else { 0.0 });
            }
            let now = database && broker && !stop.announced().is_cancelled();
            if ready.send_if_modified(|was| std::mem::replace(was, now) != now) {
                if now {
                    tracing::info!(%service, "ready");
                } else if stop.announced().is_cancelled() {
                    tracing::info!(%service, "not ready: stopping");
                } else {
                    tracing::warn!(%service, database, broker, "not ready: a dependency does not answer");
                }
            }
        }
    };
    (Readiness(readiness), task)
}
