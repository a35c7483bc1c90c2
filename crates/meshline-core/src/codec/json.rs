//! Avro values as JSON, for people reading events (`meshline tail`).

use apache_avro::{reader::datum::GenericDatumReader, types::Value, Schema};
use serde_json::Value as Json;

/// Errors decoding a payload for display.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bytes do not decode with the writer schema.
    #[error("payload does not decode with the writer schema: {0}")]
    Avro(#[from] Box<apache_avro::Error>),
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Decodes an Avro body written with `schema` into JSON. Non-finite floats become `null`.
pub fn avro_to_json(schema: &Schema, mut body: &[u8]) -> Result<Json> {
    let reader = GenericDatumReader::builder(schema)
        .build()
        .map_err(Box::new)?;
    let value = reader.read_value(&mut body).map_err(Box::new)?;
    Ok(to_json(value))
}

/// Converts a decoded Avro value to JSON.
pub fn to_json(value: Value) -> Json {
    match value {
        Value::Float(f) if !f.is_finite() => Json::Null,
        Value::Double(f) if !f.is_finite() => Json::Null,
        Value::Union(_, inner) => to_json(*inner),
        Value::Array(items) => Json::Array(items.into_iter().map(to_json).collect()),
        Value::Map(items) => {
            Json::Object(items.into_iter().map(|(k, v)| (k, to_json(v))).collect())
        }
        Value::Record(fields) => {
            Json::Object(fields.into_iter().map(|(k, v)| (k, to_json(v))).collect())
        }
        other => Json::try_from(other).unwrap_or(Json::Null),
    }
}

/// Converts JSON to an Avro value to resolve against a schema: objects become maps (which
/// resolve to records), integers longs, other numbers doubles.
pub fn from_json(json: &Json) -> Value {
    match json {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Boolean(*b),
        Json::Number(n) => match n.as_i64() {
            Some(i) => Value::Long(i),
            None => Value::Double(n.as_f64().unwrap_or(f64::NAN)),
        },
        Json::String(s) => Value::String(s.clone()),
        Json::Array(items) => Value::Array(items.iter().map(from_json).collect()),
        Json::Object(fields) => Value::Map(
            fields
                .iter()
                .map(|(k, v)| (k.clone(), from_json(v)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use apache_avro::writer::datum::GenericDatumWriter;

    #[test]
    fn record_with_union_and_enum_reads_as_plain_json() {
        let schema = Schema::parse_str(
            r#"{"type":"record","name":"R","fields":[
                {"name":"n","type":"long"},
                {"name":"o","type":["null","string"],"default":null},
                {"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"]}}]}"#,
        )
        .unwrap();
        let value = Value::Record(vec![
            ("n".into(), Value::Long(7)),
            (
                "o".into(),
                Value::Union(1, Box::new(Value::String("x".into()))),
            ),
            ("e".into(), Value::Enum(1, "B".into())),
        ]);
        let body = GenericDatumWriter::builder(&schema)
            .build()
            .unwrap()
            .write_value_to_vec(value)
            .unwrap();
        assert_eq!(
            avro_to_json(&schema, &body).unwrap(),
            serde_json::json!({"n": 7, "o": "x", "e": "B"})
        );
        assert!(avro_to_json(&schema, &body[..1]).is_err());
    }
}
