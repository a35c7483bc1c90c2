//! The schema registry: Confluent's REST API over a state kept in a compacted Kafka topic.
//!
//! - [`access`]: who may do what: domains write their own subjects, `platform` the rest (sans-io).
//! - [`audit`]: the audit trail of every write, accepted or refused.
//! - [`log`]: the `_schemas` record format (sans-io).
//! - [`state`]: the state machine the log is applied to, and plans for writes (sans-io).
//! - [`service`]: the running registry: reads the log, appends writes.
//! - [`http`]: the REST API (axum).
//!
//! Shared with the SDK, from the core: [`compat`] (the seven compatibility modes over Avro's
//! resolution rules), [`normalize`] (Confluent's normalized form of a schema), [`api`]
//! (Confluent's request, response and error bodies), [`contract`] (a product descriptor as a
//! Confluent data contract); from the SDK: [`client`], with caches.

pub mod access;
pub mod audit;
pub mod http;
pub mod log;
pub mod protobuf;
pub mod service;
pub mod state;

pub use meshline_core::registry::{api, compat, contract, json_schema, normalize};
pub use meshline_sdk::registry as client;

pub use service::Registry;
