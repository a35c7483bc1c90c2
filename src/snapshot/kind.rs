//! What each kind of view does with the rows of its windows, behind one trait: the runner
//! ([`super::view`]: windows, clocks, lateness, manifests, progress) is the same for every kind,
//! and asks its [`Kind`] only what differs.
//!
//! - `events` ([`Events`]): every row, in files cut at row counts per partition; late rows of an
//!   amending view are new files in the window's next version;
//! - `latest` ([`Latest`]) and `aggregate` ([`Aggregate`]): one file per window version, the
//!   partition's whole piece (a `latest` view: every key the partition has seen, each with its
//!   newest row; an `aggregate` view: its groups' states); an amending view keeps closed
//!   windows' state and writes each amendment as a whole piece again.

use std::collections::{BTreeMap, BTreeSet};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;

use super::{
    aggregate::Aggregate,
    events::{Events, Part},
    latest::Latest,
    parquet,
    rows::Rows,
    spill::Spill,
    window::Window,
    Result,
};
use crate::product::{LatePolicy, View, ViewKind};

/// Which of a key's rows is newer: event time, then partition, then offset.
pub(crate) type Order = (i64, i32, i64);

/// One view kind's state over the windows of a view.
pub(crate) trait Kind: std::fmt::Debug + Send {
    /// Rows or groups held in memory.
    fn held(&self) -> usize;

    /// Keys or groups spilled to disk.
    fn spilled(&self) -> usize {
        0
    }

    /// Whether an amending view of this kind keeps the state of closed windows, to write each
    /// amendment as a whole snapshot (rather than late rows as added files).
    fn keeps_closed(&self) -> bool;

    /// Takes rows on time: `taken` holds (row of `rows`, its window), in input order, and
    /// `times` every row's event time. Returns the files cut from open windows by now.
    fn add(
        &mut self,
        rows: &Rows,
        times: &[Option<i64>],
        taken: &[(u32, Window)],
    ) -> Result<Vec<(Window, Vec<Part>)>>;

    /// Takes a late row (the one row of `batch`) into closed `window`, which this kind keeps.
    fn add_late(&mut self, _batch: &RecordBatch, _window: Window, _order: Order) -> Result<()> {
        Ok(())
    }

    /// The files of `window`, closed; `keep`: its state stays for amendments.
    fn close(&mut self, window: Window, keep: bool) -> Result<Vec<Part>>;

    /// Forgets the kept state of `window`.
    fn forget(&mut self, _window: Window) {}

    /// Whether `window`, just closed, already needs a next version for late changes known by
    /// now (a `latest` view's version 1 holds the events on time only).
    fn needs_amending(&mut self, _window: Window) -> Result<bool> {
        Ok(false)
    }

    /// The newest whole snapshot of the kept windows that took late changes (`dirty`), per
    /// window.
    fn amend(&self, _dirty: &BTreeSet<Window>) -> Result<BTreeMap<Window, Single>> {
        Ok(BTreeMap::new())
    }

    /// Whether the state after a restart is restored from written snapshots (`latest`: the
    /// state carries over from window to window) rather than from re-read records.
    fn restores_from_snapshots(&self) -> bool {
        false
    }

    /// Restores the state from the last closed window's snapshot.
    fn restore(&mut self, _batches: &[RecordBatch]) -> Result<()> {
        Ok(())
    }

    /// Restores version 1 of `window`, which the view may still amend.
    fn restore_first_version(&mut self, _window: Window, _batches: &[RecordBatch]) -> Result<()> {
        Ok(())
    }

    /// Restores the late changes the newest version of the last closed window holds.
    fn restore_late(&mut self, _batches: &[RecordBatch]) -> Result<()> {
        Ok(())
    }
}

/// The state of `view`'s kind over rows of `schema`: `events` files of at most
/// `max_rows_per_file` rows; keys or groups past `spill`'s budget on disk.
pub(crate) fn of(
    view: &View,
    schema: &SchemaRef,
    max_rows_per_file: usize,
    spill: &Spill,
) -> Result<Box<dyn Kind>> {
    Ok(match view.kind {
        ViewKind::Events => Box::new(Events::new(schema.clone(), max_rows_per_file)?),
        ViewKind::Latest => {
            let mut latest = Latest::new(view, schema.clone(), spill.clone())?;
            if view.late == LatePolicy::Amend {
                latest.amend_late();
            }
            Box::new(latest)
        }
        ViewKind::Aggregate => {
            Box::new(Aggregate::new(view, schema, spill.clone())?.writing_states())
        }
    })
}

impl Kind for Events {
    fn held(&self) -> usize {
        self.buffered()
    }

    fn keeps_closed(&self) -> bool {
        false
    }

    fn add(
        &mut self,
        rows: &Rows,
        _times: &[Option<i64>],
        taken: &[(u32, Window)],
    ) -> Result<Vec<(Window, Vec<Part>)>> {
        let mut cut = Vec::new();
        for ((window, partition), rows_of) in group(taken, &rows.partitions) {
            let parts = Events::add(self, window, partition, &rows.batch, &rows_of)?;
            if !parts.is_empty() {
                cut.push((window, parts));
            }
        }
        Ok(cut)
    }

    fn close(&mut self, window: Window, _keep: bool) -> Result<Vec<Part>> {
        Events::close(self, window)
    }
}

impl Kind for Latest {
    fn held(&self) -> usize {
        self.keys()
    }

    fn spilled(&self) -> usize {
        Latest::spilled(self)
    }

    fn keeps_closed(&self) -> bool {
        true
    }

    fn add(
        &mut self,
        rows: &Rows,
        times: &[Option<i64>],
        taken: &[(u32, Window)],
    ) -> Result<Vec<(Window, Vec<Part>)>> {
        let ordered: Vec<(u32, Window, Order)> = taken
            .iter()
            .map(|&(row, window)| {
                let i = row as usize;
                let order = (
                    times[i].unwrap_or_default(),
                    rows.partitions[i],
                    rows.offsets[i],
                );
                (row, window, order)
            })
            .collect();
        Latest::add(self, &rows.batch, &ordered)?;
        Ok(Vec::new())
    }

    fn add_late(&mut self, batch: &RecordBatch, window: Window, order: Order) -> Result<()> {
        Latest::add_late(self, batch, &[(0, window, order)])
    }

    fn close(&mut self, window: Window, _keep: bool) -> Result<Vec<Part>> {
        let mut single = Single::default();
        Latest::close(self, window, &mut |batch| single.write(batch))?;
        single.into_parts()
    }

    fn forget(&mut self, window: Window) {
        Latest::forget(self, window);
    }

    fn needs_amending(&mut self, window: Window) -> Result<bool> {
        Latest::needs_amending(self, window)
    }

    fn amend(&self, dirty: &BTreeSet<Window>) -> Result<BTreeMap<Window, Single>> {
        let mut files: BTreeMap<Window, Single> = BTreeMap::new();
        // a late change is in its window's newest version and every later one's
        Latest::amend(self, dirty, &mut |window, batch| {
            files.entry(window).or_default().write(batch)
        })?;
        Ok(files)
    }

    fn restores_from_snapshots(&self) -> bool {
        true
    }

    fn restore(&mut self, batches: &[RecordBatch]) -> Result<()> {
        Latest::restore(self, batches)
    }

    fn restore_first_version(&mut self, window: Window, batches: &[RecordBatch]) -> Result<()> {
        Latest::restore_first_version(self, window, batches)
    }

    fn restore_late(&mut self, batches: &[RecordBatch]) -> Result<()> {
        Latest::restore_late(self, batches)
    }
}

impl Kind for Aggregate {
    fn held(&self) -> usize {
        self.groups()
    }

    fn spilled(&self) -> usize {
        Aggregate::spilled(self)
    }

    fn keeps_closed(&self) -> bool {
        true
    }

    fn add(
        &mut self,
        rows: &Rows,
        _times: &[Option<i64>],
        taken: &[(u32, Window)],
    ) -> Result<Vec<(Window, Vec<Part>)>> {
        Aggregate::add(self, &rows.batch, taken)?;
        Ok(Vec::new())
    }

    fn add_late(&mut self, batch: &RecordBatch, window: Window, _order: Order) -> Result<()> {
        Aggregate::add(self, batch, &[(0, window)])
    }

    fn close(&mut self, window: Window, keep: bool) -> Result<Vec<Part>> {
        let mut single = Single::default();
        let mut write = |batch| single.write(batch);
        if keep {
            self.snapshot(window, &mut write)?;
        } else {
            Aggregate::close(self, window, &mut write)?;
        }
        single.into_parts()
    }

    fn forget(&mut self, window: Window) {
        self.remove(window);
    }

    fn amend(&self, dirty: &BTreeSet<Window>) -> Result<BTreeMap<Window, Single>> {
        let mut files: BTreeMap<Window, Single> = BTreeMap::new();
        for window in dirty {
            let file = files.entry(*window).or_default();
            self.snapshot(*window, &mut |batch| file.write(batch))?;
        }
        Ok(files)
    }
}

/// The one file of a `latest` or `aggregate` snapshot, written a chunk at a time.
#[derive(Default)]
pub(crate) struct Single(Option<parquet::Writer>);

impl Single {
    /// Adds rows to the file.
    pub(crate) fn write(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let writer = match &mut self.0 {
            Some(writer) => writer,
            None => self.0.insert(parquet::Writer::new(batch.schema())?),
        };
        writer.write(&batch)
    }

    /// The file's bytes and rows; `None` without rows.
    pub(crate) fn finish(self) -> Result<Option<(Vec<u8>, u64)>> {
        self.0
            .map(|writer| {
                let rows = writer.rows();
                Ok((writer.finish()?, rows))
            })
            .transpose()
    }

    /// The file as the one part of a window's version; none without rows.
    fn into_parts(self) -> Result<Vec<Part>> {
        Ok(self
            .finish()?
            .map(|(bytes, rows)| Part {
                name: "part-00000.parquet".into(),
                rows,
                bytes,
            })
            .into_iter()
            .collect())
    }
}

/// Rows grouped by (window, partition), each group in input order.
fn group(taken: &[(u32, Window)], partitions: &[i32]) -> BTreeMap<(Window, i32), Vec<u32>> {
    let mut groups: BTreeMap<(Window, i32), Vec<u32>> = BTreeMap::new();
    for &(row, window) in taken {
        groups
            .entry((window, partitions[row as usize]))
            .or_default()
            .push(row);
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::{parquet, testing, window::Window};
    use arrow_array::{cast::AsArray, types::Int64Type};

    const MINUTE: Window = Window {
        start: 0,
        end: 60_000,
    };

    fn kind(descriptor: &str, max_rows_per_file: usize) -> (Box<dyn Kind>, tempfile::TempDir) {
        let view: View = serde_norway::from_str(descriptor).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let spill = Spill::new(dir.path(), 1_000);
        let kind = of(&view, &testing::schema(), max_rows_per_file, &spill).unwrap();
        (kind, dir)
    }

    /// Adds `plays`, all on time in the first minute.
    fn add(kind: &mut dyn Kind, plays: &[testing::Play<'_>]) -> Vec<(Window, Vec<Part>)> {
        let rows = testing::rows(plays);
        let times: Vec<Option<i64>> = plays.iter().map(|p| Some(p.2)).collect();
        let taken: Vec<(u32, Window)> = (0..plays.len() as u32).map(|i| (i, MINUTE)).collect();
        kind.add(&rows, &times, &taken).unwrap()
    }

    /// The values of column `name` in the one part of `parts`.
    fn column(parts: &[Part], name: &str) -> Vec<String> {
        assert_eq!(parts.len(), 1, "one file per window version");
        let batches = parquet::decode(parts[0].bytes.clone()).unwrap();
        let mut values = Vec::new();
        for batch in batches {
            let column = batch.column_by_name(name).unwrap();
            match column.as_string_opt::<i32>() {
                Some(strings) => values.extend(strings.iter().map(|s| s.unwrap().to_owned())),
                None => values.extend(
                    column
                        .as_primitive::<Int64Type>()
                        .iter()
                        .map(|v| v.unwrap().to_string()),
                ),
            }
        }
        values
    }

    #[test]
    fn events_are_cut_into_files_of_at_most_max_rows_per_partition() {
        let (mut events, _dir) = kind("{name: all, kind: events, window: minute}", 2);
        assert!(!events.keeps_closed());
        let cut = add(
            events.as_mut(),
            &[
                (0, 0, 1, "a"),
                (1, 0, 2, "b"),
                (0, 1, 3, "c"),
                (0, 2, 4, "d"),
            ],
        );
        // partition 0 filled one file of two rows; partition 1 and the rest of 0 wait
        assert_eq!(cut.len(), 1);
        assert_eq!(cut[0].0, MINUTE);
        assert_eq!(cut[0].1.iter().map(|p| p.rows).collect::<Vec<_>>(), [2]);
        assert_eq!(events.held(), 2);
        let rest = events.close(MINUTE, false).unwrap();
        assert_eq!(rest.iter().map(|p| p.rows).sum::<u64>(), 2);
        assert_eq!(events.held(), 0);
    }

    #[test]
    fn latest_writes_each_keys_newest_row_by_event_time() {
        let (mut latest, _dir) = kind(
            "{name: users, kind: latest, window: minute, key: [user_id]}",
            100,
        );
        assert!(latest.keeps_closed() && latest.restores_from_snapshots());
        // u1's newest by event time is the first record, not the last offset
        let cut = add(
            latest.as_mut(),
            &[
                (0, 0, 3_000, "u1"),
                (0, 1, 2_000, "u2"),
                (0, 2, 1_000, "u1"),
            ],
        );
        assert!(cut.is_empty(), "a latest view writes at close only");
        let parts = latest.close(MINUTE, false).unwrap();
        assert_eq!(column(&parts, "user_id"), ["u1", "u2"]);
        assert_eq!(column(&parts, "duration_ms"), ["0", "1"]);
    }

    /// The values of `descriptor`'s aggregate over `pieces` (each a partition's piece of the
    /// first minute), as the commit step adds them up: column `name`.
    fn added_up(descriptor: &str, pieces: &[Vec<u8>], name: &str) -> Vec<String> {
        let view: View = serde_norway::from_str(descriptor).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut aggregate =
            Aggregate::new(&view, &testing::schema(), Spill::new(dir.path(), 1_000)).unwrap();
        for piece in pieces {
            for batch in parquet::decode(piece.clone()).unwrap() {
                aggregate.add_piece(MINUTE, &batch).unwrap();
            }
        }
        let mut single = Single::default();
        aggregate
            .close(MINUTE, &mut |batch| single.write(batch))
            .unwrap();
        column(&single.into_parts().unwrap(), name)
    }

    const PER_USER: &str = "{name: per-user, kind: aggregate, window: minute, key: [user_id],
        aggregations: [{name: plays, function: count},
                       {name: listeners, function: distinct_count, field: play_id}]}";

    #[test]
    fn aggregate_pieces_hold_states_that_add_up_over_partitions_and_take_late_rows() {
        let (mut aggregate, _dir) = kind(PER_USER, 100);
        assert!(aggregate.keeps_closed() && !aggregate.restores_from_snapshots());
        add(
            aggregate.as_mut(),
            &[
                (0, 0, 1_000, "u1"),
                (0, 1, 2_000, "u2"),
                (0, 2, 3_000, "u1"),
            ],
        );
        let first = aggregate.close(MINUTE, true).unwrap();
        assert_eq!(first.len(), 1, "one file per window version");
        // another partition's piece of the same minute
        let (mut other, _other_dir) = kind(PER_USER, 100);
        add(other.as_mut(), &[(1, 0, 1_500, "u1"), (1, 1, 2_500, "u3")]);
        let second = other.close(MINUTE, false).unwrap();
        let pieces = [first[0].bytes.clone(), second[0].bytes.clone()];
        assert_eq!(added_up(PER_USER, &pieces, "user_id"), ["u1", "u2", "u3"]);
        assert_eq!(added_up(PER_USER, &pieces, "plays"), ["3", "1", "1"]);

        let late = testing::rows(&[(0, 3, 4_000, "u2")]);
        aggregate
            .add_late(&late.batch, MINUTE, (4_000, 0, 3))
            .unwrap();
        let amended = aggregate.amend(&BTreeSet::from([MINUTE])).unwrap();
        let (bytes, rows) = amended
            .into_values()
            .next()
            .unwrap()
            .finish()
            .unwrap()
            .unwrap();
        assert_eq!(rows, 2);
        let pieces = [bytes, second[0].bytes.clone()];
        assert_eq!(added_up(PER_USER, &pieces, "plays"), ["3", "2", "1"]);

        aggregate.forget(MINUTE);
        assert_eq!(aggregate.held(), 0);
    }
}
