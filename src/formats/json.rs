//! JSON Schema events: a document is valid when it is JSON and its schema validates it; its
//! value in the field model is the document resolved against the schema's Avro field model
//! (`codec::json_schema`).

use std::sync::Arc;

use apache_avro::{types::Value, Schema};

use crate::{
    codec::{json::from_json, json_schema::avro_fields},
    contract::{Decode, WriterSchema},
};

/// Decodes and validates the JSON documents of one JSON Schema.
pub struct Decoder {
    validator: jsonschema::Validator,
    avro: Arc<Schema>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("json::Decoder").finish_non_exhaustive()
    }
}

/// The writer schema of JSON Schema `text`, its field model a record named after `name`.
pub fn writer_schema(text: &str, name: &str) -> Result<WriterSchema, String> {
    let schema: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let avro = Arc::new(avro_fields(&schema, name)?);
    let validator =
        jsonschema::validator_for(&schema).map_err(|e| format!("not a valid JSON Schema: {e}"))?;
    let decoder = Decoder {
        validator,
        avro: avro.clone(),
    };
    Ok(WriterSchema::foreign(avro, Box::new(decoder)))
}

impl Decode for Decoder {
    fn decode(&self, body: &[u8]) -> Result<Value, String> {
        let document: serde_json::Value =
            serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
        if let Some(error) = self.validator.iter_errors(&document).next() {
            let at = error.instance_path().to_string();
            let at = if at.is_empty() {
                "the document".to_owned()
            } else {
                at
            };
            return Err(format!("not valid under its JSON Schema at {at}: {error}"));
        }
        from_json(&document)
            .resolve(&self.avro)
            .map_err(|e| format!("does not fit the schema's field model: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCHEMA: &str = r#"{"type":"object","properties":{
        "release_id":{"type":"string"},"tracks":{"type":"integer","minimum":1},
        "format":{"type":"string","enum":["ALBUM","SINGLE"]}},
        "required":["release_id","tracks"],"additionalProperties":false}"#;

    #[test]
    fn a_valid_document_is_a_record_of_the_field_model_and_an_invalid_one_says_where() {
        let schema = writer_schema(SCHEMA, "releases").unwrap();
        assert!(schema.is_foreign());
        let value = schema
            .decode(br#"{"release_id":"r1","tracks":3,"format":"SINGLE"}"#, None)
            .unwrap();
        let Value::Record(fields) = value else {
            panic!("a record")
        };
        let field = |name: &str| fields.iter().find(|(n, _)| n == name).unwrap().1.clone();
        assert_eq!(field("tracks"), Value::Long(3));
        assert_eq!(
            field("format"),
            Value::Union(1, Box::new(Value::Enum(1, "SINGLE".into())))
        );
        let error = schema
            .decode(br#"{"release_id":"r1","tracks":0}"#, None)
            .unwrap_err();
        assert!(error.contains("/tracks"), "{error}");
        let error = schema.decode(br#"{"release_id":"r1","#, None).unwrap_err();
        assert!(error.starts_with("not JSON"), "{error}");
        let error = schema
            .decode(br#"{"release_id":"r1","tracks":2,"extra":1}"#, None)
            .unwrap_err();
        assert!(error.contains("extra"), "{error}");
    }
}
