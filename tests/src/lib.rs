//! Boots the real `ism` binary for a test, with its own databases, exchange and ports,
//! against the machine's Postgres, Redis and RabbitMQ; and a stand-in for the business
//! system that receives outbound messages.
pub mod baseline;
pub mod bots;
pub mod client;
pub mod credentials;
pub mod fixtures;
pub mod oversize;
pub mod platform;
pub mod provider;
pub mod proxy;
pub mod receiver;
pub mod statements;

pub use client::Api;
pub use platform::{Platform, Tenant, authed, eventually, sign};
pub use provider::FakeProvider;
pub use receiver::Receiver;
