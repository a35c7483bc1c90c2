//! The schema registry's model, shared by its client and its service: Confluent's REST bodies
//! and parameters, Avro and JSON Schema compatibility, the normal form of a schema, and a product descriptor as
//! a Confluent data contract.

pub mod api;
pub mod compat;
pub mod contract;
pub mod json_schema;
pub mod normalize;
