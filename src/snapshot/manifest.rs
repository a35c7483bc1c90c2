//! What the snapshotter writes besides Parquet files: each window's `manifest.json` (written
//! last, so a snapshot exists only when complete), the pieces each source partition contributes
//! to it, and the progress each partition resumes from, at deterministic paths.
//!
//! ```text
//! snapshots/<domain>/<product>/<view>/window=<label>/v<version>/part-….parquet
//! snapshots/<domain>/<product>/<view>/window=<label>/v<version>/manifest.json
//! snapshots/<domain>/<product>/<view>/window=<label>/partition-<p>/v<version>/part-….parquet
//! snapshots/<domain>/<product>/<view>/window=<label>/partition-<p>/v<version>/manifest.json
//! snapshots/<domain>/<product>/_progress/partition-<p>/<sequence, 12 digits>.json
//! snapshots/<domain>/<product>/_progress/watermarks.json
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::product::ViewKind;

/// The root of a product's snapshots: `snapshots/<domain>/<product>`.
pub use crate::product::snapshot_root as product_root;

/// The directory of one version of a window's snapshot.
pub fn version_dir(product_id: &str, view: &str, label: &str, version: u32) -> String {
    format!(
        "{}/{view}/window={label}/v{version}",
        product_root(product_id)
    )
}

/// The manifest of one version of a window's snapshot.
pub fn manifest_path(product_id: &str, view: &str, label: &str, version: u32) -> String {
    format!(
        "{}/manifest.json",
        version_dir(product_id, view, label, version)
    )
}

/// The directory of one version of the piece of a window that source `partition` contributes.
pub fn piece_dir(
    product_id: &str,
    view: &str,
    label: &str,
    partition: i32,
    version: u32,
) -> String {
    format!(
        "{}/{view}/window={label}/partition-{partition}/v{version}",
        product_root(product_id)
    )
}

/// The manifest of one version of a window's piece from source `partition`.
pub fn piece_manifest_path(
    product_id: &str,
    view: &str,
    label: &str,
    partition: i32,
    version: u32,
) -> String {
    format!(
        "{}/manifest.json",
        piece_dir(product_id, view, label, partition, version)
    )
}

/// The directory of the progress files of source `partition`.
pub fn progress_dir(product_id: &str, partition: i32) -> String {
    format!(
        "{}/_progress/partition-{partition}",
        product_root(product_id)
    )
}

/// The progress file of source `partition` with sequence number `sequence`.
pub fn progress_path(product_id: &str, partition: i32, sequence: u64) -> String {
    format!(
        "{}/{sequence:012}.json",
        progress_dir(product_id, partition)
    )
}

/// The product's watermark per view, as the commit step last combined it from the partitions'
/// progress: a partition gone idle closes its windows by it.
pub fn watermarks_path(product_id: &str) -> String {
    format!("{}/_progress/watermarks.json", product_root(product_id))
}

/// A Parquet file of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    /// Path from the store's root.
    pub path: String,
    /// Rows in the file.
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256 of the file, hex.
    pub sha256: String,
}

/// Which records of one source partition a snapshot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceRange {
    /// Lowest offset.
    pub first_offset: i64,
    /// Highest offset.
    pub last_offset: i64,
    /// Records taken (events outside the window in between are not).
    pub events: u64,
}

/// The manifest of one version of a window's snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The data product.
    pub product: String,
    /// The view.
    pub view: String,
    /// What the view holds.
    pub kind: ViewKind,
    /// The window's label.
    pub window: String,
    /// First instant of the window (RFC 3339, UTC).
    pub window_start: String,
    /// First instant after the window (RFC 3339, UTC).
    pub window_end: String,
    /// Time zone of the calendar.
    pub time_zone: String,
    /// Version: 1, then one more for each amendment with late events.
    pub version: u32,
    /// The files, in order; together they are the snapshot.
    pub files: Vec<File>,
    /// Rows in all files.
    pub rows: u64,
    /// Source records per product-topic partition.
    pub sources: BTreeMap<i32, SourceRange>,
    /// Writer schema ids of the records.
    pub schema_ids: Vec<u32>,
    /// The view's watermark when the window was first written (RFC 3339, UTC). A replay after a
    /// crash keeps the manifest it finds: the snapshot is the same, closed at another watermark.
    pub watermark: String,
    /// For an amendment (version 2 on): per partition, the last offset taken in when it was
    /// written. A restart that finds it does not amend the window again with the same late
    /// events, even when the progress written after it was lost.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub through: BTreeMap<i32, i64>,
    /// For a window's snapshot (not a piece): the piece each source partition contributed, as
    /// `<window label>/v<version>` (a `latest` view's partition without changes in the window
    /// contributes its newest piece before it). A new version is written when they change.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pieces: BTreeMap<i32, String>,
}

/// Where one view resumes one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionProgress {
    /// First offset the view still needs (the oldest record of a window still open).
    pub resume_from: i64,
    /// Highest event time before `resume_from` (epoch ms).
    pub max_event: Option<i64>,
    /// Last offset taken in: records up to it whose window was already written, or that were
    /// late, are done.
    pub done_through: i64,
}

/// Where one view resumes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ViewProgress {
    /// Windows ending at or before this instant (epoch ms) are closed.
    pub closed_through: Option<i64>,
    /// The manifest of the last window written (a `latest` view restarts from its rows).
    pub last_manifest: Option<String>,
    /// Per partition.
    pub partitions: BTreeMap<i32, PartitionProgress>,
    /// The partition's own watermark at this checkpoint (its highest event time less the
    /// allowed lateness, epoch ms): the commit step combines them into the product's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub watermark: Option<i64>,
    /// Whether the partition was idle at this checkpoint (caught up with its end and quiet for
    /// the view's idle timeout): it does not hold the product's watermark back.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub idle: bool,
}

/// The progress of one source partition of a product (or, read back by
/// [`crate::snapshot::worker::load_progress`], of all of them), written after the pieces it
/// accounts for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Progress {
    /// Sequence number (also in the file name).
    pub sequence: u64,
    /// Per view.
    pub views: BTreeMap<String, ViewProgress>,
    /// When the partition's loop last received records (Unix epoch ms): a window closed by
    /// records of a backfill is late from their arrival, not from its end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_at: Option<i64>,
}

impl Progress {
    /// The offset to start reading `partition` from: the lowest any view needs.
    pub fn start(&self, partition: i32) -> Option<i64> {
        self.views
            .values()
            .filter_map(|v| v.partitions.get(&partition).map(|p| p.resume_from))
            .min()
    }
}
