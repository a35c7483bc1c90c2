//! Payload codecs: the Confluent wire format around Avro, Avro values as JSON for people, and
//! strict JSON (unique keys) for what the HTTP ingress reads.

pub mod json;
pub mod strict;
pub mod wire;
