//! Payload codecs: the Confluent wire format around Avro, Avro values as JSON for people, and
//! strict JSON (unique keys) for what the HTTP ingress reads, and the Avro field model of a JSON
//! Schema.

pub mod json;
pub mod json_schema;
pub mod strict;
pub mod wire;
