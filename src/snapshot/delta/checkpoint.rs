//! A Delta log checkpoint: the table's live actions (protocol, metadata, each window's
//! transaction identifier, each current file's `add`) as one Parquet file, one action a row,
//! in the checkpoint schema of the Delta protocol.

use std::{collections::BTreeMap, sync::Arc};

use arrow_array::{
    builder::{ListBuilder, MapBuilder, MapFieldNames, StringBuilder},
    ArrayRef, BooleanArray, Int32Array, Int64Array, RecordBatch, StringArray, StructArray,
};
use arrow_buffer::NullBuffer;
use arrow_schema::{Field, Fields, Schema};
use serde_json::Value;

use super::super::{parquet, Error, Result};

/// Which action a row holds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Row {
    Protocol,
    Metadata,
    Txn,
    Add,
}

/// The checkpoint's Parquet bytes and its row count.
pub(super) fn encode(
    metadata: &Value,
    txns: &BTreeMap<String, Value>,
    adds: &BTreeMap<String, Value>,
) -> Result<(Vec<u8>, usize)> {
    let rows: Vec<(Row, &Value)> = std::iter::once((Row::Protocol, metadata))
        .chain(std::iter::once((Row::Metadata, metadata)))
        .chain(txns.values().map(|t| (Row::Txn, t)))
        .chain(adds.values().map(|a| (Row::Add, a)))
        .collect();
    let only =
        |kind: Row| NullBuffer::from(rows.iter().map(|(r, _)| *r == kind).collect::<Vec<_>>());
    let text = |kind: Row, key: &str| -> ArrayRef {
        Arc::new(StringArray::from(
            rows.iter()
                .map(|(r, v)| (*r == kind).then(|| v[key].as_str()).flatten())
                .collect::<Vec<_>>(),
        ))
    };
    let long = |kind: Row, key: &str| -> ArrayRef {
        Arc::new(Int64Array::from(
            rows.iter()
                .map(|(r, v)| (*r == kind).then(|| v[key].as_i64()).flatten())
                .collect::<Vec<_>>(),
        ))
    };
    let names = MapFieldNames {
        entry: "key_value".into(),
        key: "key".into(),
        value: "value".into(),
    };
    // a string map per row: `entries` for the rows of `kind`, null for the others
    let map = |kind: Row, entries: &dyn Fn(&Value) -> Vec<(String, String)>| -> Result<ArrayRef> {
        let mut b = MapBuilder::new(
            Some(names.clone()),
            StringBuilder::new(),
            StringBuilder::new(),
        );
        for (r, v) in &rows {
            if *r == kind {
                for (key, value) in entries(v) {
                    b.keys().append_value(key);
                    b.values().append_value(value);
                }
            }
            b.append(*r == kind).map_err(Error::arrow)?;
        }
        Ok(Arc::new(b.finish()))
    };
    let strct = |fields: Vec<(&str, ArrayRef)>, kind: Row| -> Result<ArrayRef> {
        let (fields, arrays): (Vec<Field>, Vec<ArrayRef>) = fields
            .into_iter()
            .map(|(name, a)| (Field::new(name, a.data_type().clone(), true), a))
            .unzip();
        Ok(Arc::new(
            StructArray::try_new(Fields::from(fields), arrays, Some(only(kind)))
                .map_err(Error::arrow)?,
        ))
    };
    let none = |_: &Value| Vec::new();

    let protocol = strct(
        vec![
            (
                "minReaderVersion",
                Arc::new(Int32Array::from(
                    rows.iter()
                        .map(|(r, _)| (*r == Row::Protocol).then_some(1))
                        .collect::<Vec<_>>(),
                )) as ArrayRef,
            ),
            (
                "minWriterVersion",
                Arc::new(Int32Array::from(
                    rows.iter()
                        .map(|(r, _)| (*r == Row::Protocol).then_some(2))
                        .collect::<Vec<_>>(),
                )),
            ),
        ],
        Row::Protocol,
    )?;
    let mut partition_columns = ListBuilder::new(StringBuilder::new());
    for (r, v) in &rows {
        if *r == Row::Metadata {
            for c in v["partitionColumns"].as_array().into_iter().flatten() {
                partition_columns
                    .values()
                    .append_value(c.as_str().unwrap_or_default());
            }
        }
        partition_columns.append(*r == Row::Metadata);
    }
    // `provider` is always parquet
    let provider: ArrayRef = Arc::new(StringArray::from(
        rows.iter()
            .map(|(r, _)| (*r == Row::Metadata).then_some("parquet"))
            .collect::<Vec<_>>(),
    ));
    let format = strct(
        vec![
            ("provider", provider),
            ("options", map(Row::Metadata, &none)?),
        ],
        Row::Metadata,
    )?;
    let metadata_column = strct(
        vec![
            ("id", text(Row::Metadata, "id")),
            ("name", text(Row::Metadata, "name")),
            ("description", text(Row::Metadata, "description")),
            ("format", format),
            ("schemaString", text(Row::Metadata, "schemaString")),
            ("partitionColumns", Arc::new(partition_columns.finish())),
            ("configuration", map(Row::Metadata, &none)?),
            ("createdTime", long(Row::Metadata, "createdTime")),
        ],
        Row::Metadata,
    )?;
    let txn = strct(
        vec![
            ("appId", text(Row::Txn, "appId")),
            ("version", long(Row::Txn, "version")),
            ("lastUpdated", long(Row::Txn, "lastUpdated")),
        ],
        Row::Txn,
    )?;
    let partition_values = |v: &Value| -> Vec<(String, String)> {
        v["partitionValues"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect()
    };
    let add = strct(
        vec![
            ("path", text(Row::Add, "path")),
            ("partitionValues", map(Row::Add, &partition_values)?),
            ("size", long(Row::Add, "size")),
            ("modificationTime", long(Row::Add, "modificationTime")),
            (
                "dataChange",
                Arc::new(BooleanArray::from(
                    rows.iter()
                        .map(|(r, _)| (*r == Row::Add).then_some(false))
                        .collect::<Vec<_>>(),
                )),
            ),
            ("stats", text(Row::Add, "stats")),
        ],
        Row::Add,
    )?;
    let columns = [
        ("protocol", protocol),
        ("metaData", metadata_column),
        ("txn", txn),
        ("add", add),
    ];
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, a)| Field::new(*name, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(
        schema.clone(),
        columns.into_iter().map(|(_, a)| a).collect(),
    )
    .map_err(Error::arrow)?;
    let count = batch.num_rows();
    Ok((parquet::encode(schema, &[batch])?, count))
}
