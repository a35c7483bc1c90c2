//! CloudEvents Kafka protocol binding, binary content mode, as a sans-io adapter on
//! `cloudevents-sdk`'s binding traits.
//!
//! An event maps to a [`Record`]: every context attribute becomes a `ce_<name>` header whose
//! value is the attribute's canonical string form, `datacontenttype` becomes the
//! `content-type` header, `data` is the record value, and the `partitionkey` extension is the
//! record key (Kafka binding spec, section 3). Reading, a non-empty key that is valid UTF-8 is
//! exposed as `partitionkey` when no `ce_partitionkey` header says otherwise.
//!
//! This module never touches a socket nor a Kafka client: the SDK's `kafka` module bridges a
//! [`Record`] to rdkafka's messages.

use cloudevents::{
    event::SpecVersion,
    message::{
        BinaryDeserializer, BinarySerializer, Encoding, Error as MessageError,
        MessageAttributeValue, MessageDeserializer, Result as MessageResult,
        StructuredDeserializer, StructuredSerializer,
    },
    Event,
};

/// Header carrying the event's `time` attribute.
pub const TIME_HEADER: &str = "ce_time";

/// Header carrying the event's W3C trace context (the `traceparent` extension).
pub const TRACEPARENT_HEADER: &str = "ce_traceparent";

/// An event's `time` (RFC 3339 text) in Unix milliseconds: how every component reads it.
pub fn parse_time(text: &str) -> Result<i64, chrono::ParseError> {
    chrono::DateTime::parse_from_rfc3339(text).map(|t| t.timestamp_millis())
}

/// The time in a [`TIME_HEADER`] value, if it is valid UTF-8 and RFC 3339.
pub fn header_time(value: &[u8]) -> Option<i64> {
    parse_time(std::str::from_utf8(value).ok()?).ok()
}

/// Header carrying the CloudEvents spec version; its presence marks binary mode.
pub const SPEC_VERSION_HEADER: &str = "ce_specversion";
/// Header carrying `datacontenttype`.
pub const CONTENT_TYPE_HEADER: &str = "content-type";
/// Prefix of every other attribute header.
pub const HEADER_PREFIX: &str = "ce_";
/// The extension mapped to the Kafka record key.
pub const PARTITION_KEY: &str = "partitionkey";
/// Content type of structured-mode records.
const STRUCTURED_CONTENT_TYPE: &str = "application/cloudevents";

/// Errors of the binding.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The record carries no `ce_specversion` header and is not in structured mode.
    #[error("not a CloudEvent: the record has no `ce_specversion` header (binary mode) and no `content-type: application/cloudevents+json` (structured mode)")]
    NotCloudEvent,
    /// A `ce_*` or `content-type` header is not valid UTF-8.
    #[error("header `{0}` is not valid UTF-8")]
    NotUtf8(String),
    /// The SDK refused an attribute (missing required attribute, bad time, unknown version).
    #[error("invalid CloudEvent: {0}")]
    Invalid(#[from] MessageError),
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A Kafka record as the binding sees it: key, headers in order, value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Record {
    /// Record key (the `partitionkey` extension).
    pub key: Option<Vec<u8>>,
    /// Headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Record value (the event `data`).
    pub payload: Option<Vec<u8>>,
}

impl Record {
    /// Encodes `event` in binary content mode: an [`Event`], or any other source of the SDK's
    /// binary visitor calls.
    pub fn from_event(event: impl BinaryDeserializer) -> Result<Self> {
        Ok(event.deserialize_binary(RecordSerializer::<Self>::default())?)
    }

    /// Decodes the event this record carries (binary or structured mode).
    pub fn to_event(&self) -> Result<Event> {
        let mut has_partition_key_header = false;
        let mut spec = false;
        let mut structured = false;
        for (name, value) in &self.headers {
            if name == SPEC_VERSION_HEADER {
                spec = true;
            } else if name == CONTENT_TYPE_HEADER {
                structured = value.starts_with(STRUCTURED_CONTENT_TYPE.as_bytes());
            } else if name.strip_prefix(HEADER_PREFIX) == Some(PARTITION_KEY) {
                has_partition_key_header = true;
            }
            if name == SPEC_VERSION_HEADER
                || name == CONTENT_TYPE_HEADER
                || name.starts_with(HEADER_PREFIX)
            {
                std::str::from_utf8(value).map_err(|_| Error::NotUtf8(name.clone()))?;
            }
        }
        let encoding = match (structured, spec) {
            (true, _) => Encoding::STRUCTURED,
            (false, true) => Encoding::BINARY,
            (false, false) => return Err(Error::NotCloudEvent),
        };
        let binary = encoding == Encoding::BINARY;
        let mut event = MessageDeserializer::into_event(RecordDeserializer {
            record: self,
            binary,
        })?;
        if !has_partition_key_header && binary {
            if let Some(key) = self.key.as_deref().filter(|k| !k.is_empty()) {
                if let Ok(key) = std::str::from_utf8(key) {
                    event.set_extension(PARTITION_KEY, key);
                }
            }
        }
        Ok(event)
    }

    /// The value of header `name` (the last one, as Kafka clients read duplicates).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        RecordView::header(self, name)
    }
}

/// Encodes a CloudEvent 1.0 given as its attributes' canonical texts, in binary content mode,
/// into `S`: the headers, key and value [`Record::from_event`] writes for the same event, without
/// the owned attribute values `cloudevents-sdk`'s visitor takes (a producer's hot path).
pub fn from_attributes<'a, S: Sink>(
    attributes: impl IntoIterator<Item = Attribute<'a>>,
    data: Vec<u8>,
) -> S {
    let mut out = S::default();
    out.header(SPEC_VERSION_HEADER, SpecVersion::V10.as_str().as_bytes());
    for attribute in attributes {
        put(&mut out, attribute);
    }
    out.payload(data);
    out
}

/// A context attribute or extension as the binding writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attribute<'a> {
    /// Its CloudEvents name, e.g. `type` or `partitionkey`.
    pub name: &'a str,
    /// Its canonical string form.
    pub text: &'a str,
    /// Whether it is an extension rather than a context attribute of the spec.
    pub extension: bool,
}

/// Writes one attribute: its header, and the record key for the `partitionkey` extension.
fn put<S: Sink>(out: &mut S, attribute: Attribute<'_>) {
    out.header(&header_name(attribute.name), attribute.text.as_bytes());
    if attribute.extension && attribute.name == PARTITION_KEY {
        out.key(attribute.text.as_bytes().to_vec());
    }
}

/// What the binary serializer writes into: an owned [`Record`], or a Kafka client's own
/// record type.
pub trait Sink: Default {
    /// Appends a header.
    fn header(&mut self, name: &str, value: &[u8]);
    /// Sets the record key.
    fn key(&mut self, key: Vec<u8>);
    /// Sets the record value.
    fn payload(&mut self, payload: Vec<u8>);
}

impl Sink for Record {
    fn header(&mut self, name: &str, value: &[u8]) {
        self.headers.push((name.to_owned(), value.to_vec()));
    }
    fn key(&mut self, key: Vec<u8>) {
        self.key = Some(key);
    }
    fn payload(&mut self, payload: Vec<u8>) {
        self.payload = Some(payload);
    }
}

/// The header of attribute `name`: `content-type` for `datacontenttype`, `ce_<name>` else.
fn header_name(name: &str) -> std::borrow::Cow<'static, str> {
    let known = match name {
        "datacontenttype" => CONTENT_TYPE_HEADER,
        "id" => "ce_id",
        "source" => "ce_source",
        "type" => "ce_type",
        "subject" => "ce_subject",
        "time" => TIME_HEADER,
        "dataschema" => "ce_dataschema",
        PARTITION_KEY => "ce_partitionkey",
        crate::binding::TRACEPARENT => TRACEPARENT_HEADER,
        _ => return format!("{HEADER_PREFIX}{name}").into(),
    };
    known.into()
}

/// Builds a record from the SDK's binary visitor calls.
#[derive(Default)]
struct RecordSerializer<S> {
    out: S,
    /// The attribute value being written, reused across attributes.
    scratch: String,
}

impl<S: Sink> RecordSerializer<S> {
    /// Writes attribute `name`.
    fn push(&mut self, name: &str, value: &MessageAttributeValue, extension: bool) {
        let text = match value {
            MessageAttributeValue::String(s) | MessageAttributeValue::UriRef(s) => s.as_str(),
            MessageAttributeValue::Uri(u) => u.as_str(),
            other => {
                use std::fmt::Write as _;
                self.scratch.clear();
                // writing into a String cannot fail
                let _ = write!(self.scratch, "{other}");
                self.scratch.as_str()
            }
        };
        put(
            &mut self.out,
            Attribute {
                name,
                text,
                extension,
            },
        );
    }
}

impl<S: Sink> BinarySerializer<S> for RecordSerializer<S> {
    fn set_spec_version(mut self, spec_version: SpecVersion) -> MessageResult<Self> {
        self.out
            .header(SPEC_VERSION_HEADER, spec_version.as_str().as_bytes());
        Ok(self)
    }

    fn set_attribute(mut self, name: &str, value: MessageAttributeValue) -> MessageResult<Self> {
        self.push(name, &value, false);
        Ok(self)
    }

    fn set_extension(mut self, name: &str, value: MessageAttributeValue) -> MessageResult<Self> {
        self.push(name, &value, true);
        Ok(self)
    }

    fn end_with_data(mut self, bytes: Vec<u8>) -> MessageResult<S> {
        self.out.payload(bytes);
        Ok(self.out)
    }

    fn end(self) -> MessageResult<S> {
        Ok(self.out)
    }
}

impl StructuredSerializer<Record> for RecordSerializer<Record> {
    fn set_structured_event(mut self, bytes: Vec<u8>) -> MessageResult<Record> {
        self.out.headers.push((
            CONTENT_TYPE_HEADER.to_owned(),
            b"application/cloudevents+json; charset=UTF-8".to_vec(),
        ));
        self.out.payload = Some(bytes);
        Ok(self.out)
    }
}

/// Feeds a [`Record`]'s headers to the SDK's event builder.
struct RecordDeserializer<'a> {
    record: &'a Record,
    binary: bool,
}

fn utf8(value: &[u8]) -> MessageResult<String> {
    String::from_utf8(value.to_vec()).map_err(|e| MessageError::Other {
        source: Box::new(e),
    })
}

impl BinaryDeserializer for RecordDeserializer<'_> {
    fn deserialize_binary<R: Sized, V: BinarySerializer<R>>(self, visitor: V) -> MessageResult<R> {
        let version = self
            .record
            .header(SPEC_VERSION_HEADER)
            .ok_or(MessageError::WrongEncoding {})?;
        let version = SpecVersion::try_from(utf8(version)?.as_str())?;
        let attributes = version.attribute_names();
        let mut visitor = visitor.set_spec_version(version)?;
        for (name, value) in &self.record.headers {
            if name == CONTENT_TYPE_HEADER {
                visitor = visitor.set_attribute(
                    "datacontenttype",
                    MessageAttributeValue::String(utf8(value)?),
                )?;
                continue;
            }
            let Some(attr) = name.strip_prefix(HEADER_PREFIX) else {
                continue;
            };
            if name == SPEC_VERSION_HEADER {
                continue;
            }
            let value = MessageAttributeValue::String(utf8(value)?);
            visitor = if attributes.contains(&attr) {
                visitor.set_attribute(attr, value)?
            } else {
                visitor.set_extension(attr, value)?
            };
        }
        match &self.record.payload {
            Some(data) => visitor.end_with_data(data.clone()),
            None => visitor.end(),
        }
    }
}

impl StructuredDeserializer for RecordDeserializer<'_> {
    fn deserialize_structured<R: Sized, V: StructuredSerializer<R>>(
        self,
        visitor: V,
    ) -> MessageResult<R> {
        visitor.set_structured_event(self.record.payload.clone().unwrap_or_default())
    }
}

impl MessageDeserializer for RecordDeserializer<'_> {
    fn encoding(&self) -> Encoding {
        if self.binary {
            Encoding::BINARY
        } else {
            Encoding::STRUCTURED
        }
    }
}

/// Read access to a Kafka record's headers and payload: an owned [`Record`], or a consumed
/// message read in place through `Consumed`.
pub trait RecordView {
    /// The value of header `name` (the last one, as Kafka clients read duplicates).
    fn header(&self, name: &str) -> Option<&[u8]>;
    /// The payload.
    fn payload(&self) -> Option<&[u8]>;
}

impl RecordView for Record {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
    }

    fn payload(&self) -> Option<&[u8]> {
        self.payload.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use cloudevents::{AttributesReader, EventBuilder, EventBuilderV10};

    fn event() -> Event {
        EventBuilderV10::new()
            .id("e-1")
            .source("/player/web")
            .ty("com.example.player.track.played")
            .subject("user-7")
            .time(Utc.with_ymd_and_hms(2026, 11, 1, 12, 0, 0).unwrap())
            .data_with_schema(
                "application/avro",
                "http://127.0.0.1:8081/schemas/ids/1",
                vec![0u8, 0, 0, 0, 1, 2, 3],
            )
            .extension(PARTITION_KEY, "user-7")
            .extension(
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            )
            .build()
            .unwrap()
    }

    fn header<'a>(r: &'a Record, name: &str) -> &'a str {
        std::str::from_utf8(r.header(name).unwrap_or_else(|| panic!("no header {name}"))).unwrap()
    }

    #[test]
    fn binary_mode_maps_attributes_to_ce_headers() {
        let r = Record::from_event(event()).unwrap();
        assert_eq!(header(&r, "ce_specversion"), "1.0");
        assert_eq!(header(&r, "ce_id"), "e-1");
        assert_eq!(header(&r, "ce_source"), "/player/web");
        assert_eq!(header(&r, "ce_type"), "com.example.player.track.played");
        assert_eq!(header(&r, "ce_subject"), "user-7");
        assert_eq!(header(&r, "ce_time"), "2026-11-01T12:00:00+00:00");
        assert_eq!(
            header(&r, "ce_dataschema"),
            "http://127.0.0.1:8081/schemas/ids/1"
        );
        // datacontenttype is the content-type header, not ce_datacontenttype (spec 3.2.1)
        assert_eq!(header(&r, "content-type"), "application/avro");
        assert!(r.header("ce_datacontenttype").is_none());
        assert_eq!(
            header(&r, "ce_traceparent"),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        );
        // data is the record value, byte for byte
        assert_eq!(r.payload.as_deref(), Some(&[0u8, 0, 0, 0, 1, 2, 3][..]));
    }

    #[test]
    fn partitionkey_extension_is_the_record_key() {
        let r = Record::from_event(event()).unwrap();
        assert_eq!(r.key.as_deref(), Some(&b"user-7"[..]));
    }

    #[test]
    fn round_trip_preserves_every_attribute_and_the_data() {
        let original = event();
        let back = Record::from_event(original.clone())
            .unwrap()
            .to_event()
            .unwrap();
        assert_eq!(back, original);
    }

    #[test]
    fn record_key_becomes_partitionkey_when_no_header_carries_it() {
        let mut r = Record::from_event(event()).unwrap();
        r.headers.retain(|(k, _)| k != "ce_partitionkey");
        r.key = Some(b"user-9".to_vec());
        let e = r.to_event().unwrap();
        assert_eq!(
            e.extension(PARTITION_KEY)
                .map(ToString::to_string)
                .as_deref(),
            Some("user-9")
        );
    }

    #[test]
    fn record_without_specversion_is_not_a_cloudevent() {
        let r = Record {
            key: None,
            headers: vec![("content-type".into(), b"application/avro".to_vec())],
            payload: Some(vec![1]),
        };
        assert!(matches!(r.to_event(), Err(Error::NotCloudEvent)));
    }

    #[test]
    fn missing_required_attribute_is_refused() {
        let mut r = Record::from_event(event()).unwrap();
        r.headers.retain(|(k, _)| k != "ce_source");
        let err = r.to_event().unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{err}");
    }

    #[test]
    fn unparseable_time_is_refused() {
        let mut r = Record::from_event(event()).unwrap();
        for (k, v) in &mut r.headers {
            if k == "ce_time" {
                *v = b"yesterday".to_vec();
            }
        }
        assert!(matches!(r.to_event(), Err(Error::Invalid(_))));
    }

    #[test]
    fn non_utf8_header_is_named() {
        let mut r = Record::from_event(event()).unwrap();
        r.headers.push(("ce_subject".into(), vec![0xff, 0xfe]));
        match r.to_event() {
            Err(Error::NotUtf8(h)) => assert_eq!(h, "ce_subject"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn structured_mode_is_read_from_the_json_value() {
        let json = serde_json::to_vec(&event()).unwrap();
        let r = Record {
            key: None,
            headers: vec![(
                "content-type".into(),
                b"application/cloudevents+json; charset=UTF-8".to_vec(),
            )],
            payload: Some(json),
        };
        let e = r.to_event().unwrap();
        assert_eq!(e.id(), "e-1");
        assert_eq!(e.ty(), "com.example.player.track.played");
    }

    #[test]
    fn non_string_attribute_values_use_their_canonical_string_form() {
        let mut e = event();
        e.set_extension("sequence", 42i64);
        e.set_extension("sampled", true);
        let r = Record::from_event(e).unwrap();
        assert_eq!(header(&r, "ce_sequence"), "42");
        assert_eq!(header(&r, "ce_sampled"), "true");
    }
}
