//! The contract core on one `PlayEvent` record (headers, frame, Avro decode, two rules), and
//! the payload decoders it could use: `apache-avro` against `serde_avro_fast`.
//! Run: `cargo bench --bench contract`.
// criterion's macros make undocumented public functions
#![allow(missing_docs)]

use std::{hint::black_box, sync::Arc};

use apache_avro::{reader::datum::GenericDatumReader, writer::datum::GenericDatumWriter};
use chrono::Utc;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use meshline::{
    binding::kafka::Record,
    codec::wire,
    contract::{Contract, WriterSchema},
    demo::events::PlayEvent,
};
use rand::{rngs::StdRng, SeedableRng};

fn bench(c: &mut Criterion) {
    let catalog = meshline::formats::load_catalog(std::path::Path::new("config")).expect("catalog");
    let product = catalog.get("player.play-events").expect("product");
    let contract = Contract::from_product(product).expect("contract");
    let schema = Arc::new(WriterSchema::new(Arc::new(product.schema.clone())));
    assert!(
        schema.is_fast(),
        "serde_avro_fast takes the PlayEvent schema"
    );
    let event = PlayEvent::random(&mut StdRng::seed_from_u64(1), Utc::now());
    let body = GenericDatumWriter::builder(&schema.avro)
        .build()
        .and_then(|w| w.write_ser_to_vec(&event))
        .expect("body");
    let headers = [
        ("ce_specversion", "1.0"),
        ("ce_id", "8f0e2c9a-2b6f-4d4c-9a51-0d0d6f1c7b11"),
        ("ce_source", "/player/web-player"),
        ("ce_type", "com.example.player.track.played"),
        ("ce_time", "2026-11-25T10:00:00.123Z"),
        ("ce_subject", "user-42"),
        ("content-type", "application/avro"),
    ];
    let record = Record {
        key: Some(b"user-42".to_vec()),
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
            .collect(),
        payload: Some(wire::encode(3, &body)),
    };
    let lookup = |id: u32| (id == 3).then(|| schema.clone());
    let accepted = contract.check_record(&record, lookup).expect("valid");

    let mut group = c.benchmark_group("contract");
    group.throughput(Throughput::Elements(1));
    group.bench_function("check_record_play_event", |b| {
        b.iter(|| contract.check_record(black_box(&record), lookup))
    });
    group.bench_function("rules_play_event", |b| {
        b.iter(|| contract.check_rules(black_box(&accepted.value)))
    });
    group.finish();

    // the decode hot path: every field checked, the rules' fields kept
    let mut group = c.benchmark_group("decode_play_event");
    group.throughput(Throughput::Elements(1));
    group.bench_function("apache_avro_value", |b| {
        let reader = GenericDatumReader::builder(&schema.avro)
            .build()
            .expect("reader");
        b.iter(|| reader.read_value(&mut black_box(&body[..])))
    });
    let fast: serde_avro_fast::Schema = serde_json::to_string(schema.avro.as_ref())
        .expect("schema json")
        .parse()
        .expect("serde_avro_fast schema");
    group.bench_function("serde_avro_fast_check_only", |b| {
        b.iter(|| {
            serde_avro_fast::from_datum_slice::<serde::de::IgnoredAny>(black_box(&body), &fast)
        })
    });
    group.bench_function("serde_avro_fast_typed", |b| {
        b.iter(|| serde_avro_fast::from_datum_slice::<PlayEvent>(black_box(&body), &fast))
    });
    let fields = ["duration_ms".to_owned(), "country".to_owned()];
    group.bench_function("meshline_rule_fields", |b| {
        b.iter(|| schema.decode(black_box(&body), Some(&fields)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
