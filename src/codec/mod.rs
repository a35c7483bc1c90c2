//! Payload codecs: the Confluent wire format around Avro, and Avro values as JSON for people.

pub mod json;
pub mod wire;
