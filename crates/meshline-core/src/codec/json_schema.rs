//! A JSON Schema's documents as Avro (sans-io): the field model that quality rules, views and
//! snapshots read for a product whose events are JSON. A document valid under the JSON Schema
//! converts to a value of the derived Avro schema with [`super::json::from_json`] and Avro's
//! schema resolution.
//!
//! | JSON Schema | Avro |
//! |---|---|
//! | `object` with `properties` | `record` (a property not `required`: union with `null`, default `null`) |
//! | `object` with only `additionalProperties: <schema>` | `map` |
//! | `array` with `items` | `array` |
//! | `string` with an `enum` of names | `enum` |
//! | `string`, or `enum`/`const` of strings | `string` |
//! | `integer` | `long` |
//! | `number` | `double` |
//! | `boolean` | `boolean` |
//! | `type: [T, "null"]`, or `anyOf`/`oneOf` of `T` and `null` | union of `null` and `T` |
//! | `$ref` to `#/definitions/…` or `#/$defs/…` | the definition, inlined |
//!
//! Anything else (a union of several non-null types, an object without properties, a
//! recursive `$ref`) has no field model: the error names the property.

use serde_json::{json, Map, Value as Json};

/// The Avro schema of the documents `schema` describes, a record named `name`.
pub fn avro_fields(schema: &Json, name: &str) -> Result<apache_avro::Schema, String> {
    let mut names = Vec::new();
    let record = Derive {
        root: schema,
        names: &mut names,
        depth: 0,
    }
    .object(schema, name, "#")?
    .ok_or_else(|| "the top-level schema must be an `object` with `properties`".to_owned())?;
    apache_avro::Schema::parse(&record).map_err(|e| format!("derived Avro schema: {e}"))
}

struct Derive<'a> {
    root: &'a Json,
    names: &'a mut Vec<String>,
    depth: usize,
}

impl<'a> Derive<'a> {
    /// A record for an object schema with `properties`, `None` for any other schema.
    fn object(&mut self, schema: &Json, name: &str, path: &str) -> Result<Option<Json>, String> {
        let schema = self.resolve(schema, path)?;
        let Some(properties) = schema.get("properties").and_then(Json::as_object) else {
            return Ok(None);
        };
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Json::as_array)
            .map(|r| r.iter().filter_map(Json::as_str).collect())
            .unwrap_or_default();
        let name = self.name(name);
        let mut fields = Vec::new();
        for (property, sub) in properties {
            if !is_avro_name(property) {
                return Err(format!(
                    "{path}/properties/{property}: `{property}` is not a field name rules and views can read (letters, digits and `_`, not first a digit)"
                ));
            }
            let at = format!("{path}/properties/{property}");
            let (ty, nullable) = self.ty(sub, property, &at)?;
            let field = if nullable || !required.contains(&property.as_str()) {
                json!({"name": property, "type": nullable_of(ty), "default": null})
            } else {
                json!({"name": property, "type": ty})
            };
            fields.push(field);
        }
        Ok(Some(
            json!({"type": "record", "name": name, "fields": fields}),
        ))
    }

    /// The Avro type of `schema`, and whether it allows `null`.
    fn ty(&mut self, schema: &Json, hint: &str, path: &str) -> Result<(Json, bool), String> {
        self.depth += 1;
        if self.depth > 32 {
            return Err(format!("{path}: nested too deep (a recursive `$ref`?)"));
        }
        let result = self.ty_inner(schema, hint, path);
        self.depth -= 1;
        result
    }

    fn ty_inner(&mut self, schema: &Json, hint: &str, path: &str) -> Result<(Json, bool), String> {
        let schema = self.resolve(schema, path)?;
        let Some(object) = schema.as_object() else {
            return Err(format!(
                "{path}: `{schema}` has no field model; give it a `type`"
            ));
        };
        for combinator in ["anyOf", "oneOf"] {
            if let Some(options) = object.get(combinator).and_then(Json::as_array) {
                let (nulls, others): (Vec<&Json>, Vec<&Json>) = options
                    .iter()
                    .partition(|o| o.get("type") == Some(&json!("null")));
                return match (nulls.len(), others.as_slice()) {
                    (_, [only]) => {
                        let (ty, nullable) = self.ty(only, hint, path)?;
                        Ok((ty, nullable || !nulls.is_empty()))
                    }
                    _ => Err(format!(
                        "{path}: `{combinator}` of several types has no field model; use one type (or one type and `null`)"
                    )),
                };
            }
        }
        let types: Vec<&str> = match object.get("type") {
            Some(Json::String(t)) => vec![t.as_str()],
            Some(Json::Array(list)) => list.iter().filter_map(Json::as_str).collect(),
            _ if object.contains_key("enum") || object.contains_key("const") => vec!["string"],
            _ => {
                return Err(format!(
                    "{path}: no `type`; give the property a type (string, integer, number, boolean, object, array)"
                ))
            }
        };
        let nullable = types.contains(&"null");
        let named: Vec<&str> = types.into_iter().filter(|t| *t != "null").collect();
        let [ty] = named.as_slice() else {
            return Err(format!(
                "{path}: a property of several types ({}) has no field model; use one type (or one type and `null`)",
                named.join(", ")
            ));
        };
        let avro = match *ty {
            "string" => self.string(object, hint),
            "integer" => json!("long"),
            "number" => json!("double"),
            "boolean" => json!("boolean"),
            "array" => {
                let items = object
                    .get("items")
                    .ok_or_else(|| format!("{path}: an `array` needs `items`"))?;
                let (item, item_nullable) = self.ty(items, hint, &format!("{path}/items"))?;
                let item = if item_nullable { nullable_of(item) } else { item };
                json!({"type": "array", "items": item})
            }
            "object" => match self.object(schema, hint, path)? {
                Some(record) => record,
                None => match object.get("additionalProperties") {
                    Some(values @ Json::Object(_)) => {
                        let at = format!("{path}/additionalProperties");
                        let (value, value_nullable) = self.ty(values, hint, &at)?;
                        let value = if value_nullable { nullable_of(value) } else { value };
                        json!({"type": "map", "values": value})
                    }
                    _ => {
                        return Err(format!(
                            "{path}: an `object` needs `properties` (or `additionalProperties` with a schema) to have a field model"
                        ))
                    }
                },
            },
            other => {
                return Err(format!(
                    "{path}: type `{other}` has no field model; use string, integer, number, boolean, object or array"
                ))
            }
        };
        Ok((avro, nullable))
    }

    /// `string`, or an Avro `enum` when the schema lists names only.
    fn string(&mut self, object: &Map<String, Json>, hint: &str) -> Json {
        let symbols: Option<Vec<&str>> = object
            .get("enum")
            .and_then(Json::as_array)
            .and_then(|values| values.iter().map(Json::as_str).collect());
        match symbols {
            Some(symbols) if !symbols.is_empty() && symbols.iter().all(|s| is_avro_name(s)) => {
                json!({"type": "enum", "name": self.name(hint), "symbols": symbols})
            }
            _ => json!("string"),
        }
    }

    /// A local `$ref` resolved (`#/definitions/…`, `#/$defs/…`, or any JSON pointer).
    fn resolve<'s>(&self, schema: &'s Json, path: &str) -> Result<&'s Json, String>
    where
        'a: 's,
    {
        let mut schema = schema;
        for _ in 0..32 {
            let Some(reference) = schema.get("$ref").and_then(Json::as_str) else {
                return Ok(schema);
            };
            schema = reference
                .strip_prefix('#')
                .and_then(|pointer| self.root.pointer(pointer))
                .ok_or_else(|| {
                    format!("{path}: `$ref` `{reference}` is not a definition of this schema")
                })?;
        }
        Err(format!("{path}: `$ref` chain too long"))
    }

    /// A record or enum name from a property name, unique within the schema.
    fn name(&mut self, hint: &str) -> String {
        let base: String = hint
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(|w| {
                let mut chars = w.chars();
                chars
                    .next()
                    .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                    .unwrap_or_default()
            })
            .collect();
        let base = match base.chars().next() {
            Some(c) if c.is_ascii_alphabetic() => base,
            _ => format!("T{base}"),
        };
        let mut name = base.clone();
        let mut n = 1;
        while self.names.contains(&name) {
            n += 1;
            name = format!("{base}{n}");
        }
        self.names.push(name.clone());
        name
    }
}

fn nullable_of(ty: Json) -> Json {
    json!(["null", ty])
}

fn is_avro_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use apache_avro::types::Value;

    use super::*;
    use crate::codec::json::from_json;

    fn release() -> Json {
        json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {
                "release_id": {"type": "string"},
                "tracks": {"type": "integer"},
                "price": {"type": ["number", "null"]},
                "explicit": {"type": "boolean"},
                "format": {"type": "string", "enum": ["ALBUM", "SINGLE", "EP"]},
                "genres": {"type": "array", "items": {"type": "string"}},
                "label": {"$ref": "#/definitions/label"},
                "credits": {"type": "object", "additionalProperties": {"type": "string"}},
                "note": {"anyOf": [{"type": "string"}, {"type": "null"}]}
            },
            "required": ["release_id", "tracks", "explicit", "format", "genres", "label", "credits"],
            "definitions": {
                "label": {
                    "type": "object",
                    "properties": {"id": {"type": "string"}, "name": {"type": "string"}},
                    "required": ["id"]
                }
            }
        })
    }

    #[test]
    fn each_json_schema_type_has_its_avro_type() {
        let schema = avro_fields(&release(), "release").unwrap();
        let json: Json = serde_json::to_value(&schema).unwrap();
        let field = |name: &str| {
            json["fields"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["name"] == name)
                .unwrap()["type"]
                .clone()
        };
        assert_eq!(json["name"], "Release");
        assert_eq!(field("release_id"), json!("string"));
        assert_eq!(field("tracks"), json!("long"));
        assert_eq!(field("price"), json!(["null", "double"]));
        assert_eq!(field("explicit"), json!("boolean"));
        assert_eq!(field("format")["symbols"], json!(["ALBUM", "SINGLE", "EP"]));
        assert_eq!(field("genres"), json!({"type": "array", "items": "string"}));
        assert_eq!(field("label")["type"], "record");
        assert_eq!(
            field("label")["fields"][1]["type"],
            json!(["null", "string"])
        );
        assert_eq!(field("credits"), json!({"type": "map", "values": "string"}));
        assert_eq!(field("note"), json!(["null", "string"]));
    }

    #[test]
    fn a_valid_document_resolves_to_the_derived_schema_missing_optionals_as_null() {
        let schema = avro_fields(&release(), "release").unwrap();
        let document = json!({
            "release_id": "r1", "tracks": 12, "explicit": false, "format": "EP",
            "genres": ["pop"], "label": {"id": "l1"}, "credits": {"mix": "A"}
        });
        let value = from_json(&document).resolve(&schema).unwrap();
        let Value::Record(fields) = value else {
            panic!("a record")
        };
        let field = |name: &str| fields.iter().find(|(n, _)| n == name).unwrap().1.clone();
        assert_eq!(field("tracks"), Value::Long(12));
        assert_eq!(field("price"), Value::Union(0, Box::new(Value::Null)));
        assert_eq!(field("format"), Value::Enum(2, "EP".into()));
    }

    #[test]
    fn a_schema_without_a_field_model_names_the_property() {
        let cases = [
            (json!({"type": "string"}), "top-level"),
            (
                json!({"type": "object", "properties": {"x": {"type": ["string", "integer"]}}}),
                "#/properties/x",
            ),
            (
                json!({"type": "object", "properties": {"x": {"type": "object"}}}),
                "#/properties/x",
            ),
            (
                json!({"type": "object", "properties": {"x": {"$ref": "#/definitions/nope"}}}),
                "not a definition",
            ),
            (
                json!({"type": "object", "properties": {"a-b": {"type": "string"}}}),
                "not a field name",
            ),
            (
                json!({"type": "object", "properties": {"n": {"$ref": "#/definitions/n"}},
                       "definitions": {"n": {"type": "object", "properties": {"next": {"$ref": "#/definitions/n"}}}}}),
                "too deep",
            ),
        ];
        for (schema, expected) in cases {
            let error = avro_fields(&schema, "x").unwrap_err();
            assert!(error.contains(expected), "{schema}: {error}");
        }
    }
}
