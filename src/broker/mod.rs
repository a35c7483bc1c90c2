//! The Kafka side: the embedded broker, client settings shared by every component, and the
//! topics each data product derives from its descriptor.

#[cfg(feature = "embedded-broker")]
pub mod embedded;

use std::{net::SocketAddr, time::Duration};

use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    config::ClientConfig,
    consumer::{BaseConsumer, Consumer},
    error::KafkaError,
    message::OwnedHeaders,
    producer::{DeliveryFuture, FutureProducer, FutureRecord},
    types::RDKafkaErrorCode,
};

use crate::product::{Catalog, Product};

/// Errors of the Kafka side.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listen address is taken.
    #[error("cannot listen on {addr}: the address is in use; stop the process that holds it (`ss -ltnp | grep {}`), or pick another address with `--listen`, or use a running cluster with `--bootstrap HOST:PORT`", addr.port())]
    PortInUse {
        /// The address.
        addr: SocketAddr,
    },
    /// The listen address cannot be bound for another reason.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The broker's storage cannot be opened.
    #[error("embedded broker storage: {message}")]
    Storage {
        /// What went wrong.
        message: String,
    },
    /// The embedded broker failed to start.
    #[cfg(feature = "embedded-broker")]
    #[error("embedded broker failed to start: {0}")]
    Embedded(Box<tansu_broker::Error>),
    /// No broker answers at the bootstrap address.
    #[error("cannot reach Kafka at {bootstrap} within {timeout:?}: {source}; check the address and that the cluster is up, or omit `--bootstrap` to start the embedded broker")]
    Unreachable {
        /// The bootstrap servers.
        bootstrap: String,
        /// How long we waited.
        timeout: Duration,
        /// The client's error.
        source: KafkaError,
    },
    /// A topic exists with a layout the descriptor does not declare.
    #[error("topic `{topic}` has {actual} partitions but its descriptor declares {declared}; a product's topics must keep the declared count (Kafka cannot shrink a topic): fix `partitions` in {descriptor} or recreate the topic")]
    PartitionMismatch {
        /// The topic.
        topic: String,
        /// Partitions found.
        actual: usize,
        /// Partitions declared.
        declared: i32,
        /// The descriptor file.
        descriptor: String,
    },
    /// Any other client error.
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Environment variables `MESHLINE_KAFKA_<KEY>` set librdkafka property `<key>` (lower case,
/// `_` for `.`) on every client, e.g. `MESHLINE_KAFKA_SASL_USERNAME=player` sets
/// `sasl.username`: how a deployment passes security settings.
pub const ENV_PREFIX: &str = "MESHLINE_KAFKA_";

/// librdkafka's `fetch.queue.backoff.ms` for meshline's consumers. Once a consumer has
/// prefetched `queued.min.messages` (100,000) records, librdkafka stops fetching for this long;
/// its default, 1 s, left the gateway idle most of that second after it drained them (gateway
/// throughput ≈ 115,000 → 158,000–180,000 events/s, `cargo bench --bench gateway`).
pub const FETCH_QUEUE_BACKOFF_MS: &str = "20";

/// Client settings shared by every meshline component talking to `bootstrap`, plus the
/// `MESHLINE_KAFKA_*` settings of the environment.
pub fn client_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("client.id", "meshline")
        // loopback brokers come and go in tests and `meshline up`; keep reconnects quick
        .set("reconnect.backoff.max.ms", "1000")
        .set("log_level", "3");
    for (key, value) in std::env::vars() {
        if let Some(key) = key.strip_prefix(ENV_PREFIX) {
            config.set(key.to_ascii_lowercase().replace('_', "."), value);
        }
    }
    config
}

/// Settings of an idempotent producer: `acks=all`, no duplicates on retry, ordered per partition.
pub fn producer_config(bootstrap: &str) -> ClientConfig {
    let mut config = client_config(bootstrap);
    config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .set("message.timeout.ms", "30000");
    config
}

/// Waits until a broker answers at `bootstrap`, or says clearly that none does.
pub async fn check_reachable(bootstrap: &str, timeout: Duration) -> Result<()> {
    let config = client_config(bootstrap);
    let bootstrap = bootstrap.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = config.create()?;
        consumer
            .fetch_metadata(None, timeout)
            .map(|_| ())
            .map_err(|source| Error::Unreachable {
                bootstrap,
                timeout,
                source,
            })
    })
    .await
    .map_err(|e| Error::Storage {
        message: format!("metadata task failed: {e}"),
    })?
}

/// Hands `record` to `producer` for `topic` partition `partition`, waiting (blocking this
/// thread) while the producer's queue is full: never drops. For loops on threads of their own.
pub fn send_blocking(
    producer: &FutureProducer,
    topic: &str,
    partition: i32,
    record: &crate::binding::kafka::Record,
) -> Result<DeliveryFuture, KafkaError> {
    send_parts_blocking(
        producer,
        topic,
        partition,
        record.key.as_deref(),
        record.payload.as_deref(),
        record.owned_headers(),
    )
}

/// [`send_blocking`] for a record given by its parts.
pub fn send_parts_blocking(
    producer: &FutureProducer,
    topic: &str,
    partition: i32,
    key: Option<&[u8]>,
    payload: Option<&[u8]>,
    headers: OwnedHeaders,
) -> Result<DeliveryFuture, KafkaError> {
    let mut future = FutureRecord::<[u8], [u8]>::to(topic)
        .partition(partition)
        .headers(headers);
    if let Some(key) = key {
        future = future.key(key);
    }
    if let Some(payload) = payload {
        future = future.payload(payload);
    }
    loop {
        match producer.send_result(future) {
            Ok(delivery) => return Ok(delivery),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                future = back;
                std::thread::sleep(Duration::from_millis(1));
            }
            Err((error, _)) => return Err(error),
        }
    }
}

/// Whether a Kafka error is worth trying again: the broker was slow, busy or between leaders,
/// not wrong.
pub fn is_transient(error: &KafkaError) -> bool {
    matches!(
        error.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::NetworkException
                | RDKafkaErrorCode::LeaderNotAvailable
                | RDKafkaErrorCode::NotLeaderForPartition
                | RDKafkaErrorCode::NotCoordinator
                | RDKafkaErrorCode::CoordinatorNotAvailable
                | RDKafkaErrorCode::CoordinatorLoadInProgress
                | RDKafkaErrorCode::NotEnoughReplicas
                | RDKafkaErrorCode::NotEnoughReplicasAfterAppend
        )
    )
}

/// Runs a blocking Kafka call again after transient errors ([`is_transient`]), waiting 100 ms
/// doubling to 5 s between tries, for up to `patience`: a busy broker slows a component down
/// rather than restarting it (a restart rejoins its group and adds load). Other errors, and the
/// last transient one, are returned.
pub fn retry_transient<T>(
    what: &str,
    patience: Duration,
    mut call: impl FnMut() -> Result<T, KafkaError>,
) -> Result<T, KafkaError> {
    let deadline = std::time::Instant::now() + patience;
    let mut wait = Duration::from_millis(100);
    loop {
        match call() {
            Err(e) if is_transient(&e) && std::time::Instant::now() + wait < deadline => {
                tracing::warn!(error = %e, retry_in = ?wait, "{what}: the broker is busy; trying again");
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(5));
            }
            result => return result,
        }
    }
}

/// The partitions of `topic` (none if it does not exist).
pub fn partitions_of<C: rdkafka::consumer::ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    timeout: Duration,
) -> Result<Vec<i32>, KafkaError> {
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    Ok(metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect())
}

/// Topic-level configuration of a product's three topics.
pub fn topic_config(product: &Product) -> Vec<(&'static str, String)> {
    vec![
        ("cleanup.policy", "delete".to_owned()),
        (
            "retention.ms",
            product.descriptor.retention.as_retention_ms().to_string(),
        ),
    ]
}

/// Creates every product's topics (`<id>`, `<id>.ingress`, `<id>.dlq`) with the declared
/// partitions and configuration. Existing topics are kept; a partition count that differs from
/// the descriptor is an error, since the gateway maps ingress partition p to product partition p.
pub async fn ensure_topics(bootstrap: &str, catalog: &Catalog) -> Result<Vec<String>> {
    let admin: AdminClient<DefaultClientContext> = client_config(bootstrap).create()?;
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let configs: Vec<_> = catalog.iter().map(topic_config).collect();
    let topics: Vec<_> = catalog.iter().map(Product::topics).collect();
    let mut new_topics = Vec::new();
    let mut names = Vec::new();
    for ((product, config), topics) in catalog.iter().zip(&configs).zip(&topics) {
        for topic in topics.all() {
            names.push(topic.to_owned());
            let new = config.iter().fold(
                NewTopic::new(
                    topic,
                    product.descriptor.partitions,
                    TopicReplication::Fixed(1),
                ),
                |t, (k, v)| t.set(k, v),
            );
            new_topics.push(new);
        }
    }
    for result in admin.create_topics(&new_topics, &options).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(Error::Kafka(KafkaError::AdminOp(code)))
                    .inspect_err(|_| tracing::error!(%topic, %code, "cannot create topic"));
            }
        }
    }
    check_partitions(bootstrap, catalog).await?;
    Ok(names)
}

async fn check_partitions(bootstrap: &str, catalog: &Catalog) -> Result<()> {
    let expected: Vec<(String, i32, String)> = catalog
        .iter()
        .flat_map(|p| {
            p.topics().all().map(|t| {
                (
                    t.to_owned(),
                    p.descriptor.partitions,
                    p.path.display().to_string(),
                )
            })
        })
        .collect();
    let consumer: BaseConsumer = client_config(bootstrap).create()?;
    tokio::task::spawn_blocking(move || {
        let metadata = consumer.fetch_metadata(None, Duration::from_secs(10))?;
        for (topic, declared, descriptor) in expected {
            let actual = metadata
                .topics()
                .iter()
                .find(|t| t.name() == topic)
                .map_or(0, |t| t.partitions().len());
            if actual != usize::try_from(declared).unwrap_or(0) {
                return Err(Error::PartitionMismatch {
                    topic,
                    actual,
                    declared,
                    descriptor,
                });
            }
        }
        Ok(())
    })
    .await
    .map_err(|e| Error::Storage {
        message: format!("metadata task failed: {e}"),
    })?
}
