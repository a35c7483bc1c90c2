//! Rows for the snapshotter's unit tests: the demo's plays, decoded as the worker decodes them.

use apache_avro::{writer::datum::GenericDatumWriter, AvroSchema as _};

use super::{
    manifest::Manifest,
    rows::{Decoding, Rows},
    store::Store,
};
use crate::{
    codec::wire,
    demo::events::{Device, PlayEvent},
};

/// One play: its partition, offset, event time (ms) and user; `duration_ms` is the offset.
pub(crate) type Play<'a> = (i32, i64, i64, &'a str);

/// The rows of `plays`, in the given order, as one batch.
pub(crate) fn rows(plays: &[Play<'_>]) -> Rows {
    let schema = PlayEvent::get_schema();
    let json = serde_json::to_string(&schema).unwrap();
    let mut decoding = Decoding::new(&json, &[(1, json.clone())], plays.len().max(1)).unwrap();
    let writer = GenericDatumWriter::builder(&schema).build().unwrap();
    for &(partition, offset, time, user) in plays {
        let event = PlayEvent {
            play_id: format!("p{partition}-{offset}"),
            user_id: user.into(),
            track_id: "t".into(),
            artist_id: "a".into(),
            device: Device::Web,
            country: "SE".into(),
            started_at: time,
            duration_ms: offset,
            completed: true,
            context: None,
        };
        let payload = wire::encode(1, &writer.write_ser_to_vec(&event).unwrap());
        decoding
            .push(partition, offset, Some(time), None, &payload)
            .unwrap();
    }
    decoding.finish().unwrap().unwrap()
}

/// The columns of the plays' rows.
pub(crate) fn schema() -> arrow_schema::SchemaRef {
    rows(&[(0, 0, 0, "")]).batch.schema()
}

/// Writes a one-row Parquet file of a `per-track` aggregate at each of `files` (paths under
/// window `window` of the player product's `per-track` view), for tests of the view's tables.
pub(crate) async fn per_track_files(store: &Store, window: &str, files: &[&str]) {
    use arrow_array::{Int64Array, RecordBatch, StringArray};
    use arrow_schema::{DataType, Field, Schema};
    use std::sync::Arc;
    let schema = Arc::new(Schema::new(vec![
        Field::new("track_id", DataType::Utf8, false),
        Field::new("plays", DataType::Int64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec!["t"])),
            Arc::new(Int64Array::from(vec![1])),
        ],
    )
    .unwrap();
    let bytes = super::parquet::encode(schema, &[batch]).unwrap();
    for file in files {
        let path = format!("snapshots/player/play-events/per-track/window={window}/{file}");
        store.put_new(&path, bytes.clone()).await.unwrap();
    }
}

/// The manifest of version `version` of `window` of the `per-track` view, listing `files`
/// (paths under the window) of one row each.
pub(crate) fn per_track_manifest(window: &str, version: u32, files: &[&str]) -> Manifest {
    serde_json::from_value(serde_json::json!({
        "product": "player.play-events", "view": "per-track", "kind": "aggregate",
        "window": window, "window_start": "2026-11-25T10:00:00+00:00",
        "window_end": "2026-11-25T10:01:00+00:00", "time_zone": "UTC", "version": version,
        "files": files.iter().map(|f| serde_json::json!({
            "path": format!("snapshots/player/play-events/per-track/window={window}/{f}"),
            "rows": 1, "bytes": 10, "sha256": ""})).collect::<Vec<_>>(),
        "rows": 1, "sources": {}, "schema_ids": [], "watermark": "2026-11-25T10:01:00+00:00"
    }))
    .unwrap()
}
