//! meshline: the self-serve event-streaming backbone of a data mesh.
//!
//! The modules follow the data flow:
//!
//! ```text
//! descriptors (product) ──► topics (broker) ──► events: CloudEvents (binding) + Avro (codec)
//!        │                                                   │
//!        ├──► schemas + contracts (registry, `_schemas`)     demo producers (demo) ──► meshline tail (cli)
//!        ├──► gateway: <id>.ingress ──contract──► <id> | <id>.dlq; HTTP ingress
//!        ├──► snapshot: <id> ──event-time windows──► Parquet snapshots + manifests (object_store)
//!        ├──► catalog documents (catalog) ── HTTP (server) ── meshline products (cli)
//!        └──► SLOs (slo): Prometheus rules + Grafana dashboards; `/metrics` ──► meshline status
//! ```

pub use meshline_core::{binding, codec, contract, dedup, product};
pub use meshline_sdk as sdk;

pub mod auth;
mod backoff;
pub mod broker;
pub mod catalog;
pub mod cli;
pub mod demo;
pub mod formats;
pub mod gateway;
mod health;
pub mod lineage;
pub mod outputs;
pub mod registry;
pub mod server;
pub mod slo;
pub mod snapshot;
mod telemetry;
