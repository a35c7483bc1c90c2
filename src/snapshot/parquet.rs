//! Snapshot files: Arrow batches to Parquet bytes (zstd) and back.

use bytes::Bytes;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::{
    arrow::{arrow_reader::ParquetRecordBatchReaderBuilder, ArrowWriter},
    basic::{Compression, ZstdLevel},
    file::properties::{EnabledStatistics, WriterProperties},
    schema::types::ColumnPath,
};

use super::{rows, Error, Result};

/// One Parquet file of `batches` (all of `schema`), zstd-compressed.
pub fn encode(schema: SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let mut writer = Writer::new(schema)?;
    for batch in batches {
        writer.write(batch)?;
    }
    writer.finish()
}

/// A Parquet file written a batch at a time, zstd-compressed.
pub struct Writer {
    inner: ArrowWriter<Vec<u8>>,
    rows: u64,
}

impl Writer {
    /// A file of `schema`'s rows.
    pub fn new(schema: SchemaRef) -> Result<Self> {
        let mut properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(
                ZstdLevel::try_new(1).map_err(Error::parquet)?,
            ))
            // min/max per column chunk is what readers prune row groups by; files are small
            .set_statistics_enabled(EnabledStatistics::Chunk);
        // unique per event: a dictionary would only cost time
        for unique in [rows::EVENT_ID, rows::EVENT_TIME, rows::OFFSET] {
            properties = properties.set_column_dictionary_enabled(ColumnPath::from(unique), false);
        }
        let inner = ArrowWriter::try_new(Vec::new(), schema, Some(properties.build()))
            .map_err(Error::parquet)?;
        Ok(Self { inner, rows: 0 })
    }

    /// Appends rows.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.rows += batch.num_rows() as u64;
        self.inner.write(batch).map_err(Error::parquet)
    }

    /// Rows written.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The file's bytes.
    pub fn finish(self) -> Result<Vec<u8>> {
        self.inner.into_inner().map_err(Error::parquet)
    }
}

/// The columns of a Parquet file (its footer only is decoded).
pub fn schema(bytes: impl Into<Bytes>) -> Result<SchemaRef> {
    ParquetRecordBatchReaderBuilder::try_new(bytes.into())
        .map(|b| b.schema().clone())
        .map_err(Error::parquet)
}

/// The batches of a Parquet file.
pub fn decode(bytes: impl Into<Bytes>) -> Result<Vec<RecordBatch>> {
    ParquetRecordBatchReaderBuilder::try_new(bytes.into())
        .and_then(|b| b.build())
        .map_err(Error::parquet)?
        .collect::<Result<Vec<_>, _>>()
        .map_err(Error::arrow)
}
