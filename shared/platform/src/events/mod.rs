//! Events on RabbitMQ: topology, a transactional outbox with a confirming relay, and
//! consumers that dedupe by event id, retry with backoff and dead-letter poison.
mod amqp;
pub mod bindings;
mod consumer;
mod envelope;
mod outbox;
mod relay;
mod topic;
pub mod topology;

pub use amqp::{Amqp, DEAD_LETTER_REASON_HEADER};
pub use consumer::{Batch, Consumer, EventContext, EventHandler, HandlerError};
pub use envelope::decode_payload;
pub use outbox::{TracedEvent, emit, enqueue, enqueue_all, enqueue_traced};
pub use relay::run_relay;
pub use topic::{Topic, topics};
