//! Avro values as CEL values, and rule evaluation.

use std::collections::HashMap;

use apache_avro::types::Value;
use cel::{
    common::{
        types::{
            CelBool, CelBytes, CelDouble, CelInt, CelList, CelMap, CelMapKey, CelNull, CelString,
            CelTimestamp,
        },
        value::Val,
    },
    Context, Program, Value as Cel,
};
use chrono::{DateTime, TimeZone as _, Utc};

use super::fast::Expr;

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
    /// The standard library is built once per thread; each event gets a child scope.
    static ROOT: Context<'static, 'static> = Context::default();
}

fn timestamp<'a>(t: Option<DateTime<Utc>>) -> Box<dyn Val + 'a> {
    match t {
        Some(t) => Box::new(CelTimestamp::from(t.fixed_offset())),
        None => Box::new(CelNull),
    }
}

/// The CEL value rules see for a decoded Avro value, borrowing its strings and bytes: records
/// and maps become maps, enums their symbol, unions their branch, `timestamp-*` values
/// timestamps.
pub fn to_cel(value: &Value) -> Box<dyn Val + '_> {
    match value {
        Value::Null => Box::new(CelNull),
        Value::Boolean(b) => Box::new(CelBool::from(*b)),
        Value::Int(i) | Value::Date(i) | Value::TimeMillis(i) => {
            Box::new(CelInt::from(i64::from(*i)))
        }
        Value::Long(i) | Value::TimeMicros(i) => Box::new(CelInt::from(*i)),
        Value::TimestampMillis(ms) | Value::LocalTimestampMillis(ms) => {
            timestamp(Utc.timestamp_millis_opt(*ms).single())
        }
        Value::TimestampMicros(us) | Value::LocalTimestampMicros(us) => {
            timestamp(Utc.timestamp_micros(*us).single())
        }
        Value::TimestampNanos(ns) | Value::LocalTimestampNanos(ns) => {
            timestamp(Some(Utc.timestamp_nanos(*ns)))
        }
        Value::Float(f) => Box::new(CelDouble::from(f64::from(*f))),
        Value::Double(f) => Box::new(CelDouble::from(*f)),
        Value::Bytes(b) | Value::Fixed(_, b) => Box::new(CelBytes::from(b.as_slice())),
        Value::String(s) | Value::Enum(_, s) => Box::new(CelString::from(s.as_str())),
        Value::Uuid(u) => Box::new(CelString::from(u.to_string())),
        Value::Union(_, inner) => to_cel(inner),
        Value::Array(items) => {
            Box::new(CelList::from(items.iter().map(to_cel).collect::<Vec<_>>()))
        }
        Value::Map(entries) => map(entries.iter().map(|(k, v)| (k.as_str(), v))),
        Value::Record(fields) => map(fields.iter().map(|(k, v)| (k.as_str(), v))),
        other => Box::new(CelString::from(format!("{other:?}"))),
    }
}

/// Like [`to_cel`] for a record, converting only the top-level `fields` (all when `None`):
/// rules read a few fields of a wide event.
pub(super) fn record_to_cel<'a>(value: &'a Value, fields: Option<&[String]>) -> Box<dyn Val + 'a> {
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
pub(super) fn fields_read<'a>(
    expressions: impl IntoIterator<Item = &'a str>,
) -> Option<Vec<String>> {
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

fn map<'a>(entries: impl Iterator<Item = (&'a str, &'a Value)>) -> Box<dyn Val + 'a> {
    let map: HashMap<CelMapKey<'a>, Box<dyn Val + 'a>> = entries
        .map(|(k, v)| (CelMapKey::from(k), to_cel(v)))
        .collect();
    Box::new(CelMap::from(map))
}

/// A scope below `parent` that may bind values borrowed for `'v` (a context is covariant).
fn child<'p, 'v>(parent: &'p Context<'p, 'v>) -> Context<'p, 'v> {
    parent.new_inner_scope()
}

/// The outcome of one rule: `Ok(true)` passes, `Ok(false)` fails, `Err` says why it could not
/// be evaluated (or did not give a boolean).
pub(super) type Outcome = Result<bool, String>;

/// Evaluates rules in order on a decoded event until `stop` says an outcome ends the check,
/// and returns the index and outcome that stopped it. A rule with a native form
/// ([`super::fast`]) runs natively when that can tell; the others run in the interpreter, in
/// one scope per event where `message` is the event (only `fields`, when given).
pub(super) fn evaluate<'r>(
    rules: impl IntoIterator<Item = (&'r Program, Option<&'r Expr>)>,
    message: &Value,
    fields: Option<&[String]>,
    mut stop: impl FnMut(usize, &Outcome) -> bool,
) -> Option<(usize, Outcome)> {
    ROOT.with(|root| {
        let mut scope = None;
        for (i, (program, native)) in rules.into_iter().enumerate() {
            let outcome = match native.and_then(|n| n.eval(message)) {
                Some(b) => Ok(b),
                None => {
                    let scope = scope.get_or_insert_with(|| {
                        let mut scope = child(root);
                        scope.add_variable_as_val("message", record_to_cel(message, fields));
                        scope
                    });
                    match program.execute(scope) {
                        Ok(Cel::Bool(b)) => Ok(b),
                        Ok(other) => Err(format!("the expression gave {other:?}, not a boolean")),
                        Err(e) => Err(e.to_string()),
                    }
                }
            };
            if stop(i, &outcome) {
                return Some((i, outcome));
            }
        }
        None
    })
}
