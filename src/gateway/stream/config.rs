//! The stream gateway's settings, and the Kafka clients they build.

use std::time::Duration;

use rdkafka::ClientConfig;

use crate::broker;

/// How outputs and consumer offsets reach the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryMode {
    /// Idempotent producer; offsets committed after outputs are acknowledged; duplicates
    /// prevented by reading the outputs' tails on assignment. Works on every Kafka-API broker.
    Idempotent,
    /// Outputs and offsets in one Kafka transaction per checkpoint (`transactional.id` is this
    /// id): also fences zombie gateways. Needs a broker with transactions (Apache Kafka,
    /// Redpanda); the embedded broker has none.
    Transactional {
        /// The `transactional.id`; one per gateway instance, stable across its restarts.
        id: String,
    },
}

/// Settings of the stream gateway.
#[derive(Debug, Clone)]
pub struct StreamConfig {
    /// Kafka bootstrap servers.
    pub bootstrap: String,
    /// The consumer group every gateway instance joins.
    pub group: String,
    /// How outputs are delivered.
    pub mode: DeliveryMode,
    /// Longest time between two checkpoints (outputs acknowledged, offsets committed).
    pub checkpoint_interval: Duration,
    /// Most records between two checkpoints.
    pub checkpoint_records: usize,
    /// Extra client settings (security, tuning), applied to the consumer and the producer.
    pub client: Vec<(String, String)>,
}

impl StreamConfig {
    /// Defaults: group `meshline-gateway`, idempotent delivery, a checkpoint every 100 ms or
    /// 5,000 records.
    pub fn new(bootstrap: &str) -> Self {
        Self {
            bootstrap: bootstrap.to_owned(),
            group: "meshline-gateway".to_owned(),
            mode: DeliveryMode::Idempotent,
            checkpoint_interval: Duration::from_millis(100),
            checkpoint_records: 5_000,
            client: Vec::new(),
        }
    }
}

impl StreamConfig {
    /// The producer of outputs: idempotent, in order per partition, and an output waits for
    /// the broker as long as it takes (giving up would lose the event); transactional in that
    /// mode.
    pub(super) fn producer(&self) -> ClientConfig {
        let mut producer = broker::producer_config(&self.bootstrap);
        producer
            .set("client.id", "meshline-gateway")
            .set("enable.gapless.guarantee", "true")
            .set("message.timeout.ms", "0")
            .set("linger.ms", "5");
        if let DeliveryMode::Transactional { id } = &self.mode {
            producer
                .set("transactional.id", id)
                .set("transaction.timeout.ms", "60000")
                .set("message.timeout.ms", "60000");
        }
        self.with_client_settings(producer)
    }

    /// The group consumer of the ingress topics: offsets committed by the gateway only, after
    /// the outputs before them are acknowledged.
    pub(super) fn consumer(&self) -> ClientConfig {
        let mut consumer = broker::client_config(&self.bootstrap);
        consumer
            .set("client.id", "meshline-gateway")
            .set("group.id", &self.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "1000")
            // short fetch waits: a broker that answers a connection's requests in order (the
            // embedded one) then never holds a heartbeat or watermark request behind a long poll
            .set("fetch.wait.max.ms", "50")
            .set("fetch.queue.backoff.ms", broker::FETCH_QUEUE_BACKOFF_MS)
            // also the rebalance timeout: how long a join waits for members that died without
            // leaving (a killed gateway) on brokers that do not expire their sessions first
            .set("max.poll.interval.ms", "20000");
        self.with_client_settings(consumer)
    }

    /// The reader of the outputs' tails (and of watermarks), assigned by hand, never committing.
    pub(super) fn reader(&self) -> ClientConfig {
        let mut reader = broker::client_config(&self.bootstrap);
        reader
            .set("client.id", "meshline-gateway-resume")
            .set("group.id", format!("{}-resume", self.group))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .set("fetch.wait.max.ms", "50")
            .set("isolation.level", "read_committed");
        self.with_client_settings(reader)
    }

    /// An admin client's settings, to read the output topics' configuration.
    pub(super) fn admin(&self) -> ClientConfig {
        self.with_client_settings(broker::client_config(&self.bootstrap))
    }

    /// `client` with the extra settings (security, tuning) over it.
    fn with_client_settings(&self, mut client: ClientConfig) -> ClientConfig {
        for (key, value) in &self.client {
            client.set(key, value);
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_reads_committed_and_never_commits_by_itself() {
        let config = StreamConfig::new("localhost:9092");
        let (consumer, reader) = (config.consumer(), config.reader());
        for client in [&consumer, &reader] {
            assert_eq!(client.get("isolation.level"), Some("read_committed"));
            assert_eq!(client.get("enable.auto.commit"), Some("false"));
        }
        assert_eq!(consumer.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(consumer.get("group.id"), Some("meshline-gateway"));
        assert_eq!(reader.get("group.id"), Some("meshline-gateway-resume"));
        let producer = config.producer();
        assert_eq!(producer.get("enable.idempotence"), Some("true"));
        assert_eq!(
            producer.get("message.timeout.ms"),
            Some("0"),
            "an output never expires"
        );
        assert_eq!(producer.get("transactional.id"), None);
    }

    #[test]
    fn transactions_and_client_settings_reach_the_clients() {
        let mut config = StreamConfig::new("localhost:9092");
        config.mode = DeliveryMode::Transactional {
            id: "gateway-0".into(),
        };
        config.client = vec![
            ("security.protocol".into(), "SASL_SSL".into()),
            ("linger.ms".into(), "20".into()),
        ];
        let producer = config.producer();
        assert_eq!(producer.get("transactional.id"), Some("gateway-0"));
        assert_eq!(producer.get("message.timeout.ms"), Some("60000"));
        assert_eq!(
            producer.get("linger.ms"),
            Some("20"),
            "the operator's setting wins"
        );
        for client in [producer, config.consumer(), config.reader()] {
            assert_eq!(client.get("security.protocol"), Some("SASL_SSL"));
        }
    }
}
