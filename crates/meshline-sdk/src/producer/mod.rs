//! The producer of operational services: a typed domain event in, a CloudEvent (Kafka binding,
//! binary mode) with a Confluent-framed Avro payload out, checked against the product's
//! registered contract first.
//!
//! Delivery: at least once per [`Producer::send`] that returns `Ok`, with no duplicates from
//! retries (idempotent producer, `acks=all`). `send` returns once the broker acknowledged the
//! event, or with a typed error once the delivery timeout has passed. A full in-memory queue
//! makes `send` wait, never drop. Limits: an event whose `send` returned an error may still have
//! been written (the acknowledgement was lost), as with any Kafka producer; call
//! [`Producer::flush`] before exiting so nothing queued is lost.
//!
//! ```no_run
//! # use apache_avro::AvroSchema;
//! # use meshline_sdk::{DomainEvent, Producer};
//! # #[derive(serde::Serialize, AvroSchema)]
//! # #[avro(namespace = "com.example.labels")]
//! # struct LabelOnboarded { label_id: String }
//! # impl DomainEvent for LabelOnboarded {
//! #     const PRODUCT: &'static str = "labels.onboarded";
//! #     const TYPE: &'static str = "com.example.labels.label.onboarded";
//! # }
//! # async fn run() -> Result<(), meshline_sdk::producer::Error> {
//! let producer = Producer::builder("127.0.0.1:9092", "http://127.0.0.1:8081")
//!     .source("/labels/onboarding-service")
//!     .event::<LabelOnboarded>() // checked against the registered contract in build()
//!     .build()
//!     .await?;
//! let delivery = producer.send(&LabelOnboarded { label_id: "label-1".into() }).await?;
//! println!("{} at {}:{}", delivery.id, delivery.partition, delivery.offset);
//! producer.flush(std::time::Duration::from_secs(5))?;
//! # Ok(()) }
//! ```

mod bound;
mod builder;
mod error;

use std::{
    any::TypeId,
    collections::HashMap,
    sync::{Arc, RwLock},
    time::Duration,
};

use crate::framed::EventId;
use apache_avro::{types::Value, writer::datum::GenericDatumWriter, Schema};
use chrono::Utc;
use rdkafka::{
    error::KafkaError,
    message::OwnedHeaders,
    producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer as _},
};
use rustc_hash::FxHashMap;

pub use builder::{ProducerBuilder, Target};
pub use error::{Error, Result};

use bound::{Attributes, Bound};
use error::encode_error;

use super::{
    framed::{Framed, CONTENT_TYPE},
    DomainEvent,
};
use meshline_core::registry::{
    api::{SchemaRequest, VersionId},
    compat,
};

use crate::{
    binding::kafka::Record,
    codec::wire,
    contract::{Contract, Violation},
    kafka::{self, RecordExt as _},
    registry::Client,
};

/// An acknowledged event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The CloudEvents `id` it was sent with.
    pub id: String,
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The offset.
    pub offset: i64,
}

/// An event without a Rust type: a value of the product's schema and its attributes.
#[derive(Debug, Clone)]
pub struct ValueEvent {
    /// The payload; resolved against the registered schema (records may be maps).
    pub value: Value,
    /// CloudEvents `type` (default: the product's first declared type).
    pub ty: Option<String>,
    /// CloudEvents `subject`.
    pub subject: Option<String>,
    /// Kafka key (`partitionkey`).
    pub key: Option<String>,
    /// Event time (default: now).
    pub time: Option<chrono::DateTime<Utc>>,
    /// W3C trace context (default: a new trace).
    pub traceparent: Option<String>,
}

/// Sends typed domain events; cheap to clone.
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Inner>,
}

struct Inner {
    kafka: FutureProducer,
    registry: Client,
    source: Option<String>,
    target: Target,
    dev_mode: bool,
    max_event_bytes: usize,
    /// Looked up once per event: a fast hash for a type id.
    bound: RwLock<FxHashMap<TypeId, Arc<Bound>>>,
    by_product: RwLock<HashMap<String, Arc<Bound>>>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer").finish_non_exhaustive()
    }
}

/// An event handed to the producer, not yet acknowledged.
pub struct Pending {
    delivery: DeliveryFuture,
    id: EventId,
    bound: Arc<Bound>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("id", &self.id)
            .field("topic", &self.bound.topic)
            .finish_non_exhaustive()
    }
}

impl Pending {
    /// Waits for the broker's acknowledgement.
    pub async fn acknowledged(self) -> Result<Delivery> {
        let topic = self.bound.topic.clone();
        match self.delivery.await {
            Ok(Ok(d)) => Ok(Delivery {
                id: self.id.to_string(),
                topic,
                partition: d.partition,
                offset: d.offset,
            }),
            Ok(Err((source, _))) => Err(Error::Delivery { topic, source }),
            Err(_) => Err(Error::Delivery {
                topic,
                source: KafkaError::Canceled,
            }),
        }
    }
}

impl Producer {
    /// A builder for a producer on `bootstrap` with the registry at `registry_url`.
    pub fn builder(bootstrap: &str, registry_url: &str) -> ProducerBuilder {
        ProducerBuilder::new(bootstrap, registry_url)
    }

    /// Checks `T` against the registered contract of `T::PRODUCT`: the schema resolves, and the
    /// type and source are the product's.
    pub async fn check<T: DomainEvent + 'static>(&self) -> Result<()> {
        self.bind::<T>().await.map(|_| ())
    }

    async fn bind<T: DomainEvent + 'static>(&self) -> Result<Arc<Bound>> {
        let key = TypeId::of::<T>();
        let cached = self
            .inner
            .bound
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&key)
            .cloned();
        if let Some(bound) = cached {
            if bound.claim_refresh() {
                self.refresh_in_background::<T>(bound.clone());
            }
            return Ok(bound);
        }
        let bound = Arc::new(self.resolve::<T>().await?);
        self.inner
            .bound
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(key, bound.clone());
        Ok(bound)
    }

    /// Reads the latest contract of `T`'s product again, off the sending path: events go on
    /// with `current` until the new one replaces it; if it cannot be read (or `T` no longer
    /// fits it), `current` stays and the next try is later.
    fn refresh_in_background<T: DomainEvent + 'static>(&self, current: Arc<Bound>) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            current.refresh_failed();
            return;
        };
        let producer = self.clone();
        runtime.spawn(async move {
            match producer.resolve::<T>().await {
                Ok(fresh) => {
                    producer
                        .inner
                        .bound
                        .write()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(TypeId::of::<T>(), Arc::new(fresh));
                }
                Err(error) => {
                    tracing::warn!(product = T::PRODUCT, %error, "cannot read the product's latest contract; going on with the one read before");
                    current.refresh_failed();
                }
            }
        });
    }

    async fn resolve<T: DomainEvent>(&self) -> Result<Bound> {
        let ours = T::get_schema();
        let bound = self
            .resolve_product(T::PRODUCT, Some((&ours, T::TYPE)))
            .await?;
        if let Some(why) = compat::cannot_read(&ours, &bound.contract.schema) {
            return Err(Error::SchemaMismatch {
                ty: std::any::type_name::<T>(),
                product: T::PRODUCT.to_owned(),
                schema_id: bound.schema_id,
                why,
            });
        }
        bound
            .contract
            .check_attributes(T::TYPE, &bound.source, Some(CONTENT_TYPE))
            .map_err(|violation| Error::Contract {
                product: T::PRODUCT.to_owned(),
                violation,
            })?;
        Ok(bound)
    }

    /// The registered contract of `product`; in dev mode, `ours` (a schema and a type) is
    /// registered when the product has none.
    async fn resolve_product(&self, product: &str, ours: Option<(&Schema, &str)>) -> Result<Bound> {
        let registry = &self.inner.registry;
        let subject = format!("{product}-value");
        let body = match (registry.version(&subject, VersionId::Latest).await, ours) {
            (Ok(body), _) => body,
            (Err(e), Some((schema, ty))) if e.code() == Some(40401) && self.inner.dev_mode => {
                let request = SchemaRequest {
                    schema: Some(serde_json::to_string(schema).unwrap_or_default()),
                    metadata: Some(serde_json::json!({"properties": {
                        "cloudevents.types": ty,
                        "cloudevents.source": self.inner.source.clone().unwrap_or_else(|| "/".into()),
                    }})),
                    ..SchemaRequest::default()
                };
                registry.register(&subject, &request).await?;
                registry.version(&subject, VersionId::Latest).await?
            }
            (Err(e), _) if e.code() == Some(40401) => {
                return Err(Error::UnknownProduct {
                    product: product.to_owned(),
                    registered: registry
                        .subjects()
                        .await
                        .map(|s| {
                            s.iter()
                                .filter_map(|s| s.strip_suffix("-value"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        })
                        .unwrap_or_else(|e| format!("(cannot list: {e})")),
                })
            }
            (Err(e), _) => return Err(e.into()),
        };
        let schema_id = body.id.unwrap_or_default();
        let schema = registry.schema(schema_id).await?;
        let contract = Contract::from_registered(
            product,
            schema,
            body.metadata.as_ref(),
            body.rule_set.as_ref(),
        )
        .map_err(|e| Error::Contract {
            product: product.to_owned(),
            violation: Violation::RuleError {
                rule: "(contract)".into(),
                message: e.to_string(),
            },
        })?;
        Bound::new(
            contract,
            schema_id,
            registry.url(),
            self.inner.source.as_deref(),
            self.inner.target,
        )
    }

    /// Hands `event` to the queue, waiting while it is full.
    async fn hand_over(&self, bound: &Arc<Bound>, event: Framed<'_>) -> Result<Pending> {
        let id = event.id.clone();
        let record = event.outgoing();
        let delivery = send(
            &self.inner.kafka,
            &bound.topic,
            record.key.as_deref(),
            record.headers,
            record.payload.as_deref(),
        )
        .await?;
        // serve the delivery reports already in, here rather than only on rdkafka's polling
        // thread: their messages are freed by the thread that allocates the next ones (glibc
        // recycles them without taking its arena lock), and a batch of reports costs one
        // wake-up less. The polling thread still serves them when no event is being sent.
        // Without it, `cargo bench --bench sdk` (in-memory broker) gives the SDK a median of
        // about 0.72x raw rdkafka instead of about 0.85x.
        self.inner.kafka.poll(Duration::ZERO);
        Ok(Pending {
            delivery,
            id,
            bound: bound.clone(),
        })
    }

    /// Checks and encodes an untyped event (a value of the product's registered schema, as
    /// tools like `meshline produce` have) and hands it to the queue.
    pub async fn enqueue_value(&self, product: &str, event: ValueEvent) -> Result<Pending> {
        let cached = self
            .inner
            .by_product
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(product)
            .cloned();
        let bound = match cached {
            Some(b) => b,
            None => {
                let b = Arc::new(self.resolve_product(product, None).await?);
                self.inner
                    .by_product
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(product.to_owned(), b.clone());
                b
            }
        };
        let ty = event
            .ty
            .clone()
            .or_else(|| bound.contract.types.first().cloned())
            .unwrap_or_default();
        bound
            .contract
            .check_attributes(&ty, &bound.source, Some(CONTENT_TYPE))
            .map_err(|violation| Error::Contract {
                product: product.to_owned(),
                violation,
            })?;
        let schema = &bound.contract.schema;
        let value = event
            .value
            .resolve(schema)
            .map_err(|e| encode_error(product, e))?;
        let mut payload = Vec::new();
        wire::encode_header(bound.schema_id, &mut payload);
        GenericDatumWriter::builder(schema)
            .build()
            .and_then(|w| w.write_value_ref(&mut payload, &value))
            .map_err(|e| encode_error(product, e))?;
        let attributes = Attributes {
            id: None,
            ty: &ty,
            subject: event.subject,
            key: event.key,
            time: event.time,
            traceparent: event.traceparent,
        };
        let event = bound.frame(
            attributes,
            payload,
            Some(&value),
            self.inner.max_event_bytes,
        )?;
        self.hand_over(&bound, event).await
    }

    /// Checks and encodes `event` and hands it to the producer's queue (waiting while the queue
    /// is full); the returned [`Pending`] resolves when the broker acknowledges it.
    pub async fn enqueue<T: DomainEvent + 'static>(&self, event: &T) -> Result<Pending> {
        let bound = self.bind::<T>().await?;
        let event = bound.encode(event, self.inner.max_event_bytes)?;
        self.hand_over(&bound, event).await
    }

    /// The Kafka record `event` would be sent as (checked and encoded, not sent).
    pub async fn record_for<T: DomainEvent + 'static>(&self, event: &T) -> Result<Record> {
        let bound = self.bind::<T>().await?;
        let event = bound.encode(event, self.inner.max_event_bytes)?;
        Record::from_event(event).map_err(|e| Error::Encode {
            product: bound.contract.product.clone(),
            message: e.to_string(),
        })
    }

    /// Sends one event and returns once the broker acknowledged it.
    pub async fn send<T: DomainEvent + 'static>(&self, event: &T) -> Result<Delivery> {
        self.enqueue(event).await?.acknowledged().await
    }

    /// Sends many events, keeping them in flight together; returns once every one was
    /// acknowledged, or the first error (after waiting for the others).
    pub async fn send_batch<T: DomainEvent + 'static>(
        &self,
        events: &[T],
    ) -> Result<Vec<Delivery>> {
        use tracing::Instrument as _;
        let span = tracing::info_span!("sdk_batch", product = T::PRODUCT, events = events.len());
        async {
            let mut pending = Vec::with_capacity(events.len());
            for event in events {
                pending.push(self.enqueue(event).await?);
            }
            let mut deliveries = Vec::with_capacity(pending.len());
            let mut first_error = None;
            for p in pending {
                match p.acknowledged().await {
                    Ok(d) => deliveries.push(d),
                    Err(e) => {
                        first_error.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = &first_error {
                tracing::warn!(error = %e, "batch not fully acknowledged");
            }
            first_error.map_or(Ok(deliveries), Err)
        }
        .instrument(span)
        .await
    }

    /// Waits until every queued event is acknowledged (or `timeout`).
    pub fn flush(&self, timeout: Duration) -> Result<()> {
        self.inner.kafka.flush(timeout)?;
        Ok(())
    }
}

/// Hands a record to `producer` without blocking the runtime, backing off while its queue is
/// full (never dropping).
pub async fn produce(
    producer: &FutureProducer,
    topic: &str,
    record: &Record,
) -> Result<DeliveryFuture, KafkaError> {
    send(
        producer,
        topic,
        record.key.as_deref(),
        Some(record.owned_headers()),
        record.payload.as_deref(),
    )
    .await
}

/// [`produce`], from the record's parts.
async fn send(
    producer: &FutureProducer,
    topic: &str,
    key: Option<&[u8]>,
    headers: Option<OwnedHeaders>,
    payload: Option<&[u8]>,
) -> Result<DeliveryFuture, KafkaError> {
    let mut record = FutureRecord::<[u8], [u8]>::to(topic);
    if let Some(headers) = headers {
        record = record.headers(headers);
    }
    if let Some(key) = key {
        record = record.key(key);
    }
    if let Some(payload) = payload {
        record = record.payload(payload);
    }
    kafka::while_queue_full_async(producer, record, None, FutureProducer::send_result).await
}
