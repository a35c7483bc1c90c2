//! The snapshotter against the real (embedded) broker: each view kind over several windows with
//! out-of-order, late and quiet-partition cases, read back with the `parquet` crate; and a
//! snapshotter process `SIGKILL`ed mid-stream writing the same snapshots as an uninterrupted run.

mod common;

use std::{
    collections::{BTreeMap, HashMap},
    path::Path,
    sync::Arc,
    time::Duration,
};

use arrow_array::{Array, Int64Array, RecordBatch, StringArray};
use chrono::{DateTime, Utc};
use meshline::sdk::kafka::RecordExt as _;
use meshline::{
    demo::events::{Device, PlayEvent},
    product::Catalog,
    sdk::{producer::Target, Producer},
    snapshot::{self, listing, manifest::Manifest, SnapshotterConfig, Store},
};
use rdkafka::{consumer::Consumer as _, message::Headers as _, Message as _};
use tokio_util::sync::CancellationToken;

const TOPIC: &str = "player.play-events";
/// 2026-11-25T10:00:00Z
const T0: i64 = 1_795_600_800_000;
const MIN: i64 = 60_000;

/// The player product with the test's views on 4 partitions, in a configuration directory of
/// its own.
fn test_catalog(dir: &Path, views: &str) -> Catalog {
    catalog_with_partitions(dir, views, 4)
}

/// [`test_catalog`] with `partitions` partitions.
fn catalog_with_partitions(dir: &Path, views: &str, partitions: u32) -> Catalog {
    let schemas = dir.join("schemas");
    std::fs::create_dir_all(&schemas).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/player/play-event.avsc"),
        schemas.join("play-event.avsc"),
    )
    .unwrap();
    let config = dir.join("config");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("plays.yaml"),
        format!(
            "id: player.play-events
domain: player
owner: {{team: player-squad, email: player-squad@example.com}}
description: Plays, for the snapshotter's tests.
schema: ../schemas/play-event.avsc
cloudevents: {{types: [com.example.player.track.played], source: /player}}
partitions: {partitions}
views:
{views}"
        ),
    )
    .unwrap();
    meshline::formats::load_catalog(&config).unwrap()
}

async fn platform(catalog: &Catalog) -> (meshline::broker::embedded::EmbeddedBroker, String) {
    let broker = common::memory_broker().await;
    meshline::broker::ensure_topics(&broker.bootstrap(), catalog)
        .await
        .unwrap();
    let (registry, url, stop) = common::registry(&broker.bootstrap()).await;
    std::mem::forget(stop);
    for product in catalog.iter() {
        registry.register_product(product).await.unwrap();
    }
    std::mem::forget(registry);
    (broker, url)
}

fn play(n: usize, at: i64, user: &str, track: &str, duration_ms: i64) -> PlayEvent {
    PlayEvent {
        play_id: format!("play-{n}"),
        user_id: user.into(),
        track_id: track.into(),
        artist_id: "artist-1".into(),
        device: Device::Mobile,
        country: "SE".into(),
        started_at: at,
        duration_ms,
        completed: true,
        context: None,
    }
}

/// Writes `events` (partition, event) straight to the product topic, in order.
async fn write(bootstrap: &str, registry_url: &str, events: &[(i32, PlayEvent)]) {
    let sdk = Producer::builder(bootstrap, registry_url)
        .source("/player/test")
        .target(Target::Direct)
        .event::<PlayEvent>()
        .build()
        .await
        .unwrap();
    let kafka = common::producer(bootstrap);
    let mut pending = Vec::new();
    for (partition, event) in events {
        let record = sdk.record_for(event).await.unwrap();
        pending.push(meshline::broker::send_blocking(&kafka, TOPIC, *partition, &record).unwrap());
    }
    for p in pending {
        p.await.unwrap().unwrap();
    }
}

fn config(bootstrap: &str, url: &str, store: &Store) -> SnapshotterConfig {
    let mut config = SnapshotterConfig::new(bootstrap, url, store.clone());
    config.checkpoint_interval = Duration::from_millis(200);
    config
}

/// Runs the snapshotter in this process until `done` says the store holds what it waits for.
async fn snapshot_until(
    config: SnapshotterConfig,
    catalog: Catalog,
    done: impl Fn(
        &BTreeMap<String, Vec<listing::Listed>>,
        Option<&snapshot::manifest::Progress>,
    ) -> bool,
) -> BTreeMap<String, Vec<listing::Listed>> {
    let registry = prometheus::Registry::new();
    let metrics = snapshot::Metrics::new(&registry).unwrap();
    let stop = CancellationToken::new();
    let store = config.store.clone();
    let catalog = Arc::new(catalog);
    let views: Vec<String> = catalog
        .iter()
        .flat_map(|p| p.descriptor.views.iter().map(|v| v.name.clone()))
        .collect();
    let task = tokio::spawn(snapshot::worker::run(
        config,
        catalog,
        metrics,
        stop.clone(),
    ));
    // a failed wait stops the worker too, so the runtime can shut down
    let _stopping = stop.clone().drop_guard();
    let listed = common::within(60, "snapshots written", async {
        loop {
            // the progress, then the commits of the pieces it accounts for, then the snapshots
            let progress = snapshot::worker::load_progress(&store, TOPIC)
                .await
                .unwrap();
            if !committed(&store, &views).await {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            let mut listed = BTreeMap::new();
            for view in &views {
                listed.insert(
                    view.clone(),
                    listing::list(&store, TOPIC, view).await.unwrap(),
                );
            }
            if done(&listed, progress.as_ref()) {
                return listed;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    stop.cancel();
    task.await.unwrap();
    listed
}

/// Whether the commit step has caught up with the pieces in `store`: in each of `views`, every
/// window a partition wrote a piece of has a snapshot made of the newest piece of each.
async fn committed(store: &Store, views: &[impl AsRef<str>]) -> bool {
    for view in views {
        let view = view.as_ref();
        let mut newest: BTreeMap<String, BTreeMap<i32, u32>> = BTreeMap::new();
        let root = format!("snapshots/player/play-events/{view}");
        for path in store.list(&root).await.unwrap() {
            // …/window=<label>/partition-<p>/v<n>/manifest.json
            let parts: Vec<&str> = path.rsplit('/').collect();
            let (Some(version), Some(partition), Some(window)) = (
                parts.get(1).and_then(|v| v.strip_prefix('v')),
                parts.get(2).and_then(|p| p.strip_prefix("partition-")),
                parts.get(3).and_then(|w| w.strip_prefix("window=")),
            ) else {
                continue;
            };
            if parts[0] != "manifest.json" {
                continue;
            }
            let v = newest
                .entry(window.to_owned())
                .or_default()
                .entry(partition.parse().unwrap())
                .or_default();
            *v = (*v).max(version.parse().unwrap());
        }
        let listed = listing::list(store, TOPIC, view).await.unwrap();
        for (window, pieces) in newest {
            if !listed.iter().any(|l| l.window == window) {
                return false;
            }
            // the window may expire meanwhile
            let Some(bytes) = listing::manifest(store, TOPIC, view, &window, None)
                .await
                .unwrap()
            else {
                return false;
            };
            let manifest: Manifest = serde_json::from_slice(&bytes).unwrap();
            if pieces
                .iter()
                .any(|(p, v)| manifest.pieces.get(p) != Some(&format!("{window}/v{v}")))
            {
                return false;
            }
        }
    }
    true
}

async fn manifest_of(store: &Store, view: &str, window: &str) -> Manifest {
    let bytes = listing::manifest(store, TOPIC, view, window, None)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no manifest for {view} {window}"));
    serde_json::from_slice(&bytes).unwrap()
}

async fn rows_of(store: &Store, manifest: &Manifest) -> Vec<RecordBatch> {
    let mut batches = Vec::new();
    for file in &manifest.files {
        let bytes = store.get(&file.path).await.unwrap();
        assert_eq!(bytes.len() as u64, file.bytes);
        batches.extend(snapshot::parquet::decode(bytes).unwrap());
    }
    batches
}

fn strings(batches: &[RecordBatch], column: &str) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| {
            let c = arrow_cast::cast(
                b.column_by_name(column).unwrap(),
                &arrow_schema::DataType::Utf8,
            )
            .unwrap();
            let c = c.as_any().downcast_ref::<StringArray>().unwrap().clone();
            (0..c.len())
                .map(move |i| c.value(i).to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

fn longs(batches: &[RecordBatch], column: &str) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            let c = b.column_by_name(column).unwrap();
            let c = arrow_cast::cast(c, &arrow_schema::DataType::Int64).unwrap();
            let c = c.as_any().downcast_ref::<Int64Array>().unwrap().clone();
            (0..c.len()).map(move |i| c.value(i)).collect::<Vec<_>>()
        })
        .collect()
}

fn svec(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn label(minute: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(T0 + minute * MIN)
        .unwrap()
        .format("%Y-%m-%dT%H-%M")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_view_kind_writes_its_windows_with_out_of_order_late_and_quiet_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = test_catalog(
        dir.path(),
        "  - {name: plays, kind: events, window: minute, allowed_lateness: 30s, idle_timeout: 1s, late: amend}
  - name: per-track
    kind: aggregate
    window: minute
    key: [track_id]
    allowed_lateness: 30s
    idle_timeout: 1s
    late: dlq
    aggregations:
      - {name: plays, function: count}
      - {name: listened_ms, function: sum, field: duration_ms}
      - {name: shortest_ms, function: min, field: duration_ms}
      - {name: longest_ms, function: max, field: duration_ms}
      - {name: listeners, function: distinct_count, field: user_id}
  - {name: last-play, kind: latest, window: minute, key: [user_id], allowed_lateness: 30s, idle_timeout: 1s}
  - {name: last-play-amended, kind: latest, window: minute, key: [user_id], allowed_lateness: 30s, idle_timeout: 1s, late: amend}
  - name: amended-tracks
    kind: aggregate
    window: minute
    key: [track_id]
    allowed_lateness: 30s
    idle_timeout: 1s
    late: amend
    aggregations: [{name: plays, function: count}]
",
    );
    let (broker, url) = platform(&catalog).await;
    let bootstrap = broker.bootstrap();
    let s = 1000;
    // partition 3 stays quiet: it must not hold the windows open
    let events = vec![
        (0, play(1, T0 + 10 * s, "ann", "t1", 100)),
        (0, play(2, T0 + 50 * s, "bob", "t1", 300)),
        (1, play(3, T0 + 30 * s, "ann", "t2", 50)),
        (0, play(4, T0 + 80 * s, "ann", "t1", 200)),
        // out of order, within the allowed lateness of partition 0 (max 1:20 − 30 s < 1:00)
        (0, play(5, T0 + 40 * s, "cid", "t1", 500)),
        (2, play(6, T0 + 65 * s, "bob", "t2", 10)),
        (1, play(7, T0 + 90 * s, "cid", "t2", 20)),
        (0, play(8, T0 + 130 * s, "ann", "t1", 1)),
        // late: partition 0 is at 2:10, past 1:00 + 30 s
        (0, play(9, T0 + 20 * s, "dan", "t1", 7)),
        (1, play(10, T0 + 150 * s, "bob", "t2", 2)),
        (2, play(11, T0 + 170 * s, "eve", "t3", 3)),
        // move every busy partition's watermark past minute 3
        (0, play(12, T0 + 10 * MIN, "ann", "t9", 1)),
        (1, play(13, T0 + 10 * MIN, "ann", "t9", 1)),
        (2, play(14, T0 + 10 * MIN, "ann", "t9", 1)),
    ];
    write(&bootstrap, &url, &events).await;
    let store = Store::open(dir.path().join("store").to_str().unwrap()).unwrap();
    let windows = [label(0), label(1), label(2)];
    let first = label(0);
    let listed = snapshot_until(config(&bootstrap, &url, &store), catalog, |listed, _| {
        listed
            .values()
            .all(|l| windows.iter().all(|w| l.iter().any(|s| &s.window == w)))
            // the late event amends minute 0: version 1 holds the events on time
            && listed["plays"]
                .iter()
                .any(|s| s.window == first && s.version == 2)
            && windows.iter().all(|w| {
                listed["last-play-amended"]
                    .iter()
                    .any(|s| &s.window == w && s.version >= 2)
            })
    })
    .await;
    let on_time = listing::manifest(&store, TOPIC, "plays", &label(0), Some(1))
        .await
        .unwrap()
        .unwrap();
    let on_time: Manifest = serde_json::from_slice(&on_time).unwrap();
    let mut ids = strings(&rows_of(&store, &on_time).await, "play_id");
    ids.sort();
    assert_eq!(ids, ["play-1", "play-2", "play-3", "play-5"]);
    // no window beyond minute 2 closed: the watermark is at 9:30 at most
    assert!(listed["plays"].iter().all(|s| s.window <= label(9)));

    // events: every event of the window in offset order per partition, the late one added
    let m0 = manifest_of(&store, "plays", &label(0)).await;
    let rows = rows_of(&store, &m0).await;
    let mut ids = strings(&rows, "play_id");
    ids.sort();
    assert_eq!(ids, ["play-1", "play-2", "play-3", "play-5", "play-9"]);
    assert_eq!(m0.rows, 5);
    assert_eq!(m0.sources[&0].events, 4);
    assert_eq!(m0.sources[&1].events, 1);
    assert!(!m0.sources.contains_key(&3));
    let m1 = manifest_of(&store, "plays", &label(1)).await;
    let mut ids = strings(&rows_of(&store, &m1).await, "play_id");
    ids.sort();
    assert_eq!(ids, ["play-4", "play-6", "play-7"]);
    for manifest in [&m0, &m1] {
        for file in &manifest.files {
            // an events view's files are its partitions' pieces
            assert!(
                file.path
                    .contains(&format!("/plays/window={}/partition-", manifest.window)),
                "{}",
                file.path
            );
            assert_eq!(file.sha256.len(), 64);
        }
    }
    let rows = rows_of(&store, &m1).await;
    assert_eq!(
        strings(&rows, "_event_id").len(),
        3,
        "every row carries its CloudEvents id"
    );

    // aggregate: per track, the late event dead-lettered instead
    let a0 = rows_of(&store, &manifest_of(&store, "per-track", &label(0)).await).await;
    assert_eq!(strings(&a0, "track_id"), ["t1", "t2"]);
    assert_eq!(longs(&a0, "plays"), [3, 1]);
    assert_eq!(longs(&a0, "listened_ms"), [900, 50]);
    assert_eq!(longs(&a0, "shortest_ms"), [100, 50]);
    assert_eq!(longs(&a0, "longest_ms"), [500, 50]);
    assert_eq!(longs(&a0, "listeners"), [3, 1]);
    let a1 = rows_of(&store, &manifest_of(&store, "per-track", &label(1)).await).await;
    assert_eq!(strings(&a1, "track_id"), ["t1", "t2"]);
    assert_eq!(longs(&a1, "plays"), [1, 2]);
    assert_eq!(longs(&a1, "listeners"), [1, 2]);

    let dlq = dead_letters(&bootstrap).await;
    assert_eq!(dlq.len(), 1, "the late event, once: {dlq:?}");
    assert_eq!(dlq[0].0, "play-9");
    assert_eq!(
        dlq[0].1.get("meshline_reason").map(String::as_str),
        Some("late_event")
    );
    assert_eq!(
        dlq[0].1.get("meshline_source_topic").map(String::as_str),
        Some(TOPIC)
    );

    // latest: each user's newest play as of each window's end; state carries over, late dropped
    let l0 = rows_of(&store, &manifest_of(&store, "last-play", &label(0)).await).await;
    assert_eq!(strings(&l0, "user_id"), ["ann", "bob", "cid"]);
    assert_eq!(strings(&l0, "play_id"), ["play-3", "play-2", "play-5"]);
    let l1 = rows_of(&store, &manifest_of(&store, "last-play", &label(1)).await).await;
    assert_eq!(strings(&l1, "user_id"), ["ann", "bob", "cid"]);
    assert_eq!(strings(&l1, "play_id"), ["play-4", "play-6", "play-7"]);
    let l2 = rows_of(&store, &manifest_of(&store, "last-play", &label(2)).await).await;
    assert_eq!(strings(&l2, "user_id"), ["ann", "bob", "cid", "eve"]);
    assert_eq!(
        strings(&l2, "play_id"),
        ["play-8", "play-10", "play-7", "play-11"]
    );

    // a restart resumes from its progress; a late event for minute 0 amends the `events` view
    // again (a version 3 with every file of version 2 and the late one) and is dead-lettered once
    write(
        &bootstrap,
        &url,
        &[(1, play(15, T0 + 5 * s, "fay", "t1", 9))],
    )
    .await;
    let catalog = meshline::formats::load_catalog(&dir.path().join("config")).unwrap();
    snapshot_until(config(&bootstrap, &url, &store), catalog, |listed, _| {
        listed["plays"]
            .iter()
            .any(|s| s.window == first && s.version == 3)
            && listed["amended-tracks"]
                .iter()
                .any(|s| s.window == first && s.version >= 3)
            && windows.iter().all(|w| {
                listed["last-play-amended"]
                    .iter()
                    .any(|s| &s.window == w && s.version >= 3)
            })
    })
    .await;
    let v2 = manifest_of(&store, "plays", &label(0)).await;
    assert_eq!(v2.version, 3);
    assert_eq!(
        v2.files[..m0.files.len()],
        m0.files[..],
        "version 3 keeps version 2's files"
    );
    let mut ids = strings(&rows_of(&store, &v2).await, "play_id");
    ids.sort();
    assert_eq!(
        ids,
        ["play-1", "play-15", "play-2", "play-3", "play-5", "play-9"]
    );
    assert_eq!(v2.sources[&1].events, 2);
    let v1 = listing::manifest(&store, TOPIC, "plays", &label(0), Some(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        serde_json::from_slice::<Manifest>(&v1).unwrap(),
        m0,
        "version 2 is unchanged"
    );
    let mut dlq: Vec<String> = dead_letters(&bootstrap)
        .await
        .into_iter()
        .map(|d| d.0)
        .collect();
    dlq.sort();
    assert_eq!(
        dlq,
        ["play-15", "play-9"],
        "each late event dead-lettered once, across a restart"
    );
    // the amending aggregate rebuilt its groups of minute 0 from the topic after the restart,
    // and wrote them again with the late event: every play of minute 0 counted once
    let amended = manifest_of(&store, "amended-tracks", &label(0)).await;
    assert!(amended.version >= 2, "{amended:?}");
    assert_eq!(
        amended.files.len(),
        1,
        "an aggregate amendment is a whole snapshot"
    );
    let rows = rows_of(&store, &amended).await;
    assert_eq!(strings(&rows, "track_id"), ["t1", "t2"]);
    assert_eq!(longs(&rows, "plays"), [5, 1]);
    let minute_1 = rows_of(
        &store,
        &manifest_of(&store, "amended-tracks", &label(1)).await,
    )
    .await;
    assert_eq!(longs(&minute_1, "plays"), [1, 2], "minute 1 untouched");

    // the amending latest view: each window's newest version has every late change of it and
    // of the windows before it, after a restart too (version 1 of each came back from the store)
    let newest = |minute| {
        let store = store.clone();
        async move {
            let m = manifest_of(&store, "last-play-amended", &label(minute)).await;
            let rows = rows_of(&store, &m).await;
            (strings(&rows, "user_id"), strings(&rows, "play_id"))
        }
    };
    assert_eq!(
        newest(0).await,
        (
            svec(&["ann", "bob", "cid", "dan", "fay"]),
            svec(&["play-3", "play-2", "play-5", "play-9", "play-15"])
        )
    );
    assert_eq!(
        newest(1).await,
        (
            svec(&["ann", "bob", "cid", "dan", "fay"]),
            svec(&["play-4", "play-6", "play-7", "play-9", "play-15"])
        )
    );
    assert_eq!(
        newest(2).await,
        (
            svec(&["ann", "bob", "cid", "dan", "eve", "fay"]),
            svec(&["play-8", "play-10", "play-7", "play-9", "play-11", "play-15"])
        )
    );
    let first_version = listing::manifest(&store, TOPIC, "last-play-amended", &label(0), Some(1))
        .await
        .unwrap()
        .unwrap();
    let first_version: Manifest = serde_json::from_slice(&first_version).unwrap();
    assert_eq!(
        strings(&rows_of(&store, &first_version).await, "user_id"),
        ["ann", "bob", "cid"],
        "version 1 holds the events on time"
    );

    // nothing else changed: the other windows are still at version 1
    let listed = listing::list(&store, TOPIC, "per-track").await.unwrap();
    assert!(listed.iter().all(|l| l.version == 1));
}

/// The dead letters of the product: (play id, headers).
async fn dead_letters(bootstrap: &str) -> Vec<(String, HashMap<String, String>)> {
    let consumer: rdkafka::consumer::StreamConsumer =
        common::consumer_config(bootstrap, "dlq-reader")
            .create()
            .unwrap();
    consumer.subscribe(&[&format!("{TOPIC}.dlq")]).unwrap();
    let mut out = Vec::new();
    while let Ok(Ok(message)) = tokio::time::timeout(Duration::from_secs(3), consumer.recv()).await
    {
        let record = meshline::binding::kafka::Record::from_message(&message);
        let headers: HashMap<String, String> = message
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| {
                        (
                            h.key.to_owned(),
                            String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let schema = <PlayEvent as apache_avro::AvroSchema>::get_schema();
        let value = apache_avro::reader::datum::GenericDatumReader::builder(&schema)
            .build()
            .unwrap()
            .read_value(&mut &record.payload.as_deref().unwrap()[5..])
            .unwrap();
        let play: PlayEvent = apache_avro::from_value(&value).unwrap();
        out.push((play.play_id, headers));
    }
    out
}

const KILL_VIEWS: &str = "  - {name: plays, kind: events, window: minute, allowed_lateness: 30s}
  - name: per-track
    kind: aggregate
    window: minute
    key: [track_id]
    allowed_lateness: 30s
    late: LATE
    aggregations:
      - {name: plays, function: count}
      - {name: listened_ms, function: sum, field: duration_ms}
      - {name: listeners, function: distinct_count, field: user_id}
  - {name: last-play, kind: latest, window: minute, key: [user_id], allowed_lateness: 30s}
  - {name: last-play-amended, kind: latest, window: minute, key: [user_id], allowed_lateness: 30s, late: amend}
  - name: amended-tracks
    kind: aggregate
    window: minute
    key: [track_id]
    allowed_lateness: 30s
    late: amend
    aggregations: [{name: plays, function: count}]
";

/// Asserts the snapshot files under `root` are `expected`'s, byte for byte (see
/// [`snapshot_files`]), naming what `expected` came from.
fn assert_same_files(expected: &BTreeMap<String, Vec<u8>>, root: &Path, reference: &str) {
    let got = snapshot_files(root);
    let missing: Vec<_> = expected.keys().filter(|k| !got.contains_key(*k)).collect();
    let extra: Vec<_> = got.keys().filter(|k| !expected.contains_key(*k)).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, extra {extra:?}"
    );
    for (name, bytes) in expected {
        assert!(&got[name] == bytes, "{name} differs from {reference}");
    }
}

/// Whether `progress` has its `views` views, each with every window closed through `through`
/// (epoch ms) and all `per_partition` records of each of `partitions` partitions taken in.
fn took_in_all(
    progress: &snapshot::manifest::Progress,
    views: usize,
    partitions: i32,
    per_partition: i64,
    through: i64,
) -> bool {
    progress.views.len() == views
        && progress.views.values().all(|v| {
            v.closed_through.is_some_and(|c| c >= through)
                && (0..partitions).all(|p| {
                    v.partitions
                        .get(&p)
                        .is_some_and(|p| p.done_through == per_partition - 1)
                })
        })
}

/// Every file of the snapshots (not the progress), with manifests' `watermark` left out: it
/// says when a window closed, which depends on how partitions interleave (a replay keeps the
/// manifest it finds, but one written by the reference run has its own).
fn snapshot_files(root: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut dirs = vec![root.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.strip_prefix(root).unwrap().display().to_string();
            if path.is_dir() {
                if !name.ends_with("_progress") {
                    dirs.push(path);
                }
                continue;
            }
            if name.contains('#')
                || name.contains("/amended-tracks/")
                || name.contains("/last-play-amended/")
            {
                // amendments: compared by their newest versions' rows below
                // object_store's staging file of a write the kill interrupted: never listed
                continue;
            }
            let mut bytes = std::fs::read(&path).unwrap();
            if name.ends_with("manifest.json") {
                let mut manifest: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                manifest["watermark"] = serde_json::Value::Null;
                bytes = serde_json::to_vec(&manifest).unwrap();
            }
            files.insert(name, bytes);
        }
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshotter_killed_mid_stream_writes_the_same_snapshots_as_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    let reference_dir = dir.path().join("reference");
    let killed_dir = dir.path().join("killed");
    let reference = test_catalog(&reference_dir, &KILL_VIEWS.replace("LATE", "drop"));
    test_catalog(&killed_dir, &KILL_VIEWS.replace("LATE", "dlq"));
    let (broker, url) = platform(&reference).await;
    let bootstrap = broker.bootstrap();

    // 40,000 plays over 120 minutes on 4 partitions, each partition a little out of order
    // (up to 20 s back), with every 500th event from minute 3 on 5 minutes late
    let is_late = |n: usize| n % 500 == 499 && n >= 999;
    let minutes = 120;
    let total = 40_000;
    let mut events = Vec::with_capacity(total + 4);
    for n in 0..total {
        let partition = (n % 4) as i32;
        let base = T0 + (n as i64 * minutes * MIN) / total as i64;
        let jitter = ((n * 7919) % 20_000) as i64;
        let at = if is_late(n) {
            base - 5 * MIN
        } else {
            base - jitter
        };
        let user = format!("user-{}", (n * 31) % 3000);
        let track = format!("track-{}", (n * 17) % 200);
        events.push((
            partition,
            play(n, at.max(T0), &user, &track, (n % 1000) as i64),
        ));
    }
    for partition in 0..4 {
        events.push((
            partition,
            play(
                total + partition as usize,
                T0 + (minutes + 10) * MIN,
                "x",
                "x",
                0,
            ),
        ));
    }
    write(&bootstrap, &url, &events).await;
    let all_closed = |listed: &BTreeMap<String, Vec<listing::Listed>>| {
        let last = label(minutes - 1);
        listed.values().all(|l| l.iter().any(|s| s.window == last))
    };

    // done when its progress (written after every snapshot and amendment it accounts for) has
    // taken in every record and closed every window: the last windows' amendments come after
    // their version 1
    let taken_in = |progress: &snapshot::manifest::Progress| {
        took_in_all(progress, 5, 4, (total / 4 + 1) as i64, T0 + minutes * MIN)
    };

    // the reference: one uninterrupted run
    let reference_store = Store::open(reference_dir.join("store").to_str().unwrap()).unwrap();
    let mut config = config(&bootstrap, &url, &reference_store);
    config.max_rows_per_file = 50;
    snapshot_until(config, reference, |listed, progress| {
        all_closed(listed) && progress.is_some_and(taken_in)
    })
    .await;

    // the same, as a process killed at random points while it writes, its `latest` and `aggregate` state
    // spilling to disk past 7 keys or groups (the reference holds all of it in memory)
    let store_dir = killed_dir.join("store");
    let spill_dir = killed_dir.join("spill");
    let killed_store = Store::open(store_dir.to_str().unwrap()).unwrap();
    let spawn = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_meshline"))
            .args([
                "snapshotter",
                "--bootstrap",
                &bootstrap,
                "--registry-url",
                &url,
            ])
            .args(["--snapshots", store_dir.to_str().unwrap()])
            .args(["--config", killed_dir.join("config").to_str().unwrap()])
            .args(["--http-listen", "127.0.0.1:0", "--max-rows-per-file", "50"])
            .args([
                "--max-state-rows",
                "7",
                "--spill-dir",
                spill_dir.to_str().unwrap(),
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let written = |at_least: usize| {
        let store = killed_store.clone();
        async move {
            loop {
                let n = listing::list(&store, TOPIC, "plays").await.unwrap().len();
                if n >= at_least {
                    return n;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    // SIGKILLed at random points (3 rounds by default, see `common::kill_points`)
    for (at, delay) in common::kill_points(3, 5, 90) {
        let mut child = spawn();
        common::within(60, "snapshots before the kill", written(at as usize)).await;
        tokio::time::sleep(delay).await;
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
    }
    let mut child = spawn();
    common::within(180, "every record taken in after the kills", async {
        loop {
            if let Some(progress) = snapshot::worker::load_progress(&killed_store, TOPIC)
                .await
                .unwrap()
            {
                let views: Vec<&String> = progress.views.keys().collect();
                if taken_in(&progress) && committed(&killed_store, &views).await {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();

    let expected = snapshot_files(&reference_dir.join("store"));
    assert!(
        expected.len() > 3 * minutes as usize,
        "{} files",
        expected.len()
    );
    assert_same_files(&expected, &store_dir, "the uninterrupted run");

    // amendments: how many versions depends on when late events came, the newest is the same
    let newest = |store: Store| async move {
        let mut rows = BTreeMap::new();
        for listed in listing::list(&store, TOPIC, "amended-tracks")
            .await
            .unwrap()
        {
            let manifest = manifest_of(&store, "amended-tracks", &listed.window).await;
            let batches = rows_of(&store, &manifest).await;
            rows.insert(
                listed.window,
                (strings(&batches, "track_id"), longs(&batches, "plays")),
            );
        }
        rows
    };
    let expected = newest(reference_store.clone()).await;
    assert_eq!(expected.len(), minutes as usize);
    let got = newest(killed_store.clone()).await;
    let differ: Vec<_> = expected
        .iter()
        .filter(|(w, v)| got.get(*w) != Some(v))
        .map(|(w, v)| {
            let total: i64 = v.1.iter().sum();
            let got_total: i64 = got.get(w).map_or(0, |g| g.1.iter().sum());
            (w.clone(), total, got_total)
        })
        .collect();
    assert!(
        differ.is_empty(),
        "amended windows differ (window, plays expected, got): {differ:?}"
    );
    let newest_states = |store: Store| async move {
        let mut rows = BTreeMap::new();
        for listed in listing::list(&store, TOPIC, "last-play-amended")
            .await
            .unwrap()
        {
            let manifest = manifest_of(&store, "last-play-amended", &listed.window).await;
            let batches = rows_of(&store, &manifest).await;
            rows.insert(
                listed.window,
                (strings(&batches, "user_id"), strings(&batches, "play_id")),
            );
        }
        rows
    };
    let expected_states = newest_states(reference_store.clone()).await;
    assert_eq!(expected_states.len(), minutes as usize);
    let got_states = newest_states(killed_store.clone()).await;
    let differ: Vec<String> = expected_states
        .iter()
        .filter(|(w, v)| got_states.get(*w) != Some(v))
        .map(|(w, v)| {
            let g = &got_states[w];
            let diff: Vec<_> =
                v.0.iter()
                    .zip(&v.1)
                    .filter(|(u, p)| !g.0.iter().zip(&g.1).any(|(gu, gp)| gu == *u && gp == *p))
                    .collect();
            format!(
                "{w}: {} vs {} rows, expected rows not found: {diff:?}",
                v.0.len(),
                g.0.len()
            )
        })
        .collect();
    assert!(differ.is_empty(), "latest states differ: {differ:#?}");
    let counted: i64 = expected.values().flat_map(|(_, plays)| plays).sum();
    assert_eq!(
        counted, total as i64,
        "every play counted once, the late ones too"
    );

    // every late event in the dead-letter topic exactly once
    let late: Vec<String> = (0..total)
        .filter(|n| is_late(*n))
        .map(|n| format!("play-{n}"))
        .collect();
    let mut dlq: Vec<String> = dead_letters(&bootstrap)
        .await
        .into_iter()
        .map(|d| d.0)
        .collect();
    dlq.sort();
    let mut expected_late = late.clone();
    expected_late.sort();
    assert_eq!(dlq, expected_late);
}

/// The views of the workers' test: every kind, late events left out.
const WORKER_VIEWS: &str = "  - {name: plays, kind: events, window: minute, allowed_lateness: 30s}
  - name: per-track
    kind: aggregate
    window: minute
    key: [track_id]
    allowed_lateness: 30s
    aggregations:
      - {name: plays, function: count}
      - {name: listeners, function: distinct_count, field: user_id}
  - {name: last-play, kind: latest, window: minute, key: [user_id], allowed_lateness: 30s}
";

/// A worker process of the workers' test: its log (stderr) goes to `log`.
fn worker(bootstrap: &str, url: &str, dir: &Path, log: &Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_meshline"))
        .args([
            "snapshotter",
            "--bootstrap",
            bootstrap,
            "--registry-url",
            url,
        ])
        .args(["--snapshots", dir.join("store").to_str().unwrap()])
        .args(["--config", dir.join("config").to_str().unwrap()])
        .args(["--http-listen", "127.0.0.1:0", "--max-rows-per-file", "50"])
        .args(["--spill-dir", log.with_extension("spill").to_str().unwrap()])
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

/// Times `log` says its worker took the product on.
fn took_over(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches("this worker runs the product's commit step")
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_workers_one_killed_and_one_added_write_what_one_worker_writes() {
    let dir = tempfile::tempdir().unwrap();
    let reference_dir = dir.path().join("reference");
    let shared_dir = dir.path().join("workers");
    let reference = catalog_with_partitions(&reference_dir, WORKER_VIEWS, 8);
    catalog_with_partitions(&shared_dir, WORKER_VIEWS, 8);
    let (broker, url) = platform(&reference).await;
    let bootstrap = broker.bootstrap();

    // 16,000 plays over 60 minutes on 8 partitions, a little out of order, then one per
    // partition 10 minutes later, which closes every window
    let minutes = 60;
    let total = 16_000;
    let mut events: Vec<(i32, PlayEvent)> = (0..total)
        .map(|n| {
            let at = T0 + (n as i64 * minutes * MIN) / total as i64 - ((n * 7919) % 10_000) as i64;
            let user = format!("user-{}", (n * 31) % 500);
            let track = format!("track-{}", (n * 17) % 100);
            (
                (n % 8) as i32,
                play(n, at.max(T0), &user, &track, (n % 1000) as i64),
            )
        })
        .collect();
    for partition in 0..8 {
        let n = total + partition as usize;
        events.push((partition, play(n, T0 + (minutes + 10) * MIN, "x", "x", 0)));
    }
    write(&bootstrap, &url, &events).await;
    let taken_in = |progress: &snapshot::manifest::Progress| {
        took_in_all(progress, 3, 8, (total / 8 + 1) as i64, T0 + minutes * MIN)
    };

    let reference_store = Store::open(reference_dir.join("store").to_str().unwrap()).unwrap();
    let mut config = config(&bootstrap, &url, &reference_store);
    config.max_rows_per_file = 50;
    snapshot_until(config, reference, |_, progress| {
        progress.is_some_and(taken_in)
    })
    .await;

    // three workers; the one running the product is killed mid-stream, and a fourth joins
    let store = Store::open(shared_dir.join("store").to_str().unwrap()).unwrap();
    let logs: Vec<_> = (0..4)
        .map(|i| shared_dir.join(format!("worker-{i}.log")))
        .collect();
    let mut workers: Vec<_> = logs[..3]
        .iter()
        .map(|log| worker(&bootstrap, &url, &shared_dir, log))
        .collect();
    let running = common::within(60, "one worker runs the product", async {
        loop {
            if let Some(i) = (0..3).find(|&i| took_over(&logs[i]) > 0) {
                return i;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    common::within(60, "snapshots before the kill", async {
        while listing::list(&store, TOPIC, "plays").await.unwrap().len() < 5 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    workers[running].kill().unwrap(); // SIGKILL
    workers[running].wait().unwrap();
    let at_kill = listing::list(&store, TOPIC, "plays").await.unwrap().len();
    let killed_at = std::time::Instant::now();
    workers.push(worker(&bootstrap, &url, &shared_dir, &logs[3]));
    common::within(90, "every record taken in after the kill", async {
        loop {
            if let Some(progress) = snapshot::worker::load_progress(&store, TOPIC)
                .await
                .unwrap()
            {
                let views: Vec<&String> = progress.views.keys().collect();
                if taken_in(&progress) && committed(&store, &views).await {
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    for worker in &mut workers {
        worker.kill().ok();
        worker.wait().unwrap();
    }
    let successors: Vec<usize> = (0..4)
        .filter(|&i| i != running && took_over(&logs[i]) > 0)
        .collect();
    assert!(
        !successors.is_empty(),
        "another worker took the product over after the kill"
    );
    eprintln!(
        "worker {running} killed with {at_kill} of {minutes} windows written; workers {successors:?} took over; done {:?} after the kill",
        killed_at.elapsed()
    );

    let expected = snapshot_files(&reference_dir.join("store"));
    assert!(
        expected.len() > 3 * minutes as usize,
        "{} files",
        expected.len()
    );
    assert_same_files(&expected, &shared_dir.join("store"), "the one-worker run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_past_a_views_keep_are_deleted_and_the_newer_ones_stay_whole() {
    let dir = tempfile::tempdir().unwrap();
    let views = VIEWS.replace("idle_timeout: 1s}", "idle_timeout: 1s, keep: 10m}");
    let catalog = test_catalog(dir.path(), &views);
    let (broker, url) = platform(&catalog).await;
    let bootstrap = broker.bootstrap();
    let minutes = 30;
    write(&bootstrap, &url, &minutes_of_plays(minutes)).await;
    let store = Store::open(dir.path().join("store").to_str().unwrap()).unwrap();
    let closed = |progress: &snapshot::manifest::Progress| {
        progress.views["plays"]
            .closed_through
            .filter(|c| *c >= T0 + minutes * MIN)
    };
    // done once the progress closed every window and the expiry after it ran
    let listed = snapshot_until(
        config(&bootstrap, &url, &store),
        catalog,
        |listed, progress| progress.and_then(closed).is_some() && listed["plays"].len() <= 12,
    )
    .await;
    let progress = snapshot::worker::load_progress(&store, TOPIC)
        .await
        .unwrap()
        .unwrap();
    let closed_through = closed(&progress).unwrap();
    // `plays` keeps the windows (those with events) that ended within 10 minutes of the newest
    // closed one
    let kept: Vec<String> = (0..minutes)
        .filter(|m| {
            let end = T0 + (m + 1) * MIN;
            end <= closed_through && end > closed_through - 10 * MIN
        })
        .map(label)
        .collect();
    let plays: Vec<String> = listed["plays"].iter().map(|l| l.window.clone()).collect();
    assert_eq!(plays, kept);
    let files = store
        .list("snapshots/player/play-events/plays")
        .await
        .unwrap();
    let (log, files): (Vec<_>, Vec<_>) =
        files.into_iter().partition(|f| f.contains("/_delta_log/"));
    assert!(
        files
            .iter()
            .all(|f| kept.iter().any(|k| f.contains(&format!("window={k}/")))
                || f.contains(&format!("window={}", label(minutes + 2)))),
        "no file of an expired window is left: {files:?}"
    );
    // the view's Delta table committed the removal of each expired window before its files went
    let mut deletes = Vec::new();
    for commit in log.iter().filter(|f| f.ends_with(".json")) {
        let text = String::from_utf8(store.get(commit).await.unwrap()).unwrap();
        if text.contains(r#""operation":"DELETE""#) {
            deletes.push(text);
        }
    }
    assert_eq!(deletes.len(), minutes as usize - kept.len());
    assert!(
        deletes[0].contains(&format!("window={}/", label(0))),
        "{}",
        deletes[0]
    );
    // the kept windows are whole; `per-track` has no `keep` and keeps every window
    for window in &kept {
        let manifest = manifest_of(&store, "plays", window).await;
        assert_eq!(manifest.rows, 100, "{window}");
    }
    assert_eq!(listed["per-track"].len(), minutes as usize);
}

/// Reads each of `listed`'s views (the test's `TABLE_VIEWS`) under `product_root` (a directory
/// or an `s3://` URI, with `env` for the readers) as `format` tables with the Python readers,
/// and checks they get the rows of the newest manifest of every window in `store`.
async fn read_back_as_tables(
    python: &str,
    format: &str,
    store: &Store,
    listed: &BTreeMap<String, Vec<listing::Listed>>,
    product_root: &str,
    env: &[(&str, &str)],
) {
    for (view, columns) in [
        ("plays", vec!["_event_id"]),
        ("per-track", vec!["track_id", "plays"]),
        ("last-play", vec!["user_id", "play_id"]),
    ] {
        // what the newest manifest of each window holds
        let mut expected = Vec::new();
        for l in &listed[view] {
            let batches = rows_of(store, &manifest_of(store, view, &l.window).await).await;
            for batch in &batches {
                for row in 0..batch.num_rows() {
                    let mut values = vec![serde_json::json!(l.window)];
                    for column in &columns {
                        let array = batch.column_by_name(column).unwrap();
                        let value = arrow_cast::display::ArrayFormatter::try_new(
                            array.as_ref(),
                            &Default::default(),
                        )
                        .unwrap()
                        .value(row)
                        .to_string();
                        values.push(match array.data_type() {
                            arrow_schema::DataType::Int64 => {
                                serde_json::json!(value.parse::<i64>().unwrap())
                            }
                            _ => serde_json::json!(value),
                        });
                    }
                    expected.push(values);
                }
            }
        }
        let sort = |rows: &mut Vec<Vec<serde_json::Value>>| {
            rows.sort_by_key(|r| serde_json::to_string(r).unwrap())
        };
        sort(&mut expected);
        let out = std::process::Command::new(python)
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/read_tables.py"))
            .arg(format)
            .arg(format!("{product_root}/{view}"))
            .envs(env.iter().copied())
            .args(&columns)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{view}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let read: HashMap<String, Vec<Vec<serde_json::Value>>> =
            serde_json::from_slice(&out.stdout).unwrap();
        eprintln!(
            "{view}: {} rows in {} windows, read by {:?}",
            expected.len(),
            listed[view].len(),
            read.keys().collect::<Vec<_>>()
        );
        for (reader, mut rows) in read {
            sort(&mut rows);
            assert_eq!(
                rows.len(),
                expected.len(),
                "{view} read by {reader}: row count"
            );
            assert!(rows == expected, "{view} read by {reader} differs");
        }
    }
}

/// Serves the catalog of the products configured in `dir` over `store`'s snapshots (and the
/// registry at `registry`) on a free port; returns its address.
async fn serve_catalog(dir: &Path, store: &Store, registry: &str) -> String {
    let catalog = Arc::new(meshline::formats::load_catalog(&dir.join("config")).unwrap());
    let service = meshline::catalog::Service::new(
        catalog,
        meshline::registry::client::Client::new(registry),
        "http://127.0.0.1",
        "127.0.0.1:9092",
    )
    .with_snapshots(store.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        axum::serve(listener, meshline::catalog::router(service))
            .await
            .ok()
    });
    address
}

/// [`minutes_of_plays`], then, after every window closed, `late` plays of minute `late_minute`
/// (user `late-user`, track `late-track`), late, which amend it.
fn plays_then_late(minutes: i64, late_minute: i64, late: usize) -> Vec<(i32, PlayEvent)> {
    let mut events = minutes_of_plays(minutes);
    events.extend((0..late).map(|n| {
        let at = T0 + late_minute * MIN + n as i64 * 1000;
        let play = play(200_000 + n, at, "late-user", "late-track", 5);
        ((n % 4) as i32, play)
    }));
    events
}

/// Every view kind, amending where the kind can, published as `FORMAT` tables.
const TABLE_VIEWS: &str = "  - {name: plays, kind: events, window: minute, allowed_lateness: 30s, idle_timeout: 1s, late: amend, format: FORMAT}
  - name: per-track
    kind: aggregate
    window: minute
    key: [track_id]
    allowed_lateness: 30s
    idle_timeout: 1s
    late: amend
    format: FORMAT
    aggregations:
      - {name: plays, function: count}
  - {name: last-play, kind: latest, window: minute, key: [user_id], allowed_lateness: 30s, idle_timeout: 1s, format: FORMAT}
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_and_iceberg_readers_and_duckdb_read_the_newest_version_of_every_window() {
    let python = common::interop_python();
    for format in ["delta", "iceberg"] {
        let dir = tempfile::tempdir().unwrap();
        let catalog = test_catalog(dir.path(), &TABLE_VIEWS.replace("FORMAT", format));
        let (broker, url) = platform(&catalog).await;
        let bootstrap = broker.bootstrap();
        let minutes = 10;
        write(&bootstrap, &url, &plays_then_late(minutes, 3, 20)).await;
        let store = Store::open(dir.path().join("store").to_str().unwrap()).unwrap();
        let amended = label(3);
        let mut config = config(&bootstrap, &url, &store);
        let sql_catalog = dir.path().join("iceberg-catalog.db");
        config.iceberg_catalog = Some(snapshot::SqlCatalog::new(&sql_catalog, "meshline"));
        let listed = snapshot_until(config, catalog, |listed, _| {
            ["plays", "per-track"].iter().all(|view| {
                listed[*view]
                    .iter()
                    .any(|l| l.window == amended && l.version >= 2)
            }) && listed["last-play"].len() == minutes as usize
        })
        .await;
        let root = dir.path().join("store/snapshots/player/play-events");
        read_back_as_tables(
            &python,
            format,
            &store,
            &listed,
            root.to_str().unwrap(),
            &[],
        )
        .await;
        if format == "iceberg" {
            // the same tables by name, from the Iceberg SQL catalog
            read_back_as_tables(
                &python,
                "iceberg-sql",
                &store,
                &listed,
                &format!("{}#player.play-events", sql_catalog.display()),
                &[],
            )
            .await;
            // and through the catalog's Iceberg REST API
            let address = serve_catalog(dir.path(), &store, &url).await;
            read_back_as_tables(
                &python,
                "iceberg-rest",
                &store,
                &listed,
                &format!("http://{address}/iceberg#player.play-events"),
                &[],
            )
            .await;
            let commit = reqwest::Client::new()
                .post(format!(
                    "http://{address}/iceberg/v1/namespaces/player%1Fplay-events/tables/plays"
                ))
                .json(&serde_json::json!({"requirements": [], "updates": []}))
                .send()
                .await
                .unwrap();
            assert_eq!(commit.status(), 405, "the catalog is read-only");
            let body: serde_json::Value = commit.json().await.unwrap();
            assert_eq!(body["error"]["type"], "UnsupportedOperationException");
        }
        // the amended window's late plays are in the tables, counted once
        let per_track = rows_of(&store, &manifest_of(&store, "per-track", &amended).await).await;
        let tracks = strings(&per_track, "track_id");
        let plays = longs(&per_track, "plays");
        let late = tracks.iter().position(|t| t == "late-track").unwrap();
        assert_eq!(plays[late], 20);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn views_written_through_the_s3_api_read_back_as_tables() {
    let python = common::interop_python();
    // an S3-compatible server (moto's) on loopback, with a bucket
    let address = common::free_port();
    let (host, port) = address.split_once(':').unwrap();
    let mut server = std::process::Command::new(&python)
        .args(["-m", "moto.server", "-H", host, "-p", port])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let _guard = common::KillOnDrop(server.id());
    let endpoint = format!("http://{address}");
    let aws = [
        ("AWS_ENDPOINT", endpoint.as_str()),
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_ALLOW_HTTP", "true"),
        ("AWS_ACCESS_KEY_ID", "meshline"),
        ("AWS_SECRET_ACCESS_KEY", "meshline-secret"),
        ("AWS_REGION", "us-east-1"),
    ];
    let create_bucket = "import boto3, sys; boto3.client('s3', endpoint_url=sys.argv[1]).create_bucket(Bucket='snapshots')";
    common::within(30, "the S3 server answers", async {
        loop {
            let made = std::process::Command::new(&python)
                .args(["-c", create_bucket, &endpoint])
                .envs(aws)
                .stderr(std::process::Stdio::null())
                .status()
                .unwrap();
            if made.success() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;

    for format in ["delta", "iceberg"] {
        let dir = tempfile::tempdir().unwrap();
        let catalog = test_catalog(dir.path(), &TABLE_VIEWS.replace("FORMAT", format));
        let (broker, url) = platform(&catalog).await;
        let bootstrap = broker.bootstrap();
        let minutes = 6;
        write(&bootstrap, &url, &plays_then_late(minutes, 2, 8)).await;

        // a snapshotter process writing to s3://snapshots/<format>
        let mut snapshotter = common::meshline()
            .args([
                "snapshotter",
                "--bootstrap",
                &bootstrap,
                "--registry-url",
                &url,
            ])
            .args([
                "--snapshots",
                &format!("s3://snapshots/{format}"),
                "--http-listen",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(dir.path())
            .arg("--config")
            .arg(dir.path().join("config"))
            .envs(aws)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let _snapshotter_guard = common::KillOnDrop(snapshotter.id());
        let store = Store::open_with(
            &format!("s3://snapshots/{format}"),
            aws.iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), (*v).to_owned())),
        )
        .unwrap();
        let amended = label(2);
        let listed = common::within(90, "snapshots in the S3 store", async {
            loop {
                let mut listed = BTreeMap::new();
                for view in ["plays", "per-track", "last-play"] {
                    listed.insert(
                        view.to_owned(),
                        listing::list(&store, TOPIC, view).await.unwrap(),
                    );
                }
                let amended_everywhere = ["plays", "per-track"].iter().all(|view| {
                    listed[*view]
                        .iter()
                        .any(|l| l.window == amended && l.version >= 2)
                });
                if amended_everywhere && listed["last-play"].len() == minutes as usize {
                    return listed;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await;
        snapshotter.kill().unwrap();
        snapshotter.wait().unwrap();
        read_back_as_tables(
            &python,
            format,
            &store,
            &listed,
            &format!("s3://snapshots/{format}/snapshots/player/play-events"),
            &aws,
        )
        .await;
        if format == "iceberg" {
            // by name, from the Iceberg SQL catalog the worker keeps in its data directory
            read_back_as_tables(
                &python,
                "iceberg-sql",
                &store,
                &listed,
                &format!(
                    "{}#player.play-events",
                    dir.path().join("iceberg-catalog.db").display()
                ),
                &aws,
            )
            .await;
            // and through the Iceberg REST API of a gateway process serving the catalog over
            // the same bucket, as a deployment without `meshline up` runs it
            let http = common::free_port();
            let mut gateway = common::meshline()
                .args(["gateway", "--bootstrap", &bootstrap, "--registry-url", &url])
                .args([
                    "--http-listen",
                    &http,
                    "--snapshots",
                    "s3://snapshots/iceberg",
                ])
                .arg("--config")
                .arg(dir.path().join("config"))
                .envs(aws)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            let _gateway_guard = common::KillOnDrop(gateway.id());
            let rest = format!("http://{http}/iceberg");
            common::within(60, "the gateway's catalog answers", async {
                while !reqwest::get(format!("{rest}/v1/config"))
                    .await
                    .is_ok_and(|r| r.status().is_success())
                {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            })
            .await;
            read_back_as_tables(
                &python,
                "iceberg-rest",
                &store,
                &listed,
                &format!("{rest}#player.play-events"),
                &aws,
            )
            .await;
            gateway.kill().unwrap();
            gateway.wait().unwrap();
        }
    }
    server.kill().unwrap();
    server.wait().unwrap();
}

/// An `events` and an `aggregate` view by the minute.
const VIEWS: &str =
    "  - {name: plays, kind: events, window: minute, allowed_lateness: 30s, idle_timeout: 1s}
  - name: per-track
    kind: aggregate
    window: minute
    key: [track_id]
    allowed_lateness: 30s
    idle_timeout: 1s
    aggregations:
      - {name: plays, function: count}
      - {name: listened_ms, function: sum, field: duration_ms}
";

/// 100 plays a minute for `minutes` minutes over 4 partitions, then one more per partition two
/// minutes later, which closes every window.
fn minutes_of_plays(minutes: i64) -> Vec<(i32, PlayEvent)> {
    let n_events = minutes as usize * 100;
    let mut events: Vec<(i32, PlayEvent)> = (0..n_events)
        .map(|n| {
            let at = T0 + (n as i64 * minutes * MIN) / n_events as i64;
            let user = format!("user-{}", n % 50);
            let track = format!("track-{}", n % 40);
            ((n % 4) as i32, play(n, at, &user, &track, n as i64))
        })
        .collect();
    for p in 0..4 {
        events.push((
            p,
            play(100_000 + p as usize, T0 + (minutes + 2) * MIN, "u", "t", 1),
        ));
    }
    events
}

/// A small tmpfs mounted over `dir` (mounting needs root, as `.ci/run` and CI have), unmounted on
/// drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let mount = |args: &[&str]| {
            let ran = std::process::Command::new("mount").args(args).status();
            let ran = match ran {
                Ok(status) if status.success() => ran,
                // not root: sudo without a password, as `.ci/run` uses for apt
                _ => std::process::Command::new("sudo")
                    .arg("-n")
                    .arg("mount")
                    .args(args)
                    .status(),
            };
            assert!(
                ran.is_ok_and(|s| s.success()),
                "this test mounts a small tmpfs to fill a disk: run it as root or with passwordless sudo"
            );
        };
        let target = dir.to_str().unwrap();
        mount(&[
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size}"),
            "tmpfs",
            target,
        ]);
        Self(dir.to_owned())
    }

    fn resize(&self, size: &str) {
        let status = std::process::Command::new("mount")
            .args([
                "-o",
                &format!("remount,size={size}"),
                self.0.to_str().unwrap(),
            ])
            .status()
            .unwrap();
        if !status.success() {
            let status = std::process::Command::new("sudo")
                .args(["-n", "mount", "-o", &format!("remount,size={size}")])
                .arg(&self.0)
                .status()
                .unwrap();
            assert!(status.success(), "remounting the tmpfs");
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = std::process::Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            let _ = std::process::Command::new("sudo")
                .args(["-n", "umount"])
                .arg(&self.0)
                .status();
        }
    }
}

/// The snapshotter on a disk that fills up: writes fail with "No space left on device", the
/// snapshotter restarts from its progress with backoff (counted by
/// `meshline_snapshot_restarts_total`), and once space is freed it writes every snapshot, the
/// same files as a run that never lacked space.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_holds_snapshots_back_until_space_returns_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = test_catalog(&dir.path().join("reference"), VIEWS);
    let (broker, url) = platform(&catalog).await;
    let bootstrap = broker.bootstrap();
    let minutes = 30;
    write(&bootstrap, &url, &minutes_of_plays(minutes)).await;
    let all_closed = |listed: &BTreeMap<String, Vec<listing::Listed>>| {
        listed.values().all(|l| l.len() >= minutes as usize)
    };

    let reference_store =
        Store::open(dir.path().join("reference/store").to_str().unwrap()).unwrap();
    snapshot_until(
        config(&bootstrap, &url, &reference_store),
        catalog,
        |l, _| all_closed(l),
    )
    .await;

    // the same on a 96 KiB disk
    let full_dir = dir.path().join("full");
    let disk = Tmpfs::mount(&full_dir, "96k");
    let store = Store::open(full_dir.to_str().unwrap()).unwrap();
    let registry = prometheus::Registry::new();
    let metrics = snapshot::Metrics::new(&registry).unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(snapshot::worker::run(
        config(&bootstrap, &url, &store),
        Arc::new(test_catalog(&dir.path().join("full-config"), VIEWS)),
        metrics,
        stop.clone(),
    ));
    let restarts = || {
        registry
            .gather()
            .iter()
            .filter(|f| f.name() == "meshline_snapshot_restarts_total")
            .flat_map(|f| f.get_metric().iter().map(|m| m.get_counter().value()))
            .sum::<f64>()
    };
    common::within(
        60,
        "the snapshotter failing on the full disk twice",
        async {
            while restarts() < 2.0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        },
    )
    .await;
    let written = listing::list(&store, TOPIC, "plays").await.unwrap().len();
    assert!(
        written < minutes as usize,
        "a full disk holds snapshots back: {written} of {minutes} written"
    );
    // space returns
    disk.resize("64m");
    common::within(90, "every snapshot once space returns", async {
        loop {
            let mut done = true;
            for view in ["plays", "per-track"] {
                done &= listing::list(&store, TOPIC, view).await.unwrap().len() >= minutes as usize;
            }
            if done {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    stop.cancel();
    task.await.unwrap();
    eprintln!(
        "full disk: {written} of {minutes} `plays` snapshots before space returned, {} restarts",
        restarts()
    );

    let expected = snapshot_files(&dir.path().join("reference/store"));
    let got = snapshot_files(&full_dir);
    assert_eq!(
        expected.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>(),
        "the same files"
    );
    for (name, bytes) in &expected {
        assert!(
            &got[name] == bytes,
            "{name} differs from the run with space"
        );
    }
    drop(disk);
}

/// Broker faults under the snapshotter, on librdkafka's mock cluster (the embedded broker cannot
/// be told to fail): fetch errors, every partition's leader moved, the leaders' broker down for
/// 1.5 s, and every broker slow (300 ms a round trip). The snapshots are the same files as a run
/// on the same cluster without faults.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_faults_under_the_snapshotter_change_no_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = test_catalog(&dir.path().join("reference"), VIEWS);
    let (_broker, url) = platform(&catalog).await;
    let mock = rdkafka::mocking::MockCluster::new(3).unwrap();
    mock.create_topic(TOPIC, 4, 3).unwrap();
    for p in 0..4 {
        mock.partition_leader(TOPIC, p, Some(1)).unwrap();
    }
    let bootstrap = mock.bootstrap_servers();
    let minutes = 20;
    write(&bootstrap, &url, &minutes_of_plays(minutes)).await;
    let all_closed = |listed: &BTreeMap<String, Vec<listing::Listed>>| {
        listed.values().all(|l| l.len() >= minutes as usize)
    };
    let reference_store =
        Store::open(dir.path().join("reference/store").to_str().unwrap()).unwrap();
    snapshot_until(
        config(&bootstrap, &url, &reference_store),
        catalog,
        |l, _| all_closed(l),
    )
    .await;

    let faulty_dir = dir.path().join("faulty");
    let store = Store::open(faulty_dir.join("store").to_str().unwrap()).unwrap();
    let catalog = test_catalog(&faulty_dir, VIEWS);
    let faults = async {
        use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
        mock.request_errors(
            RDKafkaApiKey::Fetch,
            &[
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                RDKafkaRespErr::RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
            ],
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        for p in 0..4 {
            mock.partition_leader(TOPIC, p, Some(2)).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        mock.broker_down(2).unwrap();
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        mock.broker_up(2).unwrap();
        for b in 1..=3 {
            mock.broker_round_trip_time(b, Duration::from_millis(300))
                .unwrap();
        }
    };
    let started = std::time::Instant::now();
    let faults = async {
        faults.await;
        started.elapsed()
    };
    let run = async {
        snapshot_until(config(&bootstrap, &url, &store), catalog, |l, _| {
            all_closed(l)
        })
        .await;
        started.elapsed()
    };
    let (faults_done, run_done) = tokio::join!(faults, run);
    eprintln!("faults injected over {faults_done:?}, snapshots complete after {run_done:?}");
    assert!(
        run_done > faults_done,
        "every fault came while the snapshotter worked"
    );
    for b in 1..=3 {
        mock.broker_round_trip_time(b, Duration::ZERO).unwrap();
    }

    let expected = snapshot_files(&dir.path().join("reference/store"));
    let got = snapshot_files(&faulty_dir.join("store"));
    assert!(
        expected.len() > 2 * minutes as usize,
        "{} files",
        expected.len()
    );
    assert_eq!(
        expected.keys().collect::<Vec<_>>(),
        got.keys().collect::<Vec<_>>(),
        "the same files"
    );
    for (name, bytes) in &expected {
        assert!(
            &got[name] == bytes,
            "{name} differs from the run without faults"
        );
    }
}
