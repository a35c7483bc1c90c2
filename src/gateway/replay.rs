//! DLQ replay: re-submits dead letters to their product's `.ingress` topic after a fix (a
//! relaxed rule, a registered schema), where the gateway checks them again.
//!
//! Each re-submitted record is the original ingress record (the gateway's verdict headers
//! removed) marked with `meshline_replay_of: <dlq partition>/<offset>`, written to the ingress
//! partition of the letter's DLQ partition. A replayed record that fails again lands in the DLQ
//! still marked, and later replays skip marked records unless asked (`include_replayed`), so a
//! rule that still fails cannot loop.
//!
//! Delivery: **each selected letter re-submitted once**. The replay reads the DLQ by offsets,
//! from its start to the end it saw when it started, and keeps no position: letters it does not
//! select stay replayable by a later replay with another filter. It finds the letters replayed
//! before by the marks in the ingress partitions they went to, and re-submits only the others;
//! the mark is in the re-submitted record itself, so an interrupted replay leaves nothing half
//! done. Limits: a re-submitted record that has left the ingress topic (retention) no longer
//! counts as a replay; a replay reads the ingress partitions of the letters it selects, so its
//! cost grows with the ingress topic's retained size; two replays of one product run at the same
//! time can both re-submit a letter.

use std::time::Duration;

use chrono::{DateTime, Utc};
use rdkafka::{
    consumer::{BaseConsumer, Consumer},
    error::KafkaError,
    message::{Headers as _, Message},
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
    /// Re-submitted to the ingress topic (with `dry_run`, those that would be).
    pub replayed: usize,
    /// Skipped: already a replay.
    pub already_replayed: usize,
    /// Skipped: re-submitted by an earlier replay.
    pub replayed_before: usize,
    /// Skipped: another reason or older.
    pub filtered: usize,
    /// The letters re-submitted (or that would be): `<dlq partition>/<offset>`, reason, `ce_id`.
    pub letters: Vec<(String, String, String)>,
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

/// Replays the dead letters of `product` selected by `filter`; with `dry_run`, only says which
/// it would. Blocking: run it off the async runtime.
pub(crate) fn replay(
    bootstrap: &str,
    product: &str,
    filter: &Filter,
    dry_run: bool,
) -> Result<Report> {
    let topics = Topics::of(product);
    let kafka = |context: &str| {
        let context = context.to_owned();
        move |source: KafkaError| Error::Kafka { context, source }
    };
    // a reader by offsets: no group position is read or committed
    let consumer: BaseConsumer = broker::client_config(bootstrap)
        .set("group.id", format!("meshline-dlq-replay.{product}"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .create()
        .map_err(kafka("creating the DLQ reader"))?;
    let producer: FutureProducer = broker::producer_config(bootstrap)
        .create()
        .map_err(kafka("creating the replay producer"))?;
    let partitions = crate::broker::partitions_of(&consumer, &topics.dlq, TIMEOUT)
        .map_err(kafka(&format!("reading the metadata of {}", topics.dlq)))?;
    if partitions.is_empty() {
        return Err(Error::Unexpected(format!(
            "{} does not exist; is {product} a product (`meshline products list`)?",
            topics.dlq
        )));
    }
    let mut report = Report::default();
    for partition in partitions {
        let mut selected = Vec::new();
        read_partition(&consumer, &topics.dlq, partition, |message| {
            report.read += 1;
            let record = Record::from_message(message);
            match verdict(&record, message.timestamp().to_millis(), filter) {
                Verdict::AlreadyReplayed => report.already_replayed += 1,
                Verdict::Filtered => report.filtered += 1,
                Verdict::Replay => selected.push((message.offset(), record)),
            }
        })?;
        if selected.is_empty() {
            continue;
        }
        let mut before = std::collections::HashSet::new();
        read_partition(&consumer, &topics.ingress, partition, |message| {
            let marked = message
                .headers()
                .and_then(|h| {
                    h.iter()
                        .find(|h| h.key == headers::REPLAY_OF)
                        .and_then(|h| h.value)
                })
                .map(<[u8]>::to_vec);
            before.extend(marked);
        })?;
        let mut batch = Vec::new();
        for (offset, record) in selected {
            let mark = format!("{partition}/{offset}");
            if before.contains(mark.as_bytes()) {
                report.replayed_before += 1;
                continue;
            }
            let text = |name| {
                record
                    .header(name)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default()
            };
            report
                .letters
                .push((mark.clone(), text(headers::REASON), text("ce_id")));
            let mut original = headers::original(&record);
            original.headers.retain(|(n, _)| n != headers::REPLAY_OF);
            original
                .headers
                .push((headers::REPLAY_OF.to_owned(), mark.into_bytes()));
            batch.push(original);
        }
        report.replayed += batch.len();
        if !dry_run {
            for chunk in batch.chunks(1_000) {
                submit(&producer, &topics.ingress, partition, chunk)?;
            }
        }
    }
    Ok(report)
}

/// How long a read or metadata request may take.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Reads `topic` partition `partition` from its start to the end it has now, handing each
/// record to `each`.
fn read_partition(
    consumer: &BaseConsumer,
    topic: &str,
    partition: i32,
    mut each: impl FnMut(&rdkafka::message::BorrowedMessage<'_>),
) -> Result<()> {
    let kafka = |context: &str| {
        let context = format!("{context} ({topic} partition {partition})");
        move |source: KafkaError| Error::Kafka { context, source }
    };
    let (low, high) = consumer
        .fetch_watermarks(topic, partition, TIMEOUT)
        .map_err(kafka("reading the partition's ends"))?;
    if low >= high {
        return Ok(());
    }
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, partition, Offset::Offset(low))
        .map_err(kafka("assigning the partition"))?;
    consumer
        .assign(&assignment)
        .map_err(kafka("assigning the partition"))?;
    let mut next = low;
    while next < high {
        match consumer.poll(TIMEOUT) {
            Some(Ok(message)) => {
                next = message.offset() + 1;
                each(&message);
            }
            Some(Err(e)) => return Err(kafka("reading")(e)),
            None => {
                return Err(Error::Unexpected(format!(
                "no record from {topic} partition {partition} at offset {next} within {TIMEOUT:?}"
            )))
            }
        }
    }
    Ok(())
}

/// Writes `records` to `topic` partition `partition` and waits for every acknowledgement.
fn submit(
    producer: &FutureProducer,
    topic: &str,
    partition: i32,
    records: &[Record],
) -> Result<()> {
    let mut deliveries = Vec::with_capacity(records.len());
    for record in records {
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
