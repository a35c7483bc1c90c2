//! Protobuf subjects: a schema as `.proto` text (its imports resolved through the references, by
//! their names) or as a base64 `FileDescriptorProto` (what Confluent's serializers register),
//! parsed by a pure-Rust `.proto` compiler; and compatibility by Confluent's rules for Protobuf.
//!
//! [`cannot_read`]`(writer, reader)`: a package changed; a message the writer has that the
//! reader lost; a field (by number) whose scalar type changed outside a wire-compatible group
//! (`int32 uint32 int64 uint64 bool`, `sint32 sint64`, `fixed32 sfixed32`, `fixed64 sfixed64`,
//! `string bytes`), whose message or enum type changed, that became or stopped being repeated,
//! or that moved into a oneof holding other fields. Fields added or removed are compatible, as
//! are enum values (unknown values are kept).
//!
//! [`fields_of`]: a message's field model, the Avro record its events read as (the table is in
//! `formats::protobuf`).

use std::collections::{BTreeMap, HashSet};

use meshline_core::limits::{
    brace_depth, check_import_path, check_nesting, MAX_ENUM_SYMBOLS, MAX_FIELDS, MAX_NESTING,
};
use serde_json::{json, Value as Json};

use apache_avro::Schema;
use base64::Engine as _;
use protobuf::{
    descriptor::{
        field_descriptor_proto::Label, field_descriptor_proto::Type, DescriptorProto,
        FileDescriptorProto,
    },
    reflect::{
        EnumDescriptor, FieldDescriptor, FileDescriptor, MessageDescriptor, RuntimeFieldType,
        RuntimeType,
    },
    Message as _,
};

/// The file name the main schema is compiled under.
const MAIN: &str = "meshline_schema.proto";

/// The schema in `text`, with `references` (name and text of each imported file).
pub fn parse(text: &str, references: &[(String, String)]) -> Result<FileDescriptorProto, String> {
    compile(text, references)?
        .pop()
        .ok_or_else(|| "the schema compiled to no file".to_owned())
}

/// The schema in `text` and the files it imports from `references`, imports first: the main
/// file is the last.
///
/// Nothing here touches the filesystem: the references are handed to the `.proto` compiler from
/// memory, by their names, each checked to be an import path (`limits::check_import_path`); an
/// import that names no reference is an error. The nesting of every file is checked before the
/// compiler (a recursive parser) runs on it.
pub fn compile(
    text: &str,
    references: &[(String, String)],
) -> Result<Vec<FileDescriptorProto>, String> {
    for (name, _) in references {
        check_import_path(name).map_err(|e| e.to_string())?;
    }
    if let Some(file) = descriptor(text) {
        let mut files = Vec::new();
        for (name, text) in references {
            let mut imported = match descriptor(text) {
                Some(imported) => imported,
                None => parse(text, references)?,
            };
            imported.set_name(name.clone());
            files.push(imported);
        }
        files.push(file);
        for file in &files {
            check_nesting("the schema", declared_depth(&file.message_type))?;
        }
        check_sizes(&files)?;
        return Ok(files);
    }
    check_nesting("the schema", brace_depth(text))?;
    for (name, text) in references {
        if descriptor(text).is_none() {
            check_nesting(&format!("reference `{name}`"), brace_depth(text))?;
        }
    }
    let files = Files {
        main: text,
        references,
    };
    let main = protobuf_parse::ProtoPathBuf::new(MAIN.to_owned()).map_err(|e| e.to_string())?;
    // the compiler is a third party's parser of hostile text: a panic in it is a refusal of
    // the schema, never the end of the request's thread
    let compiled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        protobuf_parse::pure::parse_and_typecheck_custom(&[main], files)
    }))
    .map_err(|_| "not a valid .proto schema: the compiler failed on it".to_owned())?;
    let mut compiled = compiled.map_err(|e| format!("not a valid .proto schema: {e:#}"))?;
    check_sizes(&compiled)?;
    // the main file last, after its imports, as the compiler orders them
    match compiled.last() {
        Some(last) if last.name() == MAIN => Ok(compiled),
        _ => {
            let at = compiled.iter().position(|f| f.name() == MAIN);
            let main = at
                .map(|at| compiled.remove(at))
                .ok_or("the schema compiled to no file")?;
            compiled.push(main);
            Ok(compiled)
        }
    }
}

/// Checks compiled files against the limits on fields and enum values (`limits`), without
/// recursion (their nesting is checked before).
fn check_sizes(files: &[FileDescriptorProto]) -> Result<(), String> {
    let mut fields = 0usize;
    let mut enums: Vec<&protobuf::descriptor::EnumDescriptorProto> = Vec::new();
    let mut stack: Vec<&DescriptorProto> = Vec::new();
    for file in files {
        stack.extend(&file.message_type);
        enums.extend(&file.enum_type);
    }
    while let Some(message) = stack.pop() {
        fields += message.field.len();
        if fields > MAX_FIELDS {
            return Err(format!(
                "the schema has more than {MAX_FIELDS} fields, the limit"
            ));
        }
        stack.extend(&message.nested_type);
        enums.extend(&message.enum_type);
    }
    match enums.iter().find(|e| e.value.len() > MAX_ENUM_SYMBOLS) {
        Some(e) => Err(format!(
            "enum `{}` has {} values; at most {MAX_ENUM_SYMBOLS} are allowed",
            e.name(),
            e.value.len()
        )),
        None => Ok(()),
    }
}

/// The schema and its references as the files the `.proto` compiler imports, held in memory.
struct Files<'a> {
    main: &'a str,
    references: &'a [(String, String)],
}

impl std::fmt::Display for Files<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the schema's references")
    }
}

impl protobuf_parse::pure::ProtoPathResolver for Files<'_> {
    fn resolve(
        &self,
        path: &protobuf_parse::ProtoPath,
    ) -> anyhow::Result<Option<protobuf_parse::pure::ResolvedProtoFile>> {
        let path = path.to_str();
        let text = if path == MAIN {
            Some(self.main)
        } else {
            self.references
                .iter()
                .find(|(name, _)| name == path)
                .map(|(_, text)| text.as_str())
        };
        Ok(text.map(|text| protobuf_parse::pure::ResolvedProtoFile {
            path: path.to_owned(),
            content: text.as_bytes().to_vec(),
        }))
    }
}

/// How deep `messages` declare messages in messages, walked without recursion.
fn declared_depth(messages: &[DescriptorProto]) -> usize {
    let mut deepest = 0;
    let mut stack: Vec<(&DescriptorProto, usize)> = messages.iter().map(|m| (m, 1)).collect();
    while let Some((message, depth)) = stack.pop() {
        deepest = deepest.max(depth);
        if depth <= MAX_NESTING {
            stack.extend(message.nested_type.iter().map(|m| (m, depth + 1)));
        }
    }
    deepest
}

/// A base64 `FileDescriptorProto`, if `text` is one.
fn descriptor(text: &str) -> Option<FileDescriptorProto> {
    let trimmed = text.trim();
    if trimmed.contains(char::is_whitespace) || trimmed.contains(';') {
        return None;
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(trimmed)
        .ok()?;
    let file = FileDescriptorProto::parse_from_bytes(&bytes).ok()?;
    (!file.message_type.is_empty() || !file.enum_type.is_empty()).then_some(file)
}

/// The normal form of a schema: its descriptor's bytes, whatever the spelling.
pub fn normalized(file: &FileDescriptorProto) -> String {
    let mut file = file.clone();
    file.set_name(MAIN.to_owned());
    hex::encode(file.write_to_bytes().unwrap_or_default())
}

/// Why a reader of `reader` cannot read what a writer of `writer` wrote, or `None`.
pub fn cannot_read(writer: &FileDescriptorProto, reader: &FileDescriptorProto) -> Option<String> {
    if writer.package() != reader.package() {
        return Some(format!(
            "package changed from `{}` to `{}`",
            writer.package(),
            reader.package()
        ));
    }
    let reader_messages = messages(&reader.message_type, reader.package());
    for (name, written) in messages(&writer.message_type, writer.package()) {
        let Some(read) = reader_messages.get(&name) else {
            return Some(format!("message `{name}` removed"));
        };
        if let Some(why) = fields(&name, written, read) {
            return Some(why);
        }
    }
    None
}

/// Every message, nested ones too, by full name.
fn messages<'a>(list: &'a [DescriptorProto], scope: &str) -> BTreeMap<String, &'a DescriptorProto> {
    let mut all = BTreeMap::new();
    for message in list {
        let name = if scope.is_empty() {
            message.name().to_owned()
        } else {
            format!("{scope}.{}", message.name())
        };
        all.extend(messages(&message.nested_type, &name));
        all.insert(name, message);
    }
    all
}

/// The wire-compatible group of a scalar type.
fn group(ty: Type) -> u8 {
    match ty {
        Type::TYPE_INT32
        | Type::TYPE_UINT32
        | Type::TYPE_INT64
        | Type::TYPE_UINT64
        | Type::TYPE_BOOL => 1,
        Type::TYPE_SINT32 | Type::TYPE_SINT64 => 2,
        Type::TYPE_FIXED32 | Type::TYPE_SFIXED32 => 3,
        Type::TYPE_FIXED64 | Type::TYPE_SFIXED64 => 4,
        Type::TYPE_STRING | Type::TYPE_BYTES => 5,
        Type::TYPE_MESSAGE | Type::TYPE_GROUP => 6,
        Type::TYPE_ENUM => 7,
        Type::TYPE_FLOAT => 8,
        Type::TYPE_DOUBLE => 9,
    }
}

fn fields(message: &str, written: &DescriptorProto, read: &DescriptorProto) -> Option<String> {
    let by_number: std::collections::HashMap<i32, &protobuf::descriptor::FieldDescriptorProto> =
        read.field.iter().map(|r| (r.number(), r)).collect();
    // fields per oneof of the reader
    let mut oneof_sizes: std::collections::HashMap<i32, usize> = std::collections::HashMap::new();
    for r in &read.field {
        if let Some(i) = r.oneof_index {
            *oneof_sizes.entry(i).or_default() += 1;
        }
    }
    for w in &written.field {
        let Some(&r) = by_number.get(&w.number()) else {
            continue;
        };
        let at = format!("field {} (`{message}.{}`)", w.number(), r.name());
        if group(w.type_()) != group(r.type_()) {
            return Some(format!(
                "{at}: type changed from {:?} to {:?}",
                w.type_(),
                r.type_()
            ));
        }
        if w.type_name() != r.type_name() {
            return Some(format!(
                "{at}: type changed from `{}` to `{}`",
                w.type_name(),
                r.type_name()
            ));
        }
        if (w.label() == Label::LABEL_REPEATED) != (r.label() == Label::LABEL_REPEATED) {
            return Some(format!("{at}: repeated changed"));
        }
        let in_oneof = |index: Option<i32>| index.and_then(|i| oneof_sizes.get(&i).copied());
        if w.oneof_index.is_none() && in_oneof(r.oneof_index).is_some_and(|n| n > 1) {
            return Some(format!("{at}: moved into a oneof with other fields"));
        }
    }
    None
}

// The field model of a message: what data contract rules, views and snapshots read of its
// events, as Avro.

/// The field model of `message` (the first when `None`) in compiled `files` (the main file
/// last, after its imports).
pub fn fields_of(files: Vec<FileDescriptorProto>, message: Option<&str>) -> Result<Schema, String> {
    let (message, _) = message_of(files, message)?;
    avro_of(&message)
}

/// The message named `name` (simple or full name; the first top-level message when `None`) in
/// the compiled `files` (the main file last), and its indexes.
pub fn message_of(
    files: Vec<FileDescriptorProto>,
    name: Option<&str>,
) -> Result<(MessageDescriptor, Vec<i64>), String> {
    let main = files.last().cloned().ok_or("the schema has no file")?;
    let indexes = match name {
        None if main.message_type.is_empty() => return Err("the schema has no message".into()),
        None => vec![0],
        Some(name) => {
            let wanted = name.trim_start_matches('.');
            find(&main.message_type, main.package(), wanted).ok_or_else(|| {
                format!("the schema has no message `{name}`; name one of its messages")
            })?
        }
    };
    let built = FileDescriptor::new_dynamic_fds(files, &[])
        .map_err(|e| format!("the schema's descriptors: {e}"))?;
    let file = built
        .into_iter()
        .find(|f| f.proto().name() == main.name())
        .ok_or("the schema's descriptors: the main file is missing")?;
    let mut message = file
        .messages()
        .nth(usize::try_from(indexes[0]).unwrap_or(usize::MAX))
        .ok_or("message index out of range")?;
    for &index in &indexes[1..] {
        let nested = message
            .nested_messages()
            .nth(usize::try_from(index).unwrap_or(usize::MAX))
            .ok_or("message index out of range")?;
        message = nested;
    }
    Ok((message, indexes))
}

/// The indexes of message `wanted` (its simple or full name) among `messages` of `scope`.
fn find(messages: &[DescriptorProto], scope: &str, wanted: &str) -> Option<Vec<i64>> {
    for (i, message) in messages.iter().enumerate() {
        let full = match scope {
            "" => message.name().to_owned(),
            scope => format!("{scope}.{}", message.name()),
        };
        if message.name() == wanted || full == wanted {
            return Some(vec![i64::try_from(i).ok()?]);
        }
        if let Some(mut nested) = find(&message.nested_type, &full, wanted) {
            nested.insert(0, i64::try_from(i).ok()?);
            return Some(nested);
        }
    }
    None
}

/// The field model of `message` as an Avro schema.
pub fn avro_of(message: &MessageDescriptor) -> Result<Schema, String> {
    let json = Derive::default().message(message)?;
    Schema::parse(&json).map_err(|e| format!("derived Avro schema: {e}"))
}

/// Builds an Avro schema, each named type defined once and referenced after.
#[derive(Default)]
struct Derive {
    defined: HashSet<String>,
    /// How many messages deep the field being derived is.
    depth: usize,
}

impl Derive {
    fn message(&mut self, message: &MessageDescriptor) -> Result<Json, String> {
        let full = message.full_name().to_owned();
        if !self.defined.insert(full.clone()) {
            return Ok(json!(full));
        }
        self.depth += 1;
        check_nesting(
            &format!("message `{full}` (through its fields' types)"),
            self.depth,
        )?;
        let mut fields = Vec::new();
        for field in message.fields() {
            let ty = match field.runtime_field_type() {
                RuntimeFieldType::Singular(ty) => {
                    let ty = self.ty(&ty)?;
                    if has_presence(&field) {
                        fields.push(
                            json!({"name": field.name(), "type": ["null", ty], "default": null}),
                        );
                        continue;
                    }
                    ty
                }
                RuntimeFieldType::Repeated(ty) => json!({"type": "array", "items": self.ty(&ty)?}),
                RuntimeFieldType::Map(_, value) => {
                    json!({"type": "map", "values": self.ty(&value)?})
                }
            };
            fields.push(json!({"name": field.name(), "type": ty}));
        }
        self.depth -= 1;
        let (namespace, name) = split_name(&full);
        let mut record = json!({"type": "record", "name": name, "fields": fields});
        if !namespace.is_empty() {
            record["namespace"] = json!(namespace);
        }
        Ok(record)
    }

    fn ty(&mut self, ty: &RuntimeType) -> Result<Json, String> {
        Ok(match ty {
            RuntimeType::I32 => json!("int"),
            RuntimeType::I64 | RuntimeType::U32 | RuntimeType::U64 => json!("long"),
            RuntimeType::F32 => json!("float"),
            RuntimeType::F64 => json!("double"),
            RuntimeType::Bool => json!("boolean"),
            RuntimeType::String => json!("string"),
            RuntimeType::VecU8 => json!("bytes"),
            RuntimeType::Enum(e) => {
                let full = e.full_name().to_owned();
                if !self.defined.insert(full.clone()) {
                    return Ok(json!(full));
                }
                let (namespace, name) = split_name(&full);
                let symbols = symbols_of(e);
                let mut schema = json!({"type": "enum", "name": name, "symbols": symbols});
                if !namespace.is_empty() {
                    schema["namespace"] = json!(namespace);
                }
                schema
            }
            RuntimeType::Message(m) => self.message(m)?,
        })
    }
}

/// The names of an enum's values, each once (an alias of a number repeats no name, but two
/// names may share a number).
pub fn symbols_of(e: &EnumDescriptor) -> Vec<String> {
    let mut symbols: Vec<String> = Vec::new();
    for value in e.values() {
        if !symbols.iter().any(|s| s == value.name()) {
            symbols.push(value.name().to_owned());
        }
    }
    symbols
}

fn split_name(full: &str) -> (&str, &str) {
    full.rsplit_once('.').unwrap_or(("", full))
}

/// Whether a singular field tells unset from its default: a message, a `oneof` member
/// (`optional` in proto3 is one), or an optional field of proto2.
pub fn has_presence(field: &FieldDescriptor) -> bool {
    matches!(
        field.runtime_field_type(),
        RuntimeFieldType::Singular(RuntimeType::Message(_))
    ) || field.containing_oneof_including_synthetic().is_some()
        || (field.proto().label() == Label::LABEL_OPTIONAL
            && field.containing_message().file_descriptor_proto().syntax() == "proto2")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proto(body: &str) -> FileDescriptorProto {
        parse(&format!("syntax = \"proto3\";\npackage shop;\n{body}"), &[]).unwrap()
    }

    /// (what changes, writer → reader, compatible), after Confluent's Protobuf rules.
    #[test]
    fn each_rule_decides_whether_a_reader_reads_what_a_writer_wrote() {
        let base = "message Order { string id = 1; int32 qty = 2; }";
        let cases = [
            ("the same schema", base, base, true),
            ("field added", base, "message Order { string id = 1; int32 qty = 2; string note = 3; }", true),
            ("field removed", base, "message Order { string id = 1; }", true),
            ("field renamed", base, "message Order { string order_id = 1; int32 qty = 2; }", true),
            ("int32 → int64", base, "message Order { string id = 1; int64 qty = 2; }", true),
            ("int32 → sint32", base, "message Order { string id = 1; sint32 qty = 2; }", false),
            ("string → bytes", base, "message Order { bytes id = 1; int32 qty = 2; }", true),
            ("string → int64", base, "message Order { int64 id = 1; int32 qty = 2; }", false),
            ("made repeated", base, "message Order { string id = 1; repeated int32 qty = 2; }", false),
            ("message removed", "message Order { string id = 1; } message Line { string sku = 1; }", "message Order { string id = 1; }", false),
            ("moved into a oneof with another field", base, "message Order { string id = 1; oneof q { int32 qty = 2; string unit = 3; } }", false),
            ("moved into a oneof of its own", base, "message Order { string id = 1; oneof q { int32 qty = 2; } }", true),
            ("message type changed", "message A { string x = 1; } message B { string x = 1; } message Order { A a = 1; }", "message A { string x = 1; } message B { string x = 1; } message Order { B a = 1; }", false),
        ];
        for (what, writer, reader, compatible) in cases {
            let verdict = cannot_read(&proto(writer), &proto(reader));
            assert_eq!(verdict.is_none(), compatible, "{what}: {verdict:?}");
        }
        let other = parse(
            "syntax = \"proto3\";\npackage other;\nmessage Order { string id = 1; int32 qty = 2; }",
            &[],
        )
        .unwrap();
        assert!(cannot_read(&proto(base), &other)
            .unwrap()
            .contains("package changed"));
    }

    /// Histories × the seven modes: field 2 removed, then brought back with an incompatible
    /// type: the last version is compatible, the first is not.
    #[test]
    fn every_mode_checks_the_versions_it_names() {
        use crate::product::Compatibility::*;
        let v1 = proto("message Order { string id = 1; int32 qty = 2; }");
        let v2 = proto("message Order { string id = 1; }");
        let new = proto("message Order { string id = 1; sint32 qty = 2; }");
        let history = [&v1, &v2];
        for (mode, expected) in [
            (Backward, true),
            (BackwardTransitive, false),
            (Forward, true),
            (ForwardTransitive, false),
            (Full, true),
            (FullTransitive, false),
            (None, true),
        ] {
            let problems = crate::registry::compat::check_with(mode, &new, &history, cannot_read);
            assert_eq!(problems.is_empty(), expected, "{mode}: {problems:?}");
        }
    }

    #[test]
    fn text_and_a_base64_descriptor_are_the_same_schema_and_imports_come_from_references() {
        let text = "syntax = \"proto3\";\npackage shop;\nmessage Order { string id = 1; }";
        let file = parse(text, &[]).unwrap();
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(file.write_to_bytes().unwrap());
        assert_eq!(
            normalized(&parse(&encoded, &[]).unwrap()),
            normalized(&file)
        );
        let importing = "syntax = \"proto3\";\npackage shop;\nimport \"shop/line.proto\";\nmessage Basket { repeated Line lines = 1; }";
        let line = (
            "shop/line.proto".to_owned(),
            "syntax = \"proto3\";\npackage shop;\nmessage Line { string sku = 1; }".to_owned(),
        );
        assert!(parse(importing, &[line]).is_ok());
        assert!(parse(importing, &[])
            .unwrap_err()
            .contains("not a valid .proto schema"));
        assert!(parse("message {", &[]).is_err());
    }

    #[test]
    fn a_reference_names_an_import_never_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("written_by_a_reference");
        let importing = format!(
            "syntax = \"proto3\";\nimport \"{}\";\nmessage A {{ string s = 1; }}",
            target.display()
        );
        let reference = (
            target.display().to_string(),
            "syntax = \"proto3\";\nmessage B { string s = 1; }".to_owned(),
        );
        for text in [
            importing.as_str(),
            "syntax = \"proto3\";\nmessage A { string s = 1; }",
        ] {
            let err = parse(text, std::slice::from_ref(&reference)).unwrap_err();
            assert!(err.contains("is absolute"), "{err}");
        }
        for name in ["../x.proto", "file:///tmp/x.proto", "a\\b.proto"] {
            let reference = (name.to_owned(), "syntax = \"proto3\";".to_owned());
            let err = parse("syntax = \"proto3\";", &[reference]).unwrap_err();
            assert!(err.contains("is not an import path"), "{name}: {err}");
        }
        assert!(!target.exists(), "a reference wrote a file");
        // an import of a file that no reference names is not looked for on disk
        let err = parse(
            "syntax = \"proto3\";\nimport \"etc/passwd\";\nmessage A { string s = 1; }",
            &[],
        )
        .unwrap_err();
        assert!(err.contains("not a valid .proto schema"), "{err}");
    }

    #[test]
    fn deep_schemas_are_refused_before_any_recursion() {
        let nested = |n: usize| {
            format!(
                "syntax = \"proto3\";\n{}{}",
                (0..n)
                    .map(|i| format!("message M{i} {{ "))
                    .collect::<String>(),
                "}".repeat(n)
            )
        };
        assert!(parse(&nested(64), &[]).is_ok());
        let err = parse(&nested(10_000), &[]).unwrap_err();
        assert!(err.contains("10000 levels deep; at most 64"), "{err}");
        // a chain of message types, each declared at the top: flat text, deep field model
        let chain = |n: usize| {
            let mut text = "syntax = \"proto3\";\n".to_owned();
            for i in 0..n {
                text.push_str(&format!("message M{i} {{ M{} next = 1; }}\n", i + 1));
            }
            text.push_str(&format!("message M{n} {{ string end = 1; }}\n"));
            text
        };
        assert!(fields_of(compile(&chain(60), &[]).unwrap(), None).is_ok());
        let err = fields_of(compile(&chain(1_000), &[]).unwrap(), None).unwrap_err();
        assert!(err.contains("at most 64"), "{err}");
        // the same nesting as a base64 descriptor
        let mut file = FileDescriptorProto::new();
        let mut message = DescriptorProto::new();
        message.set_name("Leaf".into());
        for i in 0..80 {
            let mut outer = DescriptorProto::new();
            outer.set_name(format!("M{i}"));
            outer.nested_type.push(message);
            message = outer;
        }
        file.message_type.push(message);
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(file.write_to_bytes().unwrap());
        let err = parse(&encoded, &[]).unwrap_err();
        assert!(err.contains("at most 64"), "{err}");
    }

    #[test]
    fn a_name_declared_twice_is_an_error_not_a_panic() {
        // found by the `protobuf` fuzz target
        let text = "syntax = \"proto3\";\nmessage A { string x = 1; enum E { Z = 0; } }\nmessage A { string y = 1; enum E { Z = 0; W = 1; } }";
        let err = parse(text, &[]).unwrap_err();
        assert!(err.contains("not a valid .proto schema"), "{err}");
    }
}
