//! Gateway throughput against a raw rdkafka consume → produce pipe on the same embedded broker in
//! one run. Both read the same 100,000 `PlayEvent` records from `player.play-events.ingress`
//! (4 partitions) and write them with an idempotent producer (same batching), partition p to
//! partition p, acknowledging and committing every 5,000 records; the gateway also checks each
//! record's contract and adds its source headers. Each side is timed from its first record to
//! the acknowledgement of its last output (group join and the gateway's resume reads excluded).
//! Run: `cargo bench --bench gateway` (in-memory broker storage), or with
//! `MESHLINE_BENCH_STORAGE=sqlite` on the durable storage `meshline up` uses.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use meshline::{
    broker,
    demo::events::PlayEvent,
    gateway::{self, Contracts, Metrics, StreamConfig},
    registry::client::Client,
    sdk::Producer,
};
use rand::{rngs::StdRng, SeedableRng};
use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{BaseConsumer, CommitMode, Consumer},
    producer::{FutureProducer, FutureRecord, Producer as _},
    Message,
};
use tokio_util::sync::CancellationToken;

mod common;
use common::{serve_registry, start_broker};

const EVENTS: usize = 200_000;
const INGRESS: &str = "player.play-events.ingress";

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let broker = start_broker(dir.path()).await;
    let bootstrap = broker.bootstrap();
    let stop = CancellationToken::new();
    let url = serve_registry(&bootstrap, stop.clone()).await;
    fill_ingress(&bootstrap, &url).await;

    let admin: AdminClient<DefaultClientContext> =
        broker::client_config(&bootstrap).create().expect("admin");
    admin
        .create_topics(
            &[NewTopic::new(
                "bench.raw-out",
                4,
                TopicReplication::Fixed(1),
            )],
            &AdminOptions::new(),
        )
        .await
        .expect("raw output topic");

    let b = bootstrap.clone();
    let raw = tokio::task::spawn_blocking(move || raw_pipe(&b))
        .await
        .expect("raw pipe");
    let raw_rate = EVENTS as f64 / raw.as_secs_f64();
    println!("raw consume→produce pipe: {EVENTS} events in {raw:.2?} = {raw_rate:.0} events/s");

    let through = gateway_pipe(&bootstrap, &url).await;
    let rate = EVENTS as f64 / through.as_secs_f64();
    println!("gateway: {EVENTS} events in {through:.2?} = {rate:.0} events/s");
    println!("gateway / raw = {:.2}×", rate / raw_rate);
    stop.cancel();
}

/// Writes EVENTS valid records, as the SDK encodes them, round-robin over 4 partitions.
async fn fill_ingress(bootstrap: &str, url: &str) {
    let sdk = Producer::builder(bootstrap, url)
        .event::<PlayEvent>()
        .build()
        .await
        .expect("sdk");
    let mut rng = StdRng::seed_from_u64(7);
    let producer: FutureProducer = broker::producer_config(bootstrap)
        .create()
        .expect("producer");
    let mut deliveries = Vec::with_capacity(EVENTS);
    for i in 0..EVENTS {
        let event = PlayEvent::random(&mut rng, chrono::Utc::now());
        let record = sdk.record_for(&event).await.expect("record");
        let mut future = FutureRecord::<[u8], [u8]>::to(INGRESS)
            .partition((i % 4) as i32)
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

/// Reads the ingress in group `bench-raw` and copies each record to `bench.raw-out`, same
/// partition, acknowledging and committing every 5,000 records; consumer and producer set as the
/// gateway's.
fn raw_pipe(bootstrap: &str) -> Duration {
    let consumer: BaseConsumer = broker::client_config(bootstrap)
        .set("group.id", "bench-raw")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        // the gateway's fetch settings (src/gateway/stream.rs)
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", "50")
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
        .fetch_metadata(Some("bench.raw-out"), Duration::from_secs(10))
        .expect("output metadata");
    consumer.subscribe(&[INGRESS]).expect("subscribe");
    let mut started = None;
    let (mut copied, mut pending) = (0, Vec::new());
    while copied < EVENTS {
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(50)) else {
            continue;
        };
        started.get_or_insert_with(Instant::now);
        let mut future =
            FutureRecord::<[u8], [u8]>::to("bench.raw-out").partition(message.partition());
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
        if pending.len() >= 5_000 || copied == EVENTS {
            for d in futures::executor::block_on(futures::future::join_all(pending.drain(..))) {
                d.expect("delivered").expect("acked");
            }
            consumer
                .commit_consumer_state(CommitMode::Async)
                .expect("commit");
        }
    }
    started.map_or(Duration::ZERO, |s| s.elapsed())
}

/// Runs the gateway in group `bench-gateway` until every event's output is acknowledged (its
/// end-to-end latency observed).
async fn gateway_pipe(bootstrap: &str, url: &str) -> Duration {
    // the one product the raw pipe reads: both consume the same topic
    let contracts = Arc::new(
        Contracts::load(Client::new(url), ["player.play-events".to_owned()])
            .await
            .expect("contracts"),
    );
    let registry = prometheus::Registry::new();
    let metrics = Metrics::new(&registry).expect("metrics");
    let mut config = StreamConfig::new(bootstrap);
    config.group = "bench-gateway".into();
    let stop = CancellationToken::new();
    let mut started = None;
    let task = tokio::spawn(gateway::run_stream(
        config,
        contracts,
        metrics,
        stop.clone(),
    ));
    let count = |name: &str| -> u64 {
        registry
            .gather()
            .iter()
            .filter(|f| f.name() == name)
            .flat_map(|f| {
                f.get_metric()
                    .iter()
                    .map(|m| m.get_histogram().get_sample_count() + m.get_counter().value() as u64)
            })
            .sum()
    };
    loop {
        if started.is_none() && count("meshline_gateway_events_total") > 0 {
            started = Some(Instant::now());
        }
        if count("meshline_gateway_freshness_seconds") >= EVENTS as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = started.map_or(Duration::ZERO, |s| s.elapsed());
    stop.cancel();
    task.await.expect("gateway task");
    elapsed
}
