//! Avro values as JSON, for people reading events (`meshline tail`), and JSON as Avro values.

use apache_avro::types::Value;
use serde_json::Value as Json;

/// Converts a decoded Avro value (of any schema language's field model) to JSON. Non-finite
/// floats become `null`.
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
    use apache_avro::{
        reader::datum::GenericDatumReader, writer::datum::GenericDatumWriter, Schema,
    };

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
        let reader = GenericDatumReader::builder(&schema).build().unwrap();
        assert_eq!(
            to_json(reader.read_value(&mut &body[..]).unwrap()),
            serde_json::json!({"n": 7, "o": "x", "e": "B"})
        );
    }
}
