//! Connections and topology: the topic exchange, its dead-letter exchange, and one
//! durable queue (plus its dead-letter queue) per consumer.
use lapin::options::{
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use secrecy::ExposeSecret;

use super::topics;
use super::topology::{self, QueueSpec};
use crate::config::AmqpSettings;

/// Header naming why a message was dead-lettered.
pub const DEAD_LETTER_REASON_HEADER: &str = "x-ism-dead-letter-reason";

/// RabbitMQ access for one service: connects and declares what it uses.
#[derive(Clone)]
pub struct Amqp {
    pub(crate) settings: AmqpSettings,
}

impl Amqp {
    pub fn new(settings: AmqpSettings) -> Self {
        Self { settings }
    }

    /// The exchange events are published to.
    pub fn exchange(&self) -> &str {
        &self.settings.exchange
    }

    /// The exchange poison messages are re-published to.
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dlx", self.settings.exchange)
    }

    /// The queue of a consumer.
    pub fn queue_name(&self, spec: &QueueSpec) -> String {
        format!("{}.{}", self.settings.queue_prefix, spec.consumer())
    }

    /// A new connection; callers reconnect on failure.
    pub async fn connect(&self) -> lapin::Result<Connection> {
        let props = ConnectionProperties::default();
        Connection::connect(self.settings.url.expose_secret(), props).await
    }

    /// A channel in publisher-confirm mode, with the exchanges and every consumer queue
    /// of [`topology::QUEUES`] declared.
    pub async fn publisher(&self, conn: &Connection) -> lapin::Result<Channel> {
        let channel = conn.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        for spec in topology::QUEUES {
            self.declare_queue(&channel, spec).await?;
        }
        self.declare_revocations(&channel).await?;
        Ok(channel)
    }

    /// The stream of `workspaces.access.revoked` events every process reads from its
    /// start, kept a day (longer than any token lives), so a process started after a
    /// revocation learns of it too (ADR 28).
    pub fn revocations_stream(&self) -> String {
        format!("{}.revocations", self.settings.queue_prefix)
    }

    /// Declares the revocations stream, bound to the revocation events.
    pub async fn declare_revocations(&self, channel: &Channel) -> lapin::Result<()> {
        self.declare_exchanges(channel).await?;
        let stream = self.revocations_stream();
        let mut args = FieldTable::default();
        args.insert(
            ShortString::from("x-queue-type"),
            AMQPValue::LongString("stream".into()),
        );
        args.insert(
            ShortString::from("x-max-age"),
            AMQPValue::LongString("1D".into()),
        );
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        channel
            .queue_declare(stream.as_str().into(), durable, args)
            .await?;
        channel
            .queue_bind(
                stream.as_str().into(),
                self.exchange().into(),
                topics::ACCESS_REVOKED.key().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
    }

    async fn declare_exchanges(&self, channel: &Channel) -> lapin::Result<()> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        for name in [self.exchange().to_owned(), self.dead_letter_exchange()] {
            channel
                .exchange_declare(
                    name.into(),
                    ExchangeKind::Topic,
                    durable,
                    FieldTable::default(),
                )
                .await?;
        }
        Ok(())
    }

    /// The arguments every queue is declared with: its type (ADR 22).
    fn queue_arguments(&self) -> FieldTable {
        let mut args = FieldTable::default();
        args.insert(
            ShortString::from("x-queue-type"),
            AMQPValue::LongString(self.settings.queue_type.as_str().into()),
        );
        args
    }

    /// Declares the consumer's queue bound to each of its patterns, and `<queue>.dlq`
    /// receiving what the queue dead-letters.
    pub async fn declare_queue(&self, channel: &Channel, spec: &QueueSpec) -> lapin::Result<()> {
        self.declare_exchanges(channel).await?;
        let queue = self.queue_name(spec);
        let queue = queue.as_str();
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        let dlq = format!("{queue}.dlq");
        channel
            .queue_declare(dlq.as_str().into(), durable, self.queue_arguments())
            .await?;
        channel
            .queue_bind(
                dlq.as_str().into(),
                self.dead_letter_exchange().into(),
                queue.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;

        let mut args = self.queue_arguments();
        args.insert(
            ShortString::from("x-dead-letter-exchange"),
            AMQPValue::LongString(self.dead_letter_exchange().into()),
        );
        args.insert(
            ShortString::from("x-dead-letter-routing-key"),
            AMQPValue::LongString(queue.into()),
        );
        channel.queue_declare(queue.into(), durable, args).await?;
        for pattern in spec.patterns {
            channel
                .queue_bind(
                    queue.into(),
                    self.exchange().into(),
                    (*pattern).into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
        }
        Ok(())
    }

    /// Binds the consumer's queue to `key` as well as its declared patterns (bindings
    /// that follow what users subscribe to; binding twice is one binding).
    pub async fn bind(&self, channel: &Channel, spec: &QueueSpec, key: &str) -> lapin::Result<()> {
        channel
            .queue_bind(
                self.queue_name(spec).as_str().into(),
                self.exchange().into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
    }

    /// Removes a binding made with [`bind`](Self::bind); removing one that is not there
    /// changes nothing.
    pub async fn unbind(
        &self,
        channel: &Channel,
        spec: &QueueSpec,
        key: &str,
    ) -> lapin::Result<()> {
        channel
            .queue_unbind(
                self.queue_name(spec).as_str().into(),
                self.exchange().into(),
                key.into(),
                FieldTable::default(),
            )
            .await
    }
}
