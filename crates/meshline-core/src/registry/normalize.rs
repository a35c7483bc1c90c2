//! Confluent's normalized form of an Avro schema (sans-io): what `normalize=true` compares and
//! stores, so two spellings of one schema (key order, namespace written apart or in the name,
//! property order, whitespace) get one identity.
//!
//! The form follows Confluent's serializers and server: every named type by its full name and
//! written out once (later uses are the quoted full name), keys in a fixed order (`name`, `type`,
//! then what the type has, then `doc`, `aliases` sorted, an enum's `default`, then custom
//! properties sorted by name), logical types with their parameters, a decimal's scale only when
//! it is not 0.

use std::{collections::BTreeMap, collections::HashSet, fmt::Write as _};

use apache_avro::schema::{
    DecimalSchema, EnumSchema, FixedSchema, InnerDecimalSchema, Name, RecordSchema, Schema,
    UuidSchema,
};
use serde_json::Value;

/// The normalized text of `schema`. `known` names the types already defined elsewhere (those of
/// referenced subjects): they are written as their quoted full name.
pub fn normalized(schema: &Schema, known: impl IntoIterator<Item = String>) -> String {
    let mut writer = Writer {
        seen: known.into_iter().collect(),
        out: String::new(),
    };
    writer.schema(schema);
    writer.out
}

struct Writer {
    seen: HashSet<String>,
    out: String,
}

impl Writer {
    fn schema(&mut self, schema: &Schema) {
        match schema {
            Schema::Null => self.primitive("null"),
            Schema::Boolean => self.primitive("boolean"),
            Schema::Int => self.primitive("int"),
            Schema::Long => self.primitive("long"),
            Schema::Float => self.primitive("float"),
            Schema::Double => self.primitive("double"),
            Schema::Bytes => self.primitive("bytes"),
            Schema::String => self.primitive("string"),
            Schema::Array(array) => {
                self.out.push_str("{\"type\":\"array\",\"items\":");
                self.schema(&array.items);
                self.props(&array.attributes);
                self.out.push('}');
            }
            Schema::Map(map) => {
                self.out.push_str("{\"type\":\"map\",\"values\":");
                self.schema(&map.types);
                self.props(&map.attributes);
                self.out.push('}');
            }
            Schema::Union(union) => {
                self.out.push('[');
                for (i, variant) in union.variants().iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.schema(variant);
                }
                self.out.push(']');
            }
            Schema::Record(record) => self.record(record),
            Schema::Enum(e) => self.enumeration(e),
            Schema::Fixed(fixed) => self.fixed(fixed, None),
            Schema::Decimal(decimal) => self.decimal(decimal),
            Schema::BigDecimal => self.logical("bytes", "big-decimal"),
            Schema::Uuid(UuidSchema::String) => self.logical("string", "uuid"),
            Schema::Uuid(UuidSchema::Bytes) => self.logical("bytes", "uuid"),
            Schema::Uuid(UuidSchema::Fixed(fixed)) => self.fixed(fixed, Some("uuid")),
            Schema::Date => self.logical("int", "date"),
            Schema::TimeMillis => self.logical("int", "time-millis"),
            Schema::TimeMicros => self.logical("long", "time-micros"),
            Schema::TimestampMillis => self.logical("long", "timestamp-millis"),
            Schema::TimestampMicros => self.logical("long", "timestamp-micros"),
            Schema::TimestampNanos => self.logical("long", "timestamp-nanos"),
            Schema::LocalTimestampMillis => self.logical("long", "local-timestamp-millis"),
            Schema::LocalTimestampMicros => self.logical("long", "local-timestamp-micros"),
            Schema::LocalTimestampNanos => self.logical("long", "local-timestamp-nanos"),
            Schema::Duration(fixed) => self.fixed(fixed, Some("duration")),
            Schema::Ref { name } => self.string(&name.fullname(None)),
        }
    }

    fn primitive(&mut self, name: &str) {
        self.string(name);
    }

    fn logical(&mut self, ty: &str, logical: &str) {
        self.out.push_str("{\"type\":");
        self.string(ty);
        self.out.push_str(",\"logicalType\":");
        self.string(logical);
        self.out.push('}');
    }

    fn decimal(&mut self, decimal: &DecimalSchema) {
        let params = |out: &mut String| {
            // writing to a String cannot fail
            let _ = write!(
                out,
                ",\"logicalType\":\"decimal\",\"precision\":{}",
                decimal.precision
            );
            if decimal.scale != 0 {
                let _ = write!(out, ",\"scale\":{}", decimal.scale);
            }
        };
        match &decimal.inner {
            InnerDecimalSchema::Bytes => {
                self.out.push_str("{\"type\":\"bytes\"");
                params(&mut self.out);
                self.out.push('}');
            }
            InnerDecimalSchema::Fixed(fixed) => {
                if self.named(&fixed.name) {
                    return;
                }
                let _ = write!(self.out, ",\"type\":\"fixed\",\"size\":{}", fixed.size);
                params(&mut self.out);
                self.complex(&fixed.doc, fixed.aliases.as_deref(), None);
                self.props(&fixed.attributes);
                self.out.push('}');
            }
        }
    }

    /// Writes a named type's reference and answers `true` when it was defined already; else
    /// opens its object with its name.
    fn named(&mut self, name: &Name) -> bool {
        let full = name.fullname(None);
        if !self.seen.insert(full.clone()) {
            self.string(&full);
            return true;
        }
        self.out.push_str("{\"name\":");
        self.string(&full);
        false
    }

    fn record(&mut self, record: &RecordSchema) {
        if self.named(&record.name) {
            return;
        }
        self.out.push_str(",\"type\":\"record\",\"fields\":[");
        for (i, field) in record.fields.iter().enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            self.out.push_str("{\"name\":");
            self.string(&field.name);
            self.out.push_str(",\"type\":");
            self.schema(&field.schema);
            if let Some(doc) = &field.doc {
                self.out.push_str(",\"doc\":");
                self.string(doc);
            }
            if !field.aliases.is_empty() {
                let mut aliases = field.aliases.clone();
                aliases.sort();
                aliases.dedup();
                self.out.push_str(",\"aliases\":");
                self.json(&Value::from(aliases));
            }
            if let Some(default) = &field.default {
                self.out.push_str(",\"default\":");
                self.json(default);
            }
            self.props(&field.custom_attributes);
            self.out.push('}');
        }
        self.out.push(']');
        let aliases = record.aliases.as_deref();
        self.complex(&record.doc, aliases, None);
        self.props(&record.attributes);
        self.out.push('}');
    }

    fn enumeration(&mut self, e: &EnumSchema) {
        if self.named(&e.name) {
            return;
        }
        self.out.push_str(",\"type\":\"enum\",\"symbols\":");
        self.json(&Value::from(e.symbols.clone()));
        self.complex(&e.doc, e.aliases.as_deref(), e.default.as_deref());
        self.props(&e.attributes);
        self.out.push('}');
    }

    fn fixed(&mut self, fixed: &FixedSchema, logical: Option<&str>) {
        if self.named(&fixed.name) {
            return;
        }
        let _ = write!(self.out, ",\"type\":\"fixed\",\"size\":{}", fixed.size);
        if let Some(logical) = logical {
            self.out.push_str(",\"logicalType\":");
            self.string(logical);
        }
        self.complex(&fixed.doc, fixed.aliases.as_deref(), None);
        self.props(&fixed.attributes);
        self.out.push('}');
    }

    /// `doc`, `aliases` (full names, sorted) and an enum's `default`.
    fn complex(
        &mut self,
        doc: &Option<String>,
        aliases: Option<&[apache_avro::schema::Alias]>,
        enum_default: Option<&str>,
    ) {
        if let Some(doc) = doc.as_deref().filter(|d| !d.is_empty()) {
            self.out.push_str(",\"doc\":");
            self.string(doc);
        }
        if let Some(aliases) = aliases.filter(|a| !a.is_empty()) {
            let mut names: Vec<String> = aliases.iter().map(|a| a.fullname(None)).collect();
            names.sort();
            names.dedup();
            self.out.push_str(",\"aliases\":");
            self.json(&Value::from(names));
        }
        if let Some(default) = enum_default {
            self.out.push_str(",\"default\":");
            self.string(default);
        }
    }

    /// Custom properties, sorted by name.
    fn props(&mut self, props: &BTreeMap<String, Value>) {
        for (name, value) in props {
            self.out.push(',');
            self.string(name);
            self.out.push(':');
            self.json(value);
        }
    }

    fn string(&mut self, s: &str) {
        self.json(&Value::String(s.to_owned()));
    }

    /// JSON with object keys sorted, whatever map `serde_json` was built with.
    fn json(&mut self, value: &Value) {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                self.out.push('{');
                for (i, (k, v)) in entries.into_iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.string(k);
                    self.out.push(':');
                    self.json(v);
                }
                self.out.push('}');
            }
            Value::Array(items) => {
                self.out.push('[');
                for (i, v) in items.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.json(v);
                }
                self.out.push(']');
            }
            scalar => self.out.push_str(&scalar.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(text: &str) -> String {
        normalized(&Schema::parse_str(text).unwrap(), [])
    }

    #[test]
    fn spellings_of_one_schema_normalize_alike() {
        let a = r#"{"type":"record","name":"Play","namespace":"com.example","fields":[
            {"name":"id","type":"string"},
            {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["A","B"]}},
            {"name":"again","type":"Kind","default":"A"}]}"#;
        let b = r#"{"fields":[{"type":"string","name":"id"},
            {"type":{"symbols":["A","B"],"name":"com.example.Kind","type":"enum"},"name":"kind"},
            {"default":"A","type":"com.example.Kind","name":"again"}],
            "name":"com.example.Play","type":"record"}"#;
        assert_eq!(norm(a), norm(b));
        assert_eq!(
            norm(a),
            r#"{"name":"com.example.Play","type":"record","fields":[{"name":"id","type":"string"},{"name":"kind","type":{"name":"com.example.Kind","type":"enum","symbols":["A","B"]}},{"name":"again","type":"com.example.Kind","default":"A"}]}"#
        );
    }

    #[test]
    fn logical_types_docs_and_properties_are_kept_in_a_fixed_order() {
        let text = r#"{"type":"record","name":"T","doc":"d","fields":[
            {"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},
            {"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":0}},
            {"name":"tags","type":{"type":"array","items":"string"},"doc":"fd","zz":1,"aa":{"b":2,"a":1}}]}"#;
        assert_eq!(
            norm(text),
            r#"{"name":"T","type":"record","fields":[{"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}},{"name":"amount","type":{"type":"bytes","logicalType":"decimal","precision":9}},{"name":"tags","type":{"type":"array","items":"string"},"doc":"fd","aa":{"a":1,"b":2},"zz":1}],"doc":"d"}"#
        );
    }

    #[test]
    fn the_normalized_text_parses_back_to_the_same_schema() {
        let text = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../schemas/player/play-event.avsc"),
        )
        .unwrap();
        let once = norm(&text);
        assert_eq!(
            Schema::parse_str(&once).unwrap(),
            Schema::parse_str(&text).unwrap()
        );
        assert_eq!(norm(&once), once, "normalizing twice changes nothing");
    }
}
