//! The registry service: the state of the `_schemas` topic, kept current by a reader task, and
//! writes appended to it.
//!
//! Delivery: every write is appended with an idempotent, `acks=all` producer and answered only
//! once this instance has read it back and applied it, so an answered write is durable and
//! visible to every instance that has caught up. Writes on one instance are serialized; writes
//! on several instances are ordered by the log, and a record that lost a race is refused by
//! every instance alike ([`State::apply`]) and planned again. Reads answer from the local state,
//! which lags the log by the reader's fetch interval (tens of milliseconds).
//!
//! Limits: `_schemas` has one partition (the log order is the order of writes). Readiness waits
//! for the high watermark, so a broker that reports a wrong one (tansu's `memory://`) shortens
//! the initial catch-up; use `sqlite:` storage, as `meshline up` does.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, RwLock, RwLockReadGuard},
    time::Duration,
};

use rdkafka::{
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    consumer::{BaseConsumer, Consumer, StreamConsumer},
    error::KafkaError,
    message::Message,
    producer::{FutureProducer, FutureRecord},
    types::RDKafkaErrorCode,
    Offset, TopicPartitionList,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::{
    api::{ApiError, Result},
    log::{self, Entry},
    state::{Plan, State, SubjectConfig},
};
use crate::broker;

/// How long a write may take before it is answered with 50002.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// How often a write is planned again after losing a race.
const WRITE_ATTEMPTS: usize = 16;

/// Errors starting the registry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The topic cannot be created or read.
    #[error("schema registry topic `_schemas`: {0}; check that Kafka is reachable at the bootstrap address")]
    Kafka(#[from] KafkaError),
    /// The state could not be read up to the end of the topic.
    #[error("schema registry: {0}")]
    CatchUp(ApiError),
}

/// A running registry; cheap to clone.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

struct Inner {
    state: RwLock<State>,
    producer: FutureProducer,
    watermarks: BaseConsumer,
    /// Offset of the next record to apply.
    applied: watch::Receiver<i64>,
    /// Records refused by [`State::apply`], by offset (recent ones only).
    refused: Mutex<HashMap<i64, String>>,
    writes: tokio::sync::Mutex<()>,
    reader: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The Kafka cluster `_schemas` lives in (`GET /v1/metadata/id`).
    cluster_id: String,
    /// The registry's topic.
    topic: String,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry").finish_non_exhaustive()
    }
}

/// Where a registry keeps its state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The topic (Confluent's registry uses `_schemas` too: give meshline's another name on a
    /// cluster that already runs one).
    pub topic: String,
    /// The consumer group the registry reads its topic in (it commits nothing).
    pub group: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            topic: log::TOPIC.to_owned(),
            group: "meshline-registry".to_owned(),
        }
    }
}

impl Registry {
    /// [`Registry::start_with`] the default [`Settings`].
    pub async fn start(bootstrap: &str, stop: CancellationToken) -> Result<Self, Error> {
        Self::start_with(bootstrap, &Settings::default(), stop).await
    }

    /// Creates the registry's topic if needed (one partition, compacted, the broker's default
    /// replication), reads it to its end, and keeps reading it until `stop`.
    pub async fn start_with(
        bootstrap: &str,
        settings: &Settings,
        stop: CancellationToken,
    ) -> Result<Self, Error> {
        create_topic(bootstrap, &settings.topic, &STATE_TOPIC).await?;
        create_topic(
            bootstrap,
            &super::audit::topic_of(&settings.topic),
            &AUDIT_TOPIC,
        )
        .await?;
        let mut producer_config = broker::producer_config(bootstrap);
        producer_config.set("linger.ms", "0");
        let producer: FutureProducer = producer_config.create()?;
        let watermarks: BaseConsumer = broker::client_config(bootstrap).create()?;
        let consumer: StreamConsumer = broker::client_config(bootstrap)
            .set("group.id", &settings.group)
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .set("fetch.wait.max.ms", "20")
            .create()?;
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(&settings.topic, 0, Offset::Beginning)?;
        consumer.assign(&assignment)?;
        let (applied_tx, applied) = watch::channel(0);
        let metadata_config = broker::client_config(bootstrap);
        let cluster_id = tokio::task::spawn_blocking(move || {
            let client: BaseConsumer = metadata_config.create().ok()?;
            client.client().fetch_cluster_id(Duration::from_secs(10))
        })
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
        let registry = Self {
            inner: Arc::new(Inner {
                state: RwLock::new(State::default()),
                producer,
                watermarks,
                applied,
                refused: Mutex::new(HashMap::new()),
                writes: tokio::sync::Mutex::new(()),
                reader: Mutex::new(None),
                cluster_id,
                topic: settings.topic.clone(),
            }),
        };
        let reader = tokio::spawn(read_log(registry.inner.clone(), consumer, applied_tx, stop));
        *registry
            .inner
            .reader
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(reader);
        registry.catch_up().await.map_err(Error::CatchUp)?;
        Ok(registry)
    }

    /// Waits until the reader of `_schemas` has stopped (after the stop token fired), so the
    /// registry's Kafka clients are gone once the last handle is dropped.
    pub async fn stopped(&self) {
        let reader = self
            .inner
            .reader
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(reader) = reader {
            reader.await.ok();
        }
    }

    /// The current state, for reads. Do not hold it across an `.await`.
    pub fn state(&self) -> RwLockReadGuard<'_, State> {
        // A panic while applying cannot leave the state half-changed in a way reads care
        // about more than an outage would; keep serving.
        self.inner
            .state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The id of the Kafka cluster the registry keeps its state in (empty if the broker did not
    /// say).
    pub fn cluster_id(&self) -> &str {
        &self.inner.cluster_id
    }

    /// Waits until every record in the topic when called has been applied.
    pub async fn catch_up(&self) -> Result<()> {
        let inner = self.inner.clone();
        let high = tokio::task::spawn_blocking(move || {
            // a topic just created is not in every broker's metadata at once (Apache Kafka):
            // an unknown partition is waited for, as long as a write may take
            let deadline = std::time::Instant::now() + WRITE_TIMEOUT;
            loop {
                let read = broker::retry_transient(
                    "reading the registry topic's end",
                    WRITE_TIMEOUT,
                    || {
                        inner
                            .watermarks
                            .fetch_watermarks(&inner.topic, 0, Duration::from_secs(10))
                            .map(|(_, high)| high)
                    },
                );
                match read {
                    Err(e)
                        if e.rdkafka_error_code() == Some(RDKafkaErrorCode::UnknownPartition)
                            && std::time::Instant::now() < deadline =>
                    {
                        std::thread::sleep(Duration::from_millis(200));
                    }
                    read => break read,
                }
            }
        })
        .await
        .map_err(ApiError::store)?
        .map_err(ApiError::store)?;
        self.applied_through(high).await
    }

    async fn applied_through(&self, next: i64) -> Result<()> {
        let mut applied = self.inner.applied.clone();
        tokio::time::timeout(WRITE_TIMEOUT, applied.wait_for(|&a| a >= next))
            .await
            .map_err(|_| ApiError::timeout(format!("reading `{}` back", self.inner.topic)))?
            .map_err(|_| ApiError::store("the registry is stopping"))?;
        Ok(())
    }

    /// Plans a write against the caught-up state, appends it, and answers once the log has
    /// accepted it; planned again if another writer got there first.
    pub async fn write<T>(&self, plan: impl Fn(&State) -> Result<Plan<T>>) -> Result<T> {
        let _serialized = self.inner.writes.lock().await;
        for _ in 0..WRITE_ATTEMPTS {
            self.catch_up().await?;
            let Plan { entries, answer } = cpu(|| plan(&self.state()))?;
            if entries.is_empty() {
                return Ok(answer);
            }
            let mut offsets = Vec::with_capacity(entries.len());
            for entry in &entries {
                offsets.push(self.append(entry).await?);
            }
            let last = offsets.iter().copied().max().unwrap_or(0);
            self.applied_through(last + 1).await?;
            let refused: Vec<String> = {
                let mut refused = self
                    .inner
                    .refused
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                offsets.iter().filter_map(|o| refused.remove(o)).collect()
            };
            if refused.is_empty() {
                return Ok(answer);
            }
            tracing::debug!(
                ?refused,
                "a concurrent write got there first; planning again"
            );
        }
        Err(ApiError::store(format!(
            "the write lost {WRITE_ATTEMPTS} races with concurrent writers; retry"
        )))
    }

    /// Registers a product's schema with its contract (rules as `ruleSet`, owner and SLOs as
    /// `metadata`) under the product's compatibility level, and declares the subjects of its
    /// ingress and dead-letter topics aliases of the product's subject (so a Confluent
    /// serializer with its default subject naming finds the product's schema whichever of the
    /// three topics it writes to); answers the schema id.
    pub async fn register_product(&self, product: &crate::product::Product) -> Result<u32> {
        let subject = product.subject();
        let level = SubjectConfig {
            compatibility: Some(product.descriptor.compatibility),
            ..SubjectConfig::default()
        };
        self.write(|s| s.plan_set_config(Some(&subject), &level))
            .await?;
        for alias in super::contract::aliases(product) {
            let update = SubjectConfig {
                alias: Some(subject.clone()),
                ..SubjectConfig::default()
            };
            self.write(|s| {
                // written once: a restart finds it set and writes nothing
                if s.subject_config(Some(&alias))
                    .and_then(|c| c.alias.as_deref())
                    == Some(subject.as_str())
                {
                    return Ok(Plan {
                        entries: Vec::new(),
                        answer: update.clone(),
                    });
                }
                s.plan_set_config(Some(&alias), &update)
            })
            .await?;
        }
        let request = super::contract::registration(product);
        self.write(|s| s.plan_register(&subject, &request)).await
    }

    /// Records `event` in the audit trail (its topic and the log); a failure to write it is
    /// logged, never answered: the write it records has happened or been refused already.
    pub async fn audit(&self, event: &super::audit::Event) {
        event.log();
        let Ok(value) = serde_json::to_vec(event) else {
            return;
        };
        let topic = super::audit::topic_of(&self.inner.topic);
        let key = event.subject.clone().unwrap_or_default();
        let record = FutureRecord::to(&topic)
            .key(key.as_bytes())
            .payload(&value)
            .partition(0);
        if let Err((e, _)) = self.inner.producer.send(record, WRITE_TIMEOUT).await {
            tracing::error!(error = %e, topic, "cannot write to the registry's audit trail");
        }
    }

    async fn append(&self, entry: &Entry) -> Result<i64> {
        let (key, value) = log::encode(entry);
        let mut record = FutureRecord::<Vec<u8>, Vec<u8>>::to(&self.inner.topic)
            .key(&key)
            .partition(0);
        if let Some(value) = &value {
            record = record.payload(value);
        }
        let delivery = self
            .inner
            .producer
            .send(record, WRITE_TIMEOUT)
            .await
            .map_err(|(e, _)| ApiError::store(e))?;
        Ok(delivery.offset)
    }
}

/// Runs `work` (parsing, compiling or comparing schemas: bounded by `meshline_core::limits`,
/// but milliseconds of CPU) so that it holds up no other request: on a multi-threaded runtime its
/// worker hands its other tasks over first.
pub(crate) fn cpu<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(work),
        _ => work(),
    }
}

/// The state's topic: compacted, and never compacted before every instance has had time to
/// read a record.
const STATE_TOPIC: [(&str, &str); 2] = [
    ("cleanup.policy", "compact"),
    ("min.compaction.lag.ms", "3600000"),
];

/// The audit trail's topic: every record kept.
const AUDIT_TOPIC: [(&str, &str); 2] = [("cleanup.policy", "delete"), ("retention.ms", "-1")];

async fn create_topic(bootstrap: &str, name: &str, config: &[(&str, &str)]) -> Result<(), Error> {
    let admin: AdminClient<DefaultClientContext> = broker::client_config(bootstrap).create()?;
    // -1: the broker's `default.replication.factor`
    let topic = config.iter().fold(
        NewTopic::new(name, 1, TopicReplication::Fixed(-1)),
        |topic, (key, value)| topic.set(key, value),
    );
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics([&topic], &options).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(Error::Kafka(KafkaError::AdminOp(code))),
        }
    }
    Ok(())
}

/// Applies every record of `_schemas`, in order, until `stop`.
async fn read_log(
    inner: Arc<Inner>,
    consumer: StreamConsumer,
    applied: watch::Sender<i64>,
    stop: CancellationToken,
) {
    loop {
        let message = tokio::select! {
            _ = stop.cancelled() => return,
            m = consumer.recv() => m,
        };
        let message = match message {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, topic = inner.topic, "cannot read the registry topic");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let offset = message.offset();
        let outcome =
            match log::decode(offset, message.key().unwrap_or_default(), message.payload()) {
                Ok(entry) => inner
                    .state
                    .write()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .apply(entry),
                Err(e) => Err(e.to_string()),
            };
        if let Err(why) = outcome {
            tracing::debug!(offset, %why, "record refused");
            let mut refused = inner
                .refused
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if refused.len() > 10_000 {
                refused.clear();
            }
            refused.insert(offset, why);
        }
        applied.send_replace(offset + 1);
    }
}
