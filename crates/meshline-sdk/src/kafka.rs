//! meshline's side of rdkafka: the client settings every component shares, sending that waits
//! while the producer's queue is full, retrying what a busy broker refuses, and the bridge
//! between the CloudEvents Kafka binding's [`Record`] and rdkafka's messages.

use std::time::Duration;

use meshline_core::binding::kafka::{self as binding, Attribute, Record, RecordView, Sink};
use rdkafka::{
    config::ClientConfig,
    consumer::{BaseConsumer, Consumer},
    error::KafkaError,
    message::{Header, Headers, Message, OwnedHeaders},
    producer::{DeliveryFuture, FutureProducer, FutureRecord},
    types::RDKafkaErrorCode,
};

/// Errors of the Kafka side.
#[derive(Debug, thiserror::Error)]
pub enum Error {
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
    /// The metadata request could not run.
    #[error("metadata task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
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

/// Client settings shared by every meshline component talking to `bootstrap`, then the
/// `MESHLINE_KAFKA_*` settings of the environment (which win).
pub fn client_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("client.id", "meshline")
        // loopback brokers come and go in tests and `meshline up`; keep reconnects quick
        .set("reconnect.backoff.max.ms", "1000")
        .set("log_level", "3");
    with_environment(config)
}

/// Applies the `MESHLINE_KAFKA_*` settings of the environment over `config`.
fn with_environment(mut config: ClientConfig) -> ClientConfig {
    for (key, value) in std::env::vars() {
        if let Some(key) = key.strip_prefix(ENV_PREFIX) {
            config.set(key.to_ascii_lowercase().replace('_', "."), value);
        }
    }
    config
}

/// Settings of an idempotent producer: `acks=all`, no duplicates on retry, ordered per
/// partition, lz4 batches; the environment's settings win (`MESHLINE_KAFKA_COMPRESSION_TYPE=zstd`).
pub fn producer_config(bootstrap: &str) -> ClientConfig {
    let mut config = client_config(bootstrap);
    config
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .set("message.timeout.ms", "30000");
    with_environment(config)
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
    .await?
}

/// Hands `record` to `producer` for `topic` partition `partition`, waiting (blocking this
/// thread) while the producer's queue is full: never drops. For loops on threads of their own.
pub fn send_blocking(
    producer: &FutureProducer,
    topic: &str,
    partition: i32,
    record: &Record,
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
    while_queue_full(producer, future, FutureProducer::send_result)
}

/// How long a sender waits before offering a record again to a producer whose queue is full.
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(1);

/// Offers `record` to `producer` through `send` (e.g. `FutureProducer::send_result` or
/// `ThreadedProducer::send`) until the producer's queue has room, sleeping this thread between
/// tries: never drops a record. For loops on threads of their own.
pub fn while_queue_full<P, R, T>(
    producer: &P,
    mut record: R,
    send: impl Fn(&P, R) -> Result<T, (KafkaError, R)>,
) -> Result<T, KafkaError> {
    loop {
        match send(producer, record) {
            Ok(sent) => return Ok(sent),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                record = back;
                std::thread::sleep(QUEUE_FULL_WAIT);
            }
            Err((error, _)) => return Err(error),
        }
    }
}

/// [`while_queue_full`] on the async runtime: waits without blocking a thread, and gives up
/// with the queue-full error at `deadline`, if one is given.
pub async fn while_queue_full_async<P, R, T>(
    producer: &P,
    mut record: R,
    deadline: Option<tokio::time::Instant>,
    send: impl Fn(&P, R) -> Result<T, (KafkaError, R)>,
) -> Result<T, KafkaError> {
    loop {
        match send(producer, record) {
            Ok(sent) => return Ok(sent),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                if deadline.is_none_or(|d| tokio::time::Instant::now() < d) =>
            {
                record = back;
                tokio::time::sleep(QUEUE_FULL_WAIT).await;
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

/// A [`Record`] to and from rdkafka's messages.
pub trait RecordExt {
    /// Copies a consumed rdkafka message (see [`Consumed`] to read one without copying).
    fn from_message(message: &impl Message) -> Self;
    /// The headers as rdkafka produces them.
    fn owned_headers(&self) -> OwnedHeaders;
}

impl RecordExt for Record {
    fn from_message(message: &impl Message) -> Self {
        let headers = message
            .headers()
            .map(|hs| {
                hs.iter()
                    .map(|h| {
                        (
                            h.key.to_owned(),
                            h.value.map(<[u8]>::to_vec).unwrap_or_default(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        Record {
            key: message.key().map(<[u8]>::to_vec),
            headers,
            payload: message.payload().map(<[u8]>::to_vec),
        }
    }

    fn owned_headers(&self) -> OwnedHeaders {
        self.headers.iter().fold(
            OwnedHeaders::new_with_capacity(self.headers.len()),
            |hs, (k, v)| {
                hs.insert(Header {
                    key: k,
                    value: Some(v),
                })
            },
        )
    }
}

/// A record encoded straight into rdkafka's header list, for producing: the same bytes as
/// [`Record::from_event`] without its per-header strings, which the producer's hot path would
/// copy into rdkafka only to drop them.
#[derive(Default)]
pub struct Outgoing {
    /// Record key (the `partitionkey` extension).
    pub key: Option<Vec<u8>>,
    /// Headers, in order.
    pub headers: Option<OwnedHeaders>,
    /// Record value (the event `data`).
    pub payload: Option<Vec<u8>>,
}

impl Outgoing {
    /// Encodes a CloudEvent 1.0 given as its attributes' canonical texts, in binary content
    /// mode: the headers, key and value [`Record::from_event`] writes for the same event,
    /// without the owned attribute values the SDK's visitor takes (the producer's hot path).
    pub fn from_attributes<'a>(
        attributes: impl IntoIterator<Item = Attribute<'a>>,
        data: Vec<u8>,
    ) -> Self {
        binding::from_attributes(attributes, data)
    }
}

impl Sink for Outgoing {
    fn header(&mut self, name: &str, value: &[u8]) {
        // an event has ten headers or so: one allocation for the list
        let headers = self
            .headers
            .take()
            .unwrap_or_else(|| OwnedHeaders::new_with_capacity(12));
        self.headers = Some(headers.insert(Header {
            key: name,
            value: Some(value),
        }));
    }
    fn key(&mut self, key: Vec<u8>) {
        self.key = Some(key);
    }
    fn payload(&mut self, payload: Vec<u8>) {
        self.payload = Some(payload);
    }
}

/// A consumed header: its name and value (`None`: a header without a value).
type ConsumedHeader<'a> = (&'a str, Option<&'a [u8]>);

/// A consumed rdkafka message read as a record without copying it: its headers are looked up
/// once (each lookup through librdkafka walks them all).
#[derive(Debug, Clone)]
pub struct Consumed<'a> {
    headers: smallvec::SmallVec<[ConsumedHeader<'a>; 16]>,
    payload: Option<&'a [u8]>,
}

impl<'a> Consumed<'a> {
    /// Reads `message` in place.
    pub fn new<M: Message>(message: &'a M) -> Self {
        let headers = message
            .headers()
            .map(|hs| hs.iter().map(|h| (h.key, h.value)).collect())
            .unwrap_or_default();
        Self {
            headers,
            payload: message.payload(),
        }
    }

    /// The headers, in order (`None`: a header without a value).
    pub fn headers(&self) -> &[(&'a str, Option<&'a [u8]>)] {
        &self.headers
    }
}

impl RecordView for Consumed<'_> {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .rev()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.unwrap_or_default())
    }

    fn payload(&self) -> Option<&[u8]> {
        self.payload
    }
}
