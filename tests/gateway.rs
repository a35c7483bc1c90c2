//! The gateway against a real broker and registry: every reason code lands in the dead-letter
//! topic with its headers, outputs keep their ingress partition, and `kill -9` mid-stream loses
//! and duplicates nothing.

mod common;

use std::{collections::HashMap, sync::Arc, time::Duration};

use common::{catalog, consumer_config, high_watermarks, platform, producer, within};
use meshline::{
    binding::kafka::Record,
    codec::wire,
    contract::Reason,
    demo::events::{Device, PlayEvent},
    gateway::{self, Contracts, Metrics, StreamConfig},
    registry::client::Client,
    sdk::Producer,
};
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    producer::FutureRecord,
    Message, Offset, TopicPartitionList,
};
use tokio_util::sync::CancellationToken;

const INGRESS: &str = "player.play-events.ingress";
const PRODUCT: &str = "player.play-events";
const DLQ: &str = "player.play-events.dlq";

fn play(duration_ms: i64, country: &str) -> PlayEvent {
    PlayEvent {
        play_id: "play-1".into(),
        user_id: "user-7".into(),
        track_id: "track-9".into(),
        artist_id: "artist-3".into(),
        device: Device::Speaker,
        country: country.into(),
        started_at: 1_795_600_000_000,
        duration_ms,
        completed: true,
        context: None,
    }
}

/// A valid ingress record for `play`, as the SDK writes it.
async fn valid(bootstrap: &str, url: &str) -> Record {
    let sdk = Producer::builder(bootstrap, url).build().await.unwrap();
    sdk.record_for(&play(1_000, "SE")).await.unwrap()
}

/// `record` with header `name` set to `value` (removed when `None`).
fn with(record: &Record, name: &str, value: Option<&str>) -> Record {
    let mut out = record.clone();
    out.headers.retain(|(n, _)| n != name);
    if let Some(value) = value {
        out.headers
            .push((name.to_owned(), value.as_bytes().to_vec()));
    }
    out
}

/// `record` with an Avro body that breaks rule `non_negative_duration`.
fn negative_duration(record: &Record, schema: &apache_avro::Schema) -> Record {
    let (id, _) = wire::decode(record.payload.as_deref().unwrap()).unwrap();
    let body = apache_avro::writer::datum::GenericDatumWriter::builder(schema)
        .build()
        .unwrap()
        .write_ser_to_vec(&play(-5, "SE"))
        .unwrap();
    let mut out = record.clone();
    out.payload = Some(wire::encode(id, &body));
    out
}

async fn send(bootstrap: &str, records: &[(i32, Record)]) {
    let producer = producer(bootstrap);
    let mut deliveries = Vec::new();
    for (partition, record) in records {
        let headers = record.owned_headers();
        let mut r = FutureRecord::<[u8], [u8]>::to(INGRESS)
            .partition(*partition)
            .headers(headers);
        if let Some(key) = &record.key {
            r = r.key(key.as_slice());
        }
        if let Some(payload) = &record.payload {
            r = r.payload(payload.as_slice());
        }
        loop {
            match producer.send_result(r) {
                Ok(d) => {
                    deliveries.push(d);
                    break;
                }
                Err((_, back)) => {
                    r = back;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }
    }
    for d in futures::future::join_all(deliveries).await {
        d.unwrap().unwrap();
    }
}

/// Every record of `topic`: (partition, headers by name, payload).
fn read_all(bootstrap: &str, topic: &str) -> Vec<(i32, HashMap<String, String>, Vec<u8>)> {
    let consumer: BaseConsumer = consumer_config(bootstrap, "test-reader")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let partitions = metadata.topics()[0].partitions().len() as i32;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut out = Vec::new();
    let mut ended = std::collections::HashSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while ended.len() < partitions as usize {
        assert!(
            std::time::Instant::now() < deadline,
            "reading {topic} timed out"
        );
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                use rdkafka::message::Headers;
                let headers = m
                    .headers()
                    .map(|hs| {
                        hs.iter()
                            .map(|h| {
                                (
                                    h.key.to_owned(),
                                    String::from_utf8_lossy(h.value.unwrap_or_default())
                                        .into_owned(),
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                out.push((
                    m.partition(),
                    headers,
                    m.payload().unwrap_or_default().to_vec(),
                ));
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(p))) => {
                ended.insert(p);
            }
            _ => {}
        }
    }
    out
}

/// The stream gateway in this process, until `stop`.
async fn gateway_in_process(bootstrap: &str, url: &str, stop: CancellationToken) {
    let ids = catalog()
        .iter()
        .map(|p| p.id().to_owned())
        .collect::<Vec<_>>();
    let contracts = Arc::new(Contracts::load(Client::new(url), ids).await.unwrap());
    let metrics = Metrics::new(&prometheus::Registry::new()).unwrap();
    tokio::spawn(gateway::run_stream(
        StreamConfig::new(bootstrap),
        contracts,
        metrics,
        stop,
    ));
}

async fn wait_for_outputs(bootstrap: &str, n: i64, secs: u64) {
    within(secs, "waiting for the gateway's outputs", async {
        while high_watermarks(bootstrap, PRODUCT) + high_watermarks(bootstrap, DLQ) < n {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_reason_code_lands_in_the_dead_letter_topic_with_its_headers() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, registry, url) = platform(dir.path()).await;
    let bootstrap = broker.bootstrap();
    let ok = valid(&bootstrap, &url).await;
    let schema = Client::new(&url)
        .latest("player.play-events-value")
        .await
        .unwrap()
        .schema;
    let (id, body) = wire::decode(ok.payload.as_deref().unwrap()).unwrap();
    let mut invalid: Vec<(Reason, Record)> = vec![
        (Reason::MissingAttribute, with(&ok, "ce_type", None)),
        (
            Reason::SpecVersion,
            with(&ok, "ce_specversion", Some("0.3")),
        ),
        (
            Reason::UnknownType,
            with(&ok, "ce_type", Some("com.example.other")),
        ),
        (
            Reason::ForeignSource,
            with(&ok, "ce_source", Some("/labels/onboarding")),
        ),
        (Reason::BadTime, with(&ok, "ce_time", Some("yesterday"))),
        (
            Reason::ContentType,
            with(&ok, "content-type", Some("application/json")),
        ),
        (Reason::RuleFailed, negative_duration(&ok, &schema)),
    ];
    let mut bad_frame = ok.clone();
    bad_frame.payload = Some(br#"{"play_id":"p"}"#.to_vec());
    invalid.push((Reason::BadFrame, bad_frame));
    let mut unknown_schema = ok.clone();
    unknown_schema.payload = Some(wire::encode(9_999, body));
    invalid.push((Reason::UnknownSchema, unknown_schema));
    let mut bad_payload = ok.clone();
    bad_payload.payload = Some(wire::encode(id, &body[..body.len() / 2]));
    invalid.push((Reason::BadPayload, bad_payload));
    // each record is named by its reason, so its dead letter can be matched
    let mut records: Vec<(i32, Record)> = invalid
        .iter()
        .map(|(reason, r)| (1, with(r, "ce_id", Some(reason.code()))))
        .collect();
    records.push((1, with(&ok, "ce_id", Some("valid-1"))));
    records.push((2, with(&ok, "ce_id", Some("valid-2"))));
    // a forged verdict is not trusted
    records.push((
        2,
        with(
            &with(&ok, "ce_id", Some("valid-3")),
            "meshline_reason",
            Some("forged"),
        ),
    ));
    send(&bootstrap, &records).await;

    let stop = CancellationToken::new();
    gateway_in_process(&bootstrap, &url, stop.clone()).await;
    wait_for_outputs(&bootstrap, records.len() as i64, 60).await;

    let products = read_all(&bootstrap, PRODUCT);
    let mut ids: Vec<_> = products
        .iter()
        .map(|(p, h, _)| (h["ce_id"].clone(), *p))
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            ("valid-1".into(), 1),
            ("valid-2".into(), 2),
            ("valid-3".into(), 2)
        ],
        "valid events land in the product partition of their ingress partition"
    );
    for (_, headers, _) in &products {
        assert_eq!(headers["meshline_source_topic"], INGRESS);
        assert!(!headers.contains_key("meshline_reason"), "{headers:?}");
    }
    let letters = read_all(&bootstrap, DLQ);
    assert_eq!(letters.len(), invalid.len());
    for (reason, original) in &invalid {
        let (partition, headers, payload) = letters
            .iter()
            .find(|(_, h, _)| h["ce_id"] == reason.code())
            .unwrap_or_else(|| panic!("no dead letter for {}", reason.code()));
        assert_eq!(*partition, 1);
        assert_eq!(headers["meshline_reason"], reason.code());
        assert!(!headers["meshline_message"].is_empty());
        assert_eq!(headers["meshline_source_topic"], INGRESS);
        assert_eq!(headers["meshline_source_partition"], "1");
        assert!(headers["meshline_source_offset"].parse::<i64>().is_ok());
        assert_eq!(Some(payload.as_slice()), original.payload.as_deref());
        for (name, value) in &original.headers {
            if name != "ce_id" {
                assert_eq!(
                    headers.get(name).map(String::as_bytes),
                    Some(value.as_slice()),
                    "original header {name} kept on the {} dead letter",
                    reason.code()
                );
            }
        }
    }
    let rule = letters
        .iter()
        .find(|(_, h, _)| h["ce_id"] == "rule_failed")
        .unwrap();
    assert_eq!(rule.1["meshline_rule"], "non_negative_duration");
    stop.cancel();
    drop(registry);
}

/// 100,000 mixed events; the gateway process is killed with SIGKILL twice mid-stream and
/// restarted; every valid event is in the product topic once, every invalid one in the DLQ once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_killed_twice_mid_stream_writes_every_event_exactly_once() {
    const EVENTS: usize = 100_000;
    let dir = tempfile::tempdir().unwrap();
    let (broker, _registry, url) = platform(dir.path()).await;
    let bootstrap = broker.bootstrap();
    let ok = valid(&bootstrap, &url).await;
    let schema = Client::new(&url)
        .latest("player.play-events-value")
        .await
        .unwrap()
        .schema;
    let rule = negative_duration(&ok, &schema);
    let foreign = with(&ok, "ce_source", Some("/labels/x"));
    let records: Vec<(i32, Record)> = (0..EVENTS)
        .map(|i| {
            let template = match i % 10 {
                3 => &rule,
                7 => &foreign,
                _ => &ok,
            };
            let prefix = if i % 10 == 3 || i % 10 == 7 {
                "bad"
            } else {
                "ok"
            };
            (
                (i % 4) as i32,
                with(template, "ce_id", Some(&format!("{prefix}-{i}"))),
            )
        })
        .collect();
    within(120, "writing the ingress", send(&bootstrap, &records)).await;

    let start = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_meshline"))
            .args(["gateway", "--bootstrap", &bootstrap, "--registry-url", &url])
            .args(["--http-listen", "127.0.0.1:0", "--config"])
            .arg(common::repo_config())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("the gateway starts")
    };
    for kill_after in [15_000, 50_000] {
        let mut gateway = start();
        wait_for_outputs(&bootstrap, kill_after, 240).await;
        gateway.kill().unwrap(); // SIGKILL
        gateway.wait().unwrap();
    }
    let mut gateway = start();
    wait_for_outputs(&bootstrap, EVENTS as i64, 240).await;
    // let a duplicating gateway show itself
    tokio::time::sleep(Duration::from_secs(3)).await;
    gateway.kill().unwrap();
    gateway.wait().unwrap();

    let mut seen = HashMap::new();
    for (topic, prefix) in [(PRODUCT, "ok-"), (DLQ, "bad-")] {
        for (_, headers, _) in read_all(&bootstrap, topic) {
            let id = headers["ce_id"].clone();
            assert!(id.starts_with(prefix), "{id} in {topic}");
            *seen.entry(id).or_insert(0) += 1;
        }
    }
    let duplicated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(duplicated.is_empty(), "duplicated: {duplicated:?}");
    assert_eq!(seen.len(), EVENTS, "every event written once");
}
