//! The SDK: typed domain events out as CloudEvents with Confluent-framed Avro ([`Producer`]),
//! and typed events in for downstream domains ([`Consumer`]).
//!
//! A domain event is a serde type with a derived Avro schema, tied to its data product:
//!
//! ```
//! use apache_avro::AvroSchema;
//! use meshline_sdk::DomainEvent;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize, AvroSchema)]
//! #[avro(namespace = "com.example.labels")]
//! struct LabelOnboarded {
//!     label_id: String,
//!     name: String,
//!     catalog_size: i32,
//! }
//!
//! impl DomainEvent for LabelOnboarded {
//!     const PRODUCT: &'static str = "labels.onboarded";
//!     const TYPE: &'static str = "com.example.labels.label.onboarded";
//!     fn subject(&self) -> Option<String> {
//!         Some(self.label_id.clone())
//!     }
//! }
//! # let e = LabelOnboarded { label_id: "l-1".into(), name: "L".into(), catalog_size: 3 };
//! # assert_eq!(e.partition_key().as_deref(), Some("l-1"));
//! ```

pub mod consumer;
mod framed;
pub mod kafka;
pub mod producer;
pub mod registry;
pub mod trace;

pub use meshline_core;
use meshline_core::{binding, codec, contract, dedup, product};

use apache_avro::AvroSchema;
use chrono::{DateTime, Utc};
use serde::Serialize;

pub use consumer::{Consumer, ConsumerBuilder, Received};
pub use producer::{Delivery, Producer, ProducerBuilder, Target};

/// A domain event of one data product.
pub trait DomainEvent: Serialize + AvroSchema {
    /// The product id, e.g. `player.play-events`.
    const PRODUCT: &'static str;
    /// The CloudEvents `type`, one of the product's declared types.
    const TYPE: &'static str;

    /// The CloudEvents `id`; defaults to a new UUID per send. Give a stable id (derived from
    /// what the event records, e.g. the input it was computed from) when the same event may be
    /// sent again, after a restart of an at-least-once consumer for instance: consumers then
    /// recognise the repeat by its `source` and `id` (the SDK consumer's `dedup_window`).
    fn id(&self) -> Option<String> {
        None
    }

    /// The CloudEvents `subject` (what the event is about), if any.
    fn subject(&self) -> Option<String> {
        None
    }

    /// The Kafka key (CloudEvents `partitionkey`): events with the same key stay in order.
    /// Defaults to the subject.
    fn partition_key(&self) -> Option<String> {
        self.subject()
    }

    /// When the event happened (CloudEvents `time`); defaults to when it is sent.
    fn time(&self) -> Option<DateTime<Utc>> {
        None
    }

    /// The W3C trace context (`traceparent`) of the operation that caused the event, carried
    /// as the CloudEvents distributed-tracing extension from the SDK through the gateway to the
    /// product topic; defaults to the current span's OpenTelemetry trace (the `otel` feature),
    /// else a new trace per event.
    fn traceparent(&self) -> Option<String> {
        None
    }
}
