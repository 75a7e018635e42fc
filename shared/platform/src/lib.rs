//! Plumbing every IS-Messenger service shares. No business rules live here.
pub mod auth;
pub mod config;
pub mod db;
pub mod events;
pub mod grpc;
pub mod metrics;
pub mod paging;
pub mod shutdown;
pub mod telemetry;
