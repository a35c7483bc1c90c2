//! Spilling: the state of `latest` and `aggregate` views that outgrows its budget goes to local
//! disk as runs of Arrow IPC (the stream format: dictionaries may change between batches) sorted
//! by key, read back a chunk at a time, so a view's memory stays
//! bounded however many keys it sees. Runs are unnamed files (unlinked as soon as created), gone
//! when dropped or when the process dies, even by `SIGKILL`: they cache what the product topic
//! and the snapshots already hold, never a source of truth, and nothing is left to clean up.

use std::{
    fs::File,
    io::{BufReader, BufWriter, Read},
    os::unix::fs::FileExt,
    path::PathBuf,
    sync::Arc,
};

use arrow_array::RecordBatch;
use arrow_ipc::{reader::StreamReader, writer::StreamWriter};
use arrow_schema::SchemaRef;

use super::{Error, Result};

/// Rows per chunk of a merge's output and of a run.
pub const CHUNK: usize = 8192;

/// Where state spills, and when.
#[derive(Debug, Clone)]
pub struct Spill {
    dir: PathBuf,
    max_rows: usize,
}

impl Spill {
    /// Spill under `dir` once a view holds more than `max_rows` keys or groups.
    pub fn new(dir: impl Into<PathBuf>, max_rows: usize) -> Self {
        Self {
            dir: dir.into(),
            max_rows: max_rows.max(1),
        }
    }

    /// Keys or groups a view holds in memory before it spills.
    pub fn max_rows(&self) -> usize {
        self.max_rows
    }

    /// A new run of `schema`'s rows.
    pub fn writer(&self, schema: &SchemaRef) -> Result<RunWriter> {
        let io = |e: std::io::Error| {
            Error::Store {
            what: format!(
                "spilling view state under {}; give the snapshotter a writable --spill-dir with free space",
                self.dir.display()
            ),
            source: Box::new(e),
        }
        };
        std::fs::create_dir_all(&self.dir).map_err(io)?;
        let file = tempfile::tempfile_in(&self.dir).map_err(io)?;
        let out = file.try_clone().map_err(io)?;
        let writer = StreamWriter::try_new(BufWriter::new(out), schema).map_err(Error::arrow)?;
        Ok(RunWriter {
            file: Arc::new(file),
            writer,
            rows: 0,
        })
    }
}

impl Default for Spill {
    /// Under the system's temporary directory, past 1,000,000 keys or groups per view.
    fn default() -> Self {
        Self::new(std::env::temp_dir().join("meshline-spill"), 1_000_000)
    }
}

/// A run being written.
pub struct RunWriter {
    file: Arc<File>,
    writer: StreamWriter<BufWriter<File>>,
    rows: usize,
}

impl RunWriter {
    /// Appends rows (sorted after those before).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        self.rows += batch.num_rows();
        self.writer.write(batch).map_err(Error::arrow)
    }

    /// The run, readable.
    pub fn finish(self) -> Result<Run> {
        let buffered = self.writer.into_inner().map_err(Error::arrow)?;
        buffered.into_inner().map_err(|e| Error::Store {
            what: "spilling view state".into(),
            source: Box::new(e.into_error()),
        })?;
        Ok(Run {
            file: self.file,
            rows: self.rows,
        })
    }
}

/// Rows on disk, in the order written.
#[derive(Debug)]
pub struct Run {
    file: Arc<File>,
    rows: usize,
}

impl Run {
    /// Rows in the run.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Its batches, one at a time.
    pub fn read(&self) -> Result<impl Iterator<Item = Result<RecordBatch>>> {
        let from = Positioned {
            file: self.file.clone(),
            at: 0,
        };
        let reader = StreamReader::try_new(BufReader::new(from), None).map_err(Error::arrow)?;
        Ok(reader.map(|b| b.map_err(Error::arrow)))
    }
}

/// Reads a file from the start with positional reads: any number read a run at once.
struct Positioned {
    file: Arc<File>,
    at: u64,
}

impl Read for Positioned {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// Rows sorted by key, in memory or spilled.
#[derive(Debug, Clone)]
pub enum Sorted {
    /// In memory, in chunks.
    Memory(Vec<RecordBatch>),
    /// On disk.
    Disk(Arc<Run>),
}

impl Sorted {
    /// Rows held.
    pub fn rows(&self) -> usize {
        match self {
            Sorted::Memory(batches) => batches.iter().map(RecordBatch::num_rows).sum(),
            Sorted::Disk(run) => run.rows(),
        }
    }

    /// Rows held in memory.
    pub fn in_memory(&self) -> usize {
        match self {
            Sorted::Memory(_) => self.rows(),
            Sorted::Disk(_) => 0,
        }
    }

    /// The rows, a chunk at a time.
    pub fn chunks(&self) -> Result<Box<dyn Iterator<Item = Result<RecordBatch>> + '_>> {
        Ok(match self {
            Sorted::Memory(batches) => Box::new(batches.iter().cloned().map(Ok)),
            Sorted::Disk(run) => Box::new(run.read()?),
        })
    }
}

/// Collects sorted rows: in memory up to the budget, then in a run.
pub struct Collect<'a> {
    spill: &'a Spill,
    schema: SchemaRef,
    memory: Vec<RecordBatch>,
    rows: usize,
    run: Option<RunWriter>,
}

impl<'a> Collect<'a> {
    /// Rows of `schema`, spilled past `spill`'s budget.
    pub fn new(spill: &'a Spill, schema: SchemaRef) -> Self {
        Self {
            spill,
            schema,
            memory: Vec::new(),
            rows: 0,
            run: None,
        }
    }

    /// Appends rows sorted after those before.
    pub fn push(&mut self, batch: RecordBatch) -> Result<()> {
        self.rows += batch.num_rows();
        if let Some(run) = &mut self.run {
            return run.write(&batch);
        }
        self.memory.push(batch);
        if self.rows > self.spill.max_rows() {
            let mut run = self.spill.writer(&self.schema)?;
            for batch in self.memory.drain(..) {
                run.write(&batch)?;
            }
            self.run = Some(run);
        }
        Ok(())
    }

    /// The rows.
    pub fn finish(self) -> Result<Sorted> {
        Ok(match self.run {
            Some(run) => Sorted::Disk(Arc::new(run.finish()?)),
            None => Sorted::Memory(self.memory),
        })
    }
}

/// Splits `batches` into chunks of at most [`CHUNK`] rows.
pub fn rechunk(batches: &[RecordBatch]) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    for batch in batches {
        let mut at = 0;
        while at < batch.num_rows() {
            let len = CHUNK.min(batch.num_rows() - at);
            out.push(batch.slice(at, len));
            at += len;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{Array, Int64Array};
    use arrow_schema::{DataType, Field, Schema};

    fn batch(schema: &SchemaRef, values: std::ops::Range<i64>) -> RecordBatch {
        RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from_iter_values(values))],
        )
        .unwrap()
    }

    fn values(sorted: &Sorted) -> Vec<i64> {
        let mut out = Vec::new();
        for chunk in sorted.chunks().unwrap() {
            let chunk = chunk.unwrap();
            let c = chunk
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap();
            out.extend((0..c.len()).map(|i| c.value(i)));
        }
        out
    }

    #[test]
    fn rows_past_the_budget_go_to_disk_and_read_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let schema: SchemaRef =
            Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let spill = Spill::new(dir.path(), 10);

        let mut small = Collect::new(&spill, schema.clone());
        small.push(batch(&schema, 0..10)).unwrap();
        let small = small.finish().unwrap();
        assert!(matches!(small, Sorted::Memory(_)));
        assert_eq!(small.in_memory(), 10);

        let mut big = Collect::new(&spill, schema.clone());
        big.push(batch(&schema, 0..6)).unwrap();
        big.push(batch(&schema, 6..12)).unwrap();
        big.push(batch(&schema, 12..20)).unwrap();
        let big = big.finish().unwrap();
        assert!(matches!(big, Sorted::Disk(_)));
        assert_eq!((big.rows(), big.in_memory()), (20, 0));
        assert_eq!(values(&big), (0..20).collect::<Vec<_>>());
        assert_eq!(
            values(&big.clone()),
            values(&big),
            "read again, and by a clone"
        );
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "runs have no name: a killed process leaves nothing behind"
        );
    }
}
