//! CloudEvents Kafka binding and Confluent framing: the per-record work every meshline component
//! does before any check. Run: `cargo bench --bench binding`.
// criterion's macros make undocumented public functions
#![allow(missing_docs)]

use chrono::Utc;
use cloudevents::{EventBuilder, EventBuilderV10};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use meshline::{binding::kafka::Record, codec::wire};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let payload = wire::encode(1, &[7u8; 190]);
    let event = EventBuilderV10::new()
        .id("8f0e2c9a-2b6f-4d4c-9a51-0d0d6f1c7b11")
        .source("/player/web-player")
        .ty("com.example.player.track.played")
        .subject("user-42")
        .time(Utc::now())
        .data_with_schema(
            "application/avro",
            "http://127.0.0.1:8081/schemas/ids/1",
            payload.clone(),
        )
        .extension("partitionkey", "user-42")
        .build()
        .expect("valid event");
    let record = Record::from_event(event.clone()).expect("encodes");

    let mut group = c.benchmark_group("binding");
    group.throughput(Throughput::Elements(1));
    group.bench_function("event_to_record", |b| {
        b.iter(|| Record::from_event(black_box(event.clone())))
    });
    group.bench_function("record_to_event", |b| {
        b.iter(|| black_box(&record).to_event())
    });
    group.bench_function("wire_decode", |b| {
        b.iter(|| wire::decode(black_box(&payload)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
