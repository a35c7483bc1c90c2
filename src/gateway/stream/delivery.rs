//! Delivery accounting: the outputs in flight, grouped in batches between checkpoints, and the
//! producer's reports counted per batch, so that a batch's ingress offsets are committed only
//! once every output before them is acknowledged.

use std::{
    collections::{BTreeSet, VecDeque},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Condvar, Mutex,
    },
    time::{Duration, Instant},
};

use rdkafka::{
    error::KafkaError,
    message::Message,
    producer::{DeliveryResult, ProducerContext},
    ClientContext, Offset, TopicPartitionList,
};
use rustc_hash::FxHashMap;

use super::{
    super::{Error, Result},
    Route,
};

/// An ingress partition (the topic shared, not copied per record).
pub(super) type PartitionKey = (Arc<str>, i32);

/// Batches of outputs in flight at most: the one being written and those sealed at a
/// checkpoint, waiting for their acknowledgements.
pub(super) const BATCHES: usize = 8;

/// The gateway producer's delivery reports, counted per batch. A batch's offsets are committed
/// once all of its outputs are acknowledged, so a report only has to be counted and say whether
/// its output failed: no future, channel or allocation per output.
pub(super) struct Deliveries {
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
    pub(super) fn failed(&self) -> std::sync::MutexGuard<'_, Option<(KafkaError, String)>> {
        self.failed
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(super) fn slot(&self, batch: u64) -> &AtomicU64 {
        &self.reported[(batch % BATCHES as u64) as usize]
    }

    /// Whether every output of `batch` has been reported.
    pub(super) fn done(&self, batch: &Batch) -> bool {
        self.slot(batch.id).load(Ordering::SeqCst) >= batch.sent
    }

    /// Waits until every output of `batch` has been reported (outputs never time out: each
    /// gets its report).
    pub(super) fn wait(&self, batch: &Batch) {
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

impl Deliveries {
    /// Counts one report of an output of `batch`, and keeps the first failure (an output not
    /// delivered, and where it went).
    fn report(&self, batch: u64, failure: Option<(KafkaError, String)>) {
        if let Some(failure) = failure {
            self.failed().get_or_insert(failure);
        }
        self.slot(batch).fetch_add(1, Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) {
            let _waiting = self.failed();
            self.reached.notify_all();
        }
    }
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    /// The output's batch number.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, batch: usize) {
        let failure = result.as_ref().err().map(|(error, message)| {
            let at = format!("{} partition {}", message.topic(), message.partition());
            (error.clone(), at)
        });
        self.report(batch as u64, failure);
    }
}

/// The outputs written between two checkpoints, and the offsets their acknowledgement lets
/// commit.
#[derive(Default)]
pub(super) struct Batch {
    /// Its number (the delivery reports' opaque).
    pub(super) id: u64,
    /// Outputs handed to the producer.
    pub(super) sent: u64,
    /// Next offset to commit, per ingress partition.
    pub(super) positions: FxHashMap<PartitionKey, i64>,
    /// Event times (ms) to observe end-to-end latency once acknowledged, per product.
    pub(super) times: Vec<(Arc<Route>, i64)>,
}

/// Outputs in flight.
#[derive(Default)]
pub(super) struct Pending {
    /// The batch being written.
    pub(super) current: Batch,
    /// Batches sealed at a checkpoint, oldest first, until all their outputs are acknowledged.
    pub(super) sealed: VecDeque<Batch>,
    /// Ingress offsets already written by an earlier owner, per partition.
    pub(super) written: FxHashMap<PartitionKey, BTreeSet<i64>>,
    /// Records of the current batch (skipped ones too).
    pub(super) records: usize,
    pub(super) transaction_open: bool,
    /// An error from a rebalance callback, reported by the next poll.
    pub(super) failed: Option<Error>,
}

impl Pending {
    /// Whether `offset` of `key` was written by an earlier owner (found at the outputs' tails):
    /// then it is skipped, once, and its position moves past it.
    pub(super) fn skip_written(&mut self, key: &PartitionKey, offset: i64) -> bool {
        let already = self
            .written
            .get_mut(key)
            .is_some_and(|written| written.remove(&offset));
        if already {
            self.current.positions.insert(key.clone(), offset + 1);
        }
        already
    }

    /// Counts one output of the current batch, sent: its ingress position moves past it.
    pub(super) fn sent(&mut self, key: PartitionKey, offset: i64) {
        self.records += 1;
        self.current.sent += 1;
        self.current.positions.insert(key, offset + 1);
    }

    /// Whether a checkpoint is due: `records` taken since the last, or records taken and
    /// `interval` passed since `last`.
    pub(super) fn due(&self, records: usize, interval: Duration, last: Instant) -> bool {
        self.records >= records
            || (!self.current.positions.is_empty() && last.elapsed() >= interval)
    }

    /// Seals the current batch (when it has anything to commit) and starts the next, whose
    /// delivery slot `reset` clears. Returns whether [`BATCHES`] are then in flight, less the
    /// one being written: the oldest must be completed before the next seal.
    pub(super) fn seal(&mut self, reset: impl FnOnce(u64)) -> bool {
        self.records = 0;
        if self.current.sent == 0 && self.current.positions.is_empty() {
            return false;
        }
        let id = self.current.id + 1;
        // the batch that used this slot is committed: fewer than `BATCHES` are in flight
        reset(id);
        let next = Batch {
            id,
            times: Vec::with_capacity(self.current.times.len()),
            ..Batch::default()
        };
        let sealed = std::mem::replace(&mut self.current, next);
        self.sealed.push_back(sealed);
        self.sealed.len() >= BATCHES - 1
    }
}

/// The offsets to commit for `positions`.
pub(super) fn offsets_of(positions: &FxHashMap<PartitionKey, i64>) -> Result<TopicPartitionList> {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key(partition: i32) -> PartitionKey {
        (Arc::from("player.play-events.ingress"), partition)
    }

    #[test]
    fn a_batch_is_done_once_every_output_is_reported_and_the_first_failure_is_kept() {
        let deliveries = Arc::new(Deliveries::default());
        let batch = Batch {
            id: 3,
            sent: 2,
            ..Batch::default()
        };
        deliveries.report(3, None);
        assert!(!deliveries.done(&batch));
        // a report of another batch in flight does not count for this one
        deliveries.report(4, None);
        assert!(!deliveries.done(&batch));

        let reporter = {
            let deliveries = deliveries.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                let full =
                    KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull);
                deliveries.report(3, Some((full, "first".into())));
                deliveries.report(3, Some((KafkaError::Canceled, "second".into())));
            })
        };
        deliveries.wait(&batch);
        assert!(deliveries.done(&batch));
        reporter.join().unwrap();
        let failed = deliveries.failed().clone();
        assert_eq!(failed.map(|(_, at)| at).as_deref(), Some("first"));
    }

    #[test]
    fn offsets_written_by_an_earlier_owner_are_skipped_once() {
        let mut pending = Pending::default();
        pending.written.insert(key(0), BTreeSet::from([5, 6]));
        assert!(pending.skip_written(&key(0), 5));
        assert!(!pending.skip_written(&key(0), 5), "skipped once only");
        assert!(
            !pending.skip_written(&key(1), 6),
            "another partition's offset"
        );
        assert_eq!(pending.current.positions[&key(0)], 6);
        assert_eq!(pending.current.sent, 0, "a skipped record is not an output");
    }

    #[test]
    fn a_checkpoint_is_due_by_records_or_by_time_with_something_to_commit() {
        let mut pending = Pending::default();
        let long_ago = Instant::now() - Duration::from_secs(1);
        assert!(
            !pending.due(2, Duration::from_millis(100), long_ago),
            "nothing to commit"
        );
        pending.sent(key(0), 0);
        assert!(pending.due(2, Duration::from_millis(100), long_ago));
        assert!(!pending.due(2, Duration::from_secs(60), Instant::now()));
        pending.sent(key(0), 1);
        assert!(pending.due(2, Duration::from_secs(60), Instant::now()));
    }

    #[test]
    fn sealing_starts_the_next_batch_and_says_when_the_oldest_must_complete() {
        let mut pending = Pending::default();
        assert!(!pending.seal(|_| panic!("an empty batch is not sealed")));
        assert!(pending.sealed.is_empty());
        let mut reset = Vec::new();
        for (i, offset) in (0..BATCHES as i64 - 1).enumerate() {
            pending.sent(key(0), offset);
            let full = pending.seal(|slot| reset.push(slot));
            assert_eq!(full, i == BATCHES - 2, "batch {i}");
        }
        assert_eq!(reset, (1..BATCHES as u64).collect::<Vec<_>>());
        assert_eq!(pending.current.id, BATCHES as u64 - 1);
        assert_eq!(
            pending.sealed.front().map(|b| b.positions[&key(0)]),
            Some(1)
        );
        assert_eq!(pending.records, 0);
    }

    #[test]
    fn offsets_to_commit_are_the_next_to_read() {
        let positions = FxHashMap::from_iter([(key(2), 42)]);
        let offsets = offsets_of(&positions).unwrap();
        let element = offsets.elements_for_topic("player.play-events.ingress")[0].offset();
        assert_eq!(element, Offset::Offset(42));
    }
}
