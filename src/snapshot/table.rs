//! The table a view's snapshots are published as besides their files and manifests (the
//! view's `format`): a Delta Lake or an Apache Iceberg table over the same files, committed
//! once per window version.

use super::{delta, iceberg, manifest::Manifest, store::Store, Result};
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
    /// The table of `view` of `product` as the store holds it, if the view has one.
    pub(crate) async fn open(store: &Store, product: &str, view: &View) -> Result<Option<Self>> {
        Ok(match view.format {
            TableFormat::Delta => Some(Self::Delta(
                delta::Table::open(store, product, &view.name).await?,
            )),
            TableFormat::Iceberg => Some(Self::Iceberg(
                iceberg::Table::open(store, product, &view.name).await?,
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
