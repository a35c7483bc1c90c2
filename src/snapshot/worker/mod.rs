//! The snapshotter's Kafka loop, one thread per product with views that this worker runs
//! (`lease`: which of several workers runs a product).
//!
//! Delivery guarantee: **exactly once** into the snapshot store, on any Kafka-API broker.
//! Progress (per view and partition: where to resume, the event-time clock there, and which
//! offsets are done) is written to the store *after* the files, manifests and Delta commits it
//! accounts for (a Delta commit names its window version, and one already in the log is not
//! made again), and the loop resumes from it, not from group offsets. Window contents and file
//! cuts depend only on each partition's record order, so a replay after a crash rewrites the
//! same files, byte for byte; the store refuses to overwrite, and a file found already there
//! must hold the same bytes.
//!
//! Limits: late events sent to the dead-letter topic (`late: dlq`) go through an idempotent
//! producer, flushed before each progress write; after a crash, records found at the tail of the
//! dead-letter partition are not sent again. A partition's idleness is measured on the wall
//! clock: a partition that goes idle and later delivers events for windows already closed makes
//! them late (by the view's policy), which an uninterrupted run might not have. An amendment
//! (`late: amend`) always leads to the same newest version of a window, but the number of
//! versions before it depends on when late events arrive.
//!
//! The parts: `config` the settings, `metrics` what the loop counts, `progress` the
//! progress files read back; this module the loop.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    error::KafkaError,
    message::{Headers, Message, OwnedHeaders, OwnedMessage},
    producer::{FutureProducer, Producer},
    Offset, TopicPartitionList,
};
use serde_json::json;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

mod config;
mod lease;
mod metrics;
mod progress;
mod retention;

pub use config::SnapshotterConfig;
pub use metrics::Metrics;
pub use progress::load_progress;

use metrics::{delay, set_counter, Consuming};
use progress::{progress_start, same_manifest};

use super::{
    manifest::{self, Manifest, Progress},
    parquet,
    rows::{Decoding, Rows, Skip},
    store::Store,
    table::Table,
    view::{Step, ViewRunner},
    Error, Result,
};
use crate::{
    backoff::Backoff,
    binding::kafka::{header_time, TIME_HEADER},
    broker,
    codec::wire,
    contract::WriterSchema,
    formats,
    lineage::{self, facet, EventType, Job, Naming, Run},
    outputs::{
        headers::{self as out_headers, LATE_EVENT},
        resume,
    },
    product::{Catalog, LatePolicy, Product, ProductId},
    registry::client::Client,
};

/// Runs the snapshotter for every product of `catalog` with views until `stop`: this worker
/// joins each product's election (`lease`) and runs the products it is given, restarting a
/// product's loop after an error from the progress in the store.
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
                    tokio::task::spawn_blocking(move || lease::elect(&handle, &c, &p, &m, &s))
                        .await;
                match result {
                    Ok(Ok(())) => break,
                    Ok(Err(error)) => {
                        tracing::error!(product = product.id(), %error, "snapshotter election failed; joining again");
                    }
                    Err(error) => {
                        tracing::error!(product = product.id(), %error, "snapshotter election thread failed; joining again");
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
    metrics: &'a Metrics,
    runners: Vec<ViewRunner>,
    /// The table of each view (beside `runners`) that has one.
    tables: Vec<Option<Table>>,
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
    /// When the last records arrived (for the delay of the windows they close).
    last_received: SystemTime,
}

fn run_product(
    handle: &Handle,
    config: &SnapshotterConfig,
    product: &Product,
    metrics: &Metrics,
    stop: &CancellationToken,
) -> Result<()> {
    let id = product.id();
    let topics = product.topics();
    let client = Client::new(&config.registry_url);
    let registry_error = |e| Error::Registry {
        product: id.to_owned(),
        source: Box::new(e),
    };
    let (latest_id, latest) = handle
        .block_on(formats::latest(&client, &product.subject(), id))
        .map_err(registry_error)?;
    let reader = serde_json::to_string(latest.avro.as_ref()).map_err(Error::json)?;
    let decoding = Decoding::new(&reader, &[(latest_id, reader.clone())], config.batch_size)?;
    let foreign: HashMap<u32, Arc<WriterSchema>> = if latest.is_foreign() {
        [(latest_id, latest)].into()
    } else {
        HashMap::new()
    };
    let schema = decoding
        .schema()
        .ok_or_else(|| Error::Unexpected("no schema to decode with".into()))?;

    let progress = handle.block_on(load_progress(&config.store, id))?;
    let sequence = progress.as_ref().map_or(0, |(p, _)| p.sequence);
    let progress = progress.map(|(p, _)| p).unwrap_or_default();

    let kafka = |context: &str| {
        let context = format!("{context} ({id})");
        move |source| Error::Kafka { context, source }
    };
    let mut consumer_config = broker::client_config(&config.bootstrap);
    consumer_config
        // it assigns itself every partition: the group id only names the reader
        .set("group.id", format!("{}-{id}-reader", config.group_prefix))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_committed")
        .set("auto.offset.reset", "earliest")
        .set("fetch.queue.backoff.ms", broker::FETCH_QUEUE_BACKOFF_MS);
    let consumer: BaseConsumer<QuietEof> = consumer_config
        .create_with_context(QuietEof)
        .map_err(kafka("creating the consumer"))?;
    let partitions = broker::retry_transient(
        "reading the product topic's partitions",
        Duration::from_secs(120),
        || broker::partitions_of(&consumer, &topics.product, Duration::from_secs(10)),
    )
    .map_err(kafka("reading the product topic's partitions"))?;
    if partitions.is_empty() {
        return Err(Error::Unexpected(format!(
            "topic {} has no partitions; create the product's topics first (`meshline up` does)",
            topics.product
        )));
    }

    let mut runners = Vec::new();
    for view in &product.descriptor.views {
        let mut runner = ViewRunner::new(
            id,
            view,
            schema.clone(),
            partitions.iter().copied(),
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
            for path in handle.block_on(super::listing::manifests(store, id, &view.name))? {
                let manifest = read_manifest(handle, store, &path)?;
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
    let mut tables = Vec::new();
    for view in &product.descriptor.views {
        tables.push(handle.block_on(Table::open(
            &config.store,
            id,
            view,
            config.iceberg_catalog.as_ref(),
        ))?);
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
        for &partition in &partitions {
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
        }
        Some(
            broker::producer_config(&config.bootstrap)
                .create::<FutureProducer>()
                .map_err(kafka("creating the dead-letter producer"))?,
        )
    } else {
        None
    };

    let mut assignment = TopicPartitionList::new();
    for &partition in &partitions {
        let start = match progress_start(&progress, &product.descriptor.views, partition) {
            Some(offset) => Offset::Offset(offset),
            None => Offset::Beginning,
        };
        assignment
            .add_partition_offset(&topics.product, partition, start)
            .map_err(kafka("assigning partitions"))?;
    }
    consumer
        .assign(&assignment)
        .map_err(kafka("assigning partitions"))?;
    tracing::info!(
        product = id,
        views = runners.len(),
        sequence,
        "snapshotter started"
    );
    let _consuming = Consuming::start(&metrics.consuming);

    let mut work = Loop {
        handle,
        config,
        product,
        metrics,
        runners,
        tables,
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
        last_received: SystemTime::now(),
    };
    let mut last_checkpoint = Instant::now();
    while !stop.is_cancelled() {
        let deadline = Instant::now() + Duration::from_millis(200);
        let mut received = 0usize;
        while let Some(message) = consumer.poll(deadline.saturating_duration_since(Instant::now()))
        {
            match message {
                Ok(message) => {
                    work.push(&message)?;
                    received += 1;
                }
                Err(KafkaError::PartitionEOF(partition)) => {
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
        if received > 0 {
            work.last_received = SystemTime::now();
        }
        // a span for the batches that brought records, not for every quiet poll
        let _span = (received > 0).then(|| {
            tracing::info_span!("snapshot_batch", product = id, records = received).entered()
        });
        let closed = work.flush_batch()? | work.advance()?;
        let replaying = work.runners.iter().any(ViewRunner::replaying);
        if !replaying
            && (closed || (work.dirty && last_checkpoint.elapsed() >= config.checkpoint_interval))
        {
            work.checkpoint()?;
            last_checkpoint = Instant::now();
        }
    }
    work.flush_batch()?;
    // mid-replay, the last checkpoint stays: the next start replays again
    if !work.runners.iter().any(ViewRunner::replaying) {
        work.checkpoint()?;
    }
    tracing::info!(product = id, "snapshotter stopped at a checkpoint");
    Ok(())
}

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
            let step = self.runners[i].advance(now)?;
            closed |= self.execute(i, step, &empty_rows(), &[])?;
        }
        Ok(closed)
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
        if let Some(table) = self.tables[view].as_mut() {
            for manifest in &step.closed {
                self.handle
                    .block_on(table.commit(&self.config.store, manifest))?;
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
        let runner = &self.runners[view];
        let counts = runner.counts;
        let id = self.id().to_owned();
        let labels = [ProductId(&id).domain(), id.as_str(), name.as_str()];
        let m = self.metrics;
        set_counter(&m.rows.with_label_values(&labels), counts.taken);
        let policy = match runner.view().late {
            LatePolicy::Drop => ("drop", counts.late_dropped),
            LatePolicy::Dlq => ("dlq", counts.late_dead_lettered),
            LatePolicy::Amend => ("amend", counts.late_amended),
        };
        set_counter(
            &m.late.with_label_values(&[
                ProductId(&id).domain(),
                id.as_str(),
                name.as_str(),
                policy.0,
            ]),
            policy.1,
        );
        m.held
            .with_label_values(&labels)
            .set(i64::try_from(runner.held()).unwrap_or(i64::MAX));
        m.spilled
            .with_label_values(&labels)
            .set(i64::try_from(runner.spilled()).unwrap_or(i64::MAX));
        if let Some(through) = runner.progress().closed_through {
            m.watermark.with_label_values(&labels).set(through / 1000);
        }
        m.snapshots
            .with_label_values(&labels)
            .inc_by(step.closed.len() as u64);
        let lateness = runner.view().allowed_lateness.0;
        if self.config.lineage.enabled() {
            for manifest in &step.closed {
                self.report(manifest);
            }
        }
        for manifest in &step.closed {
            if manifest.version == 1 {
                if let Some(delay) = delay(&manifest.window_end, lateness, self.last_received) {
                    m.delay.with_label_values(&labels).observe(delay);
                }
            }
            tracing::info!(
                product = %manifest.product,
                view = %manifest.view,
                window = %manifest.window,
                version = manifest.version,
                rows = manifest.rows,
                "snapshot written"
            );
        }
        Ok(!step.closed.is_empty())
    }

    /// Reports a window version written as an OpenLineage run of job
    /// `snapshot.<product>.<view>` (`START` and `COMPLETE`; the same run id in any replay): the
    /// product topic's events of the window in, the view's rows and files out.
    fn report(&self, manifest: &Manifest) {
        let lineage = &self.config.lineage;
        let naming = Naming::new(&self.config.bootstrap, Some(&self.config.store.uri("")));
        let topic = &self.product.topics().product;
        let events: u64 = manifest.sources.values().map(|s| s.events).sum();
        let mut input = naming.topic(topic, Some(self.product));
        input["inputFacets"] = json!({
            "dataQualityMetrics": facet("1-0-3/DataQualityMetricsInputDatasetFacet", json!({
                "rowCount": events,
                "columnMetrics": {},
            })),
        });
        let mut output = naming.view(&manifest.product, &manifest.view);
        output["outputFacets"] = json!({
            "outputStatistics": facet("1-0-2/OutputStatisticsOutputDatasetFacet", json!({
                "rowCount": manifest.rows,
                "size": manifest.files.iter().map(|f| f.bytes).sum::<u64>(),
                "fileCount": manifest.files.len(),
            })),
        });
        let run = Run::of(&format!(
            "{}/{}/{}/{}",
            manifest.product, manifest.view, manifest.window, manifest.version
        ))
        .nominal(
            &lineage::time(&manifest.window_start).unwrap_or_default(),
            &lineage::time(&manifest.window_end).unwrap_or_default(),
        );
        let job = || {
            Job {
            name: format!("snapshot.{}.{}", manifest.product, manifest.view),
            description: format!(
                "meshline's snapshotter writes window {} of view {} of {} (version {}) from {topic}",
                manifest.window, manifest.view, manifest.product, manifest.version
            ),
            processing: "BATCH",
            kind: "SNAPSHOT_WINDOW",
            inputs: vec![input.clone()],
            outputs: vec![output.clone()],
        }
        };
        lineage.emit(lineage.run_event(EventType::Start, &run, job()));
        lineage.emit(lineage.run_event(EventType::Complete, &run, job()));
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
        let progress = Progress {
            sequence: self.sequence,
            views: self
                .runners
                .iter()
                .map(|r| (r.view().name.clone(), r.progress()))
                .collect::<BTreeMap<_, _>>(),
        };
        let path = manifest::progress_path(self.id(), self.sequence);
        let bytes = serde_json::to_vec_pretty(&progress).map_err(Error::json)?;
        self.handle
            .block_on(self.config.store.put_new(&path, bytes))?;
        // keep the two newest
        if self.sequence > 2 {
            let old = manifest::progress_path(self.id(), self.sequence - 2);
            self.handle.block_on(self.config.store.delete(&old)).ok();
        }
        self.dirty = false;
        // what the progress no longer needs: windows past their view's keep
        let id = self.product.id();
        for (runner, table) in self.runners.iter().zip(&mut self.tables) {
            let view = runner.view();
            let Some(progress) = progress.views.get(&view.name) else {
                continue;
            };
            let expired = self.handle.block_on(retention::expire(
                &self.config.store,
                id,
                view,
                progress.closed_through,
                progress.last_manifest.as_deref(),
                table.as_mut(),
            ))?;
            if expired > 0 {
                self.metrics
                    .expired
                    .with_label_values(&[ProductId(id).domain(), id, &view.name])
                    .inc_by(expired);
            }
        }
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
