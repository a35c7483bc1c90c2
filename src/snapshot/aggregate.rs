//! `aggregate` views: per window, rows grouped by the view's key fields with count, sum, min,
//! max and distinct count. Keys, minima and maxima are kept in Arrow's row format, which orders
//! like the values, so every Avro type groups and compares; the output is sorted by key.
//!
//! Past the view's budget of groups, the groups of the open windows spill to local disk as runs
//! sorted by key; a window's snapshot merges its runs with the groups still in memory. The rows
//! are the same spilled or not, except that a `sum` of floating-point numbers may differ in its
//! last bits (the partial sums add up in another order).
//!
//! A source partition's piece of a window holds its groups' states (the layout of a run: the
//! key, then each aggregation's state, sorted by key), not their values: the commit step adds
//! the pieces of every partition up ([`Aggregate::add_piece`]) and writes the values.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    hash::{Hash, Hasher},
    sync::Arc,
};

use arrow_array::{
    builder::{BinaryBuilder, Float64Builder, Int64Builder, ListBuilder, UInt64Builder},
    cast::AsArray,
    new_null_array,
    types::{Float64Type, Int64Type, UInt64Type},
    Array, ArrayRef, Float64Array, Int64Array, RecordBatch,
};
use arrow_row::{RowConverter, Rows, SortField};
use arrow_schema::{DataType, Field, Schema, SchemaRef};

use super::{
    spill::{Run, Spill, CHUNK},
    window::Window,
    Error, Result,
};
use crate::product::{AggregateFunction, View};

#[derive(Debug)]
enum How {
    Count,
    SumInt(usize),
    SumFloat(usize),
    Min(usize, RowConverter, Box<[u8]>),
    Max(usize, RowConverter, Box<[u8]>),
    Distinct(usize, RowConverter),
}

#[derive(Debug)]
struct Spec {
    name: String,
    how: How,
}

#[derive(Debug, Clone)]
enum Acc {
    Count(i64),
    SumInt(Option<i64>),
    SumFloat(Option<f64>),
    Min(Option<Box<[u8]>>),
    Max(Option<Box<[u8]>>),
    Distinct(HashSet<u64>),
}

/// Per-batch inputs of one aggregation.
enum Input<'a> {
    None,
    Int(Int64Array),
    Float(Float64Array),
    Rows(Rows, &'a dyn Array),
}

/// A group: its key (in row format) and the state of each aggregation.
type Group = (Box<[u8]>, Vec<Acc>);

/// The groups of one window: in memory, and spilled runs sorted by key.
#[derive(Debug, Default)]
struct Groups {
    memory: HashMap<Box<[u8]>, Vec<Acc>>,
    runs: Vec<Run>,
}

/// The groups of the open windows.
#[derive(Debug)]
pub(super) struct Aggregate {
    keys: Vec<(usize, Field)>,
    key_rows: RowConverter,
    specs: Vec<Spec>,
    windows: BTreeMap<Window, Groups>,
    spill: Spill,
    /// The columns of a spilled run: the key, then each aggregation's state.
    run_schema: SchemaRef,
    /// Whether windows are written as the groups' states (a partition's pieces) rather than
    /// their values.
    states: bool,
}

fn column(schema: &Schema, view: &View, name: &str) -> Result<usize> {
    schema.index_of(name).map_err(|_| Error::View {
        view: view.name.clone(),
        message: format!("`{name}` is not a column of the product's schema"),
    })
}

impl Aggregate {
    /// The aggregations of `view` over rows of `schema`, spilling past `spill`'s budget.
    pub(super) fn new(view: &View, schema: &Schema, spill: Spill) -> Result<Self> {
        let mut keys = Vec::new();
        for key in &view.key {
            let i = column(schema, view, key)?;
            keys.push((i, schema.field(i).clone()));
        }
        let key_rows = RowConverter::new(
            keys.iter()
                .map(|(_, f)| SortField::new(f.data_type().clone()))
                .collect(),
        )
        .map_err(Error::arrow)?;
        let mut specs = Vec::new();
        for aggregation in &view.aggregations {
            let field = match (&aggregation.field, aggregation.function) {
                (_, AggregateFunction::Count) => None,
                (Some(field), _) => Some(column(schema, view, field)?),
                (None, f) => {
                    return Err(Error::View {
                        view: view.name.clone(),
                        message: format!(
                            "aggregation `{}` ({f:?}) needs a `field`",
                            aggregation.name
                        ),
                    })
                }
            };
            let converter = |i: usize| -> Result<(RowConverter, Box<[u8]>)> {
                let data_type = schema.field(i).data_type().clone();
                let converter = RowConverter::new(vec![SortField::new(data_type.clone())])
                    .map_err(Error::arrow)?;
                let null = converter
                    .convert_columns(&[new_null_array(&data_type, 1)])
                    .map_err(Error::arrow)?;
                let null = null.row(0).as_ref().into();
                Ok((converter, null))
            };
            let how = match (aggregation.function, field) {
                (AggregateFunction::Count, _) | (_, None) => How::Count,
                (AggregateFunction::Sum, Some(i)) => match schema.field(i).data_type() {
                    t if t.is_integer() => How::SumInt(i),
                    t if t.is_floating()
                        || matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..)) =>
                    {
                        How::SumFloat(i)
                    }
                    t => {
                        return Err(Error::View {
                            view: view.name.clone(),
                            message: format!(
                                "aggregation `{}` sums `{}`, of type {t}; sum a number field",
                                aggregation.name,
                                schema.field(i).name()
                            ),
                        })
                    }
                },
                (AggregateFunction::Min, Some(i)) => {
                    let (c, null) = converter(i)?;
                    How::Min(i, c, null)
                }
                (AggregateFunction::Max, Some(i)) => {
                    let (c, null) = converter(i)?;
                    How::Max(i, c, null)
                }
                (AggregateFunction::DistinctCount, Some(i)) => How::Distinct(i, converter(i)?.0),
            };
            specs.push(Spec {
                name: aggregation.name.clone(),
                how,
            });
        }
        let mut run_fields = vec![Field::new("key", DataType::Binary, false)];
        for (n, spec) in specs.iter().enumerate() {
            let name = format!("a{n}");
            run_fields.push(match spec.how {
                How::Count => Field::new(name, DataType::Int64, false),
                How::SumInt(_) => Field::new(name, DataType::Int64, true),
                How::SumFloat(_) => Field::new(name, DataType::Float64, true),
                How::Min(..) | How::Max(..) => Field::new(name, DataType::Binary, true),
                How::Distinct(..) => Field::new(
                    name,
                    DataType::List(Arc::new(Field::new_list_field(DataType::UInt64, true))),
                    false,
                ),
            });
        }
        Ok(Self {
            keys,
            key_rows,
            specs,
            windows: BTreeMap::new(),
            spill,
            run_schema: Arc::new(Schema::new(run_fields)),
            states: false,
        })
    }

    /// Writes windows as their groups' states (the pieces of a source partition).
    pub(super) fn writing_states(mut self) -> Self {
        self.states = true;
        self
    }

    /// Adds a piece of `window` (the groups' states a partition wrote) to its groups.
    pub(super) fn add_piece(&mut self, window: Window, batch: &RecordBatch) -> Result<()> {
        let groups = &mut self.windows.entry(window).or_default().memory;
        for (key, accs) in decode_run(&self.specs, batch)? {
            match groups.get_mut(&key) {
                Some(held) => held.iter_mut().zip(accs).for_each(|(a, o)| a.merge(o)),
                None => {
                    groups.insert(key, accs);
                }
            }
        }
        if self.groups() > self.spill.max_rows() {
            self.spill_groups()?;
        }
        Ok(())
    }

    /// Groups held in memory in all open windows.
    pub(super) fn groups(&self) -> usize {
        self.windows.values().map(|g| g.memory.len()).sum()
    }

    /// Groups spilled to disk (a group spilled twice counts twice).
    pub(super) fn spilled(&self) -> usize {
        self.windows
            .values()
            .flat_map(|g| &g.runs)
            .map(Run::rows)
            .sum()
    }

    /// Adds rows of `batch`, each with its window.
    pub(super) fn add(&mut self, batch: &RecordBatch, rows: &[(u32, Window)]) -> Result<()> {
        let key_columns: Vec<ArrayRef> = self
            .keys
            .iter()
            .map(|(i, _)| batch.column(*i).clone())
            .collect();
        let keys = self
            .key_rows
            .convert_columns(&key_columns)
            .map_err(Error::arrow)?;
        let mut inputs = Vec::with_capacity(self.specs.len());
        for spec in &self.specs {
            inputs.push(match &spec.how {
                How::Count => Input::None,
                How::SumInt(i) => Input::Int(cast(batch.column(*i), &DataType::Int64)?),
                How::SumFloat(i) => Input::Float(cast(batch.column(*i), &DataType::Float64)?),
                How::Min(i, c, _) | How::Max(i, c, _) | How::Distinct(i, c) => Input::Rows(
                    c.convert_columns(&[batch.column(*i).clone()])
                        .map_err(Error::arrow)?,
                    batch.column(*i).as_ref(),
                ),
            });
        }
        for &(row, window) in rows {
            let row = row as usize;
            let groups = &mut self.windows.entry(window).or_default().memory;
            let key = keys.row(row);
            let accs = match groups.get_mut(key.as_ref()) {
                Some(accs) => accs,
                None => groups
                    .entry(key.as_ref().into())
                    .or_insert_with(|| self.specs.iter().map(|s| s.how.start()).collect()),
            };
            for (acc, input) in accs.iter_mut().zip(&inputs) {
                acc.add(input, row);
            }
        }
        if self.groups() > self.spill.max_rows() {
            self.spill_groups()?;
        }
        Ok(())
    }

    /// Moves every window's groups in memory to a run of its own.
    fn spill_groups(&mut self) -> Result<()> {
        let mut windows = std::mem::take(&mut self.windows);
        let spilled = windows
            .values_mut()
            .try_for_each(|groups| self.spill_window(groups));
        self.windows = windows;
        spilled
    }

    fn spill_window(&self, groups: &mut Groups) -> Result<()> {
        if groups.memory.is_empty() {
            return Ok(());
        }
        let memory = std::mem::take(&mut groups.memory);
        let mut sorted: Vec<Group> = memory.into_iter().collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut run = self.spill.writer(&self.run_schema)?;
        for chunk in sorted.chunks(CHUNK) {
            run.write(&self.encode_run(&refs(chunk))?)?;
        }
        groups.runs.push(run.finish()?);
        Ok(())
    }

    /// Groups as rows of a run.
    fn encode_run(&self, groups: &[(&[u8], &[Acc])]) -> Result<RecordBatch> {
        let mut columns: Vec<ArrayRef> = vec![Arc::new(
            arrow_array::BinaryArray::from_iter_values(groups.iter().map(|(k, _)| *k)),
        )];
        for (n, spec) in self.specs.iter().enumerate() {
            let accs = groups.iter().map(|(_, a)| &a[n]);
            columns.push(match spec.how {
                How::Count | How::SumInt(_) => {
                    let mut b = Int64Builder::with_capacity(groups.len());
                    for acc in accs {
                        b.append_option(match acc {
                            Acc::Count(c) => Some(*c),
                            Acc::SumInt(s) => *s,
                            _ => None,
                        });
                    }
                    Arc::new(b.finish())
                }
                How::SumFloat(_) => {
                    let mut b = Float64Builder::with_capacity(groups.len());
                    for acc in accs {
                        b.append_option(if let Acc::SumFloat(s) = acc { *s } else { None });
                    }
                    Arc::new(b.finish())
                }
                How::Min(..) | How::Max(..) => {
                    let mut b = BinaryBuilder::new();
                    for acc in accs {
                        b.append_option(match acc {
                            Acc::Min(v) | Acc::Max(v) => v.as_deref(),
                            _ => None,
                        });
                    }
                    Arc::new(b.finish())
                }
                How::Distinct(..) => {
                    let mut b = ListBuilder::new(UInt64Builder::new());
                    for acc in accs {
                        if let Acc::Distinct(set) = acc {
                            // sorted: a run's bytes do not depend on hash order
                            let mut values: Vec<u64> = set.iter().copied().collect();
                            values.sort_unstable();
                            b.values().append_slice(&values);
                        }
                        b.append(true);
                    }
                    Arc::new(b.finish())
                }
            });
        }
        RecordBatch::try_new(self.run_schema.clone(), columns).map_err(Error::arrow)
    }

    /// Writes the rows of `window`, sorted by key, to `out` in chunks of [`CHUNK`] rows, and
    /// forgets its groups; `false` if it has none.
    pub(super) fn close(
        &mut self,
        window: Window,
        out: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<bool> {
        let any = self.snapshot(window, out)?;
        self.remove(window);
        Ok(any)
    }

    /// Forgets the groups of `window`.
    pub(super) fn remove(&mut self, window: Window) {
        self.windows.remove(&window);
    }

    /// Writes the rows of `window` as they stand, sorted by key, to `out` in chunks of
    /// [`CHUNK`] rows, keeping its groups (an `amend` view adds late events to them); `false`
    /// if it has none.
    pub(super) fn snapshot(
        &self,
        window: Window,
        out: &mut dyn FnMut(RecordBatch) -> Result<()>,
    ) -> Result<bool> {
        let Some(groups) = self.windows.get(&window) else {
            return Ok(false);
        };
        let mut memory: Vec<(&[u8], &[Acc])> = groups
            .memory
            .iter()
            .map(|(k, a)| (k.as_ref(), a.as_slice()))
            .collect();
        memory.sort_unstable_by(|a, b| a.0.cmp(b.0));
        if groups.runs.is_empty() {
            for chunk in memory.chunks(CHUNK) {
                out(self.build(chunk)?)?;
            }
            return Ok(!memory.is_empty());
        }
        // a k-way merge of the runs and the groups in memory, each sorted by key
        let mut cursors = Vec::new();
        for run in &groups.runs {
            cursors.push(Cursor {
                chunks: Box::new(run.read()?),
                groups: Vec::new(),
                at: 0,
            });
        }
        let mut at_memory = 0;
        let mut pending: Vec<Group> = Vec::with_capacity(CHUNK);
        let mut any = false;
        loop {
            for cursor in &mut cursors {
                cursor.fill(self)?;
            }
            let smallest = cursors
                .iter()
                .filter_map(Cursor::key)
                .chain(memory.get(at_memory).map(|(k, _)| *k))
                .min()
                .map(Box::<[u8]>::from);
            let Some(key) = smallest else {
                break;
            };
            let mut accs: Option<Vec<Acc>> = None;
            let mut merge = |other: Vec<Acc>| match &mut accs {
                Some(accs) => accs.iter_mut().zip(other).for_each(|(a, o)| a.merge(o)),
                None => accs = Some(other),
            };
            for cursor in &mut cursors {
                if cursor.key() == Some(key.as_ref()) {
                    merge(cursor.take());
                }
            }
            if let Some((k, a)) = memory.get(at_memory) {
                if *k == key.as_ref() {
                    merge(a.to_vec());
                    at_memory += 1;
                }
            }
            if let Some(accs) = accs {
                pending.push((key, accs));
            }
            if pending.len() == CHUNK {
                out(self.build_owned(&pending)?)?;
                pending.clear();
                any = true;
            }
        }
        if !pending.is_empty() {
            out(self.build_owned(&pending)?)?;
            any = true;
        }
        Ok(any)
    }

    fn build_owned(&self, groups: &[Group]) -> Result<RecordBatch> {
        self.build(&refs(groups))
    }

    /// What a window writes of `groups`, in their order: their values, or their states.
    fn build(&self, groups: &[(&[u8], &[Acc])]) -> Result<RecordBatch> {
        if self.states {
            self.encode_run(groups)
        } else {
            self.values(groups)
        }
    }

    /// The output rows of `groups`, in their order.
    fn values(&self, groups: &[(&[u8], &[Acc])]) -> Result<RecordBatch> {
        let parser = self.key_rows.parser();
        let mut columns = self
            .key_rows
            .convert_rows(groups.iter().map(|(k, _)| parser.parse(k)))
            .map_err(Error::arrow)?;
        let mut fields: Vec<Field> = self
            .keys
            .iter()
            .zip(&columns)
            .map(|((_, f), c)| Field::new(f.name(), c.data_type().clone(), true))
            .collect();
        for (n, spec) in self.specs.iter().enumerate() {
            let accs = groups.iter().map(|(_, a)| &a[n]);
            let column: ArrayRef = match &spec.how {
                How::Count => Arc::new(Int64Array::from_iter_values(accs.map(|a| {
                    if let Acc::Count(c) = a {
                        *c
                    } else {
                        0
                    }
                }))),
                How::SumInt(_) => Arc::new(Int64Array::from_iter(accs.map(|a| {
                    if let Acc::SumInt(s) = a {
                        *s
                    } else {
                        None
                    }
                }))),
                How::SumFloat(_) => Arc::new(Float64Array::from_iter(accs.map(|a| {
                    if let Acc::SumFloat(s) = a {
                        *s
                    } else {
                        None
                    }
                }))),
                How::Min(_, c, null) | How::Max(_, c, null) => {
                    let parser = c.parser();
                    let values: Vec<&[u8]> = accs
                        .map(|a| match a {
                            Acc::Min(Some(v)) | Acc::Max(Some(v)) => v.as_ref(),
                            _ => null.as_ref(),
                        })
                        .collect();
                    let mut out = c
                        .convert_rows(values.into_iter().map(|v| parser.parse(v)))
                        .map_err(Error::arrow)?;
                    out.pop()
                        .ok_or_else(|| Error::Unexpected("no min/max column".into()))?
                }
                How::Distinct(..) => Arc::new(Int64Array::from_iter_values(accs.map(|a| {
                    if let Acc::Distinct(set) = a {
                        set.len() as i64
                    } else {
                        0
                    }
                }))),
            };
            fields.push(Field::new(&spec.name, column.data_type().clone(), true));
            columns.push(column);
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(Error::arrow)
    }
}

impl How {
    fn start(&self) -> Acc {
        match self {
            How::Count => Acc::Count(0),
            How::SumInt(_) => Acc::SumInt(None),
            How::SumFloat(_) => Acc::SumFloat(None),
            How::Min(..) => Acc::Min(None),
            How::Max(..) => Acc::Max(None),
            How::Distinct(..) => Acc::Distinct(HashSet::new()),
        }
    }
}

/// A run read a chunk at a time.
struct Cursor<'a> {
    chunks: Box<dyn Iterator<Item = Result<RecordBatch>> + 'a>,
    groups: Vec<Group>,
    at: usize,
}

impl Cursor<'_> {
    /// Reads the next chunk when this one is done.
    fn fill(&mut self, aggregate: &Aggregate) -> Result<()> {
        while self.at == self.groups.len() {
            match self.chunks.next() {
                Some(chunk) => {
                    self.groups = decode_run(&aggregate.specs, &chunk?)?;
                    self.at = 0;
                }
                None => return Ok(()),
            }
        }
        Ok(())
    }

    fn key(&self) -> Option<&[u8]> {
        self.groups.get(self.at).map(|(k, _)| k.as_ref())
    }

    fn take(&mut self) -> Vec<Acc> {
        let accs = std::mem::take(&mut self.groups[self.at].1);
        self.at += 1;
        accs
    }
}

impl Acc {
    /// Adds the state of the same group from elsewhere (a spilled run).
    fn merge(&mut self, other: Acc) {
        match (self, other) {
            (Acc::Count(a), Acc::Count(b)) => *a += b,
            (Acc::SumInt(a), Acc::SumInt(b)) => {
                *a = match (*a, b) {
                    (Some(a), Some(b)) => Some(a.saturating_add(b)),
                    (a, b) => a.or(b),
                }
            }
            (Acc::SumFloat(a), Acc::SumFloat(b)) => {
                *a = match (*a, b) {
                    (Some(a), Some(b)) => Some(a + b),
                    (a, b) => a.or(b),
                }
            }
            (Acc::Min(a), Acc::Min(Some(b))) if a.as_deref().is_none_or(|a| b.as_ref() < a) => {
                *a = Some(b);
            }
            (Acc::Max(a), Acc::Max(Some(b))) if a.as_deref().is_none_or(|a| b.as_ref() > a) => {
                *a = Some(b);
            }
            (Acc::Distinct(a), Acc::Distinct(b)) => a.extend(b),
            _ => {}
        }
    }

    fn add(&mut self, input: &Input<'_>, row: usize) {
        match (self, input) {
            (Acc::Count(c), _) => *c += 1,
            (Acc::SumInt(s), Input::Int(values)) if values.is_valid(row) => {
                *s = Some(s.unwrap_or(0).saturating_add(values.value(row)));
            }
            (Acc::SumFloat(s), Input::Float(values)) if values.is_valid(row) => {
                *s = Some(s.unwrap_or(0.0) + values.value(row));
            }
            (Acc::Min(m), Input::Rows(rows, array)) if array.is_valid(row) => {
                let v = rows.row(row);
                if m.as_deref().is_none_or(|m| v.as_ref() < m) {
                    *m = Some(v.as_ref().into());
                }
            }
            (Acc::Max(m), Input::Rows(rows, array)) if array.is_valid(row) => {
                let v = rows.row(row);
                if m.as_deref().is_none_or(|m| v.as_ref() > m) {
                    *m = Some(v.as_ref().into());
                }
            }
            (Acc::Distinct(set), Input::Rows(rows, array)) if array.is_valid(row) => {
                let mut hasher = std::hash::DefaultHasher::new();
                rows.row(row).as_ref().hash(&mut hasher);
                set.insert(hasher.finish());
            }
            _ => {}
        }
    }
}

/// Rows of a run (or a piece) of aggregations `specs` as groups.
fn decode_run(specs: &[Spec], batch: &RecordBatch) -> Result<Vec<Group>> {
    let wrong = || Error::Unexpected("a spilled run of another layout".into());
    let keys = batch.column(0).as_binary_opt::<i32>().ok_or_else(wrong)?;
    let mut out: Vec<Group> = (0..batch.num_rows())
        .map(|i| (Box::from(keys.value(i)), Vec::with_capacity(specs.len())))
        .collect();
    for (n, spec) in specs.iter().enumerate() {
        let column = batch.column(n + 1);
        for (i, (_, accs)) in out.iter_mut().enumerate() {
            let valid = column.is_valid(i);
            accs.push(match spec.how {
                How::Count => Acc::Count(
                    column
                        .as_primitive_opt::<Int64Type>()
                        .ok_or_else(wrong)?
                        .value(i),
                ),
                How::SumInt(_) => Acc::SumInt(
                    valid
                        .then(|| column.as_primitive_opt::<Int64Type>().map(|c| c.value(i)))
                        .flatten(),
                ),
                How::SumFloat(_) => Acc::SumFloat(
                    valid
                        .then(|| column.as_primitive_opt::<Float64Type>().map(|c| c.value(i)))
                        .flatten(),
                ),
                How::Min(..) | How::Max(..) => {
                    let value = valid
                        .then(|| column.as_binary_opt::<i32>().map(|c| Box::from(c.value(i))))
                        .flatten();
                    if matches!(spec.how, How::Min(..)) {
                        Acc::Min(value)
                    } else {
                        Acc::Max(value)
                    }
                }
                How::Distinct(..) => {
                    let list = column.as_list_opt::<i32>().ok_or_else(wrong)?.value(i);
                    let values = list.as_primitive_opt::<UInt64Type>().ok_or_else(wrong)?;
                    Acc::Distinct(values.values().iter().copied().collect())
                }
            });
        }
    }
    Ok(out)
}

/// Groups as references.
fn refs(groups: &[Group]) -> Vec<(&[u8], &[Acc])> {
    groups
        .iter()
        .map(|(k, a)| (k.as_ref(), a.as_slice()))
        .collect()
}

fn cast<T: Array + Clone + 'static>(array: &ArrayRef, to: &DataType) -> Result<T> {
    let cast = arrow_cast::cast(array, to).map_err(Error::arrow)?;
    cast.as_any()
        .downcast_ref::<T>()
        .cloned()
        .ok_or_else(|| Error::Unexpected(format!("cast to {to} gave another type")))
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
    use arrow_array::StringArray;

    /// Plays of `users` users over `tracks` tracks, `n` of them, from `first` on.
    fn plays(first: usize, n: usize, users: usize, tracks: usize) -> RecordBatch {
        let schema = PlayEvent::get_schema();
        let json = serde_json::to_string(&schema).unwrap();
        let mut decoding = Decoding::new(&json, &[(1, json.clone())], n).unwrap();
        let writer = GenericDatumWriter::builder(&schema).build().unwrap();
        for i in first..first + n {
            let event = PlayEvent {
                play_id: format!("p{i}"),
                user_id: format!("u{}", (i * 7) % users),
                track_id: format!("t{}", (i * 13) % tracks),
                artist_id: "a".into(),
                device: Device::Web,
                country: "SE".into(),
                started_at: 1_000,
                duration_ms: i as i64,
                completed: true,
                context: None,
            };
            let payload = wire::encode(1, &writer.write_ser_to_vec(&event).unwrap());
            decoding
                .push(0, i as i64, Some(1_000), None, &payload)
                .unwrap();
        }
        decoding.finish().unwrap().unwrap().batch
    }

    fn snapshot(aggregate: &Aggregate, window: Window) -> RecordBatch {
        let mut chunks = Vec::new();
        let any = aggregate
            .snapshot(window, &mut |c| {
                assert!(c.num_rows() <= CHUNK);
                chunks.push(c);
                Ok(())
            })
            .unwrap();
        assert!(any);
        arrow_select::concat::concat_batches(&chunks[0].schema(), &chunks).unwrap()
    }

    #[test]
    fn groups_spilled_past_the_budget_give_the_same_rows_as_groups_held() {
        let view: View = serde_norway::from_str(
            "name: per-user
kind: aggregate
window: minute
key: [user_id]
aggregations:
  - {name: plays, function: count}
  - {name: listened, function: sum, field: duration_ms}
  - {name: first_track, function: min, field: track_id}
  - {name: last_track, function: max, field: track_id}
  - {name: tracks, function: distinct_count, field: track_id}
",
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let (w0, w1) = (
            Window {
                start: 0,
                end: 60_000,
            },
            Window {
                start: 60_000,
                end: 120_000,
            },
        );
        let batches: Vec<RecordBatch> =
            (0..6).map(|b| plays(b * 5_000, 5_000, 9_000, 40)).collect();
        let run = |budget: usize| {
            let schema = batches[0].schema();
            let mut aggregate =
                Aggregate::new(&view, &schema, Spill::new(dir.path(), budget)).unwrap();
            let mut most = 0;
            for (b, batch) in batches.iter().enumerate() {
                let window = if b % 2 == 0 { w0 } else { w1 };
                let rows: Vec<(u32, Window)> =
                    (0..batch.num_rows() as u32).map(|r| (r, window)).collect();
                aggregate.add(batch, &rows).unwrap();
                most = most.max(aggregate.groups());
            }
            let out = (snapshot(&aggregate, w0), snapshot(&aggregate, w1));
            (out, most, aggregate.spilled())
        };
        let (held, most_held, none) = run(1_000_000);
        let (spilled, most_spilled, some) = run(2_000);
        assert_eq!(none, 0);
        assert!(some > 0, "the small budget spills");
        assert!(most_held > 9_000);
        assert!(
            most_spilled <= 2_000 + 5_000,
            "memory stays within the budget plus a batch"
        );
        assert_eq!(held, spilled, "the same rows spilled or not");
        let users = held
            .0
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .unwrap();
        assert_eq!(held.0.num_rows(), 7_000, "every user of window 0, once");
        assert!(
            (1..users.len()).all(|i| users.value(i - 1) < users.value(i)),
            "sorted by key"
        );
        // window 0 has plays 0..5000, 10000..15000 and 20000..25000; user u0 plays at i = 0
        // only, user u1 at i = 14143 and 23143 (7 i = 1 mod 9000)
        let plays = held.0.column(1).as_primitive::<Int64Type>();
        let listened = held.0.column(2).as_primitive::<Int64Type>();
        assert_eq!((plays.value(0), listened.value(0)), (1, 0));
        assert_eq!(users.value(1), "u1");
        assert_eq!((plays.value(1), listened.value(1)), (2, 14_143 + 23_143));
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "runs removed"
        );
    }
}
