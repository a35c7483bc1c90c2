//! DLQ replay: re-submits dead letters to their product's `.ingress` topic after a fix (a
//! relaxed rule, a registered schema), where the gateway checks them again.
//!
//! Each re-submitted record is the original ingress record (the gateway's verdict headers
//! removed) marked with `meshline_replay_of: <dlq partition>/<offset>`. A replayed record that
//! fails again lands in the DLQ still marked, and later replays skip marked records unless asked
//! (`include_replayed`), so a rule that still fails cannot loop.
//!
//! Delivery: the replay reads the DLQ as consumer group `meshline-dlq-replay.<product>` up to the
//! end it saw when it started, and commits its position after every batch is acknowledged. A
//! replay interrupted between a batch's writes and its commit re-submits that batch when run
//! again (at least once).

use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::{
    consumer::{BaseConsumer, CommitMode, Consumer},
    error::KafkaError,
    message::Message,
    producer::FutureProducer,
    Offset, TopicPartitionList,
};

use super::{Error, Result};
use crate::outputs::headers;
use crate::{binding::kafka::Record, broker, product::Topics};
use meshline_sdk::kafka::RecordExt as _;

/// Which dead letters to replay.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    /// Only those with this reason code.
    pub reason: Option<String>,
    /// Only those dead-lettered at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Also those that are themselves replays.
    pub include_replayed: bool,
}

/// What a replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Report {
    /// Dead letters read.
    pub read: usize,
    /// Re-submitted to the ingress topic.
    pub replayed: usize,
    /// Skipped: already a replay.
    pub already_replayed: usize,
    /// Skipped: another reason or older.
    pub filtered: usize,
}

/// What to do with one dead letter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Replay,
    AlreadyReplayed,
    Filtered,
}

/// Whether a dead letter (written at `timestamp_ms`) is selected (pure).
fn verdict(record: &Record, timestamp_ms: Option<i64>, filter: &Filter) -> Verdict {
    if !filter.include_replayed && record.header(headers::REPLAY_OF).is_some() {
        return Verdict::AlreadyReplayed;
    }
    // a late event is in the product topic already: only its snapshot window missed it; a
    // record too large to forward has no payload here (it stays in the ingress topic)
    let reason = record.header(headers::REASON);
    if reason == Some(headers::LATE_EVENT.as_bytes())
        || reason == Some(crate::contract::Reason::TooLarge.code().as_bytes())
    {
        return Verdict::Filtered;
    }
    let other_reason = filter
        .reason
        .as_ref()
        .is_some_and(|r| record.header(headers::REASON) != Some(r.as_bytes()));
    let older = matches!((filter.since, timestamp_ms), (Some(since), Some(ts)) if ts < since.timestamp_millis());
    if other_reason || older {
        Verdict::Filtered
    } else {
        Verdict::Replay
    }
}

/// Replays the dead letters of `product` selected by `filter`. Blocking: run it off the async
/// runtime.
pub(crate) fn replay(bootstrap: &str, product: &str, filter: &Filter) -> Result<Report> {
    let topics = Topics::of(product);
    let kafka = |context: &str| {
        let context = context.to_owned();
        move |source: KafkaError| Error::Kafka { context, source }
    };
    let mut consumer_config = broker::client_config(bootstrap);
    consumer_config
        .set("group.id", format!("meshline-dlq-replay.{product}"))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed");
    let consumer: BaseConsumer = consumer_config
        .create()
        .map_err(kafka("creating the DLQ reader"))?;
    let producer: FutureProducer = broker::producer_config(bootstrap)
        .create()
        .map_err(kafka("creating the replay producer"))?;
    let timeout = Duration::from_secs(30);
    let partitions = crate::broker::partitions_of(&consumer, &topics.dlq, timeout)
        .map_err(kafka(&format!("reading the metadata of {}", topics.dlq)))?;
    if partitions.is_empty() {
        return Err(Error::Unexpected(format!(
            "{} does not exist; is {product} a product (`meshline products list`)?",
            topics.dlq
        )));
    }
    let mut list = TopicPartitionList::new();
    for p in &partitions {
        list.add_partition(&topics.dlq, *p);
    }
    let committed = consumer
        .committed_offsets(list, timeout)
        .map_err(kafka("reading the replay's committed position"))?;
    let mut report = Report::default();
    for partition in partitions {
        let (low, high) = consumer
            .fetch_watermarks(&topics.dlq, partition, timeout)
            .map_err(kafka("reading the DLQ's end"))?;
        let start = committed
            .find_partition(&topics.dlq, partition)
            .and_then(|e| match e.offset() {
                Offset::Offset(n) => Some(n.max(low)),
                _ => None,
            })
            .unwrap_or(low);
        if start >= high {
            continue;
        }
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(&topics.dlq, partition, Offset::Offset(start))
            .map_err(kafka("assigning a DLQ partition"))?;
        consumer
            .assign(&assignment)
            .map_err(kafka("assigning a DLQ partition"))?;
        let mut next = start;
        let mut batch = Vec::new();
        while next < high {
            let message = match consumer.poll(timeout) {
                Some(Ok(m)) => m,
                Some(Err(e)) => return Err(kafka("reading the DLQ")(e)),
                None => {
                    return Err(Error::Unexpected(format!(
                    "no record from {} partition {partition} at offset {next} within {timeout:?}",
                    topics.dlq
                )))
                }
            };
            next = message.offset() + 1;
            report.read += 1;
            let record = Record::from_message(&message);
            match verdict(&record, message.timestamp().to_millis(), filter) {
                Verdict::AlreadyReplayed => report.already_replayed += 1,
                Verdict::Filtered => report.filtered += 1,
                Verdict::Replay => {
                    let mut original = headers::original(&record);
                    original.headers.retain(|(n, _)| n != headers::REPLAY_OF);
                    original.headers.push((
                        headers::REPLAY_OF.to_owned(),
                        format!("{partition}/{}", message.offset()).into_bytes(),
                    ));
                    batch.push(original);
                }
            }
            if batch.len() >= 1_000 || next >= high {
                report.replayed += batch.len();
                submit(
                    &producer,
                    &topics.ingress,
                    partition,
                    std::mem::take(&mut batch),
                )?;
                let mut position = TopicPartitionList::new();
                position
                    .add_partition_offset(&topics.dlq, partition, Offset::Offset(next))
                    .map_err(kafka("committing the replay's position"))?;
                consumer
                    .commit(&position, CommitMode::Sync)
                    .map_err(kafka("committing the replay's position"))?;
            }
        }
    }
    Ok(report)
}

/// Writes `records` to `topic` partition `partition` and waits for every acknowledgement.
fn submit(
    producer: &FutureProducer,
    topic: &str,
    partition: i32,
    records: Vec<Record>,
) -> Result<()> {
    let mut deliveries = Vec::with_capacity(records.len());
    for record in &records {
        let delivery =
            broker::send_blocking(producer, topic, partition, record).map_err(|source| {
                Error::Kafka {
                    context: format!("re-submitting to {topic}"),
                    source,
                }
            })?;
        deliveries.push(delivery);
    }
    for delivery in futures::executor::block_on(futures::future::join_all(deliveries)) {
        match delivery {
            Ok(Ok(_)) => {}
            Ok(Err((source, _))) => {
                return Err(Error::Kafka {
                    context: format!("re-submitting to {topic}"),
                    source,
                })
            }
            Err(_) => return Err(Error::Unexpected("the replay producer went away".into())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(reason: &str, replay_of: Option<&str>) -> Record {
        let mut headers = vec![(headers::REASON.to_owned(), reason.as_bytes().to_vec())];
        if let Some(r) = replay_of {
            headers.push((headers::REPLAY_OF.to_owned(), r.as_bytes().to_vec()));
        }
        Record {
            key: None,
            headers,
            payload: None,
        }
    }

    #[test]
    fn replays_skip_replays_other_reasons_and_older_letters() {
        let filter = Filter {
            reason: Some("rule_failed".into()),
            since: DateTime::from_timestamp_millis(1_000),
            include_replayed: false,
        };
        let v = |r, ts| verdict(&r, Some(ts), &filter);
        assert_eq!(v(letter("rule_failed", None), 2_000), Verdict::Replay);
        assert_eq!(
            v(letter("rule_failed", Some("0/1")), 2_000),
            Verdict::AlreadyReplayed
        );
        assert_eq!(v(letter("bad_frame", None), 2_000), Verdict::Filtered);
        assert_eq!(v(letter("rule_failed", None), 500), Verdict::Filtered);
        let everything = Filter::default();
        assert_eq!(
            verdict(&letter("late_event", None), None, &everything),
            Verdict::Filtered,
            "late events are in the product topic: never replayed"
        );
        assert_eq!(
            verdict(&letter("too_large", None), None, &everything),
            Verdict::Filtered,
            "a letter without its payload: nothing to replay"
        );
        let again = Filter {
            include_replayed: true,
            ..Filter::default()
        };
        assert_eq!(
            verdict(&letter("bad_frame", Some("0/1")), None, &again),
            Verdict::Replay
        );
    }
}
