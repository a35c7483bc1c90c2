//! The table a view's snapshots are published as besides their files and manifests (the
//! view's `format`): a Delta Lake or an Apache Iceberg table over the same files, committed
//! once per window version.

use arrow_schema::SchemaRef;
use sha2::{Digest, Sha256};

use super::{delta, iceberg, manifest::Manifest, parquet, store::Store, Error, Result};
use crate::product::{TableFormat, View};

/// A view's table.
#[derive(Debug)]
pub(crate) enum Table {
    /// `format: delta`.
    Delta(delta::Table),
    /// `format: iceberg`.
    Iceberg(iceberg::Table),
}

impl Table {
    /// The table of `view` of `product` as the store holds it, if the view has one; an Iceberg
    /// table is registered in `catalog`.
    pub(crate) async fn open(
        store: &Store,
        product: &str,
        view: &View,
        catalog: Option<&iceberg::SqlCatalog>,
    ) -> Result<Option<Self>> {
        Ok(match view.format {
            TableFormat::Delta => Some(Self::Delta(
                delta::Table::open(store, product, &view.name).await?,
            )),
            TableFormat::Iceberg => Some(Self::Iceberg(
                iceberg::Table::open(store, product, &view.name, catalog.cloned()).await?,
            )),
            TableFormat::Parquet => None,
        })
    }

    /// Commits a window version just written, unless the table has it already.
    pub(crate) async fn commit(&mut self, store: &Store, manifest: &Manifest) -> Result<()> {
        match self {
            Self::Delta(t) => t.commit(store, manifest).await,
            Self::Iceberg(t) => t.commit(store, manifest).await,
        }
    }

    /// Commits the removal of `window` (its retention ended) at `at` (epoch ms).
    pub(crate) async fn expire(&mut self, store: &Store, window: &str, at: i64) -> Result<()> {
        match self {
            Self::Delta(t) => t.expire(store, window, at).await,
            Self::Iceberg(t) => t.expire(store, window, at).await,
        }
    }
}

/// The columns of the first file of `manifest` (none for a window without files): every file a
/// run writes has the columns of the one reader schema it decodes with.
pub(super) async fn columns_of(store: &Store, manifest: &Manifest) -> Result<Option<SchemaRef>> {
    match manifest.files.first() {
        Some(first) => Ok(Some(parquet::schema(store.get(&first.path).await?)?)),
        None => Ok(None),
    }
}

/// When a table commits `manifest`: its window's end (epoch ms) plus its version, the same in
/// every run, and later for each amendment of a window.
pub(super) fn commit_time(manifest: &Manifest) -> Result<i64> {
    Ok(chrono::DateTime::parse_from_rfc3339(&manifest.window_end)
        .map_err(Error::json)?
        .timestamp_millis()
        + i64::from(manifest.version))
}

/// A UUID made of a hash of `text`: the same in every run.
pub(super) fn stable_uuid(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(id).into_uuid().to_string()
}
