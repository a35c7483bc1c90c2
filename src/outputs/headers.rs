//! Output records (sans-io): what a product or dead-letter record carries besides the ingress
//! record's own key, headers and payload.
//!
//! Every output names its source (`meshline_source_topic`, `meshline_source_partition`,
//! `meshline_source_offset`): that is how a gateway that takes over a partition finds where the
//! previous one stopped. A dead letter adds why (`meshline_reason`, `meshline_rule`,
//! `meshline_message`). Incoming headers with these names are dropped, so a producer cannot
//! forge a source position or a verdict.

use rdkafka::message::{Header, OwnedHeaders};

use crate::{
    binding::{
        kafka::{Record, TRACEPARENT_HEADER as CE_TRACEPARENT},
        TRACEPARENT,
    },
    contract::Rejection,
};
#[cfg(doc)]
use meshline_sdk::kafka::{Consumed, RecordExt as _};

/// Ingress topic of the record an output came from.
pub const SOURCE_TOPIC: &str = "meshline_source_topic";
/// Ingress partition of the record an output came from.
pub const SOURCE_PARTITION: &str = "meshline_source_partition";
/// Ingress offset of the record an output came from.
pub const SOURCE_OFFSET: &str = "meshline_source_offset";
/// The stable reason code of a dead letter.
pub const REASON: &str = "meshline_reason";
/// The rule a dead letter failed, when the reason is a rule.
pub const RULE: &str = "meshline_rule";
/// What is wrong with a dead letter, for people.
pub const MESSAGE: &str = "meshline_message";
/// Reason code of a late event the snapshotter sends to the dead-letter topic (`late: dlq`).
/// `meshline dlq replay` never re-submits these: the event is in the product topic already.
pub const LATE_EVENT: &str = "late_event";
/// Set by `meshline dlq replay`: the dead letter (`<partition>/<offset>` of the DLQ) a record
/// re-submits. Kept on outputs, so a replayed record that fails again is not replayed again.
pub const REPLAY_OF: &str = "meshline_replay_of";

/// On a forwarded event: the rules marked `on_failure: none` it failed, comma-separated.
pub const WARNED: &str = "meshline_warned";
/// On a dead letter: the version of the product's subject whose contract refused it.
pub const CONTRACT_VERSION: &str = "meshline_contract_version";

/// Headers the gateway owns: never copied from an ingress record.
pub const OWNED: [&str; 8] = [
    SOURCE_TOPIC,
    SOURCE_PARTITION,
    SOURCE_OFFSET,
    REASON,
    RULE,
    MESSAGE,
    WARNED,
    CONTRACT_VERSION,
];

/// Whether `name` is a header the gateway owns (the prefix first: most are `ce_` ones).
fn owned(name: &str) -> bool {
    name.starts_with("meshline_") && OWNED.contains(&name)
}

/// Where an ingress record was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source<'a> {
    /// The ingress topic.
    pub topic: &'a str,
    /// Its partition.
    pub partition: i32,
    /// The record's offset.
    pub offset: i64,
}

/// The record to write to the product topic for an accepted ingress record.
pub fn accepted(record: Record, source: Source<'_>) -> Record {
    let mut out = carry_owned(record, 4);
    if out.header(TRACEPARENT).is_none() {
        if let Some(value) = out.header(CE_TRACEPARENT).map(<[u8]>::to_vec) {
            out.headers.push((TRACEPARENT.to_owned(), value));
        }
    }
    push_source(&mut out, source);
    out
}

/// The headers of [`accepted`] for a consumed ingress message, read once into `carried`
/// ([`Consumed::headers`]), written straight into librdkafka's form; with [`WARNED`] naming the
/// rules of `warned`, when there are any.
pub fn accepted_headers(
    carried: &[(&str, Option<&[u8]>)],
    source: Source<'_>,
    warned: &[String],
) -> OwnedHeaders {
    let mut headers = carried.iter().filter(|(key, _)| !owned(key)).fold(
        OwnedHeaders::new_with_capacity(carried.len() + 5),
        |out, (key, value)| out.insert(Header { key, value: *value }),
    );
    // the event's trace context as OpenTelemetry's Kafka instrumentation reads it, too
    if !carried.iter().any(|(key, _)| *key == TRACEPARENT) {
        if let Some((_, value)) = carried.iter().find(|(key, _)| *key == CE_TRACEPARENT) {
            headers = headers.insert(Header {
                key: TRACEPARENT,
                value: *value,
            });
        }
    }
    let (mut partition, mut offset) = (itoa::Buffer::new(), itoa::Buffer::new());
    let headers = headers
        .insert(Header {
            key: SOURCE_TOPIC,
            value: Some(source.topic),
        })
        .insert(Header {
            key: SOURCE_PARTITION,
            value: Some(partition.format(source.partition)),
        })
        .insert(Header {
            key: SOURCE_OFFSET,
            value: Some(offset.format(source.offset)),
        });
    if warned.is_empty() {
        return headers;
    }
    headers.insert(Header {
        key: WARNED,
        value: Some(&warned.join(",")),
    })
}

/// The record to write to the dead-letter topic for a refused ingress record, refused by the
/// contract of `contract_version` (when one was loaded).
pub fn dead_letter(
    record: Record,
    source: Source<'_>,
    rejection: &Rejection,
    contract_version: Option<u32>,
) -> Record {
    let mut out = carry_owned(record, 7);
    push_source(&mut out, source);
    out.headers.push((
        REASON.to_owned(),
        rejection.reason.code().as_bytes().to_vec(),
    ));
    if let Some(rule) = &rejection.rule {
        out.headers
            .push((RULE.to_owned(), rule.as_bytes().to_vec()));
    }
    out.headers
        .push((MESSAGE.to_owned(), rejection.message.as_bytes().to_vec()));
    if let Some(version) = contract_version {
        out.headers.push((
            CONTRACT_VERSION.to_owned(),
            version.to_string().into_bytes(),
        ));
    }
    out
}

/// Bytes a record's key, payload and headers take in a record batch, counted high (with the
/// batch's own overhead): what the producer's `message.max.bytes` and the topic's
/// `max.message.bytes` are compared with.
pub fn wire_size<'a>(
    key: Option<&[u8]>,
    payload: Option<&[u8]>,
    headers: impl IntoIterator<Item = (&'a str, Option<&'a [u8]>)>,
) -> usize {
    RECORD_OVERHEAD
        + key.map_or(0, <[u8]>::len)
        + payload.map_or(0, <[u8]>::len)
        + headers
            .into_iter()
            .map(|(name, value)| header_size(name, value.map_or(0, <[u8]>::len)))
            .sum::<usize>()
}

/// A record batch's header and a record's own fields, counted high.
const RECORD_OVERHEAD: usize = 128;

fn header_size(name: &str, value: usize) -> usize {
    // two varint lengths, each at most 5 bytes
    name.len() + value + 10
}

/// The longest `meshline_message` a dead letter carries.
const MAX_MESSAGE: usize = 4096;

/// The dead letter of a record that cannot be written as it is (it, or its dead letter, is over
/// `limit` bytes): never more than `limit` bytes, so that nothing can stop its partition. It
/// names the record's coordinates and the reason, and carries the record's headers in order while
/// they fit, then its key if it fits; never its payload, which stays in the ingress topic at the
/// offset the letter names. What was left out is said in `meshline_message`.
pub fn fitted_dead_letter(
    record: Record,
    source: Source<'_>,
    rejection: &Rejection,
    contract_version: Option<u32>,
    limit: usize,
) -> Record {
    let mut rejection = rejection.clone();
    truncate(&mut rejection.message, MAX_MESSAGE);
    let mut out = dead_letter(Record::default(), source, &rejection, contract_version);
    // room for the note on what was left out
    let mut size = record_size(&out) + 256;
    let mut kept = Vec::new();
    let (mut dropped, mut dropped_bytes) = (0usize, 0usize);
    for (name, value) in record.headers {
        if owned(&name) {
            continue;
        }
        let bytes = header_size(&name, value.len());
        if size + bytes <= limit {
            size += bytes;
            kept.push((name, value));
        } else {
            dropped += 1;
            dropped_bytes += bytes;
        }
    }
    out.headers.splice(0..0, kept);
    let mut left_out = Vec::new();
    if dropped > 0 {
        left_out.push(format!("{dropped} of its headers ({dropped_bytes} bytes)"));
    }
    match record.key {
        Some(key) if size + key.len() <= limit => out.key = Some(key),
        Some(key) => left_out.push(format!("its key ({} bytes)", key.len())),
        None => {}
    }
    if record.payload.is_some() {
        left_out.push("its payload".to_owned());
    }
    if !left_out.is_empty() {
        let note = format!(
            "; left out to fit {limit} bytes: {} (the record stays in {} partition {} offset {})",
            left_out.join(", "),
            source.topic,
            source.partition,
            source.offset
        );
        if let Some((_, message)) = out.headers.iter_mut().rev().find(|(n, _)| n == MESSAGE) {
            message.extend_from_slice(note.as_bytes());
        }
    }
    out
}

fn record_size(record: &Record) -> usize {
    wire_size(
        record.key.as_deref(),
        record.payload.as_deref(),
        record
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), Some(value.as_slice()))),
    )
}

/// Cuts `text` to at most `max` bytes, at a character boundary.
fn truncate(text: &mut String, max: usize) {
    if text.len() > max {
        let mut at = max;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        text.truncate(at);
        text.push('…');
    }
}

/// The ingress record a dead letter was made from: its headers without the gateway's.
pub fn original(dead_letter: &Record) -> Record {
    carry(dead_letter, 1)
}

/// The ingress offset an output record came from, if it came from `topic`.
pub fn source_offset(headers: &[(String, Vec<u8>)], topic: &str) -> Option<i64> {
    let find = |name: &str| {
        headers
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    };
    if find(SOURCE_TOPIC)? != topic.as_bytes() {
        return None;
    }
    std::str::from_utf8(find(SOURCE_OFFSET)?).ok()?.parse().ok()
}

fn carry(record: &Record, extra: usize) -> Record {
    let mut headers = Vec::with_capacity(record.headers.len() + extra);
    headers.extend(
        record
            .headers
            .iter()
            .filter(|(name, _)| !owned(name))
            .cloned(),
    );
    Record {
        key: record.key.clone(),
        headers,
        payload: record.payload.clone(),
    }
}

/// `record` without the headers the gateway owns, with room for `extra` more.
fn carry_owned(mut record: Record, extra: usize) -> Record {
    record.headers.retain(|(name, _)| !owned(name));
    record.headers.reserve(extra);
    record
}

fn push_source(out: &mut Record, source: Source<'_>) {
    out.headers
        .push((SOURCE_TOPIC.to_owned(), source.topic.as_bytes().to_vec()));
    out.headers.push((
        SOURCE_PARTITION.to_owned(),
        source.partition.to_string().into_bytes(),
    ));
    out.headers.push((
        SOURCE_OFFSET.to_owned(),
        source.offset.to_string().into_bytes(),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{contract::Reason, product::OnFailure};
    use meshline_sdk::kafka::{Consumed, RecordExt as _};

    fn consumed(record: &Record) -> rdkafka::message::OwnedMessage {
        rdkafka::message::OwnedMessage::new(
            record.payload.clone(),
            record.key.clone(),
            SOURCE.topic.to_owned(),
            rdkafka::Timestamp::NotAvailable,
            SOURCE.partition,
            SOURCE.offset,
            Some(record.owned_headers()),
        )
    }

    /// The headers written from a consumed message are those of the record-based path, forged
    /// verdicts dropped.
    #[test]
    fn headers_of_a_consumed_message_equal_the_records() {
        let mut forged = ingress();
        forged.headers.push((REASON.to_owned(), b"none".to_vec()));
        for record in [ingress(), forged] {
            let expected = accepted(record.clone(), SOURCE).headers;
            let message = consumed(&record);
            let got = Record::from_message(&rdkafka::message::OwnedMessage::new(
                None,
                None,
                String::new(),
                rdkafka::Timestamp::NotAvailable,
                0,
                0,
                Some(accepted_headers(
                    Consumed::new(&message).headers(),
                    SOURCE,
                    &[],
                )),
            ))
            .headers;
            assert_eq!(got, expected);
        }
    }

    fn ingress() -> Record {
        Record {
            key: Some(b"user-1".to_vec()),
            headers: vec![
                ("ce_id".into(), b"42".to_vec()),
                (CE_TRACEPARENT.into(), TRACE.to_vec()),
                (SOURCE_OFFSET.into(), b"0".to_vec()),
                (REASON.into(), b"forged".to_vec()),
                (REPLAY_OF.into(), b"1/7".to_vec()),
            ],
            payload: Some(vec![0, 0, 0, 0, 1, 2]),
        }
    }

    const TRACE: &[u8] = b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    const SOURCE: Source<'static> = Source {
        topic: "player.play-events.ingress",
        partition: 3,
        offset: 1234,
    };

    #[test]
    fn an_output_keeps_the_record_and_names_its_source_and_forged_headers_are_dropped() {
        let out = accepted(ingress(), SOURCE);
        assert_eq!(out.key.as_deref(), Some(&b"user-1"[..]));
        assert_eq!(out.payload, ingress().payload);
        assert_eq!(out.header("ce_id"), Some(&b"42"[..]));
        assert_eq!(out.header(REPLAY_OF), Some(&b"1/7"[..]));
        // the trace context twice: as CloudEvents and as OpenTelemetry's Kafka instrumentation
        // read it
        assert_eq!(out.header(CE_TRACEPARENT), Some(TRACE));
        assert_eq!(out.header(TRACEPARENT), Some(TRACE));
        assert_eq!(out.header(REASON), None);
        assert_eq!(out.header(SOURCE_PARTITION), Some(&b"3"[..]));
        assert_eq!(
            source_offset(&out.headers, "player.play-events.ingress"),
            Some(1234)
        );
        assert_eq!(source_offset(&out.headers, "other.ingress"), None);
    }

    #[test]
    fn a_dead_letter_says_why_and_gives_back_the_original() {
        let rejection = Rejection {
            reason: Reason::RuleFailed,
            rule: Some("positive_duration".into()),
            message: "rule failed".into(),
            on_failure: OnFailure::Dlq,
        };
        let out = dead_letter(ingress(), SOURCE, &rejection, Some(3));
        assert_eq!(out.header(REASON), Some(&b"rule_failed"[..]));
        assert_eq!(out.header(CONTRACT_VERSION), Some(&b"3"[..]));
        assert_eq!(out.header(RULE), Some(&b"positive_duration"[..]));
        assert_eq!(out.header(MESSAGE), Some(&b"rule failed"[..]));
        let back = original(&out);
        assert_eq!(back.header(REASON), None);
        assert_eq!(back.header(SOURCE_OFFSET), None);
        assert_eq!(back.header(CONTRACT_VERSION), None);
        assert_eq!(back.header("ce_id"), Some(&b"42"[..]));
        assert_eq!(back.payload, ingress().payload);
    }

    #[test]
    fn a_dead_letter_always_fits_and_says_what_it_left_out() {
        let limit = 100_000;
        let mut record = ingress();
        record.key = Some(vec![b'k'; 20_000]);
        record.payload = Some(vec![0; 900_000]);
        for i in 0..2_000 {
            record.headers.push((format!("h{i}"), vec![b'x'; 500]));
        }
        let rejection = Rejection::new(Reason::TooLarge, "x".repeat(50_000));
        let out = fitted_dead_letter(record.clone(), SOURCE, &rejection, Some(2), limit);
        assert!(record_size(&out) <= limit, "{} bytes", record_size(&out));
        assert_eq!(out.payload, None);
        assert_eq!(out.header(REASON), Some(&b"too_large"[..]));
        assert_eq!(
            source_offset(&out.headers, "player.play-events.ingress"),
            Some(1234)
        );
        let message = String::from_utf8(out.header(MESSAGE).unwrap().to_vec()).unwrap();
        assert!(message.len() < 5_000, "the message is bounded");
        assert!(
            message.contains("of its headers") && message.contains("its payload"),
            "{message}"
        );
        assert!(message.contains("player.play-events.ingress partition 3 offset 1234"));
        // the headers kept are the first ones, in order, without forged verdicts
        let back = original(&out);
        assert_eq!(back.header("ce_id"), Some(&b"42"[..]));
        assert_eq!(back.header(REASON), None);
        assert!(back.headers.len() > 10 && back.headers.len() < 2_000);
        // a small record keeps everything but its payload
        let small = fitted_dead_letter(ingress(), SOURCE, &rejection, None, limit);
        assert_eq!(small.key, ingress().key);
        assert_eq!(
            original(&small).headers,
            original(&dead_letter(ingress(), SOURCE, &rejection, None)).headers
        );
        // even a limit below the letter's own headers gives a letter (the broker's limit is
        // never that small) rather than nothing
        let tiny = fitted_dead_letter(record, SOURCE, &rejection, None, 10);
        assert_eq!(tiny.header(REASON), Some(&b"too_large"[..]));
    }
}
