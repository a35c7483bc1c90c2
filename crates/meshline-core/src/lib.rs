//! The contract core of meshline, without I/O: what a data product is and what its events
//! must look like, shared by the SDK and every platform component.
//!
//! ```text
//! descriptors (product) ──► the contract check (contract): schema, CloudEvents attributes, CEL
//!        │                         ▲
//!        │                         └── events: CloudEvents Kafka binding (binding) + Avro in
//!        │                             Confluent's framing (codec)
//!        └──► the registry's model (registry): REST bodies, compatibility, normal form, the
//!             product as a Confluent data contract
//! ```
//!
//! Nothing here opens a socket, a file handle beyond reading descriptors, or a runtime: every
//! function is tested on values and bytes.

pub mod binding;
pub mod codec;
pub mod contract;
pub mod dedup;
pub mod limits;
pub mod product;
pub mod registry;
