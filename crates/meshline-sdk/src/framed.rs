//! One outgoing event, written in the Kafka binding ([`crate::binding::kafka`]) straight from
//! its attributes' texts: the producer's hot path builds no [`cloudevents::Event`], whose
//! builder, attribute maps and owned copies took half of the SDK's time per event. The same
//! event is also a [`BinaryDeserializer`], `cloudevents-sdk`'s binary visitor source, so the SDK
//! can build the `Event` itself; the tests hold both ways to the same headers.

use chrono::{DateTime, Utc};
use cloudevents::{
    event::SpecVersion,
    message::{BinaryDeserializer, BinarySerializer, MessageAttributeValue, Result},
};
use uuid::{fmt::Hyphenated, Uuid};

use crate::binding::{
    kafka::{Attribute, PARTITION_KEY},
    TraceParent, TRACEPARENT,
};
use crate::kafka::Outgoing;

/// The `datacontenttype` of every event the SDK sends.
pub(crate) const CONTENT_TYPE: &str = "application/avro";

/// An event's `id`: a new UUID, or the one its type gives (a stable id the gateway recognises
/// when the same event is sent again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum EventId {
    /// A new random UUID.
    New(Uuid),
    /// The id [`crate::DomainEvent::id`] gave.
    Given(String),
}

impl std::fmt::Display for EventId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::New(uuid) => uuid.fmt(f),
            Self::Given(id) => f.write_str(id),
        }
    }
}

/// A CloudEvent (spec version 1.0) the producer sends: its context attributes and its data, a
/// Confluent-framed Avro payload.
#[derive(Debug)]
pub(crate) struct Framed<'a> {
    /// `id`.
    pub id: EventId,
    /// `source`.
    pub source: &'a str,
    /// `type`.
    pub ty: &'a str,
    /// `dataschema`: the registry's URL of the payload's schema.
    pub dataschema: &'a url::Url,
    /// `subject`.
    pub subject: Option<String>,
    /// `time`.
    pub time: DateTime<Utc>,
    /// The `partitionkey` extension, the record key.
    pub key: Option<String>,
    /// The `traceparent` extension (default: a new trace).
    pub traceparent: Option<String>,
    /// `data`.
    pub data: Vec<u8>,
}

impl Framed<'_> {
    /// The record rdkafka sends.
    pub(crate) fn outgoing(mut self) -> Outgoing {
        let data = std::mem::take(&mut self.data);
        let texts = self.texts();
        Outgoing::from_attributes(self.attributes(&texts), data)
    }

    /// The texts of the attributes not held as text.
    fn texts(&self) -> Texts {
        let mut id = [0; Hyphenated::LENGTH];
        if let EventId::New(uuid) = &self.id {
            uuid.hyphenated().encode_lower(&mut id);
        }
        Texts {
            id,
            time: self.time.to_rfc3339(),
            trace: self.traceparent.is_none().then(TraceParent::new),
        }
    }

    /// Every attribute and extension as text, in the order an `Event` visits them.
    fn attributes<'t>(&'t self, texts: &'t Texts) -> impl Iterator<Item = Attribute<'t>> {
        let id = match &self.id {
            // a hyphenated UUID is ASCII
            EventId::New(_) => std::str::from_utf8(&texts.id).unwrap_or_default(),
            EventId::Given(id) => id.as_str(),
        };
        let trace = self
            .traceparent
            .as_deref()
            .or(texts.trace.as_ref().map(TraceParent::as_str));
        let attribute = |name, text| Attribute {
            name,
            text,
            extension: false,
        };
        let extension = |name, text| Attribute {
            name,
            text,
            extension: true,
        };
        [
            Some(attribute("id", id)),
            Some(attribute("type", self.ty)),
            Some(attribute("source", self.source)),
            Some(attribute("datacontenttype", CONTENT_TYPE)),
            Some(attribute("dataschema", self.dataschema.as_str())),
            self.subject.as_deref().map(|s| attribute("subject", s)),
            Some(attribute("time", &texts.time)),
            self.key.as_deref().map(|k| extension(PARTITION_KEY, k)),
            trace.map(|t| extension(TRACEPARENT, t)),
        ]
        .into_iter()
        .flatten()
    }
}

/// The texts of an event's `id`, `time` and new trace context, written once per event: `time`
/// as `cloudevents-sdk` writes it (RFC 3339, `+00:00`).
struct Texts {
    id: [u8; Hyphenated::LENGTH],
    time: String,
    trace: Option<TraceParent>,
}

impl BinaryDeserializer for Framed<'_> {
    fn deserialize_binary<R: Sized, V: BinarySerializer<R>>(self, visitor: V) -> Result<R> {
        let texts = self.texts();
        let mut visitor = visitor.set_spec_version(SpecVersion::V10)?;
        for a in self.attributes(&texts) {
            let value = MessageAttributeValue::String(a.text.to_owned());
            visitor = if a.extension {
                visitor.set_extension(a.name, value)?
            } else {
                visitor.set_attribute(a.name, value)?
            };
        }
        visitor.end_with_data(self.data)
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use cloudevents::{EventBuilder, EventBuilderV10};
    use rdkafka::message::Headers as _;

    use super::*;
    use crate::binding::kafka::Record;

    const TRACE: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    fn framed<'a>(id: Uuid, dataschema: &'a url::Url, subject: Option<&str>) -> Framed<'a> {
        Framed {
            id: EventId::New(id),
            source: "/player/web",
            ty: "com.example.player.track.played",
            dataschema,
            subject: subject.map(str::to_owned),
            // fractions of a second, as `Utc::now()` has
            time: Utc.timestamp_opt(1_790_000_000, 123_456_789).unwrap(),
            key: subject.map(str::to_owned),
            traceparent: Some(TRACE.into()),
            data: vec![0u8, 0, 0, 0, 3, 2, 4],
        }
    }

    /// What rdkafka would send, as a plain record with its headers sorted.
    fn sent(outgoing: Outgoing) -> Record {
        let mut headers: Vec<(String, Vec<u8>)> = outgoing
            .headers
            .iter()
            .flat_map(|hs| hs.iter())
            .map(|h| (h.key.to_owned(), h.value.unwrap_or_default().to_vec()))
            .collect();
        headers.sort();
        Record {
            key: outgoing.key,
            headers,
            payload: outgoing.payload,
        }
    }

    fn sorted(mut record: Record) -> Record {
        record.headers.sort();
        record
    }

    #[test]
    fn the_hot_path_writes_the_record_cloudevents_sdk_writes_for_the_same_event() {
        let id = Uuid::new_v4();
        let dataschema = url::Url::parse("http://127.0.0.1:8081/schemas/ids/3").unwrap();
        let ours = framed(id, &dataschema, Some("user-7"));
        let built = EventBuilderV10::new()
            .id(id.to_string())
            .source(ours.source)
            .ty(ours.ty)
            .subject("user-7")
            .time(ours.time)
            .data_with_schema(CONTENT_TYPE, dataschema.clone(), ours.data.clone())
            .extension(PARTITION_KEY, "user-7")
            .extension(TRACEPARENT, TRACE)
            .build()
            .unwrap();

        // the SDK's extensions come out of a hash map: the same headers, maybe in another order
        let sdk = sorted(Record::from_event(built.clone()).unwrap());
        assert_eq!(sent(ours.outgoing()), sdk);
        let visited = framed(id, &dataschema, Some("user-7"));
        assert_eq!(sorted(Record::from_event(visited).unwrap()), sdk);
        assert_eq!(sdk.key.as_deref(), Some(&b"user-7"[..]));
        assert_eq!(
            framed(id, &dataschema, Some("user-7"))
                .into_event()
                .unwrap(),
            built
        );
    }

    #[test]
    fn an_id_the_event_gives_is_its_cloudevents_id() {
        let dataschema = url::Url::parse("http://127.0.0.1:8081/schemas/ids/3").unwrap();
        let mut given = framed(Uuid::new_v4(), &dataschema, None);
        given.id = EventId::Given("play-42".into());
        let record = sent(given.outgoing());
        assert_eq!(record.header("ce_id"), Some(&b"play-42"[..]));
    }

    #[test]
    fn an_event_without_subject_key_or_trace_has_no_subject_nor_key_and_a_new_trace() {
        let dataschema = url::Url::parse("http://127.0.0.1:8081/schemas/ids/3").unwrap();
        let mut untraced = framed(Uuid::new_v4(), &dataschema, None);
        untraced.traceparent = None;
        let record = sent(untraced.outgoing());
        let trace = std::str::from_utf8(record.header("ce_traceparent").unwrap()).unwrap();
        assert_ne!(trace, TRACE);
        assert!(
            trace.len() == 55 && trace.starts_with("00-") && trace.ends_with("-01"),
            "a new W3C trace context: {trace}"
        );
        assert_eq!(record.key, None);
        assert_eq!(record.header("ce_subject"), None);
        assert_eq!(record.header("ce_partitionkey"), None);
        assert_eq!(record.header("content-type"), Some(CONTENT_TYPE.as_bytes()));
        assert_eq!(record.headers.len(), 8, "{:?}", record.headers);
    }
}
