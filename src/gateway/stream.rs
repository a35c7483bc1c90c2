//! The stream gateway: one consumer group over every product's `.ingress` topic; each record is
//! checked against its product's contract and written to partition *p* of the product topic or
//! of its dead-letter topic, *p* being its ingress partition.
//!
//! **Delivery guarantee: exactly once**, on every Kafka-API broker, for crashes (`kill -9`) and
//! rebalances:
//! - the producer is idempotent (no duplicates from retries) and writes each partition in order;
//! - every output carries its ingress topic, partition and offset in headers;
//! - offsets are committed only after every output before them was acknowledged: a checkpoint
//!   seals a batch, whose offsets commit once its outputs are all acknowledged (in batch order),
//!   while the next batch is written;
//! - when the gateway is assigned a partition it starts at the committed offset and skips the
//!   offsets whose outputs it finds at the tails of the two output partitions (see [`resume`]);
//! - when a partition is revoked, the gateway waits for every output in flight and commits
//!   before giving it up, so the next owner finds them.
//!
//! Limits: without transactions, a *zombie* (a gateway that lost its group membership but is
//! still writing, e.g. after a long pause) can write after the new owner read the tails: its
//! outputs can then be duplicated. [`DeliveryMode::Transactional`] closes that hole where the
//! broker supports transactions: outputs and offsets commit in one transaction per checkpoint,
//! and the transactional id fences the zombie.
//!
//! [`resume`]: super::resume

use std::{
    collections::{BTreeSet, VecDeque},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Condvar, Mutex,
    },
    time::{Duration, Instant},
};

use rdkafka::{
    consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext},
    error::KafkaError,
    message::{BorrowedMessage, Message, OwnedHeaders},
    producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer},
    types::{RDKafkaErrorCode, RDKafkaRespErr},
    ClientContext, Offset, TopicPartitionList,
};
use rustc_hash::FxHashMap;
use tokio_util::sync::CancellationToken;

use super::{
    contracts::Contracts,
    metrics::{Metrics, Outcome, ProductMetrics},
    Error, Result,
};
use crate::{
    binding::kafka::{header_time, Record, RecordView, TIME_HEADER},
    broker,
    contract::Reason,
    outputs::{
        headers::{self, Source},
        resume,
    },
    product::OnFailure,
    product::Topics,
};
use meshline_sdk::kafka::{Consumed, RecordExt as _};

/// What becomes of one ingress record.
#[derive(Debug, Clone, Copy)]
enum Fate {
    /// Written to the product topic.
    Output(Outcome),
    /// Written to the dead-letter topic, for this reason.
    Dead(Reason),
}
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

/// How often the consumer lag gauge is refreshed.
const LAG_INTERVAL: Duration = Duration::from_secs(5);

/// An ingress partition (the topic shared, not copied per record).
type PartitionKey = (Arc<str>, i32);

/// Batches of outputs in flight at most: the one being written and those sealed at a
/// checkpoint, waiting for their acknowledgements.
const BATCHES: usize = 8;

/// How long a one-time call to the broker (committed offsets, an output's tail) is tried again
/// while the broker is busy before the gateway gives up and restarts.
pub(crate) const PATIENCE: Duration = Duration::from_secs(120);

/// The gateway producer's delivery reports, counted per batch. A batch's offsets are committed
/// once all of its outputs are acknowledged, so a report only has to be counted and say whether
/// its output failed: no future, channel or allocation per output.
struct Deliveries {
    /// Reports so far, by batch number modulo [`BATCHES`].
    reported: [AtomicU64; BATCHES],
    /// Whether the gateway waits for reports (then each report signals `reached`).
    waiting: AtomicBool,
    /// The first output that was not delivered since the producer was created (the gateway
    /// then stops, and its restart resumes after the outputs found at the tails).
    failed: Mutex<Option<(KafkaError, String)>>,
    /// Signalled on each report while `waiting`.
    reached: Condvar,
}

impl Default for Deliveries {
    fn default() -> Self {
        Self {
            reported: std::array::from_fn(|_| AtomicU64::new(0)),
            waiting: AtomicBool::new(false),
            failed: Mutex::default(),
            reached: Condvar::new(),
        }
    }
}

impl Deliveries {
    fn failed(&self) -> std::sync::MutexGuard<'_, Option<(KafkaError, String)>> {
        self.failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn slot(&self, batch: u64) -> &AtomicU64 {
        &self.reported[(batch % BATCHES as u64) as usize]
    }

    /// Whether every output of `batch` has been reported.
    fn done(&self, batch: &Batch) -> bool {
        self.slot(batch.id).load(Ordering::SeqCst) >= batch.sent
    }

    /// Waits until every output of `batch` has been reported (outputs never time out: each
    /// gets its report).
    fn wait(&self, batch: &Batch) {
        let mut failed = self.failed();
        self.waiting.store(true, Ordering::SeqCst);
        while !self.done(batch) {
            // a report signals under this lock; the timeout only bounds a missed signal
            failed = self
                .reached
                .wait_timeout(failed, Duration::from_millis(100))
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        self.waiting.store(false, Ordering::SeqCst);
    }
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    /// The output's batch number.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, batch: usize) {
        if let Err((error, message)) = result {
            self.failed().get_or_insert_with(|| {
                let at = format!("{} partition {}", message.topic(), message.partition());
                (error.clone(), at)
            });
        }
        self.slot(batch as u64).fetch_add(1, Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) {
            let _waiting = self.failed();
            self.reached.notify_all();
        }
    }
}

/// The outputs written between two checkpoints, and the offsets their acknowledgement lets
/// commit.
#[derive(Default)]
struct Batch {
    /// Its number (the delivery reports' opaque).
    id: u64,
    /// Outputs handed to the producer.
    sent: u64,
    /// Next offset to commit, per ingress partition.
    positions: FxHashMap<PartitionKey, i64>,
    /// Event times (ms) to observe end-to-end latency once acknowledged, per product.
    times: Vec<(Arc<Route>, i64)>,
}

/// Outputs in flight.
#[derive(Default)]
struct Pending {
    /// The batch being written.
    current: Batch,
    /// Batches sealed at a checkpoint, oldest first, until all their outputs are acknowledged.
    sealed: VecDeque<Batch>,
    /// Ingress offsets already written by an earlier owner, per partition.
    written: FxHashMap<PartitionKey, BTreeSet<i64>>,
    /// Records of the current batch (skipped ones too).
    records: usize,
    transaction_open: bool,
    /// An error from a rebalance callback, reported by the next poll.
    failed: Option<Error>,
}

/// Where one ingress topic's records go, and the metrics they count in.
struct Route {
    /// The ingress topic.
    ingress: Arc<str>,
    product: String,
    topics: Topics,
    metrics: ProductMetrics,
}

struct Gateway {
    config: StreamConfig,
    contracts: Arc<Contracts>,
    metrics: Metrics,
    /// By ingress topic.
    routes: FxHashMap<String, Arc<Route>>,
    runtime: tokio::runtime::Handle,
    producer: ThreadedProducer<Deliveries>,
    reader: BaseConsumer,
    pending: Mutex<Pending>,
}

impl ClientContext for Gateway {}

impl ConsumerContext for Gateway {
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let result = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => self
                .assign(consumer, tpl)
                .map(|()| self.metrics.partitions_assigned(tpl.count())),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.metrics.partitions_revoked(tpl.count());
                self.revoke(consumer, tpl)
            }
            other => {
                tracing::warn!(error = ?other, "rebalance error");
                consumer.unassign().map_err(|source| Error::Kafka {
                    context: "giving up partitions after a rebalance error".into(),
                    source,
                })
            }
        };
        if let Err(e) = result {
            // consume nothing from a partition whose resume point is unknown
            consumer.unassign().ok();
            self.metrics.partitions_unassigned();
            self.lock().failed = Some(e);
        }
    }
}

impl Gateway {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Picks each assigned partition's start from its committed offset and its outputs' tails.
    fn assign(&self, consumer: &BaseConsumer<Self>, tpl: &mut TopicPartitionList) -> Result<()> {
        let kafka = |context: &str| {
            let context = context.to_owned();
            move |source| Error::Kafka { context, source }
        };
        let committed = broker::retry_transient("reading committed offsets", PATIENCE, || {
            consumer.committed_offsets(tpl.clone(), Duration::from_secs(30))
        })
        .map_err(kafka(
            "reading the committed offsets of assigned partitions",
        ))?;
        let mut starts = Vec::new();
        for element in committed.elements() {
            let (topic, partition) = (element.topic().to_owned(), element.partition());
            let Some(product) = self.contracts.product_of_ingress(&topic) else {
                continue;
            };
            let committed = match element.offset() {
                Offset::Offset(n) => Some(n),
                _ => None,
            };
            let topics = Topics::of(product);
            let resume = resume::resume(
                &self.reader,
                &[&topics.product, &topics.dlq],
                partition,
                &topic,
                committed,
            )?;
            tracing::info!(
                topic, partition, ?committed, start = ?resume.start, skipped = resume.written.len(),
                "resuming ingress partition"
            );
            // the lag gauge exists from the assignment on (report_lag refreshes it)
            if let Ok((low, high)) =
                self.reader
                    .fetch_watermarks(&topic, partition, Duration::from_secs(1))
            {
                let from = resume.start.unwrap_or(low).max(low);
                self.metrics.lag(product, partition, (high - from).max(0));
            }
            let start = resume.start.map_or(Offset::Beginning, Offset::Offset);
            starts.push((topic.clone(), partition, start));
            self.lock()
                .written
                .insert((Arc::from(topic.as_str()), partition), resume.written);
        }
        for (topic, partition, start) in starts {
            tpl.set_partition_offset(&topic, partition, start)
                .map_err(kafka("setting start offsets"))?;
        }
        consumer
            .assign(tpl)
            .map_err(kafka("assigning ingress partitions"))
    }

    /// Waits for every output in flight and commits, then gives the partitions up.
    fn revoke(&self, consumer: &BaseConsumer<Self>, tpl: &TopicPartitionList) -> Result<()> {
        let result = self.checkpoint(consumer, CommitMode::Sync);
        {
            let mut pending = self.lock();
            for element in tpl.elements() {
                let key = (Arc::from(element.topic()), element.partition());
                pending.written.remove(&key);
                pending.current.positions.remove(&key);
                if let Some(product) = self.contracts.product_of_ingress(element.topic()) {
                    self.metrics.lag_revoked(product, element.partition());
                }
            }
        }
        consumer.unassign().map_err(|source| Error::Kafka {
            context: "giving up revoked partitions".into(),
            source,
        })?;
        result
    }

    /// Checks one ingress record and hands its output to the producer.
    fn handle(&self, message: &BorrowedMessage<'_>) -> Result<()> {
        let topic = message.topic();
        let (partition, offset) = (message.partition(), message.offset());
        let route = self
            .routes
            .get(topic)
            .ok_or_else(|| {
                Error::Unexpected(format!("a record from {topic}, not an ingress topic"))
            })?
            .clone();
        let key = (route.ingress.clone(), partition);
        // the batch cannot change before the output is sent: only this thread seals
        let batch = {
            let mut pending = self.lock();
            let already = pending
                .written
                .get_mut(&key)
                .is_some_and(|written| written.remove(&offset));
            if already {
                route.metrics.event(Outcome::Duplicate);
                pending.current.positions.insert(key, offset + 1);
                return Ok(());
            }
            pending.current.id
        };
        let record = Consumed::new(message);
        let started = Instant::now();
        let verdict = self.check(&route.product, &record)?;
        route.metrics.validated(started.elapsed().as_secs_f64());
        let source = Source {
            topic,
            partition,
            offset,
        };
        // the check parsed an accepted event's time; a refused one's may be missing or bad
        let time = match &verdict {
            Ok(time) => *time,
            Err(_) => record.header(TIME_HEADER).and_then(header_time),
        };
        let topics = &route.topics;
        let (out_topic, output, outcome) = match &verdict {
            Ok(_) => (
                &topics.product,
                headers::accepted_headers(record.headers(), source),
                Fate::Output(Outcome::Accepted),
            ),
            Err(rejection) if rejection.on_failure == OnFailure::None => (
                &topics.product,
                headers::accepted_headers(record.headers(), source),
                Fate::Output(Outcome::Warned),
            ),
            Err(rejection) => {
                tracing::debug!(
                    product = %route.product,
                    reason = rejection.reason.code(),
                    partition,
                    offset,
                    traceparent = record
                        .header("ce_traceparent")
                        .and_then(|t| std::str::from_utf8(t).ok()),
                    "dead-lettered"
                );
                let dead = headers::dead_letter(Record::from_message(message), source, rejection);
                (
                    &topics.dlq,
                    dead.owned_headers(),
                    Fate::Dead(rejection.reason),
                )
            }
        };
        self.begin_transaction()?;
        let sent = self.send(
            out_topic,
            partition,
            message.key(),
            message.payload(),
            output,
            batch,
        );
        let (sent, outcome) = match sent {
            // the record cannot be written as it is: not forwarding it would stop its partition
            // for good, so its dead letter goes without the payload, which stays in the ingress
            // topic at the offset the letter names
            Err(KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge)) => {
                let size =
                    message.payload().map_or(0, <[u8]>::len) + message.key().map_or(0, <[u8]>::len);
                let rejection = crate::contract::Rejection::new(
                    Reason::TooLarge,
                    format!(
                        "the record ({size} bytes of key and payload) with its headers is over the producer's message.max.bytes; its payload stays in {} partition {partition} offset {offset}",
                        message.topic()
                    ),
                );
                let dead = headers::dead_letter(Record::from_message(message), source, &rejection);
                let sent = self.send(
                    &topics.dlq,
                    partition,
                    message.key(),
                    None,
                    dead.owned_headers(),
                    batch,
                );
                (sent, Fate::Dead(Reason::TooLarge))
            }
            other => (other, outcome),
        };
        sent.map_err(|source| Error::Kafka {
            context: format!(
                "writing the output of {} partition {partition} offset {offset}",
                message.topic()
            ),
            source,
        })?;
        match outcome {
            Fate::Dead(reason) => {
                route.metrics.event(Outcome::DeadLettered);
                route.metrics.dead_letter(reason.code());
            }
            Fate::Output(outcome) => route.metrics.event(outcome),
        }
        let mut pending = self.lock();
        pending.records += 1;
        let current = &mut pending.current;
        current.sent += 1;
        current.positions.insert(key, offset + 1);
        if let Some(time) = time {
            current.times.push((route, time));
        }
        drop(pending);
        Ok(())
    }

    /// Hands one output to the producer, waiting while its queue is full.
    fn send(
        &self,
        topic: &str,
        partition: i32,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: OwnedHeaders,
        batch: u64,
    ) -> std::result::Result<(), KafkaError> {
        let mut record = BaseRecord::<[u8], [u8], usize>::with_opaque_to(topic, batch as usize)
            .partition(partition)
            .headers(headers);
        record.key = key;
        record.payload = payload;
        broker::while_queue_full(&self.producer, record, ThreadedProducer::send)
    }

    /// The contract's verdict (an accepted event's time, epoch ms); an unknown schema id first refreshes the product's contract
    /// from the registry. An unreachable registry is an error (the gateway restarts and the
    /// record waits) until it has been unreachable for the contracts' schema wait: then the
    /// record goes to the dead-letter topic as `schema_unavailable`.
    fn check(
        &self,
        product: &str,
        record: &impl RecordView,
    ) -> Result<std::result::Result<Option<i64>, crate::contract::Rejection>> {
        let registered = self
            .contracts
            .get(product)
            .ok_or_else(|| Error::Unexpected(format!("no contract loaded for {product}")))?;
        let verdict = registered
            .contract
            .check_record(record, |id| registered.schema(id));
        match verdict {
            Err(rejection) if rejection.reason == crate::contract::Reason::UnknownSchema => {
                let refreshed = match self.runtime.block_on(self.contracts.refresh(product)) {
                    Ok(refreshed) => refreshed,
                    Err(e) => {
                        let (failing, given_up) = self.contracts.refresh_failed(product);
                        if !given_up {
                            return Err(e);
                        }
                        return Ok(Err(crate::contract::Rejection::new(
                            crate::contract::Reason::SchemaUnavailable,
                            format!(
                                "{}; the registry has been unreachable for {}: {e}",
                                rejection.message,
                                humantime::format_duration(Duration::from_secs(failing.as_secs()))
                            ),
                        )));
                    }
                };
                Ok(match refreshed {
                    Some(fresh) => fresh
                        .contract
                        .check_record(record, |id| fresh.schema(id))
                        .map(|accepted| accepted.time),
                    None => Err(rejection),
                })
            }
            other => Ok(other.map(|accepted| accepted.time)),
        }
    }

    fn begin_transaction(&self) -> Result<()> {
        if !matches!(self.config.mode, DeliveryMode::Transactional { .. }) {
            return Ok(());
        }
        let mut pending = self.lock();
        if !pending.transaction_open {
            self.producer
                .begin_transaction()
                .map_err(|source| Error::Kafka {
                    context: "beginning a transaction".into(),
                    source,
                })?;
            pending.transaction_open = true;
            self.metrics.transactions_in_flight(1);
        }
        Ok(())
    }

    /// Sets the lag gauge of every assigned partition (one watermark request each).
    fn report_lag(&self, consumer: &BaseConsumer<Self>) {
        let Ok(positions) = consumer.position() else {
            return;
        };
        for element in positions.elements() {
            let (topic, partition) = (element.topic(), element.partition());
            let (Some(product), Offset::Offset(position)) =
                (self.contracts.product_of_ingress(topic), element.offset())
            else {
                continue;
            };
            // the tail reader's connection: the consumer's own is busy with its fetches
            if let Ok((_, high)) =
                self.reader
                    .fetch_watermarks(topic, partition, Duration::from_secs(1))
            {
                self.metrics
                    .lag(product, partition, (high - position).max(0));
            }
        }
    }

    fn due(&self, last: Instant) -> bool {
        let pending = self.lock();
        pending.records >= self.config.checkpoint_records
            || (!pending.current.positions.is_empty()
                && last.elapsed() >= self.config.checkpoint_interval)
    }

    /// Seals the current batch at a checkpoint: its offsets are committed once its outputs are
    /// acknowledged ([`Gateway::complete`]), while the next batch is written. With [`BATCHES`]
    /// in flight, waits for them first.
    fn seal(&self, consumer: &BaseConsumer<Self>, mode: CommitMode) -> Result<()> {
        let full = {
            let mut pending = self.lock();
            pending.records = 0;
            if pending.current.sent == 0 && pending.current.positions.is_empty() {
                return Ok(());
            }
            let id = pending.current.id + 1;
            // the batch that used this slot is committed: fewer than `BATCHES` are in flight
            self.producer.context().slot(id).store(0, Ordering::SeqCst);
            let next = Batch {
                id,
                times: Vec::with_capacity(pending.current.times.len()),
                ..Batch::default()
            };
            let sealed = std::mem::replace(&mut pending.current, next);
            pending.sealed.push_back(sealed);
            pending.sealed.len() >= BATCHES - 1
        };
        if full {
            self.complete(consumer, mode, true)?;
        }
        Ok(())
    }

    /// Commits the offsets of the sealed batches whose outputs are all acknowledged, oldest
    /// first (of all of them, waiting, with `wait`). An output that failed stops the gateway:
    /// nothing after it is committed.
    fn complete(&self, consumer: &BaseConsumer<Self>, mode: CommitMode, wait: bool) -> Result<()> {
        let deliveries = self.producer.context();
        loop {
            let batch = {
                let mut pending = self.lock();
                match pending.sealed.front() {
                    None => return Ok(()),
                    Some(oldest) if deliveries.done(oldest) => {}
                    Some(_) if !wait => return Ok(()),
                    // reports come from the producer's thread; the lock held here is only
                    // taken on this thread
                    Some(oldest) => deliveries.wait(oldest),
                }
                pending.sealed.pop_front()
            };
            let Some(batch) = batch else {
                return Ok(());
            };
            if let Some((source, at)) = deliveries.failed().clone() {
                return Err(Error::Kafka {
                    context: format!("an output to {at} was not delivered"),
                    source,
                });
            }
            let offsets = offsets_of(&batch.positions)?;
            if offsets.count() > 0 {
                consumer
                    .commit(&offsets, mode)
                    .map_err(|source| Error::Kafka {
                        context: "committing ingress offsets".into(),
                        source,
                    })?;
            }
            let now = chrono::Utc::now().timestamp_millis();
            for (route, time) in batch.times {
                route.metrics.freshness((now - time).max(0) as f64 / 1000.0);
            }
        }
    }

    /// Waits for every output in flight, then commits the offsets after them (in one
    /// transaction with the outputs, in transactional mode).
    fn checkpoint(&self, consumer: &BaseConsumer<Self>, mode: CommitMode) -> Result<()> {
        let transaction_open = std::mem::replace(&mut self.lock().transaction_open, false);
        if transaction_open {
            // every checkpoint waits in this mode: the current batch is the transaction's, and
            // its offsets are committed in it
            let positions = std::mem::take(&mut self.lock().current.positions);
            let offsets = offsets_of(&positions)?;
            let kafka = |context: &'static str| {
                move |source| Error::Kafka {
                    context: context.into(),
                    source,
                }
            };
            let timeout = Duration::from_secs(60);
            let committed = consumer
                .group_metadata()
                .ok_or_else(|| Error::Unexpected("the consumer has no group metadata".into()))
                .and_then(|group| {
                    self.producer
                        .send_offsets_to_transaction(&offsets, &group, timeout)
                        .map_err(kafka("adding offsets to the transaction"))
                })
                .and_then(|()| {
                    self.producer
                        .commit_transaction(timeout)
                        .map_err(kafka("committing the transaction"))
                });
            self.metrics.transactions_in_flight(0);
            if let Err(e) = committed {
                self.producer.abort_transaction(timeout).ok();
                return Err(e);
            }
        }
        self.seal(consumer, mode)?;
        self.complete(consumer, mode, true)
    }
}

/// The offsets to commit for `positions`.
fn offsets_of(positions: &FxHashMap<PartitionKey, i64>) -> Result<TopicPartitionList> {
    let mut offsets = TopicPartitionList::new();
    for ((topic, partition), next) in positions {
        offsets
            .add_partition_offset(topic.as_ref(), *partition, Offset::Offset(*next))
            .map_err(|source| Error::Kafka {
                context: "listing offsets to commit".into(),
                source,
            })?;
    }
    Ok(offsets)
}

/// The span of one batch (the records between two checkpoints), entered once: a root span, so
/// a batch is never the child of the one before.
fn batch_span(batch: u64) -> tracing::span::EnteredSpan {
    tracing::info_span!(parent: None, "gateway_batch", batch, records = tracing::field::Empty)
        .entered()
}

/// Runs the stream gateway on this thread until `stop` is cancelled or an error occurs (then the
/// caller restarts it: every restart resumes exactly where outputs end). Blocking: run it on a
/// thread of its own, with `runtime` a handle to the runtime the registry client uses.
pub fn run(
    config: StreamConfig,
    contracts: Arc<Contracts>,
    metrics: Metrics,
    runtime: tokio::runtime::Handle,
    stop: CancellationToken,
) -> Result<()> {
    let kafka = |context: &'static str| {
        move |source| Error::Kafka {
            context: context.into(),
            source,
        }
    };
    let mut producer_config = broker::producer_config(&config.bootstrap);
    producer_config
        .set("client.id", "meshline-gateway")
        .set("enable.gapless.guarantee", "true")
        // an output waits for the broker as long as it takes: giving up would lose the event
        .set("message.timeout.ms", "0")
        .set("linger.ms", "5");
    if let DeliveryMode::Transactional { id } = &config.mode {
        producer_config
            .set("transactional.id", id)
            .set("transaction.timeout.ms", "60000")
            .set("message.timeout.ms", "60000");
    }
    let mut consumer_config = broker::client_config(&config.bootstrap);
    consumer_config
        .set("client.id", "meshline-gateway")
        .set("group.id", &config.group)
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
    let mut reader_config = broker::client_config(&config.bootstrap);
    reader_config
        .set("client.id", "meshline-gateway-resume")
        .set("group.id", format!("{}-resume", config.group))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", "50")
        .set("isolation.level", "read_committed");
    for (key, value) in &config.client {
        producer_config.set(key, value);
        consumer_config.set(key, value);
        reader_config.set(key, value);
    }
    let producer: ThreadedProducer<Deliveries> = producer_config
        .create_with_context(Deliveries::default())
        .map_err(kafka("creating the gateway's producer"))?;
    if matches!(config.mode, DeliveryMode::Transactional { .. }) {
        producer
            .init_transactions(Duration::from_secs(60))
            .map_err(kafka(
                "initialising transactions (does the broker support them?)",
            ))?;
    }
    let reader: BaseConsumer = reader_config
        .create()
        .map_err(kafka("creating the tail reader"))?;
    let topics: Vec<String> = contracts
        .ingress_topics()
        .into_iter()
        .map(str::to_owned)
        .collect();
    let routes = contracts
        .ingress_topics()
        .into_iter()
        .filter_map(|ingress| {
            let product = contracts.product_of_ingress(ingress)?;
            let route = Route {
                ingress: Arc::from(ingress),
                product: product.to_owned(),
                topics: Topics::of(product),
                metrics: metrics.product(product),
            };
            Some((ingress.to_owned(), Arc::new(route)))
        })
        .collect::<FxHashMap<_, _>>();
    // learn the output topics' leaders now, not at the first event (a stall of up to a second on
    // the embedded broker)
    for route in routes.values() {
        for topic in [&route.topics.product, &route.topics.dlq] {
            if let Err(e) = producer
                .client()
                .fetch_metadata(Some(topic), Duration::from_secs(10))
            {
                tracing::warn!(topic, error = %e, "no metadata for an output topic yet");
            }
        }
    }
    let gateway = Gateway {
        config,
        contracts,
        metrics,
        routes,
        runtime,
        producer,
        reader,
        pending: Mutex::default(),
    };
    let consumer: BaseConsumer<Gateway> = consumer_config
        .create_with_context(gateway)
        .map_err(kafka("creating the gateway's consumer"))?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&names)
        .map_err(kafka("subscribing to the ingress topics"))?;
    tracing::info!(topics = ?names, "gateway consuming");
    let gateway = consumer.context();
    let mut last = Instant::now();
    let mut last_lag = Instant::now();
    let mut batch = 0u64;
    let mut span = batch_span(batch);
    let result = loop {
        if stop.is_cancelled() {
            break gateway.checkpoint(&consumer, CommitMode::Sync);
        }
        if let Some(e) = gateway.lock().failed.take() {
            break Err(e);
        }
        match consumer.poll(Duration::from_millis(50)) {
            Some(Ok(message)) => {
                if let Err(e) = gateway.handle(&message) {
                    break Err(e);
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) | None => {}
            Some(Err(e)) => tracing::warn!(error = %e, "consumer error"),
        }
        if gateway.due(last) {
            let records = gateway.lock().records;
            span.record("records", records);
            // a transaction commits at once; otherwise the batch commits when acknowledged,
            // while the next one is written
            let sealed = match gateway.config.mode {
                DeliveryMode::Transactional { .. } => {
                    gateway.checkpoint(&consumer, CommitMode::Async)
                }
                DeliveryMode::Idempotent => gateway.seal(&consumer, CommitMode::Async),
            };
            if let Err(e) = sealed {
                break Err(e);
            }
            tracing::debug!(records, "batch sealed");
            last = Instant::now();
            batch += 1;
            drop(span);
            span = batch_span(batch);
        }
        if let Err(e) = gateway.complete(&consumer, CommitMode::Async, false) {
            break Err(e);
        }
        if last_lag.elapsed() >= LAG_INTERVAL {
            gateway.report_lag(&consumer);
            last_lag = Instant::now();
        }
    };
    if result.is_err() && gateway.lock().transaction_open {
        gateway
            .producer
            .abort_transaction(Duration::from_secs(30))
            .ok();
    }
    consumer.unsubscribe();
    result
}

#[cfg(test)]
mod tests {
    use tracing_subscriber::registry::{LookupSpan as _, Registry};

    #[test]
    fn batch_spans_do_not_nest() {
        tracing::subscriber::with_default(Registry::default(), || {
            let first = super::batch_span(0);
            let second = super::batch_span(1);
            let id = second.id().expect("spans are on");
            tracing::dispatcher::get_default(|dispatch| {
                let registry = dispatch.downcast_ref::<Registry>().expect("the registry");
                let span = registry.span(&id).expect("the second span");
                assert!(span.parent().is_none(), "a batch span inside another");
            });
            drop(first);
        });
    }
}
