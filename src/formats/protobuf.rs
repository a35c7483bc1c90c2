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

use std::{collections::HashSet, sync::Arc};

use apache_avro::{types::Value, Schema};
use protobuf::{
    descriptor::{field_descriptor_proto::Label, DescriptorProto, FileDescriptorProto},
    reflect::{
        EnumDescriptor, FieldDescriptor, FileDescriptor, MessageDescriptor, ReflectValueRef,
        RuntimeFieldType, RuntimeType,
    },
    MessageDyn,
};
use serde_json::{json, Value as Json};

use crate::{
    contract::{Decode, WriterSchema},
    registry::protobuf::compile,
};

/// The field model of `message` (the file's first when `None`) in `.proto` text: how a product
/// with a `.proto` schema is loaded.
pub fn fields(text: &str, message: Option<&str>) -> Result<Schema, String> {
    fields_of(compile(text, &[])?, message)
}

/// The field model of `message` (the first when `None`) in compiled `files` (the main file
/// last, after its imports).
pub fn fields_of(files: Vec<FileDescriptorProto>, message: Option<&str>) -> Result<Schema, String> {
    let (message, _) = message_of(files, message)?;
    avro_of(&message)
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

/// The message named `name` (simple or full name; the first top-level message when `None`) in
/// the compiled `files` (the main file last), and its indexes.
fn message_of(
    files: Vec<FileDescriptorProto>,
    name: Option<&str>,
) -> Result<(MessageDescriptor, Vec<i64>), String> {
    let main = files.last().cloned().ok_or("the schema has no file")?;
    let indexes = match name {
        None if main.message_type.is_empty() => return Err("the schema has no message".into()),
        None => vec![0],
        Some(name) => {
            let wanted = name.trim_start_matches('.');
            find(&main.message_type, main.package(), wanted).ok_or_else(|| {
                format!("the schema has no message `{name}`; name one of its messages")
            })?
        }
    };
    let built = FileDescriptor::new_dynamic_fds(files, &[])
        .map_err(|e| format!("the schema's descriptors: {e}"))?;
    let file = built
        .into_iter()
        .find(|f| f.proto().name() == main.name())
        .ok_or("the schema's descriptors: the main file is missing")?;
    let mut message = file
        .messages()
        .nth(usize::try_from(indexes[0]).unwrap_or(usize::MAX))
        .ok_or("message index out of range")?;
    for &index in &indexes[1..] {
        let nested = message
            .nested_messages()
            .nth(usize::try_from(index).unwrap_or(usize::MAX))
            .ok_or("message index out of range")?;
        message = nested;
    }
    Ok((message, indexes))
}

/// The indexes of message `wanted` (its simple or full name) among `messages` of `scope`.
fn find(messages: &[DescriptorProto], scope: &str, wanted: &str) -> Option<Vec<i64>> {
    for (i, message) in messages.iter().enumerate() {
        let full = match scope {
            "" => message.name().to_owned(),
            scope => format!("{scope}.{}", message.name()),
        };
        if message.name() == wanted || full == wanted {
            return Some(vec![i64::try_from(i).ok()?]);
        }
        if let Some(mut nested) = find(&message.nested_type, &full, wanted) {
            nested.insert(0, i64::try_from(i).ok()?);
            return Some(nested);
        }
    }
    None
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

/// The field model of `message` as an Avro schema.
fn avro_of(message: &MessageDescriptor) -> Result<Schema, String> {
    let json = Derive::default().message(message);
    Schema::parse(&json).map_err(|e| format!("derived Avro schema: {e}"))
}

/// Builds an Avro schema, each named type defined once and referenced after.
#[derive(Default)]
struct Derive {
    defined: HashSet<String>,
}

impl Derive {
    fn message(&mut self, message: &MessageDescriptor) -> Json {
        let full = message.full_name().to_owned();
        if !self.defined.insert(full.clone()) {
            return json!(full);
        }
        let fields: Vec<Json> = message
            .fields()
            .map(|field| {
                let ty = match field.runtime_field_type() {
                    RuntimeFieldType::Singular(ty) => {
                        let ty = self.ty(&ty);
                        if has_presence(&field) {
                            return json!({"name": field.name(), "type": ["null", ty], "default": null});
                        }
                        ty
                    }
                    RuntimeFieldType::Repeated(ty) => json!({"type": "array", "items": self.ty(&ty)}),
                    RuntimeFieldType::Map(_, value) => json!({"type": "map", "values": self.ty(&value)}),
                };
                json!({"name": field.name(), "type": ty})
            })
            .collect();
        let (namespace, name) = split_name(&full);
        let mut record = json!({"type": "record", "name": name, "fields": fields});
        if !namespace.is_empty() {
            record["namespace"] = json!(namespace);
        }
        record
    }

    fn ty(&mut self, ty: &RuntimeType) -> Json {
        match ty {
            RuntimeType::I32 => json!("int"),
            RuntimeType::I64 | RuntimeType::U32 | RuntimeType::U64 => json!("long"),
            RuntimeType::F32 => json!("float"),
            RuntimeType::F64 => json!("double"),
            RuntimeType::Bool => json!("boolean"),
            RuntimeType::String => json!("string"),
            RuntimeType::VecU8 => json!("bytes"),
            RuntimeType::Enum(e) => {
                let full = e.full_name().to_owned();
                if !self.defined.insert(full.clone()) {
                    return json!(full);
                }
                let (namespace, name) = split_name(&full);
                let symbols = symbols_of(e);
                let mut schema = json!({"type": "enum", "name": name, "symbols": symbols});
                if !namespace.is_empty() {
                    schema["namespace"] = json!(namespace);
                }
                schema
            }
            RuntimeType::Message(m) => self.message(m),
        }
    }
}

/// The names of an enum's values, each once (an alias of a number repeats no name, but two
/// names may share a number).
fn symbols_of(e: &EnumDescriptor) -> Vec<String> {
    let mut symbols: Vec<String> = Vec::new();
    for value in e.values() {
        if !symbols.iter().any(|s| s == value.name()) {
            symbols.push(value.name().to_owned());
        }
    }
    symbols
}

fn split_name(full: &str) -> (&str, &str) {
    full.rsplit_once('.').unwrap_or(("", full))
}

/// Whether a singular field tells unset from its default: a message, a `oneof` member
/// (`optional` in proto3 is one), or an optional field of proto2.
fn has_presence(field: &FieldDescriptor) -> bool {
    matches!(
        field.runtime_field_type(),
        RuntimeFieldType::Singular(RuntimeType::Message(_))
    ) || field.containing_oneof_including_synthetic().is_some()
        || (field.proto().label() == Label::LABEL_OPTIONAL
            && field.containing_message().file_descriptor_proto().syntax() == "proto2")
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
        assert_eq!(indexes, vec![0, 0]);
        let mut rest: &[u8] = &[4, 0, 2, 9];
        assert_eq!(zigzag(&mut rest).unwrap(), 2);
        assert_eq!(
            message_indexes(&[4, 0, 2, 9]).unwrap(),
            (vec![0, 1], &[9u8][..])
        );
    }
}
