//! How workers share a product. Every `meshline snapshotter` worker (any number of processes
//! with the same `--snapshotter-group-prefix`) joins one consumer group per product,
//! `<prefix>-<product>`, on the product's topic, and fetches nothing through it (its partitions
//! stay paused): the group only assigns. For each partition it is assigned, a worker runs that
//! partition's loop ([`super::run_partition`]: the partition's pieces of every window); the
//! worker assigned partition 0 also runs the product's commit step
//! ([`super::commit::run_commits`]), which merges the pieces into the windows' snapshots. When
//! a worker stops, or dies and its session times out, the group gives its partitions to the
//! others, which resume each from the partition's progress in the store.
//!
//! Guarantee: among live members of the group, at most one runs a partition (and the commit
//! step) at a time: a worker gives a partition up (its loop stops at a checkpoint) inside the
//! rebalance, before it rejoins and the group can assign the partition elsewhere. A worker that
//! stops answering past the session timeout while still writing (a paused process) may overlap
//! with its successor: both compute the same files from the same records, the store refuses a
//! write that differs (`Conflict`), and the worker that gets it restarts from the progress.
//!
//! Limits: the group rebalances incrementally (`cooperative-sticky`): a worker joining or
//! leaving moves only some partitions, and a moved partition restores its state from the store.

use std::{
    collections::BTreeMap,
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
    commit::run_commits,
    config::SnapshotterConfig,
    metrics::{Consuming, Metrics, Settled},
    report_product, run_partition,
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

/// What a worker runs of a product, each on a thread of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Task {
    /// The commit step (with partition 0).
    Commit,
    /// A source partition's loop.
    Partition(i32),
}

/// A task running on its own thread.
struct Running {
    stop: CancellationToken,
    thread: std::thread::JoinHandle<()>,
}

/// The group member's side of a rebalance: gives partitions up before rejoining, and pauses
/// what the group assigns.
struct Member {
    product: String,
    /// The product's topic.
    topic: String,
    running: Mutex<BTreeMap<Task, Running>>,
    /// Whether the group assigned this worker its share at least once.
    joined: AtomicBool,
}

impl Member {
    /// Stops the tasks `which` selects (each at a checkpoint) and waits for them.
    fn give_up(&self, which: impl Fn(Task) -> bool) {
        let stopping: Vec<(Task, Running)> = {
            let mut running = self
                .running
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let tasks: Vec<Task> = running.keys().copied().filter(|t| which(*t)).collect();
            tasks
                .into_iter()
                .filter_map(|t| running.remove(&t).map(|r| (t, r)))
                .collect()
        };
        for (_, running) in &stopping {
            running.stop.cancel();
        }
        for (task, running) in stopping {
            if running.thread.join().is_err() {
                tracing::error!(product = %self.product, ?task, "the snapshotter's thread panicked");
            }
            tracing::info!(product = %self.product, ?task, "snapshotter gave it up");
        }
    }
}

impl ClientContext for Member {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::error!(product = %self.product, %error, reason, "Kafka client error (snapshotter group)");
    }
}

impl ConsumerContext for Member {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // give the revoked partitions up before this worker rejoins, so no other worker is
        // handed one while it still runs here; the group rebalances incrementally
        // (cooperative), so a worker joining or leaving revokes only the partitions that move
        match rebalance {
            Rebalance::Revoke(partitions) => {
                let revoked: Vec<i32> = partitions
                    .elements()
                    .iter()
                    .filter(|p| p.topic() == self.topic)
                    .map(|p| p.partition())
                    .collect();
                self.give_up(|task| match task {
                    Task::Commit => revoked.contains(&0),
                    Task::Partition(p) => revoked.contains(&p),
                });
            }
            Rebalance::Error(_) => self.give_up(|_| true),
            Rebalance::Assign(_) => {}
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            // the group elects; the product's loop reads the records
            if let Err(error) = consumer.pause(partitions) {
                tracing::warn!(product = %self.product, %error, "cannot pause the snapshotter group's partitions");
            }
            self.joined.store(true, Ordering::Release);
        }
    }
}

/// Takes part in `product`'s snapshotter group until `stop`, running the loop of each partition
/// this worker holds, and the commit step while it holds partition 0.
pub(super) fn join(
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
    let consumer: BaseConsumer<Member> = broker::client_config(&config.bootstrap)
        .set("group.id", format!("{}-{id}", config.group_prefix))
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", &timeout)
        .set("heartbeat.interval.ms", "1000")
        .set("partition.assignment.strategy", "cooperative-sticky")
        .create_with_context(Member {
            product: id.to_owned(),
            topic: topic.clone(),
            running: Mutex::new(BTreeMap::new()),
            joined: AtomicBool::new(false),
        })
        .map_err(kafka("creating the snapshotter group consumer"))?;
    consumer
        .subscribe(&[&topic])
        .map_err(kafka("joining the snapshotter group"))?;
    let mut settled = None;
    let result = loop {
        if stop.is_cancelled() {
            break Ok(());
        }
        if let Some(Err(error)) = consumer.poll(Duration::from_millis(200)) {
            tracing::warn!(product = id, %error, "snapshotter group");
        }
        let elector = consumer.context();
        if settled.is_none() && elector.joined.load(Ordering::Acquire) {
            settled = Some(Settled::start(metrics));
        }
        let assigned: Vec<i32> = match consumer.assignment() {
            Ok(assigned) => assigned
                .elements_for_topic(&topic)
                .iter()
                .map(|p| p.partition())
                .collect(),
            Err(e) => break Err(kafka("reading the snapshotter group's assignment")(e)),
        };
        let mut running = elector
            .running
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // ended without being asked (its own stop came, or it panicked): the assignment decides
        // whether it runs again
        running.retain(|_, r| !r.thread.is_finished());
        if stop.is_cancelled() {
            continue;
        }
        let mut wanted: Vec<Task> = assigned.iter().map(|p| Task::Partition(*p)).collect();
        if assigned.contains(&0) {
            wanted.push(Task::Commit);
        }
        for task in wanted {
            if running.contains_key(&task) {
                continue;
            }
            match task {
                Task::Commit => {
                    tracing::info!(product = id, "this worker runs the product's commit step")
                }
                Task::Partition(partition) => {
                    tracing::info!(
                        product = id,
                        partition,
                        "this worker reads a partition of the product"
                    )
                }
            }
            running.insert(task, start(handle, config, product, metrics, task));
        }
    };
    consumer.context().give_up(|_| true);
    drop(settled);
    result
}

/// Runs `task` of `product` on a thread of its own, restarting it after an error (backoff 1 s
/// doubling to 30 s) from the progress in the store, until stopped.
fn start(
    handle: &Handle,
    config: &SnapshotterConfig,
    product: &Product,
    metrics: &Metrics,
    task: Task,
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
        // the products this worker runs the commit step of
        let _consuming = (task == Task::Commit).then(|| Consuming::start(&metrics.consuming));
        while !token.is_cancelled() {
            // each run of the commit step is an OpenLineage run of the product's snapshotter
            let run = Run::new();
            let report = |kind, run: &Run| {
                if task == Task::Commit {
                    report_product(&config, &product, kind, run);
                }
            };
            report(EventType::Start, &run);
            let result = match task {
                Task::Commit => run_commits(&handle, &config, &product, &metrics, &token),
                Task::Partition(partition) => {
                    run_partition(&handle, &config, &product, partition, &metrics, &token)
                }
            };
            match result {
                Ok(()) => {
                    report(EventType::Complete, &run);
                    break;
                }
                Err(error) => {
                    report(EventType::Fail, &run.clone().error(&error.to_string()));
                    metrics.restarts.with_label_values(&labels).inc();
                    tracing::error!(product = product.id(), ?task, %error, "snapshotter failed; restarting from its progress");
                }
            }
            handle.block_on(backoff.wait(&token));
        }
    });
    Running { stop, thread }
}
