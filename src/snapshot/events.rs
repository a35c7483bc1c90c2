//! `events` views: every event of the window, one file per source partition and run of
//! `max_rows` rows, in offset order. Files are cut at row counts, never at wall-clock moments,
//! so a replay cuts them the same way.

use std::collections::BTreeMap;

use arrow_array::{RecordBatch, UInt32Array};
use arrow_schema::SchemaRef;
use arrow_select::{concat::concat_batches, take::take_record_batch};

use super::{parquet, window::Window, Error, Result};

/// A finished file: its name in the version directory, contents and row count.
#[derive(Debug, Clone)]
pub(super) struct Part {
    /// File name.
    pub name: String,
    /// Parquet bytes.
    pub bytes: Vec<u8>,
    /// Rows.
    pub rows: u64,
}

#[derive(Debug, Default)]
struct Buffer {
    batches: Vec<RecordBatch>,
    rows: usize,
}

/// Rows of the open windows, per window and partition.
#[derive(Debug)]
pub(super) struct Events {
    schema: SchemaRef,
    max_rows: usize,
    offset_column: usize,
    buffers: BTreeMap<(Window, i32), Buffer>,
}

impl Events {
    /// Buffers of at most `max_rows` rows of `schema`.
    pub(super) fn new(schema: SchemaRef, max_rows: usize) -> Result<Self> {
        let offset_column = schema.index_of(super::rows::OFFSET).map_err(Error::arrow)?;
        Ok(Self {
            schema,
            max_rows: max_rows.max(1),
            offset_column,
            buffers: BTreeMap::new(),
        })
    }

    /// Rows buffered in all windows.
    pub(super) fn buffered(&self) -> usize {
        self.buffers.values().map(|b| b.rows).sum()
    }

    /// Adds rows `rows` (all of `partition`, in offset order) of `batch` to `window`; returns
    /// the files that filled up.
    pub(super) fn add(
        &mut self,
        window: Window,
        partition: i32,
        batch: &RecordBatch,
        rows: &[u32],
    ) -> Result<Vec<Part>> {
        let taken =
            take_record_batch(batch, &UInt32Array::from(rows.to_vec())).map_err(Error::arrow)?;
        let buffer = self.buffers.entry((window, partition)).or_default();
        buffer.rows += taken.num_rows();
        buffer.batches.push(taken);
        let mut parts = Vec::new();
        while self
            .buffers
            .get(&(window, partition))
            .is_some_and(|b| b.rows >= self.max_rows)
        {
            parts.push(self.cut(window, partition, self.max_rows)?);
        }
        Ok(parts)
    }

    /// The remaining files of `window`.
    pub(super) fn close(&mut self, window: Window) -> Result<Vec<Part>> {
        let partitions: Vec<i32> = self
            .buffers
            .range((window, i32::MIN)..=(window, i32::MAX))
            .map(|((_, p), _)| *p)
            .collect();
        let mut parts = Vec::new();
        for partition in partitions {
            while let Some(rows) = self.buffers.get(&(window, partition)).map(|b| b.rows) {
                if rows == 0 {
                    self.buffers.remove(&(window, partition));
                    break;
                }
                parts.push(self.cut(window, partition, rows.min(self.max_rows))?);
            }
        }
        Ok(parts)
    }

    /// Writes the first `rows` rows of a buffer as one file.
    fn cut(&mut self, window: Window, partition: i32, rows: usize) -> Result<Part> {
        let Some(buffer) = self.buffers.get_mut(&(window, partition)) else {
            return Err(Error::Unexpected(
                "cutting a buffer that does not exist".into(),
            ));
        };
        let all = concat_batches(&self.schema, &buffer.batches).map_err(Error::arrow)?;
        let head = all.slice(0, rows);
        let rest = all.slice(rows, all.num_rows() - rows);
        let offsets = head
            .column(self.offset_column)
            .as_any()
            .downcast_ref::<arrow_array::Int64Array>()
            .ok_or_else(|| Error::Unexpected("offset column is not Int64".into()))?;
        let (first, last) = (offsets.value(0), offsets.value(rows - 1));
        let bytes = parquet::encode(self.schema.clone(), &[head])?;
        buffer.rows = rest.num_rows();
        buffer.batches = if rest.num_rows() > 0 {
            vec![rest]
        } else {
            Vec::new()
        };
        Ok(Part {
            name: part_name(partition, first, last),
            bytes,
            rows: rows as u64,
        })
    }
}

/// `part-<partition, 5 digits>-<first offset, 20 digits>-<last offset, 20 digits>.parquet`.
pub(super) fn part_name(partition: i32, first: i64, last: i64) -> String {
    format!("part-{partition:05}-{first:020}-{last:020}.parquet")
}
