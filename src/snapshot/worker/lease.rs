//! Which worker runs a product's snapshots. Every `meshline snapshotter` worker (any number of
//! processes with the same `--snapshotter-group-prefix`) joins one consumer group per product,
//! `<prefix>-<product>`, on the product's topic, and fetches nothing through it (its partitions
//! stay paused): the group only elects. The worker assigned partition 0 runs the product (the
//! loop of [`super::run_product`], reading all of its partitions); the others stand by. When
//! that worker stops, or dies and its session times out, the group gives partition 0 to another,
//! which resumes from the progress in the store. The broker's group assignment spreads the
//! products of a mesh over the workers.
//!
//! Guarantee: among live members of the group, at most one runs a product at a time: a worker
//! gives the product up (its loop stops at a checkpoint) inside the rebalance, before it rejoins
//! and the group can assign partition 0 elsewhere. A worker that stops answering past the
//! session timeout while still writing (a paused process) may overlap with its successor: both
//! compute the same files from the same records, the store refuses a write that differs
//! (`Conflict`), and the worker that gets it restarts from the progress.
//!
//! Limits: one worker reads all partitions of a product; a product does not yet spread over
//! several workers. The group rebalances incrementally (`cooperative-sticky`): a worker joining
//! or leaving moves a product only when partition 0 moves, and a moved product restores its
//! state from the store.

use std::{
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex,
    },
    time::Duration,
};

use rdkafka::{
    consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance},
    error::KafkaError,
    ClientContext,
};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use super::{
    config::SnapshotterConfig,
    metrics::{Metrics, Settled},
    report_product, run_product,
};
use crate::{
    backoff::Backoff,
    broker,
    lineage::{EventType, Run},
    product::{Product, ProductId},
    snapshot::{Error, Result},
};

/// How long a dead worker keeps its products: the group's session timeout.
const SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// The product's loop running on its own thread.
struct Running {
    stop: CancellationToken,
    thread: std::thread::JoinHandle<()>,
}

/// The group member's side of a rebalance: gives the product up before rejoining, and pauses
/// what the group assigns.
struct Elector {
    product: String,
    /// The product's topic.
    topic: String,
    running: Mutex<Option<Running>>,
    /// Whether the group assigned this worker its share at least once.
    joined: AtomicBool,
}

impl Elector {
    /// Stops the product's loop (at a checkpoint) and waits for it.
    fn give_up(&self) {
        let running = self
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(running) = running {
            running.stop.cancel();
            if running.thread.join().is_err() {
                tracing::error!(product = %self.product, "the snapshotter's thread panicked");
            }
            tracing::info!(product = %self.product, "snapshotter gave the product up");
        }
    }
}

impl ClientContext for Elector {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::error!(product = %self.product, %error, reason, "Kafka client error (snapshotter election)");
    }
}

impl ConsumerContext for Elector {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // give the product up before this worker rejoins, so no other worker is handed it while
        // it still runs here; the group rebalances incrementally (cooperative), so a worker
        // joining or leaving revokes partition 0 only when it moves
        let revoked = match rebalance {
            Rebalance::Revoke(partitions) => partitions
                .elements()
                .iter()
                .any(|p| p.topic() == self.topic && p.partition() == 0),
            Rebalance::Error(_) => true,
            Rebalance::Assign(_) => false,
        };
        if revoked {
            self.give_up();
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            // the group elects; the product's loop reads the records
            if let Err(error) = consumer.pause(partitions) {
                tracing::warn!(product = %self.product, %error, "cannot pause the election group's partitions");
            }
            self.joined.store(true, Ordering::Release);
        }
    }
}

/// Takes part in the election of `product`'s worker until `stop`, running the product while
/// this worker holds it.
pub(super) fn elect(
    handle: &Handle,
    config: &SnapshotterConfig,
    product: &Product,
    metrics: &Metrics,
    stop: &CancellationToken,
) -> Result<()> {
    let id = product.id();
    let topic = product.topics().product;
    let kafka = |context: &str| {
        let context = format!("{context} ({id})");
        move |source| Error::Kafka { context, source }
    };
    let timeout = SESSION_TIMEOUT.as_millis().to_string();
    let consumer: BaseConsumer<Elector> = broker::client_config(&config.bootstrap)
        .set("group.id", format!("{}-{id}", config.group_prefix))
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", &timeout)
        .set("heartbeat.interval.ms", "1000")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .create_with_context(Elector {
            product: id.to_owned(),
            topic: topic.clone(),
            running: Mutex::new(None),
            joined: AtomicBool::new(false),
        })
        .map_err(kafka("creating the election consumer"))?;
    consumer
        .subscribe(&[&topic])
        .map_err(kafka("joining the snapshotter group"))?;
    let mut settled = None;
    let result = loop {
        if stop.is_cancelled() {
            break Ok(());
        }
        if let Some(Err(error)) = consumer.poll(Duration::from_millis(200)) {
            tracing::warn!(product = id, %error, "snapshotter election");
        }
        let elector = consumer.context();
        if settled.is_none() && elector.joined.load(Ordering::Acquire) {
            settled = Some(Settled::start(metrics));
        }
        let holds = match consumer.assignment() {
            Ok(assigned) => assigned.find_partition(&topic, 0).is_some(),
            Err(e) => break Err(kafka("reading the election group's assignment")(e)),
        };
        let mut running = elector
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let ended = running.as_ref().is_some_and(|r| r.thread.is_finished());
        if ended {
            // ended without being asked (its own stop came, or it panicked): the election
            // decides whether it runs again
            running.take();
        }
        if holds && running.is_none() && !stop.is_cancelled() {
            tracing::info!(product = id, "this worker runs the product's snapshots");
            *running = Some(start(handle, config, product, metrics));
        }
    };
    consumer.context().give_up();
    drop(settled);
    result
}

/// Runs `product`'s loop on a thread of its own, restarting it after an error (backoff 1 s
/// doubling to 30 s) from the progress in the store, until stopped.
fn start(
    handle: &Handle,
    config: &SnapshotterConfig,
    product: &Product,
    metrics: &Metrics,
) -> Running {
    let stop = CancellationToken::new();
    let (handle, config, product, metrics, token) = (
        handle.clone(),
        config.clone(),
        product.clone(),
        metrics.clone(),
        stop.clone(),
    );
    let thread = std::thread::spawn(move || {
        let mut backoff = Backoff::new();
        let labels = [ProductId(product.id()).domain(), product.id()];
        while !token.is_cancelled() {
            // each run of the product's loop is an OpenLineage run: it completes or fails
            let run = Run::new();
            report_product(&config, &product, EventType::Start, &run);
            match run_product(&handle, &config, &product, &metrics, &token) {
                Ok(()) => {
                    report_product(&config, &product, EventType::Complete, &run);
                    break;
                }
                Err(error) => {
                    report_product(
                        &config,
                        &product,
                        EventType::Fail,
                        &run.clone().error(&error.to_string()),
                    );
                    metrics.restarts.with_label_values(&labels).inc();
                    tracing::error!(product = product.id(), %error, "snapshotter failed; restarting from its progress");
                }
            }
            handle.block_on(backoff.wait(&token));
        }
    });
    Running { stop, thread }
}
