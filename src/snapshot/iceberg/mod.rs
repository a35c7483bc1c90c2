//! Views as Apache Iceberg tables (format version 2), written from the table spec: the view's
//! directory is the table's location, its `metadata/` holds the table metadata, manifest lists
//! and manifests, and the data files are the Parquet files the view writes anyway (their
//! columns found by the table's name mapping, `schema.name-mapping.default`, as for any
//! table whose files carry no field ids). The table is partitioned by `window` (identity).
//!
//! One snapshot per window version: an `append` for version 1, an `overwrite` that replaces
//! the window's files for an amendment; its summary names the window and version
//! (`meshline.window`, `meshline.version`). The table's properties keep, per window, the
//! version committed last and its manifest (`meshline.windows`), so a restarted worker never
//! commits a window version twice. Metadata files are written create-only
//! (`metadata/v<N>.metadata.json`, then `metadata/version-hint.text` for readers by path), and
//! their contents are deterministic: snapshot ids are hashes of the window version, timestamps
//! the window's end. The metadata keeps the newest [`SNAPSHOTS_KEPT`] snapshots.
//!
//! Catalogs: each commit points the table's row in the Iceberg SQL catalog on SQLite
//! ([`SqlCatalog`], when the worker has one) at the new metadata file, and the catalog's
//! Iceberg REST API (`crate::catalog`) reads the newest metadata with [`current`].
//!
//! Readers: pyiceberg's `SqlCatalog` and Spark, Trino and Flink's JDBC catalog over the SQL
//! catalog's file, pyiceberg's `StaticTable.from_metadata(<view dir>)`, a Hadoop-style catalog
//! over the same directory, or any of them through the REST API. Limits: no other catalog
//! (Hive, Glue, an external REST catalog) is updated, no column statistics in the manifests.

mod sql_catalog;

pub use sql_catalog::SqlCatalog;

use std::collections::BTreeMap;

use arrow_schema::{DataType, Field, Schema};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{
    manifest::{product_root, Manifest},
    store::Store,
    table, Error, Result,
};

/// Snapshots the metadata keeps (older ones expire; their windows' current files stay).
pub(crate) const SNAPSHOTS_KEPT: usize = 20;

/// The partition field's id (Iceberg numbers partition fields from 1000).
const PARTITION_FIELD_ID: i64 = 1000;

/// What the table holds of one window: its version's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Held {
    version: u32,
    manifest: String,
    length: u64,
    files: u64,
    rows: u64,
    snapshot: i64,
    sequence: i64,
}

/// A view's Iceberg table as its metadata says.
#[derive(Debug)]
pub(crate) struct Table {
    product: String,
    view: String,
    root: String,
    /// The current metadata (JSON), if the table exists.
    metadata: Option<Value>,
    /// The metadata file's number.
    number: u64,
    windows: BTreeMap<String, Held>,
    /// The schema of this run's files (Iceberg JSON, name mapping), once read from one.
    run_schema: Option<(Value, Value)>,
    /// The SQL catalog the table is registered in.
    catalog: Option<SqlCatalog>,
}

impl Table {
    /// The table of `view` of `product` in `store`, read from its newest metadata, and
    /// registered in `catalog` (pointed at that metadata if a crash left the catalog behind).
    pub(crate) async fn open(
        store: &Store,
        product: &str,
        view: &str,
        catalog: Option<SqlCatalog>,
    ) -> Result<Self> {
        let root = format!("{}/{view}", product_root(product));
        let mut table = Self {
            product: product.to_owned(),
            view: view.to_owned(),
            root: root.clone(),
            metadata: None,
            number: 0,
            windows: BTreeMap::new(),
            run_schema: None,
            catalog,
        };
        if let Some((number, metadata)) = newest_metadata(store, &root).await? {
            if let Some(windows) = metadata["properties"]["meshline.windows"].as_str() {
                table.windows = serde_json::from_str(windows).map_err(Error::json)?;
            }
            table.metadata = Some(metadata);
            table.number = number;
            table.register(store).await?;
        }
        Ok(table)
    }

    /// Commits `manifest`, a window version just written, unless the table has it already.
    pub(crate) async fn commit(&mut self, store: &Store, manifest: &Manifest) -> Result<()> {
        let window = manifest.window.clone();
        if self
            .windows
            .get(&window)
            .is_some_and(|h| h.version >= manifest.version)
        {
            return Ok(());
        }
        if self.run_schema.is_none() {
            if let Some(columns) = table::columns_of(store, manifest).await? {
                self.run_schema = Some(schema_of(&columns)?);
            }
        }
        let Some((schema, mapping)) = self.run_schema.clone().or_else(|| self.current_schema())
        else {
            // an empty window before the table has a schema: nothing to read yet
            return Ok(());
        };
        let at = table::commit_time(manifest)?;
        let snapshot = snapshot_id(&self.product, &self.view, &window, manifest.version);
        let sequence = self.last_sequence() + 1;

        // the window's manifest: its files, added by this snapshot
        let mut entries = Vec::new();
        for file in &manifest.files {
            let mut e = Avro::default();
            e.int(1); // status: added
            e.optional_long(Some(snapshot));
            e.optional_long(None); // sequence numbers inherited from the manifest list
            e.optional_long(None);
            e.int(0); // content: data
            e.string(&store.uri(&file.path));
            e.string("PARQUET");
            e.optional_string(Some(&window));
            e.long(i64::try_from(file.rows).unwrap_or(i64::MAX));
            e.long(i64::try_from(file.bytes).unwrap_or(i64::MAX));
            entries.push(e.0);
        }
        let partition_spec = partition_spec(&schema);
        let manifest_bytes = container(
            &manifest_entry_schema(),
            &[
                ("schema", schema.to_string()),
                ("schema-id", "0".into()),
                ("partition-spec", partition_spec.to_string()),
                ("partition-spec-id", "0".into()),
                ("format-version", "2".into()),
                ("content", "data".into()),
            ],
            &entries,
        );
        let manifest_path = format!(
            "{}/metadata/window={window}-v{}-m0.avro",
            self.root, manifest.version
        );
        let length = manifest_bytes.len() as u64;
        store.put_new(&manifest_path, manifest_bytes).await?;
        let replaced = self.windows.insert(
            window.clone(),
            Held {
                version: manifest.version,
                manifest: store.uri(&manifest_path),
                length,
                files: manifest.files.len() as u64,
                rows: manifest.rows,
                snapshot,
                sequence,
            },
        );
        let operation = if replaced.is_some() {
            "overwrite"
        } else {
            "append"
        };
        let mut summary = json!({
            "operation": operation,
            "meshline.window": window,
            "meshline.version": manifest.version.to_string(),
            "added-data-files": manifest.files.len().to_string(),
            "added-records": manifest.rows.to_string(),
        });
        if let Some(old) = &replaced {
            summary["deleted-data-files"] = json!(old.files.to_string());
            summary["deleted-records"] = json!(old.rows.to_string());
        }
        self.write_snapshot(
            store,
            snapshot,
            sequence,
            at,
            summary,
            (schema, mapping, partition_spec),
        )
        .await
    }

    /// Commits a snapshot without `window` (its retention ended); its files may go after this
    /// returns.
    pub(crate) async fn expire(&mut self, store: &Store, window: &str, at: i64) -> Result<()> {
        let Some(old) = self.windows.remove(window) else {
            return Ok(());
        };
        let Some((schema, mapping)) = self.current_schema() else {
            return Ok(());
        };
        let partition_spec = partition_spec(&schema);
        let snapshot = snapshot_id(&self.product, &self.view, window, u32::MAX);
        let sequence = self.last_sequence() + 1;
        let summary = json!({
            "operation": "delete",
            "meshline.expired-window": window,
            "deleted-data-files": old.files.to_string(),
            "deleted-records": old.rows.to_string(),
        });
        self.write_snapshot(
            store,
            snapshot,
            sequence,
            at,
            summary,
            (schema, mapping, partition_spec),
        )
        .await
    }

    /// Writes the manifest list of the current windows and the next metadata file.
    async fn write_snapshot(
        &mut self,
        store: &Store,
        snapshot: i64,
        sequence: i64,
        at: i64,
        summary: Value,
        (schema, mapping, partition_spec): (Value, Value, Value),
    ) -> Result<()> {
        let parent = self.current_snapshot();
        let mut entries = Vec::new();
        for held in self.windows.values() {
            let mut e = Avro::default();
            e.string(&held.manifest);
            e.long(i64::try_from(held.length).unwrap_or(i64::MAX));
            e.int(0); // partition spec
            e.int(0); // content: data
            e.long(held.sequence);
            e.long(held.sequence);
            e.long(held.snapshot);
            e.int(i32::try_from(held.files).unwrap_or(i32::MAX));
            e.int(0);
            e.int(0);
            e.long(i64::try_from(held.rows).unwrap_or(i64::MAX));
            e.long(0);
            e.long(0);
            entries.push(e.0);
        }
        let list = container(
            &manifest_file_schema(),
            &[
                ("snapshot-id", snapshot.to_string()),
                (
                    "parent-snapshot-id",
                    parent.map_or_else(|| "null".into(), |p| p.to_string()),
                ),
                ("sequence-number", sequence.to_string()),
                ("format-version", "2".into()),
            ],
            &entries,
        );
        let list_path = format!("{}/metadata/snap-{snapshot}-{sequence}.avro", self.root);
        store.put_new(&list_path, list).await?;

        let mut snapshots: Vec<Value> = self
            .metadata
            .as_ref()
            .and_then(|m| m["snapshots"].as_array().cloned())
            .unwrap_or_default();
        snapshots.push(json!({
            "snapshot-id": snapshot,
            "parent-snapshot-id": parent,
            "sequence-number": sequence,
            "timestamp-ms": at,
            "manifest-list": store.uri(&list_path),
            "summary": summary,
            "schema-id": 0,
        }));
        let expired = snapshots.len().saturating_sub(SNAPSHOTS_KEPT);
        snapshots.drain(..expired);
        let log: Vec<Value> = snapshots
            .iter()
            .map(|s| json!({"snapshot-id": s["snapshot-id"], "timestamp-ms": s["timestamp-ms"]}))
            .collect();
        let windows = serde_json::to_string(&self.windows).map_err(Error::json)?;
        let metadata = json!({
            "format-version": 2,
            "table-uuid": table::stable_uuid(&format!("iceberg/{}/{}", self.product, self.view)),
            "location": store.uri(&self.root),
            "last-sequence-number": sequence,
            "last-updated-ms": at,
            "last-column-id": last_column_id(&schema),
            "current-schema-id": 0,
            "schemas": [schema],
            "default-spec-id": 0,
            "partition-specs": [{"spec-id": 0, "fields": partition_spec}],
            "last-partition-id": PARTITION_FIELD_ID,
            "default-sort-order-id": 0,
            "sort-orders": [{"order-id": 0, "fields": []}],
            "properties": {
                "schema.name-mapping.default": mapping.to_string(),
                "meshline.windows": windows,
                "write.parquet.compression-codec": "zstd",
            },
            "current-snapshot-id": snapshot,
            "refs": {"main": {"snapshot-id": snapshot, "type": "branch"}},
            "snapshots": snapshots,
            "snapshot-log": log,
            "metadata-log": [],
        });
        let number = self.number + 1;
        let path = metadata_path(&self.root, number);
        let bytes = serde_json::to_vec_pretty(&metadata).map_err(Error::json)?;
        store.put_new(&path, bytes).await?;
        store
            .put(
                &format!("{}/metadata/version-hint.text", self.root),
                number.to_string().into_bytes(),
            )
            .await?;
        self.metadata = Some(metadata);
        self.number = number;
        self.register(store).await
    }

    /// Points the table's row in the SQL catalog at its current metadata.
    async fn register(&self, store: &Store) -> Result<()> {
        let Some(catalog) = &self.catalog else {
            return Ok(());
        };
        let location = store.uri(&metadata_path(&self.root, self.number));
        catalog
            .point(&self.product, &self.view, &location, self.number)
            .await
    }

    fn current_snapshot(&self) -> Option<i64> {
        self.metadata.as_ref()?["current-snapshot-id"].as_i64()
    }

    fn last_sequence(&self) -> i64 {
        self.metadata
            .as_ref()
            .and_then(|m| m["last-sequence-number"].as_i64())
            .unwrap_or(0)
    }

    fn current_schema(&self) -> Option<(Value, Value)> {
        let metadata = self.metadata.as_ref()?;
        let schema = metadata["schemas"][0].clone();
        let mapping =
            serde_json::from_str(metadata["properties"]["schema.name-mapping.default"].as_str()?)
                .ok()?;
        Some((schema, mapping))
    }
}

/// The newest metadata of the table at `root` (its number and contents), if it has one: found by
/// listing, since the version hint may lag behind a crash and the metadata files do not.
async fn newest_metadata(store: &Store, root: &str) -> Result<Option<(u64, Value)>> {
    let newest = store
        .list(&format!("{root}/metadata"))
        .await?
        .iter()
        .filter_map(|p| {
            p.rsplit('/')
                .next()?
                .strip_prefix('v')?
                .strip_suffix(".metadata.json")?
                .parse::<u64>()
                .ok()
        })
        .max();
    let Some(number) = newest else {
        return Ok(None);
    };
    let metadata = serde_json::from_slice(&store.get(&metadata_path(root, number)).await?)
        .map_err(Error::json)?;
    Ok(Some((number, metadata)))
}

/// The current metadata of the Iceberg table of `view` of `product`: the URI of its metadata
/// file and its contents, if a window was committed (for a catalog serving the table).
pub(crate) async fn current(
    store: &Store,
    product: &str,
    view: &str,
) -> Result<Option<(String, Value)>> {
    let root = format!("{}/{view}", product_root(product));
    Ok(newest_metadata(store, &root)
        .await?
        .map(|(number, metadata)| (store.uri(&metadata_path(&root, number)), metadata)))
}

fn metadata_path(root: &str, number: u64) -> String {
    format!("{root}/metadata/v{number}.metadata.json")
}

/// A stable id per window version (positive, as Iceberg readers expect).
fn snapshot_id(product: &str, view: &str, window: &str, version: u32) -> i64 {
    let digest = Sha256::digest(format!("{product}/{view}/{window}/{version}").as_bytes());
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(id) & i64::MAX
}

/// The table's partition spec: identity on `window`, the schema's last top-level field.
fn partition_spec(schema: &Value) -> Value {
    let window = schema["fields"]
        .as_array()
        .and_then(|f| f.last())
        .and_then(|f| f["id"].as_i64())
        .unwrap_or(0);
    json!([{"name": "window", "transform": "identity", "source-id": window,
        "field-id": PARTITION_FIELD_ID}])
}

fn last_column_id(schema: &Value) -> i64 {
    fn max_id(v: &Value) -> i64 {
        match v {
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| {
                    let own = if k == "id" || k == "element-id" || k == "key-id" || k == "value-id"
                    {
                        v.as_i64().unwrap_or(0)
                    } else {
                        0
                    };
                    own.max(max_id(v))
                })
                .max()
                .unwrap_or(0),
            Value::Array(items) => items.iter().map(max_id).max().unwrap_or(0),
            _ => 0,
        }
    }
    max_id(schema)
}

/// The table schema (Iceberg JSON, ids from 1) and its name mapping, from the view's columns,
/// then `window`.
fn schema_of(arrow: &Schema) -> Result<(Value, Value)> {
    let mut ids = Ids(0);
    let mut fields = Vec::new();
    let mut mapping = Vec::new();
    for field in arrow.fields() {
        let (f, m) = ids.field(field).map_err(Error::Data)?;
        fields.push(f);
        mapping.push(m);
    }
    let id = ids.next();
    fields.push(json!({"id": id, "name": "window", "required": false, "type": "string"}));
    mapping.push(json!({"field-id": id, "names": ["window"]}));
    Ok((
        json!({"type": "struct", "schema-id": 0, "fields": fields}),
        Value::Array(mapping),
    ))
}

/// Field ids handed out in order.
struct Ids(i64);

impl Ids {
    fn next(&mut self) -> i64 {
        self.0 += 1;
        self.0
    }

    /// A field and its name mapping.
    fn field(&mut self, field: &Field) -> Result<(Value, Value), String> {
        let id = self.next();
        let (ty, nested) = self
            .ty(field.data_type())
            .map_err(|e| format!("column `{}`: {e}", field.name()))?;
        let mut mapping = json!({"field-id": id, "names": [field.name()]});
        if let Some(nested) = nested {
            mapping["fields"] = nested;
        }
        Ok((
            json!({"id": id, "name": field.name(), "required": !field.is_nullable(), "type": ty}),
            mapping,
        ))
    }

    /// Iceberg's type of an Arrow type, and the name mapping of what it nests.
    fn ty(&mut self, data_type: &DataType) -> Result<(Value, Option<Value>), String> {
        Ok(match data_type {
            DataType::Boolean => (json!("boolean"), None),
            DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::UInt8
            | DataType::UInt16 => (json!("int"), None),
            DataType::Int64 | DataType::UInt32 | DataType::UInt64 => (json!("long"), None),
            DataType::Float32 => (json!("float"), None),
            DataType::Float64 => (json!("double"), None),
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => (json!("string"), None),
            DataType::Binary | DataType::LargeBinary | DataType::BinaryView => {
                (json!("binary"), None)
            }
            DataType::FixedSizeBinary(n) => (json!(format!("fixed[{n}]")), None),
            DataType::Date32 | DataType::Date64 => (json!("date"), None),
            DataType::Timestamp(_, Some(_)) => (json!("timestamptz"), None),
            DataType::Timestamp(_, None) => (json!("timestamp"), None),
            DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => {
                (json!(format!("decimal({p}, {s})")), None)
            }
            DataType::Dictionary(_, value) => self.ty(value)?,
            DataType::Struct(children) => {
                let mut fields = Vec::new();
                let mut mapping = Vec::new();
                for child in children {
                    let (f, m) = self.field(child)?;
                    fields.push(f);
                    mapping.push(m);
                }
                (
                    json!({"type": "struct", "fields": fields}),
                    Some(Value::Array(mapping)),
                )
            }
            DataType::List(item) | DataType::LargeList(item) => {
                let id = self.next();
                let (element, nested) = self.ty(item.data_type())?;
                // readers name a list's element `element`; arrow-rs writes `item`
                let mut mapping = json!({"field-id": id, "names": ["element", "item"]});
                if let Some(nested) = nested {
                    mapping["fields"] = nested;
                }
                (
                    json!({"type": "list", "element-id": id, "element": element,
                        "element-required": !item.is_nullable()}),
                    Some(json!([mapping])),
                )
            }
            DataType::Map(entries, _) => {
                let DataType::Struct(kv) = entries.data_type() else {
                    return Err("a map without key and value".into());
                };
                let (Some(key), Some(value)) = (kv.first(), kv.get(1)) else {
                    return Err("a map without key and value".into());
                };
                let key_id = self.next();
                let value_id = self.next();
                let (key_type, _) = self.ty(key.data_type())?;
                let (value_type, nested) = self.ty(value.data_type())?;
                let mut value_mapping = json!({"field-id": value_id, "names": ["value"]});
                if let Some(nested) = nested {
                    value_mapping["fields"] = nested;
                }
                (
                    json!({"type": "map", "key-id": key_id, "key": key_type,
                        "value-id": value_id, "value": value_type,
                        "value-required": !value.is_nullable()}),
                    Some(json!([{"field-id": key_id, "names": ["key"]}, value_mapping])),
                )
            }
            other => {
                return Err(format!(
                    "Iceberg tables have no type for {other}; give the view `format: parquet`"
                ))
            }
        })
    }
}

/// Avro schema of a manifest entry (format version 2), with the spec's field ids.
fn manifest_entry_schema() -> Value {
    let optional_long = |name: &str, id: i64| json!({"name": name, "type": ["null", "long"], "default": null, "field-id": id});
    json!({"type": "record", "name": "manifest_entry", "fields": [
        {"name": "status", "type": "int", "field-id": 0},
        optional_long("snapshot_id", 1),
        optional_long("sequence_number", 3),
        optional_long("file_sequence_number", 4),
        {"name": "data_file", "field-id": 2, "type": {"type": "record", "name": "r2", "fields": [
            {"name": "content", "type": "int", "field-id": 134},
            {"name": "file_path", "type": "string", "field-id": 100},
            {"name": "file_format", "type": "string", "field-id": 101},
            {"name": "partition", "field-id": 102, "type": {"type": "record", "name": "r102", "fields": [
                {"name": "window", "type": ["null", "string"], "default": null, "field-id": PARTITION_FIELD_ID}]}},
            {"name": "record_count", "type": "long", "field-id": 103},
            {"name": "file_size_in_bytes", "type": "long", "field-id": 104}]}}]})
}

/// Avro schema of a manifest list entry (format version 2), with the spec's field ids.
fn manifest_file_schema() -> Value {
    let field = |name: &str, ty: &str, id: i64| json!({"name": name, "type": ty, "field-id": id});
    json!({"type": "record", "name": "manifest_file", "fields": [
        field("manifest_path", "string", 500),
        field("manifest_length", "long", 501),
        field("partition_spec_id", "int", 502),
        field("content", "int", 517),
        field("sequence_number", "long", 515),
        field("min_sequence_number", "long", 516),
        field("added_snapshot_id", "long", 503),
        field("added_files_count", "int", 504),
        field("existing_files_count", "int", 505),
        field("deleted_files_count", "int", 506),
        field("added_rows_count", "long", 512),
        field("existing_rows_count", "long", 513),
        field("deleted_rows_count", "long", 514)]})
}

/// Avro binary encoding of one datum, field by field.
#[derive(Default)]
struct Avro(Vec<u8>);

impl Avro {
    fn long(&mut self, n: i64) {
        let mut z = ((n << 1) ^ (n >> 63)) as u64;
        loop {
            let byte = (z & 0x7f) as u8;
            z >>= 7;
            if z == 0 {
                self.0.push(byte);
                break;
            }
            self.0.push(byte | 0x80);
        }
    }

    fn int(&mut self, n: i32) {
        self.long(i64::from(n));
    }

    fn bytes(&mut self, b: &[u8]) {
        self.long(i64::try_from(b.len()).unwrap_or(i64::MAX));
        self.0.extend_from_slice(b);
    }

    fn string(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    /// A `["null", "long"]` union.
    fn optional_long(&mut self, n: Option<i64>) {
        match n {
            None => self.long(0),
            Some(n) => {
                self.long(1);
                self.long(n);
            }
        }
    }

    /// A `["null", "string"]` union.
    fn optional_string(&mut self, s: Option<&str>) {
        match s {
            None => self.long(0),
            Some(s) => {
                self.long(1);
                self.string(s);
            }
        }
    }
}

/// An Avro object container file of `schema` with `metadata` and `records` (encoded data), in
/// one block, uncompressed; its sync marker derived from its contents.
fn container(schema: &Value, metadata: &[(&str, String)], records: &[Vec<u8>]) -> Vec<u8> {
    let mut data = Vec::new();
    for r in records {
        data.extend_from_slice(r);
    }
    let digest = Sha256::digest(&data);
    let mut sync = [0u8; 16];
    sync.copy_from_slice(&digest[..16]);
    let mut out = Avro(b"Obj\x01".to_vec());
    let schema = schema.to_string();
    let mut entries: Vec<(&str, &str)> = vec![("avro.schema", &schema), ("avro.codec", "null")];
    entries.extend(metadata.iter().map(|(k, v)| (*k, v.as_str())));
    out.long(i64::try_from(entries.len()).unwrap_or(0));
    for (k, v) in entries {
        out.string(k);
        out.bytes(v.as_bytes());
    }
    out.long(0);
    out.0.extend_from_slice(&sync);
    if !records.is_empty() {
        out.long(i64::try_from(records.len()).unwrap_or(0));
        out.long(i64::try_from(data.len()).unwrap_or(0));
        out.0.extend_from_slice(&data);
        out.0.extend_from_slice(&sync);
    }
    out.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn an_avro_container_reads_back_with_apache_avro() {
        let mut e = Avro::default();
        e.string("s3://b/m.avro");
        e.long(-3);
        e.int(0);
        for _ in 0..10 {
            e.long(7);
        }
        let bytes = container(
            &manifest_file_schema(),
            &[("format-version", "2".into())],
            &[e.0],
        );
        let reader = apache_avro::Reader::new(&bytes[..]).unwrap();
        let rows: Vec<_> = reader.map(|r| r.unwrap()).collect();
        assert_eq!(rows.len(), 1);
        let apache_avro::types::Value::Record(fields) = &rows[0] else {
            panic!("a record")
        };
        assert_eq!(
            fields[0].1,
            apache_avro::types::Value::String("s3://b/m.avro".into())
        );
        assert_eq!(fields[1].1, apache_avro::types::Value::Long(-3));
    }

    #[tokio::test]
    async fn each_window_version_is_one_snapshot_and_a_restart_finds_where_the_table_ends() {
        use crate::snapshot::testing::{per_track_files, per_track_manifest};
        let store = Store::open("memory://").unwrap();
        per_track_files(&store, "w1", &["v1/a.parquet", "v2/a.parquet"]).await;
        let manifest = |version, file| per_track_manifest("w1", version, &[file]);
        let mut table = Table::open(&store, "player.play-events", "per-track", None)
            .await
            .unwrap();
        table
            .commit(&store, &manifest(1, "v1/a.parquet"))
            .await
            .unwrap();
        table
            .commit(&store, &manifest(1, "v1/a.parquet"))
            .await
            .unwrap();
        assert_eq!(table.number, 1, "a version already committed is not again");
        // reopened with an SQL catalog that does not know the table yet (as after a crash
        // between a commit and its catalog update): the table is registered at its newest
        // metadata, and each commit moves it on
        let dir = tempfile::tempdir().unwrap();
        let catalog = SqlCatalog::new(dir.path().join("iceberg.db"), "meshline");
        let registered = |n: u64| {
            let catalog = catalog.clone();
            async move {
                assert_eq!(
                    catalog
                        .location("player.play-events", "per-track")
                        .await
                        .unwrap()
                        .unwrap(),
                    format!(
                        "memory:/snapshots/player/play-events/per-track/metadata/v{n}.metadata.json"
                    )
                );
            }
        };
        let mut reopened = Table::open(
            &store,
            "player.play-events",
            "per-track",
            Some(catalog.clone()),
        )
        .await
        .unwrap();
        registered(1).await;
        reopened
            .commit(&store, &manifest(1, "v1/a.parquet"))
            .await
            .unwrap();
        assert_eq!(reopened.number, 1);
        reopened
            .commit(&store, &manifest(2, "v2/a.parquet"))
            .await
            .unwrap();
        let metadata = reopened.metadata.as_ref().unwrap();
        assert_eq!(metadata["snapshots"].as_array().unwrap().len(), 2);
        let last = &metadata["snapshots"][1]["summary"];
        assert_eq!(last["operation"], "overwrite");
        assert_eq!(last["meshline.version"], "2");
        let hint = store
            .get("snapshots/player/play-events/per-track/metadata/version-hint.text")
            .await
            .unwrap();
        assert_eq!(hint, b"2");
        registered(2).await;
        reopened.expire(&store, "w1", 0).await.unwrap();
        assert!(reopened.windows.is_empty());
        registered(3).await;
    }

    #[test]
    fn nested_columns_get_ids_and_a_name_mapping() {
        let mut ids = Ids(0);
        let field = Field::new(
            "context",
            DataType::Struct(
                vec![Field::new(
                    "tags",
                    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                    true,
                )]
                .into(),
            ),
            true,
        );
        let (ty, mapping) = ids.field(&field).unwrap();
        assert_eq!(
            ty,
            json!({"id": 1, "name": "context", "required": false, "type": {"type": "struct",
                "fields": [{"id": 2, "name": "tags", "required": false, "type": {"type": "list",
                "element-id": 3, "element": "string", "element-required": false}}]}})
        );
        assert_eq!(
            mapping,
            json!({"field-id": 1, "names": ["context"], "fields": [{"field-id": 2,
                "names": ["tags"], "fields": [{"field-id": 3, "names": ["element", "item"]}]}]})
        );
        assert_eq!(last_column_id(&json!({"fields": [ty]})), 3);
    }
}
