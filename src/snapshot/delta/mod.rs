//! Views as Delta Lake tables. A view's directory is the root of a table partitioned by
//! `window`; its `_delta_log/` (Delta protocol, reader version 1, writer version 2) says which
//! files are the newest version of every window, so a Delta reader (Spark, Trino, DuckDB, the
//! `deltalake` Python package) gets exactly those rows. The Parquet files and manifests are the
//! ones the view writes anyway: the log references them in place.
//!
//! One commit per window version: it adds the version's files and removes the previous version's
//! (an amendment replaces its window), with a transaction identifier `{appId: "window=<label>",
//! version}`. A restarted worker reads the log and never commits a window version twice; commit
//! files are written create-only, so two writers cannot both take a version. Commit contents
//! are deterministic (timestamps are the window's end): a replay writes the same bytes.
//!
//! ```text
//! snapshots/<domain>/<product>/<view>/_delta_log/00000000000000000000.json
//! ```
//!
//! Every [`CHECKPOINT_EVERY`] commits the log gets a checkpoint (`<n>.checkpoint.parquet` and
//! `_last_checkpoint`), so a reader does not replay every commit. Limits: checkpoints hold no
//! `remove` tombstones (they serve only a concurrent `VACUUM`, which the snapshotter never
//! runs), and old commits stay; a column type Delta lacks (an Avro union of several types)
//! fails the view's first commit.

use std::collections::BTreeMap;

use arrow_schema::{DataType, Field, Fields, Schema, TimeUnit};
use serde_json::{json, Value};

use super::{
    manifest::{product_root, Manifest},
    store::Store,
    table, Error, Result,
};

mod checkpoint;

/// The partition column: the window's label.
const WINDOW: &str = "window";

/// Every this many commits the log gets a checkpoint (readers start from the newest one).
const CHECKPOINT_EVERY: u64 = 10;

/// A view's Delta table as its log says: what each window holds now.
#[derive(Debug)]
pub(crate) struct Table {
    product: String,
    view: String,
    root: String,
    /// The live actions, which a checkpoint holds: each current file's `add` (by path, relative
    /// to the root), each window's `txn` (by `appId`), the table's `metaData`.
    adds: BTreeMap<String, Value>,
    txns: BTreeMap<String, Value>,
    metadata: Option<Value>,
    /// The schema of this run's files, once read from one (a run decodes every record with one
    /// reader schema, so its files share one).
    run_schema: Option<String>,
    /// The next commit's number.
    next: u64,
}

impl Table {
    /// The table of `view` of `product` in `store`, read from its log (empty if it has none).
    pub(crate) async fn open(store: &Store, product: &str, view: &str) -> Result<Self> {
        let root = format!("{}/{view}", product_root(product));
        let mut table = Self {
            product: product.to_owned(),
            view: view.to_owned(),
            root: root.clone(),
            adds: BTreeMap::new(),
            txns: BTreeMap::new(),
            metadata: None,
            run_schema: None,
            next: 0,
        };
        let log = format!("{root}/_delta_log");
        for path in store.list(&log).await? {
            let Some(number) = path
                .rsplit('/')
                .next()
                .and_then(|name| name.strip_suffix(".json"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            if number != table.next {
                return Err(Error::Data(format!(
                    "{}: commit {number} follows commit {} in the Delta log",
                    store.uri(&path),
                    table.next.saturating_sub(1)
                )));
            }
            let bytes = store.get(&path).await?;
            for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                table.apply(&serde_json::from_slice(line).map_err(Error::json)?);
            }
            table.next = number + 1;
        }
        // a checkpoint a crash kept from being written after its commit
        table.checkpoint_if_due(store).await?;
        Ok(table)
    }

    /// Takes one action of the log into the table's state.
    fn apply(&mut self, action: &Value) {
        if let Some(add) = action.get("add") {
            if let Some(path) = add["path"].as_str() {
                self.adds.insert(path.to_owned(), add.clone());
            }
        } else if let Some(remove) = action.get("remove") {
            if let Some(path) = remove["path"].as_str() {
                self.adds.remove(path);
            }
        } else if let Some(txn) = action.get("txn") {
            if let Some(app) = txn["appId"].as_str() {
                self.txns.insert(app.to_owned(), txn.clone());
            }
        } else if let Some(metadata) = action.get("metaData") {
            self.metadata = Some(metadata.clone());
        }
    }

    /// The current files of `window`, relative to the root, in path order.
    fn files_of(&self, window: &str) -> Vec<String> {
        self.adds
            .iter()
            .filter(|(_, add)| add["partitionValues"][WINDOW].as_str() == Some(window))
            .map(|(path, _)| path.clone())
            .collect()
    }

    /// The version of `window` committed last.
    fn committed(&self, window: &str) -> Option<u64> {
        self.txns
            .get(&format!("window={window}"))
            .and_then(|txn| txn["version"].as_u64())
    }

    /// The table's schema (Delta's JSON), once a commit gave it one.
    fn schema(&self) -> Option<&str> {
        self.metadata.as_ref()?["schemaString"].as_str()
    }

    /// Commits `manifest`, a window version just written, unless the log has it already. The
    /// table's schema comes from the first of its files this run commits.
    pub(crate) async fn commit(&mut self, store: &Store, manifest: &Manifest) -> Result<()> {
        let window = &manifest.window;
        if self
            .committed(window)
            .is_some_and(|v| v >= u64::from(manifest.version))
        {
            return Ok(());
        }
        let files: Vec<(String, &super::manifest::File)> = manifest
            .files
            .iter()
            .filter_map(|f| Some((self.relative(&f.path)?, f)))
            .collect();
        if self.run_schema.is_none() {
            if let Some(columns) = table::columns_of(store, manifest).await? {
                self.run_schema = Some(schema_of(&columns)?);
            }
        }
        let Some(schema) = self
            .run_schema
            .clone()
            .or_else(|| self.schema().map(str::to_owned))
        else {
            // an empty window before the table has a schema: nothing to read yet
            return Ok(());
        };
        let at = table::commit_time(manifest)?;
        let mut actions = Vec::new();
        if self.next == 0 {
            actions.push(json!({"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}}));
        }
        if self.schema() != Some(schema.as_str()) {
            actions.push(json!({"metaData": {
                "id": table::stable_uuid(&format!("{}/{}", self.product, self.view)),
                "name": self.view,
                "format": {"provider": "parquet", "options": {}},
                "schemaString": schema,
                "partitionColumns": [WINDOW],
                "configuration": {},
                "createdTime": at,
            }}));
        }
        let before = self.files_of(window);
        for path in before
            .iter()
            .filter(|p| !files.iter().any(|(f, _)| f == *p))
        {
            actions.push(remove(path, window, at));
        }
        for (path, file) in files.iter().filter(|(f, _)| !before.contains(f)) {
            actions.push(json!({"add": {
                "path": path,
                "partitionValues": {WINDOW: window},
                "size": file.bytes,
                "modificationTime": at,
                "dataChange": true,
                "stats": json!({"numRecords": file.rows}).to_string(),
            }}));
        }
        actions.push(json!({"txn": {
            "appId": format!("window={window}"),
            "version": manifest.version,
            "lastUpdated": at,
        }}));
        let mode = if manifest.version == 1 {
            "Append"
        } else {
            "Overwrite"
        };
        actions.push(json!({"commitInfo": {
            "timestamp": at,
            "operation": "WRITE",
            "operationParameters": {"mode": mode, "partitionBy": "[\"window\"]"},
            "engineInfo": "meshline",
            "meshline": {"product": self.product, "view": self.view, "window": window, "version": manifest.version},
        }}));
        self.write(store, &actions).await
    }

    /// Commits the removal of every file of `window` (its retention ended); the files may go
    /// after this returns.
    pub(crate) async fn expire(&mut self, store: &Store, window: &str, at: i64) -> Result<()> {
        let files = self.files_of(window);
        if files.is_empty() {
            return Ok(());
        }
        let mut actions: Vec<Value> = files.iter().map(|p| remove(p, window, at)).collect();
        actions.push(json!({"commitInfo": {
            "timestamp": at,
            "operation": "DELETE",
            "operationParameters": {"predicate": format!("window = '{window}'")},
            "engineInfo": "meshline",
        }}));
        self.write(store, &actions).await
    }

    /// Writes the next commit, create-only, and takes it into the state.
    async fn write(&mut self, store: &Store, actions: &[Value]) -> Result<()> {
        let mut bytes = Vec::new();
        for action in actions {
            serde_json::to_writer(&mut bytes, action).map_err(Error::json)?;
            bytes.push(b'\n');
        }
        let path = format!("{}/_delta_log/{:020}.json", self.root, self.next);
        store.put_new(&path, bytes).await?;
        for action in actions {
            self.apply(action);
        }
        self.next += 1;
        self.checkpoint_if_due(store).await
    }

    /// Writes the checkpoint of the last commit when its number is due ([`CHECKPOINT_EVERY`])
    /// and points `_last_checkpoint` at it; the same bytes again if it exists.
    async fn checkpoint_if_due(&self, store: &Store) -> Result<()> {
        let Some(version) = self.next.checked_sub(1) else {
            return Ok(());
        };
        if !self.next.is_multiple_of(CHECKPOINT_EVERY) {
            return Ok(());
        }
        let Some(metadata) = &self.metadata else {
            return Ok(());
        };
        let (bytes, rows) = checkpoint::encode(metadata, &self.txns, &self.adds)?;
        let log = format!("{}/_delta_log", self.root);
        store
            .put_new(&format!("{log}/{version:020}.checkpoint.parquet"), bytes)
            .await?;
        let last = json!({"version": version, "size": rows}).to_string();
        store
            .put(&format!("{log}/_last_checkpoint"), last.into_bytes())
            .await
    }

    /// `path` (from the store's root) relative to the table's root.
    fn relative(&self, path: &str) -> Option<String> {
        path.strip_prefix(&self.root)
            .and_then(|p| p.strip_prefix('/'))
            .map(str::to_owned)
    }
}

fn remove(path: &str, window: &str, at: i64) -> Value {
    json!({"remove": {
        "path": path,
        "deletionTimestamp": at,
        "dataChange": true,
        "partitionValues": {WINDOW: window},
    }})
}

/// The table's schema (Delta's JSON) from the view's columns, then the partition column.
fn schema_of(columns: &Schema) -> Result<String> {
    let mut fields = columns
        .fields()
        .iter()
        .map(|f| field(f))
        .collect::<Result<Vec<_>, String>>()
        .map_err(Error::Data)?;
    fields.push(json!({"name": WINDOW, "type": "string", "nullable": true, "metadata": {}}));
    Ok(json!({"type": "struct", "fields": fields}).to_string())
}

fn field(field: &Field) -> Result<Value, String> {
    Ok(json!({
        "name": field.name(),
        "type": data_type(field.data_type()).map_err(|e| format!("column `{}`: {e}", field.name()))?,
        "nullable": field.is_nullable(),
        "metadata": {},
    }))
}

fn struct_type(fields: &Fields) -> Result<Value, String> {
    Ok(json!({
        "type": "struct",
        "fields": fields.iter().map(|f| field(f)).collect::<Result<Vec<_>, _>>()?,
    }))
}

/// Delta's type of an Arrow type.
fn data_type(arrow: &DataType) -> Result<Value, String> {
    Ok(match arrow {
        DataType::Boolean => json!("boolean"),
        DataType::Int8 => json!("byte"),
        DataType::Int16 | DataType::UInt8 => json!("short"),
        DataType::Int32 | DataType::UInt16 => json!("integer"),
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => json!("long"),
        DataType::Float32 => json!("float"),
        DataType::Float64 => json!("double"),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => json!("string"),
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => json!("binary"),
        DataType::Date32 | DataType::Date64 => json!("date"),
        DataType::Timestamp(_, Some(_)) => json!("timestamp"),
        DataType::Timestamp(_, None) | DataType::Time64(TimeUnit::Microsecond) => {
            // a local timestamp: Delta's `timestamp_ntz` needs a table feature (reader 3,
            // writer 7); it is read as UTC
            json!("timestamp")
        }
        DataType::Decimal128(precision, scale) | DataType::Decimal256(precision, scale) => {
            json!(format!("decimal({precision},{scale})"))
        }
        DataType::Dictionary(_, value) => data_type(value)?,
        DataType::Struct(fields) => struct_type(fields)?,
        DataType::List(item) | DataType::LargeList(item) | DataType::FixedSizeList(item, _) => {
            json!({"type": "array", "elementType": data_type(item.data_type())?, "containsNull": item.is_nullable()})
        }
        DataType::Map(entries, _) => {
            let DataType::Struct(kv) = entries.data_type() else {
                return Err("a map without key and value".into());
            };
            let (Some(key), Some(value)) = (kv.first(), kv.get(1)) else {
                return Err("a map without key and value".into());
            };
            json!({"type": "map", "keyType": data_type(key.data_type())?, "valueType": data_type(value.data_type())?, "valueContainsNull": value.is_nullable()})
        }
        other => {
            return Err(format!(
                "Delta tables have no type for {other}; give the view `format: parquet`"
            ))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot::testing::{per_track_files, per_track_manifest as manifest};
    use std::sync::Arc;

    #[tokio::test]
    async fn each_window_version_is_committed_once_and_replaces_the_one_before() {
        let store = Store::open("memory://").unwrap();
        per_track_files(
            &store,
            "w1",
            &["v1/a.parquet", "v1/b.parquet", "v2/c.parquet"],
        )
        .await;
        let mut table = Table::open(&store, "player.play-events", "per-track")
            .await
            .unwrap();
        let v1 = manifest("w1", 1, &["v1/a.parquet", "v1/b.parquet"]);
        table.commit(&store, &v1).await.unwrap();
        // again, as a replay would: nothing new
        table.commit(&store, &v1).await.unwrap();
        let v2 = manifest("w1", 2, &["v1/a.parquet", "v2/c.parquet"]);
        table.commit(&store, &v2).await.unwrap();
        let log = store
            .list("snapshots/player/play-events/per-track/_delta_log")
            .await
            .unwrap();
        assert_eq!(log.len(), 2, "{log:?}");
        let second = String::from_utf8(store.get(&log[1]).await.unwrap()).unwrap();
        assert!(second.contains(r#""remove":{"#) && second.contains("v1/b.parquet"));
        assert!(
            second.contains(r#""path":"window=w1/v2/c.parquet""#),
            "{second}"
        );
        assert!(!second.contains("metaData"), "the schema did not change");

        // a restarted worker reads where the table ends
        let mut reopened = Table::open(&store, "player.play-events", "per-track")
            .await
            .unwrap();
        assert_eq!(
            reopened.files_of("w1"),
            ["window=w1/v1/a.parquet", "window=w1/v2/c.parquet"]
        );
        reopened.commit(&store, &v2).await.unwrap();
        reopened.expire(&store, "w1", 0).await.unwrap();
        assert!(reopened.files_of("w1").is_empty() && reopened.adds.is_empty());
        let log = store
            .list("snapshots/player/play-events/per-track/_delta_log")
            .await
            .unwrap();
        assert_eq!(log.len(), 3);
        let first = String::from_utf8(store.get(&log[0]).await.unwrap()).unwrap();
        assert!(first.starts_with(r#"{"protocol":{"minReaderVersion":1,"minWriterVersion":2}}"#));
        assert!(
            first.contains(r#"\"name\":\"window\",\"nullable\":true,\"type\":\"string\""#),
            "{first}"
        );
    }

    #[tokio::test]
    async fn every_tenth_commit_gets_a_checkpoint_that_holds_the_live_files() {
        let store = Store::open("memory://").unwrap();
        let mut table = Table::open(&store, "player.play-events", "per-track")
            .await
            .unwrap();
        for w in 0..11 {
            let window = format!("w{w}");
            per_track_files(&store, &window, &["v1/a.parquet"]).await;
            table
                .commit(&store, &manifest(&window, 1, &["v1/a.parquet"]))
                .await
                .unwrap();
        }
        let log = "snapshots/player/play-events/per-track/_delta_log";
        let last = store.get(&format!("{log}/_last_checkpoint")).await.unwrap();
        // protocol, metadata, and a transaction identifier and a file for each of 10 windows
        assert_eq!(
            serde_json::from_slice::<Value>(&last).unwrap(),
            json!({"version": 9, "size": 22})
        );
        let checkpoint = store
            .get(&format!("{log}/00000000000000000009.checkpoint.parquet"))
            .await
            .unwrap();
        let batches = crate::snapshot::parquet::decode(checkpoint).unwrap();
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows, 22);
        // a restart writes no other checkpoint: the same bytes are there
        Table::open(&store, "player.play-events", "per-track")
            .await
            .unwrap();
        assert_eq!(store.list(log).await.unwrap().len(), 13);
    }

    #[test]
    fn arrow_types_map_to_delta_types() {
        let nested = DataType::Struct(Fields::from(vec![Field::new(
            "tags",
            DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
            true,
        )]));
        assert_eq!(
            data_type(&nested).unwrap(),
            json!({"type": "struct", "fields": [{"name": "tags", "type": {"type": "array",
                "elementType": "string", "containsNull": true}, "nullable": true, "metadata": {}}]})
        );
        assert_eq!(
            data_type(&DataType::Timestamp(
                TimeUnit::Millisecond,
                Some("UTC".into())
            ))
            .unwrap(),
            json!("timestamp")
        );
        assert_eq!(
            data_type(&DataType::Dictionary(
                Box::new(DataType::Int32),
                Box::new(DataType::Utf8)
            ))
            .unwrap(),
            json!("string")
        );
        assert!(data_type(&DataType::Null)
            .unwrap_err()
            .contains("format: parquet"));
    }
}
