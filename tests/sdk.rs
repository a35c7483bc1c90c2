//! The SDK against a real broker and registry: what it writes is plain CloudEvents + Confluent
//! Avro any client reads, consumers resolve schema versions, and each failure has its error.

mod common;

use std::time::Duration;

use apache_avro::{reader::datum::GenericDatumReader, types::Value, AvroSchema, Schema};
use common::{edit_rules, platform, play, registry, sqlite_broker};
use meshline::sdk::kafka::RecordExt as _;
use meshline::{
    demo::events::PlayEvent,
    registry::api::SchemaRequest,
    sdk::{producer::Error, Consumer, DomainEvent, Producer, Target},
};
use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{Consumer as _, StreamConsumer},
    Message,
};
use serde::{Deserialize, Serialize};

fn header<'a>(m: &'a rdkafka::message::BorrowedMessage<'_>, name: &str) -> Option<&'a str> {
    use rdkafka::message::Headers;
    m.headers()?
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| std::str::from_utf8(h.value?).ok())
}

/// A producer of plays for the player's web player, checked against the registered contract.
async fn player_producer(bootstrap: &str, url: &str) -> Producer {
    Producer::builder(bootstrap, url)
        .source("/player/web-player")
        .event::<PlayEvent>()
        .build()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn what_the_sdk_sends_reads_back_with_plain_rdkafka_avro_and_cloudevents() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, _registry, url) = platform(dir.path()).await;
    let bootstrap = broker.bootstrap();
    let producer = player_producer(&bootstrap, &url).await;
    let event = play(183_000);
    let delivery = producer.send(&event).await.unwrap();
    assert_eq!(
        delivery.topic, "player.play-events.ingress",
        "ingress by default"
    );

    let consumer: StreamConsumer = common::consumer_config(&bootstrap, "plain-reader")
        .create()
        .unwrap();
    consumer.subscribe(&["player.play-events.ingress"]).unwrap();
    let m = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (m.partition(), m.offset()),
        (delivery.partition, delivery.offset)
    );
    assert_eq!(
        m.key(),
        Some("user-7".as_bytes()),
        "partitionkey is the Kafka key"
    );
    assert_eq!(header(&m, "ce_specversion"), Some("1.0"));
    assert_eq!(header(&m, "ce_id"), Some(delivery.id.as_str()));
    assert_eq!(header(&m, "ce_source"), Some("/player/web-player"));
    assert_eq!(header(&m, "ce_type"), Some(PlayEvent::TYPE));
    assert_eq!(header(&m, "ce_subject"), Some("user-7"));
    assert_eq!(header(&m, "content-type"), Some("application/avro"));
    assert!(
        header(&m, "ce_time").unwrap().starts_with("2026-11-25T"),
        "event time"
    );
    let dataschema = header(&m, "ce_dataschema").unwrap();

    // Confluent wire format: magic 0, big-endian schema id, Avro binary
    let payload = m.payload().unwrap();
    assert_eq!(payload[0], 0);
    let id = u32::from_be_bytes(payload[1..5].try_into().unwrap());
    assert_eq!(dataschema, format!("{url}/schemas/ids/{id}"));
    let registered: serde_json::Value = reqwest::get(dataschema)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let schema = Schema::parse_str(registered["schema"].as_str().unwrap()).unwrap();
    let value = GenericDatumReader::builder(&schema)
        .build()
        .unwrap()
        .read_value(&mut &payload[5..])
        .unwrap();
    let decoded: PlayEvent = apache_avro::from_value(&value).unwrap();
    assert_eq!(decoded, event);
    if let Value::Record(fields) = &value {
        assert_eq!(fields[4].1, Value::Enum(3, "SPEAKER".into()));
    }

    // and through cloudevents-sdk's binding
    let record = meshline::binding::kafka::Record::from_message(&m);
    let ce = record.to_event().unwrap();
    use cloudevents::AttributesReader;
    assert_eq!(ce.id(), delivery.id);
    assert_eq!(ce.ty(), PlayEvent::TYPE);
    assert_eq!(ce.datacontenttype(), Some("application/avro"));
}

/// Version 1 of a test product's event, as a downstream domain compiled it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[avro(namespace = "test")]
struct Review {
    id: String,
    stars: i32,
}

/// Version 2, as the producer evolved it: a field added with a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, AvroSchema)]
#[serde(rename = "Review")]
#[avro(namespace = "test")]
struct ReviewV2 {
    id: String,
    stars: i32,
    #[avro(default = "\"\"")]
    text: String,
}

impl DomainEvent for Review {
    const PRODUCT: &'static str = "test.reviews";
    const TYPE: &'static str = "com.example.test.reviewed";
}

impl DomainEvent for ReviewV2 {
    const PRODUCT: &'static str = "test.reviews";
    const TYPE: &'static str = "com.example.test.reviewed";
}

/// A broker with a `test.reviews` topic, and a registry holding v1 then v2 of its schema.
async fn reviews(dir: &std::path::Path) -> (meshline::broker::embedded::EmbeddedBroker, String) {
    let broker = sqlite_broker(dir).await;
    let bootstrap = broker.bootstrap();
    let admin: AdminClient<DefaultClientContext> = meshline::broker::client_config(&bootstrap)
        .create()
        .unwrap();
    admin
        .create_topics(
            &[NewTopic::new("test.reviews", 1, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    let (registry, url, stop) = registry(&bootstrap).await;
    std::mem::forget(stop);
    let metadata = serde_json::json!({"properties": {
        "cloudevents.types": Review::TYPE, "cloudevents.source": "/test"}});
    for schema in [Review::get_schema(), ReviewV2::get_schema()] {
        let request = SchemaRequest {
            schema: Some(serde_json::to_string(&schema).unwrap()),
            metadata: Some(metadata.clone()),
            ..SchemaRequest::default()
        };
        registry
            .write(|s| s.plan_register("test.reviews-value", &request))
            .await
            .unwrap();
    }
    (broker, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_commits_only_after_the_handler_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, url) = reviews(dir.path()).await;
    let bootstrap = broker.bootstrap();
    let producer = Producer::builder(&bootstrap, &url)
        .target(Target::Direct)
        .build()
        .await
        .unwrap();
    let events: Vec<Review> = ["a", "b"]
        .map(|id| Review {
            id: id.into(),
            stars: 5,
        })
        .to_vec();
    producer.send_batch(&events).await.unwrap();

    // the handler takes "a" and fails on "b": "a" is committed, "b" is not
    let consumer = Consumer::<Review>::builder(&bootstrap, &url)
        .group("at-least-once")
        .product("test.reviews")
        .build()
        .unwrap();
    let outcome = tokio::time::timeout(
        Duration::from_secs(30),
        consumer.run(|r| async move {
            if r.event.id == "b" {
                anyhow::bail!("cannot handle {}", r.event.id)
            }
            Ok(())
        }),
    )
    .await
    .unwrap();
    assert!(outcome.unwrap_err().to_string().contains("cannot handle b"));

    // a new member of the group resumes at "b"
    let mut again = Consumer::<Review>::builder(&bootstrap, &url)
        .group("at-least-once")
        .product("test.reviews")
        .build()
        .unwrap();
    let next = tokio::time::timeout(Duration::from_secs(30), again.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(next.event.id, "b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_consumer_typed_against_v1_reads_events_written_with_v2() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, url) = reviews(dir.path()).await;
    let bootstrap = broker.bootstrap();

    // the producer has moved to v2; a v1 type is a mismatch only if v2 cannot read it
    let v2 = Producer::builder(&bootstrap, &url)
        .target(Target::Direct)
        .event::<ReviewV2>()
        .build()
        .await
        .unwrap();
    let sent = ReviewV2 {
        id: "r-1".into(),
        stars: 4,
        text: "great".into(),
    };
    v2.send(&sent).await.unwrap();
    v2.send(&ReviewV2 {
        id: "r-1".into(),
        ..sent.clone()
    })
    .await
    .unwrap();

    let mut consumer = Consumer::<Review>::builder(&bootstrap, &url)
        .group("downstream")
        .product("test.reviews")
        .dedup_window(Duration::from_secs(60))
        .build()
        .unwrap();
    let received = tokio::time::timeout(Duration::from_secs(30), consumer.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        received.event,
        Review {
            id: "r-1".into(),
            stars: 4
        }
    );
    assert_eq!(received.ty, Review::TYPE);
    assert_eq!(received.source, "/test");
    assert_eq!(received.schema_id, 2, "written with v2");
    consumer.commit(&received).unwrap();
    let second = tokio::time::timeout(Duration::from_secs(30), consumer.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        second.offset, 1,
        "a different CloudEvents id is not a duplicate"
    );
}

/// A type whose field has the wrong type for the registered play-event schema.
#[derive(Serialize, AvroSchema)]
#[serde(rename = "PlayEvent")]
#[avro(namespace = "com.example.player")]
struct WrongPlay {
    play_id: String,
    duration_ms: String,
}

impl DomainEvent for WrongPlay {
    const PRODUCT: &'static str = "player.play-events";
    const TYPE: &'static str = "com.example.player.track.played";
}

#[derive(Serialize, AvroSchema)]
struct Skip {
    id: String,
}

impl DomainEvent for Skip {
    const PRODUCT: &'static str = "player.skips";
    const TYPE: &'static str = "com.example.player.track.skipped";
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn each_failure_has_its_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, _registry, url) = platform(dir.path()).await;
    let bootstrap = broker.bootstrap();
    let builder = || Producer::builder(&bootstrap, &url).source("/player/web-player");

    let err = builder().event::<WrongPlay>().build().await.unwrap_err();
    assert!(matches!(err, Error::SchemaMismatch { .. }), "{err}");
    assert!(err.to_string().contains("WrongPlay"), "{err}");

    let err = builder().event::<Skip>().build().await.unwrap_err();
    assert!(matches!(err, Error::UnknownProduct { .. }), "{err}");
    assert!(
        err.to_string().contains("player.play-events"),
        "lists the known: {err}"
    );

    let err = Producer::builder(&bootstrap, &url)
        .source("/labels/sneaky")
        .event::<PlayEvent>()
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Contract { .. }), "{err}");
    assert!(err.to_string().contains("/player"), "{err}");

    let producer = builder().build().await.unwrap();
    let err = producer.send(&play(-5)).await.unwrap_err();
    assert!(
        matches!(err, Error::Contract { .. }) && err.to_string().contains("non_negative_duration"),
        "{err}"
    );

    let huge = PlayEvent {
        context: Some("x".repeat(2_000_000)),
        ..play(1)
    };
    let err = producer.send(&huge).await.unwrap_err();
    assert!(
        matches!(err, Error::TooLarge { max: 1_000_000, .. }),
        "{err}"
    );

    let down = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down_addr = down.local_addr().unwrap().to_string();
    drop(down);
    let err = Producer::builder(&down_addr, &url)
        .connect_timeout(Duration::from_secs(2))
        .build()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::BrokerUnreachable(_)), "{err}");
    assert!(err.to_string().contains(&down_addr), "{err}");
}

/// A rule registered while a producer runs takes effect in the producer's own checks within a
/// few seconds, without a restart; events go on meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rule_registered_while_a_producer_runs_takes_effect_in_its_checks() {
    let dir = tempfile::tempdir().unwrap();
    let (broker, _registry, url) = platform(dir.path()).await;
    let bootstrap = broker.bootstrap();
    let producer = player_producer(&bootstrap, &url).await;
    producer.send(&play(5_000)).await.unwrap();

    // a new version of the contract: the same schema, plays under a second only
    edit_rules(&url, |rules| {
        rules.push(
            serde_json::json!({"name": "short_plays", "kind": "CONDITION", "type": "CEL",
            "mode": "WRITE", "expr": "message.duration_ms < 1000", "onFailure": "DLQ"}),
        );
    })
    .await;

    let started = std::time::Instant::now();
    let refused = loop {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the producer still checks the old contract"
        );
        match producer.send(&play(5_000)).await {
            Ok(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(e) => break e,
        }
    };
    assert!(
        matches!(refused, Error::Contract { .. }) && refused.to_string().contains("short_plays"),
        "{refused}"
    );
    producer.send(&play(500)).await.unwrap();
}
