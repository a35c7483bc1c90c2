//! The consumer of downstream domains: subscribes to products by id and hands each event to the
//! caller as their own serde type, with its CloudEvents attributes.
//!
//! Each payload is decoded with the schema it was written with (the id in its Confluent frame,
//! from the registry, cached) and resolved to the reader schema of the caller's type, so a
//! consumer built against v1 keeps working when the producer moves to a compatible v2.
//!
//! Delivery: at least once. Offsets are committed only by [`Consumer::commit`] (which
//! [`Consumer::run`] calls after the handler returns `Ok`), so an event whose handler did not
//! finish is read again after a restart or rebalance. Reads are `read_committed`. With
//! [`ConsumerBuilder::dedup_window`], an event whose (`source`, `id`) was already handed out in
//! the window is skipped: redeliveries within the window are dropped, later ones are not.
//!
//! ```no_run
//! # use apache_avro::AvroSchema;
//! # #[derive(serde::Deserialize, AvroSchema)]
//! # #[avro(namespace = "com.example.labels")]
//! # struct LabelOnboarded { label_id: String }
//! # async fn run() -> Result<(), meshline_sdk::consumer::Error> {
//! use meshline_sdk::Consumer;
//! let mut consumer = Consumer::<LabelOnboarded>::builder("127.0.0.1:9092", "http://127.0.0.1:8081")
//!     .group("royalties")
//!     .product("labels.onboarded")
//!     .build()?;
//! let received = consumer.next().await?;
//! println!("{} from {}", received.event.label_id, received.source);
//! consumer.commit(&received)?;
//! # Ok(()) }
//! ```

use std::{marker::PhantomData, time::Duration};

use apache_avro::{reader::datum::GenericDatumReader, AvroSchema, Schema};
use chrono::{DateTime, Utc};
use cloudevents::AttributesReader;
use rdkafka::{
    consumer::{CommitMode, Consumer as _, StreamConsumer},
    error::KafkaError,
    Message, Offset, TopicPartitionList,
};
use serde::de::DeserializeOwned;

use crate::{
    binding::kafka::Record,
    codec::wire,
    dedup::Dedup,
    kafka::{self, RecordExt as _},
    product::Topics,
    registry::{self as client, Client},
};

/// Errors of the consumer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Kafka client failed.
    #[error("kafka consumer: {0}")]
    Kafka(#[from] KafkaError),
    /// The consumer was built without what it needs.
    #[error("consumer: {0}")]
    Config(&'static str),
    /// A record could not be decoded into the caller's type.
    #[error(
        "{topic}/{partition}@{offset}: {message}; commit past it with `Consumer::skip` to move on"
    )]
    Decode {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The offset.
        offset: i64,
        /// Why.
        message: String,
    },
    /// The registry failed.
    #[error("{0}")]
    Registry(#[source] Box<client::Error>),
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An event, as the caller's type, with its CloudEvents attributes and position.
#[derive(Debug, Clone)]
pub struct Received<T> {
    /// The payload, resolved to the caller's type.
    pub event: T,
    /// CloudEvents `id`.
    pub id: String,
    /// CloudEvents `source`.
    pub source: String,
    /// CloudEvents `type`.
    pub ty: String,
    /// CloudEvents `subject`.
    pub subject: Option<String>,
    /// CloudEvents `time`.
    pub time: Option<DateTime<Utc>>,
    /// The registry id of the writer schema.
    pub schema_id: u32,
    /// Topic, partition and offset.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
}

/// Builds a [`Consumer`].
#[derive(Debug)]
pub struct ConsumerBuilder<T> {
    bootstrap: String,
    registry: String,
    group: Option<String>,
    products: Vec<String>,
    dedup: Option<Duration>,
    config: Vec<(String, String)>,
    _type: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned + AvroSchema> ConsumerBuilder<T> {
    /// The consumer group (required): members share the partitions; offsets are the group's.
    pub fn group(mut self, group: &str) -> Self {
        self.group = Some(group.to_owned());
        self
    }

    /// Subscribes to a product by id (its product topic).
    pub fn product(mut self, id: &str) -> Self {
        self.products.push(id.to_owned());
        self
    }

    /// Drops events whose (`source`, `id`) was handed out within `window`.
    pub fn dedup_window(mut self, window: Duration) -> Self {
        self.dedup = Some(window);
        self
    }

    /// Any librdkafka consumer setting (e.g. `auto.offset.reset`).
    pub fn set(mut self, key: &str, value: &str) -> Self {
        self.config.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Creates the consumer and subscribes.
    pub fn build(self) -> Result<Consumer<T>> {
        let group = self
            .group
            .ok_or(Error::Config("set a consumer group with `.group(...)`"))?;
        if self.products.is_empty() {
            return Err(Error::Config("subscribe to a product with `.product(...)`"));
        }
        let mut config = kafka::client_config(&self.bootstrap);
        config
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .set("auto.offset.reset", "earliest")
            .set("fetch.queue.backoff.ms", kafka::FETCH_QUEUE_BACKOFF_MS);
        for (k, v) in &self.config {
            config.set(k, v);
        }
        let kafka: StreamConsumer = config.create()?;
        let topics: Vec<String> = self
            .products
            .iter()
            .map(|p| Topics::of(p).product)
            .collect();
        let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
        kafka.subscribe(&topics)?;
        Ok(Consumer {
            kafka,
            registry: Client::new(&self.registry),
            reader: T::get_schema(),
            dedup: self.dedup.map(Dedup::new),
            _type: PhantomData,
        })
    }
}

/// Reads typed events from data products.
pub struct Consumer<T> {
    kafka: StreamConsumer,
    registry: Client,
    reader: Schema,
    dedup: Option<Dedup>,
    _type: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer").finish_non_exhaustive()
    }
}

impl<T: DeserializeOwned + AvroSchema> Consumer<T> {
    /// A builder for a consumer on `bootstrap` with the registry at `registry_url`.
    pub fn builder(bootstrap: &str, registry_url: &str) -> ConsumerBuilder<T> {
        ConsumerBuilder {
            bootstrap: bootstrap.to_owned(),
            registry: registry_url.to_owned(),
            group: None,
            products: Vec::new(),
            dedup: None,
            config: Vec::new(),
            _type: PhantomData,
        }
    }

    /// The next event (skipping duplicates within the dedup window).
    pub async fn next(&mut self) -> Result<Received<T>> {
        loop {
            let message = self.kafka.recv().await?;
            let position = (
                message.topic().to_owned(),
                message.partition(),
                message.offset(),
            );
            let decode_error = |message: String| Error::Decode {
                topic: position.0.clone(),
                partition: position.1,
                offset: position.2,
                message,
            };
            let record = Record::from_message(&message);
            let event = record
                .to_event()
                .map_err(|e| decode_error(format!("not a CloudEvent: {e}")))?;
            let (schema_id, mut body) = record
                .payload
                .as_deref()
                .map(wire::decode)
                .transpose()
                .map_err(|e| decode_error(e.to_string()))?
                .ok_or_else(|| decode_error("the event has no payload".into()))?;
            let writer = self
                .registry
                .schema(schema_id)
                .await
                .map_err(|e| Error::Registry(Box::new(e)))?;
            let written = GenericDatumReader::builder(&writer)
                .build()
                .and_then(|r| r.read_value(&mut body))
                .map_err(|e| decode_error(format!("not a record of schema {schema_id}: {e}")))?;
            // a logical type annotates its underlying type: a reader's plain `long` reads a
            // writer's `timestamp-millis` (Avro's resolution rules), as an `i64` field expects
            let value = underlying(written).resolve(&self.reader).map_err(|e| {
                decode_error(format!(
                    "schema {schema_id} does not resolve to the reader type: {e}"
                ))
            })?;
            let typed: T = apache_avro::from_value(&value)
                .map_err(|e| decode_error(format!("into the reader type: {e}")))?;
            let received = Received {
                event: typed,
                id: event.id().to_owned(),
                source: event.source().to_string(),
                ty: event.ty().to_owned(),
                subject: event.subject().map(str::to_owned),
                time: event.time().copied(),
                schema_id,
                topic: position.0,
                partition: position.1,
                offset: position.2,
            };
            if let Some(dedup) = &mut self.dedup {
                if !dedup.first(&received.source, &received.id) {
                    self.commit(&received)?;
                    continue;
                }
            }
            return Ok(received);
        }
    }

    /// Commits past `received`: the group resumes after it.
    pub fn commit(&self, received: &Received<T>) -> Result<()> {
        self.commit_position(&received.topic, received.partition, received.offset)
    }

    /// Commits past the record a [`Error::Decode`] names, to move on from it.
    pub fn skip(&self, error: &Error) -> Result<()> {
        match error {
            Error::Decode {
                topic,
                partition,
                offset,
                ..
            } => self.commit_position(topic, *partition, *offset),
            _ => Ok(()),
        }
    }

    fn commit_position(&self, topic: &str, partition: i32, offset: i64) -> Result<()> {
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(topic, partition, Offset::Offset(offset + 1))?;
        self.kafka.commit(&list, CommitMode::Sync)?;
        Ok(())
    }

    /// Hands every event to `handler` and commits after it returns `Ok`; stops at the first
    /// error (the event that failed is read again next time).
    pub async fn run<F, Fut, E>(mut self, mut handler: F) -> Result<(), E>
    where
        F: FnMut(Received<T>) -> Fut,
        Fut: std::future::Future<Output = Result<(), E>>,
        E: From<Error>,
    {
        loop {
            let received = self.next().await?;
            let (topic, partition, offset) =
                (received.topic.clone(), received.partition, received.offset);
            handler(received).await?;
            self.commit_position(&topic, partition, offset)?;
        }
    }
}

/// `value` with every logical-type value as its underlying Avro value (dates, times and
/// timestamps as numbers, UUIDs as strings), for resolution to a reader schema that may or may
/// not carry the logical type.
fn underlying(value: apache_avro::types::Value) -> apache_avro::types::Value {
    use apache_avro::types::Value as V;
    match value {
        V::Date(n) | V::TimeMillis(n) => V::Int(n),
        V::TimeMicros(n)
        | V::TimestampMillis(n)
        | V::TimestampMicros(n)
        | V::TimestampNanos(n)
        | V::LocalTimestampMillis(n)
        | V::LocalTimestampMicros(n)
        | V::LocalTimestampNanos(n) => V::Long(n),
        V::Uuid(uuid) => V::String(uuid.to_string()),
        V::Record(fields) => V::Record(
            fields
                .into_iter()
                .map(|(name, v)| (name, underlying(v)))
                .collect(),
        ),
        V::Array(items) => V::Array(items.into_iter().map(underlying).collect()),
        V::Map(entries) => V::Map(
            entries
                .into_iter()
                .map(|(k, v)| (k, underlying(v)))
                .collect(),
        ),
        V::Union(branch, inner) => V::Union(branch, Box::new(underlying(*inner))),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use apache_avro::{types::Value, AvroSchema, Schema};

    use super::underlying;

    #[derive(Debug, PartialEq, serde::Deserialize, AvroSchema)]
    struct Play {
        id: String,
        at: i64,
        ended: Option<i64>,
    }

    #[test]
    fn an_i64_field_reads_a_timestamp_the_writer_annotated() {
        let writer = Schema::parse_str(
            r#"{"type": "record", "name": "Play", "fields": [
                {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
                {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
                {"name": "ended", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}]}
            ]}"#,
        )
        .unwrap();
        let uuid = uuid::Uuid::new_v4();
        let written = Value::Record(vec![
            ("id".into(), Value::Uuid(uuid)),
            ("at".into(), Value::TimestampMillis(1_790_000_000_000)),
            (
                "ended".into(),
                Value::Union(1, Box::new(Value::TimestampMillis(1_790_000_100_000))),
            ),
        ]);
        assert!(written.validate(&writer));
        let value = underlying(written).resolve(&Play::get_schema()).unwrap();
        let play: Play = apache_avro::from_value(&value).unwrap();
        assert_eq!(
            play,
            Play {
                id: uuid.to_string(),
                at: 1_790_000_000_000,
                ended: Some(1_790_000_100_000),
            }
        );
    }
}
