//! The schema registry: Confluent's REST API over a state kept in a compacted Kafka topic.
//!
//! - [`access`]: who may do what: domains write their own subjects, `platform` the rest (sans-io).
//! - [`log`]: the `_schemas` record format (sans-io).
//! - [`state`]: the state machine the log is applied to, and plans for writes (sans-io).
//! - [`compat`]: the seven compatibility modes over Avro's resolution rules (sans-io).
//! - [`normalize`]: Confluent's normalized form of a schema, for `normalize=true` (sans-io).
//! - [`api`]: Confluent's request, response and error bodies (sans-io).
//! - [`service`]: the running registry: reads the log, appends writes.
//! - [`http`]: the REST API (axum).
//! - [`client`]: what the SDK, gateway and snapshotter use, with caches.
//! - [`contract`]: a product descriptor as a Confluent data contract.

pub mod access;
pub mod api;
pub mod client;
pub mod compat;
pub mod contract;
pub mod http;
pub mod log;
pub mod normalize;
pub mod service;
pub mod state;

pub use service::Registry;
