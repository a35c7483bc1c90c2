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
    /// With `late: amend`: what amendments are computed from.
    amending: Option<Amending>,
}

/// Version 1 of each closed window that may still be amended, and the late changes: a window's
/// newest version holds, per key, the newest of its version-1 row and the late changes of it
/// and the windows before it.
#[derive(Debug, Default)]
struct Amending {
    first_versions: BTreeMap<Window, Snapshot>,
    late: BTreeMap<Window, Changes>,
    /// Late changes of windows no longer amended (they still count for the windows after).
    older: Vec<Changes>,
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
            amending: None,
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
        add_to(&mut self.changes, &self.schema, batch, &keys, rows)
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
        let snapshot = (batch.clone(), index);
        self.keep_first_version(window, &snapshot);
        self.base = Some(snapshot);
        Ok(Some(batch))
    }
}

impl Latest {
    /// Keeps what late events need to amend closed windows (`late: amend`).
    pub fn amend_late(&mut self) {
        self.amending.get_or_insert_with(Amending::default);
    }

    /// Whether a late change is newer than its key's row in version 1 of `window` (just
    /// closed): the window then needs a newer version. Late changes of forgotten windows that
    /// this version 1 supersedes are dropped: no later window needs them.
    pub fn needs_amending(&mut self, window: Window) -> Result<bool> {
        let time = self
            .schema
            .index_of(super::rows::EVENT_TIME)
            .map_err(Error::arrow)?;
        let partition = self
            .schema
            .index_of(super::rows::PARTITION)
            .map_err(Error::arrow)?;
        let offset = self
            .schema
            .index_of(super::rows::OFFSET)
            .map_err(Error::arrow)?;
        let Some(amending) = &mut self.amending else {
            return Ok(false);
        };
        if amending.late.is_empty() && amending.older.is_empty() {
            return Ok(false);
        }
        let Some((batch, index)) = amending.first_versions.get(&window) else {
            return Ok(false);
        };
        let orders = orders(batch, time, partition, offset)?;
        let newer = |key: &[u8], at: &At| index.get(key).is_none_or(|row| orders[*row] < at.order);
        for changes in &mut amending.older {
            changes.keys.retain(|key, at| newer(key, at));
        }
        amending.older.retain(|c| !c.keys.is_empty());
        let needs = amending.older.iter().any(|c| !c.keys.is_empty())
            || amending
                .late
                .range(..=window)
                .any(|(_, c)| c.keys.iter().any(|(key, at)| newer(key, at)));
        Ok(needs)
    }

    /// Restores version 1 of a closed window that may still be amended (after a restart).
    pub fn restore_first_version(&mut self, window: Window, batches: &[RecordBatch]) -> Result<()> {
        let batch =
            arrow_select::concat::concat_batches(&self.schema, batches).map_err(Error::arrow)?;
        let rows = self.key_rows(&batch)?;
        let index = (0..batch.num_rows())
            .map(|i| (rows.row(i).as_ref().into(), i))
            .collect();
        if let Some(amending) = &mut self.amending {
            amending.first_versions.insert(window, (batch, index));
        }
        Ok(())
    }

    /// Restores, after a restart, the late changes the newest version of the last closed window
    /// holds beyond its version 1 (the base): they count for the windows to come.
    pub fn restore_late(&mut self, newest: &[RecordBatch]) -> Result<()> {
        let batch =
            arrow_select::concat::concat_batches(&self.schema, newest).map_err(Error::arrow)?;
        let time = self
            .schema
            .index_of(super::rows::EVENT_TIME)
            .map_err(Error::arrow)?;
        let partition = self
            .schema
            .index_of(super::rows::PARTITION)
            .map_err(Error::arrow)?;
        let offset = self
            .schema
            .index_of(super::rows::OFFSET)
            .map_err(Error::arrow)?;
        let newest_orders = orders(&batch, time, partition, offset)?;
        let base_orders = match &self.base {
            Some((base, _)) => orders(base, time, partition, offset)?,
            None => Vec::new(),
        };
        let rows = self.key_rows(&batch)?;
        let mut changes = Changes::default();
        for (row, order) in newest_orders.iter().enumerate() {
            let key = rows.row(row);
            let older = self
                .base
                .as_ref()
                .and_then(|(_, index)| index.get(key.as_ref()))
                .is_none_or(|r| base_orders[*r] < *order);
            if older {
                changes.keys.insert(
                    key.as_ref().into(),
                    At {
                        order: *order,
                        batch: 0,
                        row,
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

    /// Remembers version 1 of a window just closed.
    fn keep_first_version(&mut self, window: Window, snapshot: &Snapshot) {
        if let Some(amending) = &mut self.amending {
            amending.first_versions.insert(window, snapshot.clone());
        }
    }

    /// Adds late rows of `batch` to closed windows that may still be amended.
    pub fn add_late(&mut self, batch: &RecordBatch, rows: &[(u32, Window, Order)]) -> Result<()> {
        let keys = self.key_rows(batch)?;
        let Some(amending) = &mut self.amending else {
            return Err(Error::Unexpected(
                "late rows for a view that does not amend".into(),
            ));
        };
        add_to(&mut amending.late, &self.schema, batch, &keys, rows)
    }

    /// `window` is no longer amended.
    pub fn forget(&mut self, window: Window) {
        if let Some(amending) = &mut self.amending {
            amending.first_versions.remove(&window);
            if let Some(late) = amending.late.remove(&window) {
                amending.older.push(late);
            }
        }
    }

    /// The newest state of every kept window from the oldest of `dirty` on.
    pub fn amend(
        &self,
        dirty: &std::collections::BTreeSet<Window>,
    ) -> Result<Vec<(Window, RecordBatch)>> {
        let (Some(amending), Some(first)) = (&self.amending, dirty.first()) else {
            return Ok(Vec::new());
        };
        let time = self
            .schema
            .index_of(super::rows::EVENT_TIME)
            .map_err(Error::arrow)?;
        let partition = self
            .schema
            .index_of(super::rows::PARTITION)
            .map_err(Error::arrow)?;
        let offset = self
            .schema
            .index_of(super::rows::OFFSET)
            .map_err(Error::arrow)?;
        let mut out = Vec::new();
        for (window, (batch, index)) in amending.first_versions.range(*first..) {
            let orders = orders(batch, time, partition, offset)?;
            let mut sources: Vec<&RecordBatch> = vec![batch];
            let mut picks: BTreeMap<&[u8], (Order, usize, usize)> = index
                .iter()
                .map(|(k, row)| (k.as_ref(), (orders[*row], 0, *row)))
                .collect();
            let late = amending
                .older
                .iter()
                .chain(amending.late.range(..=*window).map(|(_, c)| c));
            for changes in late {
                let base = sources.len();
                sources.extend(changes.batches.iter());
                for (key, at) in &changes.keys {
                    let pick = (at.order, base + at.batch, at.row);
                    match picks.get_mut(key.as_ref()) {
                        Some(old) if old.0 >= at.order => {}
                        Some(old) => *old = pick,
                        None => {
                            picks.insert(key.as_ref(), pick);
                        }
                    }
                }
            }
            let indices: Vec<(usize, usize)> = picks.values().map(|p| (p.1, p.2)).collect();
            let newest = interleave_record_batch(&sources, &indices).map_err(Error::arrow)?;
            out.push((*window, newest));
        }
        Ok(out)
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

/// The order of each row of a snapshot: event time, partition, offset.
fn orders(batch: &RecordBatch, time: usize, partition: usize, offset: usize) -> Result<Vec<Order>> {
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

    fn latest(schema: SchemaRef) -> Latest {
        let view: View = serde_norway::from_str(
            "{name: v, kind: latest, window: minute, key: [user_id], late: amend}",
        )
        .unwrap();
        let mut latest = Latest::new(&view, schema).unwrap();
        latest.amend_late();
        latest
    }

    #[test]
    fn late_changes_reach_later_windows_across_a_restart() {
        let ann = rows(&[("ann", "p1", 1_000)], 0);
        let schema = ann.schema();
        let mut state = latest(schema.clone());
        add(&mut state, &ann, window(0), false);
        assert_eq!(plays(&state.close(window(0)).unwrap().unwrap()), ["p1"]);
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
        let first = state.close(window(1)).unwrap().unwrap();
        assert_eq!(
            plays(&first),
            ["p1", "p3"],
            "version 1 holds the events on time"
        );
        assert!(state.needs_amending(window(1)).unwrap());
        let newest = state.amend(&[window(1)].into()).unwrap();
        assert_eq!(plays(&newest[0].1), ["p2", "p3"]);

        // a restart: version 1 is the base, the newest version brings the late change back
        let mut restarted = latest(schema);
        restarted.restore(&[first]).unwrap();
        restarted.restore_late(&[newest[0].1.clone()]).unwrap();
        add(
            &mut restarted,
            &rows(&[("cid", "p4", 121_000)], 3),
            window(2),
            false,
        );
        assert_eq!(
            plays(&restarted.close(window(2)).unwrap().unwrap()),
            ["p1", "p3", "p4"]
        );
        assert!(restarted.needs_amending(window(2)).unwrap());
        let newest = restarted.amend(&[window(2)].into()).unwrap();
        assert_eq!(plays(&newest[0].1), ["p2", "p3", "p4"]);
    }
}
