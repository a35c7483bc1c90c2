//! The snapshotter's settings.

use std::time::Duration;

use super::super::{iceberg::SqlCatalog, spill::Spill, store::Store};
use crate::lineage::Lineage;

/// Settings of the snapshotter.
#[derive(Debug, Clone)]
pub struct SnapshotterConfig {
    /// Kafka bootstrap servers.
    pub bootstrap: String,
    /// Schema registry URL.
    pub registry_url: String,
    /// Where snapshots go.
    pub store: Store,
    /// Rows decoded per batch.
    pub batch_size: usize,
    /// Rows per Parquet file of an `events` view: the memory bound of each open window and
    /// partition.
    pub max_rows_per_file: usize,
    /// Where and past how many keys or groups `latest` and `aggregate` views spill.
    pub spill: Spill,
    /// Progress is written at least this often while records arrive.
    pub checkpoint_interval: Duration,
    /// Prefix of the consumer groups (`<prefix>-<product>`, and `<prefix>-<product>-tail`).
    pub group_prefix: String,
    /// Where each window version written is reported as an OpenLineage run.
    pub lineage: Lineage,
    /// The Iceberg SQL catalog `iceberg` views are registered in (none: they are read by path
    /// or through the catalog's Iceberg REST API only).
    pub iceberg_catalog: Option<SqlCatalog>,
}

impl SnapshotterConfig {
    /// Defaults for `bootstrap`, `registry_url` and `store`.
    pub fn new(bootstrap: &str, registry_url: &str, store: Store) -> Self {
        Self {
            bootstrap: bootstrap.to_owned(),
            registry_url: registry_url.to_owned(),
            store,
            batch_size: 8192,
            max_rows_per_file: 100_000,
            spill: Spill::default(),
            checkpoint_interval: Duration::from_secs(5),
            group_prefix: "meshline-snapshotter".to_owned(),
            lineage: Lineage::disabled(),
            iceberg_catalog: None,
        }
    }
}
