//! Raw rates of this machine's infrastructure, measured beside the platform's figures in
//! the benchmarks.
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties, PublisherConfirm};

/// The broker the harness points the platform at.
const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
/// Publishes awaiting their confirm.
pub const CONFIRM_WINDOW: usize = 256;
/// Body size of the messages, about that of a platform event.
pub const EVENT_BYTES: usize = 512;

/// Confirmed persistent publishes per second from one connection and channel to a durable
/// quorum queue of its own (the type the platform's queues have by default), with up to
/// [`CONFIRM_WINDOW`] publishes awaiting their confirm.
pub async fn confirmed_publishes(queue: &str, duration: Duration) -> anyhow::Result<f64> {
    let conn = Connection::connect(AMQP, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let mut quorum = FieldTable::default();
    quorum.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    channel.queue_declare(queue.into(), durable, quorum).await?;
    let body = vec![b'x'; EVENT_BYTES];
    let properties = BasicProperties::default().with_delivery_mode(2);
    let publishing = async {
        let mut window: VecDeque<PublisherConfirm> = VecDeque::with_capacity(CONFIRM_WINDOW);
        let mut confirmed = 0u64;
        let started = Instant::now();
        while started.elapsed() < duration {
            if window.len() == CONFIRM_WINDOW
                && let Some(confirm) = window.pop_front()
            {
                anyhow::ensure!(confirm.await?.is_ack(), "RabbitMQ refused a publish");
                confirmed += 1;
            }
            let confirm = channel
                .basic_publish(
                    "".into(),
                    queue.into(),
                    BasicPublishOptions::default(),
                    &body,
                    properties.clone(),
                )
                .await?;
            window.push_back(confirm);
        }
        for confirm in window {
            anyhow::ensure!(confirm.await?.is_ack(), "RabbitMQ refused a publish");
            confirmed += 1;
        }
        Ok(confirmed as f64 / started.elapsed().as_secs_f64())
    };
    let rate = publishing.await;
    channel
        .queue_delete(queue.into(), QueueDeleteOptions::default())
        .await?;
    conn.close(200, "done".into()).await?;
    rate
}
