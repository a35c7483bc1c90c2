//! Shared test fixture: a real Kafka-API broker (embedded tansu) on an ephemeral loopback port,
//! so every integration test speaks the Kafka protocol through rdkafka.

#![allow(dead_code)]

pub(crate) mod process;
#[allow(unused_imports)]
pub(crate) use process::*;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use meshline::{
    broker::embedded::{EmbeddedBroker, Storage},
    product::Catalog,
};
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    producer::FutureProducer,
    ClientConfig,
};

/// Any free loopback port.
pub(crate) fn any_port() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// A broker in memory (fast; gone with the test).
pub(crate) async fn memory_broker() -> EmbeddedBroker {
    EmbeddedBroker::start(any_port(), &Storage::Memory)
        .await
        .expect("embedded broker starts")
}

/// A durable broker whose SQLite file lives in `dir`.
pub(crate) async fn sqlite_broker(dir: &Path) -> EmbeddedBroker {
    EmbeddedBroker::start(any_port(), &Storage::in_dir(dir))
        .await
        .expect("embedded broker starts")
}

/// The repository's own descriptors.
pub(crate) fn repo_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config")
}

/// The repository's catalog.
pub(crate) fn catalog() -> Catalog {
    meshline::formats::load_catalog(&repo_config()).expect("the committed descriptors are valid")
}

/// An idempotent producer.
pub(crate) fn producer(bootstrap: &str) -> FutureProducer {
    meshline::broker::producer_config(bootstrap)
        .set("message.timeout.ms", "300000")
        .create()
        .expect("producer")
}

/// A consumer in `group`, reading committed data from the beginning, committing by hand.
pub(crate) fn consumer_config(bootstrap: &str, group: &str) -> ClientConfig {
    let mut c = meshline::broker::client_config(bootstrap);
    c.set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("session.timeout.ms", "6000");
    c
}

/// Sum over partitions of the high watermark of `topic` (right on SQLite storage only).
pub(crate) fn high_watermarks(bootstrap: &str, topic: &str) -> i64 {
    let consumer: BaseConsumer = meshline::broker::client_config(bootstrap).create().unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(30))
        .unwrap();
    let partitions = metadata.topics()[0].partitions().len();
    (0..partitions)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p as i32, Duration::from_secs(30))
                .unwrap()
                .1
        })
        .sum()
}

/// Runs `f` with a deadline so no test can hang CI.
pub(crate) async fn within<T>(secs: u64, what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: timed out after {secs}s"))
}

/// A schema registry on `bootstrap`, serving the REST API on an ephemeral port; stops with
/// the returned token.
pub(crate) async fn registry(
    bootstrap: &str,
) -> (
    meshline::registry::Registry,
    String,
    tokio_util::sync::CancellationToken,
) {
    meshline::registry::client::install_crypto_provider();
    let stop = tokio_util::sync::CancellationToken::new();
    let registry = meshline::registry::Registry::start(bootstrap, stop.clone())
        .await
        .expect("registry starts");
    let listener = tokio::net::TcpListener::bind(any_port()).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    meshline::server::spawn(
        listener,
        meshline::registry::http::router(registry.clone()),
        stop.clone(),
    );
    (registry, url, stop)
}

/// A durable broker in `dir` with the repository's products' topics, and a registry holding
/// their contracts (it runs until the test ends).
pub(crate) async fn platform(dir: &Path) -> (EmbeddedBroker, meshline::registry::Registry, String) {
    let broker = sqlite_broker(dir).await;
    let (registry, url) = products_on(&broker.bootstrap(), &broker.bootstrap()).await;
    (broker, registry, url)
}

/// Like [`platform`] on an in-memory broker.
pub(crate) async fn platform_in_memory() -> (EmbeddedBroker, meshline::registry::Registry, String) {
    let broker = memory_broker().await;
    let (registry, url) = products_on(&broker.bootstrap(), &broker.bootstrap()).await;
    (broker, registry, url)
}

/// Creates the products' topics on `data` and registers their contracts in a registry on
/// `schemas` (it runs until the test ends).
async fn products_on(data: &str, schemas: &str) -> (meshline::registry::Registry, String) {
    let catalog = catalog();
    meshline::broker::ensure_topics(data, &catalog)
        .await
        .unwrap();
    let (registry, url, stop) = registry(schemas).await;
    std::mem::forget(stop);
    for product in catalog.iter() {
        registry.register_product(product).await.unwrap();
    }
    (registry, url)
}

/// Registers a new version of the play events' contract: the same schema, its rules edited.
pub(crate) async fn edit_rules(url: &str, edit: impl FnOnce(&mut Vec<serde_json::Value>)) {
    let client = meshline::registry::client::Client::new(url);
    let subject = "player.play-events-value";
    let latest = client
        .version(subject, meshline::registry::api::VersionId::Latest)
        .await
        .unwrap();
    let mut rule_set = latest.rule_set.clone().expect("the product's rules");
    edit(rule_set["domainRules"].as_array_mut().unwrap());
    let request = meshline::registry::api::SchemaRequest {
        schema: Some(latest.schema.clone()),
        metadata: latest.metadata.clone(),
        rule_set: Some(rule_set),
        ..Default::default()
    };
    client.register(subject, &request).await.unwrap();
}

/// A valid `PlayEvent` lasting `duration_ms`.
pub(crate) fn play(duration_ms: i64) -> meshline::demo::events::PlayEvent {
    meshline::demo::events::PlayEvent {
        play_id: "play-1".into(),
        user_id: "user-7".into(),
        track_id: "track-9".into(),
        artist_id: "artist-3".into(),
        device: meshline::demo::events::Device::Speaker,
        country: "SE".into(),
        started_at: 1_795_600_000_000,
        duration_ms,
        completed: true,
        context: Some("playlist-2".into()),
    }
}

/// Where a kill loop kills: `MESHLINE_KILL_ROUNDS` (default `rounds`) points drawn between `lo`
/// and `hi`, sorted, each with a delay of up to 300 ms after it is reached (so a kill lands at
/// any moment of a batch), from `MESHLINE_KILL_SEED` or a random seed. The seed is printed: run
/// again with it to replay a failure.
pub(crate) fn kill_points(rounds: usize, lo: u64, hi: u64) -> Vec<(u64, std::time::Duration)> {
    use rand::{Rng as _, SeedableRng as _};
    let seed: u64 = std::env::var("MESHLINE_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    let rounds = std::env::var("MESHLINE_KILL_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(rounds);
    eprintln!("kill loop: {rounds} rounds, MESHLINE_KILL_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut points: Vec<(u64, std::time::Duration)> = (0..rounds)
        .map(|_| {
            (
                rng.random_range(lo..=hi),
                std::time::Duration::from_millis(rng.random_range(0..300)),
            )
        })
        .collect();
    points.sort();
    points
}

/// Writes a tokens file at `path` granting `token` to principal `platform` (the digest only,
/// as a deployment keeps it).
pub(crate) fn write_platform_token(path: &std::path::Path, token: &str) {
    std::fs::write(
        path,
        format!(
            "tokens:\n  - principal: platform\n    sha256: {}\n",
            hex::encode(<sha2::Sha256 as sha2::Digest>::digest(token))
        ),
    )
    .unwrap();
}

/// The virtual environment's python, installed or updated first.
pub(crate) fn interop_python() -> String {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/venv.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("bash runs");
    assert!(
        out.status.success(),
        "{} failed: the interop suite needs Python 3 with venv and the Python package index",
        script.display()
    );
    String::from_utf8(out.stdout)
        .expect("a path")
        .trim()
        .to_owned()
}

/// Checks every document of `files` (YAML streams or JSON) against the JSON Schema at
/// `schema` (with the other schemas beside it for `$ref`) with the Python `jsonschema`
/// package; panics with each error.
pub(crate) fn assert_valid(schema: &Path, files: &[PathBuf]) {
    validate(&[], schema, files);
}

/// Checks every OpenLineage event of `file` (JSON lines) against OpenLineage's JSON Schema,
/// and each of its facets against the facet schema its `_schemaURL` names.
pub(crate) fn assert_valid_openlineage(file: &Path) {
    validate(
        &["--facets"],
        &fixture("openlineage/OpenLineage.json"),
        &[file.to_owned()],
    );
}

fn validate(options: &[&str], schema: &Path, files: &[PathBuf]) {
    assert!(
        !files.is_empty(),
        "no documents to check against {}",
        schema.display()
    );
    let out = std::process::Command::new(interop_python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/validate.py"))
        .args(options)
        .arg(schema)
        .args(files)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "not valid against {}:\n{}{}",
        schema.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A schema committed under `tests/fixtures`.
pub(crate) fn fixture(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(relative)
}
