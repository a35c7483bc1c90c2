//! Avro values as CEL values, and rule evaluation.

use std::{collections::HashMap, sync::Arc};

use apache_avro::types::Value;
use cel::{objects::Key, Context, Program, Value as Cel};
use chrono::{DateTime, TimeZone as _, Utc};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fields_rules_read_are_found_or_all_are_needed() {
        assert_eq!(
            fields_read([
                "message.duration_ms >= 0",
                "size(message.country) == 2 && message.country != 'XX'"
            ]),
            Some(vec!["duration_ms".to_owned(), "country".to_owned()])
        );
        assert_eq!(
            fields_read(["has(message.context)"]),
            Some(vec!["context".to_owned()])
        );
        assert_eq!(fields_read(["size(message) > 3"]), None);
        assert_eq!(fields_read(["message['country'] == 'SE'"]), None);
        assert_eq!(fields_read(["my_message.x == 1"]), Some(vec![]));
    }
}

thread_local! {
    /// The standard library is built once per thread; each evaluation gets a child scope.
    static ROOT: Context<'static, 'static> = Context::default();
}

fn timestamp(t: Option<DateTime<Utc>>) -> Cel {
    t.map_or(Cel::Null, |t| Cel::Timestamp(t.fixed_offset()))
}

/// Converts a decoded Avro value to the CEL value rules see: records and maps become maps,
/// enums their symbol, unions their branch, `timestamp-*` values timestamps.
pub fn to_cel(value: &Value) -> Cel {
    match value {
        Value::Null => Cel::Null,
        Value::Boolean(b) => Cel::Bool(*b),
        Value::Int(i) | Value::Date(i) | Value::TimeMillis(i) => Cel::Int(i64::from(*i)),
        Value::Long(i) | Value::TimeMicros(i) => Cel::Int(*i),
        Value::TimestampMillis(ms) | Value::LocalTimestampMillis(ms) => {
            timestamp(Utc.timestamp_millis_opt(*ms).single())
        }
        Value::TimestampMicros(us) | Value::LocalTimestampMicros(us) => {
            timestamp(Utc.timestamp_micros(*us).single())
        }
        Value::TimestampNanos(ns) | Value::LocalTimestampNanos(ns) => {
            timestamp(Some(Utc.timestamp_nanos(*ns)))
        }
        Value::Float(f) => Cel::Float(f64::from(*f)),
        Value::Double(f) => Cel::Float(*f),
        Value::Bytes(b) | Value::Fixed(_, b) => Cel::Bytes(Arc::new(b.clone())),
        Value::String(s) | Value::Enum(_, s) => Cel::String(Arc::new(s.clone())),
        Value::Uuid(u) => Cel::String(Arc::new(u.to_string())),
        Value::Union(_, inner) => to_cel(inner),
        Value::Array(items) => Cel::List(Arc::new(items.iter().map(to_cel).collect())),
        Value::Map(entries) => map(entries.iter().map(|(k, v)| (k.as_str(), v))),
        Value::Record(fields) => map(fields.iter().map(|(k, v)| (k.as_str(), v))),
        other => Cel::String(Arc::new(format!("{other:?}"))),
    }
}

/// Like [`to_cel`] for a record, converting only the top-level `fields` (all when `None`):
/// rules read a few fields of a wide event.
pub fn record_to_cel(value: &Value, fields: Option<&[String]>) -> Cel {
    match (value, fields) {
        (Value::Record(all), Some(fields)) => map(all
            .iter()
            .filter(|(k, _)| fields.iter().any(|f| f == k))
            .map(|(k, v)| (k.as_str(), v))),
        _ => to_cel(value),
    }
}

/// The top-level fields of `message` that `expressions` read (`message.<field>`), or `None`
/// when one uses `message` in another way (then every field is needed).
pub fn fields_read<'a>(expressions: impl IntoIterator<Item = &'a str>) -> Option<Vec<String>> {
    let mut fields = Vec::new();
    for expression in expressions {
        let mut rest = expression;
        while let Some(at) = rest.find("message") {
            let before = rest[..at].chars().next_back();
            let after = &rest[at + "message".len()..];
            rest = after;
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.') {
                continue;
            }
            let field: String = after
                .strip_prefix('.')?
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if field.is_empty() {
                return None;
            }
            if !fields.contains(&field) {
                fields.push(field);
            }
        }
    }
    Some(fields)
}

fn map<'a>(entries: impl Iterator<Item = (&'a str, &'a Value)>) -> Cel {
    let map: HashMap<Key, Cel> = entries
        .map(|(k, v)| (Key::String(Arc::new(k.to_owned())), to_cel(v)))
        .collect();
    Cel::Map(map.into())
}

/// Evaluates a rule with `message` bound to the event: `Ok(true)` passes, `Ok(false)` fails,
/// `Err` says why it could not be evaluated (or did not give a boolean).
pub fn evaluate(program: &Program, message: &Cel) -> Result<bool, String> {
    ROOT.with(|root| {
        let mut scope = root.new_inner_scope();
        scope.add_variable_from_value("message", message.clone());
        match program.execute(&scope) {
            Ok(Cel::Bool(b)) => Ok(b),
            Ok(other) => Err(format!("the expression gave {other:?}, not a boolean")),
            Err(e) => Err(e.to_string()),
        }
    })
}
