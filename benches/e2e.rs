//! One run, every stage of meshline against raw librdkafka on the same embedded broker, in the
//! same process and the same minutes: on the durable storage `meshline up` uses (`sqlite:`) and
//! in memory, for the demo `PlayEvent` (~200 B of Avro) and a 2 KB event. Each stage runs in
//! rounds (5 by default, `MESHLINE_BENCH_ROUNDS`), each round on a fresh broker with meshline
//! and raw in turn (which goes first alternates); a ratio is meshline round *i* ÷ raw round *i*,
//! reported as the median and the range over the rounds. Then how throughput scales with
//! partitions; the snapshotter worker (store and table included) per table format and with 1, 2
//! and 4 workers, as ratios per round to Parquet alone and to one worker; and how the cost per
//! event grows with the number of products and of rules.
//!
//! - **SDK produce**: `Producer::enqueue` of typed events into the ingress topic, against a raw
//!   `FutureProducer` sending the records the SDK makes of the same events (built before its clock
//!   starts: the same bytes, keys and partitions); latency is enqueue → broker ack of
//!   each event, both sides at full speed.
//! - **gateway**: consume + contract + route of the ingress records, against a raw consume →
//!   produce pipe with the same settings (`benches/gateway.rs`), each from its 10,000th
//!   acknowledged output on (the idempotent producer's start excluded).
//! - **snapshotter**: consume of the product topic + decode + event-time windows + Parquet of every
//!   closed window (files built, not stored), against a raw consumer of the same records.
//! - **HTTP ingress**: batch mode (`application/cloudevents-batch+json`, 100 events a request, 8
//!   requests in flight), against the same round's raw producer; latency is per request.
//! - **registry**: a cached schema lookup in the client, and `GET /schemas/ids/{id}` over HTTP
//!   (32 concurrent keep-alive requests); no rdkafka baseline.
//!
//! Peak RSS is the whole process's (broker included), reset before each stage; the table shows
//! the highest of the rounds. The output is the Markdown of `docs/performance.md`.
//! Run: `cargo bench --bench e2e`; `MESHLINE_BENCH_EVENTS=N` sets the events per stage and round
//! (default 100,000; a third of it for the 2 KB event). Its standard output from `# Performance`
//! on is `docs/performance.md`, once the embedded broker's own `ready in …` lines are left out:
//! `cargo bench --bench e2e | sed -n '/^# Performance/,$p' | grep -v '^ready in' > docs/performance.md`.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::{DateTime, SecondsFormat, Utc};
use futures::{future::BoxFuture, stream::FuturesUnordered, StreamExt};
use meshline::{
    auth::Tokens,
    binding::kafka::Record,
    broker::{self, embedded::EmbeddedBroker},
    codec::wire,
    contract::{Contract, WriterSchema},
    demo::events::PlayEvent,
    gateway::{
        http::{Ingress, IngressConfig},
        Contracts, Metrics,
    },
    product::{Catalog, Product, Rule},
    registry::client::Client,
    sdk::{producer::produce, Producer},
    snapshot::{self, rows::Decoding, spill::Spill, view::ViewRunner, SnapshotterConfig, Store},
};
use rand::{distr::Alphanumeric, rngs::StdRng, Rng, SeedableRng};
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    producer::FutureProducer,
    Message, Offset, TopicPartitionList,
};
use tokio_util::sync::CancellationToken;

mod common;
use common::{
    create_raw_out, fill_ingress, fill_topic, gateway_pipe, raw_pipe, serve_registry,
    serve_registry_for, start_broker_on, INGRESS,
};

const PRODUCT: &str = "player.play-events";

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

/// One stage's measurement in one round.
struct Obs {
    storage: &'static str,
    stage: String,
    size: &'static str,
    rate: f64,
    baseline: Option<f64>,
    latency: Option<(Duration, Duration)>,
    peak_rss_mib: u64,
}

/// What a stage measured of one side.
struct Measured {
    rate: f64,
    latency: Option<(Duration, Duration)>,
    peak_rss_mib: u64,
}

impl Measured {
    fn obs(self, storage: &'static str, stage: &str, size: Size, baseline: Option<f64>) -> Obs {
        Obs {
            storage,
            stage: stage.to_owned(),
            size: size.label(),
            rate: self.rate,
            baseline,
            latency: self.latency,
            peak_rss_mib: self.peak_rss_mib,
        }
    }
}

/// The event sizes.
#[derive(Clone, Copy)]
enum Size {
    Play,
    TwoKb,
}

impl Size {
    fn label(self) -> &'static str {
        match self {
            Size::Play => "PlayEvent",
            Size::TwoKb => "2 KB",
        }
    }

    /// `n` events with times spread over the last 24 hours (so snapshot windows close), the
    /// 2 KB ones with a long random `context`.
    fn events(self, n: usize) -> Vec<PlayEvent> {
        let mut rng = StdRng::seed_from_u64(11);
        let start = Utc::now() - chrono::Duration::hours(24);
        (0..n)
            .map(|i| {
                let at = start + chrono::Duration::milliseconds((i as i64 * 86_400_000) / n as i64);
                let mut event = PlayEvent::random(&mut rng, at);
                if let Size::TwoKb = self {
                    let text: String = (&mut rng)
                        .sample_iter(&Alphanumeric)
                        .take(1_850)
                        .map(char::from)
                        .collect();
                    event.context = Some(text);
                }
                event
            })
            .collect()
    }
}

/// The broker and a registry serving the repository's products.
struct Platform {
    broker: EmbeddedBroker,
    bootstrap: String,
    url: String,
    stop: CancellationToken,
    _dir: tempfile::TempDir,
}

impl Platform {
    async fn start(durable: bool, extra: &[Product]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let broker = start_broker_on(dir.path(), durable).await;
        let bootstrap = broker.bootstrap();
        let stop = CancellationToken::new();
        let url = if extra.is_empty() {
            serve_registry(&bootstrap, stop.clone()).await
        } else {
            serve_registry_for(&bootstrap, stop.clone(), extra).await
        };
        Self {
            broker,
            bootstrap,
            url,
            stop,
            _dir: dir,
        }
    }

    async fn stop(self) {
        self.stop.cancel();
        self.broker.stop().await;
    }
}

/// The storages, with the name the tables give them; the durable one first (what users run).
const STORAGES: [(&str, bool); 2] = [("sqlite (durable)", true), ("memory", false)];

async fn run() {
    let events: usize = std::env::var("MESHLINE_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let rounds: usize = std::env::var("MESHLINE_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let mut obs = Vec::new();
    for (storage, durable) in STORAGES {
        for round in 0..rounds {
            // which side goes first alternates, so drift within a round favours neither
            let raw_first = round % 2 == 0;
            for size in [Size::Play, Size::TwoKb] {
                let n = match size {
                    Size::Play => events,
                    Size::TwoKb => events / 3,
                };
                eprintln!("{storage}, round {}/{rounds}, {}", round + 1, size.label());
                let platform = Platform::start(durable, &[]).await;
                let events = size.events(n);
                let (sdk, raw, in_ingress) = sdk_stage(&platform, &events, raw_first).await;
                let raw_rate = raw.rate;
                obs.push(sdk.obs(storage, "SDK produce", size, Some(raw_rate)));
                obs.push(raw.obs(
                    storage,
                    "raw rdkafka producer (the SDK's bytes)",
                    size,
                    None,
                ));
                let (gateway, raw) = gateway_stage(&platform, in_ingress, raw_first).await;
                obs.push(gateway.obs(storage, "gateway validate + route", size, Some(raw)));
                let (snapshot, raw, core) = snapshot_stage(&platform, in_ingress, raw_first).await;
                obs.push(snapshot.obs(
                    storage,
                    "snapshotter consume + window + Parquet",
                    size,
                    Some(raw),
                ));
                obs.push(core.obs(
                    storage,
                    "snapshotter core alone (records in memory, one core)",
                    size,
                    None,
                ));
                let http = http_stage(&platform, &events).await;
                obs.push(http.obs(
                    storage,
                    "HTTP ingress, batch mode (100 a request; latency per request)",
                    size,
                    Some(raw_rate),
                ));
                if let (Size::Play, 0) = (size, round) {
                    for (stage, measured) in registry_stage(&platform).await {
                        obs.push(measured.obs(storage, stage, size, None));
                    }
                }
                platform.stop().await;
            }
        }
    }
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_default();
    println!("# Performance\n");
    println!(
        "Generated by `cargo bench --bench e2e` at commit {}, {} cores, {events} events per stage and round (a third for the 2 KB event), {rounds} rounds. Each round runs on a fresh embedded broker, meshline and raw librdkafka in turn (the order alternates); a ratio is meshline round *i* ÷ raw round *i*: the table gives the median and the range over the rounds, and the median rates. Peak RSS is the whole process's (broker included), the highest of the rounds.",
        commit.trim(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    print_table(&obs);
    print_targets(&obs);

    println!("\n## Scaling: gateway events/s by partitions holding the records (PlayEvent, {} events, {rounds} rounds)\n", events / 2);
    println!("| storage | partitions | raw pipe (median) | 1 gateway (median) | ratio median | ratio range |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    let scaled = Size::Play.events(events / 2);
    for (storage, durable) in STORAGES {
        for partitions in [1, 2, 4] {
            let mut pairs = Vec::new();
            for round in 0..rounds {
                let platform = Platform::start(durable, &[]).await;
                fill_ingress(&platform.bootstrap, &platform.url, &scaled, partitions).await;
                create_raw_out(&platform.bootstrap).await;
                let raw = || {
                    let b = platform.bootstrap.clone();
                    let n = scaled.len();
                    tokio::task::spawn_blocking(move || raw_pipe(&b, n, "bench-raw"))
                };
                let pair = if round % 2 == 0 {
                    let raw = raw().await.expect("raw pipe").rate;
                    let gw =
                        gateway_pipe(&platform.bootstrap, &platform.url, 1, scaled.len()).await;
                    (gw.rate, raw)
                } else {
                    let gw =
                        gateway_pipe(&platform.bootstrap, &platform.url, 1, scaled.len()).await;
                    let raw = raw().await.expect("raw pipe").rate;
                    (gw.rate, raw)
                };
                pairs.push(pair);
                platform.stop().await;
            }
            let ratios = Paired::of(pairs.iter().map(|&(m, r)| (m, Some(r))));
            println!(
                "| {storage} | {partitions} | {:.0} | {:.0} | {} | {} |",
                median(pairs.iter().map(|p| p.1)),
                median(pairs.iter().map(|p| p.0)),
                ratios.median(),
                ratios.range()
            );
        }
    }

    formats(events / 2, rounds).await;
    workers(events / 2, rounds).await;
    products_scaling().await;
    rules_scaling();
    schema_languages();
}

/// The snapshotter worker (consume, window, Parquet into a directory, and the view's table)
/// over the same records per table format, the formats in turn within each round (the order
/// rotates), each round on a fresh broker; ratios to `parquet` (files and manifests only) per
/// round.
async fn formats(events: usize, rounds: usize) {
    use meshline::product::TableFormat;
    println!("\n## Snapshot table formats: snapshotter worker events/s by view format (PlayEvent over 24 hours of event time, both player views, {events} events, {rounds} rounds)\n");
    println!("| storage | format | events/s (median) | ratio to parquet, median | ratio range |");
    println!("| --- | --- | ---: | ---: | ---: |");
    let formats = [
        ("parquet", TableFormat::Parquet, 1),
        ("delta", TableFormat::Delta, 1),
        ("iceberg", TableFormat::Iceberg, 1),
    ];
    snapshotter_variants(events, rounds, &formats).await;
}

/// The same with 1, 2 and 4 snapshotter workers on the one product (each its own member of the
/// product's snapshotter group, all in this process); ratios to one worker per round.
async fn workers(events: usize, rounds: usize) {
    use meshline::product::TableFormat;
    println!("\n## Snapshotter workers on one product: events/s by workers (PlayEvent over 24 hours of event time, both player views as Delta tables, {events} events, {rounds} rounds)\n");
    println!("The workers share the product's partitions (each writes its partitions' pieces; the one with partition 0 also commits the windows), on the same 2 cores as the broker.\n");
    println!("| storage | workers | events/s (median) | ratio to 1 worker, median | ratio range |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    let counts = [
        ("1", TableFormat::Delta, 1),
        ("2", TableFormat::Delta, 2),
        ("4", TableFormat::Delta, 4),
    ];
    snapshotter_variants(events, rounds, &counts).await;
}

/// The snapshotter worker over the same records in each variant (a label, the views' table
/// format, the number of workers), the variants in turn within each round (the order rotates),
/// each round on a fresh broker; prints a row per storage and variant: events/s and the ratio
/// to the first variant, per round.
async fn snapshotter_variants(
    events: usize,
    rounds: usize,
    variants: &[(&str, meshline::product::TableFormat, usize)],
) {
    let records = Size::Play.events(events);
    for (storage, durable) in STORAGES {
        let mut rates: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
        for round in 0..rounds {
            let platform = Platform::start(durable, &[]).await;
            fill_topic(&platform.bootstrap, &platform.url, PRODUCT, &records, 4).await;
            for k in 0..variants.len() {
                let i = (k + round) % variants.len();
                let (_, format, workers) = variants[i];
                let rate = snapshot_workers(&platform, format, workers, events).await;
                rates[i].push(rate);
            }
            platform.stop().await;
        }
        for (i, (label, _, _)) in variants.iter().enumerate() {
            let ratios = Paired::of(rates[i].iter().zip(&rates[0]).map(|(m, r)| (*m, Some(*r))));
            println!(
                "| {storage} | {label} | {:.0} | {} | {} |",
                median(rates[i].iter().copied()),
                ratios.median(),
                ratios.range()
            );
        }
    }
}

/// Runs `workers` snapshotter workers on the player product, its views published as `format`,
/// into a fresh directory until the progress has taken in all `records`; returns events/s from
/// their start.
async fn snapshot_workers(
    platform: &Platform,
    format: meshline::product::TableFormat,
    workers: usize,
    records: usize,
) -> f64 {
    let mut product = meshline::formats::load_catalog(std::path::Path::new("config"))
        .expect("catalog")
        .get(PRODUCT)
        .expect("product")
        .clone();
    for view in &mut product.descriptor.views {
        view.format = format;
    }
    let mut catalog = Catalog::default();
    catalog.insert(product);
    let dir = tempfile::tempdir().expect("snapshot dir");
    let store = Store::open(dir.path().to_str().expect("path")).expect("store");
    let mut config = SnapshotterConfig::new(&platform.bootstrap, &platform.url, store.clone());
    config.checkpoint_interval = Duration::from_millis(100);
    // a group of its own: no other run's members to elect among
    config.group_prefix = format!("bench-{}", uuid::Uuid::new_v4());
    // as `meshline snapshotter` by default: Iceberg views registered in an SQL catalog
    config.iceberg_catalog = Some(meshline::snapshot::SqlCatalog::new(
        dir.path().join("iceberg-catalog.db"),
        "meshline",
    ));
    let catalog = Arc::new(catalog);
    let stop = CancellationToken::new();
    let started = Instant::now();
    let running: Vec<_> = (0..workers)
        .map(|_| {
            let metrics = snapshot::Metrics::new(&prometheus::Registry::new()).expect("metrics");
            tokio::spawn(snapshot::worker::run(
                config.clone(),
                catalog.clone(),
                metrics,
                stop.clone(),
            ))
        })
        .collect();
    loop {
        let taken: i64 = match snapshot::worker::load_progress(&store, PRODUCT).await {
            Ok(Some(progress)) => progress
                .views
                .values()
                .map(|v| {
                    v.partitions
                        .values()
                        .map(|p| p.done_through + 1)
                        .sum::<i64>()
                })
                .min()
                .unwrap_or(0),
            _ => 0,
        };
        if taken >= records as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let rate = records as f64 / started.elapsed().as_secs_f64();
    stop.cancel();
    for worker in running {
        worker.await.expect("worker");
    }
    rate
}

/// The median of some values (0 for none).
fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// Per-round ratios of paired measurements.
struct Paired(Vec<f64>);

impl Paired {
    fn of(pairs: impl IntoIterator<Item = (f64, Option<f64>)>) -> Self {
        Self(
            pairs
                .into_iter()
                .filter_map(|(m, r)| r.filter(|r| *r > 0.0).map(|r| m / r))
                .collect(),
        )
    }

    fn median(&self) -> String {
        if self.0.is_empty() {
            return "—".into();
        }
        format!("{:.2}×", median(self.0.iter().copied()))
    }

    fn range(&self) -> String {
        let min = self.0.iter().copied().fold(f64::INFINITY, f64::min);
        let max = self.0.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if self.0.is_empty() {
            return "—".into();
        }
        format!("{min:.2}–{max:.2}×")
    }
}

fn print_table(obs: &[Obs]) {
    let mut keys: Vec<(&str, &str, &str)> = Vec::new();
    for o in obs {
        let key = (o.storage, o.stage.as_str(), o.size);
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    let mut storage = "";
    for key in keys {
        if key.0 != storage {
            storage = key.0;
            println!("\n## Stages, {storage}\n");
            println!("| stage | event | meshline events/s | raw rdkafka events/s | ratio median | ratio range | rounds | p50 | p99 | peak RSS |");
            println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
        }
        let of: Vec<&Obs> = obs
            .iter()
            .filter(|o| (o.storage, o.stage.as_str(), o.size) == key)
            .collect();
        let ratios = Paired::of(of.iter().map(|o| (o.rate, o.baseline)));
        let baseline = if of.iter().any(|o| o.baseline.is_some()) {
            format!("{:.0}", median(of.iter().filter_map(|o| o.baseline)))
        } else {
            "—".into()
        };
        let latencies: Vec<(Duration, Duration)> = of.iter().filter_map(|o| o.latency).collect();
        let (p50, p99) = if latencies.is_empty() {
            ("—".into(), "—".into())
        } else {
            let at = |f: fn(&(Duration, Duration)) -> Duration| {
                millis(Duration::from_secs_f64(median(
                    latencies.iter().map(|l| f(l).as_secs_f64()),
                )))
            };
            (at(|l| l.0), at(|l| l.1))
        };
        println!(
            "| {} | {} | {:.0} | {baseline} | {} | {} | {} | {p50} | {p99} | {} MiB |",
            key.1,
            key.2,
            median(of.iter().map(|o| o.rate)),
            ratios.median(),
            ratios.range(),
            of.len(),
            of.iter().map(|o| o.peak_rss_mib).max().unwrap_or(0)
        );
    }
}

/// The targets, met or not by the rounds above (`PlayEvent`, each storage): a ratio target by
/// the median of the paired ratios, a rate target by the median rate.
fn print_targets(obs: &[Obs]) {
    enum Target {
        Ratio(f64),
        Rate(f64),
    }
    let targets = [
        (
            "SDK produce",
            "SDK ≥ 0.9× a raw producer",
            Target::Ratio(0.9),
        ),
        (
            "gateway validate + route",
            "gateway ≥ 0.8× a raw consume → produce pipe",
            Target::Ratio(0.8),
        ),
        (
            "snapshotter core alone (records in memory, one core)",
            "snapshotter core ≥ 500,000 events/s on one core",
            Target::Rate(500_000.0),
        ),
        (
            "HTTP ingress, batch mode (100 a request; latency per request)",
            "HTTP ingress ≥ 50,000 events/s in batch mode",
            Target::Rate(50_000.0),
        ),
    ];
    let mut storages: Vec<&str> = Vec::new();
    for o in obs {
        if !storages.contains(&o.storage) {
            storages.push(o.storage);
        }
    }
    println!("\n## Targets (PlayEvent, from the rounds above)\n");
    println!("| target | storage | measured | met |");
    println!("| --- | --- | ---: | --- |");
    for (stage, text, target) in &targets {
        for storage in &storages {
            let of: Vec<&Obs> = obs
                .iter()
                .filter(|o| o.storage == *storage && o.stage == *stage && o.size == "PlayEvent")
                .collect();
            if of.is_empty() {
                continue;
            }
            let (measured, met) = match target {
                Target::Ratio(at_least) => {
                    let ratios = Paired::of(of.iter().map(|o| (o.rate, o.baseline)));
                    if ratios.0.is_empty() {
                        continue;
                    }
                    let m = median(ratios.0.iter().copied());
                    (ratios.median(), m >= *at_least)
                }
                Target::Rate(at_least) => {
                    let m = median(of.iter().map(|o| o.rate));
                    (format!("{m:.0} events/s"), m >= *at_least)
                }
            };
            println!(
                "| {text} | {storage} | {measured} | {} |",
                if met { "met" } else { "not met" }
            );
        }
    }
}

fn millis(d: Duration) -> String {
    if d < Duration::from_micros(1) {
        format!("{} ns", d.as_nanos())
    } else if d < Duration::from_millis(1) {
        format!("{:.1} µs", d.as_secs_f64() * 1e6)
    } else {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    }
}

/// Resets the process's peak RSS (Linux: `clear_refs` 5).
fn reset_peak() {
    std::fs::write("/proc/self/clear_refs", "5").ok();
}

/// The process's peak RSS since the last reset, in MiB.
fn peak_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib / 1024)
}

fn quantiles(mut latencies: Vec<Duration>) -> Option<(Duration, Duration)> {
    if latencies.is_empty() {
        return None;
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize];
    Some((at(0.5), at(0.99)))
}

/// An acknowledgement to wait for.
type Ack = BoxFuture<'static, ()>;

/// Times each acknowledgement from its send, as they come (not in send order).
async fn drain(mut sent: tokio::sync::mpsc::UnboundedReceiver<(Instant, Ack)>) -> Vec<Duration> {
    let mut pending = FuturesUnordered::new();
    let mut out = Vec::new();
    let mut open = true;
    loop {
        tokio::select! {
            next = sent.recv(), if open => match next {
                Some((at, ack)) => pending.push(async move {
                    ack.await;
                    at.elapsed()
                }),
                None => open = false,
            },
            Some(took) = pending.next(), if !pending.is_empty() => out.push(took),
            else => break,
        }
    }
    out
}

/// The SDK and the raw producer, each sending every event into the ingress (`raw_first`: the raw
/// producer first); what each measured, and how many records the ingress holds after.
async fn sdk_stage(
    platform: &Platform,
    events: &[PlayEvent],
    raw_first: bool,
) -> (Measured, Measured, usize) {
    let sdk = Producer::builder(&platform.bootstrap, &platform.url)
        .source("/player/web-player")
        .event::<PlayEvent>()
        .build()
        .await
        .expect("sdk");
    // the SDK's producer settings (its linger.ms is the 5 ms of `producer_config`)
    let raw: FutureProducer = broker::producer_config(&platform.bootstrap)
        .create()
        .expect("raw producer");
    // the records the SDK makes of the events, for the raw producer to send as they are (the
    // same bytes, keys and so partitions)
    let mut records = Vec::with_capacity(events.len());
    for event in events {
        records.push(sdk.record_for(event).await.expect("record"));
    }
    // the first send of each connects to the partition leaders
    sdk.send(&events[0]).await.expect("warm-up");
    produce(&raw, INGRESS, &records[0])
        .await
        .expect("raw warm-up")
        .await
        .expect("delivered")
        .expect("acked");

    let raw_side = || async {
        reset_peak();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Ack)>();
        let drained = tokio::spawn(drain(rx));
        let started = Instant::now();
        for record in &records {
            let at = Instant::now();
            let delivery = produce(&raw, INGRESS, record).await.expect("raw");
            tx.send((
                at,
                Box::pin(async move {
                    delivery.await.expect("delivered").expect("acked");
                }),
            ))
            .ok();
        }
        drop(tx);
        let latencies = drained.await.expect("drain");
        Measured {
            rate: events.len() as f64 / started.elapsed().as_secs_f64(),
            latency: quantiles(latencies),
            peak_rss_mib: peak_mib(),
        }
    };
    let sdk_side = || async {
        reset_peak();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, Ack)>();
        let drained = tokio::spawn(drain(rx));
        let started = Instant::now();
        for event in events {
            let at = Instant::now();
            let pending = sdk.enqueue(event).await.expect("sdk");
            tx.send((
                at,
                Box::pin(async move {
                    pending.acknowledged().await.expect("acknowledged");
                }),
            ))
            .ok();
        }
        drop(tx);
        let latencies = drained.await.expect("drain");
        Measured {
            rate: events.len() as f64 / started.elapsed().as_secs_f64(),
            latency: quantiles(latencies),
            peak_rss_mib: peak_mib(),
        }
    };
    let (sdk_measured, raw_measured) = if raw_first {
        let raw = raw_side().await;
        (sdk_side().await, raw)
    } else {
        let sdk = sdk_side().await;
        (sdk, raw_side().await)
    };
    (sdk_measured, raw_measured, 2 * events.len() + 2)
}

/// The gateway over every ingress record, against the raw pipe (`raw_first`: the raw pipe
/// first); the gateway's measurement and the raw pipe's rate.
async fn gateway_stage(platform: &Platform, records: usize, raw_first: bool) -> (Measured, f64) {
    create_raw_out(&platform.bootstrap).await;
    let raw = || {
        let b = platform.bootstrap.clone();
        tokio::task::spawn_blocking(move || raw_pipe(&b, records, "bench-raw"))
    };
    let gateway = || async {
        reset_peak();
        let rate = gateway_pipe(&platform.bootstrap, &platform.url, 1, records)
            .await
            .rate;
        Measured {
            rate,
            latency: None,
            peak_rss_mib: peak_mib(),
        }
    };
    if raw_first {
        let raw = raw().await.expect("raw pipe").rate;
        (gateway().await, raw)
    } else {
        let gateway = gateway().await;
        (gateway, raw().await.expect("raw pipe").rate)
    }
}

/// The snapshotter's core: decode, windows, Parquet of every closed window (built, not stored).
struct Core {
    decoding: Decoding,
    runners: Vec<ViewRunner>,
    written: usize,
}

impl Core {
    fn new(product: &Product, writer: (u32, String)) -> Self {
        let reader = serde_json::to_string(&product.schema).expect("schema json");
        let decoding = Decoding::new(&reader, &[writer], 8192).expect("decoding");
        let schema = decoding.schema().expect("arrow schema");
        let runners = product
            .descriptor
            .views
            .iter()
            .map(|v| {
                // one runner takes the records of every partition in (its clock adds each as
                // it comes): the per-record work of the partitions' runners, on one core
                ViewRunner::new(
                    PRODUCT,
                    v,
                    schema.clone(),
                    0,
                    100_000,
                    &Spill::default(),
                    None,
                )
                .expect("view")
            })
            .collect();
        Self {
            decoding,
            runners,
            written: 0,
        }
    }

    fn push(&mut self, input: &Input<'_>) {
        if self.decoding.is_full() {
            self.flush();
        }
        self.decoding
            .push(
                input.partition,
                input.offset,
                input.time,
                input.id,
                input.payload,
            )
            .expect("push");
    }

    fn flush(&mut self) {
        if let Some(rows) = self.decoding.finish().expect("rows") {
            for runner in self.runners.iter_mut() {
                let step = runner.step(&rows).expect("step");
                let closed = runner.advance(Instant::now(), None).expect("advance");
                self.written += step
                    .puts
                    .iter()
                    .chain(&closed.puts)
                    .map(|p| p.bytes.len())
                    .sum::<usize>();
            }
        }
    }
}

/// What the snapshotter takes of a record.
struct Input<'a> {
    partition: i32,
    offset: i64,
    time: Option<i64>,
    id: Option<&'a str>,
    payload: &'a [u8],
}

/// A record kept in memory.
struct Owned {
    partition: i32,
    offset: i64,
    time: Option<i64>,
    id: Option<String>,
    payload: Vec<u8>,
}

impl Owned {
    fn input(&self) -> Input<'_> {
        Input {
            partition: self.partition,
            offset: self.offset,
            time: self.time,
            id: self.id.as_deref(),
            payload: &self.payload,
        }
    }
}

/// What a read of the product topic does with each record.
#[derive(Clone, Copy, PartialEq)]
enum Pass {
    /// Nothing: the raw consumer.
    Raw,
    /// The snapshotter's core.
    Snapshot,
    /// Keeps it in memory (untimed).
    Collect,
}

/// Reads `records` of the product topic from its start; the time from the first record to the
/// last handled, and the records kept by [`Pass::Collect`].
async fn read_product(platform: &Platform, records: usize, pass: Pass) -> (Duration, Vec<Owned>) {
    let catalog = meshline::formats::load_catalog(std::path::Path::new("config")).expect("catalog");
    let product = catalog.get(PRODUCT).expect("product").clone();
    let latest = Client::new(&platform.url)
        .latest(&format!("{PRODUCT}-value"))
        .await
        .expect("latest schema");
    let writer = (
        latest.id,
        serde_json::to_string(latest.schema.as_ref()).expect("writer json"),
    );
    let bootstrap = platform.bootstrap.clone();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = broker::client_config(&bootstrap)
            .set("group.id", "bench-snapshot")
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .set("fetch.wait.max.ms", "50")
            .set("fetch.queue.backoff.ms", broker::FETCH_QUEUE_BACKOFF_MS)
            .create()
            .expect("consumer");
        let mut assignment = TopicPartitionList::new();
        for p in 0..product.descriptor.partitions {
            assignment
                .add_partition_offset(PRODUCT, p, Offset::Beginning)
                .expect("partition");
        }
        consumer.assign(&assignment).expect("assign");
        let mut core = Core::new(&product, writer);
        let mut kept = Vec::new();
        let (mut read, mut bytes) = (0, 0usize);
        let mut started = None;
        while read < records {
            let Some(Ok(message)) = consumer.poll(Duration::from_millis(50)) else {
                continue;
            };
            started.get_or_insert_with(Instant::now);
            read += 1;
            let payload = message.payload().unwrap_or_default();
            bytes += payload.len();
            if pass == Pass::Raw {
                continue;
            }
            let (mut time, mut id) = (None, None);
            if let Some(headers) = rdkafka::message::Message::headers(&message) {
                use rdkafka::message::Headers as _;
                for header in headers.iter() {
                    match header.key {
                        "ce_time" => {
                            time = header
                                .value
                                .and_then(|v| std::str::from_utf8(v).ok())
                                .and_then(|v| DateTime::parse_from_rfc3339(v).ok())
                                .map(|t| t.timestamp_millis());
                        }
                        "ce_id" => id = header.value.and_then(|v| std::str::from_utf8(v).ok()),
                        _ => {}
                    }
                }
            }
            let input = Input {
                partition: message.partition(),
                offset: message.offset(),
                time,
                id,
                payload,
            };
            if pass == Pass::Collect {
                kept.push(Owned {
                    partition: input.partition,
                    offset: input.offset,
                    time,
                    id: id.map(str::to_owned),
                    payload: payload.to_vec(),
                });
            } else {
                core.push(&input);
            }
        }
        core.flush();
        std::hint::black_box((bytes, core.written));
        (started.map_or(Duration::ZERO, |s| s.elapsed()), kept)
    })
    .await
    .expect("reader")
}

/// The snapshotter's consume + decode + window + write, against a raw consumer (`raw_first`:
/// the raw consumer first); and its core alone on one core, over the same records in memory.
/// Answers the snapshotter's measurement, the raw consumer's rate, and the core's measurement.
async fn snapshot_stage(
    platform: &Platform,
    records: usize,
    raw_first: bool,
) -> (Measured, f64, Measured) {
    let raw = || async {
        let (took, _) = read_product(platform, records, Pass::Raw).await;
        records as f64 / took.as_secs_f64()
    };
    let snapshot = || async {
        reset_peak();
        let (took, _) = read_product(platform, records, Pass::Snapshot).await;
        Measured {
            rate: records as f64 / took.as_secs_f64(),
            latency: None,
            peak_rss_mib: peak_mib(),
        }
    };
    let (with_kafka, raw) = if raw_first {
        let raw = raw().await;
        (snapshot().await, raw)
    } else {
        let with_kafka = snapshot().await;
        (with_kafka, raw().await)
    };
    let (_, kept) = read_product(platform, records, Pass::Collect).await;
    let catalog = meshline::formats::load_catalog(std::path::Path::new("config")).expect("catalog");
    let product = catalog.get(PRODUCT).expect("product").clone();
    let latest = Client::new(&platform.url)
        .latest(&format!("{PRODUCT}-value"))
        .await
        .expect("latest schema");
    let writer = (
        latest.id,
        serde_json::to_string(latest.schema.as_ref()).expect("writer json"),
    );
    reset_peak();
    let took = tokio::task::spawn_blocking(move || {
        let mut core = Core::new(&product, writer);
        let started = Instant::now();
        for record in &kept {
            core.push(&record.input());
        }
        core.flush();
        std::hint::black_box(core.written);
        started.elapsed()
    })
    .await
    .expect("core");
    let core_only = Measured {
        rate: records as f64 / took.as_secs_f64(),
        latency: None,
        peak_rss_mib: peak_mib(),
    };
    (with_kafka, raw, core_only)
}

/// The HTTP ingress in batch mode.
async fn http_stage(platform: &Platform, events: &[PlayEvent]) -> Measured {
    let catalog =
        Arc::new(meshline::formats::load_catalog(std::path::Path::new("config")).expect("catalog"));
    let contracts = Arc::new(
        Contracts::load(Client::new(&platform.url), [PRODUCT.to_owned()])
            .await
            .expect("contracts"),
    );
    let (tokens, shown) = Tokens::generate(["player"]);
    let producer = broker::producer_config(&platform.bootstrap)
        .create()
        .expect("producer");
    let metrics = Metrics::new(&prometheus::Registry::new()).expect("metrics");
    let config = IngressConfig {
        max_body_bytes: 4 * 1024 * 1024,
        ..IngressConfig::default()
    };
    let ingress = Ingress::new(
        config,
        catalog,
        contracts,
        tokens,
        producer,
        &platform.url,
        metrics,
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listener");
    let endpoint = format!(
        "http://{}/v1/products/{PRODUCT}/events",
        listener.local_addr().expect("addr")
    );
    meshline::server::spawn(
        listener,
        meshline::gateway::http::router(ingress),
        platform.stop.clone(),
    );
    let auth = format!("Bearer {}", shown[0].1);

    const BATCH: usize = 100;
    let bodies: Vec<Vec<u8>> = events
        .chunks(BATCH)
        .enumerate()
        .map(|(b, chunk)| {
            let batch: Vec<serde_json::Value> = chunk
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    serde_json::json!({
                        "specversion": "1.0",
                        "id": format!("http-{b}-{i}"),
                        "source": "/player/web-player",
                        "type": "com.example.player.track.played",
                        "time": DateTime::from_timestamp_millis(e.started_at)
                            .unwrap_or_default()
                            .to_rfc3339_opts(SecondsFormat::Millis, true),
                        "subject": e.user_id,
                        "datacontenttype": "application/json",
                        "data": e,
                    })
                })
                .collect();
            serde_json::to_vec(&batch).expect("body")
        })
        .collect();
    let http = reqwest::Client::new();
    let post = |body: Vec<u8>| {
        let request = http
            .post(&endpoint)
            .header("authorization", &auth)
            .header("content-type", "application/cloudevents-batch+json")
            .body(body);
        async move {
            let at = Instant::now();
            let response = request.send().await.expect("request");
            assert_eq!(response.status(), 202, "{:?}", response.text().await);
            at.elapsed()
        }
    };
    post(bodies[0].clone()).await; // connects
    reset_peak();
    let started = Instant::now();
    let latencies: Vec<Duration> = futures::stream::iter(bodies.into_iter().map(post))
        .buffer_unordered(8)
        .collect()
        .await;
    Measured {
        rate: events.len() as f64 / started.elapsed().as_secs_f64(),
        latency: quantiles(latencies),
        peak_rss_mib: peak_mib(),
    }
}

/// Cached schema lookups in the client, and lookups over HTTP.
async fn registry_stage(platform: &Platform) -> Vec<(&'static str, Measured)> {
    let client = Client::new(&platform.url);
    let id = client
        .latest(&format!("{PRODUCT}-value"))
        .await
        .expect("latest")
        .id;
    client.schema(id).await.expect("schema");
    reset_peak();
    let n = 2_000_000;
    let started = Instant::now();
    for _ in 0..n {
        std::hint::black_box(client.cached_schema(std::hint::black_box(id)));
    }
    let took = started.elapsed();
    let cached = Measured {
        rate: n as f64 / took.as_secs_f64(),
        latency: Some((took / n, took / n)),
        peak_rss_mib: peak_mib(),
    };

    let http = reqwest::Client::new();
    let url = format!("{}/schemas/ids/{id}", platform.url);
    let get = |_| {
        let request = http.get(&url);
        async move {
            let at = Instant::now();
            let response = request.send().await.expect("request");
            assert!(response.status().is_success());
            response.bytes().await.expect("body");
            at.elapsed()
        }
    };
    reset_peak();
    let n = 20_000;
    let started = Instant::now();
    let latencies: Vec<Duration> = futures::stream::iter((0..n).map(get))
        .buffer_unordered(32)
        .collect()
        .await;
    let over_http = Measured {
        rate: n as f64 / started.elapsed().as_secs_f64(),
        latency: quantiles(latencies),
        peak_rss_mib: peak_mib(),
    };
    vec![
        (
            "registry lookup, cached in the client (latency: mean)",
            cached,
        ),
        (
            "registry `GET /schemas/ids/{id}` over HTTP (32 in flight)",
            over_http,
        ),
    ]
}

/// The `PlayEvent` record the SDK writes, as the contract core sees it.
fn play_record(schema_id: u32, schema: &WriterSchema) -> Record {
    use apache_avro::writer::datum::GenericDatumWriter;
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
    Record {
        key: Some(b"user-42".to_vec()),
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
            .collect(),
        payload: Some(wire::encode(schema_id, &body)),
    }
}

/// Per-event routing + contract check with 10, 100 and 1,000 products registered, and the time
/// to load their contracts from the registry.
async fn products_scaling() {
    println!(
        "\n## Cost per event by products registered (gateway routing + contract check, one core)\n"
    );
    println!("| products | load contracts | per event | events/s |");
    println!("| ---: | ---: | ---: | ---: |");
    let catalog = meshline::formats::load_catalog(std::path::Path::new("config")).expect("catalog");
    let play = catalog.get(PRODUCT).expect("product");
    for count in [10usize, 100, 1_000] {
        let extra: Vec<Product> = (1..count)
            .map(|i| {
                let mut p = play.clone();
                p.descriptor.id = format!("player.plays-{i:04}");
                p
            })
            .collect();
        let platform = Platform::start(false, &extra).await;
        let ids: Vec<String> = std::iter::once(PRODUCT.to_owned())
            .chain(extra.iter().map(|p| p.descriptor.id.clone()))
            .collect();
        let started = Instant::now();
        let contracts = Contracts::load(Client::new(&platform.url), ids.clone())
            .await
            .expect("contracts");
        let load = started.elapsed();
        let topics: Vec<String> = ids.iter().map(|id| format!("{id}.ingress")).collect();
        let first = contracts.get(PRODUCT).expect("registered");
        let record = play_record(first.latest_id, &first.schemas[&first.latest_id]);
        let n = 400_000;
        let started = Instant::now();
        for i in 0..n {
            let topic = &topics[i % topics.len()];
            let product = contracts.product_of_ingress(topic).expect("routed");
            let registered = contracts.get(product).expect("contract");
            let checked = registered
                .contract
                .check_record(&record, |id| registered.schema(id));
            std::hint::black_box(checked.is_ok());
        }
        let per = started.elapsed() / n as u32;
        println!(
            "| {count} | {load:.2?} | {} | {:.0} |",
            millis(per),
            1.0 / per.as_secs_f64()
        );
        platform.stop().await;
    }
}

/// The contract check of one event of a demo product in each schema language, with its rule:
/// `PlayEvent` (Avro, two rules), a `labels.releases` document (JSON Schema: parsed, validated,
/// resolved to its field model) and an `artists.follows` message (Protobuf: decoded by
/// reflection into its field model).
fn schema_languages() {
    use protobuf::reflect::ReflectValueBox;

    println!(
        "\n## Contract check by schema language (one demo event each, contract core, one core)\n"
    );
    println!("| product | schema | per event | events/s |");
    println!("| --- | --- | ---: | ---: |");
    let catalog = meshline::formats::load_catalog(std::path::Path::new("config")).expect("catalog");
    let play = catalog.get(PRODUCT).expect("product");
    let avro = Arc::new(WriterSchema::new(Arc::new(play.schema.clone())));
    let releases = catalog.get("labels.releases").expect("labels.releases");
    let json = Arc::new(
        meshline::formats::json::writer_schema(&releases.schema_text, "releases").expect("json"),
    );
    let document = serde_json::json!({
        "release_id": "8f0e2c9a", "label_id": "label-7", "title": "Night Drive", "format": "EP",
        "tracks": 5, "release_date": "2026-11-25", "explicit": false,
    });
    let follows = catalog.get("artists.follows").expect("artists.follows");
    let message = follows.descriptor.message.as_deref();
    let protobuf = Arc::new(
        meshline::formats::protobuf::writer_schema(&follows.schema_text, &[], message)
            .expect("protobuf"),
    );
    let files = meshline::registry::protobuf::compile(&follows.schema_text, &[]).expect("proto");
    let (descriptor, _) =
        meshline::registry::protobuf::message_of(files, message).expect("message");
    let mut follow = descriptor.new_instance();
    for (field, value) in [
        ("follow_id", "8f0e2c9a"),
        ("user_id", "user-42"),
        ("artist_id", "artist-7"),
    ] {
        let field = descriptor.field_by_name(field).expect("field");
        field.set_singular_field(&mut *follow, ReflectValueBox::String(value.to_owned()));
    }
    let mut framed = vec![0];
    framed.extend(follow.write_to_bytes_dyn().expect("message"));
    let cases = [
        (
            play,
            "Avro",
            avro.clone(),
            play_record(3, &avro).payload.expect("payload")[5..].to_vec(),
            "application/avro",
        ),
        (
            releases,
            "JSON Schema",
            json,
            document.to_string().into_bytes(),
            "application/json",
        ),
        (
            follows,
            "Protobuf",
            protobuf,
            framed,
            "application/protobuf",
        ),
    ];
    for (product, language, schema, body, content_type) in cases {
        let contract = Contract::from_product(product).expect("contract");
        let d = &product.descriptor;
        let record = Record {
            key: Some(b"key-42".to_vec()),
            headers: [
                ("ce_specversion", "1.0"),
                ("ce_id", "8f0e2c9a-2b6f-4d4c-9a51-0d0d6f1c7b11"),
                ("ce_source", &format!("{}/bench", d.cloudevents.source)),
                ("ce_type", d.cloudevents.types[0].as_str()),
                ("ce_time", "2026-11-25T10:00:00.123Z"),
                ("content-type", content_type),
            ]
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
            .collect(),
            payload: Some(wire::encode(3, &body)),
        };
        let per = per_check(&contract, &record, &schema, 200_000);
        println!(
            "| {} | {language} | {} | {:.0} |",
            product.id(),
            millis(per),
            1.0 / per.as_secs_f64()
        );
    }
}

/// The time of one contract check of `record` (written with `schema`, id 3), over `n` checks.
fn per_check(contract: &Contract, record: &Record, schema: &Arc<WriterSchema>, n: u32) -> Duration {
    let lookup = |id: u32| (id == 3).then(|| schema.clone());
    contract.check_record(record, lookup).expect("valid");
    let started = Instant::now();
    for _ in 0..n {
        std::hint::black_box(
            contract
                .check_record(std::hint::black_box(record), lookup)
                .is_ok(),
        );
    }
    started.elapsed() / n
}

/// The contract core with 0, 5 and 20 rules.
fn rules_scaling() {
    println!("\n## Cost per event by rules per product (contract core, one core)\n");
    println!("| rules | per event | events/s |");
    println!("| ---: | ---: | ---: |");
    let catalog = meshline::formats::load_catalog(std::path::Path::new("config")).expect("catalog");
    let play = catalog.get(PRODUCT).expect("product");
    let schema = Arc::new(WriterSchema::new(Arc::new(play.schema.clone())));
    let record = play_record(3, &schema);
    // the common shapes, each compiled to native code (an expression the native forms do not
    // cover runs in the `cel` interpreter: about 270 ns a rule, `cargo bench --bench contract`)
    let shapes = [
        "message.duration_ms >= N",
        "size(message.country) == 2",
        "message.user_id != 'blocked-N'",
        "message.country in ['XN', 'SE', 'NO', 'DK', 'FI', 'DE', 'FR', 'ES', 'IT', 'NL', 'GB', 'US', 'BR', 'JP', 'NG']",
        "message.duration_ms < 86400000 && message.track_id != 'N'",
    ];
    for count in [0usize, 5, 20] {
        let mut product = play.clone();
        product.descriptor.rules = (0..count)
            .map(|i| {
                let expression = shapes[i % shapes.len()].replace('N', &i.to_string());
                serde_norway::from_str::<Rule>(&format!(
                    "{{name: rule-{i}, expression: \"{expression}\"}}"
                ))
                .expect("rule")
            })
            .collect();
        let contract = Contract::from_product(&product).expect("contract");
        let per = per_check(&contract, &record, &schema, 400_000);
        println!(
            "| {count} | {} | {:.0} |",
            millis(per),
            1.0 / per.as_secs_f64()
        );
    }
}
