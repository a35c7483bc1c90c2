//! `meshline up` on its default durable storage under a burst, as a new user's first load:
//! 100,000 events (one in ten refused by the contract) written by a plain idempotent producer
//! into an ingress topic, the whole `meshline up` process `SIGKILL`ed twice during the burst and
//! restarted on the same data directory. Afterwards every event is in the product topic or the
//! dead-letter topic exactly once, the gateway caught up within 60 s of the last restart, and
//! while `meshline up` ran, a metadata request from an independent client was answered within
//! 1 s every time.

mod common;

use std::{
    collections::HashMap,
    path::Path,
    process::{Child, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use common::*;
use meshline::sdk::kafka::RecordExt as _;
use meshline::{demo::events::PlayEvent, sdk::Producer};
use rand::{rngs::StdRng, SeedableRng};
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    message::{Headers, Message},
    producer::{FutureProducer, FutureRecord},
    Offset, TopicPartitionList,
};

const EVENTS: usize = 100_000;
const PRODUCT: &str = "player.play-events";

/// When a metadata probe started, and how long its answer took (`None`: none within 1 s).
type Probe = (Instant, Option<Duration>);

struct Up {
    child: Child,
    _guard: KillOnDrop,
}

/// Starts `meshline up` on `data` and waits until it serves.
fn up(data: &Path, kafka: &str, registry: &str, http: &str) -> Up {
    let mut child = meshline()
        .args(["up", "--listen", kafka])
        .args(["--registry-listen", registry, "--http-listen", http])
        .arg("--config")
        .arg(repo_config())
        .arg("--data-dir")
        .arg(data)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let guard = KillOnDrop(child.id());
    let lines = stdout_lines(&mut child);
    wait_for(&lines, "Stop with Ctrl-C", 120);
    // keep reading its output so it never blocks on a full pipe
    std::thread::spawn(move || for _ in lines {});
    Up {
        child,
        _guard: guard,
    }
}

fn kill9(up: &mut Up) {
    up.child.kill().unwrap();
    up.child.wait().unwrap();
}

/// The records of the burst: valid plays, and every tenth with a type the product does not
/// declare (dead-lettered as `unknown_type`); each with its own `ce_id`.
async fn records(bootstrap: &str, registry: &str) -> Vec<(meshline::binding::kafka::Record, bool)> {
    let sdk = Producer::builder(bootstrap, registry)
        .source("/player/burst")
        .event::<PlayEvent>()
        .build()
        .await
        .unwrap();
    let mut rng = StdRng::seed_from_u64(22);
    let mut out = Vec::with_capacity(EVENTS);
    for i in 0..EVENTS {
        let event = PlayEvent::random(&mut rng, chrono::Utc::now());
        let mut record = sdk.record_for(&event).await.unwrap();
        let valid = i % 10 != 0;
        if !valid {
            for (name, value) in &mut record.headers {
                if name == "ce_type" {
                    *value = b"com.example.player.track.skipped".to_vec();
                }
            }
        }
        out.push((record, valid));
    }
    out
}

/// Every record of `topic`'s partitions, as `ce_id` → times seen.
fn read_all(bootstrap: &str, topic: &str, partitions: i32) -> HashMap<String, usize> {
    let consumer: BaseConsumer = meshline::broker::client_config(bootstrap)
        .set("group.id", format!("durable-check-{topic}"))
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    let mut ends = Vec::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
        let (_, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .unwrap();
        ends.push(high);
    }
    consumer.assign(&tpl).unwrap();
    let mut seen = HashMap::new();
    let mut done = vec![false; partitions as usize];
    let deadline = Instant::now() + Duration::from_secs(120);
    while done.iter().any(|d| !d) {
        assert!(Instant::now() < deadline, "reading {topic} took over 120 s");
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let id = m
                    .headers()
                    .and_then(|h| h.iter().find(|h| h.key == "ce_id"))
                    .and_then(|h| h.value)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default();
                *seen.entry(id).or_insert(0) += 1;
                if m.offset() + 1 >= ends[m.partition() as usize] {
                    done[m.partition() as usize] = true;
                }
            }
            // nothing is written any more: the end is the end
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => done[p as usize] = true,
            Some(Err(e)) => panic!("reading {topic}: {e}"),
            None => {}
        }
    }
    seen
}

/// Per partition of the ingress: its high watermark, the product's, the DLQ's, and the
/// gateway's committed offset (for a failure's message).
fn partitions(bootstrap: &str) -> String {
    let consumer: BaseConsumer = meshline::broker::client_config(bootstrap)
        .set("group.id", "meshline-gateway")
        .create()
        .unwrap();
    let high = |topic: &str, p| {
        consumer
            .fetch_watermarks(topic, p, Duration::from_secs(5))
            .map_or(-1, |(_, h)| h)
    };
    let mut tpl = TopicPartitionList::new();
    for p in 0..4 {
        tpl.add_partition(&format!("{PRODUCT}.ingress"), p);
    }
    let committed = consumer.committed_offsets(tpl, Duration::from_secs(5));
    (0..4)
        .map(|p| {
            format!(
                "partition {p}: ingress {}, product {}, dlq {}, committed {:?}",
                high(&format!("{PRODUCT}.ingress"), p),
                high(PRODUCT, p),
                high(&format!("{PRODUCT}.dlq"), p),
                committed
                    .as_ref()
                    .ok()
                    .and_then(|c| c.elements().get(p as usize).map(|e| e.offset()))
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn outputs(bootstrap: &str) -> i64 {
    let consumer: BaseConsumer = meshline::broker::client_config(bootstrap).create().unwrap();
    let mut total = 0;
    for topic in [PRODUCT.to_owned(), format!("{PRODUCT}.dlq")] {
        for p in 0..4 {
            if let Ok((_, high)) = consumer.fetch_watermarks(&topic, p, Duration::from_secs(5)) {
                total += high;
            }
        }
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_into_meshline_up_survives_two_sigkills_exactly_once() {
    meshline::registry::client::install_crypto_provider();
    let data = tempfile::tempdir().unwrap();
    let (kafka, registry, http) = (free_port(), free_port(), free_port());
    let mut process = up(data.path(), &kafka, &registry, &http);
    let registry_url = format!("http://{registry}");
    let burst = records(&kafka, &registry_url).await;
    let valid: HashMap<String, bool> = burst
        .iter()
        .map(|(r, valid)| {
            let id = r
                .headers
                .iter()
                .find(|(k, _)| k == "ce_id")
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                .unwrap();
            (id, *valid)
        })
        .collect();
    assert_eq!(valid.len(), EVENTS, "ids are unique");

    // an independent client asks for metadata four times a second, each time on a connection of
    // its own (a client's reconnect backoff after a kill is not the broker's answer time)
    let running = Arc::new(AtomicBool::new(true));
    let probes: Arc<Mutex<Vec<Probe>>> = Arc::default();
    let prober = {
        let (running, probes, kafka) = (running.clone(), probes.clone(), kafka.clone());
        std::thread::spawn(move || {
            while running.load(Ordering::Relaxed) {
                let at = Instant::now();
                let client: BaseConsumer = meshline::broker::client_config(&kafka)
                    .set("socket.connection.setup.timeout.ms", "1000")
                    .create()
                    .unwrap();
                let answered = client
                    .fetch_metadata(Some(PRODUCT), Duration::from_secs(1))
                    .is_ok()
                    .then(|| at.elapsed());
                probes.lock().unwrap().push((at, answered));
                std::thread::sleep(Duration::from_millis(250));
            }
        })
    };

    // the burst, from a producer outside the process that is killed: it waits for the broker
    // to come back and resends what was not acknowledged
    let producer: FutureProducer = meshline::broker::producer_config(&kafka)
        .set("message.timeout.ms", "600000")
        .create()
        .unwrap();
    let acked = Arc::new(AtomicUsize::new(0));
    let sender = {
        let (producer, acked) = (producer.clone(), acked.clone());
        tokio::spawn(async move {
            let mut deliveries = futures::stream::FuturesUnordered::new();
            let ingress = format!("{PRODUCT}.ingress");
            for (record, _) in &burst {
                let mut future =
                    FutureRecord::<[u8], [u8]>::to(&ingress).headers(record.owned_headers());
                if let Some(key) = &record.key {
                    future = future.key(key.as_slice());
                }
                if let Some(payload) = &record.payload {
                    future = future.payload(payload.as_slice());
                }
                loop {
                    match producer.send_result(future) {
                        Ok(d) => break deliveries.push(d),
                        Err((_, back)) => {
                            future = back;
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                }
            }
            use futures::StreamExt as _;
            while let Some(d) = deliveries.next().await {
                d.expect("delivered").expect("acknowledged");
                acked.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    // two kills mid-burst, each after a share of the events is acknowledged; down meanwhile
    let mut down: Vec<(Instant, Instant)> = Vec::new();
    for share in [EVENTS / 5, EVENTS / 2] {
        let deadline = Instant::now() + Duration::from_secs(300);
        while acked.load(Ordering::Relaxed) < share {
            assert!(
                Instant::now() < deadline,
                "the burst stalled before {share} acknowledgements"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let killed = Instant::now();
        kill9(&mut process);
        process = up(data.path(), &kafka, &registry, &http);
        down.push((killed, Instant::now()));
    }
    let restarted = down.last().unwrap().1;
    tokio::time::timeout(Duration::from_secs(300), sender)
        .await
        .expect("every event acknowledged within 300 s")
        .unwrap();

    // caught up: every event forwarded or dead-lettered, within 60 s of the last restart
    let expected = i64::try_from(EVENTS).unwrap();
    loop {
        let k = kafka.clone();
        let n = tokio::task::spawn_blocking(move || outputs(&k))
            .await
            .unwrap();
        if n >= expected {
            break;
        }
        if restarted.elapsed() > Duration::from_secs(60) {
            let kafka = kafka.clone();
            let state = tokio::task::spawn_blocking(move || partitions(&kafka))
                .await
                .unwrap();
            panic!("the gateway had written {n} of {EVENTS} outputs 60 s after the last restart: {state}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let caught_up = restarted.elapsed();

    running.store(false, Ordering::Relaxed);
    prober.join().unwrap();
    let slow: Vec<String> = probes
        .lock()
        .unwrap()
        .iter()
        // a probe that overlaps a kill or a restart says nothing about the broker's answers
        .filter(|(at, _)| {
            !down
                .iter()
                .any(|(k, r)| *at + Duration::from_secs(2) > *k && *at < *r)
        })
        .filter(|(_, answered)| answered.is_none_or(|d| d > Duration::from_secs(1)))
        .map(|(at, answered)| format!("{:?} after start: {answered:?}", at.elapsed()))
        .collect();
    let total = probes.lock().unwrap().len();
    assert!(
        slow.is_empty(),
        "metadata not answered within 1 s ({} of {total} probes): {slow:?}",
        slow.len()
    );

    let k = kafka.clone();
    let product = tokio::task::spawn_blocking(move || read_all(&k, PRODUCT, 4))
        .await
        .unwrap();
    let k = kafka.clone();
    let dlq = tokio::task::spawn_blocking(move || read_all(&k, &format!("{PRODUCT}.dlq"), 4))
        .await
        .unwrap();
    for (id, valid) in &valid {
        let (here, there) = if *valid {
            (&product, &dlq)
        } else {
            (&dlq, &product)
        };
        assert_eq!(
            here.get(id),
            Some(&1),
            "event {id} (valid: {valid}) once where it belongs"
        );
        assert_eq!(
            there.get(id),
            None,
            "event {id} (valid: {valid}) not in the other topic"
        );
    }
    assert_eq!(
        product.values().sum::<usize>() + dlq.values().sum::<usize>(),
        EVENTS,
        "nothing else, and nothing twice"
    );
    println!(
        "{EVENTS} events, 2 kills: caught up {caught_up:?} after the last restart; {total} metadata probes"
    );

    interrupt(&process.child);
    assert!(wait_exit(&mut process.child, 60).success());
}
