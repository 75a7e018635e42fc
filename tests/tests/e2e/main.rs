//! The end-to-end tests: the real `ism` binary against real Postgres, Redis and RabbitMQ,
//! one isolated platform per test. One test binary, so that scenarios of every feature
//! share the test threads instead of waiting for each other's binary (only
//! `broker_restart`, which restarts the machine's broker, runs alone).
mod access;
mod api_contract;
mod bots;
mod broadcasts;
mod contacts;
mod conversations;
mod crash_recovery;
mod field_errors;
mod first_message;
mod operability;
mod providers;
mod tracing;
mod webhook_input;
mod webhooks;
mod workflows;
mod write_budgets;
