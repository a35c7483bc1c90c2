//! The snapshotter's Kafka loops: one thread per source partition of a product that this
//! worker holds (`lease`: how several workers share a product's partitions), each writing that
//! partition's piece of every window of every view, and the commit step (`commit`), which merges
//! the pieces of each window into its snapshot once every partition has closed it.
//!
//! Delivery guarantee: **exactly once** into the snapshot store, on any Kafka-API broker. A
//! partition's progress (per view: where to resume, the event-time clock there, and which
//! offsets are done) is written to the store *after* the pieces it accounts for, and the loop
//! resumes from it, not from group offsets. A piece's contents and file cuts depend only on its
//! partition's record order, so a replay after a crash rewrites the same files, byte for byte;
//! the store refuses to overwrite, and a file found already there must hold the same bytes.
//!
//! Limits: late events sent to the dead-letter topic (`late: dlq`) go through an idempotent
//! producer, flushed before each progress write; after a crash, records found at the tail of the
//! dead-letter partition are not sent again. A partition's idleness is measured on the wall
//! clock: a partition that goes idle and later delivers events for windows already closed makes
//! them late (by the view's policy), which an uninterrupted run might not have. An amendment
//! (`late: amend`) always leads to the same newest version of a window, but the number of
//! versions before it depends on when late events arrive.
//!
//! The parts: `config` the settings, `metrics` what the loops count, `progress` the progress
//! files read back, `commit` the commit step, `retention` expiry; this module a partition's
//! loop.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::Arc,
    time::{Duration, Instant},
};

use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    error::KafkaError,
    message::{Headers, Message, OwnedHeaders, OwnedMessage},
    producer::{FutureProducer, Producer},
    Offset, TopicPartitionList,
};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

mod commit;
mod config;
mod lease;
mod metrics;
mod progress;
mod retention;

pub use config::SnapshotterConfig;
pub use metrics::Metrics;
pub use progress::load_progress;

use progress::{load_partition_progress, progress_start, same_manifest};

use super::{
    manifest::{self, Manifest, Progress},
    parquet,
    rows::{Decoding, Rows, Skip},
    store::Store,
    view::{Counts, Step, ViewRunner},
    Error, Result,
};
use crate::{
    backoff::Backoff,
    binding::kafka::{header_time, TIME_HEADER},
    broker,
    codec::wire,
    contract::WriterSchema,
    formats,
    lineage::{EventType, Job, Naming, Run},
    outputs::{
        headers::{self as out_headers, LATE_EVENT},
        resume,
    },
    product::{Catalog, LatePolicy, Product, ProductId},
    registry::client::Client,
};

/// Runs the snapshotter for every product of `catalog` with views until `stop`: this worker
/// joins each product's group (`lease`) and runs the partitions it is given (and the commit
/// step with partition 0), restarting each after an error from the progress in the store.
pub async fn run(
    config: SnapshotterConfig,
    catalog: Arc<Catalog>,
    metrics: Metrics,
    stop: CancellationToken,
) {
    let mut tasks = Vec::new();
    for product in catalog.iter().filter(|p| !p.descriptor.views.is_empty()) {
        let (config, product, metrics, stop) = (
            config.clone(),
            product.clone(),
            metrics.clone(),
            stop.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut backoff = Backoff::new();
            while !stop.is_cancelled() {
                let handle = Handle::current();
                let (c, p, m, s) = (config.clone(), product.clone(), metrics.clone(), stop.clone());
                let result =
                    tokio::task::spawn_blocking(move || lease::join(&handle, &c, &p, &m, &s))
                        .await;
                match result {
                    Ok(Ok(())) => break,
                    Ok(Err(error)) => {
                        tracing::error!(product = product.id(), %error, "snapshotter group failed; joining again");
                    }
                    Err(error) => {
                        tracing::error!(product = product.id(), %error, "snapshotter group thread failed; joining again");
                    }
                }
                if !backoff.wait(&stop).await {
                    break;
                }
            }
        }));
    }
    for task in tasks {
        task.await.ok();
    }
}

struct Loop<'a> {
    handle: &'a Handle,
    config: &'a SnapshotterConfig,
    product: &'a Product,
    /// The source partition this loop reads.
    partition: i32,
    metrics: &'a Metrics,
    runners: Vec<ViewRunner>,
    /// What each runner last added to the metrics (beside `runners`): several loops add up to
    /// a product's counts.
    reported: Vec<Reported>,
    /// The product's watermark per view, as the commit step last published it.
    floors: BTreeMap<String, i64>,
    decoding: Decoding,
    /// The writer schemas in another language than Avro (JSON Schema, Protobuf) by id: their
    /// events are decoded into their Avro field model, and re-encoded in Avro for `decoding`.
    foreign: HashMap<u32, Arc<WriterSchema>>,
    client: Client,
    /// Records of the batch in progress, kept when a view sends late events to the DLQ.
    kept: Vec<OwnedMessage>,
    keep: bool,
    dlq: Option<FutureProducer>,
    pending_dlq: Vec<rdkafka::producer::DeliveryFuture>,
    already_dead_lettered: BTreeSet<(i32, i64)>,
    sequence: u64,
    dirty: bool,
    /// What the commit step reads of each view at the last checkpoint.
    marks: Vec<Mark>,
    /// When the last records arrived (for the delay of the windows they close).
    received_at: Option<std::time::SystemTime>,
}

/// A view's own watermark, whether its partition is idle, and through when its windows are
/// closed.
type Mark = (Option<i64>, bool, Option<i64>);

/// A runner's counts and gauges as last added to the metrics.
#[derive(Debug, Default, Clone, Copy)]
struct Reported {
    counts: Counts,
    held: i64,
    spilled: i64,
}

/// The reader schema of `product` (the registry's latest), the decoder over it, and the writer
/// schema when it is in another language than Avro.
fn reader(
    handle: &Handle,
    config: &SnapshotterConfig,
    product: &Product,
    client: &Client,
) -> Result<(Decoding, HashMap<u32, Arc<WriterSchema>>)> {
    let id = product.id();
    let (latest_id, latest) = handle
        .block_on(formats::latest(client, &product.subject(), id))
        .map_err(|e| Error::Registry {
            product: id.to_owned(),
            source: Box::new(e),
        })?;
    let reader = serde_json::to_string(latest.avro.as_ref()).map_err(Error::json)?;
    let decoding = Decoding::new(&reader, &[(latest_id, reader.clone())], config.batch_size)?;
    let foreign = if latest.is_foreign() {
        [(latest_id, latest)].into()
    } else {
        HashMap::new()
    };
    Ok((decoding, foreign))
}

/// Runs the loop of source `partition` of `product` until `stop`: its piece of every window of
/// every view, resuming from the partition's progress.
fn run_partition(
    handle: &Handle,
    config: &SnapshotterConfig,
    product: &Product,
    partition: i32,
    metrics: &Metrics,
    stop: &CancellationToken,
) -> Result<()> {
    let id = product.id();
    let topics = product.topics();
    let client = Client::new(&config.registry_url);
    let (decoding, foreign) = reader(handle, config, product, &client)?;
    let schema = decoding
        .schema()
        .ok_or_else(|| Error::Unexpected("no schema to decode with".into()))?;

    let progress = handle.block_on(load_partition_progress(&config.store, id, partition))?;
    let sequence = progress.as_ref().map_or(0, |(p, _)| p.sequence);
    let progress = progress.map(|(p, _)| p).unwrap_or_default();

    let kafka = |context: &str| {
        let context = format!("{context} ({id}, partition {partition})");
        move |source| Error::Kafka { context, source }
    };
    let mut consumer_config = broker::client_config(&config.bootstrap);
    consumer_config
        // it assigns itself its partition: the group id only names the reader
        .set("group.id", format!("{}-{id}-reader", config.group_prefix))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        .set("fetch.queue.backoff.ms", broker::FETCH_QUEUE_BACKOFF_MS);
    let consumer: BaseConsumer<QuietEof> = consumer_config
        .create_with_context(QuietEof)
        .map_err(kafka("creating the consumer"))?;

    let mut runners = Vec::new();
    for view in &product.descriptor.views {
        let mut runner = ViewRunner::new(
            id,
            view,
            schema.clone(),
            partition,
            config.max_rows_per_file,
            &config.spill,
            progress.views.get(&view.name),
        )?;
        let store = &config.store;
        if let Some(path) = runner.restore_from().map(str::to_owned) {
            let manifest = read_manifest(handle, store, &path)?;
            runner.restore(&read_rows(handle, store, &manifest)?)?;
        }
        if runner.amends() {
            let pieces = handle.block_on(super::listing::pieces(store, id, &view.name))?;
            // this partition's, windows in order, each window's versions in order
            let ours = pieces.values().filter_map(|w| w.get(&partition));
            for path in ours.flat_map(BTreeMap::values) {
                let manifest = read_manifest(handle, store, path)?;
                if runner.wants_first_version(&manifest) {
                    let batches = read_rows(handle, store, &manifest)?;
                    runner.restore_first_version(&manifest, &batches)?;
                }
                runner.remember(manifest)?;
            }
            if let Some(path) = runner.newest_to_restore() {
                let manifest = read_manifest(handle, store, &path)?;
                runner.restore_late(&read_rows(handle, store, &manifest)?)?;
            }
        }
        runners.push(runner);
    }

    let keep = product
        .descriptor
        .views
        .iter()
        .any(|v| v.late == LatePolicy::Dlq);
    let mut already_dead_lettered = BTreeSet::new();
    let dlq = if keep {
        let reader: BaseConsumer = broker::client_config(&config.bootstrap)
            .set("group.id", format!("{}-{id}-tail", config.group_prefix))
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "true")
            .create()
            .map_err(kafka("creating the dead-letter tail reader"))?;
        let done = progress
            .views
            .values()
            .filter_map(|v| v.partitions.get(&partition).map(|p| p.done_through))
            .min();
        let found = resume::resume(
            &reader,
            &[&topics.dlq],
            partition,
            &topics.product,
            Some(done.map_or(0, |d| d + 1)),
        )
        .map_err(|e| Error::Unexpected(format!("reading the dead-letter tail: {e}")))?;
        already_dead_lettered.extend(found.written.into_iter().map(|o| (partition, o)));
        Some(
            broker::producer_config(&config.bootstrap)
                .create::<FutureProducer>()
                .map_err(kafka("creating the dead-letter producer"))?,
        )
    } else {
        None
    };

    let start = match progress_start(&progress, &product.descriptor.views, partition) {
        Some(offset) => Offset::Offset(offset),
        None => Offset::Beginning,
    };
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(&topics.product, partition, start)
        .map_err(kafka("assigning the partition"))?;
    consumer
        .assign(&assignment)
        .map_err(kafka("assigning the partition"))?;
    tracing::info!(
        product = id,
        partition,
        views = runners.len(),
        sequence,
        "snapshotter started"
    );

    let views = runners.len();
    let mut work = Loop {
        handle,
        config,
        product,
        partition,
        metrics,
        runners,
        reported: vec![Reported::default(); views],
        floors: BTreeMap::new(),
        decoding,
        foreign,
        client,
        kept: Vec::new(),
        keep,
        dlq,
        pending_dlq: Vec::new(),
        already_dead_lettered,
        sequence,
        dirty: false,
        marks: Vec::new(),
        received_at: None,
    };
    let mut last_checkpoint = Instant::now();
    let mut floors_read: Option<Instant> = None;
    let result = (|| {
        while !stop.is_cancelled() {
            let deadline = Instant::now() + Duration::from_millis(200);
            let mut received = 0usize;
            while let Some(message) =
                consumer.poll(deadline.saturating_duration_since(Instant::now()))
            {
                match message {
                    Ok(message) => {
                        work.push(&message)?;
                        received += 1;
                    }
                    Err(KafkaError::PartitionEOF(_)) => {
                        let now = Instant::now();
                        for runner in &mut work.runners {
                            runner.reached_end(partition, now);
                        }
                    }
                    Err(e) => return Err(kafka("reading the product topic")(e)),
                }
                if Instant::now() >= deadline {
                    break;
                }
            }
            // an idle partition closes its windows by the product's watermark
            let now = Instant::now();
            let idle = work.runners.iter().any(|r| r.clock(now).1);
            if idle && floors_read.is_none_or(|at| at.elapsed() >= FLOORS_EVERY) {
                work.floors = handle.block_on(commit::read_floors(&config.store, id))?;
                floors_read = Some(Instant::now());
            }
            if received > 0 {
                work.received_at = Some(std::time::SystemTime::now());
            }
            // a span for the batches that brought records, not for every quiet poll
            let _span = (received > 0).then(|| {
                tracing::info_span!(
                    "snapshot_batch",
                    product = id,
                    partition,
                    records = received
                )
                .entered()
            });
            let closed = work.flush_batch()? | work.advance()?;
            let replaying = work.runners.iter().any(ViewRunner::replaying);
            let due = last_checkpoint.elapsed() >= config.checkpoint_interval;
            let moved = work.marks != work.marks(Instant::now());
            if !replaying && (closed || ((work.dirty || moved) && due)) {
                work.checkpoint()?;
                last_checkpoint = Instant::now();
            }
        }
        work.flush_batch()?;
        // mid-replay, the last checkpoint stays: the next start replays again
        if !work.runners.iter().any(ViewRunner::replaying) {
            work.checkpoint()?;
        }
        Ok(())
    })();
    work.unreport();
    result?;
    tracing::info!(
        product = id,
        partition,
        "snapshotter stopped at a checkpoint"
    );
    Ok(())
}

/// How often an idle partition's loop reads the product's watermarks.
const FLOORS_EVERY: Duration = Duration::from_secs(1);

impl Loop<'_> {
    fn id(&self) -> &str {
        self.product.id()
    }

    /// Adds a record to the batch in progress.
    fn push(&mut self, message: &rdkafka::message::BorrowedMessage<'_>) -> Result<()> {
        let mut time = None;
        let mut event_id = None;
        if let Some(headers) = message.headers() {
            for header in headers.iter() {
                match header.key {
                    TIME_HEADER => time = header.value.and_then(header_time),
                    "ce_id" => event_id = header.value.and_then(|v| std::str::from_utf8(v).ok()),
                    _ => {}
                }
            }
        }
        let payload = message.payload().unwrap_or_default();
        loop {
            let translated = match self.in_avro(payload) {
                Ok(translated) => translated,
                Err(reason) => {
                    self.skip(message, &reason);
                    return Ok(());
                }
            };
            match self.decoding.push(
                message.partition(),
                message.offset(),
                time,
                event_id,
                translated.as_deref().unwrap_or(payload),
            ) {
                Ok(()) => {
                    if self.keep {
                        self.kept.push(message.detach());
                    }
                    return Ok(());
                }
                Err(Skip::Full) => {
                    self.flush_batch()?;
                }
                Err(Skip::UnknownSchema(schema_id)) => {
                    self.flush_batch()?;
                    let product = self.product;
                    let schema = self
                        .handle
                        .block_on(formats::writer_schema(
                            &self.client,
                            schema_id,
                            product.id(),
                            product.descriptor.message.as_deref(),
                        ))
                        .map_err(|e| Error::Registry {
                            product: self.id().to_owned(),
                            source: Box::new(e),
                        });
                    match schema {
                        Ok(schema) => {
                            let json =
                                serde_json::to_string(schema.avro.as_ref()).map_err(Error::json)?;
                            self.decoding.add_schema(schema_id, &json)?;
                            if schema.is_foreign() {
                                self.foreign.insert(schema_id, Arc::new(schema));
                            }
                        }
                        Err(Error::Registry { source, .. }) if source.code() == Some(40403) => {
                            self.skip(message, &format!("schema id {schema_id} is not registered"));
                            return Ok(());
                        }
                        Err(e) => return Err(e),
                    }
                }
                Err(Skip::Payload(reason)) => {
                    self.skip(message, &reason);
                    return Ok(());
                }
            }
        }
    }

    /// A payload in another language than Avro re-encoded as Avro of its field model, framed
    /// with its schema id (`None`: the payload is Avro, or its schema is not known yet), or why
    /// it does not decode.
    fn in_avro(&self, payload: &[u8]) -> std::result::Result<Option<Vec<u8>>, String> {
        if self.foreign.is_empty() {
            return Ok(None);
        }
        let Ok((schema_id, body)) = wire::decode(payload) else {
            return Ok(None);
        };
        let Some(schema) = self.foreign.get(&schema_id) else {
            return Ok(None);
        };
        let value = schema.decode(body, None)?;
        let mut framed = Vec::with_capacity(payload.len());
        wire::encode_header(schema_id, &mut framed);
        apache_avro::writer::datum::GenericDatumWriter::builder(&schema.avro)
            .build()
            .and_then(|w| w.write_value_to_vec(value))
            .map(|avro| {
                framed.extend(avro);
                Some(framed)
            })
            .map_err(|e| format!("does not encode as its field model: {e}"))
    }

    fn skip(&self, message: &rdkafka::message::BorrowedMessage<'_>, reason: &str) {
        self.metrics
            .skipped
            .with_label_values(&[ProductId(self.id()).domain(), self.id(), "payload"])
            .inc();
        tracing::warn!(
            product = self.id(),
            partition = message.partition(),
            offset = message.offset(),
            reason,
            "record left out of the snapshots (it stays in the product topic)"
        );
    }

    /// Runs the batch in progress through every view; returns whether a window was written.
    fn flush_batch(&mut self) -> Result<bool> {
        let Some(rows) = self.decoding.finish()? else {
            return Ok(false);
        };
        let kept = std::mem::take(&mut self.kept);
        let mut closed = false;
        for i in 0..self.runners.len() {
            let step = self.runners[i].step(&rows)?;
            closed |= self.execute(i, step, &rows, &kept)?;
        }
        self.dirty = true;
        Ok(closed)
    }

    /// Closes the windows the watermarks passed; returns whether one was written.
    fn advance(&mut self) -> Result<bool> {
        let now = Instant::now();
        let mut closed = false;
        for i in 0..self.runners.len() {
            let floor = self.floors.get(&self.runners[i].view().name).copied();
            let step = self.runners[i].advance(now, floor)?;
            closed |= self.execute(i, step, &empty_rows(), &[])?;
        }
        Ok(closed)
    }

    /// What the commit step reads of each view at `now`: the partition's own watermark,
    /// whether it is idle, and through when its windows are closed.
    fn marks(&self, now: Instant) -> Vec<Mark> {
        self.runners
            .iter()
            .map(|r| {
                let (watermark, idle) = r.clock(now);
                (watermark, idle, r.closed_through())
            })
            .collect()
    }

    /// Adds what runner `view` counted since it last reported to the product's metrics.
    fn report_counts(&mut self, view: usize) {
        let runner = &self.runners[view];
        let name = runner.view().name.clone();
        let id = self.id().to_owned();
        let labels = [ProductId(&id).domain(), id.as_str(), name.as_str()];
        let m = self.metrics;
        let (counts, was) = (runner.counts, self.reported[view]);
        m.rows
            .with_label_values(&labels)
            .inc_by(counts.taken.saturating_sub(was.counts.taken));
        let policy = |c: &Counts| match runner.view().late {
            LatePolicy::Drop => ("drop", c.late_dropped),
            LatePolicy::Dlq => ("dlq", c.late_dead_lettered),
            LatePolicy::Amend => ("amend", c.late_amended),
        };
        let ((name_of, now), (_, before)) = (policy(&counts), policy(&was.counts));
        m.late
            .with_label_values(&[ProductId(&id).domain(), id.as_str(), name.as_str(), name_of])
            .inc_by(now.saturating_sub(before));
        let held = i64::try_from(runner.held()).unwrap_or(i64::MAX);
        let spilled = i64::try_from(runner.spilled()).unwrap_or(i64::MAX);
        m.held.with_label_values(&labels).add(held - was.held);
        m.spilled
            .with_label_values(&labels)
            .add(spilled - was.spilled);
        self.reported[view] = Reported {
            counts,
            held,
            spilled,
        };
    }

    /// Takes this loop's share out of the product's gauges (it stops).
    fn unreport(&mut self) {
        let id = self.id().to_owned();
        for (runner, was) in self.runners.iter().zip(&mut self.reported) {
            let name = &runner.view().name;
            let labels = [ProductId(&id).domain(), id.as_str(), name.as_str()];
            self.metrics.held.with_label_values(&labels).sub(was.held);
            self.metrics
                .spilled
                .with_label_values(&labels)
                .sub(was.spilled);
            was.held = 0;
            was.spilled = 0;
        }
    }

    /// Writes a step's files in order and sends its dead letters.
    fn execute(
        &mut self,
        view: usize,
        step: Step,
        rows: &Rows,
        kept: &[OwnedMessage],
    ) -> Result<bool> {
        // the writing of the windows this step closed, as one span
        let _writing = (!step.closed.is_empty()).then(|| {
            tracing::info_span!(
                "snapshot_windows",
                product = self.id(),
                view = %self.runners[view].view().name,
                windows = step.closed.len(),
                first = %step.closed[0].window,
                rows = step.closed.iter().map(|m| m.rows).sum::<u64>(),
            )
            .entered()
        });
        for put in step.puts {
            let store = &self.config.store;
            if put.path.ends_with("/manifest.json") {
                // a replay closes the window with another watermark: the snapshot is the same
                self.handle
                    .block_on(store.put_new_or(&put.path, put.bytes, same_manifest))?;
            } else {
                self.handle.block_on(store.put_new(&put.path, put.bytes))?;
            }
        }
        let name = self.runners[view].view().name.clone();
        for row in step.dead_letters {
            let (partition, offset) = (rows.partitions[row], rows.offsets[row]);
            if self.already_dead_lettered.contains(&(partition, offset)) {
                continue;
            }
            let Some(message) = kept
                .iter()
                .find(|m| m.partition() == partition && m.offset() == offset)
            else {
                return Err(Error::Unexpected(format!(
                    "late record {partition}/{offset} not kept"
                )));
            };
            self.dead_letter(&name, message)?;
        }
        self.report_counts(view);
        for manifest in &step.closed {
            tracing::debug!(
                product = %manifest.product,
                view = %manifest.view,
                window = %manifest.window,
                partition = self.partition,
                version = manifest.version,
                rows = manifest.rows,
                "piece written"
            );
        }
        Ok(!step.closed.is_empty())
    }

    fn dead_letter(&mut self, view: &str, message: &OwnedMessage) -> Result<()> {
        let Some(producer) = &self.dlq else {
            return Ok(());
        };
        let topics = self.product.topics();
        let mut headers = OwnedHeaders::new();
        if let Some(original) = message.headers() {
            // the gateway's own headers go: its resume reads the dead-letter tail for them
            for header in original
                .iter()
                .filter(|h| !out_headers::OWNED.contains(&h.key))
            {
                headers = headers.insert(rdkafka::message::Header {
                    key: header.key,
                    value: header.value,
                });
            }
        }
        let (partition, offset) = (
            message.partition().to_string(),
            message.offset().to_string(),
        );
        let why = format!("the event arrived after its window of view `{view}` closed");
        headers = headers
            .insert(text(out_headers::SOURCE_TOPIC, &topics.product))
            .insert(text(out_headers::SOURCE_PARTITION, &partition))
            .insert(text(out_headers::SOURCE_OFFSET, &offset))
            .insert(text(out_headers::REASON, LATE_EVENT))
            .insert(text(out_headers::MESSAGE, &why));
        let delivery = broker::send_parts_blocking(
            producer,
            &topics.dlq,
            message.partition(),
            message.key(),
            message.payload(),
            headers,
        )
        .map_err(|e| Error::Kafka {
            context: format!("sending a late event to {}", topics.dlq),
            source: e,
        })?;
        self.pending_dlq.push(delivery);
        self.already_dead_lettered
            .insert((message.partition(), message.offset()));
        Ok(())
    }

    /// Writes amendments, waits for dead letters, then writes the progress.
    fn checkpoint(&mut self) -> Result<()> {
        for i in 0..self.runners.len() {
            let step = self.runners[i].amend()?;
            self.execute(i, step, &empty_rows(), &[])?;
        }
        for delivery in std::mem::take(&mut self.pending_dlq) {
            match self.handle.block_on(delivery) {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => {
                    return Err(Error::Kafka {
                        context: "sending a late event to the dead-letter topic".into(),
                        source: e,
                    })
                }
                Err(_) => return Err(Error::Unexpected("dead-letter delivery cancelled".into())),
            }
        }
        if let Some(producer) = &self.dlq {
            producer
                .flush(Duration::from_secs(30))
                .map_err(|e| Error::Kafka {
                    context: "flushing late events".into(),
                    source: e,
                })?;
        }
        self.sequence += 1;
        self.marks = self.marks(Instant::now());
        let progress = Progress {
            sequence: self.sequence,
            views: self
                .runners
                .iter()
                .zip(&self.marks)
                .map(|(r, &(watermark, idle, _))| {
                    let mut progress = r.progress();
                    progress.watermark = watermark;
                    progress.idle = idle;
                    (r.view().name.clone(), progress)
                })
                .collect::<BTreeMap<_, _>>(),
            received_at: self.received_at.and_then(|t| {
                let since = t.duration_since(std::time::UNIX_EPOCH).ok()?;
                i64::try_from(since.as_millis()).ok()
            }),
        };
        let (id, partition) = (self.product.id(), self.partition);
        let path = manifest::progress_path(id, partition, self.sequence);
        let bytes = serde_json::to_vec_pretty(&progress).map_err(Error::json)?;
        self.handle
            .block_on(self.config.store.put_new(&path, bytes))?;
        // keep the two newest
        if self.sequence > 2 {
            let old = manifest::progress_path(id, partition, self.sequence - 2);
            self.handle.block_on(self.config.store.delete(&old)).ok();
        }
        self.dirty = false;
        Ok(())
    }
}

/// Reports a run of `product`'s snapshotter loop (job `snapshotter.<product>`: the product topic
/// in, its views out) as an OpenLineage event of `kind`: `FAIL` with the error when the loop
/// fails (it restarts from its progress as a new run).
fn report_product(config: &SnapshotterConfig, product: &Product, kind: EventType, run: &Run) {
    let lineage = &config.lineage;
    if !lineage.enabled() {
        return;
    }
    let naming = Naming::new(&config.bootstrap, Some(&config.store.uri("")));
    let topic = product.topics().product;
    let job = Job {
        name: format!("snapshotter.{}", product.id()),
        description: format!(
            "meshline's snapshotter builds the views of {} from {topic}",
            product.id()
        ),
        processing: "STREAMING",
        kind: "SNAPSHOTTER",
        inputs: vec![naming.topic(&topic, Some(product))],
        outputs: product
            .descriptor
            .views
            .iter()
            .map(|v| naming.view(product.id(), &v.name))
            .collect(),
    };
    lineage.emit(lineage.run_event(kind, run, job));
}

/// The manifest at `path` in `store`.
fn read_manifest(handle: &Handle, store: &Store, path: &str) -> Result<Manifest> {
    serde_json::from_slice(&handle.block_on(store.get(path))?).map_err(Error::json)
}

/// The rows of every file of a snapshot.
fn read_rows(
    handle: &Handle,
    store: &Store,
    manifest: &Manifest,
) -> Result<Vec<arrow_array::RecordBatch>> {
    let mut batches = Vec::new();
    for file in &manifest.files {
        batches.extend(parquet::decode(handle.block_on(store.get(&file.path))?)?);
    }
    Ok(batches)
}

/// Reports client errors, but not "end of partition": with `enable.partition.eof` it is how the
/// loop learns a partition is caught up, not an error.
struct QuietEof;

impl rdkafka::ClientContext for QuietEof {
    fn error(&self, error: KafkaError, reason: &str) {
        let eof = matches!(
            error,
            KafkaError::PartitionEOF(_)
                | KafkaError::Global(rdkafka::types::RDKafkaErrorCode::PartitionEOF)
        );
        if !eof {
            tracing::error!(%error, reason, "Kafka client error");
        }
    }
}

impl rdkafka::consumer::ConsumerContext for QuietEof {}

fn empty_rows() -> Rows {
    Rows {
        batch: arrow_array::RecordBatch::new_empty(Arc::new(arrow_schema::Schema::empty())),
        partitions: Vec::new(),
        offsets: Vec::new(),
        schema_ids: Vec::new(),
    }
}

fn text<'a>(key: &'a str, value: &'a str) -> rdkafka::message::Header<'a, &'a [u8]> {
    rdkafka::message::Header {
        key,
        value: Some(value.as_bytes()),
    }
}
