//! Gateway throughput against a raw rdkafka consume → produce pipe on the same embedded broker in
//! one run. Both read the same 100,000 `PlayEvent` records from `player.play-events.ingress`
//! (4 partitions) and write them with an idempotent producer (same batching), partition p to
//! partition p, acknowledging and committing every 5,000 records; the gateway also checks each
//! record's contract and adds its source headers. Each side is timed from the acknowledgement of
//! its 10,000th output to that of its last (group join, resume reads and the idempotent
//! producer's start excluded).
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

    let b = bootstrap.clone();
    let raw = std::thread::Builder::new()
        .name("raw-pipe".into())
        .spawn(move || raw_pipe(&b, EVENTS))
        .expect("raw pipe thread")
        .join()
        .expect("raw pipe");
    let raw_rate = raw.rate;
    println!("raw consume→produce pipe: {raw_rate:.0} events/s (after the first {WARM_UP})");
    println!("  CPU per event: {}", raw.cpu);
    let gateway = gateway_pipe(&bootstrap, &url, 1, EVENTS).await;
    let rate = gateway.rate;
    println!("gateway: {rate:.0} events/s (after the first {WARM_UP})");
    println!("  CPU per event: {}", gateway.cpu);
    println!("gateway / raw = {:.2}×", rate / raw_rate);
    stop.cancel();
}
