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
//! The parts:
//! - [`config`]: the settings, and the Kafka clients they build;
//! - `delivery`: outputs in flight, in batches between checkpoints, and the producer's reports;
//! - `rebalance`: where an assigned partition starts, and how a revoked one is given up;
//! - `checkpoint`: sealing batches, committing their offsets (or a transaction);
//! - this module: the loop, and what becomes of each record.
//!
//! [`resume`]: crate::outputs::resume

mod checkpoint;
pub(super) mod config;
mod delivery;
mod rebalance;

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use rdkafka::{
    consumer::{BaseConsumer, CommitMode, Consumer},
    error::KafkaError,
    message::{BorrowedMessage, Message, OwnedHeaders},
    producer::{BaseRecord, Producer, ThreadedProducer},
    types::RDKafkaErrorCode,
    Offset,
};
use rustc_hash::FxHashMap;
use tokio_util::sync::CancellationToken;

pub use config::{DeliveryMode, StreamConfig};
use delivery::{Deliveries, Pending};

use super::{
    contracts::Contracts,
    metrics::{Metrics, Outcome, ProductMetrics},
    Error, Result,
};
use crate::{
    binding::kafka::{header_time, Record, RecordView, TIME_HEADER, TRACEPARENT_HEADER},
    broker,
    contract::Reason,
    outputs::headers::{self, wire_size, Source},
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

/// How often the consumer lag gauge is refreshed.
const LAG_INTERVAL: Duration = Duration::from_secs(5);

/// How long a one-time call to the broker (committed offsets, an output's tail) is tried again
/// while the broker is busy before the gateway gives up and restarts.
pub(crate) const PATIENCE: Duration = Duration::from_secs(120);

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
    /// The largest output the producer and every output topic take, in bytes.
    max_output: usize,
}

impl Gateway {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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
            if pending.skip_written(&key, offset) {
                route.metrics.event(Outcome::Duplicate);
                return Ok(());
            }
            pending.current.id
        };
        let record = Consumed::new(message);
        // a span per event only when spans are exported: the child of the event's trace
        let span = crate::telemetry::exporting().then(|| {
            let span = tracing::info_span!(
                "gateway_check",
                product = %route.product,
                partition,
                offset,
                outcome = tracing::field::Empty,
            );
            if let Some(traceparent) = record
                .header(TRACEPARENT_HEADER)
                .and_then(|t| std::str::from_utf8(t).ok())
            {
                crate::telemetry::continue_trace(&span, traceparent);
            }
            span
        });
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
            Ok(accepted) => accepted.time,
            Err(_) => record.header(TIME_HEADER).and_then(header_time),
        };
        let topics = &route.topics;
        // what the gateway adds: the source, a verdict, a copy of the trace context
        let added = 1024 + verdict.as_ref().err().map_or(0, |r| r.message.len());
        let size = wire_size(
            message.key(),
            message.payload(),
            record.headers().iter().copied(),
        ) + added;
        let fitted = size > self.max_output;
        // a letter cut to fit keeps the record's key only if it fits
        let mut fitted_key = None;
        let (out_topic, output, outcome) = match &verdict {
            // no output may be refused by the producer or the broker for its size: that would
            // stop the partition for good
            // (a letter without its payload is `too_large` whatever the contract said: the
            // payload is to be read at the ingress offset the letter names)
            _ if fitted => {
                let refused = match &verdict {
                    Err(rejection) => format!(
                        "; the contract refused it too ({}: {})",
                        rejection.reason.code(),
                        rejection.message
                    ),
                    Ok(_) => String::new(),
                };
                let too_large = crate::contract::Rejection::new(
                    Reason::TooLarge,
                    format!(
                        "the record ({size} bytes with the gateway's headers) is over the {}-byte limit of its outputs (the smaller of the gateway producer's message.max.bytes and the output topics' max.message.bytes){refused}",
                        self.max_output
                    ),
                );
                let version = self.contracts.get(&route.product).map(|c| c.version);
                let dead = headers::fitted_dead_letter(
                    Record::from_message(message),
                    source,
                    &too_large,
                    version,
                    self.max_output,
                );
                let output = dead.owned_headers();
                fitted_key = dead.key;
                (&topics.dlq, output, Fate::Dead(Reason::TooLarge))
            }
            Ok(accepted) => (
                &topics.product,
                headers::accepted_headers(record.headers(), source, &accepted.warned),
                Fate::Output(if accepted.warned.is_empty() {
                    Outcome::Accepted
                } else {
                    Outcome::Warned
                }),
            ),
            Err(rejection) => {
                tracing::debug!(
                    product = %route.product,
                    reason = rejection.reason.code(),
                    partition,
                    offset,
                    traceparent = record
                        .header(TRACEPARENT_HEADER)
                        .and_then(|t| std::str::from_utf8(t).ok()),
                    "dead-lettered"
                );
                let version = self.contracts.get(&route.product).map(|c| c.version);
                let dead =
                    headers::dead_letter(Record::from_message(message), source, rejection, version);
                (
                    &topics.dlq,
                    dead.owned_headers(),
                    Fate::Dead(rejection.reason),
                )
            }
        };
        // a dead letter cut to fit goes without its payload (which the letter points to in the
        // ingress topic)
        let (record_key, payload) = match fitted {
            true => (fitted_key.as_deref(), None),
            false => (message.key(), message.payload()),
        };
        self.begin_transaction()?;
        let sent = self.send(out_topic, partition, record_key, payload, output, batch);
        let (sent, outcome) = match sent {
            // the producer's own estimate found it too large after all: the letter that always fits
            Err(KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge)) => {
                let rejection = crate::contract::Rejection::new(
                    Reason::TooLarge,
                    format!(
                        "the record with its headers is over the gateway producer's message.max.bytes ({} bytes)",
                        self.max_output
                    ),
                );
                let dead = headers::fitted_dead_letter(
                    Record::from_message(message),
                    source,
                    &rejection,
                    None,
                    self.max_output,
                );
                let sent = self.send(
                    &topics.dlq,
                    partition,
                    dead.key.as_deref(),
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
        // the rules the event failed
        let failed_rules: &[String] = match &verdict {
            Ok(accepted) => &accepted.warned,
            Err(rejection) => rejection.rule.as_slice(),
        };
        for rule in failed_rules {
            route.metrics.rule_failed(rule);
        }
        if let Some(span) = &span {
            span.record(
                "outcome",
                match outcome {
                    Fate::Dead(reason) => reason.code(),
                    Fate::Output(Outcome::Warned) => "warned",
                    Fate::Output(_) => "accepted",
                },
            );
        }
        let mut pending = self.lock();
        pending.sent(key, offset);
        if let Some(time) = time {
            pending.current.times.push((route, time));
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
    ) -> Result<std::result::Result<crate::contract::Accepted, crate::contract::Rejection>> {
        let Some(registered) = self.contracts.get(product) else {
            let why = self
                .contracts
                .unavailable(product)
                .ok_or_else(|| Error::Unexpected(format!("no contract loaded for {product}")))?;
            return Ok(Err(crate::contract::Rejection::new(
                crate::contract::Reason::ContractUnavailable,
                format!("the registered contract of {product} cannot be loaded: {why}"),
            )));
        };
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
                    Some(fresh) => fresh.contract.check_record(record, |id| fresh.schema(id)),
                    None => Err(rejection),
                })
            }
            other => Ok(other),
        }
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
}

/// The largest output record the gateway's producer and every output topic take: the smaller of
/// the producer's `message.max.bytes` (librdkafka's default when unset) and the topics'
/// `max.message.bytes`, where the broker describes them.
fn output_limit(
    config: &StreamConfig,
    producer: &rdkafka::ClientConfig,
    routes: &FxHashMap<String, Arc<Route>>,
    runtime: &tokio::runtime::Handle,
) -> usize {
    let producer_max = producer
        .get("message.max.bytes")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let topics: Vec<&str> = routes
        .values()
        .flat_map(|r| [r.topics.product.as_str(), r.topics.dlq.as_str()])
        .collect();
    let topic_max = runtime.block_on(broker::max_message_bytes(&config.admin(), &topics));
    topic_max.map_or(producer_max, |t| t.min(producer_max))
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
pub(super) fn run(
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
    let producer_config = config.producer();
    let consumer_config = config.consumer();
    let reader_config = config.reader();
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
    let max_output = output_limit(&config, &producer_config, &routes, &runtime);
    tracing::info!(max_output, "largest output");
    let gateway = Gateway {
        max_output,
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
