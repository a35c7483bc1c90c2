//! SDK producer against raw rdkafka on the same embedded broker in one run: throughput ratio
//! (SDK encoding, contract check and CloudEvents binding included; raw sends the very records
//! the SDK makes of the same events, built before its clock starts: the same bytes, keys and
//! partitions), and send→ack latency at a steady 10,000 events/s.
//! Run: `cargo bench --bench sdk` (in-memory broker storage), or with
//! `MESHLINE_BENCH_STORAGE=sqlite` on the durable storage `meshline up` uses.
//!
//! The broker and the registry run in a child process, as they do for a service: the bench's
//! own process holds what a producing service holds (its runtime and its producers), with no
//! allocator setting.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::Utc;
use meshline::{
    binding::kafka::Record,
    broker,
    demo::events::PlayEvent,
    sdk::{producer::produce, Producer, Target},
};
use rand::{rngs::StdRng, SeedableRng};
use rdkafka::producer::FutureProducer;
use tokio_util::sync::CancellationToken;

mod common;
use common::{serve_registry, start_broker, ThreadCpu};

const EVENTS: usize = 100_000;
const ROUNDS: usize = 5;

/// Set in the child process that serves the broker and the registry.
const SERVE: &str = "MESHLINE_BENCH_SERVE";

fn main() {
    if std::env::var_os(SERVE).is_some() {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        runtime.block_on(serve());
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

/// The child: the embedded broker and the registry, their addresses on one line of stdout,
/// until stdin closes (the bench ended or died).
async fn serve() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = start_broker(dir.path()).await;
    let bootstrap = broker.bootstrap();
    let stop = CancellationToken::new();
    let url = serve_registry(&bootstrap, stop.clone()).await;
    println!("{bootstrap} {url}");
    tokio::task::spawn_blocking(|| std::io::copy(&mut std::io::stdin(), &mut std::io::sink()))
        .await
        .ok();
    stop.cancel();
    broker.stop().await;
}

/// The broker and registry in a child process: it, and their addresses.
fn spawn_servers() -> (std::process::Child, String, String) {
    use std::io::BufRead as _;
    let mut child = std::process::Command::new(std::env::current_exe().expect("bench path"))
        .env(SERVE, "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the servers' process");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = std::io::BufReader::new(stdout).lines();
    let addresses = loop {
        let line = lines.next().expect("the servers' addresses").expect("line");
        println!("{line}");
        if let Some((bootstrap, url)) = line.split_once(' ') {
            if url.starts_with("http") {
                break (bootstrap.to_owned(), url.to_owned());
            }
        }
    };
    // the child's later output goes on to ours
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(|l| println!("{l}")));
    (child, addresses.0, addresses.1)
}

async fn run() {
    let (mut servers, bootstrap, url) = spawn_servers();
    let sdk = Producer::builder(&bootstrap, &url)
        .source("/player/web-player")
        .target(Target::Direct)
        .event::<PlayEvent>()
        .build()
        .await
        .expect("sdk producer");
    // the SDK's producer settings (its linger.ms is the 5 ms of `producer_config`)
    let raw: FutureProducer = broker::producer_config(&bootstrap)
        .create()
        .expect("raw producer");

    let mut rng = StdRng::seed_from_u64(1);
    let events: Vec<PlayEvent> = (0..EVENTS)
        .map(|_| PlayEvent::random(&mut rng, Utc::now()))
        .collect();
    // the records the SDK sends for the events, for raw rdkafka to send as they are: the same
    // keys spread them over the same partitions (one record sent again and again would put
    // them all in one partition, in fewer and larger batches)
    let mut records = Vec::with_capacity(EVENTS);
    for e in &events {
        records.push(sdk.record_for(e).await.expect("record"));
    }

    breakdown(&sdk, &events).await;
    // the first send connects to the partition leaders: steady state is measured after it
    sdk.send(&events[0]).await.expect("first send");
    let latencies = steady_latency(&sdk, &events, 10_000, Duration::from_secs(5)).await;
    let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize];
    println!(
        "sdk/send_to_ack at 10000 events/s: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} events)",
        at(0.50).as_secs_f64() * 1e3,
        at(0.99).as_secs_f64() * 1e3,
        at(1.0).as_secs_f64() * 1e3,
        latencies.len()
    );

    // the machine's speed drifts within minutes: rounds alternate which side goes first, and
    // each round's ratio compares two runs seconds apart
    let mut best_raw = 0f64;
    let mut best_sdk = 0f64;
    let mut ratios = Vec::new();
    for round in 1..=ROUNDS {
        let (raw_rate, sdk_rate) = if round % 2 == 1 {
            let raw_rate = raw_round(&raw, &records).await;
            (raw_rate, sdk_round(&sdk, &events).await)
        } else {
            let sdk_rate = sdk_round(&sdk, &events).await;
            (raw_round(&raw, &records).await, sdk_rate)
        };
        println!(
            "round {round}: raw {raw_rate:.0} events/s, sdk {sdk_rate:.0} events/s, ratio {:.2}",
            sdk_rate / raw_rate
        );
        best_raw = best_raw.max(raw_rate);
        best_sdk = best_sdk.max(sdk_rate);
        ratios.push(sdk_rate / raw_rate);
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "sdk_vs_raw/throughput: ratio median {:.2}×, range {:.2}–{:.2}× over {ROUNDS} paired rounds (sdk round i ÷ raw round i); best rounds sdk {best_sdk:.0}, raw {best_raw:.0} events/s; {} threads in this process (the broker and registry in another)",
        ratios[ratios.len() / 2],
        ratios[0],
        ratios[ratios.len() - 1],
        threads(),
    );

    drop(servers.stdin.take());
    servers.wait().expect("the servers' process ends");
}

/// Threads of this process (Linux; 0 elsewhere): glibc gives threads their own malloc arena up
/// to 8 per core, so the count says whether the sending thread may have shared one.
fn threads() -> usize {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Raw rdkafka sends `records` and waits for every acknowledgement; returns events/s.
async fn raw_round(raw: &FutureProducer, records: &[Record]) -> f64 {
    let cpu = ThreadCpu::now();
    let started = Instant::now();
    let mut pending = Vec::with_capacity(records.len());
    for record in records {
        pending.push(
            produce(raw, "player.play-events", record)
                .await
                .expect("raw"),
        );
    }
    for p in pending {
        p.await.expect("raw delivery").expect("raw ack");
    }
    let rate = records.len() as f64 / started.elapsed().as_secs_f64();
    println!("  raw, CPU per event: {}", cpu.per_event(records.len()));
    rate
}

/// The SDK hands `events` over one `enqueue` at a time (what `send_batch` does), then waits for
/// every acknowledgement; returns events/s.
async fn sdk_round(sdk: &Producer, events: &[PlayEvent]) -> f64 {
    let cpu = ThreadCpu::now();
    let started = Instant::now();
    let mut pending = Vec::with_capacity(events.len());
    for e in events {
        pending.push(sdk.enqueue(e).await.expect("sdk"));
    }
    for p in pending {
        p.acknowledged().await.expect("sdk ack");
    }
    let rate = events.len() as f64 / started.elapsed().as_secs_f64();
    println!("  sdk, CPU per event: {}", cpu.per_event(events.len()));
    rate
}

/// Where one event's time goes, without Kafka.
async fn breakdown(sdk: &Producer, events: &[PlayEvent]) {
    use apache_avro::{reader::datum::GenericDatumReader, writer::datum::GenericDatumWriter};
    let n = 20_000;
    let catalog = meshline::formats::load_catalog(std::path::Path::new("config")).expect("catalog");
    let product = catalog.get("player.play-events").expect("product");
    let contract = meshline::contract::Contract::from_product(product).expect("contract");
    let schema = &product.schema;
    let per = |started: Instant| started.elapsed().as_secs_f64() * 1e6 / n as f64;

    let started = Instant::now();
    for e in &events[..n] {
        std::hint::black_box(sdk.record_for(e).await.expect("record"));
    }
    println!("breakdown: whole event → record {:.2} µs", per(started));
    let started = Instant::now();
    for e in &events[..n] {
        let w = GenericDatumWriter::builder(schema).build().expect("writer");
        std::hint::black_box(w.write_ser_to_vec(e).expect("body"));
    }
    println!(
        "breakdown: avro writer build + write {:.2} µs",
        per(started)
    );
    let w = GenericDatumWriter::builder(schema).build().expect("writer");
    let started = Instant::now();
    let mut bodies = Vec::new();
    for e in &events[..n] {
        bodies.push(w.write_ser_to_vec(e).expect("body"));
    }
    println!("breakdown: avro write only {:.2} µs", per(started));
    let fast = meshline::contract::WriterSchema::new(std::sync::Arc::new(schema.clone()));
    let started = Instant::now();
    let mut out = Vec::with_capacity(256);
    for e in &events[..n] {
        out.clear();
        fast.encode(e, &mut out).expect("body");
        std::hint::black_box(&out);
    }
    println!(
        "breakdown: avro write, serde_avro_fast (the SDK's) {:.2} µs",
        per(started)
    );
    let r = GenericDatumReader::builder(schema).build().expect("reader");
    let started = Instant::now();
    let mut values = Vec::new();
    for b in &bodies {
        values.push(r.read_value(&mut b.as_slice()).expect("value"));
    }
    println!("breakdown: avro read back {:.2} µs", per(started));
    let started = Instant::now();
    for v in &values {
        std::hint::black_box(meshline::contract::to_cel(v));
    }
    println!("breakdown: to CEL value {:.2} µs", per(started));
    let started = Instant::now();
    for v in &values {
        std::hint::black_box(contract.check_rules(v)).ok();
    }
    println!(
        "breakdown: 2 CEL rules (with conversion) {:.2} µs",
        per(started)
    );
}

/// Sends at `rate` events/s for `length`, each in its own task, and returns every send→ack
/// time, sorted.
async fn steady_latency(
    sdk: &Producer,
    events: &[PlayEvent],
    rate: usize,
    length: Duration,
) -> Vec<Duration> {
    let tick = Duration::from_millis(1);
    let per_tick = rate / 1000;
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let events = Arc::new(events.to_vec());
    let mut tasks = Vec::new();
    let mut n = 0usize;
    while started.elapsed() < length {
        interval.tick().await;
        for _ in 0..per_tick {
            let sdk = sdk.clone();
            let events = events.clone();
            let i = n % events.len();
            n += 1;
            tasks.push(tokio::spawn(async move {
                let sent = Instant::now();
                sdk.send(&events[i]).await.expect("send");
                sent.elapsed()
            }));
        }
    }
    let mut latencies = Vec::with_capacity(tasks.len());
    for t in tasks {
        latencies.push(t.await.expect("latency task"));
    }
    latencies.sort();
    latencies
}
