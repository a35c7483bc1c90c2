//! The gateway against a real broker and registry: every reason code lands in the dead-letter
//! topic with its headers, outputs keep their ingress partition, `kill -9` mid-stream loses and
//! duplicates nothing, and the HTTP ingress answers each mode and status.

mod common;

use std::{collections::HashMap, sync::Arc, time::Duration};

use common::{
    catalog, consumer_config, edit_rules, high_watermarks, platform, play, producer, within,
};
use meshline::sdk::kafka::RecordExt as _;
use meshline::{
    auth::Tokens,
    binding::kafka::Record,
    codec::wire,
    contract::Reason,
    gateway::{
        self,
        http::{Ingress, IngressConfig},
        Contracts, Metrics, StreamConfig,
    },
    registry::client::Client,
    sdk::Producer,
};
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    producer::{FutureProducer, FutureRecord},
    Message, Offset, TopicPartitionList,
};
use tokio_util::sync::CancellationToken;

const INGRESS: &str = "player.play-events.ingress";
const PRODUCT: &str = "player.play-events";
const DLQ: &str = "player.play-events.dlq";
const TRACE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// A valid ingress record for `play`, as the SDK writes it.
async fn valid(bootstrap: &str, url: &str) -> Record {
    let sdk = Producer::builder(bootstrap, url).build().await.unwrap();
    sdk.record_for(&play(1_000)).await.unwrap()
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

/// `record` with an Avro body (the product's latest schema) that breaks rule
/// `non_negative_duration`.
async fn negative_duration(record: &Record, url: &str) -> Record {
    with_event(record, url, &play(-5)).await
}

/// `record` with `event` for its Avro body, written with the product's latest schema.
async fn with_event(
    record: &Record,
    url: &str,
    event: &meshline::demo::events::PlayEvent,
) -> Record {
    let schema = Client::new(url)
        .latest("player.play-events-value")
        .await
        .unwrap()
        .schema;
    let (id, _) = wire::decode(record.payload.as_deref().unwrap()).unwrap();
    let body = apache_avro::writer::datum::GenericDatumWriter::builder(&schema)
        .build()
        .unwrap()
        .write_ser_to_vec(event)
        .unwrap();
    let mut out = record.clone();
    out.payload = Some(wire::encode(id, &body));
    out
}

/// `record` without a `context` (a nullable field), after a new version of the contract added
/// rule `has_context` (`size(message.context) > 0`): the rule cannot be evaluated on it.
async fn without_context(record: &Record, url: &str) -> Record {
    edit_rules(url, |rules| {
        rules.push(
            serde_json::json!({"name": "has_context", "kind": "CONDITION", "type": "CEL",
            "mode": "WRITE", "expr": "size(message.context) > 0", "onFailure": "DLQ"}),
        );
    })
    .await;
    let mut event = play(1_000);
    event.context = None;
    with_event(record, url, &event).await
}

/// Registers a new version of the play events' contract in which rule `name` only warns.
async fn relax(url: &str, name: &str) {
    edit_rules(url, |rules| {
        for rule in rules.iter_mut().filter(|r| r["name"] == name) {
            rule["onFailure"] = "NONE".into();
        }
    })
    .await;
}

async fn send(bootstrap: &str, records: &[(i32, Record)]) {
    send_to(bootstrap, INGRESS, records).await;
}

async fn send_to(bootstrap: &str, topic: &str, records: &[(i32, Record)]) {
    let producer = producer(bootstrap);
    let mut deliveries = Vec::new();
    for (partition, record) in records {
        let headers = record.owned_headers();
        let mut r = FutureRecord::<[u8], [u8]>::to(topic)
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

/// The registered contracts of the repository's products.
async fn contracts(url: &str) -> Arc<Contracts> {
    let ids = catalog()
        .iter()
        .map(|p| p.id().to_owned())
        .collect::<Vec<_>>();
    Arc::new(Contracts::load(Client::new(url), ids).await.unwrap())
}

/// Runs the stream gateway in this process until `stop` is cancelled or the returned guard is
/// dropped (also when the test fails, so a failing test ends instead of hanging); returns the
/// guard and the gateway's metrics.
async fn gateway_in_process(
    bootstrap: &str,
    url: &str,
    stop: CancellationToken,
) -> (tokio_util::sync::DropGuard, prometheus::Registry) {
    let contracts = contracts(url).await;
    let registry = prometheus::Registry::new();
    let metrics = Metrics::new(&registry).unwrap();
    tokio::spawn(gateway::run_stream(
        StreamConfig::new(bootstrap),
        contracts,
        metrics,
        stop.clone(),
    ));
    (stop.drop_guard(), registry)
}

/// The sum of a metric's series (gauge or counter).
fn metric(registry: &prometheus::Registry, name: &str) -> f64 {
    registry
        .gather()
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.get_metric().iter())
        .map(|m| m.get_gauge().value() + m.get_counter().value())
        .sum()
}

async fn wait_for_outputs(bootstrap: &str, n: i64, secs: u64) {
    let bootstrap = bootstrap.to_owned();
    let waited = tokio::task::spawn_blocking(move || {
        let client: BaseConsumer = meshline::broker::client_config(&bootstrap)
            .create()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        let mut written = 0;
        while std::time::Instant::now() < deadline {
            // a busy broker may answer late: count what it answers, retry the rest
            let count = |topic: &str| -> Option<i64> {
                (0..4)
                    .map(|p| {
                        client
                            .fetch_watermarks(topic, p, Duration::from_secs(5))
                            .ok()
                            .map(|(_, high)| high)
                    })
                    .sum()
            };
            if let (Some(a), Some(b)) = (count(PRODUCT), count(DLQ)) {
                written = a + b;
                if written >= n {
                    return Ok(written);
                }
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(written)
    })
    .await
    .unwrap();
    if let Err(written) = waited {
        panic!("waiting for {n} gateway outputs: {written} after {secs}s");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_reason_code_lands_in_the_dead_letter_topic_with_its_headers() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, registry, url) = platform(dir.path()).await;
    let bootstrap = broker.bootstrap();
    let ok = valid(&bootstrap, &url).await;
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
        (Reason::RuleFailed, negative_duration(&ok, &url).await),
        (Reason::RuleError, without_context(&ok, &url).await),
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
    let (_running, _) = gateway_in_process(&bootstrap, &url, stop.clone()).await;
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
    // the SDK starts a W3C trace per event (CloudEvents distributed-tracing extension); the
    // gateway carries it to the product and dead-letter topics
    let traceparent = std::str::from_utf8(ok.header("ce_traceparent").expect("a trace")).unwrap();
    assert_eq!(traceparent.len(), 55, "{traceparent}");
    for (_, headers, _) in &products {
        assert_eq!(headers["meshline_source_topic"], INGRESS);
        assert!(!headers.contains_key("meshline_reason"), "{headers:?}");
        assert_eq!(headers["ce_traceparent"], traceparent);
    }
    let letters = read_all(&bootstrap, DLQ);
    assert_eq!(letters.len(), invalid.len());
    assert!(letters
        .iter()
        .all(|(_, h, _)| h["ce_traceparent"] == traceparent));
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
    let error = letters
        .iter()
        .find(|(_, h, _)| h["ce_id"] == "rule_error")
        .unwrap();
    assert_eq!(error.1["meshline_rule"], "has_context");

    // replay: the rule still fails, so the letter comes back marked, and is not replayed again
    let replay = |bootstrap: &str, filter: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_meshline"))
            .args(["dlq", "replay", PRODUCT, "--bootstrap", bootstrap])
            .args(filter)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let first = replay(&bootstrap, &["--reason", "rule_failed"]);
    assert!(
        first.contains("11 dead letter(s) read, 1 replayed"),
        "{first}"
    );
    wait_for_outputs(&bootstrap, records.len() as i64 + 1, 60).await;
    let letters = read_all(&bootstrap, DLQ);
    let again: Vec<_> = letters
        .iter()
        .filter(|(_, h, _)| h.contains_key("meshline_replay_of"))
        .collect();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].1["meshline_reason"], "rule_failed");
    let replay_of = &again[0].1["meshline_replay_of"];
    assert!(
        replay_of.starts_with("1/") && replay_of[2..].parse::<i64>().is_ok(),
        "names the dead letter it replays (DLQ partition/offset): {replay_of}"
    );
    let second = replay(&bootstrap, &["--reason", "rule_failed"]);
    assert!(
        second.contains(
            "12 dead letter(s) read, 0 replayed, 1 replayed before, 1 skipped as replays already, 10 filtered out"
        ),
        "a second replay re-submits nothing: {second}"
    );
    // the letters of other reasons were left replayable
    let dry = replay(&bootstrap, &["--reason", "bad_frame", "--dry-run"]);
    assert!(dry.contains("\tbad_frame\tbad_frame\n"), "{dry}");
    assert!(dry.contains(", 1 would be replayed,"), "{dry}");

    // the fix: `has_context` only warns from a new contract version on; a gateway that
    // loaded it replays the letter into the product topic, once however often replay runs
    stop.cancel();
    drop(_running);
    relax(&url, "has_context").await;
    let stop = CancellationToken::new();
    let (_running, _) = gateway_in_process(&bootstrap, &url, stop.clone()).await;
    for _ in 0..2 {
        replay(&bootstrap, &["--reason", "rule_error"]);
    }
    wait_for_outputs(&bootstrap, records.len() as i64 + 2, 60).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let fixed: Vec<_> = read_all(&bootstrap, PRODUCT)
        .into_iter()
        .filter(|(_, h, _)| h["ce_id"] == "rule_error")
        .collect();
    assert_eq!(fixed.len(), 1, "replayed once");
    assert_eq!(fixed[0].1["meshline_warned"], "has_context");
    assert!(fixed[0].1["meshline_replay_of"].starts_with("1/"));
    stop.cancel();
    drop(registry);
}

/// A rule marked `on_failure: none` is evaluated: an event that fails it goes to the product
/// topic with a header naming the rule and is counted as `warned`; a rule that blocks still
/// dead-letters.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_rule_marked_none_warns_and_the_event_is_forwarded() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, registry, url) = platform(dir.path()).await;
    let bootstrap = broker.bootstrap();
    let ok = valid(&bootstrap, &url).await;
    relax(&url, "known_country").await;

    let mut abroad = play(1_000);
    abroad.country = "SWE".into();
    let records = vec![
        (
            0,
            with(
                &with_event(&ok, &url, &abroad).await,
                "ce_id",
                Some("warned"),
            ),
        ),
        (
            0,
            with(
                &negative_duration(&ok, &url).await,
                "ce_id",
                Some("blocked"),
            ),
        ),
        (0, with(&ok, "ce_id", Some("valid"))),
    ];
    send(&bootstrap, &records).await;
    let stop = CancellationToken::new();
    let (_running, metrics) = gateway_in_process(&bootstrap, &url, stop.clone()).await;
    wait_for_outputs(&bootstrap, 3, 60).await;

    let products = read_all(&bootstrap, PRODUCT);
    let warned: Vec<_> = products
        .iter()
        .map(|(_, h, _)| (h["ce_id"].as_str(), h.get("meshline_warned").cloned()))
        .collect();
    assert_eq!(
        warned,
        [
            ("warned", Some("known_country".to_owned())),
            ("valid", None)
        ],
        "the warned event is forwarded, naming the rule; the valid one carries no warning"
    );
    let letters = read_all(&bootstrap, DLQ);
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].1["meshline_rule"], "non_negative_duration");
    let outcome = |name: &str| {
        metrics
            .gather()
            .iter()
            .filter(|f| f.name() == "meshline_gateway_events_total")
            .flat_map(|f| f.get_metric().iter())
            .filter(|m| {
                m.get_label()
                    .iter()
                    .any(|l| l.name() == "outcome" && l.value() == name)
            })
            .map(|m| m.get_counter().value())
            .sum::<f64>()
    };
    assert_eq!(
        (
            outcome("warned"),
            outcome("accepted"),
            outcome("dead_lettered")
        ),
        (1.0, 1.0, 1.0)
    );
    stop.cancel();
    drop(registry);
}

/// A contract changes while the gateway runs: a tightened rule takes effect without a restart
/// (dead letters name the new contract version, and so does the metric), and a product whose new
/// contract cannot be loaded dead-letters its events as `contract_unavailable` while the other
/// products go on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contract_changes_take_effect_while_the_gateway_runs_and_a_broken_one_stops_only_its_product(
) {
    let dir = tempfile::tempdir().unwrap();
    let (broker, registry, url) = platform(dir.path()).await;
    let bootstrap = broker.bootstrap();
    let ok = valid(&bootstrap, &url).await;
    let stop = CancellationToken::new();
    let (_running, metrics) = gateway_in_process(&bootstrap, &url, stop.clone()).await;
    let version = |name: &str| {
        metrics
            .gather()
            .iter()
            .filter(|f| f.name() == "meshline_gateway_contract_version")
            .flat_map(|f| f.get_metric().iter())
            .filter(|m| m.get_label().iter().any(|l| l.value() == name))
            .map(|m| m.get_gauge().value())
            .sum::<f64>()
    };
    for _ in 0..100 {
        if version(PRODUCT) > 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(version(PRODUCT), 1.0);
    let batch = |prefix: &str| -> Vec<(i32, Record)> {
        (0..5)
            .map(|i| (i % 4, with(&ok, "ce_id", Some(&format!("{prefix}-{i}")))))
            .collect()
    };
    send(&bootstrap, &batch("before")).await;
    wait_for_outputs(&bootstrap, 5, 60).await;

    // tightened: plays of a second or more are refused from version 2 on
    edit_rules(&url, |rules| {
        rules.push(
            serde_json::json!({"name": "short_plays", "kind": "CONDITION", "type": "CEL",
            "mode": "WRITE", "expr": "message.duration_ms < 1000", "onFailure": "DLQ"}),
        );
    })
    .await;
    // and the labels' new contract lacks the CloudEvents attributes it must name
    let client = Client::new(&url);
    let labels = client
        .version(
            "labels.onboarded-value",
            meshline::registry::api::VersionId::Latest,
        )
        .await
        .unwrap();
    client
        .register(
            "labels.onboarded-value",
            &meshline::registry::api::SchemaRequest {
                schema: Some(labels.schema.clone()),
                metadata: Some(serde_json::json!({"properties": {}})),
                rule_set: labels.rule_set.clone(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    // the gateway asks the registry every 2 s
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(version(PRODUCT), 2.0);
    assert_eq!(version("labels.onboarded"), 0.0, "no contract loaded");
    send(&bootstrap, &batch("after")).await;
    send_to(
        &bootstrap,
        "labels.onboarded.ingress",
        &[(0, with(&ok, "ce_id", Some("label")))],
    )
    .await;
    wait_for_outputs(&bootstrap, 10, 60).await;

    let products = read_all(&bootstrap, PRODUCT);
    let letters = read_all(&bootstrap, DLQ);
    let mut forwarded: Vec<String> = products
        .iter()
        .map(|(_, h, _)| h["ce_id"].clone())
        .collect();
    forwarded.sort();
    assert_eq!(
        forwarded,
        ["before-0", "before-1", "before-2", "before-3", "before-4"]
    );
    assert_eq!(letters.len(), 5);
    for (_, headers, _) in &letters {
        assert!(headers["ce_id"].starts_with("after-"), "{headers:?}");
        assert_eq!(headers["meshline_rule"], "short_plays");
        assert_eq!(headers["meshline_contract_version"], "2");
    }
    let label_letters = within(60, "the labels' dead letter", async {
        loop {
            let b = bootstrap.clone();
            let letters = tokio::task::spawn_blocking(move || read_all(&b, "labels.onboarded.dlq"))
                .await
                .unwrap();
            if !letters.is_empty() {
                return letters;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert_eq!(label_letters.len(), 1);
    assert_eq!(
        label_letters[0].1["meshline_reason"],
        "contract_unavailable"
    );
    assert!(
        label_letters[0].1["meshline_message"].contains("cloudevents.types"),
        "{:?}",
        label_letters[0].1
    );
    stop.cancel();
    drop(registry);
}

/// A gateway that died after writing outputs for ingress offsets 0..13 but committing only
/// offset 5: its successor starts at 5 and skips what it finds at the outputs' tails.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_the_registry_down_cached_schemas_flow_and_an_uncached_id_dead_letters_after_the_wait()
{
    let dir = tempfile::tempdir().unwrap();
    let (broker, registry, url) = platform(dir.path()).await;
    let bootstrap = broker.bootstrap();
    // the gateway's registry endpoint: one of our own, to take down
    let down = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind(common::any_port())
        .await
        .unwrap();
    let own = format!("http://{}", listener.local_addr().unwrap());
    let served = meshline::server::spawn(
        listener,
        meshline::registry::http::router(registry.clone()),
        down.clone(),
    );
    let ids = catalog()
        .iter()
        .map(|p| p.id().to_owned())
        .collect::<Vec<_>>();
    let wait = Duration::from_secs(4);
    let contracts = Arc::new(
        Contracts::load(Client::new(&own), ids)
            .await
            .unwrap()
            .with_schema_wait(wait),
    );
    down.cancel();
    served.await.ok();
    // past the refresh interval, an unknown id makes the gateway ask the registry again
    tokio::time::sleep(Contracts::REFRESH).await;
    assert!(
        reqwest::get(format!("{own}/subjects")).await.is_err(),
        "the registry is down"
    );

    let ok = valid(&bootstrap, &url).await;
    let (_, body) = wire::decode(ok.payload.as_deref().unwrap()).unwrap();
    let mut uncached = with(&ok, "ce_id", Some("uncached"));
    uncached.payload = Some(wire::encode(9_999, body));
    let records = vec![
        (0, with(&ok, "ce_id", Some("cached-1"))),
        (1, uncached),
        (2, with(&ok, "ce_id", Some("cached-2"))),
    ];
    send(&bootstrap, &records).await;
    let started = std::time::Instant::now();
    let stop = CancellationToken::new();
    let metrics = Metrics::new(&prometheus::Registry::new()).unwrap();
    tokio::spawn(gateway::run_stream(
        StreamConfig::new(&bootstrap),
        contracts,
        metrics,
        stop.clone(),
    ));
    let _stop = stop.drop_guard();
    wait_for_outputs(&bootstrap, 3, 60).await;
    assert!(
        started.elapsed() >= wait,
        "the uncached id waited for the registry"
    );

    let mut products: Vec<String> = read_all(&bootstrap, PRODUCT)
        .into_iter()
        .map(|(_, h, _)| h["ce_id"].clone())
        .collect();
    products.sort();
    assert_eq!(
        products,
        ["cached-1", "cached-2"],
        "cached schemas keep flowing, once each"
    );
    let letters = read_all(&bootstrap, DLQ);
    assert_eq!(letters.len(), 1);
    let headers = &letters[0].1;
    assert_eq!(headers["ce_id"], "uncached");
    assert_eq!(headers["meshline_reason"], "schema_unavailable");
    assert!(
        headers["meshline_message"].contains("unreachable"),
        "{}",
        headers["meshline_message"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_taking_over_skips_what_a_dead_one_wrote_after_its_last_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, _registry, url) = platform(dir.path()).await;
    let bootstrap = broker.bootstrap();
    let ok = valid(&bootstrap, &url).await;
    let records: Vec<(i32, Record)> = (0..20)
        .map(|i| (0, with(&ok, "ce_id", Some(&format!("c-{i}")))))
        .collect();
    send(&bootstrap, &records).await;
    // the dead gateway's outputs (offsets 0..13) and its last commit (offset 5)
    let written: Vec<(i32, Record)> = records[..13]
        .iter()
        .enumerate()
        .map(|(offset, (p, r))| {
            let source = meshline::outputs::headers::Source {
                topic: INGRESS,
                partition: *p,
                offset: offset as i64,
            };
            (*p, meshline::outputs::headers::accepted(r.clone(), source))
        })
        .collect();
    send_to(&bootstrap, PRODUCT, &written).await;
    let group: BaseConsumer = consumer_config(&bootstrap, "meshline-gateway")
        .create()
        .unwrap();
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset(INGRESS, 0, Offset::Offset(5))
        .unwrap();
    group
        .commit(&offsets, rdkafka::consumer::CommitMode::Sync)
        .unwrap();
    drop(group);

    let stop = CancellationToken::new();
    let (_running, metrics) = gateway_in_process(&bootstrap, &url, stop.clone()).await;
    wait_for_outputs(&bootstrap, 20, 60).await;
    // let a duplicating gateway show itself
    tokio::time::sleep(Duration::from_secs(2)).await;
    let ingress_partitions: i32 = catalog().iter().map(|p| p.descriptor.partitions).sum();
    assert_eq!(
        metric(&metrics, "meshline_gateway_assigned_partitions"),
        f64::from(ingress_partitions),
        "the one gateway holds every ingress partition"
    );
    assert!(metric(&metrics, "meshline_gateway_rebalances_total") >= 1.0);
    stop.cancel();
    let mut ids: Vec<String> = read_all(&bootstrap, PRODUCT)
        .into_iter()
        .map(|(_, h, _)| h["ce_id"].clone())
        .collect();
    ids.sort();
    let mut expected: Vec<String> = (0..20).map(|i| format!("c-{i}")).collect();
    expected.sort();
    assert_eq!(ids, expected, "every event once");
}

/// A gateway process, killed with SIGKILL when dropped (also when the test fails).
struct Gateway(std::process::Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// 100,000 mixed events (`MESHLINE_EOS_EVENTS`) arrive at 50,000/s (`MESHLINE_EOS_RATE`), faster
/// than the gateway works them off. The gateway process is killed with SIGKILL twice mid-stream
/// (with a backlog: between writing outputs and committing them) and restarted, and two gateways
/// then share the partitions to the end (rebalancing while they work). Every valid event is in the
/// product topic once, every invalid one in the DLQ once.
///
/// The events live on the embedded broker's in-memory storage: only the gateway process dies, and
/// tansu 0.6's SQLite storage serves a consumer about 100 records/s once a backlog builds up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gateway_killed_at_random_points_mid_stream_writes_every_event_exactly_once() {
    let events: usize =
        std::env::var("MESHLINE_EOS_EVENTS").map_or(100_000, |n| n.parse().unwrap());
    let t0 = std::time::Instant::now();
    let mut dir = tempfile::tempdir().unwrap();
    // MESHLINE_KEEP_TEST_DIR=1 keeps the broker's data and the gateways' logs for a post-mortem
    dir.disable_cleanup(std::env::var_os("MESHLINE_KEEP_TEST_DIR").is_some());
    eprintln!("test dir: {}", dir.path().display());
    let (broker, _registry, url) = common::platform_in_memory().await;
    let bootstrap = broker.bootstrap();
    let ok = valid(&bootstrap, &url).await;
    let rule = negative_duration(&ok, &url).await;
    let foreign = with(&ok, "ce_source", Some("/labels/x"));
    let records: Vec<(i32, Record)> = (0..events)
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
    let start = |run: usize| {
        let log = std::fs::File::create(dir.path().join(format!("gateway-{run}.log"))).unwrap();
        Gateway(
            std::process::Command::new(env!("CARGO_BIN_EXE_meshline"))
                .args(["gateway", "--bootstrap", &bootstrap, "--registry-url", &url])
                .args([
                    "--http-listen",
                    "127.0.0.1:0",
                    "--log-format",
                    "json",
                    "--config",
                ])
                .arg(common::repo_config())
                .stdout(std::process::Stdio::null())
                .stderr(log)
                .spawn()
                .expect("the gateway starts"),
        )
    };
    // the events arrive as a stream while the gateway runs
    let rate: usize = std::env::var("MESHLINE_EOS_RATE").map_or(50_000, |n| n.parse().unwrap());
    let writer = {
        let bootstrap = bootstrap.clone();
        tokio::spawn(async move {
            for chunk in records.chunks(rate / 4) {
                let started = tokio::time::Instant::now();
                send(&bootstrap, chunk).await;
                tokio::time::sleep_until(started + Duration::from_millis(250)).await;
            }
        })
    };
    // SIGKILLed at random points (4 rounds by default, see `common::kill_points`)
    let kills = common::kill_points(4, events as u64 / 20, events as u64 * 4 / 5);
    for (run, (kill_after, delay)) in kills.iter().enumerate() {
        let gateway = start(run);
        wait_for_outputs(&bootstrap, *kill_after as i64, 300).await;
        tokio::time::sleep(*delay).await;
        drop(gateway); // SIGKILL
        eprintln!(
            "killed after {kill_after} outputs and {delay:?} at {:?}",
            t0.elapsed()
        );
    }
    // two gateways finish the stream, sharing the partitions (the second one's join rebalances
    // them while the backlog is being worked off)
    let gateways = [start(kills.len()), start(kills.len() + 1)];
    within(600, "writing the ingress", writer).await.unwrap();
    eprintln!("ingress written at {:?}", t0.elapsed());
    wait_for_outputs(&bootstrap, events as i64, 600).await;
    eprintln!("all outputs at {:?}", t0.elapsed());
    // let a duplicating gateway show itself
    tokio::time::sleep(Duration::from_secs(3)).await;
    drop(gateways);

    let mut seen = HashMap::new();
    for (topic, prefix) in [(PRODUCT, "ok-"), (DLQ, "bad-")] {
        for (_, headers, _) in read_all(&bootstrap, topic) {
            let id = headers["ce_id"].clone();
            assert!(id.starts_with(prefix), "{id} in {topic}");
            *seen.entry(id).or_insert(0) += 1;
        }
    }
    // how much the restarts found written but not committed (the path this test is about)
    let skipped: usize = (1..kills.len() + 2)
        .map(|run| {
            let log = std::fs::read_to_string(dir.path().join(format!("gateway-{run}.log")))
                .unwrap_or_default();
            // --log-format json: one JSON object per line, with time, level and message
            for line in log.lines() {
                let entry: serde_json::Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("gateway-{run}.log: not JSON ({e}): {line}"));
                assert!(
                    entry["timestamp"].is_string() && entry["level"].is_string(),
                    "{line}"
                );
                assert!(entry["fields"]["message"].is_string(), "{line}");
            }
            log.split("\"skipped\":")
                .skip(1)
                .filter_map(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
                .filter_map(|n| n.parse::<usize>().ok())
                .sum::<usize>()
        })
        .sum();
    eprintln!("outputs written after the last commit and skipped at restarts: {skipped}");
    assert!(
        skipped > 0,
        "no restart found outputs written after the last commit: the resume path was not exercised"
    );
    let duplicated: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(duplicated.is_empty(), "duplicated: {duplicated:?}");
    assert_eq!(seen.len(), events, "every event written once");
}

/// The HTTP ingress of `platform`, in this process, with a token per domain.
async fn http_ingress(
    bootstrap: &str,
    url: &str,
    config: IngressConfig,
) -> (String, HashMap<String, String>) {
    let catalog = Arc::new(catalog());
    let contracts = contracts(url).await;
    let (tokens, shown) = Tokens::generate(["player", "labels"]);
    let producer = meshline::broker::producer_config(bootstrap)
        .set(
            "message.timeout.ms",
            config.ack_timeout.as_millis().to_string(),
        )
        .create()
        .unwrap();
    let metrics = Metrics::new(&prometheus::Registry::new()).unwrap();
    let ingress = Ingress::new(config, catalog, contracts, tokens, producer, url, metrics);
    let listener = tokio::net::TcpListener::bind(common::any_port())
        .await
        .unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    meshline::server::spawn(
        listener,
        meshline::gateway::http::router(ingress),
        CancellationToken::new(),
    );
    (base, shown.into_iter().collect())
}

fn play_json(id: &str, source: &str, country: &str) -> serde_json::Value {
    serde_json::json!({
        "specversion": "1.0",
        "id": id,
        "source": source,
        "type": "com.example.player.track.played",
        "time": "2026-11-25T10:00:00Z",
        "datacontenttype": "application/json",
        "data": {
            "play_id": id, "user_id": "user-7", "track_id": "track-9", "artist_id": "artist-3",
            "device": "SPEAKER", "country": country, "started_at": 1_795_600_000_000_i64,
            "duration_ms": 1000, "completed": true, "context": null
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http_ingress_takes_every_cloudevents_mode_and_answers_each_status() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, _registry, url) = platform(dir.path()).await;
    let bootstrap = broker.bootstrap();
    let config = IngressConfig {
        max_body_bytes: 8 * 1024,
        ack_timeout: Duration::from_secs(3),
        ..IngressConfig::default()
    };
    let (base, tokens) = http_ingress(&bootstrap, &url, config).await;
    let endpoint = format!("{base}/v1/products/{PRODUCT}/events");
    let http = reqwest::Client::new();
    let player = format!("Bearer {}", tokens["player"]);
    let post = |content_type: &str, body: Vec<u8>| {
        http.post(&endpoint)
            .header("authorization", &player)
            .header("content-type", content_type)
            .body(body)
    };

    // structured, batch, binary with JSON data, binary with framed Avro
    let structured = post(
        "application/cloudevents+json",
        play_json("s-1", "/player/web", "SE")
            .to_string()
            .into_bytes(),
    );
    let batch = post(
        "application/cloudevents-batch+json",
        serde_json::json!([
            play_json("b-1", "/player/web", "SE"),
            play_json("b-2", "/player/ios", "NO")
        ])
        .to_string()
        .into_bytes(),
    );
    let data = play_json("x", "/", "SE")["data"].to_string().into_bytes();
    let binary = post("application/json", data)
        .header("ce-specversion", "1.0")
        .header("ce-id", "j-1")
        .header("ce-source", "/player/web")
        .header("ce-type", "com.example.player.track.played")
        .header("traceparent", TRACE);
    let avro = valid(&bootstrap, &url).await.payload.unwrap();
    let binary_avro = post("application/avro", avro)
        .header("ce-specversion", "1.0")
        .header("ce-id", "a-1")
        .header("ce-source", "/player/web")
        .header("ce-type", "com.example.player.track.played");
    for (mode, request, accepted) in [
        ("structured", structured, 1),
        ("batch", batch, 2),
        ("binary JSON", binary, 1),
        ("binary Avro", binary_avro, 1),
    ] {
        let response = request.send().await.unwrap();
        assert_eq!(
            response.status(),
            202,
            "{mode}: {}",
            response.text().await.unwrap()
        );
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["accepted"], accepted, "{mode}");
    }
    let ingress_count = || {
        let b = bootstrap.clone();
        async move {
            tokio::task::spawn_blocking(move || high_watermarks(&b, INGRESS))
                .await
                .unwrap()
        }
    };
    assert_eq!(ingress_count().await, 5, "202 means written");
    // the request's W3C trace context goes with its event; events without one start a trace
    let written = read_all(&bootstrap, INGRESS);
    for (_, headers, _) in &written {
        let trace = &headers["ce_traceparent"];
        if headers["ce_id"] == "j-1" {
            assert_eq!(trace, TRACE);
        } else {
            assert!(trace.len() == 55 && trace != TRACE, "{trace}");
        }
    }

    // one bad event refuses the batch, with a reason per event, and writes nothing
    let response = post(
        "application/cloudevents-batch+json",
        serde_json::json!([
            play_json("ok", "/player/web", "SE"),
            play_json("bad-country", "/player/web", "Sweden"),
            play_json("foreign", "/labels/onboarding", "SE"),
        ])
        .to_string()
        .into_bytes(),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    let events = body["events"].as_array().unwrap();
    assert_eq!(events.len(), 2, "{body}");
    assert_eq!(events[0]["index"], 1);
    assert_eq!(events[0]["reason"], "rule_failed");
    assert_eq!(events[0]["rule"], "known_country");
    assert_eq!(events[1]["index"], 2);
    assert_eq!(events[1]["reason"], "foreign_source");
    let response = post(
        "application/cloudevents+json",
        br#"{"specversion":"1.0","id":"1"}"#.to_vec(),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 400, "not a CloudEvent");
    assert_eq!(ingress_count().await, 5, "a refused request writes nothing");

    // who may write
    let one = play_json("t", "/player/web", "SE").to_string();
    let status = |request: reqwest::RequestBuilder| async move {
        request.send().await.unwrap().status().as_u16()
    };
    let structured_to = |product: &str, auth: Option<String>| {
        let mut r = http
            .post(format!("{base}/v1/products/{product}/events"))
            .header("content-type", "application/cloudevents+json")
            .body(one.clone());
        if let Some(auth) = auth {
            r = r.header("authorization", auth);
        }
        r
    };
    assert_eq!(status(structured_to(PRODUCT, None)).await, 401);
    assert_eq!(
        status(structured_to(PRODUCT, Some("Bearer mlt_guess".into()))).await,
        401
    );
    let labels = format!("Bearer {}", tokens["labels"]);
    assert_eq!(
        status(structured_to(PRODUCT, Some(labels))).await,
        403,
        "labels may not write player's product"
    );
    assert_eq!(
        status(structured_to("player.nothing", Some(player.clone()))).await,
        404
    );
    assert_eq!(status(post("text/plain", b"hello".to_vec())).await, 415);
    assert_eq!(
        status(post("application/cloudevents+json", vec![b' '; 9 * 1024])).await,
        413
    );
    assert_eq!(ingress_count().await, 5, "refused requests write nothing");

    // the stream gateway moves what the ingress took into the product topic
    let stop = CancellationToken::new();
    let (_running, _) = gateway_in_process(&bootstrap, &url, stop.clone()).await;
    wait_for_outputs(&bootstrap, 5, 60).await;
    let mut ids: Vec<_> = read_all(&bootstrap, PRODUCT)
        .into_iter()
        .map(|(_, h, _)| h["ce_id"].clone())
        .collect();
    ids.sort();
    assert_eq!(ids, ["a-1", "b-1", "b-2", "j-1", "s-1"]);
    stop.cancel();

    // broker down: 503, not a hang and not a 202
    broker.stop().await;
    let response = post("application/cloudevents+json", one.clone().into_bytes())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503, "{}", response.text().await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http_ingress_rate_limits_each_domain_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, _registry, url) = platform(dir.path()).await;
    let bootstrap = broker.bootstrap();
    let config = IngressConfig {
        rate_limit: std::num::NonZeroU32::new(10),
        ..IngressConfig::default()
    };
    let (base, tokens) = http_ingress(&bootstrap, &url, config).await;
    let http = reqwest::Client::new();
    let post = |domain: &str, product: &str, events: Vec<serde_json::Value>| {
        http.post(format!("{base}/v1/products/{product}/events"))
            .header("authorization", format!("Bearer {}", tokens[domain]))
            .header("content-type", "application/cloudevents-batch+json")
            .body(serde_json::Value::from(events).to_string())
            .send()
    };
    let batch = |from: usize, n: usize| -> Vec<serde_json::Value> {
        (from..from + n)
            .map(|i| play_json(&format!("r-{i}"), "/player/web", "SE"))
            .collect()
    };
    // refused events count too: 10 of them (they fail a rule; nothing is written) take the
    // whole budget at once, without waiting for the broker
    let refused: Vec<_> = (0..10)
        .map(|i| play_json(&format!("x-{i}"), "/player/web", "Sweden"))
        .collect();
    assert_eq!(
        post("player", PRODUCT, refused).await.unwrap().status(),
        400
    );
    let over = post("player", PRODUCT, batch(8, 8)).await.unwrap();
    assert_eq!(over.status(), 429);
    assert_eq!(over.headers()["retry-after"], "1");
    let text = over.text().await.unwrap();
    assert!(text.contains("rate limit of 10 events/s"), "{text}");
    // another domain has its own budget: its (invalid) event gets its verdict, not a 429
    let labels = post(
        "labels",
        "labels.onboarded",
        vec![serde_json::json!({
            "specversion": "1.0", "id": "l-1", "source": "/labels/x",
            "type": "com.example.labels.label.onboarded", "data": {}
        })],
    )
    .await
    .unwrap();
    assert_eq!(labels.status(), 400);
    // a batch larger than the burst can never pass: said so
    let too_big = post("player", PRODUCT, batch(16, 11)).await.unwrap();
    assert_eq!(too_big.status(), 429);
    assert!(too_big
        .text()
        .await
        .unwrap()
        .contains("send smaller batches"));
    // the budget refills
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(
        post("player", PRODUCT, batch(8, 8)).await.unwrap().status(),
        202
    );
    let b = bootstrap.clone();
    let written = tokio::task::spawn_blocking(move || high_watermarks(&b, INGRESS))
        .await
        .unwrap();
    assert_eq!(written, 8, "refused requests wrote nothing");
}

/// Every malformed input at the HTTP ingress: a 4xx naming the problem, nothing written, no panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http_ingress_refuses_every_malformed_input_with_a_4xx_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, _registry, url) = platform(dir.path()).await;
    let bootstrap = broker.bootstrap();
    let config = IngressConfig {
        max_body_bytes: 256 * 1024,
        ..IngressConfig::default()
    };
    let (base, tokens) = http_ingress(&bootstrap, &url, config).await;
    let endpoint = format!("{base}/v1/products/{PRODUCT}/events");
    let http = reqwest::Client::new();
    let token = format!("Bearer {}", tokens["player"]);
    let structured = "application/cloudevents+json";
    let event = play_json("m-1", "/player/web", "SE").to_string();
    let with_data = |data: &str| {
        event.replace(
            &play_json("m-1", "/player/web", "SE")["data"].to_string(),
            data,
        )
    };
    let edited = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut e = play_json("m-1", "/player/web", "SE");
        edit(&mut e);
        e.to_string().into_bytes()
    };
    assert!(event.contains("\"duration_ms\":1000"), "{event}");
    let nested = format!("{}1{}", "[".repeat(5_000), "]".repeat(5_000));
    let huge_array = format!("[{}0]", "0,".repeat(60_000));
    let cases: Vec<(&str, &str, Vec<u8>, &str)> = vec![
        (
            "invalid UTF-8",
            structured,
            b"{\"id\": \"\xff\xfe\"}".to_vec(),
            "not a CloudEvent",
        ),
        (
            "truncated JSON",
            structured,
            event.as_bytes()[..event.len() / 2].to_vec(),
            "not a CloudEvent",
        ),
        (
            "deeply nested JSON",
            structured,
            with_data(&nested).into_bytes(),
            "not a CloudEvent",
        ),
        (
            "NaN",
            structured,
            with_data("{\"duration_ms\": NaN}").into_bytes(),
            "not a CloudEvent",
        ),
        (
            "number overflow",
            structured,
            event
                .replace("\"duration_ms\":1000", "\"duration_ms\":1e400")
                .into_bytes(),
            "not a CloudEvent",
        ),
        (
            "long overflow",
            structured,
            event
                .replace(
                    "\"duration_ms\":1000",
                    "\"duration_ms\":9223372036854775808",
                )
                .into_bytes(),
            "bad_payload",
        ),
        (
            "duplicate keys",
            structured,
            event.replacen("{", "{\"id\":\"x\",", 1).into_bytes(),
            "duplicate key `id`",
        ),
        (
            "huge array as data",
            structured,
            with_data(&huge_array).into_bytes(),
            "bad_payload",
        ),
        (
            "missing type",
            structured,
            edited(&|e: &mut serde_json::Value| drop(e.as_object_mut().unwrap().remove("type"))),
            "not a CloudEvent",
        ),
        (
            "wrong specversion",
            structured,
            edited(&|e: &mut serde_json::Value| e["specversion"] = "0.3".into()),
            "spec_version",
        ),
        (
            "type not declared",
            structured,
            edited(&|e: &mut serde_json::Value| e["type"] = "com.example.other".into()),
            "unknown_type",
        ),
        (
            "foreign source",
            structured,
            edited(&|e: &mut serde_json::Value| e["source"] = "/labels/x".into()),
            "foreign_source",
        ),
        (
            "bad time",
            structured,
            edited(&|e: &mut serde_json::Value| e["time"] = "yesterday".into()),
            "not a CloudEvent",
        ),
        (
            "data of the wrong shape",
            structured,
            edited(&|e: &mut serde_json::Value| e["data"] = serde_json::json!({"x": 1})),
            "bad_payload",
        ),
        (
            "empty batch",
            "application/cloudevents-batch+json",
            b"[]".to_vec(),
            "",
        ),
        (
            "not an array batch",
            "application/cloudevents-batch+json",
            event.clone().into_bytes(),
            "not a CloudEvent",
        ),
    ];
    for (name, content_type, body, says) in cases {
        let response = http
            .post(&endpoint)
            .header("authorization", &token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        if name == "empty batch" {
            assert_eq!(status, 202, "{name}: {text}");
            continue;
        }
        assert_eq!(status, 400, "{name}: {text}");
        assert!(text.contains(says), "{name}: {text}");
    }
    // a header far over any sane size: refused by the HTTP server before the ingress. hyper
    // checks its 408 KiB head limit between reads, and one read can bring up to that much
    // more: a head over twice the limit is refused whatever the reads (512 KiB passed once)
    let response = http
        .post(&endpoint)
        .header("authorization", &token)
        .header("content-type", structured)
        .header("x-padding", "a".repeat(1024 * 1024))
        .body(event.clone())
        .send()
        .await;
    if let Ok(response) = response {
        assert!(response.status().is_client_error(), "{}", response.status());
    }
    // the server is still up and nothing was written
    let ok = http
        .post(&endpoint)
        .header("authorization", &token)
        .header("content-type", structured)
        .body(event)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 202);
    let b = bootstrap.clone();
    let written = tokio::task::spawn_blocking(move || high_watermarks(&b, INGRESS))
        .await
        .unwrap();
    assert_eq!(written, 1, "only the valid event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http_ingress_drops_retried_events_and_refuses_what_it_cannot_queue() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, _registry, url) = platform(dir.path()).await;
    let bootstrap = broker.bootstrap();
    let config = IngressConfig {
        dedupe_window: Some(Duration::from_secs(60)),
        max_queued: 2,
        ..IngressConfig::default()
    };
    let (base, tokens) = http_ingress(&bootstrap, &url, config).await;
    let http = reqwest::Client::new();
    let post = |body: serde_json::Value, content_type: &str| {
        http.post(format!("{base}/v1/products/{PRODUCT}/events"))
            .header("authorization", format!("Bearer {}", tokens["player"]))
            .header("content-type", content_type)
            .body(body.to_string())
            .send()
    };
    let event = play_json("retried", "/player/web", "SE");
    let first: serde_json::Value = post(event.clone(), "application/cloudevents+json")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first, serde_json::json!({"accepted": 1, "duplicates": 0}));
    let retry = post(event, "application/cloudevents+json").await.unwrap();
    assert_eq!(retry.status(), 202);
    let retry: serde_json::Value = retry.json().await.unwrap();
    assert_eq!(retry, serde_json::json!({"accepted": 0, "duplicates": 1}));

    let three = serde_json::json!([
        play_json("q-1", "/player/web", "SE"),
        play_json("q-2", "/player/web", "SE"),
        play_json("q-3", "/player/web", "SE"),
    ]);
    let response = post(three, "application/cloudevents-batch+json")
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let b = bootstrap.clone();
    let written = tokio::task::spawn_blocking(move || high_watermarks(&b, INGRESS))
        .await
        .unwrap();
    assert_eq!(written, 1, "the retry and the refused batch wrote nothing");
}

/// Transactional delivery against librdkafka's mock cluster, which speaks the transaction
/// protocol (the embedded broker does not): init → begin → send → send_offsets_to_transaction →
/// commit per checkpoint, and a restart writes nothing twice. The registry runs on the embedded
/// broker.
/// A client that gives up on its request (its own timeout, or the gateway's 503 after the
/// acknowledgement wait) and retries gets its event written once: the gateway claims each event
/// before writing it, and the late acknowledgement still confirms it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn http_retries_after_timeouts_write_each_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, _registry, url) = platform(dir.path()).await;
    let bootstrap = broker.bootstrap();
    let config = IngressConfig {
        dedupe_window: Some(Duration::from_secs(60)),
        // shorter than any acknowledgement: every write answers 503 although it lands
        ack_timeout: Duration::from_micros(1),
        ..IngressConfig::default()
    };
    let (base, tokens) = http_ingress(&bootstrap, &url, config).await;
    let post = |client: reqwest::Client, id: &str| {
        client
            .post(format!("{base}/v1/products/{PRODUCT}/events"))
            .header("authorization", format!("Bearer {}", tokens["player"]))
            .header("content-type", "application/cloudevents+json")
            .body(play_json(id, "/player/web", "SE").to_string())
            .send()
    };
    let answers = |client: reqwest::Client, id: &'static str| async move {
        let mut statuses = Vec::new();
        for _ in 0..200 {
            match post(client.clone(), id).await {
                Ok(response) if response.status() == 202 => {
                    let body: serde_json::Value = response.json().await.unwrap();
                    return (statuses, body);
                }
                Ok(response) => statuses.push(response.status().as_u16()),
                Err(e) => panic!("{e}"),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no 202 for {id} in 200 tries: {statuses:?}");
    };
    // the gateway gives up waiting: 503, then the retries find the event written
    let (statuses, body) = answers(reqwest::Client::new(), "gateway-timeout").await;
    assert_eq!(statuses.first(), Some(&503), "{statuses:?}");
    assert_eq!(body, serde_json::json!({"accepted": 0, "duplicates": 1}));
    // the client gives up first (it hangs up mid-request), then retries
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(2))
        .build()
        .unwrap();
    match post(impatient, "client-timeout").await {
        Ok(response) => assert_eq!(response.status(), 503),
        Err(e) => assert!(e.is_timeout(), "{e}"),
    }
    let (_, body) = answers(reqwest::Client::new(), "client-timeout").await;
    assert_eq!(body["accepted"], 0, "{body}");
    let b = bootstrap.clone();
    let written = tokio::task::spawn_blocking(move || high_watermarks(&b, INGRESS))
        .await
        .unwrap();
    assert_eq!(written, 2, "each event once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transactional_delivery_writes_every_event_once_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, _registry, url) = platform(dir.path()).await;
    let ok = valid(&broker.bootstrap(), &url).await;
    let mock = rdkafka::mocking::MockCluster::new(1).unwrap();
    for topic in [INGRESS, PRODUCT, DLQ] {
        mock.create_topic(topic, 4, 1).unwrap();
    }
    let bootstrap = mock.bootstrap_servers();
    let records: Vec<(i32, Record)> = (0..200)
        .map(|i| {
            let source = if i % 4 == 0 {
                "/labels/x"
            } else {
                "/player/web"
            };
            let r = with(&ok, "ce_source", Some(source));
            (i % 4, with(&r, "ce_id", Some(&format!("t-{i}"))))
        })
        .collect();
    send(&bootstrap, &records).await;

    let contracts = contracts(&url).await;
    let mut config = StreamConfig::new(&bootstrap);
    config.mode = gateway::DeliveryMode::Transactional {
        id: "meshline-gateway-test".into(),
    };
    let registry = prometheus::Registry::new();
    let metrics = Metrics::new(&registry).unwrap();
    let run = |n: i64| {
        let (config, contracts, metrics) = (config.clone(), contracts.clone(), metrics.clone());
        let bootstrap = bootstrap.clone();
        async move {
            let stop = CancellationToken::new();
            let task = tokio::spawn(gateway::run_stream(
                config,
                contracts,
                metrics,
                stop.clone(),
            ));
            wait_for_outputs(&bootstrap, n, 120).await;
            // let a duplicating gateway show itself
            tokio::time::sleep(Duration::from_secs(2)).await;
            stop.cancel();
            within(30, "the gateway stops", task).await.unwrap();
        }
    };
    run(200).await;
    // a restarted gateway (same transactional id) resumes where the outputs end: the mock
    // cluster accepts TxnOffsetCommit but keeps no offsets, so this is the outputs' tails at work
    let more: Vec<(i32, Record)> = (200..240)
        .map(|i| (i % 4, with(&ok, "ce_id", Some(&format!("t-{i}")))))
        .collect();
    send(&bootstrap, &more).await;
    run(240).await;

    let mut seen = HashMap::new();
    for (topic, expect) in [(PRODUCT, 190), (DLQ, 50)] {
        let records = read_all(&bootstrap, topic);
        assert_eq!(records.len(), expect, "{topic}");
        for (_, headers, _) in records {
            *seen.entry(headers["ce_id"].clone()).or_insert(0) += 1;
        }
    }
    assert_eq!(seen.len(), 240, "every event once");
    let scraped = prometheus::TextEncoder::new()
        .encode_to_string(&registry.gather())
        .unwrap();
    assert!(
        scraped.contains(r#"meshline_gateway_dead_letters_total{domain="player",product="player.play-events",reason="foreign_source"} 50"#),
        "{scraped}"
    );
}

/// Broker faults under a running gateway, on librdkafka's mock cluster (the embedded broker
/// cannot be told to fail): retriable produce errors, the output partitions' leaders moving,
/// their brokers down for a moment, then every broker slow (300 ms a round trip). Every event
/// still lands once in its product topic or DLQ.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn broker_faults_under_the_gateway_lose_and_duplicate_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, _registry, url) = platform(dir.path()).await;
    let ok = valid(&broker.bootstrap(), &url).await;
    let mock = rdkafka::mocking::MockCluster::new(3).unwrap();
    for topic in [INGRESS, PRODUCT, DLQ] {
        mock.create_topic(topic, 4, 3).unwrap();
        for p in 0..4 {
            mock.partition_leader(topic, p, Some(1)).unwrap();
        }
    }
    let bootstrap = mock.bootstrap_servers();
    const EVENTS: i32 = 500;
    let records: Vec<(i32, Record)> = (0..EVENTS)
        .map(|i| {
            let source = if i % 5 == 0 {
                "/labels/x"
            } else {
                "/player/web"
            };
            let r = with(&ok, "ce_source", Some(source));
            (i % 4, with(&r, "ce_id", Some(&format!("f-{i}"))))
        })
        .collect();
    send(&bootstrap, &records[..200]).await;
    let stop = CancellationToken::new();
    let task = tokio::spawn(gateway::run_stream(
        StreamConfig::new(&bootstrap),
        contracts(&url).await,
        Metrics::new(&prometheus::Registry::new()).unwrap(),
        stop.clone(),
    ));
    mock.request_errors(
        rdkafka::types::RDKafkaApiKey::Produce,
        &[
            rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
            rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
        ],
    );
    wait_for_outputs(&bootstrap, 100, 120).await;
    for topic in [PRODUCT, DLQ] {
        for p in 0..4 {
            mock.partition_leader(topic, p, Some(2)).unwrap();
        }
    }
    send(&bootstrap, &records[200..400]).await;
    mock.broker_down(2).unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    mock.broker_up(2).unwrap();
    wait_for_outputs(&bootstrap, 400, 120).await;
    // a slow broker: fetches, produces and commits all wait 300 ms a round trip
    for b in 1..=3 {
        mock.broker_round_trip_time(b, Duration::from_millis(300))
            .unwrap();
    }
    send(&bootstrap, &records[400..]).await;
    wait_for_outputs(&bootstrap, i64::from(EVENTS), 120).await;
    for b in 1..=3 {
        mock.broker_round_trip_time(b, Duration::ZERO).unwrap();
    }
    // let a duplicating gateway show itself
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.cancel();
    within(30, "the gateway stops", task).await.unwrap();

    let mut seen = HashMap::new();
    for (topic, expect) in [(PRODUCT, 400), (DLQ, 100)] {
        let records = read_all(&bootstrap, topic);
        assert_eq!(records.len(), expect, "{topic}");
        for (_, headers, _) in records {
            *seen.entry(headers["ce_id"].clone()).or_insert(0) += 1;
        }
    }
    assert_eq!(seen.len(), EVENTS as usize, "every event once");
}

/// More malformed records on the ingress topic, each dead-lettered with its reason: a header
/// that is not UTF-8, no headers at all, no payload, and the schema id of another product's
/// subject (registered, but not for this product).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn malformed_headers_payloads_and_foreign_schema_ids_are_dead_lettered() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, _registry, url) = platform(dir.path()).await;
    let bootstrap = broker.bootstrap();
    let ok = valid(&bootstrap, &url).await;
    let labels_id = meshline::registry::client::Client::new(&url)
        .latest("labels.onboarded-value")
        .await
        .unwrap()
        .id;
    let (_, body) = wire::decode(ok.payload.as_deref().unwrap()).unwrap();
    let mut not_utf8 = with(&ok, "ce_source", None);
    not_utf8
        .headers
        .push(("ce_source".into(), vec![0xff, 0xfe, b'/']));
    let mut no_payload = ok.clone();
    no_payload.payload = None;
    let mut foreign_schema = ok.clone();
    foreign_schema.payload = Some(wire::encode(labels_id, body));
    let cases = [
        (Reason::MissingAttribute, not_utf8, "not UTF-8"),
        (
            Reason::MissingAttribute,
            Record {
                key: None,
                headers: Vec::new(),
                payload: ok.payload.clone(),
            },
            "missing",
        ),
        (Reason::BadFrame, no_payload, "no payload"),
        (Reason::UnknownSchema, foreign_schema, ""),
    ];
    let mut records: Vec<(i32, Record)> = cases
        .iter()
        .enumerate()
        .map(|(n, (_, r, _))| (0, with(r, "meshline_test_case", Some(&n.to_string()))))
        .collect();
    records.push((0, with(&ok, "ce_id", Some("valid"))));
    send(&bootstrap, &records).await;
    let stop = CancellationToken::new();
    let (_running, _) = gateway_in_process(&bootstrap, &url, stop.clone()).await;
    wait_for_outputs(&bootstrap, records.len() as i64, 60).await;

    let products = read_all(&bootstrap, PRODUCT);
    assert_eq!(products.len(), 1, "only the valid event is in the product");
    let letters = read_all(&bootstrap, DLQ);
    assert_eq!(
        letters.len(),
        cases.len(),
        "every malformed record dead-lettered once"
    );
    for (n, (reason, _, says)) in cases.iter().enumerate() {
        let (_, headers, _) = letters
            .iter()
            .find(|(_, h, _)| h["meshline_test_case"] == n.to_string())
            .unwrap_or_else(|| panic!("no dead letter for case {n}"));
        assert_eq!(headers["meshline_reason"], reason.code(), "case {n}");
        assert!(
            headers["meshline_message"].contains(says),
            "case {n}: {}",
            headers["meshline_message"]
        );
    }
}

/// A record the gateway cannot forward (with its headers it is over the producer's
/// `message.max.bytes`) does not stop its partition: its dead letter goes without the payload,
/// naming where the payload stays, and the records after it flow.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_record_too_large_to_forward_is_dead_lettered_without_its_payload_and_the_partition_goes_on(
) {
    let dir = tempfile::tempdir().unwrap();
    let (broker, _registry, url) = platform(dir.path()).await;
    let bootstrap = broker.bootstrap();
    let ok = valid(&bootstrap, &url).await;
    let (id, _) = wire::decode(ok.payload.as_deref().unwrap()).unwrap();
    // fits the ingress (librdkafka's default message.max.bytes, 1,000,000), not with the
    // gateway's headers added
    let mut big = with(&ok, "ce_id", Some("big"));
    big.payload = Some(wire::encode(id, &vec![7u8; 999_600]));
    let records = vec![(0, big), (0, with(&ok, "ce_id", Some("after")))];
    send(&bootstrap, &records).await;
    let stop = CancellationToken::new();
    let (_running, _) = gateway_in_process(&bootstrap, &url, stop.clone()).await;
    wait_for_outputs(&bootstrap, 2, 60).await;

    let products = read_all(&bootstrap, PRODUCT);
    assert_eq!(products.len(), 1);
    assert_eq!(products[0].1["ce_id"], "after", "the partition goes on");
    let letters = read_all(&bootstrap, DLQ);
    assert_eq!(letters.len(), 1);
    let (_, headers, payload) = &letters[0];
    assert_eq!(headers["meshline_reason"], "too_large");
    assert_eq!(headers["ce_id"], "big", "the original headers are kept");
    assert_eq!(headers["meshline_source_offset"], "0");
    assert!(payload.is_empty(), "no payload in the letter");
    assert!(
        headers["meshline_message"].contains(&format!("stays in {INGRESS} partition 0 offset 0")),
        "{}",
        headers["meshline_message"]
    );
}

/// A record of about 1 MB, nearly all headers, written to an ingress topic by a client that
/// raised its own size limit: its output is over the gateway's, so it becomes a dead letter that
/// always fits (coordinates, reason, as many of its headers as fit), and the records behind it go
/// through, none stalled.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_record_over_the_output_limit_becomes_a_dead_letter_that_fits_and_the_records_behind_go_through(
) {
    let dir = tempfile::tempdir().unwrap();
    let (broker, _registry, url) = platform(dir.path()).await;
    let bootstrap = broker.bootstrap();
    let ok = valid(&bootstrap, &url).await;
    let mut heavy = with(&ok, "ce_id", Some("heavy"));
    for i in 0..1_040 {
        heavy
            .headers
            .push((format!("x-filler-{i:04}"), vec![b'h'; 1_000]));
    }
    // a client that raised its own limit: the broker takes the record
    let producer: FutureProducer = meshline::broker::producer_config(&bootstrap)
        .set("message.max.bytes", "2000000")
        .create()
        .unwrap();
    let headers = heavy.owned_headers();
    let record = FutureRecord::<[u8], [u8]>::to(INGRESS)
        .partition(0)
        .headers(headers)
        .payload(heavy.payload.as_deref().unwrap());
    producer
        .send(record, Duration::from_secs(30))
        .await
        .map_err(|(e, _)| e)
        .unwrap();
    let after: Vec<(i32, Record)> = (0..12)
        .map(|i| (0, with(&ok, "ce_id", Some(&format!("after-{i}")))))
        .collect();
    send(&bootstrap, &after).await;
    let stop = CancellationToken::new();
    let (_running, _) = gateway_in_process(&bootstrap, &url, stop.clone()).await;
    wait_for_outputs(&bootstrap, 13, 60).await;

    let products = read_all(&bootstrap, PRODUCT);
    assert_eq!(products.len(), 12, "every record behind it goes through");
    let letters = read_all(&bootstrap, DLQ);
    assert_eq!(letters.len(), 1);
    let (_, headers, payload) = &letters[0];
    assert_eq!(headers["meshline_reason"], "too_large");
    assert_eq!(headers["meshline_source_offset"], "0");
    assert_eq!(headers["ce_id"], "heavy", "the first headers are kept");
    assert!(payload.is_empty());
    let message = &headers["meshline_message"];
    assert!(message.contains("of its headers"), "{message}");
    assert!(
        message.contains(&format!("stays in {INGRESS} partition 0 offset 0")),
        "{message}"
    );
    let filler = headers
        .keys()
        .filter(|k| k.starts_with("x-filler-"))
        .count();
    assert!(
        filler > 100 && filler < 1_040,
        "{filler} filler headers kept"
    );
    stop.cancel();
}
