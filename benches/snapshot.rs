//! The snapshotter's core on `PlayEvent`s: decode (Confluent-framed Avro → Arrow), assign to
//! event-time windows, and write each closed window as Parquet (zstd) bytes, for the
//! repository's two player views. No broker and no store I/O: what one core does per event.
//! Run: `cargo bench --bench snapshot`.
// criterion's macros make undocumented public functions
#![allow(missing_docs)]

use std::{hint::black_box, time::Instant};

use apache_avro::writer::datum::GenericDatumWriter;
use chrono::{DateTime, SecondsFormat, Utc};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use meshline::{
    codec::wire,
    demo::events::PlayEvent,
    product::View,
    snapshot::{rows::Decoding, spill::Spill, view::ViewRunner},
};
use rand::{rngs::StdRng, SeedableRng};

/// Events per iteration, over 24 hours of event time on 4 partitions.
const EVENTS: usize = 100_000;

struct Input {
    partition: i32,
    offset: i64,
    time: i64,
    id: String,
    payload: Vec<u8>,
}

fn inputs(schema: &apache_avro::Schema) -> Vec<Input> {
    let mut rng = StdRng::seed_from_u64(7);
    let start = 1_795_564_800_000; // 2026-11-25T00:00:00Z
    let writer = GenericDatumWriter::builder(schema).build().expect("writer");
    let mut offsets = [0i64; 4];
    let mut out = Vec::with_capacity(EVENTS + 4);
    for n in 0..EVENTS + 4 {
        let partition = (n % 4) as i32;
        // the last four move every partition a day ahead, closing every window
        let time = if n < EVENTS {
            start + (n as i64 * 86_400_000) / EVENTS as i64
        } else {
            start + 2 * 86_400_000
        };
        let at = DateTime::<Utc>::from_timestamp_millis(time).expect("time");
        let event = PlayEvent::random(&mut rng, at);
        let body = writer.write_ser_to_vec(&event).expect("body");
        out.push(Input {
            partition,
            offset: offsets[partition as usize],
            time,
            id: event.play_id.clone(),
            payload: wire::encode(1, &body),
        });
        offsets[partition as usize] += 1;
        let _ = at.to_rfc3339_opts(SecondsFormat::Millis, true);
    }
    out
}

/// Decodes, windows and writes every input through `views`; returns the Parquet bytes written.
fn run(reader: &str, views: &[View], inputs: &[Input]) -> usize {
    let mut decoding = Decoding::new(reader, &[(1, reader.to_owned())], 8192).expect("decoding");
    let schema = decoding.schema().expect("schema");
    let mut runners: Vec<ViewRunner> = views
        .iter()
        .map(|v| {
            // one runner takes the records of every partition in (its clock adds each as it
            // comes): the per-record work of the partitions' runners, on one core
            ViewRunner::new(
                "player.play-events",
                v,
                schema.clone(),
                0,
                100_000,
                &Spill::default(),
                None,
            )
            .expect("runner")
        })
        .collect();
    let mut written = 0;
    let mut take = |decoding: &mut Decoding, runners: &mut Vec<ViewRunner>| {
        if let Some(rows) = decoding.finish().expect("rows") {
            for runner in runners.iter_mut() {
                let step = runner.step(&rows).expect("step");
                written += step.puts.iter().map(|p| p.bytes.len()).sum::<usize>();
            }
        }
        let now = Instant::now();
        for runner in runners.iter_mut() {
            let step = runner.advance(now, None).expect("advance");
            written += step.puts.iter().map(|p| p.bytes.len()).sum::<usize>();
        }
    };
    for input in inputs {
        if decoding.is_full() {
            take(&mut decoding, &mut runners);
        }
        decoding
            .push(
                input.partition,
                input.offset,
                Some(input.time),
                Some(&input.id),
                &input.payload,
            )
            .expect("push");
    }
    take(&mut decoding, &mut runners);
    written
}

fn bench(c: &mut Criterion) {
    let catalog = meshline::formats::load_catalog(std::path::Path::new("config")).expect("catalog");
    let product = catalog.get("player.play-events").expect("product");
    let reader = serde_json::to_string(&product.schema).expect("schema json");
    let inputs = inputs(&product.schema);
    let views = &product.descriptor.views;
    let events: Vec<View> = views
        .iter()
        .filter(|v| v.name == "hourly-events")
        .cloned()
        .collect();
    let aggregate: Vec<View> = views
        .iter()
        .filter(|v| v.name == "daily-plays")
        .cloned()
        .collect();
    assert!(
        run(&reader, &events, &inputs) > 0,
        "the events view writes Parquet"
    );

    let mut group = c.benchmark_group("snapshot");
    group.throughput(Throughput::Elements(EVENTS as u64));
    group.sample_size(10);
    for (name, views) in [
        ("decode_window_write_events_view", &events),
        ("decode_window_write_aggregate_view", &aggregate),
        ("decode_window_write_both_player_views", &views.clone()),
    ] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || (),
                |()| black_box(run(&reader, views, &inputs)),
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
