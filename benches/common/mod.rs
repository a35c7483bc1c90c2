//! Shared bench fixture: the repository's products on a broker, with their contracts in a
//! registry served on an ephemeral port; the gateway and the raw rdkafka pipe it is measured
//! against. Each bench uses a part of it.
#![allow(dead_code)]

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use meshline::sdk::kafka::RecordExt as _;
use meshline::{
    broker::{
        self,
        embedded::{EmbeddedBroker, Storage},
    },
    demo::events::PlayEvent,
    gateway::{self, Contracts, Metrics, StreamConfig},
    product::Product,
    registry::{client::Client, Registry},
    sdk::Producer,
};
use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{BaseConsumer, CommitMode, Consumer},
    producer::{FutureProducer, FutureRecord, Producer as _},
    Message,
};
use tokio_util::sync::CancellationToken;

/// The ingress topic the gateway benches read.
pub(crate) const INGRESS: &str = "player.play-events.ingress";
/// The raw pipe's output topic.
pub(crate) const RAW_OUT: &str = "bench.raw-out";
/// Records each pipe handles before its clock starts: the first outputs of an idempotent
/// producer wait for its producer id and connections (≈ 0.75 s on the embedded broker, seen as a
/// stall in some runs and not in others), a one-time cost that is not throughput.
pub(crate) const WARM_UP: usize = 10_000;

/// Creates the products' topics on `bootstrap`, registers their contracts in a registry on the
/// same broker, serves it until `stop`, and returns its URL.
pub(crate) async fn serve_registry(bootstrap: &str, stop: CancellationToken) -> String {
    serve_registry_for(bootstrap, stop, &[]).await
}

/// [`serve_registry`], with the contracts of `extra` products registered too (no topics).
pub(crate) async fn serve_registry_for(
    bootstrap: &str,
    stop: CancellationToken,
    extra: &[Product],
) -> String {
    let catalog = meshline::formats::load_catalog(std::path::Path::new("config")).expect("catalog");
    broker::ensure_topics(bootstrap, &catalog)
        .await
        .expect("topics");
    let registry = Registry::start(bootstrap, stop.clone())
        .await
        .expect("registry");
    for product in catalog.iter().chain(extra) {
        registry
            .register_product(product)
            .await
            .expect("registered");
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listener");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    meshline::server::spawn(listener, meshline::registry::http::router(registry), stop);
    url
}

/// The embedded broker on an ephemeral port: in memory, or with `MESHLINE_BENCH_STORAGE=sqlite`
/// on the durable storage `meshline up` uses (its file in `dir`).
pub(crate) async fn start_broker(dir: &Path) -> EmbeddedBroker {
    let durable = std::env::var("MESHLINE_BENCH_STORAGE").as_deref() == Ok("sqlite");
    println!("storage: {}", if durable { "sqlite" } else { "memory" });
    start_broker_on(dir, durable).await
}

/// The embedded broker on an ephemeral port, on the durable storage (`sqlite:`, its file in
/// `dir`) or in memory.
pub(crate) async fn start_broker_on(dir: &Path, durable: bool) -> EmbeddedBroker {
    let storage = if durable {
        Storage::in_dir(dir)
    } else {
        Storage::Memory
    };
    EmbeddedBroker::start("127.0.0.1:0".parse().expect("addr"), &storage)
        .await
        .expect("broker")
}

/// Writes `events` as valid records, as the SDK encodes them, round-robin over the first
/// `partitions` partitions of the ingress.
pub(crate) async fn fill_ingress(
    bootstrap: &str,
    url: &str,
    events: &[PlayEvent],
    partitions: i32,
) {
    fill_topic(bootstrap, url, INGRESS, events, partitions).await;
}

/// [`fill_ingress`] for any topic.
pub(crate) async fn fill_topic(
    bootstrap: &str,
    url: &str,
    topic: &str,
    events: &[PlayEvent],
    partitions: i32,
) {
    let sdk = Producer::builder(bootstrap, url)
        .event::<PlayEvent>()
        .build()
        .await
        .expect("sdk");
    let producer: FutureProducer = broker::producer_config(bootstrap)
        .create()
        .expect("producer");
    let mut deliveries = Vec::with_capacity(events.len());
    for (i, event) in events.iter().enumerate() {
        let record = sdk.record_for(event).await.expect("record");
        let mut future = FutureRecord::<[u8], [u8]>::to(topic)
            .partition(i as i32 % partitions)
            .headers(record.owned_headers());
        if let Some(payload) = &record.payload {
            future = future.payload(payload.as_slice());
        }
        loop {
            match producer.send_result(future) {
                Ok(d) => break deliveries.push(d),
                Err((_, back)) => {
                    future = back;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
    }
    for d in futures::future::join_all(deliveries).await {
        d.expect("delivered").expect("acked");
    }
}

/// Creates the raw pipe's output topic, 4 partitions as the ingress.
pub(crate) async fn create_raw_out(bootstrap: &str) {
    let admin: AdminClient<DefaultClientContext> =
        broker::client_config(bootstrap).create().expect("admin");
    admin
        .create_topics(
            &[NewTopic::new(RAW_OUT, 4, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .expect("raw output topic");
}

/// Reads `expected` records of the ingress in consumer group `group` (from its start) and copies each to
/// [`RAW_OUT`], same partition, acknowledging and committing every 5,000 records; consumer and
/// producer set as the gateway's. Events/s from the [`WARM_UP`]th record's acknowledgement to
/// the last one's.
pub(crate) fn raw_pipe(bootstrap: &str, expected: usize, group: &str) -> Pipe {
    let cpu = ThreadCpu::now();
    let consumer: BaseConsumer = broker::client_config(bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        // the gateway's fetch settings (src/gateway/stream.rs)
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", "50")
        .set("fetch.queue.backoff.ms", broker::FETCH_QUEUE_BACKOFF_MS)
        .create()
        .expect("consumer");
    // the gateway's producer settings
    let producer: FutureProducer = broker::producer_config(bootstrap)
        .set("enable.gapless.guarantee", "true")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    // as the gateway does: learn the output topic's leaders before the first record
    producer
        .client()
        .fetch_metadata(Some(RAW_OUT), Duration::from_secs(10))
        .expect("output metadata");
    consumer.subscribe(&[INGRESS]).expect("subscribe");
    let mut started = None;
    let (mut copied, mut pending) = (0, Vec::new());
    while copied < expected {
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(50)) else {
            continue;
        };
        let mut future = FutureRecord::<[u8], [u8]>::to(RAW_OUT).partition(message.partition());
        if let Some(headers) = message.headers() {
            future = future.headers(headers.detach());
        }
        if let Some(payload) = message.payload() {
            future = future.payload(payload);
        }
        loop {
            match producer.send_result(future) {
                Ok(d) => break pending.push(d),
                Err((_, back)) => {
                    future = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        copied += 1;
        if pending.len() >= 5_000 || copied == expected {
            for d in futures::executor::block_on(futures::future::join_all(pending.drain(..))) {
                d.expect("delivered").expect("acked");
            }
            consumer
                .commit_consumer_state(CommitMode::Async)
                .expect("commit");
            if copied >= WARM_UP {
                started.get_or_insert_with(Instant::now);
            }
        }
    }
    let counted = expected.saturating_sub(WARM_UP);
    Pipe {
        rate: started.map_or(0.0, |s| counted as f64 / s.elapsed().as_secs_f64()),
        cpu: cpu.per_event(expected),
    }
}

/// Runs `instances` gateways in group `bench-gateway` until the output of `expected` events is
/// acknowledged (their end-to-end latency observed); events/s from the [`WARM_UP`]th
/// acknowledgement, or from when every instance holds partitions if that is later (the
/// group's rebalances are start-up, not steady state), to the last.
pub(crate) async fn gateway_pipe(
    bootstrap: &str,
    url: &str,
    instances: usize,
    expected: usize,
) -> Pipe {
    let cpu = ThreadCpu::now();
    // the one product the raw pipe reads: both consume the same topic
    let contracts = Arc::new(
        Contracts::load(Client::new(url), ["player.play-events".to_owned()])
            .await
            .expect("contracts"),
    );
    let stop = CancellationToken::new();
    let mut registries = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..instances {
        let registry = prometheus::Registry::new();
        let metrics = Metrics::new(&registry).expect("metrics");
        let mut config = StreamConfig::new(bootstrap);
        config.group = "bench-gateway".into();
        tasks.push(tokio::spawn(gateway::run_stream(
            config,
            contracts.clone(),
            metrics,
            stop.clone(),
        )));
        registries.push(registry);
    }
    let count = |name: &str| -> u64 {
        registries
            .iter()
            .flat_map(|r| r.gather())
            .filter(|f| f.name() == name)
            .flat_map(|f| {
                f.get_metric()
                    .iter()
                    .map(|m| m.get_histogram().get_sample_count() + m.get_counter().value() as u64)
                    .collect::<Vec<_>>()
            })
            .sum()
    };
    // every instance holds partitions: the group has settled (a rebalance moves partitions,
    // and pauses them, until then)
    let settled = || {
        registries.iter().all(|r| {
            r.gather()
                .iter()
                .filter(|f| f.name() == "meshline_gateway_assigned_partitions")
                .any(|f| f.get_metric().iter().any(|m| m.get_gauge().value() > 0.0))
        })
    };
    let begun = Instant::now();
    // (when, acknowledged by then): timing starts once the group has settled and the first
    // WARM_UP outputs are acknowledged
    let mut started: Option<(Instant, u64)> = None;
    loop {
        let acknowledged = count("meshline_gateway_freshness_seconds");
        if started.is_none() && acknowledged >= WARM_UP as u64 && settled() {
            started = Some((Instant::now(), acknowledged));
            if instances > 1 {
                eprintln!(
                    "{instances} gateways: group settled within {:.2} s, {acknowledged} outputs acknowledged by then",
                    begun.elapsed().as_secs_f64()
                );
            }
        }
        if acknowledged >= expected as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    if started.is_none() {
        eprintln!("{instances} gateways: the group had not settled when the last output was acknowledged; no rate");
    }
    let pipe = Pipe {
        rate: started.map_or(0.0, |(at, by_then)| {
            (expected as u64).saturating_sub(by_then) as f64 / at.elapsed().as_secs_f64()
        }),
        cpu: cpu.per_event(expected),
    };
    stop.cancel();
    for task in tasks {
        task.await.expect("gateway task");
    }
    pipe
}

/// What a pipe measured.
pub(crate) struct Pipe {
    /// Events/s in steady state, to the last output (see [`raw_pipe`], [`gateway_pipe`]).
    pub rate: f64,
    /// CPU per event by thread ([`ThreadCpu::per_event`]), over the whole run.
    pub cpu: String,
}

/// CPU time of this process's threads, by thread name, from `/proc/self/task` (in clock ticks
/// of 10 ms): where a pipeline's time goes. The bench's own thread (`main`), librdkafka's
/// (`rdk:broker…`, and FutureProducer's `producer pollin`), and the runtime's workers, where
/// the embedded broker runs. Threads that ended in between (a client dropped) count as `ended`.
pub(crate) struct ThreadCpu {
    by_name: std::collections::BTreeMap<String, f64>,
    process: f64,
}

/// utime + stime of a `/proc/…/stat` line, in seconds, and the thread's name.
fn stat_cpu(stat: &str) -> Option<(&str, f64)> {
    let (open, close) = (stat.find('(')?, stat.rfind(')')?);
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    // utime and stime, fields 14 and 15 of proc(5)
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some((stat[open + 1..close].trim(), ticks / 100.0))
}

impl ThreadCpu {
    /// The threads' CPU seconds so far.
    pub(crate) fn now() -> Self {
        let mut by_name = std::collections::BTreeMap::new();
        let me = std::process::id().to_string();
        for task in std::fs::read_dir("/proc/self/task").expect("/proc/self/task") {
            let path = task.expect("task").path();
            let Ok(stat) = std::fs::read_to_string(path.join("stat")) else {
                continue; // the thread ended
            };
            let Some((name, seconds)) = stat_cpu(&stat) else {
                continue;
            };
            let name = if path.ends_with(&me) { "main" } else { name };
            *by_name.entry(name.to_owned()).or_insert(0.0) += seconds;
        }
        let process = std::fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| stat_cpu(&s).map(|(_, seconds)| seconds))
            .unwrap_or(0.0);
        Self { by_name, process }
    }

    /// CPU µs per event since `self`, for `events` events: the process's, then each thread's.
    pub(crate) fn per_event(&self, events: usize) -> String {
        let now = Self::now();
        let per = |seconds: f64| seconds * 1e6 / events as f64;
        let mut live = 0.0;
        let mut parts = Vec::new();
        for (name, seconds) in &now.by_name {
            let spent = seconds - self.by_name.get(name).copied().unwrap_or(0.0);
            if spent > 0.0 {
                live += spent;
                parts.push(format!("{name} {:.1}", per(spent)));
            }
        }
        let total = now.process - self.process;
        if total - live > 0.005 {
            parts.push(format!("ended {:.1}", per(total - live)));
        }
        format!("{:.1} µs ({})", per(total), parts.join(", "))
    }
}
