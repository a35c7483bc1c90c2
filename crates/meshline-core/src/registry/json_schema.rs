//! JSON Schema subjects (sans-io): a schema's shape, its canonical text, and compatibility by Confluent's rules for JSON Schema, where what a reader
//! accepts depends on whether an object's content model is open (other properties allowed) or
//! closed (`additionalProperties: false`).
//!
//! [`cannot_read`]`(writer, reader)` asks whether every document valid under the writer's schema
//! is valid under the reader's: a type, enum, length, range or item constraint the reader
//! narrows; a property the reader requires that the writer did not; a property added to an open
//! content model (a writer could have sent it with any value) unless the reader accepts any
//! value; a property removed from a content model the reader closes; a content model the reader
//! closes. Combinators (`allOf`, `anyOf`, `oneOf`, `not`) and `$ref` are compared only for being
//! the same: a change in one counts as incompatible.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

/// The schema in `text`, if it is JSON and a schema's shape (an object, or `true`/`false`);
/// the registry also checks it against its draft's meta-schema.
pub fn parse(text: &str) -> Result<Value, String> {
    let schema: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    if !schema.is_object() && !schema.is_boolean() {
        return Err("a JSON Schema is an object (or `true`/`false`)".into());
    }
    Ok(schema)
}

/// The canonical text of a schema: compact, members in name order.
pub fn canonical(schema: &Value) -> String {
    schema.to_string()
}

/// Why a reader with schema `reader` cannot read every document written under `writer`, or
/// `None` when it always can.
pub fn cannot_read(writer: &Value, reader: &Value) -> Option<String> {
    accepts(reader, writer, "#")
}

/// Why `reader` rejects a document `writer` allows, at `path`.
fn accepts(reader: &Value, writer: &Value, path: &str) -> Option<String> {
    if reader == writer || reader == &Value::Bool(true) || writer == &Value::Bool(false) {
        return None;
    }
    let (Some(r), Some(w)) = (as_object(reader), as_object(writer)) else {
        return Some(format!(
            "{path}: the reader accepts nothing the writer may send"
        ));
    };
    if r.is_empty() {
        return None;
    }
    for keyword in [
        "$ref", "allOf", "anyOf", "oneOf", "not", "if", "then", "else",
    ] {
        if r.get(keyword) != w.get(keyword) {
            return Some(format!("{path}: `{keyword}` changed"));
        }
    }
    if let Some(why) = types(&r, &w, path) {
        return Some(why);
    }
    for keyword in ["enum", "const"] {
        if let Some(allowed) = r.get(keyword) {
            let allowed = values(allowed, keyword);
            let written = w.get("enum").or(w.get("const"));
            let widened = written.is_some_and(|written| {
                values(
                    written,
                    if w.contains_key("enum") {
                        "enum"
                    } else {
                        "const"
                    },
                )
                .iter()
                .all(|v| allowed.contains(v))
            });
            if !widened {
                return Some(format!("{path}: `{keyword}` narrows the values allowed"));
            }
        }
    }
    for (keyword, narrower) in [
        ("maxLength", Narrower::Less),
        ("minLength", Narrower::Greater),
        ("maximum", Narrower::Less),
        ("exclusiveMaximum", Narrower::Less),
        ("minimum", Narrower::Greater),
        ("exclusiveMinimum", Narrower::Greater),
        ("maxItems", Narrower::Less),
        ("minItems", Narrower::Greater),
        ("maxProperties", Narrower::Less),
        ("minProperties", Narrower::Greater),
    ] {
        if let Some(bound) = r.get(keyword).and_then(Value::as_f64) {
            let was = w.get(keyword).and_then(Value::as_f64);
            let narrowed = match (narrower, was) {
                (_, None) => true,
                (Narrower::Less, Some(was)) => bound < was,
                (Narrower::Greater, Some(was)) => bound > was,
            };
            if narrowed {
                return Some(format!("{path}: `{keyword}` narrowed"));
            }
        }
    }
    for keyword in ["pattern", "multipleOf", "format", "uniqueItems"] {
        if r.get(keyword).is_some() && r.get(keyword) != w.get(keyword) {
            return Some(format!("{path}: `{keyword}` added or changed"));
        }
    }
    if let Some(items) = r.get("items") {
        let written = w.get("items").unwrap_or(&Value::Bool(true));
        if let Some(why) = accepts(items, written, &format!("{path}/items")) {
            return Some(why);
        }
    }
    object(&r, &w, path)
}

#[derive(Debug, Clone, Copy)]
enum Narrower {
    /// A smaller bound accepts less.
    Less,
    /// A greater bound accepts less.
    Greater,
}

fn as_object(schema: &Value) -> Option<Map<String, Value>> {
    match schema {
        Value::Object(map) => Some(map.clone()),
        Value::Bool(true) => Some(Map::new()),
        _ => None,
    }
}

fn values(value: &Value, keyword: &str) -> Vec<Value> {
    match (keyword, value) {
        ("enum", Value::Array(items)) => items.clone(),
        (_, other) => vec![other.clone()],
    }
}

/// The JSON types a schema allows (`None`: any).
fn type_set(schema: &Map<String, Value>) -> Option<BTreeSet<String>> {
    let names = match schema.get("type")? {
        Value::String(name) => vec![name.clone()],
        Value::Array(names) => names
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        _ => return None,
    };
    Some(names.into_iter().collect())
}

fn types(r: &Map<String, Value>, w: &Map<String, Value>, path: &str) -> Option<String> {
    let allowed = type_set(r)?;
    let written = type_set(w);
    let covered =
        |t: &String| allowed.contains(t) || (t == "integer" && allowed.contains("number"));
    match written {
        Some(written) if written.iter().all(covered) => None,
        Some(written) => Some(format!(
            "{path}: type narrowed from {} to {}",
            written.into_iter().collect::<Vec<_>>().join("|"),
            allowed.into_iter().collect::<Vec<_>>().join("|")
        )),
        None => Some(format!("{path}: a type is set where any was allowed")),
    }
}

/// The schema of the properties an object's content model allows besides its `properties`:
/// `true` (open), `false` (closed) or a schema.
fn additional(schema: &Map<String, Value>) -> Value {
    schema
        .get("additionalProperties")
        .cloned()
        .unwrap_or(Value::Bool(true))
}

fn object(r: &Map<String, Value>, w: &Map<String, Value>, path: &str) -> Option<String> {
    let empty = Map::new();
    let reader_properties = r
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let writer_properties = w
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let (reader_more, writer_more) = (additional(r), additional(w));
    for (name, reader_property) in reader_properties {
        let at = format!("{path}/properties/{name}");
        // a property the writer did not declare comes under its additional properties
        let written = writer_properties.get(name).unwrap_or(&writer_more);
        if let Some(why) = accepts(reader_property, written, &at) {
            return Some(if writer_properties.contains_key(name) {
                why
            } else {
                format!("{at}: property added to an open content model ({why})")
            });
        }
    }
    for (name, writer_property) in writer_properties {
        if !reader_properties.contains_key(name) {
            let at = format!("{path}/properties/{name}");
            if let Some(why) = accepts(&reader_more, writer_property, &at) {
                return Some(format!(
                    "{at}: property removed from a closed content model ({why})"
                ));
            }
        }
    }
    if let Some(why) = accepts(
        &reader_more,
        &writer_more,
        &format!("{path}/additionalProperties"),
    ) {
        return Some(format!("{why}: the content model is closed or narrowed"));
    }
    let required = |schema: &Map<String, Value>| -> BTreeSet<String> {
        schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    };
    let newly: Vec<String> = required(r).difference(&required(w)).cloned().collect();
    if !newly.is_empty() {
        return Some(format!(
            "{path}: required properties added: {}",
            newly.join(", ")
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn closed(properties: Value, required: &[&str]) -> Value {
        json!({"type": "object", "properties": properties, "required": required, "additionalProperties": false})
    }

    fn open(properties: Value, required: &[&str]) -> Value {
        json!({"type": "object", "properties": properties, "required": required})
    }

    /// (what changes, writer → reader, whether the reader reads everything the writer wrote),
    /// after Confluent's JSON Schema compatibility rules.
    #[test]
    fn each_rule_decides_whether_a_reader_reads_what_a_writer_wrote() {
        let s = json!({"type": "string"});
        let n = json!({"type": "number"});
        let i = json!({"type": "integer"});
        let cases: Vec<(&str, Value, Value, bool)> = vec![
            (
                "the same schema",
                open(json!({"a": s}), &["a"]),
                open(json!({"a": s}), &["a"]),
                true,
            ),
            ("type widened integer → number", i.clone(), n.clone(), true),
            (
                "type narrowed number → integer",
                n.clone(),
                i.clone(),
                false,
            ),
            ("type changed string → number", s.clone(), n.clone(), false),
            (
                "type union widened",
                s.clone(),
                json!({"type": ["string", "null"]}),
                true,
            ),
            (
                "optional property added to a closed model",
                closed(json!({"a": s}), &[]),
                closed(json!({"a": s, "b": s}), &[]),
                true,
            ),
            (
                "optional property added to an open model",
                open(json!({"a": s}), &[]),
                open(json!({"a": s, "b": s}), &[]),
                false,
            ),
            (
                "property removed from an open model",
                open(json!({"a": s, "b": s}), &[]),
                open(json!({"a": s}), &[]),
                true,
            ),
            (
                "property removed from a closed model",
                closed(json!({"a": s, "b": s}), &[]),
                closed(json!({"a": s}), &[]),
                false,
            ),
            (
                "required property added",
                closed(json!({"a": s}), &[]),
                closed(json!({"a": s}), &["a"]),
                false,
            ),
            (
                "required property made optional",
                closed(json!({"a": s}), &["a"]),
                closed(json!({"a": s}), &[]),
                true,
            ),
            (
                "content model closed",
                open(json!({"a": s}), &[]),
                closed(json!({"a": s}), &[]),
                false,
            ),
            (
                "content model opened",
                closed(json!({"a": s}), &[]),
                open(json!({"a": s}), &[]),
                true,
            ),
            (
                "enum value added",
                json!({"enum": ["A", "B"]}),
                json!({"enum": ["A", "B", "C"]}),
                true,
            ),
            (
                "enum value removed",
                json!({"enum": ["A", "B"]}),
                json!({"enum": ["A"]}),
                false,
            ),
            (
                "maxLength reduced",
                json!({"type": "string", "maxLength": 10}),
                json!({"type": "string", "maxLength": 5}),
                false,
            ),
            (
                "maxLength raised",
                json!({"type": "string", "maxLength": 5}),
                json!({"type": "string", "maxLength": 10}),
                true,
            ),
            (
                "minimum raised",
                json!({"type": "number", "minimum": 0}),
                json!({"type": "number", "minimum": 1}),
                false,
            ),
            (
                "pattern added",
                s.clone(),
                json!({"type": "string", "pattern": "^a"}),
                false,
            ),
            (
                "array items narrowed",
                json!({"type": "array", "items": n}),
                json!({"type": "array", "items": i}),
                false,
            ),
            (
                "array items widened",
                json!({"type": "array", "items": i}),
                json!({"type": "array", "items": n}),
                true,
            ),
            (
                "nested property type narrowed",
                closed(json!({"o": closed(json!({"x": n}), &[])}), &[]),
                closed(json!({"o": closed(json!({"x": i}), &[])}), &[]),
                false,
            ),
            (
                "a combinator changed",
                json!({"anyOf": [s, n]}),
                json!({"anyOf": [s]}),
                false,
            ),
        ];
        for (what, writer, reader, compatible) in cases {
            let verdict = cannot_read(&writer, &reader);
            assert_eq!(verdict.is_none(), compatible, "{what}: {verdict:?}");
        }
    }

    /// Histories × the seven modes: a new schema against versions where the last is
    /// compatible and an older one is not, so transitive modes differ from the others.
    #[test]
    fn every_mode_checks_the_versions_it_names() {
        use crate::product::Compatibility;
        let (integer, number) = (json!({"type": "integer"}), json!({"type": "number"}));
        // (history, new, verdict per mode in `Compatibility::ALL`'s order: B, BT, F, FT, Full,
        // FullT, None)
        let histories = [
            (
                [&integer, &number],
                &number,
                [true, true, true, false, true, false, true],
            ),
            (
                [&number, &integer],
                &integer,
                [true, false, true, true, true, false, true],
            ),
        ];
        for (history, new, verdicts) in histories {
            for (mode, expected) in Compatibility::ALL.into_iter().zip(verdicts) {
                let problems =
                    crate::registry::compat::check_with(mode, new, &history, cannot_read);
                assert_eq!(
                    problems.is_empty(),
                    expected,
                    "{mode} over {history:?} → {new}: {problems:?}"
                );
            }
        }
    }

    #[test]
    fn a_schema_is_a_json_object_and_its_text_is_canonical() {
        assert!(parse(r#"{"type": "object", "properties": {"a": {"type": "string"}}}"#).is_ok());
        assert!(parse("[1]").is_err());
        assert!(parse("{").unwrap_err().contains("not JSON"));
        assert_eq!(
            canonical(&parse(r#"{ "type":"string",  "maxLength": 3 }"#).unwrap()),
            r#"{"maxLength":3,"type":"string"}"#
        );
    }
}
