//! Protobuf events: one message of a registered `.proto` schema, decoded by reflection (the
//! descriptors the registry compiles, `registry::protobuf`), after Confluent's message indexes.
//!
//! The field model of a message, as Avro:
//!
//! | Protobuf | Avro |
//! |---|---|
//! | message | `record` (namespace: the package) |
//! | `double`, `float` | `double`, `float` |
//! | `int32`, `sint32`, `sfixed32` | `int` |
//! | `int64`, `sint64`, `sfixed64`, `uint32`, `fixed32`, `uint64`, `fixed64` | `long` (a `uint64` above 2⁶³−1 is refused) |
//! | `bool`, `string`, `bytes` | `boolean`, `string`, `bytes` |
//! | enum | `enum` of its value names |
//! | `repeated T` | `array` |
//! | `map<K, V>` | `map` (keys as text) |
//! | a field with presence (a message, `optional`, a `oneof` member, proto2 `optional`) | union of `null` and the type (unset: `null`) |
//!
//! A field without presence (a proto3 scalar) reads as its default when unset (`0`, `""`,
//! `false`, the first enum value), as Protobuf itself does.

use std::sync::Arc;

use apache_avro::{types::Value, Schema};
use protobuf::{
    reflect::{MessageDescriptor, ReflectValueRef, RuntimeFieldType},
    MessageDyn,
};

pub use crate::registry::protobuf::fields_of;
use crate::{
    contract::{Decode, WriterSchema},
    registry::protobuf::{avro_of, compile, has_presence, message_of, symbols_of},
};

/// The field model of `message` (the file's first when `None`) in `.proto` text: how a product
/// with a `.proto` schema is loaded.
pub fn fields(text: &str, message: Option<&str>) -> Result<Schema, String> {
    fields_of(compile(text, &[])?, message)
}

/// The writer schema of a registered Protobuf schema (`.proto` text or a base64 descriptor, its
/// imports in `references`), for events of `message` (the first when `None`).
pub fn writer_schema(
    text: &str,
    references: &[(String, String)],
    message: Option<&str>,
) -> Result<WriterSchema, String> {
    let (message, indexes) = message_of(compile(text, references)?, message)?;
    let avro = Arc::new(avro_of(&message)?);
    Ok(WriterSchema::foreign(
        avro,
        Box::new(Decoder { message, indexes }),
    ))
}

/// Decodes the events of one message.
#[derive(Debug)]
pub struct Decoder {
    message: MessageDescriptor,
    /// The message's indexes in its file, as Confluent's framing names them.
    indexes: Vec<i64>,
}

impl Decode for Decoder {
    fn decode(&self, body: &[u8]) -> Result<Value, String> {
        let (indexes, rest) = message_indexes(body)?;
        if indexes != self.indexes {
            return Err(format!(
                "framed as the message at indexes {indexes:?} of its schema; the product's events are `{}` (indexes {:?})",
                self.message.full_name(),
                self.indexes
            ));
        }
        let message = self
            .message
            .parse_from_bytes(rest)
            .map_err(|e| format!("not a `{}` message: {e}", self.message.full_name()))?;
        record(&*message, &self.message)
    }
}

/// Appends Confluent's framing of message `indexes` to `out` (`[0]` as the single byte 0).
pub fn write_indexes(indexes: &[i64], out: &mut Vec<u8>) {
    if indexes == [0] {
        out.push(0);
        return;
    }
    let count = i64::try_from(indexes.len()).unwrap_or(i64::MAX);
    for value in std::iter::once(count).chain(indexes.iter().copied()) {
        let mut zigzag = ((value << 1) ^ (value >> 63)) as u64;
        while zigzag >= 0x80 {
            out.push((zigzag as u8 & 0x7f) | 0x80);
            zigzag >>= 7;
        }
        out.push(zigzag as u8);
    }
}

/// Confluent's message indexes at the start of `body`: a zigzag varint count, then that many
/// zigzag varint indexes; a count of 0 stands for `[0]`, the first message.
fn message_indexes(body: &[u8]) -> Result<(Vec<i64>, &[u8]), String> {
    let mut rest = body;
    let count = zigzag(&mut rest)?;
    if count == 0 {
        return Ok((vec![0], rest));
    }
    if !(1..=100).contains(&count) {
        return Err(format!(
            "{count} message indexes: not Confluent's Protobuf framing"
        ));
    }
    let mut indexes = Vec::new();
    for _ in 0..count {
        indexes.push(zigzag(&mut rest)?);
    }
    Ok((indexes, rest))
}

fn zigzag(rest: &mut &[u8]) -> Result<i64, String> {
    let mut value: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&byte, tail) = rest
            .split_first()
            .ok_or("the message indexes are cut off")?;
        *rest = tail;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            let magnitude = i64::try_from(value >> 1).unwrap_or(i64::MAX);
            return Ok(if value & 1 == 0 {
                magnitude
            } else {
                -magnitude - 1
            });
        }
    }
    Err("a message index is not a varint".into())
}

/// A decoded message as a value of its field model.
fn record(message: &dyn MessageDyn, descriptor: &MessageDescriptor) -> Result<Value, String> {
    let mut fields = Vec::new();
    for field in descriptor.fields() {
        let value = match field.runtime_field_type() {
            RuntimeFieldType::Singular(_) if has_presence(&field) => {
                match field.get_singular(message) {
                    Some(value) => Value::Union(1, Box::new(scalar(value)?)),
                    None => Value::Union(0, Box::new(Value::Null)),
                }
            }
            RuntimeFieldType::Singular(_) => scalar(field.get_singular_field_or_default(message))?,
            RuntimeFieldType::Repeated(_) => Value::Array(
                field
                    .get_repeated(message)
                    .into_iter()
                    .map(scalar)
                    .collect::<Result<_, _>>()?,
            ),
            RuntimeFieldType::Map(..) => Value::Map(
                field
                    .get_map(message)
                    .into_iter()
                    .map(|(key, value)| Ok((key.to_string(), scalar(value)?)))
                    .collect::<Result<_, String>>()?,
            ),
        };
        fields.push((field.name().to_owned(), value));
    }
    Ok(Value::Record(fields))
}

fn scalar(value: ReflectValueRef<'_>) -> Result<Value, String> {
    Ok(match value {
        ReflectValueRef::I32(v) => Value::Int(v),
        ReflectValueRef::I64(v) => Value::Long(v),
        ReflectValueRef::U32(v) => Value::Long(i64::from(v)),
        ReflectValueRef::U64(v) => Value::Long(
            i64::try_from(v).map_err(|_| format!("uint64 {v} is above the field model's long"))?,
        ),
        ReflectValueRef::F32(v) => Value::Float(v),
        ReflectValueRef::F64(v) => Value::Double(v),
        ReflectValueRef::Bool(v) => Value::Boolean(v),
        ReflectValueRef::String(v) => Value::String(v.to_owned()),
        ReflectValueRef::Bytes(v) => Value::Bytes(v.to_vec()),
        ReflectValueRef::Enum(descriptor, number) => {
            let name = descriptor
                .value_by_number(number)
                .map(|v| v.name().to_owned())
                .ok_or_else(|| {
                    format!(
                        "{number} is not a value of enum `{}`",
                        descriptor.full_name()
                    )
                })?;
            let index = symbols_of(&descriptor)
                .iter()
                .position(|s| *s == name)
                .unwrap_or_default();
            Value::Enum(u32::try_from(index).unwrap_or_default(), name)
        }
        ReflectValueRef::Message(message) => {
            let descriptor = message.descriptor_dyn();
            record(&*message, &descriptor)?
        }
    })
}

#[cfg(test)]
mod tests {
    use protobuf::reflect::ReflectValueBox;
    use serde_json::{json, Value as Json};

    use super::*;

    const SCHEMA: &str = r#"
        syntax = "proto3";
        package demo.artists;
        message Follow {
          string user_id = 1;
          string artist_id = 2;
          int64 followed_at = 3;
          Source source = 4;
          optional uint32 rank = 5;
          repeated string tags = 6;
          map<string, int32> counts = 7;
          Device device = 8;
          enum Source { SOURCE_UNSPECIFIED = 0; SEARCH = 1; PROFILE = 2; }
          message Device { string os = 1; }
        }
        message Other { string x = 1; }
    "#;

    fn encode(message: &MessageDescriptor, edit: impl FnOnce(&mut dyn MessageDyn)) -> Vec<u8> {
        let mut instance = message.new_instance();
        edit(&mut *instance);
        instance.write_to_bytes_dyn().unwrap()
    }

    #[test]
    fn the_field_model_has_each_protobuf_type_as_its_avro_type() {
        let schema = fields(SCHEMA, Some("Follow")).unwrap();
        let json: Json = serde_json::to_value(&schema).unwrap();
        assert_eq!(json["name"], "Follow");
        assert_eq!(json["namespace"], "demo.artists");
        let field = |i: usize| json["fields"][i]["type"].clone();
        assert_eq!(field(2), json!("long"));
        assert_eq!(
            field(3)["symbols"],
            json!(["SOURCE_UNSPECIFIED", "SEARCH", "PROFILE"])
        );
        assert_eq!(field(4), json!(["null", "long"]));
        assert_eq!(field(5), json!({"type": "array", "items": "string"}));
        assert_eq!(field(6), json!({"type": "map", "values": "int"}));
        assert_eq!(field(7)[1]["name"], "Device");
        assert!(fields(SCHEMA, Some("Nope"))
            .unwrap_err()
            .contains("no message `Nope`"));
    }

    #[test]
    fn an_event_decodes_after_its_message_indexes_unset_fields_as_their_defaults_or_null() {
        let schema = writer_schema(SCHEMA, &[], None).unwrap();
        let (message, _) = message_of(compile(SCHEMA, &[]).unwrap(), None).unwrap();
        let body = encode(&message, |m| {
            let field = |name| message.field_by_name(name).unwrap();
            field("artist_id").set_singular_field(m, ReflectValueBox::String("a1".into()));
            field("source").set_singular_field(
                m,
                ReflectValueBox::Enum(message.nested_enums().next().unwrap(), 2),
            );
        });
        let mut framed = vec![0];
        framed.extend(&body);
        let Value::Record(fields) = schema.decode(&framed, None).unwrap() else {
            panic!("a record")
        };
        assert_eq!(fields[0], ("user_id".into(), Value::String(String::new())));
        assert_eq!(fields[1], ("artist_id".into(), Value::String("a1".into())));
        assert_eq!(
            fields[3],
            ("source".into(), Value::Enum(2, "PROFILE".into()))
        );
        assert_eq!(
            fields[4],
            ("rank".into(), Value::Union(0, Box::new(Value::Null)))
        );
        assert_eq!(
            fields[7],
            ("device".into(), Value::Union(0, Box::new(Value::Null)))
        );
        // the framing of another message of the schema: [1] as count 1, index 1
        let mut other = vec![2, 2];
        other.extend(&body);
        let error = schema.decode(&other, None).unwrap_err();
        assert!(error.contains("demo.artists.Follow"), "{error}");
        let error = schema.decode(&[0, 0xff], None).unwrap_err();
        assert!(
            error.contains("not a `demo.artists.Follow` message"),
            "{error}"
        );
    }

    #[test]
    fn a_nested_message_is_found_by_name_with_its_index_path() {
        let (message, indexes) = message_of(
            compile(SCHEMA, &[]).unwrap(),
            Some("demo.artists.Follow.Device"),
        )
        .unwrap();
        assert_eq!(message.name(), "Device");
        // the map field's entry message comes first among the nested messages
        assert_eq!(indexes, vec![0, 1]);
        let mut rest: &[u8] = &[4, 0, 2, 9];
        assert_eq!(zigzag(&mut rest).unwrap(), 2);
        assert_eq!(
            message_indexes(&[4, 0, 2, 9]).unwrap(),
            (vec![0, 1], &[9u8][..])
        );
    }
}
