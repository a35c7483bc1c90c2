//! Schema evolution (sans-io): the seven Confluent compatibility modes over Avro's resolution
//! rules, and a field-by-field diff that says which change breaks which direction.
//!
//! "Backward" means the new schema reads data written with the old one (consumers upgrade
//! first); "forward" means the old schema reads data written with the new one (producers upgrade
//! first). Resolution is Avro's (`apache_avro::schema_compatibility`); a resolution that *may*
//! fail at run time (an enum symbol or union branch the reader lacks) counts as incompatible, as
//! in Confluent's registry.

use std::fmt;

use apache_avro::{
    schema::{RecordField, RecordSchema},
    schema_compatibility::{Compatibility as Resolution, SchemaCompatibility},
    Schema,
};

use crate::product::Compatibility;

/// Why `reader` cannot read what `writer` wrote, or `None` when it always can.
pub fn cannot_read(writer: &Schema, reader: &Schema) -> Option<String> {
    match SchemaCompatibility::can_read(writer, reader) {
        Ok(Resolution::Full) => None,
        Ok(Resolution::Partial) => Some(
            "the reader lacks an enum symbol or union branch the writer may use (add it, or give the enum a default)".into(),
        ),
        Err(e) => Some(e.to_string()),
    }
}

/// Checks `new` against the registered versions (`previous`, oldest first) under `mode`, and
/// returns every incompatibility found (empty: compatible).
pub fn check(mode: Compatibility, new: &Schema, previous: &[&Schema]) -> Vec<String> {
    check_with(mode, new, previous, cannot_read)
}

/// [`check`] for schemas of any format, with `cannot_read(writer, reader)` saying why a reader
/// of one schema cannot read what a writer of the other wrote.
pub fn check_with<T: ?Sized>(
    mode: Compatibility,
    new: &T,
    previous: &[&T],
    cannot_read: impl Fn(&T, &T) -> Option<String>,
) -> Vec<String> {
    let newest = previous.len();
    let last = &previous[newest.saturating_sub(1)..];
    let (against, backward, forward): (&[&T], bool, bool) = match mode {
        Compatibility::None => return Vec::new(),
        Compatibility::Backward => (last, true, false),
        Compatibility::BackwardTransitive => (previous, true, false),
        Compatibility::Forward => (last, false, true),
        Compatibility::ForwardTransitive => (previous, false, true),
        Compatibility::Full => (last, true, true),
        Compatibility::FullTransitive => (previous, true, true),
    };
    let mut problems = Vec::new();
    for (i, old) in against.iter().enumerate() {
        let version = newest - against.len() + i + 1;
        if backward {
            if let Some(why) = cannot_read(old, new) {
                problems.push(format!(
                    "{mode}: the new schema cannot read data written with version {version}: {why}"
                ));
            }
        }
        if forward {
            if let Some(why) = cannot_read(new, old) {
                problems.push(format!(
                    "{mode}: version {version} cannot read data written with the new schema: {why}"
                ));
            }
        }
    }
    problems
}

/// One change between two versions of a record schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Dotted path of the field (`payment.amount`).
    pub path: String,
    /// What changed.
    pub what: String,
    /// Old data no longer readable with the new schema.
    pub breaks_backward: bool,
    /// New data not readable with the old schema.
    pub breaks_forward: bool,
}

impl Change {
    /// True when this change violates `mode` (for the transitive modes, against the previous
    /// version; `check` covers the whole history).
    pub fn breaks(&self, mode: Compatibility) -> bool {
        use Compatibility::*;
        match mode {
            None => false,
            Backward | BackwardTransitive => self.breaks_backward,
            Forward | ForwardTransitive => self.breaks_forward,
            Full | FullTransitive => self.breaks_backward || self.breaks_forward,
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.what)
    }
}

/// Field-by-field changes from `old` to `new` (records, recursively; other types as a whole).
pub fn diff(old: &Schema, new: &Schema) -> Vec<Change> {
    let mut changes = Vec::new();
    diff_at("", old, new, &mut changes);
    changes
}

fn diff_at(path: &str, old: &Schema, new: &Schema, out: &mut Vec<Change>) {
    match (old, new) {
        (Schema::Record(o), Schema::Record(n)) => diff_records(path, o, n, out),
        (Schema::Enum(o), Schema::Enum(n)) => {
            let added: Vec<_> = n
                .symbols
                .iter()
                .filter(|s| !o.symbols.contains(s))
                .collect();
            let removed: Vec<_> = o
                .symbols
                .iter()
                .filter(|s| !n.symbols.contains(s))
                .collect();
            if !added.is_empty() {
                out.push(Change {
                    path: display(path),
                    what: format!("enum symbols added: {}", join(&added)),
                    breaks_backward: false,
                    breaks_forward: o.default.is_none(),
                });
            }
            if !removed.is_empty() {
                out.push(Change {
                    path: display(path),
                    what: format!("enum symbols removed: {}", join(&removed)),
                    breaks_backward: n.default.is_none(),
                    breaks_forward: false,
                });
            }
        }
        _ if old.canonical_form() != new.canonical_form() => out.push(Change {
            path: display(path),
            what: format!(
                "type changed from {} to {}",
                old.canonical_form(),
                new.canonical_form()
            ),
            breaks_backward: cannot_read(old, new).is_some(),
            breaks_forward: cannot_read(new, old).is_some(),
        }),
        _ => {}
    }
}

fn diff_records(path: &str, old: &RecordSchema, new: &RecordSchema, out: &mut Vec<Change>) {
    let find = |fields: &'_ [RecordField], f: &RecordField| -> Option<usize> {
        fields.iter().position(|g| {
            g.name == f.name
                || g.aliases.iter().any(|a| a == &f.name)
                || f.aliases.iter().any(|a| a == &g.name)
        })
    };
    for n in &new.fields {
        let here = join_path(path, &n.name);
        match find(&old.fields, n) {
            Some(i) => {
                let o = &old.fields[i];
                if o.name != n.name {
                    out.push(Change {
                        path: display(&here),
                        what: format!("renamed from `{}` (alias keeps it readable)", o.name),
                        breaks_backward: false,
                        breaks_forward: !o.aliases.contains(&n.name),
                    });
                }
                diff_at(&here, &o.schema, &n.schema, out);
            }
            None => out.push(Change {
                path: display(&here),
                what: if n.default.is_some() {
                    "added, with a default".into()
                } else {
                    "added, without a default".into()
                },
                breaks_backward: n.default.is_none(),
                breaks_forward: false,
            }),
        }
    }
    for o in &old.fields {
        if find(&new.fields, o).is_none() {
            out.push(Change {
                path: display(&join_path(path, &o.name)),
                what: if o.default.is_some() {
                    "removed (it had a default)".into()
                } else {
                    "removed (it had no default)".into()
                },
                breaks_backward: false,
                breaks_forward: o.default.is_none(),
            });
        }
    }
}

fn join_path(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

fn display(path: &str) -> String {
    if path.is_empty() {
        "(record)".into()
    } else {
        path.to_owned()
    }
}

fn join(items: &[&String]) -> String {
    items
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use Compatibility::*;

    fn record(fields: &str) -> Schema {
        Schema::parse_str(&format!(
            r#"{{"type":"record","name":"R","fields":[{fields}]}}"#
        ))
        .unwrap()
    }

    const A: &str = r#"{"name":"a","type":"long"}"#;
    const B_NO_DEFAULT: &str = r#"{"name":"b","type":"string"}"#;
    const B_DEFAULT: &str = r#"{"name":"b","type":"string","default":"x"}"#;

    /// (case, old fields, new fields, compatible under [BACKWARD, FORWARD, FULL])
    /// after the Avro specification's resolution rules and Confluent's documented table.
    const CASES: &[(&str, &str, &str, [bool; 3])] = &[
        ("add field with default", A, "A,BD", [true, true, true]),
        ("add field without default", A, "A,B", [false, true, false]),
        ("remove field with default", "A,BD", A, [true, true, true]),
        (
            "remove field without default",
            "A,B",
            A,
            [true, false, false],
        ),
        (
            "promote int to long",
            r#"{"name":"a","type":"int"}"#,
            A,
            [true, false, false],
        ),
        (
            "promote long to double",
            A,
            r#"{"name":"a","type":"double"}"#,
            [true, false, false],
        ),
        (
            "promote string to bytes",
            r#"{"name":"a","type":"string"}"#,
            r#"{"name":"a","type":"bytes"}"#,
            [true, true, true],
        ),
        (
            "narrow long to int",
            A,
            r#"{"name":"a","type":"int"}"#,
            [false, true, false],
        ),
        (
            "incompatible type",
            A,
            r#"{"name":"a","type":"boolean"}"#,
            [false, false, false],
        ),
        (
            "make nullable (long to union)",
            A,
            r#"{"name":"a","type":["null","long"],"default":null}"#,
            [true, false, false],
        ),
        (
            "add enum symbol",
            r#"{"name":"e","type":{"type":"enum","name":"E","symbols":["A"]}}"#,
            r#"{"name":"e","type":{"type":"enum","name":"E","symbols":["A","B"]}}"#,
            [true, false, false],
        ),
        (
            "add enum symbol, reader default",
            r#"{"name":"e","type":{"type":"enum","name":"E","symbols":["A","U"],"default":"U"}}"#,
            r#"{"name":"e","type":{"type":"enum","name":"E","symbols":["A","U","B"],"default":"U"}}"#,
            [true, true, true],
        ),
        (
            "rename field with alias",
            A,
            r#"{"name":"z","type":"long","aliases":["a"]}"#,
            [true, false, false],
        ),
        (
            "rename field without alias",
            A,
            r#"{"name":"z","type":"long"}"#,
            [false, false, false],
        ),
        (
            "nested record gains defaulted field",
            r#"{"name":"n","type":{"type":"record","name":"N","fields":[{"name":"x","type":"int"}]}}"#,
            r#"{"name":"n","type":{"type":"record","name":"N","fields":[{"name":"x","type":"int"},{"name":"y","type":"int","default":0}]}}"#,
            [true, true, true],
        ),
        (
            "logical type timestamp-millis on long",
            A,
            r#"{"name":"a","type":{"type":"long","logicalType":"timestamp-millis"}}"#,
            [true, true, true],
        ),
    ];

    fn expand(s: &str) -> String {
        match s {
            "A,BD" => format!("{A},{B_DEFAULT}"),
            "A,B" => format!("{A},{B_NO_DEFAULT}"),
            other => other.to_owned(),
        }
    }

    #[test]
    fn the_three_directions_follow_avro_resolution() {
        for (case, old, new, expected) in CASES {
            let (old, new) = (record(&expand(old)), record(&expand(new)));
            for (mode, want) in [Backward, Forward, Full].into_iter().zip(expected) {
                let problems = check(mode, &new, &[&old]);
                assert_eq!(
                    problems.is_empty(),
                    *want,
                    "{case} under {mode}: {problems:?}"
                );
            }
            assert!(check(None, &new, &[&old]).is_empty(), "{case} under NONE");
        }
    }

    #[test]
    fn per_field_diff_agrees_with_the_whole_schema_check() {
        for (case, old, new, _) in CASES {
            let (old, new) = (record(&expand(old)), record(&expand(new)));
            let changes = diff(&old, &new);
            assert!(!changes.is_empty(), "{case}: no change found");
            for mode in [Backward, Forward, Full] {
                let whole = !check(mode, &new, &[&old]).is_empty();
                let fields = changes.iter().any(|c| c.breaks(mode));
                assert_eq!(whole, fields, "{case} under {mode}: {changes:?}");
            }
        }
    }

    #[test]
    fn transitive_modes_check_every_earlier_version() {
        // v1 has `b` without default, v2 drops it, v3 adds `b` back as an int.
        let v1 = record(&format!("{A},{B_NO_DEFAULT}"));
        let v2 = record(A);
        let v3 = record(&format!(r#"{A},{{"name":"b","type":"int","default":0}}"#));
        assert!(check(Backward, &v3, &[&v1, &v2]).is_empty());
        let problems = check(BackwardTransitive, &v3, &[&v1, &v2]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("version 1"), "{problems:?}");
        assert!(check(Forward, &v3, &[&v1, &v2]).is_empty());
        assert!(!check(ForwardTransitive, &v3, &[&v1, &v2]).is_empty());
        assert!(check(Full, &v3, &[&v1, &v2]).is_empty());
        assert!(!check(FullTransitive, &v3, &[&v1, &v2]).is_empty());
    }

    #[test]
    fn a_first_version_is_always_compatible() {
        for mode in Compatibility::ALL {
            assert!(check(mode, &record(A), &[]).is_empty());
        }
    }
}
