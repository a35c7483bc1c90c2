//! The snapshotter's memory stays bounded: 1,000,000 `PlayEvent`s through an `events`, a
//! `latest` and an `aggregate` view (the core, without a broker, so the broker's own memory does
//! not count), over 100,000 keys held in memory, and over 1,000,000 keys with a budget of 20,000
//! keys or groups per view, past which state spills to disk. Each scenario runs in a process of
//! its own (this test binary, run again for that one test): the peak RSS is the scenario's.

use std::time::Instant;

use apache_avro::writer::datum::GenericDatumWriter;
use chrono::DateTime;
use meshline::{
    codec::wire,
    demo::events::{Device, PlayEvent},
    product::View,
    snapshot::{rows::Decoding, spill::Spill, view::ViewRunner},
};

const EVENTS: usize = 1_000_000;
/// Set in the process that runs a scenario.
const SCENARIO: &str = "MESHLINE_MEMORY_SCENARIO";

/// Runs `test` of this binary in a process of its own, unless this is that process.
fn in_own_process(test: &str) -> bool {
    if std::env::var_os(SCENARIO).is_some() {
        return false;
    }
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(SCENARIO, "1")
        .status()
        .unwrap();
    assert!(status.success(), "scenario {test} failed");
    true
}

/// Peak resident set size of this process, in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_million_events_over_100k_keys_stay_under_the_stated_memory_bound() {
    if in_own_process("a_million_events_over_100k_keys_stay_under_the_stated_memory_bound") {
        return;
    }
    // the bound the README states for this workload, all state in memory
    let (growth_mib, held, spilled) = scenario(100_000, Spill::default());
    assert_eq!(spilled, 0, "nothing spills under the default budget");
    assert!(held > 100_000);
    assert!(
        growth_mib < 160,
        "peak RSS grew {growth_mib} MiB, over the stated 160 MiB"
    );
}

#[test]
fn a_million_keys_spill_past_the_budget_and_memory_stays_under_the_stated_bound() {
    if in_own_process(
        "a_million_keys_spill_past_the_budget_and_memory_stays_under_the_stated_bound",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (growth_mib, held, spilled) = scenario(1_000_000, Spill::new(dir.path(), 20_000));
    assert!(spilled > 0, "state spilled");
    // a latest view holds the keys changed in its open windows (100,000 an hour here) on top
    assert!(held <= 20_000 + 2 * 100_000, "held {held} keys or groups");
    // the heap peaks at ≈ 73 MiB (heaptrack); glibc raises its mmap threshold as large buffers
    // are freed and the heap then fragments, by how much depends on the hash maps' random order:
    // 106–127 MiB of RSS over runs, 73 MiB steady with MALLOC_MMAP_THRESHOLD_=131072
    assert!(
        growth_mib < 160,
        "peak RSS grew {growth_mib} MiB, over the stated 160 MiB"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no run left behind"
    );
}

/// Runs the events over `keys` keys; the peak RSS growth in MiB, and the most keys or groups a
/// view held in memory, and spilled, at once.
fn scenario(keys: usize, spill: Spill) -> (u64, usize, usize) {
    let catalog = meshline::formats::load_catalog(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config"),
    )
    .unwrap();
    let product = catalog.get("player.play-events").unwrap();
    let views: Vec<View> = serde_norway::from_str(
        "- {name: hourly, kind: events, window: hour}
- {name: last-play, kind: latest, window: hour, key: [user_id]}
- name: per-user
  kind: aggregate
  window: hour
  key: [user_id]
  aggregations:
    - {name: plays, function: count}
    - {name: listened_ms, function: sum, field: duration_ms}
    - {name: tracks, function: distinct_count, field: track_id}
",
    )
    .unwrap();
    let reader = serde_json::to_string(&product.schema).unwrap();
    let writer = GenericDatumWriter::builder(&product.schema)
        .build()
        .unwrap();
    let mut decoding = Decoding::new(&reader, &[(1, reader.clone())], 8192).unwrap();
    let schema = decoding.schema().unwrap();
    let mut runners: Vec<ViewRunner> = views
        .iter()
        .map(|v| {
            // one runner takes the records of every partition in, as the partitions' runners
            // of one worker would together
            ViewRunner::new(
                "player.play-events",
                v,
                schema.clone(),
                0,
                100_000,
                &spill,
                None,
            )
            .unwrap()
        })
        .collect();
    let before = peak_rss_kib();
    let start = 1_795_564_800_000; // 2026-11-25T00:00:00Z, 10 hours of plays
    let (mut written, mut windows, mut held, mut spilled) = (0usize, 0usize, 0usize, 0usize);
    let mut offsets = [0i64; 4];
    let mut run = |decoding: &mut Decoding, runners: &mut Vec<ViewRunner>| {
        let rows = decoding.finish().unwrap().unwrap();
        for runner in runners.iter_mut() {
            let mut step = runner.step(&rows).unwrap();
            let closed = runner.advance(Instant::now(), None).unwrap();
            step.puts.extend(closed.puts);
            windows += closed.closed.len();
            written += step.puts.iter().map(|p| p.bytes.len()).sum::<usize>();
            held = held.max(runner.held());
            spilled = spilled.max(runner.spilled());
        }
    };
    for n in 0..EVENTS + 4 {
        let partition = n % 4;
        let time = if n < EVENTS {
            start + (n as i64 * 10 * 3_600_000) / EVENTS as i64
        } else {
            start + 20 * 3_600_000
        };
        let key = (n * 7919) % keys;
        let event = PlayEvent {
            play_id: format!("play-{n}"),
            user_id: format!("user-{key}"),
            track_id: format!("track-{}", n % 5000),
            artist_id: "artist-1".into(),
            device: Device::Web,
            country: "SE".into(),
            started_at: time,
            duration_ms: (n % 300_000) as i64,
            completed: true,
            context: None,
        };
        let payload = wire::encode(1, &writer.write_ser_to_vec(&event).unwrap());
        let id = event.play_id.clone();
        if decoding.is_full() {
            run(&mut decoding, &mut runners);
        }
        let at = DateTime::from_timestamp_millis(time)
            .unwrap()
            .timestamp_millis();
        decoding
            .push(
                partition as i32,
                offsets[partition],
                Some(at),
                Some(&id),
                &payload,
            )
            .unwrap();
        offsets[partition] += 1;
    }
    run(&mut decoding, &mut runners);
    let growth_mib = (peak_rss_kib().saturating_sub(before)) / 1024;
    println!(
        "{EVENTS} events over {keys} keys, budget {} keys or groups: {windows} snapshots, {} MiB of Parquet, at most {held} keys/groups held and {spilled} spilled by a view, peak RSS growth {growth_mib} MiB",
        spill.max_rows(),
        written / (1024 * 1024)
    );
    assert_eq!(windows, 3 * 10, "every hour of every view written");
    (growth_mib, held, spilled)
}
