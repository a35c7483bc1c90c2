//! Broker faults, injected with librdkafka's mock cluster where the embedded broker cannot be told
//! to fail: retriable produce errors, a leader change, a broker down mid-stream and slow brokers
//! (300 ms a round trip). The SDK's
//! idempotent producer rides them out: every send acknowledged, every event in the topic once.
//! (The registry runs on the embedded broker; only the events go to the mock cluster.)

mod common;

use std::{collections::HashSet, time::Duration};

use meshline::{demo::events::PlayEvent, sdk::Producer};
use rdkafka::{
    consumer::{BaseConsumer, Consumer as _},
    mocking::MockCluster,
    types::{RDKafkaApiKey, RDKafkaRespErr},
    Message as _, Offset, TopicPartitionList,
};

const INGRESS: &str = "player.play-events.ingress";

/// Every `ce_id` in `topic` of the mock cluster.
fn ids(bootstrap: &str, topic: &str, expect: usize) -> Vec<String> {
    let consumer: BaseConsumer = common::consumer_config(bootstrap, "faults")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..4 {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&tpl).unwrap();
    let mut ids = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while ids.len() < expect && std::time::Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
            let id = m
                .headers()
                .and_then(|hs| {
                    use rdkafka::message::Headers as _;
                    hs.iter()
                        .find(|h| h.key == "ce_id")
                        .and_then(|h| h.value)
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                })
                .unwrap_or_default();
            ids.push(id);
        }
    }
    // anything beyond `expect` would be a duplicate: give it a moment to show
    let until = std::time::Instant::now() + Duration::from_secs(1);
    while std::time::Instant::now() < until {
        if let Some(Ok(_)) = consumer.poll(Duration::from_millis(100)) {
            ids.push("extra".into());
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sdk_sends_survive_produce_errors_a_leader_change_a_broker_down_and_a_slow_broker() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, _registry, url) = common::platform(dir.path()).await;
    let mock = MockCluster::new(3).unwrap();
    mock.create_topic(INGRESS, 4, 3).unwrap();
    for p in 0..4 {
        mock.partition_leader(INGRESS, p, Some(1)).unwrap();
    }
    let bootstrap = mock.bootstrap_servers();
    let sdk = Producer::builder(&bootstrap, &url)
        .event::<PlayEvent>()
        .delivery_timeout(Duration::from_secs(60))
        .build()
        .await
        .unwrap();
    const EVENTS: usize = 1_500;
    let mut pending = Vec::with_capacity(EVENTS);
    for i in 0..EVENTS {
        match i {
            // retriable errors on the next produce requests
            300 => mock.request_errors(
                RDKafkaApiKey::Produce,
                &[
                    RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
                    RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                    RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
                    RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
                ],
            ),
            // the leaders move
            700 => {
                for p in 0..4 {
                    mock.partition_leader(INGRESS, p, Some(2 + p % 2)).unwrap();
                }
            }
            // the leaders' broker goes down for a second and a half, then comes back
            1_100 => {
                mock.broker_down(2).unwrap();
                mock.broker_down(3).unwrap();
            }
            // then every broker answers 300 ms late
            1_300 => {
                for b in 1..=3 {
                    mock.broker_round_trip_time(b, Duration::from_millis(300))
                        .unwrap();
                }
            }
            _ => {}
        }
        let mut event = common::play(1_000 + i as i64);
        event.play_id = format!("fault-{i}");
        pending.push(sdk.enqueue(&event).await.unwrap());
        if i % 100 == 99 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if i == 1_100 {
            tokio::time::sleep(Duration::from_millis(1_500)).await;
            mock.broker_up(2).unwrap();
            mock.broker_up(3).unwrap();
        }
    }
    let mut acknowledged = 0;
    for p in pending {
        p.acknowledged().await.expect("every send is acknowledged");
        acknowledged += 1;
    }
    assert_eq!(acknowledged, EVENTS);
    for b in 1..=3 {
        mock.broker_round_trip_time(b, Duration::ZERO).unwrap();
    }

    let b = bootstrap.clone();
    let ids = tokio::task::spawn_blocking(move || ids(&b, INGRESS, EVENTS))
        .await
        .unwrap();
    assert_eq!(
        ids.len(),
        EVENTS,
        "each event once, none lost, none duplicated"
    );
    let unique: HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), EVENTS, "no duplicate ce_id");
}
