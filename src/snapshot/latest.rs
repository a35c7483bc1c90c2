//! `latest` views: the state of each key as of each window's end (an entity snapshot). The
//! state carries over from window to window: a window's snapshot holds every key seen so far,
//! each with its newest event by event time (then partition, then offset).
//!
//! Every snapshot is kept sorted by key, so a window closes by one merge of the last snapshot
//! with the window's changes, a chunk at a time. Past the view's budget of keys the last
//! snapshot (and, with `late: amend`, each version 1 still amended) lives in a spilled run on
//! local disk rather than in memory; the output is the same either way.

use std::collections::{BTreeMap, HashMap};

use arrow_array::{ArrayRef, RecordBatch};
use arrow_row::{RowConverter, SortField};
use arrow_schema::SchemaRef;
use arrow_select::interleave::interleave_record_batch;

use super::{
    kind::Order,
    spill::{Collect, Sorted, Spill, CHUNK},
    window::Window,
    Error, Result,
};
use crate::product::View;

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

/// A row that may replace its key's: the key, its order, a batch of the merge's sources and a
/// row of it.
type Candidate<'a> = (&'a [u8], Order, usize, usize);

/// Keys and orders of the view's rows.
#[derive(Debug)]
struct Keyed {
    schema: SchemaRef,
    keys: Vec<usize>,
    converter: RowConverter,
    /// Event time, partition and offset columns.
    order_columns: [usize; 3],
}

/// The state as of the last closed window, and the changes of the open ones.
#[derive(Debug)]
pub(super) struct Latest {
    keyed: Keyed,
    spill: Spill,
    /// The last snapshot, sorted by key.
    base: Option<Sorted>,
    changes: BTreeMap<Window, Changes>,
    /// With `late: amend`: what amendments are computed from.
    amending: Option<Amending>,
}

/// Version 1 of each closed window that may still be amended, and the late changes: a window's
/// newest version holds, per key, the newest of its version-1 row and the late changes of it
/// and the windows before it.
#[derive(Debug, Default)]
struct Amending {
    first_versions: BTreeMap<Window, Sorted>,
    late: BTreeMap<Window, Changes>,
    /// Late changes of windows no longer amended (they still count for the windows after).
    older: Vec<Changes>,
}

impl Latest {
    /// The state of `view` over rows of `schema`, spilling past `spill`'s budget.
    pub(super) fn new(view: &View, schema: SchemaRef, spill: Spill) -> Result<Self> {
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
        let column = |name: &str| schema.index_of(name).map_err(Error::arrow);
        let order_columns = [
            column(super::rows::EVENT_TIME)?,
            column(super::rows::PARTITION)?,
            column(super::rows::OFFSET)?,
        ];
        Ok(Self {
            keyed: Keyed {
                schema,
                keys,
                converter,
                order_columns,
            },
            spill,
            base: None,
            changes: BTreeMap::new(),
            amending: None,
        })
    }

    /// Keys held in memory: in the last snapshot unless spilled, and changed in open windows.
    pub(super) fn keys(&self) -> usize {
        self.base.as_ref().map_or(0, Sorted::in_memory)
            + self.changes.values().map(|c| c.keys.len()).sum::<usize>()
    }

    /// Keys of the last snapshot held on disk.
    pub(super) fn spilled(&self) -> usize {
        self.base.as_ref().map_or(0, |b| b.rows() - b.in_memory())
    }

    /// Sorted rows of a written snapshot, spilled past the budget.
    fn sorted(&self, batches: &[RecordBatch]) -> Result<Sorted> {
        let mut collect = Collect::new(&self.spill, self.keyed.schema.clone());
        for batch in batches {
            collect.push(batch.clone())?;
        }
        collect.finish()
    }

    /// Restarts from a written snapshot (the rows of the last closed window).
    pub(super) fn restore(&mut self, batches: &[RecordBatch]) -> Result<()> {
        self.base = Some(self.sorted(batches)?);
        Ok(())
    }

    /// Adds rows of `batch`, each with its window and order.
    pub(super) fn add(&mut self, batch: &RecordBatch, rows: &[(u32, Window, Order)]) -> Result<()> {
        let keys = self.keyed.key_rows(batch)?;
        add_to(&mut self.changes, &self.keyed.schema, batch, &keys, rows)
    }

    /// Writes the state as of the end of `window` (every key, sorted) to `out`, a chunk at a
    /// time; `false` if nothing changed in it (nothing written).
    pub(super) fn close(
        &mut self,
        window: Window,
        out: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<bool> {
        let Some(changes) = self.changes.remove(&window) else {
            return Ok(false);
        };
        let (sources, candidates) = candidates([&changes]);
        let mut next = Collect::new(&self.spill, self.keyed.schema.clone());
        self.keyed.merge(
            self.base.as_ref(),
            &sources,
            &candidates,
            false,
            &mut |chunk| {
                next.push(chunk.clone())?;
                out(chunk)
            },
        )?;
        let next = next.finish()?;
        if let Some(amending) = &mut self.amending {
            amending.first_versions.insert(window, next.clone());
        }
        self.base = Some(next);
        Ok(true)
    }
}

impl Latest {
    /// Merges the pieces of one window from several source partitions (each every key its
    /// partition has seen, with its newest row) into the window's snapshot, to `out` a chunk at
    /// a time: every key, with its newest row by event time, then partition, then offset,
    /// sorted by key. The keys are held in memory (their rows stay in the pieces' batches).
    pub(super) fn merge_pieces(
        &self,
        pieces: &[RecordBatch],
        out: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<()> {
        let mut newest: HashMap<Box<[u8]>, At> = HashMap::new();
        for (b, batch) in pieces.iter().enumerate() {
            let keys = self.keyed.key_rows(batch)?;
            let orders = self.keyed.orders(batch)?;
            for (row, order) in orders.into_iter().enumerate() {
                let at = At {
                    order,
                    batch: b,
                    row,
                };
                let key = keys.row(row);
                match newest.get_mut(key.as_ref()) {
                    Some(held) if held.order >= order => {}
                    Some(held) => *held = at,
                    None => {
                        newest.insert(key.as_ref().into(), at);
                    }
                }
            }
        }
        let mut sorted: Vec<(Box<[u8]>, At)> = newest.into_iter().collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let sources: Vec<&RecordBatch> = pieces.iter().collect();
        for chunk in sorted.chunks(CHUNK) {
            let indices: Vec<(usize, usize)> =
                chunk.iter().map(|(_, at)| (at.batch, at.row)).collect();
            out(interleave_record_batch(&sources, &indices).map_err(Error::arrow)?)?;
        }
        Ok(())
    }
}

impl Latest {
    /// Keeps what late events need to amend closed windows (`late: amend`).
    pub(super) fn amend_late(&mut self) {
        self.amending.get_or_insert_with(Amending::default);
    }

    /// Whether a late change is newer than its key's row in version 1 of `window` (just
    /// closed): the window then needs a newer version. Late changes of forgotten windows that
    /// this version 1 supersedes are dropped: no later window needs them.
    pub(super) fn needs_amending(&mut self, window: Window) -> Result<bool> {
        let Some(amending) = &mut self.amending else {
            return Ok(false);
        };
        if amending.late.is_empty() && amending.older.is_empty() {
            return Ok(false);
        }
        let Some(first) = amending.first_versions.get(&window) else {
            return Ok(false);
        };
        let mut keys: Vec<&[u8]> = amending
            .older
            .iter()
            .chain(amending.late.range(..=window).map(|(_, c)| c))
            .flat_map(|c| c.keys.keys().map(AsRef::as_ref))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let found = self.keyed.orders_of(first, &keys)?;
        let in_first: HashMap<Box<[u8]>, Option<Order>> =
            keys.into_iter().map(Box::from).zip(found).collect();
        let newer = |key: &[u8], at: &At| {
            in_first
                .get(key)
                .copied()
                .flatten()
                .is_none_or(|order| order < at.order)
        };
        for changes in &mut amending.older {
            changes.keys.retain(|key, at| newer(key, at));
        }
        amending.older.retain(|c| !c.keys.is_empty());
        let needs = !amending.older.is_empty()
            || amending
                .late
                .range(..=window)
                .any(|(_, c)| c.keys.iter().any(|(key, at)| newer(key, at)));
        Ok(needs)
    }

    /// Restores version 1 of a closed window that may still be amended (after a restart).
    pub(super) fn restore_first_version(
        &mut self,
        window: Window,
        batches: &[RecordBatch],
    ) -> Result<()> {
        let sorted = self.sorted(batches)?;
        if let Some(amending) = &mut self.amending {
            amending.first_versions.insert(window, sorted);
        }
        Ok(())
    }

    /// Restores, after a restart, the late changes the newest version of the last closed window
    /// holds beyond its version 1 (the base): they count for the windows to come.
    pub(super) fn restore_late(&mut self, newest: &[RecordBatch]) -> Result<()> {
        let batch = arrow_select::concat::concat_batches(&self.keyed.schema, newest)
            .map_err(Error::arrow)?;
        let newest_orders = self.keyed.orders(&batch)?;
        let rows = self.keyed.key_rows(&batch)?;
        let mut keys: Vec<(&[u8], usize)> = (0..batch.num_rows())
            .map(|row| (rows.row(row).data(), row))
            .collect();
        keys.sort_unstable();
        let sorted: Vec<&[u8]> = keys.iter().map(|(k, _)| *k).collect();
        let in_base = match &self.base {
            Some(base) => self.keyed.orders_of(base, &sorted)?,
            None => vec![None; sorted.len()],
        };
        let mut changes = Changes::default();
        for ((key, row), base) in keys.iter().zip(in_base) {
            let order = newest_orders[*row];
            if base.is_none_or(|b| b < order) {
                changes.keys.insert(
                    (*key).into(),
                    At {
                        order,
                        batch: 0,
                        row: *row,
                    },
                );
            }
        }
        if let (Some(amending), false) = (&mut self.amending, changes.keys.is_empty()) {
            changes.retained = batch.num_rows();
            changes.batches.push(batch);
            amending.older.push(changes);
        }
        Ok(())
    }

    /// Adds late rows of `batch` to closed windows that may still be amended.
    pub(super) fn add_late(
        &mut self,
        batch: &RecordBatch,
        rows: &[(u32, Window, Order)],
    ) -> Result<()> {
        let keys = self.keyed.key_rows(batch)?;
        let Some(amending) = &mut self.amending else {
            return Err(Error::Unexpected(
                "late rows for a view that does not amend".into(),
            ));
        };
        add_to(&mut amending.late, &self.keyed.schema, batch, &keys, rows)
    }

    /// `window` is no longer amended.
    pub(super) fn forget(&mut self, window: Window) {
        if let Some(amending) = &mut self.amending {
            amending.first_versions.remove(&window);
            if let Some(late) = amending.late.remove(&window) {
                amending.older.push(late);
            }
        }
    }

    /// Writes the newest state of every kept window from the oldest of `dirty` on to `out`, a
    /// chunk at a time, window after window.
    pub(super) fn amend(
        &self,
        dirty: &std::collections::BTreeSet<Window>,
        out: &mut dyn FnMut(Window, RecordBatch) -> Result<()>,
    ) -> Result<()> {
        let (Some(amending), Some(first)) = (&self.amending, dirty.first()) else {
            return Ok(());
        };
        for (window, version_1) in amending.first_versions.range(*first..) {
            let late = amending
                .older
                .iter()
                .chain(amending.late.range(..=*window).map(|(_, c)| c));
            let (sources, candidates) = candidates(late);
            self.keyed
                .merge(Some(version_1), &sources, &candidates, true, &mut |chunk| {
                    out(*window, chunk)
                })?;
        }
        Ok(())
    }
}

/// The newest change of each key over `changes`, sorted by key, and the batches they are in.
fn candidates<'a>(
    changes: impl IntoIterator<Item = &'a Changes>,
) -> (Vec<&'a RecordBatch>, Vec<Candidate<'a>>) {
    let mut sources = Vec::new();
    let mut candidates = Vec::new();
    for changes in changes {
        let first = sources.len();
        sources.extend(changes.batches.iter());
        candidates.extend(
            changes
                .keys
                .iter()
                .map(|(key, at)| (key.as_ref(), at.order, first + at.batch, at.row)),
        );
    }
    // by key, the newest first; then one per key
    candidates.sort_unstable_by(|a, b| a.0.cmp(b.0).then(b.1.cmp(&a.1)));
    candidates.dedup_by(|later, kept| later.0 == kept.0);
    (sources, candidates)
}

impl Keyed {
    fn key_rows(&self, batch: &RecordBatch) -> Result<arrow_row::Rows> {
        let columns: Vec<ArrayRef> = self.keys.iter().map(|i| batch.column(*i).clone()).collect();
        self.converter
            .convert_columns(&columns)
            .map_err(Error::arrow)
    }

    /// The order of each row of a snapshot: event time, partition, offset.
    fn orders(&self, batch: &RecordBatch) -> Result<Vec<Order>> {
        let [time, partition, offset] = self.order_columns;
        let column = |i: usize, to: &arrow_schema::DataType| {
            arrow_cast::cast(batch.column(i), to).map_err(Error::arrow)
        };
        let times = column(time, &arrow_schema::DataType::Int64)?;
        let partitions = column(partition, &arrow_schema::DataType::Int32)?;
        let offsets = column(offset, &arrow_schema::DataType::Int64)?;
        let (Some(times), Some(partitions), Some(offsets)) = (
            times.as_any().downcast_ref::<arrow_array::Int64Array>(),
            partitions
                .as_any()
                .downcast_ref::<arrow_array::Int32Array>(),
            offsets.as_any().downcast_ref::<arrow_array::Int64Array>(),
        ) else {
            return Err(Error::Unexpected(
                "snapshot order columns of another type".into(),
            ));
        };
        Ok((0..batch.num_rows())
            .map(|i| (times.value(i), partitions.value(i), offsets.value(i)))
            .collect())
    }

    /// The order of each of `keys` (sorted, unique) in `sorted`; `None` where it has no row.
    fn orders_of(&self, sorted: &Sorted, keys: &[&[u8]]) -> Result<Vec<Option<Order>>> {
        let mut found = vec![None; keys.len()];
        let mut next = 0;
        for chunk in sorted.chunks()? {
            if next == keys.len() {
                break;
            }
            let chunk = chunk?;
            let rows = self.key_rows(&chunk)?;
            let orders = self.orders(&chunk)?;
            for (row, order) in orders.into_iter().enumerate() {
                let key = rows.row(row);
                while next < keys.len() && keys[next] < key.data() {
                    next += 1;
                }
                if next < keys.len() && keys[next] == key.data() {
                    found[next] = Some(order);
                    next += 1;
                }
            }
        }
        Ok(found)
    }

    /// Merges `base` (sorted by key) with `candidates` (sorted by key, one per key; rows of
    /// `sources`) into `out`, in key order, in chunks of [`CHUNK`] rows. A candidate replaces
    /// its key's base row always, or with `newer_only` when its order is newer.
    fn merge(
        &self,
        base: Option<&Sorted>,
        sources: &[&RecordBatch],
        candidates: &[Candidate<'_>],
        newer_only: bool,
        out: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<()> {
        let mut emit = Emitter {
            sources,
            chunks: Vec::new(),
            pending: Vec::with_capacity(CHUNK),
            out,
        };
        let mut next = 0;
        if let Some(base) = base {
            for chunk in base.chunks()? {
                let chunk = chunk?;
                let rows = self.key_rows(&chunk)?;
                let orders = if newer_only {
                    Some(self.orders(&chunk)?)
                } else {
                    None
                };
                emit.base(chunk);
                for row in 0..rows.num_rows() {
                    let key = rows.row(row);
                    while let Some(c) = candidates.get(next).filter(|c| c.0 < key.data()) {
                        emit.push(c.2, c.3)?;
                        next += 1;
                    }
                    match candidates.get(next).filter(|c| c.0 == key.data()) {
                        Some(c) => {
                            next += 1;
                            if orders.as_ref().is_none_or(|o| o[row] < c.1) {
                                emit.push(c.2, c.3)?;
                            } else {
                                emit.push_base(row)?;
                            }
                        }
                        None => emit.push_base(row)?,
                    }
                }
            }
        }
        for c in &candidates[next..] {
            emit.push(c.2, c.3)?;
        }
        emit.flush()
    }
}

/// Output rows in chunks of exactly [`CHUNK`] (the last one shorter), whatever the chunks of
/// the inputs: the Parquet files are the same bytes spilled or not.
struct Emitter<'s, 'o> {
    sources: &'s [&'s RecordBatch],
    /// Chunks of the base the pending rows are in; the last is the current one.
    chunks: Vec<RecordBatch>,
    pending: Vec<(usize, usize)>,
    out: &'o mut dyn FnMut(RecordBatch) -> Result<()>,
}

impl Emitter<'_, '_> {
    /// Takes the next chunk of the base.
    fn base(&mut self, chunk: RecordBatch) {
        self.chunks.push(chunk);
    }

    /// A row of the current chunk of the base.
    fn push_base(&mut self, row: usize) -> Result<()> {
        let slot = self.sources.len() + self.chunks.len() - 1;
        self.push(slot, row)
    }

    fn push(&mut self, source: usize, row: usize) -> Result<()> {
        self.pending.push((source, row));
        if self.pending.len() == CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let all: Vec<&RecordBatch> = self.sources.iter().copied().chain(&self.chunks).collect();
        let batch = interleave_record_batch(&all, &self.pending).map_err(Error::arrow)?;
        self.pending.clear();
        // only the current chunk of the base is still to come
        let done = self.chunks.len().saturating_sub(1);
        self.chunks.drain(..done);
        (self.out)(batch)
    }
}

/// Adds rows to the changes of their windows in `windows`, keeping each key's newest.
fn add_to(
    windows: &mut BTreeMap<Window, Changes>,
    schema: &SchemaRef,
    batch: &RecordBatch,
    keys: &arrow_row::Rows,
    rows: &[(u32, Window, Order)],
) -> Result<()> {
    let mut slots: BTreeMap<Window, usize> = BTreeMap::new();
    for &(row, window, order) in rows {
        let changes = windows.entry(window).or_default();
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
        if let Some(changes) = windows.get_mut(window) {
            changes.retained += batch.num_rows();
            if changes.retained > 2 * changes.keys.len() + 65_536 {
                changes.compact(schema)?;
            }
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        codec::wire,
        demo::events::{Device, PlayEvent},
        snapshot::rows::Decoding,
    };
    use apache_avro::{writer::datum::GenericDatumWriter, AvroSchema as _};
    use arrow_array::{Array, StringArray};

    fn window(n: i64) -> Window {
        Window {
            start: n * 60_000,
            end: (n + 1) * 60_000,
        }
    }

    /// One row per (user, play id, event time), offsets in order.
    fn rows(events: &[(&str, &str, i64)], first_offset: i64) -> RecordBatch {
        let schema = PlayEvent::get_schema();
        let json = serde_json::to_string(&schema).unwrap();
        let mut decoding = Decoding::new(&json, &[(1, json.clone())], 100).unwrap();
        let writer = GenericDatumWriter::builder(&schema).build().unwrap();
        for (i, (user, play, time)) in events.iter().enumerate() {
            let event = PlayEvent {
                play_id: (*play).into(),
                user_id: (*user).into(),
                track_id: "t".into(),
                artist_id: "a".into(),
                device: Device::Web,
                country: "SE".into(),
                started_at: *time,
                duration_ms: 1,
                completed: true,
                context: None,
            };
            let payload = wire::encode(1, &writer.write_ser_to_vec(&event).unwrap());
            let offset = first_offset + i as i64;
            decoding
                .push(0, offset, Some(*time), None, &payload)
                .unwrap();
        }
        decoding.finish().unwrap().unwrap().batch
    }

    fn add(latest: &mut Latest, batch: &RecordBatch, w: Window, late: bool) {
        let times = batch
            .column_by_name(super::super::rows::EVENT_TIME)
            .unwrap()
            .as_any()
            .downcast_ref::<arrow_array::TimestampMillisecondArray>()
            .unwrap()
            .clone();
        let offsets = batch
            .column_by_name(super::super::rows::OFFSET)
            .unwrap()
            .as_any()
            .downcast_ref::<arrow_array::Int64Array>()
            .unwrap()
            .clone();
        let rows: Vec<_> = (0..batch.num_rows())
            .map(|i| (i as u32, w, (times.value(i), 0, offsets.value(i))))
            .collect();
        if late {
            latest.add_late(batch, &rows).unwrap();
        } else {
            latest.add(batch, &rows).unwrap();
        }
    }

    fn plays(batch: &RecordBatch) -> Vec<String> {
        let c = batch.column_by_name("play_id").unwrap();
        let c = c.as_any().downcast_ref::<StringArray>().unwrap();
        (0..c.len()).map(|i| c.value(i).to_owned()).collect()
    }

    fn latest(schema: SchemaRef, spill: &Spill) -> Latest {
        let view: View = serde_norway::from_str(
            "{name: v, kind: latest, window: minute, key: [user_id], late: amend}",
        )
        .unwrap();
        let mut latest = Latest::new(&view, schema, spill.clone()).unwrap();
        latest.amend_late();
        latest
    }

    fn close(state: &mut Latest, w: Window) -> RecordBatch {
        let mut chunks = Vec::new();
        let closed = state
            .close(w, &mut |c| {
                chunks.push(c);
                Ok(())
            })
            .unwrap();
        assert!(closed);
        arrow_select::concat::concat_batches(&chunks[0].schema(), &chunks).unwrap()
    }

    fn amend(state: &Latest, dirty: &[Window]) -> Vec<(Window, RecordBatch)> {
        let mut out: Vec<(Window, Vec<RecordBatch>)> = Vec::new();
        state
            .amend(&dirty.iter().copied().collect(), &mut |w, c| {
                match out.last_mut() {
                    Some((last, chunks)) if *last == w => chunks.push(c),
                    _ => out.push((w, vec![c])),
                }
                Ok(())
            })
            .unwrap();
        out.into_iter()
            .map(|(w, c)| {
                let batch = arrow_select::concat::concat_batches(&c[0].schema(), &c).unwrap();
                (w, batch)
            })
            .collect()
    }

    #[test]
    fn pieces_of_several_partitions_merge_into_each_keys_newest_row_sorted_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let first = rows(&[("bob", "b-old", 1_000), ("ann", "a-new", 3_000)], 0);
        let second = rows(
            &[
                ("cat", "c", 500),
                ("ann", "a-old", 2_000),
                ("bob", "b-new", 4_000),
            ],
            10,
        );
        let state = latest(first.schema(), &Spill::new(dir.path(), 1_000));
        let mut chunks = Vec::new();
        state
            .merge_pieces(&[first, second], &mut |c| {
                chunks.push(c);
                Ok(())
            })
            .unwrap();
        let merged = arrow_select::concat::concat_batches(&chunks[0].schema(), &chunks).unwrap();
        assert_eq!(plays(&merged), ["a-new", "b-new", "c"]);
    }

    #[test]
    fn late_changes_reach_later_windows_across_a_restart_spilled_or_not() {
        let dir = tempfile::tempdir().unwrap();
        // a budget of one key spills every snapshot of two keys or more
        for spill in [Spill::new(dir.path(), 1_000), Spill::new(dir.path(), 1)] {
            late_changes_reach_later_windows_across_a_restart(&spill);
        }
    }

    fn late_changes_reach_later_windows_across_a_restart(spill: &Spill) {
        let ann = rows(&[("ann", "p1", 1_000)], 0);
        let schema = ann.schema();
        let mut state = latest(schema.clone(), spill);
        add(&mut state, &ann, window(0), false);
        assert_eq!(plays(&close(&mut state, window(0))), ["p1"]);
        // a late change of minute 0, then minute 0 is no longer amended
        add(
            &mut state,
            &rows(&[("ann", "p2", 2_000)], 1),
            window(0),
            true,
        );
        state.forget(window(0));
        add(
            &mut state,
            &rows(&[("bob", "p3", 61_000)], 2),
            window(1),
            false,
        );
        let first = close(&mut state, window(1));
        assert_eq!(
            plays(&first),
            ["p1", "p3"],
            "version 1 holds the events on time"
        );
        assert!(state.needs_amending(window(1)).unwrap());
        let newest = amend(&state, &[window(1)]);
        assert_eq!(plays(&newest[0].1), ["p2", "p3"]);

        // a restart: version 1 is the base, the newest version brings the late change back
        let mut restarted = latest(schema, spill);
        restarted.restore(&[first]).unwrap();
        restarted.restore_late(&[newest[0].1.clone()]).unwrap();
        add(
            &mut restarted,
            &rows(&[("cid", "p4", 121_000)], 3),
            window(2),
            false,
        );
        assert_eq!(plays(&close(&mut restarted, window(2))), ["p1", "p3", "p4"]);
        assert!(restarted.needs_amending(window(2)).unwrap());
        let newest = amend(&restarted, &[window(2)]);
        assert_eq!(plays(&newest[0].1), ["p2", "p3", "p4"]);
    }
}
