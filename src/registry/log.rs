//! The `_schemas` topic format (sans-io): the registry's whole state as keyed JSON records in a
//! compacted, single-partition topic.
//!
//! The layout follows Confluent's own `_schemas` topic: a key names what a record is about (a
//! subject version, a compatibility config, a mode) and the value is its latest state, so
//! compaction keeps exactly the current state. A null value (tombstone) deletes the key.

pub use super::api::Reference;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Name of the registry's topic.
pub const TOPIC: &str = "_schemas";

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A key or value is not the JSON this module writes.
    #[error("`{TOPIC}` record at offset {offset} is not a registry record: {source}")]
    Malformed {
        /// Offset of the record.
        offset: i64,
        /// Why.
        source: serde_json::Error,
    },
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a record is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "keytype", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Key {
    /// One version of one subject.
    Schema {
        /// The subject.
        subject: String,
        /// The version, from 1.
        version: u32,
        /// Format version of the record.
        magic: u8,
    },
    /// The compatibility level of a subject, or the global one (`subject: null`).
    Config {
        /// The subject, or none for the global level.
        subject: Option<String>,
        /// Format version of the record.
        magic: u8,
    },
    /// The mode of a subject, or the global one (`subject: null`).
    Mode {
        /// The subject, or none for the global mode.
        subject: Option<String>,
        /// Format version of the record.
        magic: u8,
    },
}

impl Key {
    /// The key of one subject version.
    pub fn schema(subject: &str, version: u32) -> Self {
        Self::Schema {
            subject: subject.to_owned(),
            version,
            magic: 1,
        }
    }

    /// The key of a compatibility level.
    pub fn config(subject: Option<&str>) -> Self {
        Self::Config {
            subject: subject.map(str::to_owned),
            magic: 0,
        }
    }

    /// The key of a mode.
    pub fn mode(subject: Option<&str>) -> Self {
        Self::Mode {
            subject: subject.map(str::to_owned),
            magic: 0,
        }
    }
}

/// The value of a [`Key::Schema`] record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaValue {
    /// The subject (same as the key's).
    pub subject: String,
    /// The version (same as the key's).
    pub version: u32,
    /// The global id.
    pub id: u32,
    /// The schema text, normalized.
    pub schema: String,
    /// `AVRO` (when absent) or `JSON`.
    #[serde(default = "avro")]
    pub schema_type: String,
    /// Named types this schema uses from other subjects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Reference>,
    /// Data-contract metadata (`properties`, `tags`, `sensitive`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// Data-contract rules (`domainRules`, `migrationRules`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_set: Option<Value>,
    /// Soft-deleted: hidden unless asked for with `deleted=true`.
    #[serde(default)]
    pub deleted: bool,
}

fn avro() -> String {
    "AVRO".into()
}

/// The value of a [`Key::Config`] record: the settings of a subject (or the global ones), each
/// optional, as Confluent keeps them; the same JSON as `GET /config` answers.
pub type ConfigValue = meshline_core::registry::api::ConfigBody;

/// The value of a [`Key::Mode`] record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModeValue {
    /// `READWRITE`, `READONLY`, `READONLY_OVERRIDE` or `IMPORT`.
    pub mode: String,
}

/// A decoded record: its key, and its value or `None` for a tombstone.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    /// A subject version, or its deletion.
    Schema(Key, Option<SchemaValue>),
    /// A compatibility level, or its deletion.
    Config(Option<String>, Option<ConfigValue>),
    /// A mode, or its deletion.
    Mode(Option<String>, Option<ModeValue>),
}

/// Encodes an entry as the key and value bytes of a record.
pub fn encode(entry: &Entry) -> (Vec<u8>, Option<Vec<u8>>) {
    // Serializing these plain structs cannot fail (string keys, no maps with non-string keys).
    fn json<T: Serialize>(v: &T) -> Vec<u8> {
        serde_json::to_vec(v).unwrap_or_default()
    }
    match entry {
        Entry::Schema(key, value) => (json(key), value.as_ref().map(json)),
        Entry::Config(subject, value) => (
            json(&Key::config(subject.as_deref())),
            value.as_ref().map(json),
        ),
        Entry::Mode(subject, value) => (
            json(&Key::mode(subject.as_deref())),
            value.as_ref().map(json),
        ),
    }
}

/// Decodes a record of the topic.
pub fn decode(offset: i64, key: &[u8], value: Option<&[u8]>) -> Result<Entry> {
    let malformed = |source| Error::Malformed { offset, source };
    let key: Key = serde_json::from_slice(key).map_err(malformed)?;
    Ok(match key {
        Key::Schema { .. } => {
            let value = value
                .map(serde_json::from_slice)
                .transpose()
                .map_err(malformed)?;
            Entry::Schema(key, value)
        }
        Key::Config { subject, .. } => Entry::Config(
            subject,
            value
                .map(serde_json::from_slice)
                .transpose()
                .map_err(malformed)?,
        ),
        Key::Mode { subject, .. } => Entry::Mode(
            subject,
            value
                .map(serde_json::from_slice)
                .transpose()
                .map_err(malformed)?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_use_confluents_layout() {
        let (key, value) = encode(&Entry::Schema(
            Key::schema("t-value", 2),
            Some(SchemaValue {
                subject: "t-value".into(),
                version: 2,
                id: 7,
                schema: "\"string\"".into(),
                schema_type: "AVRO".into(),
                references: vec![],
                metadata: None,
                rule_set: None,
                deleted: false,
            }),
        ));
        assert_eq!(
            String::from_utf8(key).unwrap(),
            r#"{"keytype":"SCHEMA","subject":"t-value","version":2,"magic":1}"#
        );
        let value: Value = serde_json::from_slice(&value.unwrap()).unwrap();
        assert_eq!(value["id"], 7);
        assert_eq!(value["schemaType"], "AVRO");
        let (key, value) = encode(&Entry::Config(None, None));
        assert_eq!(
            String::from_utf8(key).unwrap(),
            r#"{"keytype":"CONFIG","subject":null,"magic":0}"#
        );
        assert!(value.is_none());
    }

    #[test]
    fn records_round_trip_and_tombstones_stay_tombstones() {
        let entries = [
            Entry::Config(
                Some("s".into()),
                Some(ConfigValue {
                    compatibility_level: Some("FULL".into()),
                    alias: Some("t-value".into()),
                    normalize: None,
                }),
            ),
            Entry::Mode(
                None,
                Some(ModeValue {
                    mode: "READONLY".into(),
                }),
            ),
            Entry::Schema(Key::schema("s", 1), None),
        ];
        for entry in entries {
            let (key, value) = encode(&entry);
            assert_eq!(decode(0, &key, value.as_deref()).unwrap(), entry);
        }
    }

    #[test]
    fn a_config_record_of_a_level_only_still_reads() {
        let entry = decode(
            0,
            br#"{"keytype":"CONFIG","subject":"s","magic":0}"#,
            Some(br#"{"compatibilityLevel":"FULL"}"#),
        )
        .unwrap();
        let Entry::Config(_, Some(value)) = entry else {
            panic!("{entry:?}")
        };
        assert_eq!(value.compatibility_level.as_deref(), Some("FULL"));
        assert_eq!(value.alias, None);
    }

    #[test]
    fn foreign_records_are_reported_with_their_offset() {
        let err = decode(42, b"not json", None).unwrap_err();
        assert!(err.to_string().contains("offset 42"), "{err}");
    }
}
