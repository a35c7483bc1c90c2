//! What snapshots a store holds: for the catalog and `meshline snapshots list`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{manifest, Result, Store};

pub(crate) use super::iceberg::current as iceberg_metadata;

/// The newest version of one window's snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listed {
    /// The window's label.
    pub window: String,
    /// Newest version.
    pub version: u32,
    /// URI of its manifest (which lists the Parquet files).
    pub manifest: String,
}

/// Every manifest of a view: windows in order, each window's versions in order.
pub async fn manifests(store: &Store, product_id: &str, view: &str) -> Result<Vec<String>> {
    let dir = format!("{}/{view}", manifest::product_root(product_id));
    let mut found: Vec<(String, u32, String)> = store
        .list(&dir)
        .await?
        .into_iter()
        .filter_map(|path| {
            let (window, version) = window_version(&path)?;
            Some((window, version, path))
        })
        .collect();
    found.sort();
    Ok(found.into_iter().map(|(_, _, path)| path).collect())
}

/// A view's pieces: per window label (in order), per source partition, each version's
/// manifest path.
pub(crate) type Pieces = BTreeMap<String, BTreeMap<i32, BTreeMap<u32, String>>>;

/// Every piece manifest of a view.
pub(crate) async fn pieces(store: &Store, product_id: &str, view: &str) -> Result<Pieces> {
    let dir = format!("{}/{view}", manifest::product_root(product_id));
    let mut pieces = Pieces::new();
    for path in store.list(&dir).await? {
        if let Some((window, partition, version)) = piece_of(&path) {
            pieces
                .entry(window)
                .or_default()
                .entry(partition)
                .or_default()
                .insert(version, path);
        }
    }
    Ok(pieces)
}

/// `(label, partition, version)` of a piece manifest path
/// `…/window=<label>/partition-<p>/v<version>/manifest.json`.
pub(crate) fn piece_of(path: &str) -> Option<(String, i32, u32)> {
    let mut parts = path.rsplit('/');
    if parts.next()? != "manifest.json" {
        return None;
    }
    let version = parts.next()?.strip_prefix('v')?.parse().ok()?;
    let partition = parts.next()?.strip_prefix("partition-")?.parse().ok()?;
    let window = parts.next()?.strip_prefix("window=")?.to_owned();
    Some((window, partition, version))
}

/// `(label, version)` of a manifest path `…/window=<label>/v<version>/manifest.json`.
pub(crate) fn window_version(path: &str) -> Option<(String, u32)> {
    let mut parts = path.rsplit('/');
    if parts.next()? != "manifest.json" {
        return None;
    }
    let version = parts.next()?.strip_prefix('v')?.parse().ok()?;
    let window = parts.next()?.strip_prefix("window=")?.to_owned();
    Some((window, version))
}

/// The newest version of each window of a view, oldest window first.
pub async fn list(store: &Store, product_id: &str, view: &str) -> Result<Vec<Listed>> {
    let mut listed: Vec<Listed> = Vec::new();
    for path in manifests(store, product_id, view).await? {
        let Some((window, version)) = window_version(&path) else {
            continue;
        };
        let entry = Listed {
            window,
            version,
            manifest: store.uri(&path),
        };
        match listed.last_mut() {
            Some(last) if last.window == entry.window => *last = entry,
            _ => listed.push(entry),
        }
    }
    Ok(listed)
}

/// The manifest of a window (its newest version, or `version`), as stored; `None` if there is
/// none.
pub async fn manifest(
    store: &Store,
    product_id: &str,
    view: &str,
    window: &str,
    version: Option<u32>,
) -> Result<Option<Vec<u8>>> {
    let version = match version {
        Some(v) => v,
        None => match list(store, product_id, view)
            .await?
            .into_iter()
            .find(|l| l.window == window)
        {
            Some(listed) => listed.version,
            None => return Ok(None),
        },
    };
    store
        .get_opt(&manifest::manifest_path(product_id, view, window, version))
        .await
}
