//! `latest` views: the state of each key as of each window's end (an entity snapshot). The
//! state carries over from window to window: a window's snapshot holds every key seen so far,
//! each with its newest event by event time (then partition, then offset).

use std::{collections::BTreeMap, collections::HashMap};

use arrow_array::{ArrayRef, RecordBatch};
use arrow_row::{RowConverter, SortField};
use arrow_schema::SchemaRef;
use arrow_select::interleave::interleave_record_batch;

use super::{window::Window, Error, Result};
use crate::product::View;

/// Which event is newer: event time, then partition, then offset.
type Order = (i64, i32, i64);

/// A row of one of the retained batches.
#[derive(Debug, Clone, Copy)]
struct At {
    order: Order,
    batch: usize,
    row: usize,
}

/// The newest row of each key changed in one window.
#[derive(Debug, Default)]
struct Changes {
    batches: Vec<RecordBatch>,
    retained: usize,
    keys: HashMap<Box<[u8]>, At>,
}

/// A written snapshot, sorted by key, and each key's row in it.
type Snapshot = (RecordBatch, HashMap<Box<[u8]>, usize>);

/// The state as of the last closed window, and the changes of the open ones.
#[derive(Debug)]
pub struct Latest {
    schema: SchemaRef,
    keys: Vec<usize>,
    converter: RowConverter,
    /// The last snapshot, sorted by key, and each key's row in it.
    base: Option<Snapshot>,
    changes: BTreeMap<Window, Changes>,
}

impl Latest {
    /// The state of `view` over rows of `schema`.
    pub fn new(view: &View, schema: SchemaRef) -> Result<Self> {
        let mut keys = Vec::new();
        for key in &view.key {
            keys.push(schema.index_of(key).map_err(|_| Error::View {
                view: view.name.clone(),
                message: format!("key `{key}` is not a column of the product's schema"),
            })?);
        }
        let converter = RowConverter::new(
            keys.iter()
                .map(|i| SortField::new(schema.field(*i).data_type().clone()))
                .collect(),
        )
        .map_err(Error::arrow)?;
        Ok(Self {
            schema,
            keys,
            converter,
            base: None,
            changes: BTreeMap::new(),
        })
    }

    /// Keys held: in the last snapshot, and changed in open windows.
    pub fn keys(&self) -> usize {
        self.base.as_ref().map_or(0, |(_, k)| k.len())
            + self.changes.values().map(|c| c.keys.len()).sum::<usize>()
    }

    fn key_rows(&self, batch: &RecordBatch) -> Result<arrow_row::Rows> {
        let columns: Vec<ArrayRef> = self.keys.iter().map(|i| batch.column(*i).clone()).collect();
        self.converter
            .convert_columns(&columns)
            .map_err(Error::arrow)
    }

    /// Restarts from a written snapshot (the rows of the last closed window).
    pub fn restore(&mut self, batches: &[RecordBatch]) -> Result<()> {
        let batch =
            arrow_select::concat::concat_batches(&self.schema, batches).map_err(Error::arrow)?;
        let rows = self.key_rows(&batch)?;
        let index = (0..batch.num_rows())
            .map(|i| (rows.row(i).as_ref().into(), i))
            .collect();
        self.base = Some((batch, index));
        Ok(())
    }

    /// Adds rows of `batch`, each with its window and order.
    pub fn add(&mut self, batch: &RecordBatch, rows: &[(u32, Window, Order)]) -> Result<()> {
        let keys = self.key_rows(batch)?;
        let mut slots: BTreeMap<Window, usize> = BTreeMap::new();
        for &(row, window, order) in rows {
            let changes = self.changes.entry(window).or_default();
            let slot = *slots.entry(window).or_insert_with(|| {
                changes.batches.push(batch.clone());
                changes.batches.len() - 1
            });
            let at = At {
                order,
                batch: slot,
                row: row as usize,
            };
            let key = keys.row(row as usize);
            match changes.keys.get_mut(key.as_ref()) {
                Some(old) if old.order < order => *old = at,
                Some(_) => {}
                None => {
                    changes.keys.insert(key.as_ref().into(), at);
                }
            }
        }
        for window in slots.keys() {
            if let Some(changes) = self.changes.get_mut(window) {
                changes.retained += batch.num_rows();
                if changes.retained > 2 * changes.keys.len() + 65_536 {
                    changes.compact(&self.schema)?;
                }
            }
        }
        Ok(())
    }

    /// The state as of the end of `window` (every key, sorted); `None` if nothing changed in it.
    pub fn close(&mut self, window: Window) -> Result<Option<RecordBatch>> {
        let Some(changes) = self.changes.remove(&window) else {
            return Ok(None);
        };
        let mut sources: Vec<&RecordBatch> = changes.batches.iter().collect();
        let mut picks: BTreeMap<&[u8], (usize, usize)> = changes
            .keys
            .iter()
            .map(|(k, at)| (k.as_ref(), (at.batch, at.row)))
            .collect();
        if let Some((base, index)) = &self.base {
            let slot = sources.len();
            sources.push(base);
            for (key, row) in index {
                picks.entry(key.as_ref()).or_insert((slot, *row));
            }
        }
        let indices: Vec<(usize, usize)> = picks.values().copied().collect();
        let batch = interleave_record_batch(&sources, &indices).map_err(Error::arrow)?;
        let index = picks
            .keys()
            .enumerate()
            .map(|(i, k)| (Box::<[u8]>::from(*k), i))
            .collect();
        self.base = Some((batch.clone(), index));
        Ok(Some(batch))
    }
}

impl Changes {
    /// Keeps only the rows still newest for their key, in one batch.
    fn compact(&mut self, schema: &SchemaRef) -> Result<()> {
        let sources: Vec<&RecordBatch> = self.batches.iter().collect();
        let mut keys: Vec<(&Box<[u8]>, &mut At)> = self.keys.iter_mut().collect();
        keys.sort_by_key(|(_, at)| (at.batch, at.row));
        let indices: Vec<(usize, usize)> = keys.iter().map(|(_, at)| (at.batch, at.row)).collect();
        let batch = if indices.is_empty() {
            RecordBatch::new_empty(schema.clone())
        } else {
            interleave_record_batch(&sources, &indices).map_err(Error::arrow)?
        };
        for (i, (_, at)) in keys.into_iter().enumerate() {
            at.batch = 0;
            at.row = i;
        }
        self.retained = batch.num_rows();
        self.batches = vec![batch];
        Ok(())
    }
}
