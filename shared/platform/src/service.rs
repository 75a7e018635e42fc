//! A service's start, in the order every service follows: database and migrations,
//! outbox relay, metrics, readiness, consumers and workers, then the gRPC server; and its
//! stop, in the phases of [`Stop`]: work first, then listeners, then the relay.
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::BoxFuture;
use sqlx::migrate::Migrator;
use sqlx::{PgConnection, PgPool};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::task_tracker::TaskTrackerToken;
use tonic::transport::Channel;

use crate::auth::{AuthLayer, ServiceTokens, Verifier};
use crate::config::{ServiceName, Settings};
use crate::error::Error;
use crate::events::topology::QueueSpec;
use crate::events::{Amqp, Consumer, EventHandler, run_relay};
use crate::grpc::GrpcServer;
use crate::health::{self, BrokerLink, Readiness};
use crate::peer::Peer;
use crate::shutdown::Stop;
use crate::{db, grpc, listeners, metrics, revocations};

/// A starting service: its settings, pool, and the tasks it runs until it stops.
pub struct Service {
    pub name: ServiceName,
    pub settings: Arc<Settings>,
    pub pool: PgPool,
    pub amqp: Amqp,
    /// Cancelled when work must stop ([`Stop::work`]): workers and consumers watch it.
    pub shutdown: CancellationToken,
    /// The process' stop, whose phases the servers follow.
    pub stop: Stop,
    /// Whether the database and the broker answer, and the stop is not announced.
    pub readiness: Readiness,
    /// Consumers, workers and jobs: they end when work stops.
    tasks: JoinSet<anyhow::Result<()>>,
    /// Listeners and what serving needs (readiness, revocations): they end when closed.
    servers: JoinSet<anyhow::Result<()>>,
    /// Held while `tasks` run, so that listeners stay open for them.
    working: TaskTrackerToken,
    /// The outbox relay, stopped last, after the calls in flight have committed.
    relay: JoinHandle<()>,
    stop_relay: DropGuard,
    /// One token cache for every peer of this service.
    tokens: OnceLock<Arc<ServiceTokens>>,
}

impl Service {
    /// Connects and migrates the service's database, starts its outbox relay, metrics
    /// and readiness checks.
    pub async fn start(
        name: ServiceName,
        settings: Arc<Settings>,
        stop: Stop,
        migrator: &Migrator,
    ) -> anyhow::Result<Self> {
        let pool = db::prepare(&settings.database, name, migrator).await?;
        let amqp = Amqp::new(settings.amqp.clone());
        let mut servers = JoinSet::new();
        let metrics_listener = listeners::listen(
            &format!("{name}.metrics"),
            &settings.grpc.host,
            settings.service(name).metrics_port,
        )
        .await?;
        servers.spawn(metrics::serve(
            name.as_str(),
            metrics_listener,
            pool.clone(),
            stop.closed().clone(),
        ));
        let broker = BrokerLink::default();
        let relay_stop = CancellationToken::new();
        let relay = tokio::spawn(run_relay(
            name.as_str(),
            pool.clone(),
            amqp.clone(),
            broker.clone(),
            relay_stop.clone(),
        ));
        let (readiness, checks) =
            health::follow(name, pool.clone(), broker, &settings.health, stop.clone());
        servers.spawn(checks);
        Ok(Self {
            name,
            settings,
            pool,
            amqp,
            shutdown: stop.work().clone(),
            working: stop.working(),
            stop,
            readiness,
            tasks: JoinSet::new(),
            servers,
            relay,
            stop_relay: relay_stop.drop_guard(),
            tokens: OnceLock::new(),
        })
    }

    /// Runs `task` beside the server; it must end soon after [`Self::shutdown`]. An
    /// error in it stops the service.
    pub fn spawn(&mut self, task: impl Future<Output = anyhow::Result<()>> + Send + 'static) {
        self.tasks.spawn(task);
    }

    /// Runs a listener of the service's own (the gateway's HTTP side) until
    /// [`Stop::closed`], which comes after every task's end. An error in it stops the
    /// service.
    pub fn spawn_server(
        &mut self,
        server: impl Future<Output = anyhow::Result<()>> + Send + 'static,
    ) {
        self.servers.spawn(server);
    }

    /// Runs `job` every `period` until shutdown, first one `period` after the start. A
    /// failed round is logged with `name` and counted (`ism_job_runs_total{job, outcome}`),
    /// and the next round comes at the next tick; a round that overruns its period delays
    /// the next rather than bunching rounds up. Work a round leaves undone (a batch
    /// limit, a crash) is found again by the next, so jobs keep their state in the
    /// database, never in the task.
    pub fn every<F, Fut, E>(&mut self, name: &'static str, period: Duration, mut job: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send,
        E: std::fmt::Display,
    {
        let service = self.name.as_str();
        let shutdown = self.shutdown.clone();
        for outcome in ["ok", "failed"] {
            ::metrics::counter!("ism_job_runs_total", "service" => service, "job" => name, "outcome" => outcome)
                .absolute(0);
        }
        self.tasks.spawn(async move {
            let start = tokio::time::Instant::now() + period;
            let mut tick = tokio::time::interval_at(start, period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tick.tick() => {}
                }
                let outcome = match job().await {
                    Ok(()) => "ok",
                    Err(e) => {
                        tracing::warn!(job = name, error = %e, "periodic job failed; retrying at the next round");
                        "failed"
                    }
                };
                ::metrics::counter!("ism_job_runs_total", "service" => service, "job" => name, "outcome" => outcome)
                    .increment(1);
            }
        });
    }

    /// Like [`every`](Self::every), with each round's `job` on a transaction of its own, committed
    /// when it succeeds: the repair of run-time bindings (ADR 26) a broker restart lost.
    pub fn every_in_transaction<F>(&mut self, name: &'static str, period: Duration, job: F)
    where
        F: for<'c> Fn(&'c Amqp, &'c mut PgConnection) -> BoxFuture<'c, Result<(), Error>>
            + Send
            + Sync
            + 'static,
    {
        let (pool, amqp, job) = (self.pool.clone(), self.amqp.clone(), Arc::new(job));
        self.every(name, period, move || {
            let (pool, amqp, job) = (pool.clone(), amqp.clone(), job.clone());
            async move {
                let mut tx = pool.begin().await?;
                job(&amqp, &mut tx).await?;
                Ok::<_, Error>(tx.commit().await?)
            }
        });
    }

    /// Consumes `spec`'s queue (see [`topology`](crate::events::topology)) into `handler`.
    pub fn consume<H: EventHandler>(&mut self, spec: QueueSpec, handler: H) {
        let consumer = Consumer::new(spec, handler, self.pool.clone(), self.amqp.clone());
        let shutdown = self.shutdown.clone();
        self.tasks.spawn(async move {
            consumer.run(shutdown).await;
            Ok(())
        });
    }

    /// The endpoint other services reach `service` at.
    pub fn endpoint(&self, service: ServiceName) -> &str {
        &self.settings.service(service).endpoint
    }

    /// A verifier using the workspaces service's published keys.
    pub fn remote_verifier(&self) -> anyhow::Result<Arc<Verifier>> {
        Verifier::from_workspaces(
            self.endpoint(ServiceName::Workspaces),
            Duration::from_secs(self.settings.auth.public_key_refresh_seconds),
        )
    }

    /// Service tokens for this service's calls to the others.
    fn service_tokens(&self) -> anyhow::Result<Arc<ServiceTokens>> {
        if let Some(tokens) = self.tokens.get() {
            return Ok(tokens.clone());
        }
        let tokens = ServiceTokens::new(
            self.name.as_str(),
            self.settings.auth.service_secret.clone(),
            self.endpoint(ServiceName::Workspaces),
        )?;
        Ok(self.tokens.get_or_init(|| tokens).clone())
    }

    /// A client of the peer service `name`, made by `client` on a lazily connecting
    /// channel, calling with this service's token ([`Peer`]).
    pub fn peer<C: Clone>(
        &self,
        name: ServiceName,
        client: impl FnOnce(Channel) -> C,
    ) -> anyhow::Result<Peer<C>> {
        let channel = grpc::channel(self.endpoint(name))?;
        let timeout = Duration::from_millis(self.settings.grpc.peer_timeout_ms);
        Ok(Peer::new(
            name,
            client(channel),
            self.service_tokens()?,
            timeout,
        ))
    }

    /// Serves the gRPC service `server` (authenticated by `verifier`, except
    /// `public_rpcs`) and waits for every task; returns after the stop, or with the
    /// first task's error.
    pub async fn serve<S: GrpcServer>(
        mut self,
        server: S,
        verifier: Arc<Verifier>,
        public_rpcs: &'static [&'static str],
    ) -> anyhow::Result<()> {
        self.servers.spawn(revocations::follow(
            self.amqp.clone(),
            self.stop.closed().clone(),
        ));
        verifier.ready(&self.shutdown).await;
        let listener = listeners::listen(
            &format!("{}.grpc", self.name),
            &self.settings.grpc.host,
            self.settings.service(self.name).grpc_port,
        )
        .await?;
        let serving = grpc::Serving {
            service: self.name,
            settings: self.settings.clone(),
            auth: AuthLayer::new(verifier, public_rpcs),
            readiness: self.readiness.clone(),
            stop: self.stop.clone(),
        };
        self.servers.spawn(serving.serve(listener, server));
        let name = self.name;
        let failed = |e: anyhow::Error, stop: &Stop| {
            stop.now();
            e.context(format!("{name} stopped"))
        };
        let mut working = (!self.tasks.is_empty()).then_some(self.working);
        loop {
            let joined = tokio::select! {
                Some(joined) = self.tasks.join_next() => joined,
                Some(joined) = self.servers.join_next() => joined,
                else => break,
            };
            match joined {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(failed(e, &self.stop)),
                Err(e) => return Err(failed(anyhow::anyhow!("a task panicked: {e}"), &self.stop)),
            }
            if self.tasks.is_empty() {
                working.take();
            }
        }
        drop(self.stop_relay);
        let _ = self.relay.await;
        self.pool.close().await;
        Ok(())
    }
}
