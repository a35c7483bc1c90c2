//! meshline against a real Apache Kafka cluster: three combined broker+controller KRaft nodes
//! on loopback (`scripts/kafka.sh`, Kafka's jars through Maven), replication factor 3,
//! `min.insync.replicas` 2, started by the tests (`scripts/kafka.sh start 3` starts only the nodes
//! not running) and stopped by `scripts/test.sh` at the end.

mod common;

use std::{
    collections::HashMap,
    path::Path,
    time::{Duration, Instant},
};

use common::*;
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    Message,
};

/// Starts the nodes of the 3-node cluster that are not running; its bootstrap servers.
fn cluster() -> String {
    meshline::registry::client::install_crypto_provider();
    // Java 17 and Maven are needed for the tests (scripts/test.sh installs them)
    let bootstrap = script("kafka.sh", &["start", "3"]);
    // the controller quorum has formed and every broker is in the metadata
    let consumer: BaseConsumer = meshline::broker::client_config(&bootstrap)
        .create()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match consumer.fetch_metadata(None, Duration::from_secs(5)) {
            Ok(metadata) if metadata.brokers().len() == 3 => break,
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(500)),
            other => panic!(
                "the cluster did not form: {:?}",
                other.map(|m| m.brokers().len())
            ),
        }
    }
    bootstrap
}

/// The cluster's metadata of every topic.
fn metadata(bootstrap: &str) -> rdkafka::metadata::Metadata {
    let consumer: BaseConsumer = meshline::broker::client_config(bootstrap).create().unwrap();
    consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap()
}

/// `meshline up` against `bootstrap`, its data in `data`; its banner, its HTTP ingress URL and
/// the `player` domain's token.
fn up(
    bootstrap: &str,
    data: &Path,
    group: &str,
) -> (std::process::Child, Vec<String>, String, String) {
    let (registry, http) = (free_port(), free_port());
    let mut child = meshline()
        .args(["up", "--bootstrap", bootstrap])
        .args(["--registry-listen", &registry, "--http-listen", &http])
        .args(["--gateway-group", group, "--no-snapshots"])
        // an HTTP retry of a batch the broker took in part writes nothing twice
        .args(["--dedupe-window", "10m"])
        .arg("--config")
        .arg(repo_config())
        .arg("--data-dir")
        .arg(data)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = stdout_lines(&mut child);
    let banner = wait_for(&lines, "Stop with Ctrl-C", 180);
    let tokens = tokens_of(&banner);
    let player = tokens["player"].as_str().unwrap().to_owned();
    (child, banner, format!("http://{http}"), player)
}

/// Every record of `topic` read with `read_committed`, by CloudEvents id: how often each is
/// there. Reads until `enough` holds (or 120 s), then 3 s more, for repeats.
fn committed_ids(
    bootstrap: &str,
    topic: &str,
    enough: impl Fn(&HashMap<String, usize>) -> bool,
) -> HashMap<String, usize> {
    let consumer: BaseConsumer = consumer_config(bootstrap, &format!("check-{}", unique()))
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut quiet_until = None;
    loop {
        let now = Instant::now();
        if now > deadline || quiet_until.is_some_and(|q| now > q) {
            return seen;
        }
        if quiet_until.is_none() && enough(&seen) {
            quiet_until = Some(now + Duration::from_secs(3));
        }
        let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        use rdkafka::message::Headers as _;
        let id = message.headers().and_then(|headers| {
            headers
                .iter()
                .find(|h| h.key == "ce_id")
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
        });
        if let Some(id) = id {
            *seen.entry(id).or_default() += 1;
        }
    }
}

/// Every one of `ids` is among what was read.
fn all_of(ids: &[String]) -> impl Fn(&HashMap<String, usize>) -> bool + '_ {
    move |seen| ids.iter().all(|id| seen.contains_key(id))
}

/// A name no earlier run used.
fn unique() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{nanos:x}")
}

fn play(id: &str) -> serde_json::Value {
    serde_json::json!({
        "specversion": "1.0", "id": id, "source": "/player/kafka",
        "type": "com.example.player.track.played", "datacontenttype": "application/json",
        "data": {
            "play_id": id, "user_id": "user-7", "track_id": "track-9", "artist_id": "artist-3",
            "device": "SPEAKER", "country": "SE", "started_at": 1_795_600_000_000_i64,
            "duration_ms": 1000, "completed": true, "context": null
        }
    })
}

/// Sends `ids` over HTTP in batches of 50, retrying a batch until it is answered 202 (a retry
/// of a written event is dropped by the ingress's dedupe window).
async fn send(ingress: &str, token: &str, ids: &[String]) {
    let client = reqwest::Client::new();
    for batch in ids.chunks(50) {
        let body = serde_json::Value::Array(batch.iter().map(|id| play(id)).collect());
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let answer = client
                .post(format!("{ingress}/v1/products/player.play-events/events"))
                .bearer_auth(token)
                .header("content-type", "application/cloudevents-batch+json")
                .body(body.to_string())
                .timeout(Duration::from_secs(30))
                .send()
                .await;
            match answer {
                Ok(response) if response.status() == 202 => break,
                other if Instant::now() < deadline => {
                    let _ = other.map(|r| r.status());
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                other => panic!("a batch was never accepted: {other:?}"),
            }
        }
    }
}

/// `meshline up --bootstrap` on Apache Kafka creates every product's topics as its descriptor
/// declares them (partitions, replication factor 3), and events sent over HTTP reach the product
/// topic once each.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn up_on_apache_kafka_creates_the_declared_topics_and_forwards_each_event_once() {
    let bootstrap = cluster();
    let data = tempfile::tempdir().unwrap();
    let (mut child, _, ingress, token) = up(&bootstrap, data.path(), "kafka-up");
    let _guard = KillOnDrop(child.id());

    let metadata = metadata(&bootstrap);
    for product in catalog().iter() {
        let topics = meshline::product::Topics::of(product.id());
        for name in [&topics.product, &topics.ingress, &topics.dlq] {
            let topic = metadata
                .topics()
                .iter()
                .find(|t| t.name() == name)
                .unwrap_or_else(|| panic!("{name} was not created"));
            assert_eq!(
                topic.partitions().len(),
                usize::try_from(product.descriptor.partitions).unwrap(),
                "{name}"
            );
            assert_eq!(topic.partitions()[0].replicas().len(), 3, "{name}");
        }
    }

    let run = unique();
    let ids: Vec<String> = (0..300).map(|i| format!("once-{run}-{i}")).collect();
    send(&ingress, &token, &ids).await;
    let seen = committed_ids(&bootstrap, "player.play-events", all_of(&ids));
    for id in &ids {
        assert_eq!(seen.get(id), Some(&1), "{id}");
    }
    interrupt(&child);
    wait_exit(&mut child, 60);
}
