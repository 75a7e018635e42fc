//! Consuming events: one durable queue per consumer, handlers that commit before the ack,
//! duplicates dropped by event id, transient failures retried with backoff, poison
//! messages dead-lettered with their reason.
use std::collections::HashSet;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use futures::StreamExt;
use ism_proto::events::v1::Event;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel};
use opentelemetry::trace::TraceContextExt;
use prost::Message;
use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use uuid::Uuid;

use super::topology::QueueSpec;
use super::{Amqp, DEAD_LETTER_REASON_HEADER, TracedEvent};
use crate::telemetry;

/// Why a handler did not apply an event.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Worth retrying: a database, broker or downstream service hiccup.
    #[error("transient: {0:#}")]
    Transient(anyhow::Error),
    /// Will never succeed: the event is malformed or refers to nothing; dead-lettered.
    #[error("permanent: {0}")]
    Permanent(String),
}

impl From<sqlx::Error> for HandlerError {
    /// Through the platform's one mapping (`crate::error`): an outage or a race is
    /// retried, a statement that can never succeed is dead-lettered.
    fn from(e: sqlx::Error) -> Self {
        crate::error::Error::from(e).into()
    }
}

/// What a handler gets besides the event: its transaction, recorded in the inbox.
pub struct EventContext {
    pool: PgPool,
    consumer: Arc<str>,
    event_id: Uuid,
}

impl EventContext {
    /// Begins the handler's transaction with the event marked processed in it; `None`
    /// when a concurrent delivery of the same event got there first. Commit it to
    /// apply the event exactly once.
    pub async fn begin(&self) -> Result<Option<Transaction<'static, Postgres>>, HandlerError> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO platform_inbox (consumer, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(&*self.consumer)
        .bind(self.event_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        Ok((inserted == 1).then_some(tx))
    }
}

/// Several deliveries of one lane, to apply in one transaction: one commit instead of
/// one per event when a queue has a backlog.
pub struct Batch {
    pool: PgPool,
    consumer: Arc<str>,
    /// Each event with the trace context it was published in.
    events: Vec<(Uuid, TracedEvent)>,
}

impl Batch {
    /// Begins the batch's transaction with every event marked processed in it, and the
    /// events no earlier delivery applied, in delivery order (a duplicate once). Commit
    /// it to apply them all exactly once.
    pub async fn begin(
        &self,
    ) -> Result<(Transaction<'static, Postgres>, Vec<Event>), HandlerError> {
        let (tx, fresh) = self.begin_traced().await?;
        Ok((tx, fresh.into_iter().map(|traced| traced.event).collect()))
    }

    /// Like [`Self::begin`], with each event's own trace context: for work the handler
    /// leaves for later (a queued delivery), which continues the event's trace rather
    /// than the batch's.
    pub async fn begin_traced(
        &self,
    ) -> Result<(Transaction<'static, Postgres>, Vec<TracedEvent>), HandlerError> {
        let mut tx = self.pool.begin().await?;
        let mut ids: Vec<Uuid> = self.events.iter().map(|(id, _)| *id).collect();
        // Inbox rows in id order, so two overlapping batches never wait on each other in
        // opposite orders.
        ids.sort_unstable();
        ids.dedup();
        let fresh: Vec<Uuid> = sqlx::query_scalar(
            "INSERT INTO platform_inbox (consumer, event_id) SELECT $1, unnest($2::uuid[])
             ON CONFLICT DO NOTHING RETURNING event_id",
        )
        .bind(&*self.consumer)
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
        let mut fresh: HashSet<Uuid> = fresh.into_iter().collect();
        let events = self
            .events
            .iter()
            .filter(|(id, _)| fresh.remove(id))
            .map(|(_, traced)| traced.clone())
            .collect();
        Ok((tx, events))
    }

    /// The batch's events in delivery order, duplicates included.
    pub fn events(&self) -> impl Iterator<Item = &Event> {
        self.events.iter().map(|(_, traced)| &traced.event)
    }

    /// How many deliveries the batch holds.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether the batch holds no delivery (never, as handed to a handler).
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

/// Applies events of the routing keys it was bound to.
pub trait EventHandler: Send + Sync + 'static {
    /// Applies `event`; state changes go through `ctx.begin()`'s transaction.
    fn handle(
        &self,
        event: Event,
        ctx: EventContext,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;

    /// Most deliveries of one lane, already received, that [`EventHandler::handle_batch`]
    /// applies together; 1 (the default) applies each alone through `handle`.
    fn batch_size(&self) -> usize {
        1
    }

    /// Applies a batch in `batch.begin()`'s one transaction. On any error nothing of it
    /// is applied and each event goes through `handle` alone, with its own retries and
    /// dead-lettering.
    fn handle_batch(&self, batch: Batch) -> impl Future<Output = Result<(), HandlerError>> + Send {
        async move {
            Err(HandlerError::Transient(anyhow::anyhow!(
                "{} events: this handler applies events one by one",
                batch.len()
            )))
        }
    }
}

/// A named consumer of a service: its queue, bindings and handler.
pub struct Consumer<H> {
    name: Arc<str>,
    spec: QueueSpec,
    handler: Arc<H>,
    pool: PgPool,
    amqp: Amqp,
}

/// What can become of an event a consumer takes (`ism_events_consumed_total{outcome}`).
const OUTCOMES: [&str; 3] = ["processed", "requeued", "dead_lettered"];

impl<H: EventHandler> Consumer<H> {
    /// The consumer of `spec`'s queue.
    pub fn new(spec: QueueSpec, handler: H, pool: PgPool, amqp: Amqp) -> Self {
        let name = format!("{}.{}", spec.service, spec.name);
        // From zero, so that an alert on the first dead letter has a series to rise from.
        for outcome in OUTCOMES {
            metrics::counter!("ism_events_consumed_total", "consumer" => name.clone(), "outcome" => outcome)
                .increment(0);
        }
        Self {
            name: Arc::from(name),
            spec,
            handler: Arc::new(handler),
            pool,
            amqp,
        }
    }

    /// Consumes until `shutdown`, reconnecting after broker failures.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut delay = Duration::from_millis(100);
        while !shutdown.is_cancelled() {
            match self.consume(&shutdown).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(consumer = %self.name, error = %format!("{e:#}"), "consumer interrupted; reconnecting");
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn consume(&self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        let queue = &self.amqp.queue_name(&self.spec);
        let conn = self.amqp.connect().await?;
        let channel = conn.create_channel().await?;
        channel
            .basic_qos(self.amqp.settings.prefetch, BasicQosOptions::default())
            .await?;
        self.amqp.declare_queue(&channel, &self.spec).await?;
        let dead_letters = self.amqp.publisher(&conn).await?;
        let tag = format!("{}-{}", self.name, Uuid::now_v7());
        let mut deliveries = channel
            .basic_consume(
                queue.as_str().into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        tracing::info!(consumer = %self.name, queue = %queue, "consuming");

        let lane = Lane {
            consumer: self.name.clone(),
            queue: Arc::from(queue.as_str()),
            handler: self.handler.clone(),
            pool: self.pool.clone(),
            amqp: self.amqp.clone(),
            dead_letters,
            shutdown: shutdown.clone(),
        };
        let lanes = self.amqp.settings.consumer_lanes.max(1);
        let mut senders = Vec::with_capacity(lanes);
        let mut workers = Vec::with_capacity(lanes);
        for _ in 0..lanes {
            let (tx, mut rx) = mpsc::unbounded_channel::<(Delivery, Event)>();
            let lane = lane.clone();
            workers.push(tokio::spawn(async move {
                let size = lane.handler.batch_size().max(1);
                let mut batch = Vec::with_capacity(size);
                // Waits for one delivery, then takes those already waiting, up to `size`.
                while rx.recv_many(&mut batch, size).await > 0 {
                    match <[_; 1]>::try_from(std::mem::take(&mut batch)) {
                        Ok([(delivery, event)]) => lane.process(delivery, event).await,
                        Err(batch) => lane.process_batch(batch).await,
                    }
                }
            }));
            senders.push(tx);
        }

        let mut depth_tick = tokio::time::interval(Duration::from_secs(5));
        let outcome = loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    let _ = channel.basic_cancel(tag.as_str().into(), BasicCancelOptions::default()).await;
                    break Ok(());
                }
                _ = depth_tick.tick() => {
                    let passive = QueueDeclareOptions { passive: true, ..Default::default() };
                    let q = channel.queue_declare(queue.as_str().into(), passive, FieldTable::default()).await?;
                    metrics::gauge!("ism_queue_depth", "queue" => queue.clone()).set(q.message_count() as f64);
                }
                next = deliveries.next() => match next {
                    None => break Err(anyhow::anyhow!("the broker closed the consumer")),
                    Some(Err(e)) => break Err(e.into()),
                    Some(Ok(delivery)) => match Event::decode(delivery.data.as_slice()) {
                        Ok(event) => {
                            let index = lane_of(&event, lanes);
                            if senders[index].send((delivery, event)).is_err() {
                                break Err(anyhow::anyhow!("consumer lane stopped"));
                            }
                        }
                        Err(e) => lane.dead_letter(&delivery, &format!("not an ism.events.v1.Event: {e}")).await,
                    },
                },
            }
        };
        drop(senders);
        for worker in workers {
            let _ = worker.await;
        }
        let _ = conn.close(200, "consumer stopped".into()).await;
        outcome
    }
}

/// Events with the same partition key land in the same lane, so they apply in order.
fn lane_of(event: &Event, lanes: usize) -> usize {
    let key = if event.partition_key.is_empty() {
        &event.id
    } else {
        &event.partition_key
    };
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    (hasher.finish() % lanes as u64) as usize
}

struct Lane<H> {
    consumer: Arc<str>,
    queue: Arc<str>,
    handler: Arc<H>,
    pool: PgPool,
    amqp: Amqp,
    dead_letters: Channel,
    shutdown: CancellationToken,
}

impl<H> Clone for Lane<H> {
    fn clone(&self) -> Self {
        Self {
            consumer: self.consumer.clone(),
            queue: self.queue.clone(),
            handler: self.handler.clone(),
            pool: self.pool.clone(),
            amqp: self.amqp.clone(),
            dead_letters: self.dead_letters.clone(),
            shutdown: self.shutdown.clone(),
        }
    }
}

impl<H: EventHandler> Lane<H> {
    async fn process(&self, delivery: Delivery, event: Event) {
        let span = tracing::info_span!(
            "event.consume",
            otel.kind = "consumer",
            messaging.system = "rabbitmq",
            messaging.operation.type = "process",
            messaging.consumer.group.name = %self.consumer,
            messaging.message.id = %event.id,
            consumer = %self.consumer,
            event.r#type = %event.r#type,
            event.id = %event.id,
            workspace_id = %event.workspace_id,
            trace_id = tracing::field::Empty,
        );
        telemetry::adopt_parent(
            &span,
            telemetry::context_from_map(&trace_headers(&delivery)),
        );
        self.apply(delivery, event).instrument(span).await;
    }

    /// Applies deliveries together and acks them after the commit; when that fails,
    /// each goes through [`Lane::process`] alone.
    async fn process_batch(&self, deliveries: Vec<(Delivery, Event)>) {
        let started = Instant::now();
        let events: Option<Vec<(Uuid, TracedEvent)>> = deliveries
            .iter()
            .map(|(delivery, event)| {
                let traced = TracedEvent {
                    event: event.clone(),
                    trace: trace_headers(delivery),
                };
                Some((event.id.parse().ok()?, traced))
            })
            .collect();
        let result = match events {
            Some(events) => {
                let span = tracing::info_span!(
                    "event.consume_batch",
                    otel.kind = "consumer",
                    messaging.system = "rabbitmq",
                    messaging.operation.type = "process",
                    messaging.consumer.group.name = %self.consumer,
                    messaging.batch.message_count = events.len(),
                    consumer = %self.consumer,
                    size = events.len(),
                );
                // A batch has many parents: it links to each event's own trace.
                for (_, traced) in &events {
                    let cx = telemetry::context_from_map(&traced.trace);
                    span.add_link(cx.span().span_context().clone());
                }
                let batch = Batch {
                    pool: self.pool.clone(),
                    consumer: self.consumer.clone(),
                    events,
                };
                self.handler.handle_batch(batch).instrument(span).await
            }
            None => Err(HandlerError::Permanent("an event id is not a UUID".into())),
        };
        if let Err(e) = result {
            tracing::info!(consumer = %self.consumer, error = %e, size = deliveries.len(), "batch not applied; applying its events one by one");
            for (delivery, event) in deliveries {
                self.process(delivery, event).await;
            }
            return;
        }
        let each = started.elapsed().as_secs_f64() / deliveries.len() as f64;
        for (delivery, event) in deliveries {
            if let Err(e) = delivery.ack(BasicAckOptions::default()).await {
                // Applied and committed: the redelivery is dropped by the inbox.
                tracing::warn!(error = %e, "ack failed after commit");
            }
            self.record(&event, "processed", each);
        }
    }

    /// The metrics of one event's handling.
    fn record(&self, event: &Event, outcome: &'static str, seconds: f64) {
        metrics::counter!("ism_events_consumed_total", "consumer" => self.consumer.to_string(), "outcome" => outcome).increment(1);
        metrics::histogram!("ism_event_handle_seconds", "consumer" => self.consumer.to_string())
            .record(seconds);
        if let Some(lag) = lag_seconds(event) {
            metrics::histogram!("ism_event_lag_seconds", "consumer" => self.consumer.to_string())
                .record(lag);
        }
    }

    async fn apply(&self, delivery: Delivery, event: Event) {
        let started = Instant::now();
        let Ok(event_id) = event.id.parse::<Uuid>() else {
            return self
                .dead_letter(&delivery, &format!("event id {:?} is not a UUID", event.id))
                .await;
        };
        let attempt = || {
            let ctx = EventContext {
                pool: self.pool.clone(),
                consumer: self.consumer.clone(),
                event_id,
            };
            self.handler.handle(event.clone(), ctx)
        };
        let settings = &self.amqp.settings;
        let policy = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(settings.retry_base_ms))
            .with_max_delay(Duration::from_millis(settings.retry_max_delay_ms))
            .without_max_times()
            .with_total_delay(Some(Duration::from_secs(settings.retry_for_seconds)))
            .with_jitter();
        let result = attempt
            .retry(policy)
            .when(|e| matches!(e, HandlerError::Transient(_)) && !self.shutdown.is_cancelled())
            .notify(|e, after| tracing::warn!(error = %e, retry_in_ms = after.as_millis() as u64, "event handling failed; retrying"))
            .await;
        let outcome = match result {
            Ok(()) => {
                if let Err(e) = delivery.ack(BasicAckOptions::default()).await {
                    // Applied and committed: the redelivery is dropped by the inbox.
                    tracing::warn!(error = %e, "ack failed after commit");
                }
                "processed"
            }
            Err(HandlerError::Transient(e)) if self.shutdown.is_cancelled() => {
                // Stopping: what failed because peers are stopping too goes back to the
                // queue for the next process rather than to the dead letters.
                tracing::info!(error = %format!("{e:#}"), "event requeued at shutdown");
                if let Err(e) = delivery
                    .nack(BasicNackOptions {
                        requeue: true,
                        ..Default::default()
                    })
                    .await
                {
                    tracing::warn!(error = %e, "requeue failed; the broker redelivers on reconnect");
                }
                "requeued"
            }
            Err(e) => {
                let reason = match e {
                    HandlerError::Transient(e) => format!(
                        "still failing after {} s of retries: {e:#}",
                        settings.retry_for_seconds
                    ),
                    permanent => permanent.to_string(),
                };
                tracing::error!(%reason, "event dead-lettered");
                self.dead_letter(&delivery, &reason).await;
                "dead_lettered"
            }
        };
        self.record(&event, outcome, started.elapsed().as_secs_f64());
    }

    /// Re-publishes the delivery to the dead-letter exchange with `reason`, then acks it.
    /// If that publish is not confirmed the delivery is rejected, and the queue's own
    /// dead-letter settings route it (without the reason).
    async fn dead_letter(&self, delivery: &Delivery, reason: &str) {
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        headers.insert(
            ShortString::from(DEAD_LETTER_REASON_HEADER),
            AMQPValue::LongString(reason.into()),
        );
        let props = BasicProperties::default()
            .with_delivery_mode(2)
            .with_headers(headers);
        let published = async {
            self.dead_letters
                .basic_publish(
                    self.amqp.dead_letter_exchange().into(),
                    (&*self.queue).into(),
                    BasicPublishOptions::default(),
                    &delivery.data,
                    props,
                )
                .await?
                .await
        }
        .await;
        let result = match published {
            Ok(confirmation) if confirmation.is_ack() => {
                delivery.ack(BasicAckOptions::default()).await
            }
            _ => {
                delivery
                    .nack(BasicNackOptions {
                        requeue: false,
                        ..Default::default()
                    })
                    .await
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "settling a dead-lettered delivery failed");
        }
    }
}

fn trace_headers(delivery: &Delivery) -> std::collections::BTreeMap<String, String> {
    let mut map = std::collections::BTreeMap::new();
    if let Some(headers) = delivery.properties.headers() {
        for (k, v) in headers.inner() {
            if let AMQPValue::LongString(s) = v {
                map.insert(
                    k.as_str().to_owned(),
                    String::from_utf8_lossy(s.as_bytes()).into_owned(),
                );
            }
        }
    }
    map
}

/// Seconds from the event's commit in its producer to the end of its handling here: the
/// consumer lag an operator feels, whatever the queue length.
fn lag_seconds(event: &Event) -> Option<f64> {
    let occurred = event.occurred_at.as_ref()?;
    let occurred =
        chrono::DateTime::from_timestamp(occurred.seconds, occurred.nanos.try_into().ok()?)?;
    let lag = chrono::Utc::now().signed_duration_since(occurred);
    Some(lag.num_microseconds()? as f64 / 1e6).filter(|s| *s >= 0.0)
}
