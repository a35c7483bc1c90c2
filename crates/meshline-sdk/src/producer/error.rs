//! What can go wrong when producing, each with what to do about it.

use rdkafka::error::KafkaError;

use crate::{contract::Violation, kafka, registry as client};

/// Errors of the producer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No broker answers.
    #[error("{0}")]
    BrokerUnreachable(#[source] Box<kafka::Error>),
    /// The registry failed.
    #[error("{0}")]
    Registry(#[source] Box<client::Error>),
    /// The product has no registered schema.
    #[error("unknown data product `{product}`: the registry has no subject `{product}-value`; registered products: {registered}. Declare it under config/ and run `meshline up`, or build the producer with `.dev_mode(true)` to register the event's schema")]
    UnknownProduct {
        /// The product.
        product: String,
        /// The products the registry knows.
        registered: String,
    },
    /// The event type does not fit the product's registered schema.
    #[error("`{ty}` does not match the registered schema of {product} (id {schema_id}): {why}; change the type, or evolve the product's schema first (`meshline contract diff`)")]
    SchemaMismatch {
        /// The Rust type.
        ty: &'static str,
        /// The product.
        product: String,
        /// The registered schema id.
        schema_id: u32,
        /// Why.
        why: String,
    },
    /// The event breaks the product's contract.
    #[error("event refused by the contract of {product}: {violation}")]
    Contract {
        /// The product.
        product: String,
        /// Why.
        violation: Violation,
    },
    /// The encoded event is larger than the producer may send.
    #[error("event for {product} is {size} bytes, over the {max}-byte limit; send large data by reference (e.g. an object-store URL) or raise `max_event_bytes` together with the topic's max.message.bytes")]
    TooLarge {
        /// The product.
        product: String,
        /// Encoded size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The event could not be encoded with the registered schema.
    #[error("event for {product} does not encode with its registered schema: {message}")]
    Encode {
        /// The product.
        product: String,
        /// Why.
        message: String,
    },
    /// The broker did not acknowledge the event.
    #[error("event for {topic} not delivered: {source}")]
    Delivery {
        /// The topic.
        topic: String,
        /// Why.
        source: KafkaError,
    },
    /// The client could not be created or flushed.
    #[error("kafka producer: {0}")]
    Kafka(#[from] KafkaError),
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<client::Error> for Error {
    fn from(e: client::Error) -> Self {
        Self::Registry(Box::new(e))
    }
}

/// An event the registered schema cannot encode.
pub(super) fn encode_error(product: &str, e: apache_avro::Error) -> Error {
    Error::Encode {
        product: product.to_owned(),
        message: e.to_string(),
    }
}
