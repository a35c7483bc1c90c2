//! The snapshotter: time-windowed historical views of every data product, written as
//! immutable, addressable Parquet snapshots.
//!
//! ```text
//! <domain>.<product>, each partition ──read_committed──► rows (Avro → Arrow) ──► view:
//!     event-time windows ──the partition's watermark passes a window──► the partition's piece
//!     (files, then its manifest), then the partition's progress
//! pieces of a window, every partition closed it ──commit step──► the window's manifest (and
//!     merged file), then the table commit
//! ```
//!
//! - `window`: calendar windows in a time zone (pure);
//! - `clock`: per-partition event time, lateness and the view's watermark (pure);
//! - [`rows`]: records to Arrow rows with `arrow-avro` (sans-io);
//! - `events`, `latest`, `aggregate`: what each kind of view keeps and writes, behind one
//!   trait (`kind`);
//! - [`view`]: one view's windows of one partition: what to write, when (sans-io);
//! - [`manifest`]: manifests, progress and their paths; [`listing`]: what a store holds;
//! - [`spill`]: view state past its budget, on local disk;
//! - [`parquet`]: Parquet bytes; [`store`]: create-only files on any `object_store` backend;
//! - `table`: a view's files as a table: `delta` (a Delta Lake log) or `iceberg` (Iceberg
//!   metadata, registered in an Iceberg SQL catalog, [`SqlCatalog`]);
//! - [`worker`]: the partitions' Kafka loops, the commit step, how workers share a product, the
//!   delivery guarantee, and the metrics.

mod aggregate;
mod clock;
mod delta;
mod events;
mod iceberg;
mod kind;
mod latest;
pub mod listing;
pub mod manifest;
pub mod parquet;
pub mod rows;
pub mod spill;
pub mod store;
mod table;
#[cfg(test)]
mod testing;
pub mod view;
mod window;
pub mod worker;

pub use iceberg::SqlCatalog;
pub use store::Store;
pub use worker::{Metrics, SnapshotterConfig};

/// Errors of the snapshotter.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A view cannot be built over the product's schema.
    #[error("view `{view}`: {message}; fix the view in the product's descriptor")]
    View {
        /// The view.
        view: String,
        /// What is wrong.
        message: String,
    },
    /// A registered schema cannot be read.
    #[error("schema {id} cannot be decoded into Arrow columns: {message}")]
    Schema {
        /// Schema id.
        id: u32,
        /// Why.
        message: String,
    },
    /// Arrow, Avro or Parquet refused the data.
    #[error("{0}")]
    Data(String),
    /// The snapshot store failed.
    #[error("{what}: {source}")]
    Store {
        /// What the snapshotter was doing.
        what: String,
        /// The store's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A file the snapshotter writes exists with other contents.
    #[error("{path} exists with other contents than this run computed; snapshots are immutable: move it away if it is not a snapshot, or report a bug")]
    Conflict {
        /// The file.
        path: String,
    },
    /// The registry failed.
    #[error("fetching the schemas of {product}: {source}; is the registry up and the product registered?")]
    Registry {
        /// The product.
        product: String,
        /// The client error.
        source: Box<crate::registry::client::Error>,
    },
    /// A Kafka call failed.
    #[error("{context}: {source}")]
    Kafka {
        /// What the snapshotter was doing.
        context: String,
        /// The client error.
        source: rdkafka::error::KafkaError,
    },
    /// Something that should not happen.
    #[error("{0}")]
    Unexpected(String),
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    fn arrow(e: impl std::fmt::Display) -> Self {
        Self::Data(e.to_string())
    }

    fn avro(e: impl std::fmt::Display) -> Self {
        Self::Data(e.to_string())
    }

    fn parquet(e: impl std::fmt::Display) -> Self {
        Self::Data(e.to_string())
    }

    fn json(e: impl std::fmt::Display) -> Self {
        Self::Data(e.to_string())
    }
}

/// Adds the snapshotter's readiness to `readiness`: the group of every product with views gave
/// this worker its share of the partitions (with one worker: all of them).
pub fn ready(
    readiness: &crate::health::Readiness,
    catalog: &crate::product::Catalog,
    metrics: &Metrics,
) {
    let products = i64::try_from(
        catalog
            .iter()
            .filter(|p| !p.descriptor.views.is_empty())
            .count(),
    )
    .unwrap_or(i64::MAX);
    let metrics = metrics.clone();
    readiness.add("snapshotter settled for every product", move || {
        metrics.products_settled() >= products
    });
}
