//! Gateway throughput against a raw rdkafka consume → produce pipe on the same embedded broker in
//! one run. Both read the same 100,000 `PlayEvent` records from `player.play-events.ingress`
//! (4 partitions) and write them with an idempotent producer (same batching), partition p to
//! partition p, acknowledging and committing every 5,000 records; the gateway also checks each
//! record's contract and adds its source headers. Each side is timed from the acknowledgement of
//! its 10,000th output to that of its last (group join, resume reads and the idempotent
//! producer's start excluded). The raw pipe runs before and after the gateway (in two consumer
//! groups), and the gateway is compared with the mean of the two: this machine's speed drifts
//! by up to 1.5× within a minute, and a single raw run moved the ratio with it.
//! Run: `cargo bench --bench gateway` (in-memory broker storage), or with
//! `MESHLINE_BENCH_STORAGE=sqlite` on the durable storage `meshline up` uses.

use meshline::demo::events::PlayEvent;
use rand::{rngs::StdRng, SeedableRng};
use tokio_util::sync::CancellationToken;

mod common;
use common::{
    create_raw_out, fill_ingress, gateway_pipe, raw_pipe, serve_registry, start_broker, WARM_UP,
};

const EVENTS: usize = 200_000;

/// The raw pipe over the ingress in consumer group `group`, on a thread of its own; events/s.
fn raw(bootstrap: &str, group: &'static str) -> f64 {
    let b = bootstrap.to_owned();
    let raw = std::thread::Builder::new()
        .name("raw-pipe".into())
        .spawn(move || raw_pipe(&b, EVENTS, group))
        .expect("raw pipe thread")
        .join()
        .expect("raw pipe");
    println!(
        "raw consume→produce pipe ({group}): {:.0} events/s (after the first {WARM_UP})",
        raw.rate
    );
    println!("  CPU per event: {}", raw.cpu);
    raw.rate
}

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
    let mut rng = StdRng::seed_from_u64(7);
    let events: Vec<PlayEvent> = (0..EVENTS)
        .map(|_| PlayEvent::random(&mut rng, chrono::Utc::now()))
        .collect();
    fill_ingress(&bootstrap, &url, &events, 4).await;
    create_raw_out(&bootstrap).await;

    // the raw pipe before and after the gateway: the machine's speed drifts over a minute, and
    // the mean of the two brackets it
    let raw_before = raw(&bootstrap, "bench-raw-before");
    let gateway = gateway_pipe(&bootstrap, &url, 1, EVENTS).await;
    let rate = gateway.rate;
    println!("gateway: {rate:.0} events/s (after the first {WARM_UP})");
    println!("  CPU per event: {}", gateway.cpu);
    let raw_after = raw(&bootstrap, "bench-raw-after");
    let raw_rate = (raw_before + raw_after) / 2.0;
    println!(
        "gateway / raw = {:.2}× (raw before {:.2}×, after {:.2}×)",
        rate / raw_rate,
        rate / raw_before,
        rate / raw_after
    );
    stop.cancel();
}
