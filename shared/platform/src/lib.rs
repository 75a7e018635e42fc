//! Plumbing every IS-Messenger service shares. No business rules live here.
pub mod auth;
pub mod batch;
pub mod config;
pub mod convert;
pub mod db;
pub mod error;
pub mod events;
pub mod grpc;
pub mod metrics;
pub mod paging;
pub mod plans;
pub mod ratelimit;
pub mod service;
pub mod shutdown;
pub mod stored;
pub mod telemetry;
