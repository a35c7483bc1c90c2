//! Bounds on the work a schema or a rule may ask for, checked before any recursive parser or walk
//! runs on it, so that a hostile schema gets a refusal naming the limit instead of a stack
//! overflow that takes the process down.
//!
//! | what | limit |
//! |---|---|
//! | nesting of a schema (messages in messages, records in records, a chain of message types) | [`MAX_NESTING`] levels |
//! | an import path of a schema reference | [`MAX_IMPORT_PATH`] bytes, relative, letters, digits, `_ - . /` |
//! | symbols of one enum | [`MAX_ENUM_SYMBOLS`] |
//! | fields of a schema, all records or messages together | [`MAX_FIELDS`] |
//! | branches of one union | [`MAX_UNION_BRANCHES`] |

use std::fmt;

/// How deep a schema may nest: lexically (a message declared in a message, a record in a
/// record) and through its types (a field whose type holds a field whose type ...).
pub const MAX_NESTING: usize = 64;

/// The most symbols one enum may have: compatibility compares symbol lists.
pub const MAX_ENUM_SYMBOLS: usize = 2_000;

/// The most fields a schema may have, all its records or messages together.
pub const MAX_FIELDS: usize = 10_000;

/// The most branches one union may have.
pub const MAX_UNION_BRANCHES: usize = 100;

/// Checks an Avro schema against [`MAX_ENUM_SYMBOLS`], [`MAX_FIELDS`] and
/// [`MAX_UNION_BRANCHES`], walking it without recursion (each named type once).
pub fn check_avro(schema: &apache_avro::Schema) -> Result<(), String> {
    use apache_avro::Schema;
    let mut fields = 0usize;
    let mut stack = vec![schema];
    while let Some(schema) = stack.pop() {
        match schema {
            Schema::Record(record) => {
                fields += record.fields.len();
                if fields > MAX_FIELDS {
                    return Err(format!(
                        "the schema has more than {MAX_FIELDS} fields, the limit"
                    ));
                }
                stack.extend(record.fields.iter().map(|f| &f.schema));
            }
            Schema::Enum(e) if e.symbols.len() > MAX_ENUM_SYMBOLS => {
                return Err(format!(
                    "enum `{}` has {} symbols; at most {MAX_ENUM_SYMBOLS} are allowed",
                    e.name,
                    e.symbols.len()
                ));
            }
            Schema::Union(union) => {
                if union.variants().len() > MAX_UNION_BRANCHES {
                    return Err(format!(
                        "a union has {} branches; at most {MAX_UNION_BRANCHES} are allowed",
                        union.variants().len()
                    ));
                }
                stack.extend(union.variants());
            }
            Schema::Array(array) => stack.push(&array.items),
            Schema::Map(map) => stack.push(&map.types),
            _ => {}
        }
    }
    Ok(())
}

/// The longest import path a schema reference may have.
pub const MAX_IMPORT_PATH: usize = 256;

/// Why an import path is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadImportPath {
    /// The path as given.
    pub path: String,
    /// What is wrong with it.
    pub why: &'static str,
}

impl fmt::Display for BadImportPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "reference name `{}` is not an import path: {}",
            self.path.escape_debug(),
            self.why
        )
    }
}

impl std::error::Error for BadImportPath {}

/// Checks that `path` has the shape of an import path: relative, no `.` or `..` component, no
/// empty component, no drive, scheme or backslash, only letters, digits and `_ - . /`, at most
/// [`MAX_IMPORT_PATH`] bytes. Such a path names an entry of the schema's references, never a
/// file.
pub fn check_import_path(path: &str) -> Result<(), BadImportPath> {
    let refuse = |why| {
        Err(BadImportPath {
            path: path.chars().take(MAX_IMPORT_PATH).collect(),
            why,
        })
    };
    if path.is_empty() {
        return refuse("it is empty");
    }
    if path.len() > MAX_IMPORT_PATH {
        return refuse("it is longer than 256 bytes");
    }
    if path.starts_with('/') {
        return refuse("it is absolute; name it relative to the import root");
    }
    if let Some(bad) = path
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/')))
    {
        return refuse(match bad {
            '\\' => "it has a backslash; separate components with `/`",
            ':' => "it has a `:` (a drive or a scheme); name it relative to the import root",
            _ => "it has a character other than letters, digits and `_ - . /`",
        });
    }
    for component in path.split('/') {
        match component {
            "" => return refuse("it has an empty component"),
            "." | ".." => return refuse("it has a `.` or `..` component"),
            _ => {}
        }
    }
    Ok(())
}

/// The deepest nesting of `{`…`}` and `<`…`>` in a C-like source text (`.proto`), outside its
/// string literals and `//` and `/* */` comments. Linear in the text, without recursion.
pub fn brace_depth(text: &str) -> usize {
    let bytes = text.as_bytes();
    let (mut depth, mut deepest, mut i) = (0usize, 0usize, 0usize);
    while i < bytes.len() {
        match bytes[i] {
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                while i < bytes.len() && !(bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/')) {
                    i += 1;
                }
                i += 1;
            }
            quote @ (b'"' | b'\'') => {
                i += 1;
                while i < bytes.len() && bytes[i] != quote && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'{' | b'<' | b'(' | b'[' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b'}' | b'>' | b')' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        i += 1;
    }
    deepest
}

/// Refuses `depth` past [`MAX_NESTING`], naming what nests.
pub fn check_nesting(what: &str, depth: usize) -> Result<(), String> {
    if depth > MAX_NESTING {
        return Err(format!(
            "{what} nests {depth} levels deep; at most {MAX_NESTING} are allowed"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn import_paths_name_entries_never_files() {
        for good in [
            "shop/line.proto",
            "a.proto",
            "google/type/date.proto",
            "x_y-z/1.json",
        ] {
            assert_eq!(check_import_path(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("/etc/passwd", "absolute"),
            ("/tmp/meshline_pwned", "absolute"),
            ("../x.proto", "`..`"),
            ("a/../../x.proto", "`..`"),
            ("./x.proto", "`.`"),
            ("a//b.proto", "empty component"),
            ("C:\\x.proto", "drive or a scheme"),
            ("a\\b.proto", "backslash"),
            ("C:/x.proto", "drive or a scheme"),
            ("file:///etc/passwd", "drive or a scheme"),
            ("http://host/x.proto", "drive or a scheme"),
            ("a\0b", "character"),
            ("", "empty"),
        ] {
            let err = check_import_path(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
        assert!(check_import_path(&"a".repeat(300))
            .unwrap_err()
            .to_string()
            .contains("longer"));
    }

    #[test]
    fn brace_depth_skips_strings_and_comments() {
        assert_eq!(brace_depth("message A { message B { } }"), 2);
        assert_eq!(brace_depth("message A { map<string, int32> m = 1; }"), 2);
        assert_eq!(
            brace_depth("// {{{{\nmessage A { string s = 1 [default = \"}}}\"]; }"),
            2
        );
        assert_eq!(brace_depth("/* }}} */ message A { }"), 1);
        let deep = "message M { ".repeat(10_000) + &"}".repeat(10_000);
        assert_eq!(brace_depth(&deep), 10_000);
        // closing braces inside a string do not hide the nesting after it
        assert_eq!(brace_depth("a { \"}}}\" { { } } }"), 3);
        assert!(check_nesting("the schema", 65)
            .unwrap_err()
            .contains("at most 64"));
        assert!(check_nesting("the schema", 64).is_ok());
    }

    #[test]
    fn huge_enums_unions_and_records_are_refused() {
        let symbols: Vec<String> = (0..130_000).map(|i| format!("S{i}")).collect();
        let schema = serde_json::json!({"type": "enum", "name": "E", "symbols": symbols});
        let schema = apache_avro::Schema::parse(&schema).unwrap();
        assert!(check_avro(&schema).unwrap_err().contains("130000 symbols"));
        let fields: Vec<serde_json::Value> = (0..10_001)
            .map(|i| serde_json::json!({"name": format!("f{i}"), "type": "int"}))
            .collect();
        let schema = serde_json::json!({"type": "record", "name": "R", "fields": fields});
        let schema = apache_avro::Schema::parse(&schema).unwrap();
        assert!(check_avro(&schema).unwrap_err().contains("fields"));
        let small = serde_json::json!({"type": "record", "name": "R", "fields": [
            {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["A", "B"]}},
            {"name": "u", "type": ["null", "string"]}]});
        assert!(check_avro(&apache_avro::Schema::parse(&small).unwrap()).is_ok());
    }
}
