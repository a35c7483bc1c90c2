//! One view of one source partition of a product: takes the partition's rows in, assigns them
//! to event-time windows, decides lateness, closes windows when the watermark passes them, and
//! says what to write: the partition's piece of each window (sans-io: the caller writes the
//! files, in order, create-only; the commit step, `worker::commit`, merges the pieces of a window
//! into its snapshot).

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Instant,
};

use arrow_array::{Array, RecordBatch, TimestampMillisecondArray};
use arrow_schema::{DataType, SchemaRef, TimeUnit};
use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};

use super::{
    clock::Clocks,
    events::{Events, Part},
    kind::{self, Kind},
    manifest::{self, File, Manifest, PartitionProgress, SourceRange, ViewProgress},
    rows::{Rows, EVENT_TIME},
    spill::Spill,
    window::{Calendar, Window},
    Error, Result,
};
use crate::product::{LatePolicy, View, ViewKind};

/// A file to write, create-only, at a path from the store's root.
#[derive(Debug, Clone)]
pub struct Put {
    /// Path from the store's root.
    pub path: String,
    /// Contents.
    pub bytes: Vec<u8>,
}

impl Put {
    /// A Parquet file in `dir` named by a hash of its contents: a retry after a crash that
    /// computes other contents (from more events) writes another name.
    pub(crate) fn named_by_contents(dir: &str, bytes: Vec<u8>) -> Self {
        let digest = Sha256::digest(&bytes);
        let name: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        Self {
            path: format!("{dir}/part-{name}.parquet"),
            bytes,
        }
    }
}

/// What a step asks the caller to do.
#[derive(Debug, Default)]
pub struct Step {
    /// Files to write, in this order (a manifest after its files).
    pub puts: Vec<Put>,
    /// Rows (of the step's input) to send to the dead-letter topic as late.
    pub dead_letters: Vec<usize>,
    /// Windows whose snapshot (or a new version of it) is complete after the puts.
    pub closed: Vec<Manifest>,
}

impl Step {
    fn extend(&mut self, other: Step) {
        self.puts.extend(other.puts);
        self.dead_letters.extend(other.dead_letters);
        self.closed.extend(other.closed);
    }
}

/// Counters of one view.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Rows taken into a window.
    pub taken: u64,
    /// Late rows left out.
    pub late_dropped: u64,
    /// Late rows sent to the dead-letter topic.
    pub late_dead_lettered: u64,
    /// Late rows added by an amendment.
    pub late_amended: u64,
    /// Rows without an event time.
    pub no_time: u64,
}

#[derive(Debug, Default, Clone)]
struct Open {
    sources: BTreeMap<i32, (SourceRange, Option<i64>)>,
    schema_ids: BTreeSet<u32>,
    files: Vec<File>,
}

/// One view's windows.
#[derive(Debug)]
pub struct ViewRunner {
    product: String,
    /// The source partition whose pieces this runner writes.
    partition: i32,
    view: View,
    calendar: Calendar,
    clocks: Clocks,
    time_column: usize,
    /// What the view's kind keeps of its windows.
    kind: Box<dyn Kind>,
    /// Late rows of closed windows waiting for an amendment.
    amendments: Option<Events>,
    open: BTreeMap<Window, Open>,
    closed_through: Option<i64>,
    /// The newest manifest of each closed window (kept for amendments).
    written: BTreeMap<Window, Manifest>,
    last_manifest: Option<String>,
    skip_before: BTreeMap<i32, i64>,
    done_through: BTreeMap<i32, i64>,
    taken_through: BTreeMap<i32, i64>,
    amended: BTreeMap<Window, Open>,
    amend_parts: BTreeMap<Window, Vec<Part>>,
    /// Closed windows an `aggregate` view with `late: amend` keeps the groups of.
    kept: BTreeMap<Window, Open>,
    /// Late events of windows not closed yet, for an `aggregate` view that amends.
    late_open: BTreeMap<Window, Vec<LateRow>>,
    /// Windows closed at the checkpoint this run resumed from.
    checkpoint_closed: Option<i64>,
    /// Kept windows that took late events since their last version.
    dirty: BTreeSet<Window>,
    /// Partitions re-reading, after a restart, records taken before the checkpoint it resumed
    /// from (the state of kept windows is rebuilt from them): no checkpoint until they are back.
    replaying: BTreeSet<i32>,
    /// How long after its end a window is amended (ms).
    amend_for: i64,
    /// Counters.
    pub counts: Counts,
}

impl ViewRunner {
    /// The runner of `view` of `product` over rows of `schema` from source `partition`, resuming
    /// from `progress`: `events` files of at most `max_rows_per_file` rows, and the keys or
    /// groups of `latest` and `aggregate` views past `spill`'s budget spilled to disk.
    pub fn new(
        product: &str,
        view: &View,
        schema: SchemaRef,
        partition: i32,
        max_rows_per_file: usize,
        spill: &Spill,
        progress: Option<&ViewProgress>,
    ) -> Result<Self> {
        let tz = view.time_zone.parse().map_err(|_| Error::View {
            view: view.name.clone(),
            message: format!("`{}` is not an IANA time zone", view.time_zone),
        })?;
        let time_name = view.time_field.as_deref().unwrap_or(EVENT_TIME);
        let time_column = schema.index_of(time_name).map_err(|_| Error::View {
            view: view.name.clone(),
            message: format!("time field `{time_name}` is not a column of the product's schema"),
        })?;
        match schema.field(time_column).data_type() {
            DataType::Timestamp(..) | DataType::Int64 => {}
            other => {
                return Err(Error::View {
                    view: view.name.clone(),
                    message: format!(
                        "time field `{time_name}` is of type {other}; use a timestamp or a long of epoch milliseconds"
                    ),
                })
            }
        }
        let kind = kind::of(view, &schema, max_rows_per_file, spill)?;
        let amendments = (view.late == LatePolicy::Amend && view.kind == ViewKind::Events)
            .then(|| Events::new(schema.clone(), max_rows_per_file))
            .transpose()?;
        let mut clocks = Clocks::new([partition], view.allowed_lateness.0, view.idle_timeout.0);
        let mut runner = Self {
            product: product.to_owned(),
            partition,
            view: view.clone(),
            calendar: Calendar::new(view.window, tz),
            clocks: clocks.clone(),
            time_column,
            kind,
            amendments,
            open: BTreeMap::new(),
            closed_through: None,
            written: BTreeMap::new(),
            last_manifest: None,
            skip_before: BTreeMap::new(),
            done_through: BTreeMap::new(),
            taken_through: BTreeMap::new(),
            amended: BTreeMap::new(),
            amend_parts: BTreeMap::new(),
            kept: BTreeMap::new(),
            late_open: BTreeMap::new(),
            checkpoint_closed: None,
            dirty: BTreeSet::new(),
            replaying: BTreeSet::new(),
            amend_for: i64::try_from(view.amend_for.0.as_millis()).unwrap_or(i64::MAX),
            counts: Counts::default(),
        };
        if let Some(progress) = progress {
            for (partition, p) in &progress.partitions {
                clocks.restore(*partition, p.max_event);
                runner.skip_before.insert(*partition, p.resume_from);
                runner.done_through.insert(*partition, p.done_through);
                runner.taken_through.insert(*partition, p.done_through);
                if p.resume_from <= p.done_through {
                    runner.replaying.insert(*partition);
                }
            }
            runner.clocks = clocks;
            runner.closed_through = progress.closed_through;
            runner.checkpoint_closed = progress.closed_through;
            runner.last_manifest = progress.last_manifest.clone();
        }
        Ok(runner)
    }

    /// The view.
    pub fn view(&self) -> &View {
        &self.view
    }

    /// The directory of version `version` of this partition's piece of window `label`.
    fn piece_dir(&self, label: &str, version: u32) -> String {
        manifest::piece_dir(
            &self.product,
            &self.view.name,
            label,
            self.partition,
            version,
        )
    }

    /// The manifest of version `version` of this partition's piece of window `label`.
    fn piece_manifest(&self, label: &str, version: u32) -> String {
        manifest::piece_manifest_path(
            &self.product,
            &self.view.name,
            label,
            self.partition,
            version,
        )
    }

    /// For a `latest` view: the manifest whose rows to [`ViewRunner::restore`] before the first
    /// step.
    pub fn restore_from(&self) -> Option<&str> {
        if self.kind.restores_from_snapshots() {
            self.last_manifest.as_deref()
        } else {
            None
        }
    }

    /// Restores a `latest` view's state from its last snapshot's rows.
    pub fn restore(&mut self, batches: &[RecordBatch]) -> Result<()> {
        self.kind.restore(batches)
    }

    /// Remembers a written manifest of a closed window (an `amend` view needs the newest one of
    /// each window it may amend).
    pub fn remember(&mut self, manifest: Manifest) -> Result<()> {
        let start = parse_instant(&manifest.window_start)?;
        let window = self.calendar.window_of(start);
        match self.written.get(&window) {
            Some(known) if known.version >= manifest.version => {}
            _ => {
                self.written.insert(window, manifest);
            }
        }
        Ok(())
    }

    /// Whether `manifest` is the version 1 of a window this `latest` view may still amend: its
    /// rows are restored with [`ViewRunner::restore_first_version`] after a restart.
    pub fn wants_first_version(&self, manifest: &Manifest) -> bool {
        if !(self.kind.restores_from_snapshots() && self.amends() && manifest.version == 1) {
            return false;
        }
        parse_instant(&manifest.window_end).is_ok_and(|end| {
            self.closed_through
                .is_some_and(|c| end <= c && end.saturating_add(self.amend_for) > c)
        })
    }

    /// Restores version 1 of a window a `latest` view may still amend.
    pub fn restore_first_version(
        &mut self,
        manifest: &Manifest,
        batches: &[RecordBatch],
    ) -> Result<()> {
        let start = parse_instant(&manifest.window_start)?;
        let window = self.calendar.window_of(start);
        self.kind.restore_first_version(window, batches)
    }

    /// For an amending `latest` view after a restart: the newest manifest of the last closed
    /// window, when newer than the version 1 it restarts from (its late changes are restored
    /// with [`ViewRunner::restore_late`]).
    pub fn newest_to_restore(&self) -> Option<String> {
        if !(self.kind.restores_from_snapshots() && self.amends()) {
            return None;
        }
        let label = self
            .last_manifest
            .as_deref()?
            .rsplit('/')
            .nth(3)?
            .strip_prefix("window=")?;
        let newest = self
            .written
            .values()
            .find(|m| m.window == label && m.version > 1)?;
        Some(self.piece_manifest(&newest.window, newest.version))
    }

    /// Restores the late changes the newest version of the last closed window holds.
    pub fn restore_late(&mut self, batches: &[RecordBatch]) -> Result<()> {
        self.kind.restore_late(batches)
    }

    /// Whether this view amends closed windows.
    pub fn amends(&self) -> bool {
        self.view.late == LatePolicy::Amend
    }

    /// Whether this view keeps closed windows' state to amend them (`aggregate`).
    fn keeps(&self) -> bool {
        self.amends() && self.kind.keeps_closed()
    }

    /// `partition` has delivered everything it holds, as of `now`.
    pub fn reached_end(&mut self, partition: i32, now: Instant) {
        self.clocks.reached_end(partition, now);
        self.replaying.remove(&partition);
    }

    /// Whether records taken before the checkpoint are still being re-read (a checkpoint now
    /// could record amendments as done before the rebuilt state wrote them).
    pub fn replaying(&self) -> bool {
        !self.replaying.is_empty()
    }

    /// Memory held, in rows or groups.
    pub fn held(&self) -> usize {
        self.kind.held()
    }

    /// Keys or groups spilled to disk.
    pub fn spilled(&self) -> usize {
        self.kind.spilled()
    }

    fn times(&self, rows: &Rows) -> Result<Vec<Option<i64>>> {
        let column = rows.batch.column(self.time_column);
        let millis = arrow_cast::cast(column, &DataType::Timestamp(TimeUnit::Millisecond, None))
            .map_err(Error::arrow)?;
        let millis = millis
            .as_any()
            .downcast_ref::<TimestampMillisecondArray>()
            .ok_or_else(|| Error::Unexpected("event times are not timestamps".into()))?;
        Ok(millis.iter().collect())
    }

    /// Takes in a batch of rows (each partition's rows in offset order).
    pub fn step(&mut self, rows: &Rows) -> Result<Step> {
        let times = self.times(rows)?;
        let mut step = Step::default();
        let mut taken: Vec<(u32, Window)> = Vec::new();
        let mut late: Vec<(u32, Window, Option<i64>)> = Vec::new();
        for (i, time) in times.iter().enumerate() {
            let (partition, offset) = (rows.partitions[i], rows.offsets[i]);
            if self
                .skip_before
                .get(&partition)
                .is_some_and(|s| offset < *s)
            {
                continue;
            }
            if self
                .done_through
                .get(&partition)
                .is_none_or(|d| offset >= *d)
            {
                self.replaying.remove(&partition);
            }
            let Some(time) = *time else {
                self.counts.no_time += 1;
                continue;
            };
            let window = self.calendar.window_of(time);
            let is_late = self.clocks.is_late(partition, window.end);
            let max_before = self.clocks.max_event(partition);
            self.clocks.observe(partition, time);
            self.taken_through.insert(partition, offset);
            let closed = self.closed_through.is_some_and(|c| window.end <= c);
            let amended_through = self
                .written
                .get(&window)
                .and_then(|m| m.through.get(&partition));
            let before_checkpoint = self
                .done_through
                .get(&partition)
                .is_some_and(|d| offset <= *d);
            let amend = self.amends();
            // done: handled before the checkpoint this run resumed from (or by an amendment
            // written after it). An `amend` view amends a window only once it is closed, so a
            // late event of a window still open at the checkpoint is not done yet.
            let done = amended_through.is_some_and(|t| offset <= *t)
                || (before_checkpoint
                    && (!amend || self.checkpoint_closed.is_some_and(|c| window.end <= c)));
            if amend && (closed || is_late) {
                // never in version 1, which holds the events on time: the same in any replay
                let row = LateRow {
                    batch: rows.batch.slice(i, 1),
                    time,
                    partition,
                    offset,
                    max_before,
                    schema_id: rows.schema_ids[i],
                    done,
                };
                if self.keeps() {
                    if closed {
                        self.take_late(window, row)?;
                    } else {
                        self.late_open.entry(window).or_default().push(row);
                    }
                } else if self.amendments.is_some() {
                    if !done {
                        late.push((i as u32, window, max_before));
                    }
                } else if !done {
                    // a `latest` view cannot amend (refused by the descriptor check)
                    self.counts.late_dropped += 1;
                }
                continue;
            }
            if closed || is_late {
                if !done {
                    late.push((i as u32, window, max_before));
                }
                continue;
            }
            let open = self.open.entry(window).or_default();
            open.take(partition, offset, max_before, rows.schema_ids[i]);
            taken.push((i as u32, window));
        }
        self.counts.taken += taken.len() as u64;
        for (row, window, max_before) in late {
            match self.view.late {
                LatePolicy::Drop => self.counts.late_dropped += 1,
                LatePolicy::Dlq => {
                    self.counts.late_dead_lettered += 1;
                    step.dead_letters.push(row as usize);
                }
                LatePolicy::Amend => {
                    self.counts.late_amended += 1;
                    let i = row as usize;
                    self.amended.entry(window).or_default().take(
                        rows.partitions[i],
                        rows.offsets[i],
                        max_before,
                        rows.schema_ids[i],
                    );
                    if let Some(amendments) = &mut self.amendments {
                        let parts =
                            amendments.add(window, rows.partitions[i], &rows.batch, &[row])?;
                        self.amend_parts.entry(window).or_default().extend(parts);
                    }
                }
            }
        }
        let cut = self.kind.add(rows, &times, &taken)?;
        for (window, parts) in cut {
            step.extend(self.parts(window, 1, parts));
        }
        Ok(step)
    }

    /// Files cut from an open window: to write now, listed in its manifest later.
    fn parts(&mut self, window: Window, version: u32, parts: Vec<Part>) -> Step {
        let label = self.calendar.label(window);
        let dir = self.piece_dir(&label, version);
        let mut step = Step::default();
        for part in parts {
            let put = Put {
                path: format!("{dir}/{}", part.name),
                bytes: part.bytes,
            };
            let file = file_of(&put, part.rows);
            if let Some(open) = self.open.get_mut(&window) {
                open.files.push(file);
            }
            step.puts.push(put);
        }
        step
    }

    /// Closes every open window the watermark has passed at `now`.
    /// Closes the windows the watermark passed: the partition's own, or `floor`, the product's
    /// (which closes the windows of a partition gone idle), whichever is later.
    pub fn advance(&mut self, now: Instant, floor: Option<i64>) -> Result<Step> {
        let mut step = Step::default();
        let Some(watermark) = self.clocks.watermark(now).max(floor) else {
            return Ok(step);
        };
        if self.closed_through.is_some_and(|c| c >= watermark) {
            return Ok(step);
        }
        let due: Vec<Window> = self
            .open
            .keys()
            .filter(|w| w.end <= watermark)
            .copied()
            .collect();
        for window in &due {
            step.extend(self.close(*window, watermark)?);
        }
        self.closed_through = Some(watermark);
        // windows that only late events reached
        let only_late: Vec<Window> = self
            .late_open
            .keys()
            .filter(|w| w.end <= watermark)
            .copied()
            .collect();
        for window in &only_late {
            for row in self.late_open.remove(window).unwrap_or_default() {
                self.take_late(*window, row)?;
            }
        }
        // version 1 of a `latest` window holds the events on time: the late changes of it and
        // the windows before it, known by now, come in its next version, whether or not
        // another late event comes while it is kept
        for window in due.into_iter().chain(only_late) {
            if self.kind.needs_amending(window)? {
                self.dirty.insert(window);
            }
        }
        self.forget_kept();
        Ok(step)
    }

    /// Takes a late event into a closed window an `aggregate` view keeps (or drops it past
    /// `amend_for`).
    fn take_late(&mut self, window: Window, row: LateRow) -> Result<()> {
        let within = self
            .closed_through
            .is_none_or(|c| window.end.saturating_add(self.amend_for) > c);
        if !within {
            if !row.done {
                self.counts.late_dropped += 1;
            }
            return Ok(());
        }
        let kept = self.kept.entry(window).or_default();
        kept.take(row.partition, row.offset, row.max_before, row.schema_id);
        self.kind
            .add_late(&row.batch, window, (row.time, row.partition, row.offset))?;
        if !row.done {
            self.dirty.insert(window);
            self.counts.late_amended += 1;
        }
        Ok(())
    }

    /// Forgets kept windows past `amend_for` with no amendment waiting.
    fn forget_kept(&mut self) {
        let Some(closed) = self.closed_through else {
            return;
        };
        let past: Vec<Window> = self
            .kept
            .keys()
            .filter(|w| w.end.saturating_add(self.amend_for) <= closed && !self.dirty.contains(w))
            .copied()
            .collect();
        for window in past {
            self.kept.remove(&window);
            self.kind.forget(window);
        }
    }

    fn close(&mut self, window: Window, watermark: i64) -> Result<Step> {
        let keep = self.keeps();
        let label = self.calendar.label(window);
        let mut step = Step::default();
        let parts = self.kind.close(window, keep)?;
        step.extend(self.parts(window, 1, parts));
        let Some(mut open) = self.open.remove(&window) else {
            return Ok(step);
        };
        let mut files = std::mem::take(&mut open.files);
        // cut in the order batches brought the partitions, listed in a replay's same order
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let manifest = self.manifest(window, &label, 1, files, &open, watermark);
        step.puts.push(Put {
            path: self.piece_manifest(&label, 1),
            bytes: serde_json::to_vec_pretty(&manifest).map_err(Error::json)?,
        });
        self.last_manifest = Some(self.piece_manifest(&label, 1));
        if self.amends() {
            self.written.insert(window, manifest.clone());
        }
        if keep {
            self.kept.insert(window, open);
            for row in self.late_open.remove(&window).unwrap_or_default() {
                self.take_late(window, row)?;
            }
        }
        step.closed.push(manifest);
        Ok(step)
    }

    fn manifest(
        &self,
        window: Window,
        label: &str,
        version: u32,
        files: Vec<File>,
        open: &Open,
        watermark: i64,
    ) -> Manifest {
        Manifest {
            product: self.product.clone(),
            view: self.view.name.clone(),
            kind: self.view.kind,
            window: label.to_owned(),
            window_start: instant(window.start),
            window_end: instant(window.end),
            time_zone: self.view.time_zone.clone(),
            version,
            rows: files.iter().map(|f| f.rows).sum(),
            files,
            sources: open.sources.iter().map(|(p, (r, _))| (*p, *r)).collect(),
            schema_ids: open.schema_ids.iter().copied().collect(),
            watermark: instant(watermark),
            through: BTreeMap::new(),
            pieces: BTreeMap::new(),
        }
    }

    /// Writes the late rows waiting for an amendment as new versions of their windows.
    pub fn amend(&mut self) -> Result<Step> {
        let mut step = self.amend_kept()?;
        self.forget_kept();
        let Some(amendments) = &mut self.amendments else {
            return Ok(step);
        };
        let mut cut = Vec::new();
        // a window is amended once it is closed (its version 1 written)
        let closed = self.closed_through;
        let due: Vec<Window> = self
            .amended
            .keys()
            .filter(|w| closed.is_some_and(|c| w.end <= c))
            .copied()
            .collect();
        for window in due {
            let mut parts = self.amend_parts.remove(&window).unwrap_or_default();
            parts.extend(amendments.close(window)?);
            cut.push((window, parts));
        }
        for (window, parts) in cut {
            let Some(added) = self.amended.remove(&window) else {
                continue;
            };
            let label = self.calendar.label(window);
            let previous = self.written.get(&window);
            let version = previous.map_or(1, |m| m.version + 1);
            let dir = self.piece_dir(&label, version);
            let mut files = previous.map(|m| m.files.clone()).unwrap_or_default();
            for part in parts {
                let put = Put {
                    path: format!("{dir}/{}", part.name),
                    bytes: part.bytes,
                };
                files.push(file_of(&put, part.rows));
                step.puts.push(put);
            }
            let mut open = Open::default();
            if let Some(previous) = previous {
                for (p, range) in &previous.sources {
                    open.sources.insert(*p, (*range, None));
                }
                open.schema_ids.extend(previous.schema_ids.iter().copied());
            }
            open.merge(added);
            step.extend(self.amendment(window, &label, version, files, &open)?);
        }
        Ok(step)
    }

    /// New versions of the kept windows that took late events: each a whole snapshot again, in a
    /// file named by its contents (a retry after a crash with more events writes another name).
    fn amend_kept(&mut self) -> Result<Step> {
        let mut step = Step::default();
        if self.replaying() {
            // the kept windows' state is not whole again yet: amend once it is
            return Ok(step);
        }
        let dirty = std::mem::take(&mut self.dirty);
        let files = self.kind.amend(&dirty)?;
        for (window, file) in files {
            let (Some((bytes, rows)), Some(open)) = (file.finish()?, self.kept.get(&window)) else {
                continue;
            };
            let label = self.calendar.label(window);
            let version = self.written.get(&window).map_or(1, |m| m.version + 1);
            let dir = self.piece_dir(&label, version);
            let put = Put::named_by_contents(&dir, bytes);
            let files = vec![file_of(&put, rows)];
            step.puts.push(put);
            let open = open.clone();
            step.extend(self.amendment(window, &label, version, files, &open)?);
        }
        Ok(step)
    }

    /// The manifest of an amendment: written last, remembered with the offsets it took in.
    fn amendment(
        &mut self,
        window: Window,
        label: &str,
        version: u32,
        files: Vec<File>,
        open: &Open,
    ) -> Result<Step> {
        let watermark = self.closed_through.unwrap_or(window.end);
        let mut manifest = self.manifest(window, label, version, files, open, watermark);
        manifest.through = self.taken_through.clone();
        let put = Put {
            path: self.piece_manifest(label, version),
            bytes: serde_json::to_vec_pretty(&manifest).map_err(Error::json)?,
        };
        self.written.insert(window, manifest.clone());
        Ok(Step {
            puts: vec![put],
            dead_letters: Vec::new(),
            closed: vec![manifest],
        })
    }

    /// Where this view resumes, as of the rows taken so far (after [`ViewRunner::amend`] and
    /// once every put and dead letter of the steps before is done).
    pub fn progress(&self) -> ViewProgress {
        let mut partitions = BTreeMap::new();
        for (&partition, &taken) in &self.taken_through {
            let late: Vec<(SourceRange, Option<i64>)> = self
                .late_open
                .values()
                .flatten()
                .filter(|r| r.partition == partition)
                .map(|r| {
                    let range = SourceRange {
                        first_offset: r.offset,
                        last_offset: r.offset,
                        events: 1,
                    };
                    (range, r.max_before)
                })
                .collect();
            let oldest_open = self
                .open
                .values()
                .chain(self.kept.values())
                .chain(self.amended.values())
                .filter_map(|o| o.sources.get(&partition))
                .chain(late.iter())
                .min_by_key(|(range, _)| range.first_offset);
            let (resume_from, max_event) = match oldest_open {
                Some((range, max_before)) => (range.first_offset, *max_before),
                None => (taken + 1, self.clocks.max_event(partition)),
            };
            partitions.insert(
                partition,
                PartitionProgress {
                    resume_from,
                    max_event,
                    done_through: taken,
                },
            );
        }
        for (&partition, &skip) in &self.skip_before {
            partitions.entry(partition).or_insert(PartitionProgress {
                resume_from: skip,
                max_event: self.clocks.max_event(partition),
                done_through: skip - 1,
            });
        }
        ViewProgress {
            closed_through: self.closed_through,
            last_manifest: self.last_manifest.clone(),
            partitions,
            watermark: None,
            idle: false,
        }
    }

    /// Windows ending at or before this instant (epoch ms) are closed.
    pub fn closed_through(&self) -> Option<i64> {
        self.closed_through
    }

    /// The partition's own watermark and whether it is idle at `now`, for the product's
    /// watermark.
    pub fn clock(&self, now: Instant) -> (Option<i64>, bool) {
        self.clocks.state(now)[0]
    }
}

impl Open {
    fn take(&mut self, partition: i32, offset: i64, max_before: Option<i64>, schema_id: u32) {
        let (range, _) = self.sources.entry(partition).or_insert((
            SourceRange {
                first_offset: offset,
                last_offset: offset,
                events: 0,
            },
            max_before,
        ));
        range.first_offset = range.first_offset.min(offset);
        range.last_offset = range.last_offset.max(offset);
        range.events += 1;
        self.schema_ids.insert(schema_id);
    }

    fn merge(&mut self, other: Open) {
        for (p, (r, _)) in other.sources {
            let (range, _) = self.sources.entry(p).or_insert((
                SourceRange {
                    first_offset: r.first_offset,
                    last_offset: r.last_offset,
                    events: 0,
                },
                None,
            ));
            range.first_offset = range.first_offset.min(r.first_offset);
            range.last_offset = range.last_offset.max(r.last_offset);
            range.events += r.events;
        }
        self.schema_ids.extend(other.schema_ids);
    }
}

/// A late event waiting for its window to close.
#[derive(Debug, Clone)]
struct LateRow {
    batch: RecordBatch,
    time: i64,
    partition: i32,
    offset: i64,
    max_before: Option<i64>,
    schema_id: u32,
    done: bool,
}

pub(crate) fn file_of(put: &Put, rows: u64) -> File {
    let digest = Sha256::digest(&put.bytes);
    File {
        path: put.path.clone(),
        rows,
        bytes: put.bytes.len() as u64,
        sha256: digest.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

pub(crate) fn instant(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

pub(crate) fn parse_instant(text: &str) -> Result<i64> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_millis())
        .map_err(|e| Error::Unexpected(format!("`{text}` in a manifest is not a time: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::testing;

    fn runner(
        descriptor: &str,
        progress: Option<&ViewProgress>,
    ) -> (ViewRunner, tempfile::TempDir) {
        let view: View = serde_norway::from_str(descriptor).unwrap();
        let schema = testing::schema();
        let dir = tempfile::tempdir().unwrap();
        let spill = Spill::new(dir.path(), 1_000);
        let runner = ViewRunner::new(
            "player.play-events",
            &view,
            schema,
            0,
            100,
            &spill,
            progress,
        )
        .unwrap();
        (runner, dir)
    }

    fn step(runner: &mut ViewRunner, plays: &[testing::Play<'_>]) -> Step {
        runner.step(&testing::rows(plays)).unwrap()
    }

    const EVENTS: &str = "{name: all, kind: events, window: minute}";

    #[test]
    fn a_window_closes_once_the_watermark_passes_it_files_first_then_its_manifest() {
        let (mut runner, _dir) = runner(EVENTS, None);
        let now = Instant::now();
        let taken = step(&mut runner, &[(0, 0, 1_000, "a"), (0, 1, 2_000, "b")]);
        assert!(taken.puts.is_empty() && taken.closed.is_empty());
        assert!(
            runner.advance(now, None).unwrap().closed.is_empty(),
            "the minute is still open"
        );

        step(&mut runner, &[(0, 2, 61_000, "c")]);
        let closed = runner.advance(now, None).unwrap();
        assert_eq!(closed.closed.len(), 1);
        let manifest = &closed.closed[0];
        assert_eq!(
            (
                manifest.version,
                manifest.rows,
                manifest.window_start.as_str()
            ),
            (1, 2, "1970-01-01T00:00:00.000Z")
        );
        assert_eq!(manifest.sources[&0].first_offset, 0);
        assert_eq!(manifest.sources[&0].last_offset, 1);
        let paths: Vec<&str> = closed.puts.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths.len(), 2);
        assert!(paths[0].ends_with(".parquet"), "{paths:?}");
        assert!(
            paths[1].ends_with("manifest.json"),
            "the manifest is written last: {paths:?}"
        );
        assert_eq!(manifest.files[0].path, paths[0]);
    }

    #[test]
    fn late_events_are_dead_lettered_or_dropped_as_the_view_says() {
        for (late, dead_lettered, dropped) in [("dlq", 1, 0), ("drop", 0, 1)] {
            let descriptor = format!("{{name: all, kind: events, window: minute, late: {late}}}");
            let (mut runner, _dir) = runner(&descriptor, None);
            step(&mut runner, &[(0, 0, 1_000, "a"), (0, 1, 61_000, "b")]);
            runner.advance(Instant::now(), None).unwrap();
            let late_step = step(&mut runner, &[(0, 2, 5_000, "late")]);
            assert_eq!(late_step.dead_letters.len(), dead_lettered, "{late}");
            assert_eq!(runner.counts.late_dead_lettered, dead_lettered as u64);
            assert_eq!(runner.counts.late_dropped, dropped);
            assert_eq!(runner.counts.taken, 2);
        }
    }

    #[test]
    fn progress_resumes_from_the_oldest_open_window_and_skips_what_is_done() {
        let (mut runner, _dir) = runner(EVENTS, None);
        step(
            &mut runner,
            &[(0, 0, 1_000, "a"), (0, 1, 61_000, "b"), (0, 2, 62_000, "c")],
        );
        runner.advance(Instant::now(), None).unwrap();
        let progress = runner.progress();
        let partition = progress.partitions[&0];
        // the first minute is written; the second is open from offset 1
        assert_eq!((partition.resume_from, partition.done_through), (1, 2));
        // windows are closed through the watermark: the newest event time, no lateness allowed
        assert_eq!(progress.closed_through, Some(62_000));

        // a restart re-reads from offset 1 and takes nothing twice
        let (mut restarted, _dir) = runner_from(&progress);
        step(&mut restarted, &[(0, 1, 61_000, "b"), (0, 2, 62_000, "c")]);
        step(&mut restarted, &[(0, 3, 121_000, "d")]);
        let closed = restarted.advance(Instant::now(), None).unwrap().closed;
        assert_eq!(closed.len(), 1);
        assert_eq!(
            (closed[0].window_start.as_str(), closed[0].rows),
            ("1970-01-01T00:01:00.000Z", 2)
        );
    }

    fn runner_from(progress: &ViewProgress) -> (ViewRunner, tempfile::TempDir) {
        runner(EVENTS, Some(progress))
    }

    #[test]
    fn a_view_over_a_missing_time_field_says_which() {
        let view: View =
            serde_norway::from_str("{name: all, kind: events, window: minute, time_field: nope}")
                .unwrap();
        let schema = testing::schema();
        let spill = Spill::new(std::env::temp_dir(), 1);
        let error = ViewRunner::new("p.q", &view, schema, 0, 1, &spill, None).unwrap_err();
        assert!(error.to_string().contains("time field `nope`"), "{error}");
    }
}
