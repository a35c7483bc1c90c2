//! An amending `latest` view, driven through its core (no broker) step by step as the worker
//! does: a window's newest version holds every late change of it and the windows before it
//! that was known when it closed, whether or not another late event comes while it is kept.

use std::{collections::BTreeMap, time::Instant};

use apache_avro::writer::datum::GenericDatumWriter;
use arrow_array::{Array, StringArray};
use meshline::{
    codec::wire,
    demo::events::{Device, PlayEvent},
    product::View,
    snapshot::{
        manifest::Manifest,
        parquet,
        rows::Decoding,
        spill::Spill,
        view::{Step, ViewRunner},
    },
};

const MIN: i64 = 60_000;
/// 2026-11-25T00:00:00Z
const T0: i64 = 1_795_564_800_000;

/// Feeds `plays` (user, play, event time) one at a time through an amending `latest` view
/// with no allowed lateness, as the worker does (step, advance, amend); the user ids of each
/// window's newest version.
fn newest_users(plays: &[(&str, &str, i64)]) -> BTreeMap<String, Vec<String>> {
    let catalog = meshline::formats::load_catalog(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config"),
    )
    .unwrap();
    let product = catalog.get("player.play-events").unwrap();
    let view: View = serde_norway::from_str(
        "{name: last-play, kind: latest, window: minute, key: [user_id], late: amend}",
    )
    .unwrap();
    let reader = serde_json::to_string(&product.schema).unwrap();
    let writer = GenericDatumWriter::builder(&product.schema)
        .build()
        .unwrap();
    let mut decoding = Decoding::new(&reader, &[(1, reader.clone())], 16).unwrap();
    let schema = decoding.schema().unwrap();
    let spill = Spill::default();
    let mut runner =
        ViewRunner::new("player.play-events", &view, schema, 0, 1000, &spill, None).unwrap();
    let (mut files, mut newest) = (BTreeMap::new(), BTreeMap::<String, Manifest>::new());
    let mut take = |step: Step| {
        for put in step.puts {
            files.insert(put.path, put.bytes);
        }
        for manifest in step.closed {
            if newest
                .get(&manifest.window)
                .is_none_or(|m| m.version < manifest.version)
            {
                newest.insert(manifest.window.clone(), manifest);
            }
        }
    };
    for (offset, (user, play, time)) in plays.iter().enumerate() {
        let event = PlayEvent {
            play_id: (*play).into(),
            user_id: (*user).into(),
            track_id: "track-1".into(),
            artist_id: "artist-1".into(),
            device: Device::Web,
            country: "SE".into(),
            started_at: *time,
            duration_ms: 1000,
            completed: true,
            context: None,
        };
        let payload = wire::encode(1, &writer.write_ser_to_vec(&event).unwrap());
        decoding
            .push(0, offset as i64, Some(*time), Some(play), &payload)
            .unwrap();
        let rows = decoding.finish().unwrap().unwrap();
        take(runner.step(&rows).unwrap());
        take(runner.advance(Instant::now(), None).unwrap());
        take(runner.amend().unwrap());
    }
    newest
        .into_iter()
        .map(|(window, manifest)| {
            let mut users = Vec::new();
            for file in &manifest.files {
                for batch in parquet::decode(files[&file.path].clone()).unwrap() {
                    let column = batch.column(batch.schema().index_of("user_id").unwrap());
                    let column = column.as_any().downcast_ref::<StringArray>().unwrap();
                    users.extend((0..column.len()).map(|i| column.value(i).to_owned()));
                }
            }
            (window, users)
        })
        .collect()
}

#[test]
fn a_late_change_known_when_a_window_closes_is_in_its_newest_version() {
    let newest = newest_users(&[
        ("user-a", "play-1", T0 + 10_000),
        // closes minute 0
        ("user-b", "play-2", T0 + MIN + 10_000),
        // late for minute 0 (amended at once), on time for nothing open
        ("user-c", "play-3", T0 + 20_000),
        // closes minute 1: its version 1 holds user-a and user-b; user-c's late play came before
        ("user-d", "play-4", T0 + 2 * MIN + 10_000),
        // closes minute 2
        ("user-e", "play-5", T0 + 3 * MIN + 10_000),
    ]);
    let users = |window: &str| newest[window].join(",");
    assert_eq!(users("2026-11-25T00-00"), "user-a,user-c");
    assert_eq!(
        users("2026-11-25T00-01"),
        "user-a,user-b,user-c",
        "the late change of minute 0 counts for minute 1"
    );
    assert_eq!(users("2026-11-25T00-02"), "user-a,user-b,user-c,user-d");
}
