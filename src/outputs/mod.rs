//! What the gateway and the snapshotter write beside a product's records, and read back: every
//! output names the ingress record it came from, and a dead letter says why it was refused
//! ([`headers`]); a component taking over a partition reads the tails of its outputs to find
//! what is already written ([`resume`]). Both components use this module; neither uses the
//! other.

pub mod headers;
pub mod resume;

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A Kafka call failed.
    #[error("{context}: {source}")]
    Kafka {
        /// What was being read.
        context: String,
        /// The client error.
        source: rdkafka::error::KafkaError,
    },
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;
