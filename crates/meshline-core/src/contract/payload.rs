//! Decoding an event's Avro payload for the contract check: the whole payload must decode with
//! its writer schema, and the rules need the fields they read as `apache_avro` values.
//!
//! `serde_avro_fast` checks the payload: about seven times faster than `apache-avro` builds a
//! full [`Value`] (`cargo bench --bench contract`), and stricter: `apache-avro` 0.22 reads a
//! boolean cut off at the end of the payload as `null` and accepts the record (the tests below
//! pin it). It keeps only the fields the rules read, typed by the writer schema (enums, unions,
//! logical types) through `apache-avro`. `apache-avro` decodes alone only a schema
//! `serde_avro_fast` cannot take.

use std::{collections::HashMap, fmt, io::Read as _, sync::Arc};

use apache_avro::{reader::datum::GenericDatumReader, types::Value, Schema};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

/// Decodes the body of an event written in another language than Avro (JSON Schema,
/// Protobuf) into a value of its Avro field model, or says why it is not valid. The platform
/// implements it: the core has no JSON Schema validator or Protobuf decoder.
pub trait Decode: Send + Sync + fmt::Debug {
    /// The event's record, every field.
    fn decode(&self, body: &[u8]) -> Result<Value, String>;
}

/// A writer schema, in both decoders' forms.
#[derive(Debug)]
pub struct WriterSchema {
    /// The schema (for another language than Avro, its Avro field model).
    pub avro: Arc<Schema>,
    /// The same, for `serde_avro_fast` (`None` if it cannot take the schema).
    fast: Option<serde_avro_fast::Schema>,
    /// The decoder of a schema in another language than Avro.
    foreign: Option<Box<dyn Decode>>,
}

impl WriterSchema {
    /// Prepares `schema` for decoding.
    pub fn new(avro: Arc<Schema>) -> Self {
        let fast = serde_json::to_string(avro.as_ref())
            .ok()
            .and_then(|json| json.parse().ok());
        Self {
            avro,
            fast,
            foreign: None,
        }
    }

    /// A schema in another language than Avro: its Avro field model `avro`, and the decoder of
    /// its events.
    pub fn foreign(avro: Arc<Schema>, decoder: Box<dyn Decode>) -> Self {
        Self {
            avro,
            fast: None,
            foreign: Some(decoder),
        }
    }

    /// Whether the events are in another language than Avro.
    pub fn is_foreign(&self) -> bool {
        self.foreign.is_some()
    }

    /// Appends `value`'s Avro encoding to `out`: by `serde_avro_fast` when it takes the schema
    /// (the same bytes, 4× faster: `cargo bench --bench sdk`), else, or if it refuses the
    /// value, by `apache-avro`, whose error is the one returned.
    pub fn encode<T: serde::Serialize>(&self, value: &T, out: &mut Vec<u8>) -> Result<(), String> {
        let start = out.len();
        if let Some(fast) = &self.fast {
            let mut config = serde_avro_fast::ser::SerializerConfig::new(fast);
            if serde_avro_fast::to_datum(value, &mut *out, &mut config).is_ok() {
                return Ok(());
            }
            out.truncate(start);
        }
        apache_avro::writer::datum::GenericDatumWriter::builder(&self.avro)
            .build()
            .and_then(|w| w.write_ser(out, value))
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// Whether the fast decoder takes this schema.
    pub fn is_fast(&self) -> bool {
        self.fast.is_some()
    }

    /// Decodes `body`: the record with the top-level `fields` the rules read (every field when
    /// `None`), or why the payload does not decode.
    pub fn decode(&self, body: &[u8], fields: Option<&[String]>) -> Result<Value, String> {
        if let Some(foreign) = &self.foreign {
            return foreign.decode(body);
        }
        let (Some(fast), Schema::Record(record)) = (&self.fast, self.avro.as_ref()) else {
            return self.decode_with_apache(body);
        };
        let mut state = serde_avro_fast::de::DeserializerState::from_slice(body, fast);
        let captured = Capture(fields)
            .deserialize(state.deserializer())
            .map_err(|e| e.to_string())?;
        let mut rest = state.into_reader();
        let mut left = Vec::new();
        if rest.read_to_end(&mut left).is_ok() && !left.is_empty() {
            return Err(format!("{} byte(s) left after decoding", left.len()));
        }
        let mut typed = Vec::with_capacity(captured.len());
        for (name, value) in captured {
            let Some(field) = record.lookup.get(&name).and_then(|i| record.fields.get(*i)) else {
                return self.decode_with_apache(body);
            };
            match typed_by(value, &field.schema, &self.avro) {
                Some(value) => typed.push((name, value)),
                // a type the untyped value cannot be matched to: the payload is valid, let
                // apache-avro give every field its type
                None => return self.decode_with_apache(body),
            }
        }
        Ok(Value::Record(typed))
    }

    fn decode_with_apache(&self, body: &[u8]) -> Result<Value, String> {
        let mut rest = body;
        let value = GenericDatumReader::builder(&self.avro)
            .build()
            .and_then(|r| r.read_value(&mut rest))
            .map_err(|e| e.to_string())?;
        if !rest.is_empty() {
            return Err(format!("{} byte(s) left after decoding", rest.len()));
        }
        Ok(value)
    }
}

/// An untyped value with the type its schema gives it: as is when the schema is the plain type
/// the value has, else through `apache-avro`'s resolution (names looked up in `root`).
pub(super) fn typed_by(value: Value, schema: &Schema, root: &Schema) -> Option<Value> {
    match (&value, schema) {
        (Value::Null, Schema::Null)
        | (Value::Boolean(_), Schema::Boolean)
        | (Value::Int(_), Schema::Int)
        | (Value::Long(_), Schema::Long)
        | (Value::Float(_), Schema::Float)
        | (Value::Double(_), Schema::Double)
        | (Value::String(_), Schema::String)
        | (Value::Bytes(_), Schema::Bytes) => Some(value),
        _ => value.resolve_schemata(schema, vec![root]).ok(),
    }
}

/// The fields of a record to keep (all when `None`), the others only checked.
struct Capture<'f>(Option<&'f [String]>);

impl<'de> DeserializeSeed<'de> for Capture<'_> {
    type Value = Vec<(String, Value)>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Capture<'_> {
    type Value = Vec<(String, Value)>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a record")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut kept = Vec::new();
        while let Some(key) = map.next_key_seed(Wanted(self.0))? {
            match key {
                Some(name) => kept.push((name, map.next_value_seed(Any)?)),
                None => map.next_value_seed(Check)?,
            }
        }
        Ok(kept)
    }
}

/// Any datum, checked and dropped. Unlike `serde::de::IgnoredAny`, which `serde_avro_fast`
/// skips without checking UTF-8 or enum indexes, every value is visited.
struct Check;

impl<'de> DeserializeSeed<'de> for Check {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Check {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an Avro datum")
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i32<E>(self, _: i32) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f32<E>(self, _: f32) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_bytes<E>(self, _: &[u8]) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element_seed(Check)?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_key_seed(Check)?.is_some() {
            map.next_value_seed(Check)?;
        }
        Ok(())
    }
}

/// A field name: `Some(name)` if it is kept.
struct Wanted<'f>(Option<&'f [String]>);

impl<'de> DeserializeSeed<'de> for Wanted<'_> {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Wanted<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a field name")
    }

    fn visit_str<E: de::Error>(self, name: &str) -> Result<Self::Value, E> {
        let kept = self.0.is_none_or(|fields| fields.iter().any(|f| f == name));
        Ok(kept.then(|| name.to_owned()))
    }
}

/// Any Avro datum as an untyped `apache_avro` value (records as maps, unions as their branch,
/// logical types as their underlying type), to be typed by its schema with `Value::resolve`.
struct Any;

impl<'de> DeserializeSeed<'de> for Any {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Any {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an Avro datum")
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Boolean(v))
    }

    fn visit_i32<E>(self, v: i32) -> Result<Value, E> {
        Ok(Value::Int(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Long(v))
    }

    fn visit_f32<E>(self, v: f32) -> Result<Value, E> {
        Ok(Value::Float(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::Double(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_bytes<E>(self, v: &[u8]) -> Result<Value, E> {
        Ok(Value::Bytes(v.to_vec()))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(Any)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut entries = HashMap::new();
        while let Some(key) = map.next_key::<String>()? {
            entries.insert(key, map.next_value_seed(Any)?);
        }
        Ok(Value::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::writer::datum::GenericDatumWriter;

    fn schema() -> WriterSchema {
        let schema = Schema::parse_str(
            r#"{"type":"record","name":"T","namespace":"t","fields":[
                {"name":"id","type":"string"},
                {"name":"n","type":"int"},
                {"name":"l","type":"long"},
                {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
                {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["A","B"]}},
                {"name":"maybe","type":["null","string"],"default":null},
                {"name":"tags","type":{"type":"array","items":"string"}},
                {"name":"attrs","type":{"type":"map","values":"long"}},
                {"name":"inner","type":{"type":"record","name":"Inner","fields":[
                    {"name":"x","type":"double"},{"name":"kind2","type":"Kind"}]}},
                {"name":"raw","type":"bytes"},
                {"name":"f","type":"float"},
                {"name":"ok","type":"boolean"}
            ]}"#,
        )
        .unwrap();
        WriterSchema::new(Arc::new(schema))
    }

    fn datum() -> Value {
        Value::Record(vec![
            ("id".into(), Value::String("é1".into())),
            ("n".into(), Value::Int(-7)),
            ("l".into(), Value::Long(1 << 40)),
            ("at".into(), Value::TimestampMillis(1_795_600_000_000)),
            ("kind".into(), Value::Enum(1, "B".into())),
            (
                "maybe".into(),
                Value::Union(1, Box::new(Value::String("x".into()))),
            ),
            (
                "tags".into(),
                Value::Array(vec![Value::String("a".into()), Value::String("b".into())]),
            ),
            (
                "attrs".into(),
                Value::Map([("k".to_owned(), Value::Long(3))].into()),
            ),
            (
                "inner".into(),
                Value::Record(vec![
                    ("x".into(), Value::Double(0.25)),
                    ("kind2".into(), Value::Enum(0, "A".into())),
                ]),
            ),
            ("raw".into(), Value::Bytes(vec![0, 255])),
            ("f".into(), Value::Float(1.5)),
            ("ok".into(), Value::Boolean(true)),
        ])
    }

    fn encode(schema: &WriterSchema, value: Value) -> Vec<u8> {
        GenericDatumWriter::builder(&schema.avro)
            .build()
            .unwrap()
            .write_value_to_vec(value)
            .unwrap()
    }

    fn reference(schema: &WriterSchema, body: &[u8]) -> Value {
        let mut rest = body;
        GenericDatumReader::builder(&schema.avro)
            .build()
            .unwrap()
            .read_value(&mut rest)
            .unwrap()
    }

    /// The fast path gives exactly the values `apache-avro` gives, typed by the schema.
    #[test]
    fn fast_decoding_equals_apache_avro_field_by_field() {
        let schema = schema();
        assert!(schema.is_fast());
        let body = encode(&schema, datum());
        let Value::Record(all) = reference(&schema, &body) else {
            panic!("a record")
        };
        let Value::Record(fast) = schema.decode(&body, None).unwrap() else {
            panic!("a record")
        };
        assert_eq!(fast, all);
        let wanted = ["kind".to_owned(), "at".to_owned()];
        let some = schema.decode(&body, Some(&wanted)).unwrap();
        let expected: Vec<_> = all
            .iter()
            .filter(|(k, _)| wanted.contains(k))
            .cloned()
            .collect();
        assert_eq!(some, Value::Record(expected));
    }

    /// A payload that does not decode is refused with `apache-avro`'s message, whichever
    /// decoder saw it first; so is one with bytes left over.
    #[test]
    fn bad_payloads_are_refused() {
        let schema = schema();
        let body = encode(&schema, datum());
        for cut in [0, 1, body.len() / 2, body.len() - 1] {
            assert!(schema.decode(&body[..cut], None).is_err(), "cut at {cut}");
        }
        // where apache-avro 0.22 alone is wrong: the last field, a boolean, cut off
        let cut = &body[..body.len() - 1];
        assert!(schema.decode_with_apache(cut).is_ok(), "apache-avro fixed?");
        let mut longer = body.clone();
        longer.push(0);
        let err = schema.decode(&longer, None).unwrap_err();
        assert!(err.contains("1 byte(s) left"), "{err}");
        // an enum index out of range, and a string that is not UTF-8, even in unread fields
        let small = WriterSchema::new(Arc::new(
            Schema::parse_str(
                r#"{"type":"record","name":"S","fields":[
                    {"name":"s","type":"string"},
                    {"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"]}}]}"#,
            )
            .unwrap(),
        ));
        assert!(small.decode(&[2, b'a', 2], None).is_ok());
        assert!(small.decode(&[2, b'a', 4], Some(&[])).is_err());
        let bad_utf8 = [2, 0xff, 2];
        assert!(small.decode(&bad_utf8, Some(&[])).is_err());
        assert!(small.decode(&bad_utf8, None).is_err());
    }
}
