//! The embedded broker and the Kafka features meshline relies on: one test per line of the
//! README's "Kafka features by broker" table.

mod common;

use std::time::Duration;

use common::*;
use meshline::sdk::kafka::RecordExt as _;
use meshline::{binding::kafka::Record, broker::ensure_topics};
use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication},
    client::DefaultClientContext,
    consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer},
    error::KafkaError,
    producer::{FutureProducer, FutureRecord, Producer},
    Message, Offset, TopicPartitionList,
};

async fn produce(producer: &FutureProducer, topic: &str, n: usize) {
    let mut deliveries = Vec::with_capacity(n);
    for i in 0..n {
        let key = format!("k{}", i % 17);
        let payload = format!("event-{i:06}-{}", "x".repeat(180));
        deliveries.push(
            producer
                .send_result(FutureRecord::to(topic).key(&key).payload(&payload))
                .map_err(|(e, _)| e)
                .unwrap(),
        );
    }
    for d in deliveries {
        d.await.unwrap().unwrap();
    }
}

async fn create_topic(bootstrap: &str, topic: &str, partitions: i32, config: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> =
        meshline::broker::client_config(bootstrap).create().unwrap();
    let new = config.iter().fold(
        NewTopic::new(topic, partitions, TopicReplication::Fixed(1)),
        |t, (k, v)| t.set(k, v),
    );
    let results = admin
        .create_topics(&[new], &AdminOptions::new())
        .await
        .unwrap();
    results[0].as_ref().unwrap();
}

/// Consumes `n` records from `topic` in `group`, committing synchronously, and returns payloads.
async fn consume(bootstrap: &str, group: &str, topic: &str, n: usize) -> Vec<String> {
    let consumer: StreamConsumer = consumer_config(bootstrap, group).create().unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let m = consumer.recv().await.unwrap();
        out.push(String::from_utf8(m.payload().unwrap().to_vec()).unwrap());
    }
    consumer.commit_consumer_state(CommitMode::Sync).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn topics_are_created_from_descriptors_with_their_partitions_and_config() {
    let broker = memory_broker().await;
    let catalog = catalog();
    let topics = within(
        30,
        "ensure_topics",
        ensure_topics(&broker.bootstrap(), &catalog),
    )
    .await
    .unwrap();
    assert_eq!(topics.len(), 3 * catalog.len());
    // running it again is a no-op, not an error
    within(
        30,
        "ensure_topics again",
        ensure_topics(&broker.bootstrap(), &catalog),
    )
    .await
    .unwrap();

    let consumer: BaseConsumer = meshline::broker::client_config(&broker.bootstrap())
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap();
    for product in catalog.iter() {
        for topic in product.topics().all() {
            let t = metadata
                .topics()
                .iter()
                .find(|t| t.name() == topic)
                .unwrap_or_else(|| panic!("topic {topic} missing"));
            assert_eq!(
                t.partitions().len() as i32,
                product.descriptor.partitions,
                "{topic}"
            );
        }
    }
    assert!(metadata
        .topics()
        .iter()
        .any(|t| t.name() == "player.play-events.ingress"));
    assert!(metadata
        .topics()
        .iter()
        .any(|t| t.name() == "labels.onboarded.dlq"));

    let admin: AdminClient<DefaultClientContext> =
        meshline::broker::client_config(&broker.bootstrap())
            .create()
            .unwrap();
    let described = admin
        .describe_configs(
            &[ResourceSpecifier::Topic("player.play-events")],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    let resource = described[0].as_ref().unwrap();
    let retention = resource.get("retention.ms").and_then(|e| e.value.clone());
    assert_eq!(
        retention.as_deref(),
        Some("604800000"),
        "7d retention from the descriptor"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_topic_with_another_partition_count_than_declared_is_an_error() {
    let broker = memory_broker().await;
    create_topic(&broker.bootstrap(), "labels.onboarded", 3, &[]).await;
    let err = ensure_topics(&broker.bootstrap(), &catalog())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("labels.onboarded") && err.contains("has 3 partitions"),
        "{err}"
    );
    assert!(err.contains("declares 1"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn create_topics_never_and_validate_report_what_differs_and_create_nothing() {
    use meshline::broker::{provision_topics, CreateTopics};
    let dir = tempfile::tempdir().unwrap();
    let broker = sqlite_broker(dir.path()).await;
    let bootstrap = broker.bootstrap();
    // nothing yet: `never` and `validate` name each missing topic and create none
    for mode in [CreateTopics::Never, CreateTopics::Validate] {
        let err = provision_topics(&bootstrap, &catalog(), mode)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("topic `player.play-events.ingress` does not exist"),
            "{err}"
        );
    }
    let consumer: BaseConsumer = meshline::broker::client_config(&bootstrap)
        .create()
        .unwrap();
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap();
    assert!(
        !metadata
            .topics()
            .iter()
            .any(|t| t.name().starts_with("player.")),
        "nothing created"
    );

    // created as declared: validate finds nothing to say
    provision_topics(&bootstrap, &catalog(), CreateTopics::Missing)
        .await
        .unwrap();
    provision_topics(&bootstrap, &catalog(), CreateTopics::Validate)
        .await
        .unwrap();

    // a descriptor that asks for more than the cluster has: each difference is named
    let mut catalog = catalog();
    let mut product = catalog.get("labels.onboarded").unwrap().clone();
    product.descriptor.replication_factor = Some(3);
    product.descriptor.min_insync_replicas = Some(2);
    product.descriptor.retention = serde_norway::from_str("30d").unwrap();
    catalog.insert(product);
    let err = provision_topics(&bootstrap, &catalog, CreateTopics::Validate)
        .await
        .unwrap_err()
        .to_string();
    for expected in [
        "topic `labels.onboarded` has replication factor 1 but",
        "declares 3",
        "topic `labels.onboarded.dlq` has retention.ms=",
        "declares 2592000000",
        "min.insync.replicas=(unset)",
    ] {
        assert!(err.contains(expected), "`{expected}` in: {err}");
    }
    // `missing` leaves existing topics as they are, but a partition count still must match
    provision_topics(&bootstrap, &catalog, CreateTopics::Missing)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn idempotent_produce_and_consumer_group_round_trip_with_committed_offsets() {
    let broker = memory_broker().await;
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "roundtrip", 2, &[]).await;
    let producer = producer(&bootstrap);
    within(60, "produce", produce(&producer, "roundtrip", 1000)).await;

    let got = within(60, "consume", consume(&bootstrap, "g1", "roundtrip", 1000)).await;
    let mut sorted = got.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), 1000, "every event exactly once");

    // the group's committed offsets cover everything consumed
    let consumer: BaseConsumer = consumer_config(&bootstrap, "g1").create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition("roundtrip", 0);
    tpl.add_partition("roundtrip", 1);
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    let total: i64 = committed
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            other => panic!("no committed offset: {other:?}"),
        })
        .sum();
    assert_eq!(total, 1000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cloudevents_headers_and_key_round_trip_through_the_broker() {
    use chrono::Utc;
    use cloudevents::{EventBuilder, EventBuilderV10};
    let broker = memory_broker().await;
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "ce", 1, &[]).await;
    let event = EventBuilderV10::new()
        .id("1")
        .source("/player/web")
        .ty("com.example.player.track.played")
        .time(Utc::now())
        .data("application/avro", vec![0u8, 0, 0, 0, 1, 42])
        .extension("partitionkey", "user-1")
        .build()
        .unwrap();
    let record = Record::from_event(event.clone()).unwrap();
    let producer = producer(&bootstrap);
    meshline::sdk::producer::produce(&producer, "ce", &record)
        .await
        .unwrap()
        .await
        .unwrap()
        .unwrap();
    let consumer: StreamConsumer = consumer_config(&bootstrap, "ce").create().unwrap();
    consumer.subscribe(&["ce"]).unwrap();
    let m = within(30, "recv", consumer.recv()).await.unwrap();
    let back = Record::from_message(&m);
    assert_eq!(back, record);
    assert_eq!(back.to_event().unwrap(), event);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_consumers_in_one_group_split_the_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let broker = sqlite_broker(dir.path()).await;
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "split", 4, &[]).await;
    let a: StreamConsumer = consumer_config(&bootstrap, "split-g").create().unwrap();
    let b: StreamConsumer = consumer_config(&bootstrap, "split-g").create().unwrap();
    a.subscribe(&["split"]).unwrap();
    b.subscribe(&["split"]).unwrap();
    let assigned = within(60, "rebalance", async {
        loop {
            // polling drives the group protocol
            let _ = tokio::time::timeout(Duration::from_millis(200), a.recv()).await;
            let _ = tokio::time::timeout(Duration::from_millis(200), b.recv()).await;
            let (na, nb) = (
                a.assignment().unwrap().count(),
                b.assignment().unwrap().count(),
            );
            if na + nb == 4 && na > 0 && nb > 0 {
                return (na, nb);
            }
        }
    })
    .await;
    assert_eq!(assigned, (2, 2));
}

/// The offsets of the records read from `topic` partition 0 from `start` to its end.
fn offsets_from(bootstrap: &str, topic: &str, start: i64) -> Vec<i64> {
    let consumer: BaseConsumer = consumer_config(bootstrap, "offsets-from")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Offset(start))
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let mut offsets = Vec::new();
    while std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => offsets.push(m.offset()),
            Some(Err(KafkaError::PartitionEOF(_))) => return offsets,
            Some(Err(e)) => panic!("{e}"),
            None => {}
        }
    }
    panic!(
        "reading {topic} from {start}: no end after 30 s ({} records)",
        offsets.len()
    );
}

/// Both storages list true high watermarks (tails and lag depend on them) and serve a fetch
/// from inside a record batch (a consumer resumes at any committed offset). tansu-storage 0.6.0's
/// in-memory storage did neither; `vendor/tansu-storage` fixes both.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn both_storages_list_true_high_watermarks_and_fetch_from_inside_a_batch() {
    let dir = tempfile::tempdir().unwrap();
    for (storage, broker) in [
        ("sqlite", sqlite_broker(dir.path()).await),
        ("memory", memory_broker().await),
    ] {
        let bootstrap = broker.bootstrap();
        create_topic(&bootstrap, "wm", 1, &[]).await;
        within(60, "produce", produce(&producer(&bootstrap), "wm", 249)).await;
        assert_eq!(high_watermarks(&bootstrap, "wm"), 249, "{storage}");
        let b = bootstrap.clone();
        let offsets = tokio::task::spawn_blocking(move || offsets_from(&b, "wm", 101))
            .await
            .unwrap();
        assert_eq!(offsets, (101..249).collect::<Vec<_>>(), "{storage}");
        broker.stop().await;
    }
}

/// A fetch answers as soon as it has records, not after the consumer's `fetch.wait.max.ms`:
/// tansu-storage 0.6.0 slept the whole wait on every fetch, so this read of 3,000 records in
/// 64 KiB partition shares (several fetches) took several 10 s waits; `vendor/tansu-storage`
/// answers at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fetch_with_records_answers_without_waiting_out_fetch_wait_max() {
    let dir = tempfile::tempdir().unwrap();
    for (storage, broker) in [
        ("sqlite", sqlite_broker(dir.path()).await),
        ("memory", memory_broker().await),
    ] {
        let bootstrap = broker.bootstrap();
        create_topic(&bootstrap, "fast", 2, &[]).await;
        within(60, "produce", produce(&producer(&bootstrap), "fast", 3_000)).await;
        let b = bootstrap.clone();
        let (read, took) = tokio::task::spawn_blocking(move || {
            let consumer: BaseConsumer = consumer_config(&b, "fast")
                .set("fetch.wait.max.ms", "10000")
                .set("max.partition.fetch.bytes", "65536")
                .create()
                .unwrap();
            let mut tpl = TopicPartitionList::new();
            for p in 0..2 {
                tpl.add_partition_offset("fast", p, Offset::Beginning)
                    .unwrap();
            }
            consumer.assign(&tpl).unwrap();
            let started = std::time::Instant::now();
            let mut read = 0;
            while read < 3_000 && started.elapsed() < Duration::from_secs(60) {
                if let Some(m) = consumer.poll(Duration::from_millis(100)) {
                    m.unwrap();
                    read += 1;
                }
            }
            (read, started.elapsed())
        })
        .await
        .unwrap();
        assert_eq!(read, 3_000, "{storage}");
        assert!(
            took < Duration::from_secs(8),
            "{storage}: 3,000 records took {took:?}, a fetch waits out fetch.wait.max.ms (10 s)"
        );
        broker.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn compacted_topic_config_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let broker = sqlite_broker(dir.path()).await;
    create_topic(
        &broker.bootstrap(),
        "_schemas",
        1,
        &[("cleanup.policy", "compact")],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kafka_transactions_cannot_commit_on_the_embedded_broker() {
    let broker = memory_broker().await;
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "txn", 1, &[]).await;
    let producer: FutureProducer = meshline::broker::producer_config(&bootstrap)
        .set("transactional.id", "meshline-test")
        .create()
        .unwrap();
    let result = tokio::task::spawn_blocking(move || -> Result<(), KafkaError> {
        producer.init_transactions(Duration::from_secs(10))?;
        producer.begin_transaction()?;
        producer
            .send_result(FutureRecord::to("txn").key("k").payload("v"))
            .map_err(|(e, _)| e)?;
        producer.commit_transaction(Duration::from_secs(10))
    })
    .await
    .unwrap();
    let err = result.expect_err("tansu 0.6.0 routes no EndTxn");
    assert!(err.to_string().contains("EndTxn"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restart_on_durable_storage_keeps_every_event_and_committed_offset() {
    let dir = tempfile::tempdir().unwrap();
    let broker = sqlite_broker(dir.path()).await;
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "durable", 2, &[]).await;
    within(
        60,
        "produce",
        produce(&producer(&bootstrap), "durable", 500),
    )
    .await;
    within(60, "consume", consume(&bootstrap, "dg", "durable", 200)).await;
    broker.stop().await;

    let broker = sqlite_broker(dir.path()).await;
    let bootstrap = broker.bootstrap();
    assert_eq!(high_watermarks(&bootstrap, "durable"), 500);
    let consumer: BaseConsumer = consumer_config(&bootstrap, "dg").create().unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition("durable", 0);
    tpl.add_partition("durable", 1);
    let committed: i64 = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap()
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => o,
            _ => 0,
        })
        .sum();
    assert!(committed >= 200, "committed offsets survive: {committed}");
    // every event is still readable after the restart
    let all = within(60, "re-read", consume(&bootstrap, "fresh", "durable", 500)).await;
    assert_eq!(all.len(), 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_taken_port_is_refused_with_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let err = meshline::broker::embedded::EmbeddedBroker::start(
        taken.local_addr().unwrap(),
        &meshline::broker::embedded::Storage::Memory,
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("in use") && err.contains("--listen"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreachable_bootstrap_is_refused_with_a_clear_error() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap().to_string();
    drop(free);
    let err = meshline::broker::check_reachable(&addr, Duration::from_secs(2))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot reach Kafka") && err.contains(&addr),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn producer_flush_before_stop_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = sqlite_broker(dir.path()).await;
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "flush", 1, &[]).await;
    let producer = producer(&bootstrap);
    for i in 0..300 {
        let payload = format!("{i}");
        let _ = producer.send_result(FutureRecord::<str, str>::to("flush").payload(&payload));
    }
    producer.flush(Duration::from_secs(30)).unwrap();
    broker.stop().await;
    let broker = sqlite_broker(dir.path()).await;
    assert_eq!(high_watermarks(&broker.bootstrap(), "flush"), 300);
}

/// One InitProducerId request in raw Kafka protocol bytes, as a client other than librdkafka
/// writes it; the broker's answer (error code, producer id, epoch), or why there was none.
async fn init_producer_id(
    addr: &str,
    version: i16,
    transactional_id: Option<&str>,
    producer: Option<(i64, i16)>,
) -> Result<(i16, i64, i16), String> {
    use tansu_sans_io::{Frame, Header, InitProducerIdRequest, InitProducerIdResponse};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let request = InitProducerIdRequest::default()
        .transactional_id(transactional_id.map(str::to_owned))
        .transaction_timeout_ms(60_000)
        .producer_id(producer.map(|p| p.0))
        .producer_epoch(producer.map(|p| p.1));
    let header = Header::Request {
        api_key: 22,
        api_version: version,
        correlation_id: 7,
        client_id: Some("a-java-like-client".into()),
    };
    let bytes = Frame::request(header, request.into()).map_err(|e| e.to_string())?;
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    stream.write_all(&bytes).await.map_err(|e| e.to_string())?;
    let mut size = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut size))
        .await
        .map_err(|_| "no answer in 10 s".to_owned())?
        .map_err(|e| format!("the broker closed the connection: {e}"))?;
    let mut body = vec![0u8; u32::from_be_bytes(size) as usize];
    stream
        .read_exact(&mut body)
        .await
        .map_err(|e| e.to_string())?;
    let mut frame = size.to_vec();
    frame.extend_from_slice(&body);
    let frame = Frame::response_from_bytes(&frame[..], 22, version).map_err(|e| e.to_string())?;
    let response = InitProducerIdResponse::try_from(frame.body).map_err(|e| format!("{e:?}"))?;
    Ok((
        response.error_code,
        response.producer_id,
        response.producer_epoch,
    ))
}

/// Every version and shape of InitProducerId, on both storages, gets an answer with a Kafka
/// error code, never a closed connection: versions 0 to 2 carry no producer id (the Apache Kafka
/// Java client's idempotent producer on brokers that advertise those), later ones -1/-1 or the
/// producer's current id and epoch (an epoch bump after an error).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_shape_of_init_producer_id_is_answered_with_an_error_code_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let brokers = [
        ("memory", memory_broker().await),
        ("sqlite", sqlite_broker(dir.path()).await),
    ];
    for (storage, broker) in &brokers {
        let addr = broker.bootstrap();
        for version in 0..=5i16 {
            for transactional_id in [None, Some(format!("txn-{storage}-{version}"))] {
                let tid = transactional_id.as_deref();
                let what = format!("{storage} v{version} transactional {tid:?}");
                let fields = (version >= 3).then_some((-1, -1));
                let (error, id, epoch) = init_producer_id(&addr, version, tid, fields)
                    .await
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_eq!(error, 0, "{what}: a new producer gets an id");
                assert!(id >= 0 && epoch >= 0, "{what}: id {id} epoch {epoch}");
                if version < 3 {
                    continue;
                }
                // the producer's current id and epoch: re-initialised, answered
                let (error, again, _) = init_producer_id(&addr, version, tid, Some((id, epoch)))
                    .await
                    .unwrap_or_else(|e| panic!("{what}, re-initialising: {e}"));
                assert_eq!(error, 0, "{what}: re-initialising is served");
                assert!(again >= 0, "{what}");
                // an id without an epoch is not a request any client sends: refused, answered
                let (error, _, _) = init_producer_id(&addr, version, tid, Some((id, -1)))
                    .await
                    .unwrap_or_else(|e| panic!("{what}, half a producer: {e}"));
                assert_eq!(error, 42, "{what}: INVALID_REQUEST");
            }
        }
    }
}

/// The Apache Kafka Java client with its default settings (`tests/java/JavaClient.java`): its
/// admin client creates a topic, its producer (idempotent by default) writes records with
/// headers, and a consumer group with the cooperative-sticky assignor reads them back and
/// commits, on both storages of the embedded broker (client 4.1; see docs/security.md for 4.4).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_apache_kafka_java_client_produces_idempotently_and_consumes_in_a_group() {
    // Java 17 and Maven are needed for the tests (scripts/test.sh installs them)
    let classpath = script("java-client.sh", &[]);
    let dir = tempfile::tempdir().unwrap();
    let brokers = [
        ("memory", memory_broker().await),
        ("sqlite", sqlite_broker(dir.path()).await),
    ];
    for (storage, broker) in &brokers {
        let bootstrap = broker.bootstrap();
        let run = tokio::process::Command::new("java")
            .args([
                "-cp",
                &classpath,
                "JavaClient",
                &bootstrap,
                "java-client",
                "200",
            ])
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(Duration::from_secs(180), run)
            .await
            .unwrap_or_else(|_| panic!("{storage}: the Java client did not finish in 180 s"))
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{storage}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            stdout.contains("producer: wrote 200 (idempotent)"),
            "{stdout}"
        );
        assert!(stdout.contains("consumer: read 200"), "{stdout}");
    }
}
