//! `aggregate` views: per window, rows grouped by the view's key fields with count, sum, min,
//! max and distinct count. Keys, minima and maxima are kept in Arrow's row format, which orders
//! like the values, so every Avro type groups and compares; the output is sorted by key.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    hash::{Hash, Hasher},
    sync::Arc,
};

use arrow_array::{new_null_array, Array, ArrayRef, Float64Array, Int64Array, RecordBatch};
use arrow_row::{RowConverter, Rows, SortField};
use arrow_schema::{DataType, Field, Schema};

use super::{window::Window, Error, Result};
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

/// The groups of the open windows.
#[derive(Debug)]
pub struct Aggregate {
    keys: Vec<(usize, Field)>,
    key_rows: RowConverter,
    specs: Vec<Spec>,
    windows: BTreeMap<Window, HashMap<Box<[u8]>, Vec<Acc>>>,
}

fn column(schema: &Schema, view: &View, name: &str) -> Result<usize> {
    schema.index_of(name).map_err(|_| Error::View {
        view: view.name.clone(),
        message: format!("`{name}` is not a column of the product's schema"),
    })
}

impl Aggregate {
    /// The aggregations of `view` over rows of `schema`.
    pub fn new(view: &View, schema: &Schema) -> Result<Self> {
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
        Ok(Self {
            keys,
            key_rows,
            specs,
            windows: BTreeMap::new(),
        })
    }

    /// Groups held in all open windows.
    pub fn groups(&self) -> usize {
        self.windows.values().map(HashMap::len).sum()
    }

    /// Adds rows of `batch`, each with its window.
    pub fn add(&mut self, batch: &RecordBatch, rows: &[(u32, Window)]) -> Result<()> {
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
            let groups = self.windows.entry(window).or_default();
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
        Ok(())
    }

    /// The rows of `window`, sorted by key; `None` if it has none.
    pub fn close(&mut self, window: Window) -> Result<Option<RecordBatch>> {
        let batch = self.snapshot(window)?;
        self.remove(window);
        Ok(batch)
    }

    /// Forgets the groups of `window`.
    pub fn remove(&mut self, window: Window) {
        self.windows.remove(&window);
    }

    /// The rows of `window` as they stand, sorted by key, keeping its groups (an `amend` view
    /// adds late events to them); `None` if it has none.
    pub fn snapshot(&self, window: Window) -> Result<Option<RecordBatch>> {
        let Some(groups) = self.windows.get(&window) else {
            return Ok(None);
        };
        let mut groups: Vec<(&Box<[u8]>, &Vec<Acc>)> = groups.iter().collect();
        groups.sort_by(|a, b| a.0.cmp(b.0));
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
        RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
            .map(Some)
            .map_err(Error::arrow)
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

impl Acc {
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

fn cast<T: Array + Clone + 'static>(array: &ArrayRef, to: &DataType) -> Result<T> {
    let cast = arrow_cast::cast(array, to).map_err(Error::arrow)?;
    cast.as_any()
        .downcast_ref::<T>()
        .cloned()
        .ok_or_else(|| Error::Unexpected(format!("cast to {to} gave another type")))
}
