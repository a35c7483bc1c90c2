//! Where a gateway resumes an ingress partition it is assigned: read from the tails of the
//! partition's two outputs (product and dead-letter partition *p*) which ingress offsets are
//! already written, so none is written twice.
//!
//! The committed group offset says where to start: the gateway commits an offset only after
//! every output before it was acknowledged. Outputs written after the last commit (a gateway
//! killed between its writes and its commit) are found at the tails and skipped. With no
//! committed offset, the gateway starts at the beginning and skips every source offset found in
//! the outputs (read whole): the two outputs are written independently, so the highest source
//! offset in one says nothing of which earlier ones reached the other.

use std::{collections::BTreeSet, time::Duration};

use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    error::KafkaError,
    message::Message,
    types::RDKafkaErrorCode,
    Offset, TopicPartitionList,
};

use super::{headers, Error, Result};
use crate::binding::kafka::Record;
use meshline_sdk::kafka::RecordExt as _;

/// How long a read of a tail is tried again while the broker is busy (the caller restarts
/// after that).
const PATIENCE: Duration = Duration::from_secs(120);

/// How long reading one window of an output partition may take.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// The first window read back from a tail; each next one is four times larger.
const FIRST_WINDOW: i64 = 256;

/// Where to start an ingress partition, and which offsets after it to skip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resume {
    /// The first offset to read (`None`: the beginning of the partition).
    pub start: Option<i64>,
    /// Offsets at or after `start` whose outputs are already written.
    pub written: BTreeSet<i64>,
}

/// Decides where to resume from the committed offset and the source offsets found at the tails
/// (pure): at the committed offset (the beginning without one), skipping every offset from there
/// whose output is written.
pub fn decide(committed: Option<i64>, found: &BTreeSet<i64>) -> Resume {
    Resume {
        start: committed,
        written: found
            .range(committed.unwrap_or(i64::MIN)..)
            .copied()
            .collect(),
    }
}

/// Reads the tails of `outputs` (partition `partition` of each) back until it has seen every
/// record written from ingress offsets at or after `committed` (with no committed offset, every
/// record), and returns where to resume `source_topic`.
///
/// A predecessor's writes can still be landing: a gateway killed, or one that lost the
/// partition while paused, leaves produce requests in flight that the broker appends after it
/// died. When an output's newest record is recent (under 10 s old), the tails are read again
/// until they stay still for 500 ms (30 s at most), so those writes are found too.
pub fn resume(
    reader: &BaseConsumer,
    outputs: &[&str],
    partition: i32,
    source_topic: &str,
    committed: Option<i64>,
) -> Result<Resume> {
    let mut found = BTreeSet::new();
    let mut tails = Vec::new();
    let mut newest = None;
    for topic in outputs {
        let tail = scan(reader, topic, partition, source_topic, committed)?;
        found.extend(tail.offsets);
        newest = newest.max(tail.newest);
        tails.push((*topic, tail.high));
    }
    let now = chrono::Utc::now().timestamp_millis();
    if recently_written(newest, now) {
        let deadline = std::time::Instant::now() + SETTLE_FOR;
        loop {
            std::thread::sleep(SETTLE);
            let mut grew = false;
            for (topic, high) in &mut tails {
                let (_, now_high) = watermarks(reader, topic, partition)?;
                if now_high > *high {
                    let late = crate::broker::retry_transient(
                        "reading an output's tail",
                        PATIENCE,
                        || read(reader, topic, partition, *high, now_high, source_topic),
                    )
                    .map_err(|source| Error::Kafka {
                        context: format!("reading the tail of {topic} partition {partition}"),
                        source,
                    })?;
                    tracing::info!(
                        topic = *topic,
                        partition,
                        records = now_high - *high,
                        "outputs of an earlier owner landed while resuming; skipping them too"
                    );
                    found.extend(late.offsets);
                    *high = now_high;
                    grew = true;
                }
            }
            if !grew || std::time::Instant::now() >= deadline {
                break;
            }
        }
    }
    Ok(decide(committed, &found))
}

/// Outputs written this recently may have more of their writer's in flight.
const RECENT: Duration = Duration::from_secs(10);
/// How long the tails must stay still before a resume trusts them.
const SETTLE: Duration = Duration::from_millis(500);
/// How long a resume waits at most for the tails to stay still.
const SETTLE_FOR: Duration = Duration::from_secs(30);

/// Whether the newest record of the outputs (its timestamp, Unix ms) is recent at `now`.
fn recently_written(newest: Option<i64>, now: i64) -> bool {
    let recent = i64::try_from(RECENT.as_millis()).unwrap_or(i64::MAX);
    newest.is_some_and(|t| now - t < recent)
}

/// What a tail holds: source offsets found, the high watermark read at, the newest record's
/// timestamp.
struct Tail {
    offsets: Vec<i64>,
    high: i64,
    newest: Option<i64>,
}

fn watermarks(reader: &BaseConsumer, topic: &str, partition: i32) -> Result<(i64, i64)> {
    crate::broker::retry_transient("reading an output's watermarks", PATIENCE, || {
        reader.fetch_watermarks(topic, partition, READ_TIMEOUT)
    })
    .map_err(|source| Error::Kafka {
        context: format!("reading the watermarks of {topic} partition {partition}"),
        source,
    })
}

fn scan(
    reader: &BaseConsumer,
    topic: &str,
    partition: i32,
    source_topic: &str,
    floor: Option<i64>,
) -> Result<Tail> {
    let kafka = |source| Error::Kafka {
        context: format!("reading the tail of {topic} partition {partition}"),
        source,
    };
    let (low, high) = watermarks(reader, topic, partition)?;
    let mut tail = Tail {
        offsets: Vec::new(),
        high,
        newest: None,
    };
    let mut end = high;
    let mut window = FIRST_WINDOW;
    while end > low {
        let start = (end - window).max(low);
        let read = crate::broker::retry_transient("reading an output's tail", PATIENCE, || {
            read(reader, topic, partition, start, end, source_topic)
        })
        .map_err(kafka)?;
        // without a floor, nothing earlier can be left out
        let enough = floor.is_some_and(|floor| read.offsets.iter().any(|&o| o < floor));
        tail.offsets.extend(read.offsets);
        tail.newest = tail.newest.max(read.newest);
        if enough {
            break;
        }
        end = start;
        window = window.saturating_mul(4);
    }
    Ok(tail)
}

/// What a read of `[start, end)` found: source offsets and the newest record's timestamp.
struct Read {
    offsets: Vec<i64>,
    newest: Option<i64>,
}

/// The source offsets of the records of `topic`/`partition` in `[start, end)`.
fn read(
    reader: &BaseConsumer,
    topic: &str,
    partition: i32,
    start: i64,
    end: i64,
    source_topic: &str,
) -> Result<Read, KafkaError> {
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, partition, Offset::Offset(start))?;
    reader.assign(&assignment)?;
    let deadline = std::time::Instant::now() + READ_TIMEOUT;
    let mut offsets = Vec::new();
    let mut newest = None;
    while std::time::Instant::now() < deadline {
        match reader.poll(Duration::from_millis(100)) {
            Some(Ok(message)) => {
                if message.offset() >= end {
                    break;
                }
                newest = newest.max(message.timestamp().to_millis());
                let record = Record::from_message(&message);
                offsets.extend(headers::source_offset(&record.headers, source_topic));
                if message.offset() + 1 >= end {
                    break;
                }
            }
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Err(e)) => return Err(e),
            None => {}
        }
    }
    reader.unassign()?;
    if std::time::Instant::now() >= deadline {
        return Err(KafkaError::MessageConsumption(
            RDKafkaErrorCode::OperationTimedOut,
        ));
    }
    Ok(Read { offsets, newest })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_a_committed_offset_the_outputs_written_after_it_are_skipped() {
        let found = BTreeSet::from([7, 8, 10, 11]);
        let resume = decide(Some(9), &found);
        assert_eq!(resume.start, Some(9));
        assert_eq!(resume.written, BTreeSet::from([10, 11]));
    }

    #[test]
    fn only_outputs_written_lately_are_read_again_until_they_stay_still() {
        let now = 1_800_000_000_000;
        assert!(recently_written(Some(now - 2_000), now));
        assert!(!recently_written(Some(now - 60_000), now));
        assert!(!recently_written(None, now));
    }

    #[test]
    fn without_one_the_gateway_starts_at_the_beginning_and_skips_every_output_found() {
        // a kill before the first commit: the DLQ got offset 5 while the product topic got
        // only 3 (outputs of two topics are not written in order)
        let resume = decide(None, &BTreeSet::from([3, 5]));
        assert_eq!(resume.start, None);
        assert_eq!(resume.written, BTreeSet::from([3, 5]));
        assert_eq!(decide(None, &BTreeSet::new()).written, BTreeSet::new());
    }
}
