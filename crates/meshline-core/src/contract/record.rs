//! The contract core on one Kafka record (sans-io): CloudEvents attributes read straight from
//! the binary-mode headers, the Confluent frame, the Avro payload decoded with its writer
//! schema, and the quality rules. Each refusal has a stable reason code, the one a dead letter
//! carries.

use std::sync::Arc;

use apache_avro::types::Value;

use super::{payload::WriterSchema, Contract, Violation};
use crate::{
    binding::kafka::{parse_time, RecordView, TIME_HEADER},
    codec::wire,
    product::OnFailure,
};

/// Why a record is refused, as a stable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// A required CloudEvents attribute is missing, or a header is not UTF-8.
    MissingAttribute,
    /// `specversion` is not 1.0.
    SpecVersion,
    /// `type` is not declared by the product.
    UnknownType,
    /// `source` is not under the prefix the product's domain owns.
    ForeignSource,
    /// `time` is not an RFC 3339 timestamp.
    BadTime,
    /// The content type is not `application/avro` in binary mode.
    ContentType,
    /// The payload is not in the Confluent wire format.
    BadFrame,
    /// The schema id is not registered under the product's subject.
    UnknownSchema,
    /// The payload does not decode with its schema.
    BadPayload,
    /// A quality rule evaluated to false.
    RuleFailed,
    /// A quality rule could not be evaluated on the event.
    RuleError,
    /// The schema id is not cached and the registry stayed unreachable for longer than the
    /// gateway waits (`--schema-wait`); replay the dead letter once the registry is back.
    SchemaUnavailable,
    /// The record with the gateway's headers is over the producer's `message.max.bytes`: its
    /// dead letter carries the headers without the payload, which stays in the ingress topic at
    /// the offset the letter names.
    TooLarge,
    /// The product's registered contract cannot be loaded (its rules or metadata are not
    /// valid); replay the dead letter once a valid contract is registered.
    ContractUnavailable,
}

impl Reason {
    /// Every reason.
    pub const ALL: [Reason; 14] = [
        Self::MissingAttribute,
        Self::SpecVersion,
        Self::UnknownType,
        Self::ForeignSource,
        Self::BadTime,
        Self::ContentType,
        Self::BadFrame,
        Self::UnknownSchema,
        Self::BadPayload,
        Self::RuleFailed,
        Self::RuleError,
        Self::SchemaUnavailable,
        Self::TooLarge,
        Self::ContractUnavailable,
    ];

    /// The code in dead-letter headers and metrics labels.
    pub fn code(self) -> &'static str {
        match self {
            Self::MissingAttribute => "missing_attribute",
            Self::SpecVersion => "spec_version",
            Self::UnknownType => "unknown_type",
            Self::ForeignSource => "foreign_source",
            Self::BadTime => "bad_time",
            Self::ContentType => "content_type",
            Self::BadFrame => "bad_frame",
            Self::UnknownSchema => "unknown_schema",
            Self::BadPayload => "bad_payload",
            Self::RuleFailed => "rule_failed",
            Self::RuleError => "rule_error",
            Self::SchemaUnavailable => "schema_unavailable",
            Self::TooLarge => "too_large",
            Self::ContractUnavailable => "contract_unavailable",
        }
    }
}

/// A refused record: the reason code, the rule (for rule reasons), what is wrong, and what the
/// product says to do (`dlq` for every reason but rules, which carry their own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The stable code.
    pub reason: Reason,
    /// The rule, for [`Reason::RuleFailed`] and [`Reason::RuleError`].
    pub rule: Option<String>,
    /// What is wrong.
    pub message: String,
    /// What to do with the record.
    pub on_failure: OnFailure,
}

impl Rejection {
    /// A refusal for `reason` that goes to the dead-letter topic.
    pub fn new(reason: Reason, message: impl Into<String>) -> Self {
        Self {
            reason,
            rule: None,
            message: message.into(),
            on_failure: OnFailure::Dlq,
        }
    }
}

/// A record that passed: its schema id and the fields of its payload the rules read.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    /// The writer schema id.
    pub schema_id: u32,
    /// The event's `time` (epoch ms), when it has one.
    pub time: Option<i64>,
    /// The decoded payload: the record with the fields the rules read (all of them when a rule
    /// reads `message` as a whole).
    pub value: Value,
    /// The rules marked `on_failure: none` that the event failed: it passes, with a warning.
    pub warned: Vec<String>,
}

fn text<'a>(
    record: &'a (impl RecordView + ?Sized),
    name: &str,
) -> Result<Option<&'a str>, Rejection> {
    record
        .header(name)
        .map(|v| {
            std::str::from_utf8(v).map_err(|_| {
                Rejection::new(
                    Reason::MissingAttribute,
                    format!("header {name} is not UTF-8"),
                )
            })
        })
        .transpose()
}

fn required<'a>(record: &'a (impl RecordView + ?Sized), name: &str) -> Result<&'a str, Rejection> {
    text(record, name)?.ok_or_else(|| {
        Rejection::new(
            Reason::MissingAttribute,
            format!("required CloudEvents header {name} is missing (binary mode)"),
        )
    })
}

impl Contract {
    /// Checks one record against the contract. `schemas` answers the writer schema of an id
    /// registered under the product's subject (`None`: not registered there).
    pub fn check_record(
        &self,
        record: &(impl RecordView + ?Sized),
        schemas: impl Fn(u32) -> Option<Arc<WriterSchema>>,
    ) -> Result<Accepted, Rejection> {
        let spec = required(record, "ce_specversion")?;
        if spec != "1.0" {
            return Err(Rejection::new(
                Reason::SpecVersion,
                format!("specversion {spec} is not 1.0"),
            ));
        }
        required(record, "ce_id")?;
        let source = required(record, "ce_source")?;
        let ty = required(record, "ce_type")?;
        let time = match text(record, TIME_HEADER)? {
            Some(time) => Some(parse_time(time).map_err(|e| {
                Rejection::new(
                    Reason::BadTime,
                    format!("time `{time}` is not RFC 3339: {e}"),
                )
            })?),
            None => None,
        };
        let content_type = text(record, "content-type")?;
        self.check_attributes(ty, source, content_type)
            .map_err(|v| {
                let reason = match v {
                    Violation::UnknownType { .. } => Reason::UnknownType,
                    Violation::SourceNotOwned { .. } => Reason::ForeignSource,
                    _ => Reason::ContentType,
                };
                Rejection::new(reason, v.to_string())
            })?;
        let payload = record
            .payload()
            .ok_or_else(|| Rejection::new(Reason::BadFrame, "the record has no payload"))?;
        let (schema_id, body) =
            wire::decode(payload).map_err(|e| Rejection::new(Reason::BadFrame, e.to_string()))?;
        let schema = schemas(schema_id).ok_or_else(|| {
            Rejection::new(
                Reason::UnknownSchema,
                format!(
                    "schema id {schema_id} is not registered under {}-value",
                    self.product
                ),
            )
        })?;
        let value = schema
            .decode(body, self.fields_read.as_deref())
            .map_err(|e| {
                Rejection::new(
                    Reason::BadPayload,
                    format!("payload does not decode with schema {schema_id}: {e}"),
                )
            })?;
        let warned = self
            .check_rules(&value)
            .map_err(|(violation, on_failure)| {
                let (reason, rule) = match &violation {
                    Violation::RuleError { rule, .. } => (Reason::RuleError, rule.clone()),
                    Violation::Rule { rule, .. } => (Reason::RuleFailed, rule.clone()),
                    _ => (Reason::RuleError, String::new()),
                };
                Rejection {
                    reason,
                    rule: Some(rule),
                    message: violation.to_string(),
                    on_failure,
                }
            })?;
        let warned = warned.into_iter().map(str::to_owned).collect();
        Ok(Accepted {
            schema_id,
            time,
            value,
            warned,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binding::kafka::Record;
    use crate::product::Catalog;

    fn contract() -> (Contract, Arc<WriterSchema>) {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/products/player");
        let catalog = Catalog::load(&dir).unwrap();
        let product = catalog.get("player.play-events").unwrap();
        (
            Contract::from_product(product).unwrap(),
            Arc::new(WriterSchema::new(Arc::new(product.schema.clone()))),
        )
    }

    fn body(schema: &WriterSchema, duration_ms: i64, country: &str) -> Vec<u8> {
        let value = Value::Record(vec![
            ("play_id".into(), Value::String("p".into())),
            ("user_id".into(), Value::String("u".into())),
            ("track_id".into(), Value::String("t".into())),
            ("artist_id".into(), Value::String("a".into())),
            ("device".into(), Value::Enum(0, "MOBILE".into())),
            ("country".into(), Value::String(country.into())),
            (
                "started_at".into(),
                Value::TimestampMillis(1_795_600_000_000),
            ),
            ("duration_ms".into(), Value::Long(duration_ms)),
            ("completed".into(), Value::Boolean(true)),
            ("context".into(), Value::Union(0, Box::new(Value::Null))),
        ]);
        apache_avro::writer::datum::GenericDatumWriter::builder(&schema.avro)
            .build()
            .unwrap()
            .write_value_to_vec(value)
            .unwrap()
    }

    fn record(edit: impl FnOnce(&mut Vec<(String, Vec<u8>)>), payload: Vec<u8>) -> Record {
        let mut headers: Vec<(String, Vec<u8>)> = [
            ("ce_specversion", "1.0"),
            ("ce_id", "1"),
            ("ce_source", "/player/web"),
            ("ce_type", "com.example.player.track.played"),
            ("ce_time", "2026-11-25T10:00:00Z"),
            ("content-type", "application/avro"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
        .collect();
        edit(&mut headers);
        Record {
            key: None,
            headers,
            payload: Some(payload),
        }
    }

    fn set(name: &'static str, value: &'static str) -> impl FnOnce(&mut Vec<(String, Vec<u8>)>) {
        move |h| {
            h.retain(|(n, _)| n != name);
            h.push((name.to_owned(), value.as_bytes().to_vec()));
        }
    }

    #[test]
    fn each_reason_has_its_case() {
        let (c, schema) = contract();
        let good = wire::encode(7, &body(&schema, 1000, "SE"));
        let lookup = |id: u32| (id == 7).then(|| schema.clone());
        let accepted = c
            .check_record(&record(|_| {}, good.clone()), lookup)
            .unwrap();
        assert_eq!(accepted.schema_id, 7);

        let cases: Vec<(Record, Reason)> = vec![
            (
                record(|h| h.retain(|(n, _)| n != "ce_id"), good.clone()),
                Reason::MissingAttribute,
            ),
            (
                record(set("ce_specversion", "0.3"), good.clone()),
                Reason::SpecVersion,
            ),
            (
                record(
                    set("ce_type", "com.example.player.track.skipped"),
                    good.clone(),
                ),
                Reason::UnknownType,
            ),
            (
                record(set("ce_source", "/labels/x"), good.clone()),
                Reason::ForeignSource,
            ),
            (
                record(set("ce_time", "yesterday"), good.clone()),
                Reason::BadTime,
            ),
            (
                record(set("content-type", "application/json"), good.clone()),
                Reason::ContentType,
            ),
            (record(|_| {}, vec![1, 0, 0, 0, 7, 1]), Reason::BadFrame),
            (
                record(|_| {}, wire::encode(8, &body(&schema, 1, "SE"))),
                Reason::UnknownSchema,
            ),
            (
                record(|_| {}, wire::encode(7, &[0xff, 0xff])),
                Reason::BadPayload,
            ),
            (
                record(|_| {}, wire::encode(7, &body(&schema, -1, "SE"))),
                Reason::RuleFailed,
            ),
        ];
        for (record, reason) in cases {
            let rejection = c.check_record(&record, lookup).unwrap_err();
            assert_eq!(rejection.reason, reason, "{rejection:?}");
            assert!(!rejection.message.is_empty());
        }
        let failed = c
            .check_record(
                &record(|_| {}, wire::encode(7, &body(&schema, 1, "SWE"))),
                lookup,
            )
            .unwrap_err();
        assert_eq!(failed.rule.as_deref(), Some("known_country"));
        assert_eq!(failed.on_failure, OnFailure::Dlq);
        let broken = Contract::from_registered(
            "player.play-events",
            schema.avro.clone(),
            Some(&serde_json::json!({"properties": {
                "cloudevents.types": "com.example.player.track.played",
                "cloudevents.source": "/player"}})),
            Some(&serde_json::json!({"domainRules": [{"name": "nope", "kind": "CONDITION",
                "type": "CEL", "mode": "WRITE", "expr": "message.nope > 0", "onFailure": "ERROR"}]})),
        )
        .unwrap();
        let error = broken
            .check_record(&record(|_| {}, good), lookup)
            .unwrap_err();
        assert_eq!(
            (error.reason, error.on_failure),
            (Reason::RuleError, OnFailure::Error)
        );
        let codes: std::collections::HashSet<_> = Reason::ALL.iter().map(|r| r.code()).collect();
        assert_eq!(codes.len(), Reason::ALL.len(), "codes are distinct");
    }
}
