//! The contract core on one `PlayEvent` record: headers, frame, Avro decode, two CEL rules.
//! Run: `cargo bench --bench contract`.

use std::{hint::black_box, sync::Arc};

use chrono::Utc;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use meshline::{
    binding::kafka::Record, codec::wire, contract::Contract, demo::events::PlayEvent,
    product::Catalog,
};
use rand::{rngs::StdRng, SeedableRng};

fn bench(c: &mut Criterion) {
    let catalog = Catalog::load(std::path::Path::new("config")).expect("catalog");
    let product = catalog.get("player.play-events").expect("product");
    let contract = Contract::from_product(product).expect("contract");
    let schema = Arc::new(product.schema.clone());
    let event = PlayEvent::random(&mut StdRng::seed_from_u64(1), Utc::now());
    let body = apache_avro::writer::datum::GenericDatumWriter::builder(&schema)
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
    assert!(contract.check_record(&record, lookup).is_ok());

    let mut group = c.benchmark_group("contract");
    group.throughput(Throughput::Elements(1));
    group.bench_function("check_record_play_event", |b| {
        b.iter(|| contract.check_record(black_box(&record), lookup))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
