//! The schema registry: cached lookups of the client every component uses on its hot path, and
//! `GET /schemas/ids/{id}` over HTTP against a registry on the embedded broker.
//! Run: `cargo bench --bench registry`.
//!
//! The HTTP figure is requests per second from 32 concurrent keep-alive connections, client and
//! server in this one process on the same cores: a floor for what remote clients would see.

use std::{
    hint::black_box,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use criterion::{Criterion, Throughput};
use meshline::{
    broker::embedded::{EmbeddedBroker, Storage},
    registry::{self, api::SchemaRequest, client::Client, Registry},
};
use tokio_util::sync::CancellationToken;

const SCHEMA: &str = r#"{"type":"record","name":"Play","namespace":"bench","fields":[{"name":"track","type":"string"},{"name":"ms","type":"long"}]}"#;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let stop = CancellationToken::new();
    let (client, url, id) = runtime.block_on(start(dir.path(), stop.clone()));

    let mut c = Criterion::default().configure_from_args();
    let mut group = c.benchmark_group("registry_client");
    group.throughput(Throughput::Elements(1));
    group.bench_function("cached_schema_by_id", |b| {
        b.iter(|| client.cached_schema(black_box(id)))
    });
    group.bench_function("cached_latest_of_subject", |b| {
        b.iter(|| runtime.block_on(client.latest(black_box("plays-value"))))
    });
    group.finish();
    c.final_summary();

    let per_second = runtime.block_on(http_load(&url, id, 32, Duration::from_secs(5)));
    println!("registry_http/get_schema_by_id: {per_second:.0} req/s (32 connections, 5 s)");
    stop.cancel();
}

async fn start(dir: &std::path::Path, stop: CancellationToken) -> (Client, String, u32) {
    let broker = EmbeddedBroker::start("127.0.0.1:0".parse().expect("addr"), &Storage::in_dir(dir))
        .await
        .expect("broker");
    let registry = Registry::start(&broker.bootstrap(), stop.clone())
        .await
        .expect("registry");
    let request = SchemaRequest {
        schema: Some(SCHEMA.into()),
        ..SchemaRequest::default()
    };
    let id = registry
        .write(|s| s.plan_register("plays-value", &request))
        .await
        .expect("registered");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listener");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    meshline::server::spawn(listener, registry::http::router(registry), stop);
    let client = Client::new(&url);
    client.schema(id).await.expect("schema");
    client.latest("plays-value").await.expect("latest");
    // keep the broker for the life of the bench
    std::mem::forget(broker);
    (client, url, id)
}

async fn http_load(url: &str, id: u32, connections: usize, length: Duration) -> f64 {
    let http = reqwest::Client::new();
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..connections)
        .map(|_| {
            let http = http.clone();
            let done = done.clone();
            let url = format!("{url}/schemas/ids/{id}");
            tokio::spawn(async move {
                while started.elapsed() < length {
                    let response = http.get(&url).send().await.expect("request");
                    assert!(response.status().is_success());
                    response.bytes().await.expect("body");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("load task");
    }
    done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}
