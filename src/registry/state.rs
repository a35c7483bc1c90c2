//! The registry's state machine (sans-io): what the `_schemas` log says, applied record by
//! record, and the plans for writes, computed from it.
//!
//! Every instance applies the same log in the same order with the same rules, so all instances
//! agree. A write is planned against the current state and appended; the rules in [`State::apply`]
//! refuse a record that conflicts with one appended before it (a version or an id already taken
//! by another schema). The writer sees the refusal when it reads its own record back and plans
//! again: that makes registration linearizable even with concurrent writers on several
//! instances, with the log order as the single order of writes.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    str::FromStr,
    sync::Arc,
};

use apache_avro::Schema;
use serde_json::Value;

use super::{
    api::{
        ApiError, Association, ConfigBody, Result, SchemaBody, SchemaRequest, SubjectVersion,
        VersionId,
    },
    compat, json_schema,
    log::{ConfigValue, Entry, Key, ModeValue, Reference, SchemaValue},
    normalize::normalized,
};
use crate::product::{Compatibility, SchemaFormat};

/// Registry modes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// Reads and writes.
    #[default]
    ReadWrite,
    /// Reads only.
    ReadOnly,
    /// Reads only, whatever the subjects' own modes (global only).
    ReadOnlyOverride,
    /// Writes keep the ids and versions given (migrations from another registry).
    Import,
}

impl Mode {
    /// The name Confluent uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReadWrite => "READWRITE",
            Self::ReadOnly => "READONLY",
            Self::ReadOnlyOverride => "READONLY_OVERRIDE",
            Self::Import => "IMPORT",
        }
    }
}

impl FromStr for Mode {
    type Err = ApiError;
    fn from_str(s: &str) -> Result<Self> {
        [
            Self::ReadWrite,
            Self::ReadOnly,
            Self::ReadOnlyOverride,
            Self::Import,
        ]
        .into_iter()
        .find(|m| m.as_str().eq_ignore_ascii_case(s))
        .ok_or_else(|| ApiError::invalid_mode(s))
    }
}

/// Parses a compatibility level with Confluent's 42203.
pub fn parse_compatibility(s: &str) -> Result<Compatibility> {
    Compatibility::from_str(s).map_err(|_| ApiError::invalid_compatibility(s))
}

/// The settings of a subject, or the global ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubjectConfig {
    /// The compatibility level.
    pub compatibility: Option<Compatibility>,
    /// The subject this one stands for.
    pub alias: Option<String>,
    /// Whether registrations are normalized first.
    pub normalize: Option<bool>,
}

impl SubjectConfig {
    fn from_value(value: ConfigValue) -> std::result::Result<Self, String> {
        Ok(Self {
            compatibility: value
                .compatibility_level
                .as_deref()
                .map(Compatibility::from_str)
                .transpose()?,
            alias: value.alias.filter(|a| !a.is_empty()),
            normalize: value.normalize,
        })
    }

    fn value(&self) -> ConfigValue {
        ConfigValue {
            compatibility_level: self.compatibility.map(|c| c.as_str().to_owned()),
            alias: self.alias.clone(),
            normalize: self.normalize,
        }
    }

    /// The body `GET /config` answers.
    pub fn body(&self) -> ConfigBody {
        ConfigBody {
            compatibility_level: self.compatibility.map(|c| c.as_str().to_owned()),
            alias: self.alias.clone(),
            normalize: self.normalize,
        }
    }

    /// These settings with those `update` gives.
    fn merged(&self, update: &SubjectConfig) -> Self {
        Self {
            compatibility: update.compatibility.or(self.compatibility),
            alias: update.alias.clone().or_else(|| self.alias.clone()),
            normalize: update.normalize.or(self.normalize),
        }
    }
}

/// How a schema sent is registered, looked up or tested.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Options {
    /// Compare (and register) the schema in Confluent's normalized form.
    pub normalize: bool,
    /// Register even when the compatibility level refuses it.
    pub force: bool,
}

/// The schema types the registry serves, as `GET /schemas/types` lists them.
pub const SCHEMA_TYPES: [&str; 3] = ["JSON", "PROTOBUF", "AVRO"];

/// A schema parsed by its type.
#[derive(Debug)]
pub enum Parsed {
    /// An Avro schema.
    Avro(Schema),
    /// A JSON Schema.
    Json(Value),
    /// A Protobuf file.
    Protobuf(Box<protobuf::descriptor::FileDescriptorProto>),
}

impl Parsed {
    /// The type's name (`AVRO`, `JSON`).
    pub fn schema_type(&self) -> &'static str {
        match self {
            Self::Avro(_) => "AVRO",
            Self::Json(_) => "JSON",
            Self::Protobuf(_) => "PROTOBUF",
        }
    }

    /// The fields data contract rules read, as Avro: the schema itself, or the field model of a
    /// JSON Schema or of the Protobuf message `metadata` names (the first message otherwise).
    pub fn field_model(&self, metadata: Option<&Value>) -> std::result::Result<Schema, String> {
        match self {
            Self::Avro(schema) => Ok(schema.clone()),
            Self::Json(schema) => crate::codec::json_schema::avro_fields(schema, "event"),
            Self::Protobuf(file) => {
                let message = metadata
                    .and_then(|m| m.get("properties"))
                    .and_then(|p| p.get(crate::registry::contract::MESSAGE_PROPERTY))
                    .and_then(Value::as_str);
                crate::registry::protobuf::fields_of(vec![file.as_ref().clone()], message)
            }
        }
    }

    /// A schema of `format` from its text alone (a Protobuf schema's imports are not resolved).
    pub fn of(format: SchemaFormat, text: &str) -> std::result::Result<Self, String> {
        match format {
            SchemaFormat::Avro => {
                let schema =
                    Schema::parse_str(text).map_err(|e| format!("not a valid Avro schema: {e}"))?;
                meshline_core::limits::check_avro(&schema)?;
                Ok(Self::Avro(schema))
            }
            SchemaFormat::Json => json_schema::parse(text).map(Self::Json),
            SchemaFormat::Protobuf => {
                super::protobuf::parse(text, &[]).map(|file| Self::Protobuf(Box::new(file)))
            }
        }
    }

    /// Why this schema may not follow `previous` under `mode` (empty: it may).
    pub fn compatibility(&self, mode: Compatibility, previous: &[&Parsed]) -> Vec<String> {
        if mode == Compatibility::None {
            return Vec::new();
        }
        if let Some(other) = previous
            .iter()
            .find(|p| p.schema_type() != self.schema_type())
        {
            return vec![format!(
                "{mode}: the subject holds {} schemas and this one is {}; a subject keeps one schema type",
                other.schema_type(),
                self.schema_type()
            )];
        }
        match self {
            Self::Avro(new) => compat::check(mode, new, &same(previous, Self::as_avro)),
            Self::Json(new) => compat::check_with(
                mode,
                new,
                &same(previous, Self::as_json),
                json_schema::cannot_read,
            ),
            Self::Protobuf(new) => compat::check_with(
                mode,
                new.as_ref(),
                &same(previous, Self::as_protobuf),
                super::protobuf::cannot_read,
            ),
        }
    }

    fn as_avro(&self) -> Option<&Schema> {
        match self {
            Self::Avro(schema) => Some(schema),
            _ => None,
        }
    }

    fn as_json(&self) -> Option<&Value> {
        match self {
            Self::Json(schema) => Some(schema),
            _ => None,
        }
    }

    fn as_protobuf(&self) -> Option<&protobuf::descriptor::FileDescriptorProto> {
        match self {
            Self::Protobuf(file) => Some(file),
            _ => None,
        }
    }
}

/// The schemas of `previous` of the type `as_type` takes (all of them, once the types agree).
fn same<'a, T: ?Sized>(
    previous: &[&'a Parsed],
    as_type: impl Fn(&'a Parsed) -> Option<&'a T>,
) -> Vec<&'a T> {
    previous.iter().filter_map(|p| as_type(p)).collect()
}

/// A schema and its data-contract parts, under one id.
#[derive(Debug)]
pub struct Stored {
    /// The id.
    pub id: u32,
    /// A stable identifier of the schema's content (a UUID derived from it).
    pub guid: String,
    /// Schema text as stored.
    pub text: String,
    /// Named types used from other subjects.
    pub references: Vec<Reference>,
    /// Data-contract metadata.
    pub metadata: Option<Value>,
    /// Data-contract rules.
    pub rule_set: Option<Value>,
    /// The parsed schema.
    pub parsed: Arc<Parsed>,
    fingerprint: String,
    normalized: String,
}

impl Stored {
    /// The body `GET /schemas/ids/{id}` answers.
    pub fn body(&self) -> SchemaBody {
        SchemaBody {
            subject: None,
            version: None,
            id: None,
            guid: Some(self.guid.clone()),
            max_id: None,
            // omitted for AVRO, as Confluent does
            schema_type: match self.parsed.as_ref() {
                Parsed::Avro(_) => None,
                other => Some(other.schema_type().to_owned()),
            },
            references: self.references.clone(),
            metadata: self.metadata.clone(),
            rule_set: self.rule_set.clone(),
            schema: self.text.clone(),
        }
    }
}

/// One version of a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    /// The schema id.
    pub id: u32,
    /// Soft-deleted.
    pub deleted: bool,
}

/// A schema parsed from a request, not yet registered.
#[derive(Debug)]
pub struct Candidate {
    parsed: Parsed,
    text: String,
    references: Vec<Reference>,
    metadata: Option<Value>,
    rule_set: Option<Value>,
    fingerprint: String,
    /// The fingerprint of the normalized form.
    normalized: String,
}

impl Candidate {
    /// A parsed schema stored as `text`, with the fingerprints of its `keys`: the key of its text
    /// (with its type where it is not Avro) and of its normal form, each with its references and
    /// contract.
    fn new(
        parsed: Parsed,
        text: String,
        (key, normal): (&str, &str),
        references: Vec<Reference>,
        metadata: Option<Value>,
        rule_set: Option<Value>,
    ) -> Self {
        Self {
            fingerprint: fingerprint(key, &references, &metadata, &rule_set),
            normalized: fingerprint(normal, &references, &metadata, &rule_set),
            parsed,
            text,
            references,
            metadata,
            rule_set,
        }
    }
}

/// What a write appends, and what it answers once the log has accepted it.
#[derive(Debug)]
pub struct Plan<T> {
    /// Records to append (none: the answer needs no write).
    pub entries: Vec<Entry>,
    /// The answer.
    pub answer: T,
}

impl<T> Plan<T> {
    fn read_only(answer: T) -> Self {
        Self {
            entries: Vec::new(),
            answer,
        }
    }
}

/// Which versions a listing answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Which {
    /// Live ones.
    #[default]
    Live,
    /// Live and soft-deleted ones.
    All,
    /// Soft-deleted ones only.
    DeletedOnly,
}

impl Which {
    /// From Confluent's `deleted` and `deletedOnly` flags (`deletedOnly` wins).
    pub fn from_flags(deleted: bool, deleted_only: bool) -> Self {
        match (deleted, deleted_only) {
            (_, true) => Self::DeletedOnly,
            (true, false) => Self::All,
            (false, false) => Self::Live,
        }
    }
}

/// The applied state of the log.
#[derive(Debug, Default)]
pub struct State {
    schemas: HashMap<u32, Arc<Stored>>,
    by_fingerprint: HashMap<String, u32>,
    uses: HashMap<u32, BTreeSet<(String, u32)>>,
    subjects: BTreeMap<String, BTreeMap<u32, Version>>,
    configs: HashMap<Option<String>, SubjectConfig>,
    modes: HashMap<Option<String>, Mode>,
    max_id: u32,
}

fn fingerprint(
    text: &str,
    references: &[Reference],
    metadata: &Option<Value>,
    rule_set: &Option<Value>,
) -> String {
    serde_json::json!([text, references, metadata, rule_set]).to_string()
}

/// A UUID-shaped identifier of a fingerprint (the first 16 bytes of its SHA-256, as a version 8
/// UUID): the same content has the same guid on every instance.
fn guid(fingerprint: &str) -> String {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(fingerprint.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .to_string()
}

/// A subject as the default context names it: Confluent's qualified form `:.:subject` is the
/// subject itself; other contexts are not served.
pub fn in_default_context(subject: &str) -> Result<&str> {
    let Some(rest) = subject.strip_prefix(":.") else {
        return Ok(subject);
    };
    match rest.split_once(':') {
        Some(("", unqualified)) => Ok(unqualified),
        Some((context, _)) => Err(ApiError::subject_not_found(&format!(
            "{subject}' (context '.{context}' does not exist: meshline serves the default context only)"
        ))),
        None => Ok(subject),
    }
}

impl State {
    // ---- applying the log ----

    /// Applies one record of the log. `Err` says why the record was refused; a refused record
    /// changes nothing, on every instance.
    pub fn apply(&mut self, entry: Entry) -> std::result::Result<(), String> {
        match entry {
            Entry::Config(subject, value) => {
                match value {
                    Some(value) => {
                        let config = SubjectConfig::from_value(value)?;
                        self.configs.insert(subject, config);
                    }
                    None => {
                        self.configs.remove(&subject);
                    }
                }
                Ok(())
            }
            Entry::Mode(subject, value) => {
                match value {
                    Some(ModeValue { mode }) => {
                        let mode = Mode::from_str(&mode).map_err(|e| e.message)?;
                        self.modes.insert(subject, mode);
                    }
                    None => {
                        self.modes.remove(&subject);
                    }
                }
                Ok(())
            }
            Entry::Schema(
                Key::Schema {
                    subject, version, ..
                },
                None,
            ) => {
                self.remove_version(&subject, version);
                Ok(())
            }
            Entry::Schema(
                Key::Schema {
                    subject, version, ..
                },
                Some(value),
            ) => self.apply_schema(&subject, version, value),
            Entry::Schema(key, _) => Err(format!("schema record with key {key:?}")),
        }
    }

    fn apply_schema(
        &mut self,
        subject: &str,
        version: u32,
        value: SchemaValue,
    ) -> std::result::Result<(), String> {
        if value.subject != subject || value.version != version || value.id == 0 {
            return Err("the value does not match its key".into());
        }
        let deleted = value.deleted;
        let candidate = self
            .candidate(
                Some(&value.schema_type),
                &value.schema,
                value.references,
                value.metadata,
                value.rule_set,
            )
            .map_err(|e| e.message)?;
        if let Some(existing) = self.subjects.get(subject).and_then(|v| v.get(&version)) {
            let same = existing.id == value.id
                && self
                    .schemas
                    .get(&existing.id)
                    .is_some_and(|s| s.fingerprint == candidate.fingerprint);
            if !same {
                return Err(format!(
                    "version {version} of {subject} is already schema {}",
                    existing.id
                ));
            }
            if let Some(v) = self
                .subjects
                .get_mut(subject)
                .and_then(|v| v.get_mut(&version))
            {
                v.deleted = deleted;
            }
            return Ok(());
        }
        match (
            self.schemas.get(&value.id),
            self.by_fingerprint.get(&candidate.fingerprint),
        ) {
            (Some(s), _) if s.fingerprint != candidate.fingerprint => {
                return Err(format!("id {} is another schema", value.id))
            }
            (_, Some(&id)) if id != value.id => {
                return Err(format!("this schema already has id {id}"))
            }
            (Some(_), _) => {}
            (None, _) => {
                self.by_fingerprint
                    .insert(candidate.fingerprint.clone(), value.id);
                self.schemas.insert(
                    value.id,
                    Arc::new(Stored {
                        id: value.id,
                        guid: guid(&candidate.fingerprint),
                        text: candidate.text,
                        references: candidate.references,
                        metadata: candidate.metadata,
                        rule_set: candidate.rule_set,
                        parsed: Arc::new(candidate.parsed),
                        fingerprint: candidate.fingerprint,
                        normalized: candidate.normalized,
                    }),
                );
                self.max_id = self.max_id.max(value.id);
            }
        }
        self.subjects.entry(subject.to_owned()).or_default().insert(
            version,
            Version {
                id: value.id,
                deleted: value.deleted,
            },
        );
        self.uses
            .entry(value.id)
            .or_default()
            .insert((subject.to_owned(), version));
        Ok(())
    }

    fn remove_version(&mut self, subject: &str, version: u32) {
        let Some(versions) = self.subjects.get_mut(subject) else {
            return;
        };
        let Some(removed) = versions.remove(&version) else {
            return;
        };
        if versions.is_empty() {
            self.subjects.remove(subject);
        }
        if let Some(uses) = self.uses.get_mut(&removed.id) {
            uses.remove(&(subject.to_owned(), version));
            if uses.is_empty() {
                self.uses.remove(&removed.id);
                if let Some(stored) = self.schemas.remove(&removed.id) {
                    self.by_fingerprint.remove(&stored.fingerprint);
                }
            }
        }
    }

    // ---- parsing ----

    /// Parses a schema with its references resolved against this state.
    pub fn candidate(
        &self,
        schema_type: Option<&str>,
        text: &str,
        references: Vec<Reference>,
        metadata: Option<Value>,
        rule_set: Option<Value>,
    ) -> Result<Candidate> {
        let mut files = Vec::new();
        self.referenced(&references, &mut files, &mut BTreeSet::new())?;
        match schema_type.map(str::to_ascii_uppercase).as_deref() {
            None | Some("AVRO") => {}
            Some("JSON") => {
                let parsed = json_schema::parse(text).map_err(ApiError::invalid_schema)?;
                jsonschema::meta::validate(&parsed).map_err(|e| {
                    ApiError::invalid_schema(format!(
                        "not a valid JSON Schema: {e} at {}",
                        e.instance_path()
                    ))
                })?;
                let text = json_schema::canonical(&parsed);
                // a JSON Schema's text may spell an Avro schema too: the type is part of it;
                // its canonical text is its normal form
                let typed = format!("JSON:{text}");
                return Ok(Candidate::new(
                    Parsed::Json(parsed),
                    text,
                    (&typed, &typed),
                    references,
                    metadata,
                    rule_set,
                ));
            }
            Some("PROTOBUF") => {
                let parsed =
                    super::protobuf::parse(text, &files).map_err(ApiError::invalid_schema)?;
                let text = text.trim().to_owned();
                let typed = format!("PROTOBUF:{text}");
                let normal = format!("PROTOBUF:{}", super::protobuf::normalized(&parsed));
                return Ok(Candidate::new(
                    Parsed::Protobuf(Box::new(parsed)),
                    text,
                    (&typed, &normal),
                    references,
                    metadata,
                    rule_set,
                ));
            }
            Some(other) => {
                return Err(ApiError::invalid_schema(format!(
                    "schemaType {other} is not supported; meshline serves {} (GET /schemas/types)",
                    SCHEMA_TYPES.join(" and ")
                )))
            }
        }
        let texts: Vec<String> = files.into_iter().map(|(_, text)| text).collect();
        let (parsed, known) = if texts.is_empty() {
            (
                Schema::parse_str(text).map_err(ApiError::invalid_schema)?,
                Vec::new(),
            )
        } else {
            let (parsed, referenced) =
                Schema::parse_str_with_list(text, &texts).map_err(ApiError::invalid_schema)?;
            let known = referenced
                .iter()
                .filter_map(|s| s.name().map(|n| n.fullname(None)))
                .collect();
            (parsed, known)
        };
        meshline_core::limits::check_avro(&parsed).map_err(ApiError::invalid_schema)?;
        let text = serde_json::to_string(&parsed).map_err(ApiError::invalid_schema)?;
        let normal = normalized(&parsed, known);
        Ok(Candidate::new(
            Parsed::Avro(parsed),
            text.clone(),
            (&text, &normal),
            references,
            metadata,
            rule_set,
        ))
    }

    /// The schemas `references` name, and the ones they name, dependencies first: each one's
    /// reference name and text.
    fn referenced(
        &self,
        references: &[Reference],
        out: &mut Vec<(String, String)>,
        seen: &mut BTreeSet<(String, u32)>,
    ) -> Result<()> {
        for r in references {
            if !seen.insert((r.subject.clone(), r.version)) {
                continue;
            }
            let stored = self
                .subjects
                .get(&r.subject)
                .and_then(|v| v.get(&r.version))
                .and_then(|v| self.schemas.get(&v.id))
                .ok_or_else(|| {
                    ApiError::invalid_schema(format!(
                        "reference '{}' names version {} of subject '{}', which is not registered; register it first",
                        r.name, r.version, r.subject
                    ))
                })?;
            self.referenced(&stored.references, out, seen)?;
            out.push((r.name.clone(), stored.text.clone()));
        }
        Ok(())
    }

    fn request_candidate(&self, subject: &str, request: &SchemaRequest) -> Result<Candidate> {
        let text = request
            .schema
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| ApiError::invalid_schema("the body has no \"schema\" field"))?;
        // As Confluent does: a schema sent without metadata and rules keeps the ones of the
        // subject's latest version, so a plain client re-registering a product's schema finds
        // the version that carries its contract.
        let (metadata, rule_set) = if request.metadata.is_none() && request.rule_set.is_none() {
            match self.latest(subject, false) {
                Some((_, v)) => {
                    let s = self.schemas.get(&v.id);
                    (
                        s.and_then(|s| s.metadata.clone()),
                        s.and_then(|s| s.rule_set.clone()),
                    )
                }
                None => (None, None),
            }
        } else {
            (request.metadata.clone(), request.rule_set.clone())
        };
        self.candidate(
            request.schema_type.as_deref(),
            text,
            request.references.clone().unwrap_or_default(),
            metadata,
            rule_set,
        )
    }

    /// Whether a request on `subject` works on normalized schemas: asked for, or the subject's
    /// (or the global) config says so.
    fn normalizes(&self, subject: &str, options: Options) -> bool {
        options.normalize
            || self
                .subject_config(Some(subject))
                .and_then(|c| c.normalize)
                .or_else(|| self.subject_config(None).and_then(|c| c.normalize))
                .unwrap_or(false)
    }

    /// The id of a schema with the candidate's content: the same text, or with `normalize`,
    /// the same normalized form.
    fn existing_id(&self, candidate: &Candidate, normalize: bool) -> Option<u32> {
        self.by_fingerprint
            .get(&candidate.fingerprint)
            .copied()
            .or_else(|| {
                normalize
                    .then(|| {
                        self.schemas
                            .values()
                            .filter(|s| s.normalized == candidate.normalized)
                            .map(|s| s.id)
                            .min()
                    })
                    .flatten()
            })
    }

    fn same_content(&self, id: u32, candidate: &Candidate, normalize: bool) -> bool {
        self.schemas.get(&id).is_some_and(|s| {
            s.fingerprint == candidate.fingerprint
                || (normalize && s.normalized == candidate.normalized)
        })
    }

    // ---- reads ----

    /// The schema with id `id`.
    pub fn schema(&self, id: u32) -> Option<&Arc<Stored>> {
        self.schemas.get(&id)
    }

    /// Subjects starting with `prefix` that have a live version (`Live`), any version
    /// (`All`), or only soft-deleted ones (`DeletedOnly`).
    pub fn subjects(&self, prefix: &str, which: Which) -> Vec<String> {
        self.subjects
            .iter()
            .filter(|(s, versions)| {
                let live = versions.values().any(|v| !v.deleted);
                s.starts_with(prefix)
                    && match which {
                        Which::Live => live,
                        Which::All => true,
                        Which::DeletedOnly => !live,
                    }
            })
            .map(|(s, _)| s.clone())
            .collect()
    }

    /// The subject requests to `/subjects/{subject}/…` act on: its alias's target, if it is an
    /// alias (one level, as Confluent resolves them), else itself.
    pub fn resolve<'a>(&'a self, subject: &'a str) -> &'a str {
        self.subject_config(Some(subject))
            .and_then(|c| c.alias.as_deref())
            .unwrap_or(subject)
    }

    /// Every alias, with the subject it stands for.
    pub fn aliases(&self) -> Vec<(&str, &str)> {
        let mut aliases: Vec<(&str, &str)> = self
            .configs
            .iter()
            .filter_map(|(s, c)| Some((s.as_deref()?, c.alias.as_deref()?)))
            .collect();
        aliases.sort_unstable();
        aliases
    }

    fn versions_of(&self, subject: &str) -> Result<&BTreeMap<u32, Version>> {
        self.subjects
            .get(subject)
            .ok_or_else(|| ApiError::subject_not_found(subject))
    }

    /// Version numbers of a subject: live ones, all, or soft-deleted ones only; with
    /// `deleted_as_negative`, soft-deleted versions are answered as negative numbers.
    pub fn versions(
        &self,
        subject: &str,
        which: Which,
        deleted_as_negative: bool,
    ) -> Result<Vec<i64>> {
        let versions: Vec<i64> = self
            .versions_of(subject)?
            .iter()
            .filter(|(_, v)| match which {
                Which::Live => !v.deleted,
                Which::All => true,
                Which::DeletedOnly => v.deleted,
            })
            .map(|(n, v)| {
                let n = i64::from(*n);
                if v.deleted && deleted_as_negative {
                    -n
                } else {
                    n
                }
            })
            .collect();
        if versions.is_empty() && which != Which::DeletedOnly {
            return Err(ApiError::subject_not_found(subject));
        }
        Ok(versions)
    }

    fn latest(&self, subject: &str, deleted: bool) -> Option<(u32, Version)> {
        self.subjects
            .get(subject)?
            .iter()
            .rev()
            .find(|(_, v)| deleted || !v.deleted)
            .map(|(n, v)| (*n, *v))
    }

    /// Resolves a version id of a subject.
    pub fn version(
        &self,
        subject: &str,
        version: VersionId,
        deleted: bool,
    ) -> Result<(u32, Version)> {
        let versions = self.versions_of(subject)?;
        match version {
            VersionId::Latest => self
                .latest(subject, deleted)
                .ok_or_else(|| ApiError::subject_not_found(subject)),
            VersionId::Number(n) => match versions.get(&n) {
                Some(v) if deleted || !v.deleted => Ok((n, *v)),
                _ => Err(ApiError::version_not_found(subject, n)),
            },
        }
    }

    /// The body of `GET /subjects/{s}/versions/{v}`.
    pub fn version_body(
        &self,
        subject: &str,
        version: VersionId,
        deleted: bool,
    ) -> Result<SchemaBody> {
        let (n, v) = self.version(subject, version, deleted)?;
        self.subject_body(subject, n, v.id)
    }

    fn subject_body(&self, subject: &str, version: u32, id: u32) -> Result<SchemaBody> {
        let stored = self
            .schemas
            .get(&id)
            .ok_or_else(|| ApiError::store(format!("schema {id} is missing")))?;
        Ok(SchemaBody {
            subject: Some(subject.to_owned()),
            version: Some(version),
            id: Some(id),
            ..stored.body()
        })
    }

    /// The schema whose guid is `guid`.
    pub fn schema_by_guid(&self, guid: &str) -> Option<&Arc<Stored>> {
        self.schemas
            .values()
            .find(|s| s.guid.eq_ignore_ascii_case(guid))
    }

    /// The highest id given so far.
    pub fn max_id(&self) -> u32 {
        self.max_id
    }

    /// The subject versions that use schema `id`.
    pub fn uses_of(&self, id: u32, deleted: bool) -> Result<Vec<SubjectVersion>> {
        if !self.schemas.contains_key(&id) {
            return Err(ApiError::schema_not_found(id));
        }
        Ok(self
            .uses
            .get(&id)
            .into_iter()
            .flatten()
            .filter(|(s, n)| {
                deleted
                    || self
                        .subjects
                        .get(s)
                        .and_then(|v| v.get(n))
                        .is_some_and(|v| !v.deleted)
            })
            .map(|(subject, version)| SubjectVersion {
                subject: subject.clone(),
                version: *version,
            })
            .collect())
    }

    /// Ids of the schemas that reference a subject version.
    pub fn referenced_by(&self, subject: &str, version: VersionId) -> Result<Vec<u32>> {
        let (n, _) = self.version(subject, version, false)?;
        let mut ids: Vec<u32> = self
            .schemas
            .values()
            .filter(|s| {
                s.references
                    .iter()
                    .any(|r| r.subject == subject && r.version == n)
            })
            .map(|s| s.id)
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// `GET /schemas`: every version of the subjects starting with `prefix` (live ones, or all
    /// with `deleted`; only each subject's latest with `latest_only`), by subject and version;
    /// with `aliases`, each alias lists the versions of the subject it stands for under its own
    /// name.
    pub fn all_versions(
        &self,
        prefix: &str,
        deleted: bool,
        latest_only: bool,
        aliases: bool,
    ) -> Vec<SchemaBody> {
        let mut names: Vec<(&str, &str)> = self
            .subjects
            .keys()
            .map(|s| (s.as_str(), s.as_str()))
            .collect();
        if aliases {
            names.extend(self.aliases());
            names.sort_unstable();
        }
        let mut out = Vec::new();
        for (name, subject) in names.into_iter().filter(|(n, _)| n.starts_with(prefix)) {
            let Some(versions) = self.subjects.get(subject) else {
                continue;
            };
            let wanted: Vec<(&u32, &Version)> = versions
                .iter()
                .filter(|(_, v)| deleted || !v.deleted)
                .collect();
            let wanted = if latest_only {
                wanted.last().copied().into_iter().collect()
            } else {
                wanted
            };
            for (n, v) in wanted {
                if let Ok(body) = self.subject_body(name, *n, v.id) {
                    out.push(body);
                }
            }
        }
        out
    }

    /// `GET /subjects/{s}/metadata`: the latest version whose `metadata.properties` has every
    /// `(key, value)` pair given.
    pub fn latest_with_metadata(
        &self,
        subject: &str,
        wanted: &[(&str, &str)],
        deleted: bool,
    ) -> Result<SchemaBody> {
        let versions = self.versions_of(subject)?;
        let found = versions.iter().rev().find(|(_, v)| {
            (deleted || !v.deleted)
                && self.schemas.get(&v.id).is_some_and(|s| {
                    let properties = s.metadata.as_ref().and_then(|m| m.get("properties"));
                    wanted.iter().all(|(key, value)| {
                        properties.and_then(|p| p.get(*key)).and_then(Value::as_str) == Some(*value)
                    })
                })
        });
        match found {
            Some((n, v)) => self.subject_body(subject, *n, v.id),
            None => Err(ApiError::schema_not_found(format!(
                "with metadata {} under subject '{subject}'",
                wanted
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// The associations meshline declares: a topic whose `<topic>-key` or `<topic>-value`
    /// subject is an alias is associated with the subject the alias stands for.
    pub fn associations(&self, topic: Option<&str>, subject: Option<&str>) -> Vec<Association> {
        self.aliases()
            .into_iter()
            .filter_map(|(alias, target)| {
                let (name, kind) = alias
                    .strip_suffix("-value")
                    .map(|t| (t, "value"))
                    .or_else(|| alias.strip_suffix("-key").map(|t| (t, "key")))?;
                let stored = self.latest(target, false)?;
                Some(Association {
                    subject: target.to_owned(),
                    guid: self.schemas.get(&stored.1.id).map(|s| s.guid.clone()),
                    resource_name: name.to_owned(),
                    resource_namespace: "-".to_owned(),
                    resource_id: name.to_owned(),
                    resource_type: "topic".to_owned(),
                    association_type: kind.to_owned(),
                    frozen: false,
                })
            })
            .filter(|a| topic.is_none_or(|t| a.resource_name == t))
            .filter(|a| subject.is_none_or(|s| a.subject == s))
            .collect()
    }

    /// `POST /subjects/{s}`: the version of `subject` that holds the schema sent.
    pub fn lookup(
        &self,
        subject: &str,
        request: &SchemaRequest,
        deleted: bool,
        options: Options,
    ) -> Result<SchemaBody> {
        let versions = self.versions_of(subject)?;
        let candidate = self.request_candidate(subject, request)?;
        let normalize = self.normalizes(subject, options);
        let found = versions.iter().rev().find(|(_, v)| {
            (deleted || !v.deleted) && self.same_content(v.id, &candidate, normalize)
        });
        match found {
            Some((n, v)) => self.subject_body(subject, *n, v.id),
            None => Err(ApiError::schema_not_found(format!(
                "sent is not registered under subject '{subject}'"
            ))),
        }
    }

    /// The compatibility level of a subject (`None`: the global one), if set.
    pub fn config(&self, subject: Option<&str>) -> Option<Compatibility> {
        self.subject_config(subject).and_then(|c| c.compatibility)
    }

    /// The settings of a subject (`None`: the global ones), if any are set.
    pub fn subject_config(&self, subject: Option<&str>) -> Option<&SubjectConfig> {
        self.configs.get(&subject.map(str::to_owned))
    }

    /// The level that applies to a subject.
    pub fn effective_config(&self, subject: &str) -> Compatibility {
        self.config(Some(subject))
            .or_else(|| self.config(None))
            .unwrap_or_default()
    }

    /// The mode of a subject (`None`: the global one), if set.
    pub fn mode(&self, subject: Option<&str>) -> Option<Mode> {
        self.modes.get(&subject.map(str::to_owned)).copied()
    }

    /// The mode that applies to a subject.
    pub fn effective_mode(&self, subject: &str) -> Mode {
        let global = self.mode(None).unwrap_or_default();
        if global == Mode::ReadOnlyOverride {
            return global;
        }
        self.mode(Some(subject)).unwrap_or(global)
    }

    fn writable(&self, subject: &str) -> Result<Mode> {
        match self.effective_mode(subject) {
            m @ (Mode::ReadOnly | Mode::ReadOnlyOverride) => Err(ApiError::not_permitted(format!(
                "Subject '{subject}' is in {} mode; PUT /mode/{subject} {{\"mode\":\"READWRITE\"}} to allow writes.",
                m.as_str()
            ))),
            m => Ok(m),
        }
    }

    /// Why `request` may not become the next version of `subject` (against `version` only,
    /// or against what its level requires); empty when it may.
    pub fn compatibility(
        &self,
        subject: &str,
        version: Option<VersionId>,
        request: &SchemaRequest,
    ) -> Result<Vec<String>> {
        let candidate = self.request_candidate(subject, request)?;
        let level = self.effective_config(subject);
        let previous: Vec<Arc<Parsed>> = match version {
            Some(v) => {
                let (_, v) = self.version(subject, v, false)?;
                self.schemas
                    .get(&v.id)
                    .map(|s| s.parsed.clone())
                    .into_iter()
                    .collect()
            }
            None => self.live_schemas(subject),
        };
        let previous: Vec<&Parsed> = previous.iter().map(Arc::as_ref).collect();
        Ok(candidate.parsed.compatibility(level, &previous))
    }

    fn live_schemas(&self, subject: &str) -> Vec<Arc<Parsed>> {
        self.subjects
            .get(subject)
            .into_iter()
            .flat_map(|v| v.values())
            .filter(|v| !v.deleted)
            .filter_map(|v| self.schemas.get(&v.id).map(|s| s.parsed.clone()))
            .collect()
    }

    // ---- plans for writes ----

    /// `POST /subjects/{s}/versions`: the id of the schema sent, registering it as the next
    /// version if the subject does not have it yet and the compatibility level allows it.
    pub fn plan_register(&self, subject: &str, request: &SchemaRequest) -> Result<Plan<u32>> {
        self.plan_register_with(subject, request, Options::default())
    }

    /// [`State::plan_register`] with `normalize` and `force` as the request asks.
    pub fn plan_register_with(
        &self,
        subject: &str,
        request: &SchemaRequest,
        options: Options,
    ) -> Result<Plan<u32>> {
        let mode = self.writable(subject)?;
        if mode != Mode::Import && (request.id.is_some() || request.version.is_some()) {
            return Err(ApiError::not_permitted(
                "\"id\" and \"version\" may only be given in IMPORT mode; PUT /mode {\"mode\":\"IMPORT\"} first",
            ));
        }
        let mut candidate = self.request_candidate(subject, request)?;
        let existing = self.existing_id(&candidate, self.normalizes(subject, options));
        if let Some(id) = existing {
            let live = self
                .subjects
                .get(subject)
                .is_some_and(|v| v.values().any(|v| v.id == id && !v.deleted));
            if live && request.id.is_none_or(|wanted| wanted == id) {
                return Ok(Plan::read_only(id));
            }
        }
        if mode != Mode::Import {
            // a contract's CloudEvents source lies under its own domain's prefix
            let source = candidate
                .metadata
                .as_ref()
                .and_then(|m| m.pointer("/properties/cloudevents.source"));
            if let Some(source) = source {
                let source = source.as_str().unwrap_or_default();
                // the subject's domain: `<domain>.<product>-value`, or none
                let domain = subject.split_once('.').map_or("", |(domain, _)| domain);
                crate::product::source_owned(domain, source)
                    .map_err(|why| ApiError::invalid_schema(format!("metadata: {why}")))?;
            }
            if let Some(rule_set) = &candidate.rule_set {
                let fields = candidate
                    .parsed
                    .field_model(candidate.metadata.as_ref())
                    .map_err(|why| ApiError::invalid_schema(format!("ruleSet: {why}")))?;
                crate::contract::Contract::check_rule_set(&fields, rule_set)
                    .map_err(|why| ApiError::invalid_schema(format!("ruleSet: {why}")))?;
            }
        }
        if mode != Mode::Import && !options.force {
            let previous = self.live_schemas(subject);
            let previous: Vec<&Parsed> = previous.iter().map(Arc::as_ref).collect();
            let problems = candidate
                .parsed
                .compatibility(self.effective_config(subject), &previous);
            if !problems.is_empty() {
                return Err(ApiError::incompatible(subject, &problems));
            }
        }
        if let Some(stored) = existing.and_then(|id| self.schemas.get(&id)) {
            // the same content (maybe spelled otherwise, under `normalize`): the new version
            // points at the stored schema, exactly as stored
            candidate.text = stored.text.clone();
            candidate.references = stored.references.clone();
            candidate.metadata = stored.metadata.clone();
            candidate.rule_set = stored.rule_set.clone();
        }
        let id = match (request.id, existing) {
            (Some(id), _) => id,
            (None, Some(id)) => id,
            (None, None) => self.max_id + 1,
        };
        let next = self
            .subjects
            .get(subject)
            .and_then(|v| v.keys().next_back())
            .map_or(1, |n| n + 1);
        let version = request.version.unwrap_or(next);
        Ok(Plan {
            entries: vec![Entry::Schema(
                Key::schema(subject, version),
                Some(SchemaValue {
                    subject: subject.to_owned(),
                    version,
                    id,
                    schema_type: candidate.parsed.schema_type().into(),
                    schema: candidate.text,
                    references: candidate.references,
                    metadata: candidate.metadata,
                    rule_set: candidate.rule_set,
                    deleted: false,
                }),
            )],
            answer: id,
        })
    }

    fn deletion(&self, subject: &str, version: u32, v: Version, permanent: bool) -> Result<Entry> {
        if permanent {
            return Ok(Entry::Schema(Key::schema(subject, version), None));
        }
        let stored = self
            .schemas
            .get(&v.id)
            .ok_or_else(|| ApiError::store(format!("schema {} is missing", v.id)))?;
        Ok(Entry::Schema(
            Key::schema(subject, version),
            Some(SchemaValue {
                subject: subject.to_owned(),
                version,
                id: v.id,
                schema: stored.text.clone(),
                schema_type: stored.parsed.schema_type().into(),
                references: stored.references.clone(),
                metadata: stored.metadata.clone(),
                rule_set: stored.rule_set.clone(),
                deleted: true,
            }),
        ))
    }

    /// `DELETE /subjects/{s}`: soft-deletes every live version, or with `permanent` removes
    /// every soft-deleted one.
    pub fn plan_delete_subject(&self, subject: &str, permanent: bool) -> Result<Plan<Vec<u32>>> {
        self.writable(subject)?;
        let versions = self.versions_of(subject)?;
        if permanent {
            if versions.values().any(|v| !v.deleted) {
                return Err(ApiError::subject_not_soft_deleted(subject));
            }
        } else if versions.values().all(|v| v.deleted) {
            return Err(ApiError::subject_soft_deleted(subject));
        }
        let mut entries = Vec::new();
        let mut answer = Vec::new();
        for (&n, &v) in versions {
            if permanent || !v.deleted {
                entries.push(self.deletion(subject, n, v, permanent)?);
                answer.push(n);
            }
        }
        Ok(Plan { entries, answer })
    }

    /// `DELETE /subjects/{s}/versions/{v}`.
    pub fn plan_delete_version(
        &self,
        subject: &str,
        version: VersionId,
        permanent: bool,
    ) -> Result<Plan<u32>> {
        self.writable(subject)?;
        // a numbered version is found even when soft-deleted, to say so (40406)
        let include_deleted = permanent || matches!(version, VersionId::Number(_));
        let (n, v) = self.version(subject, version, include_deleted)?;
        match (permanent, v.deleted) {
            (true, false) => return Err(ApiError::version_not_soft_deleted(subject, n)),
            (false, true) => return Err(ApiError::version_soft_deleted(subject, n)),
            _ => {}
        }
        Ok(Plan {
            entries: vec![self.deletion(subject, n, v, permanent)?],
            answer: n,
        })
    }

    /// `PUT /config[/{s}]`: the settings given replace those set; the others stay. Answers
    /// the settings as they are then.
    pub fn plan_set_config(
        &self,
        subject: Option<&str>,
        update: &SubjectConfig,
    ) -> Result<Plan<SubjectConfig>> {
        if let Some(alias) = &update.alias {
            let Some(subject) = subject else {
                return Err(ApiError::bad_request(
                    "an alias names the subject one subject stands for: PUT /config/{subject}, not /config",
                ));
            };
            if alias == subject {
                return Err(ApiError::bad_request(format!(
                    "subject '{subject}' cannot be an alias of itself"
                )));
            }
        }
        let config = self
            .subject_config(subject)
            .cloned()
            .unwrap_or_default()
            .merged(update);
        Ok(Plan {
            entries: vec![Entry::Config(
                subject.map(str::to_owned),
                Some(config.value()),
            )],
            answer: config,
        })
    }

    /// Associates `alias` (a topic's `<topic>-value` or `-key` subject) with `subject`: the
    /// alias is set unless it already is. Refused when `alias` holds schemas of its own, which
    /// the alias would hide.
    pub fn plan_associate(&self, alias: &str, subject: &str) -> Result<Plan<SubjectConfig>> {
        if self.resolve(alias) == subject && alias != subject {
            let config = self
                .subject_config(Some(alias))
                .cloned()
                .unwrap_or_default();
            return Ok(Plan::read_only(config));
        }
        if self
            .subjects
            .get(alias)
            .is_some_and(|v| v.values().any(|v| !v.deleted))
        {
            return Err(ApiError::not_permitted(format!(
                "subject '{alias}' holds schemas of its own; associating its topic with '{subject}' would hide them. Delete it first (DELETE /subjects/{alias})"
            )));
        }
        let update = SubjectConfig {
            alias: Some(subject.to_owned()),
            ..SubjectConfig::default()
        };
        self.plan_set_config(Some(alias), &update)
    }

    /// Removes the alias of `subject` (its other settings stay); answers whether it had one.
    pub fn plan_remove_alias(&self, subject: &str) -> Plan<bool> {
        let Some(config) = self
            .subject_config(Some(subject))
            .filter(|c| c.alias.is_some())
        else {
            return Plan::read_only(false);
        };
        let rest = SubjectConfig {
            alias: None,
            ..config.clone()
        };
        let value = (rest != SubjectConfig::default()).then(|| rest.value());
        Plan {
            entries: vec![Entry::Config(Some(subject.to_owned()), value)],
            answer: true,
        }
    }

    /// `DELETE /config[/{s}]`: answers the settings that were set.
    pub fn plan_delete_config(&self, subject: Option<&str>) -> Result<Plan<SubjectConfig>> {
        let previous = match subject {
            None => self.subject_config(None).cloned().unwrap_or_default(),
            Some(s) => self.subject_config(Some(s)).cloned().ok_or_else(|| {
                if self.subjects.contains_key(s) {
                    ApiError::subject_has_no_config(s)
                } else {
                    ApiError::subject_not_found(s)
                }
            })?,
        };
        Ok(Plan {
            entries: vec![Entry::Config(subject.map(str::to_owned), None)],
            answer: previous,
        })
    }

    /// `PUT /mode[/{s}]`.
    pub fn plan_set_mode(&self, subject: Option<&str>, mode: Mode) -> Result<Plan<Mode>> {
        if subject.is_some() && mode == Mode::ReadOnlyOverride {
            return Err(ApiError::invalid_mode(
                "READONLY_OVERRIDE (global only; use READONLY for a subject)",
            ));
        }
        Ok(Plan {
            entries: vec![Entry::Mode(
                subject.map(str::to_owned),
                Some(ModeValue {
                    mode: mode.as_str().into(),
                }),
            )],
            answer: mode,
        })
    }

    /// `DELETE /mode/{s}`: answers the mode that was set.
    pub fn plan_delete_mode(&self, subject: &str) -> Result<Plan<Mode>> {
        let previous = self
            .mode(Some(subject))
            .ok_or_else(|| ApiError::subject_has_no_mode(subject))?;
        Ok(Plan {
            entries: vec![Entry::Mode(Some(subject.to_owned()), None)],
            answer: previous,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str =
        r#"{"type":"record","name":"Play","fields":[{"name":"track","type":"string"}]}"#;
    const V2: &str = r#"{"type":"record","name":"Play","fields":[{"name":"track","type":"string"},{"name":"ms","type":"long","default":0}]}"#;
    const V2_NO_DEFAULT: &str = r#"{"type":"record","name":"Play","fields":[{"name":"track","type":"string"},{"name":"ms","type":"long"}]}"#;

    fn request(schema: &str) -> SchemaRequest {
        SchemaRequest {
            schema: Some(schema.into()),
            ..Default::default()
        }
    }

    fn register(state: &mut State, subject: &str, schema: &str) -> Result<u32> {
        let plan = state.plan_register(subject, &request(schema))?;
        for entry in plan.entries {
            state.apply(entry).map_err(ApiError::store)?;
        }
        Ok(plan.answer)
    }

    #[test]
    fn registering_twice_answers_the_same_id_without_a_write() {
        let mut s = State::default();
        assert_eq!(register(&mut s, "a-value", V1).unwrap(), 1);
        let again = s.plan_register("a-value", &request(V1)).unwrap();
        assert!(again.entries.is_empty());
        assert_eq!(again.answer, 1);
        // The same schema in another subject keeps its id.
        assert_eq!(register(&mut s, "b-value", V1).unwrap(), 1);
        assert_eq!(register(&mut s, "a-value", V2).unwrap(), 2);
        assert_eq!(
            s.versions("a-value", Which::Live, false).unwrap(),
            vec![1, 2]
        );
    }

    #[test]
    fn an_incompatible_schema_is_refused_with_409_and_changes_nothing() {
        let mut s = State::default();
        register(&mut s, "a-value", V1).unwrap();
        let err = register(&mut s, "a-value", V2_NO_DEFAULT).unwrap_err();
        assert_eq!(err.code, 409, "{err}");
        assert!(err.message.contains("ms"), "{err}");
        assert_eq!(s.versions("a-value", Which::Live, false).unwrap(), vec![1]);
    }

    #[test]
    fn the_log_refuses_a_record_that_lost_a_race() {
        // Two writers planned against the same state: same version, same new id.
        let mut s = State::default();
        register(&mut s, "a-value", V1).unwrap();
        let first = s.plan_register("a-value", &request(V2)).unwrap();
        let other = V2.replace("\"ms\"", "\"seconds\"");
        let second = s.plan_register("a-value", &request(&other)).unwrap();
        for e in first.entries {
            s.apply(e).unwrap();
        }
        let why = s
            .apply(second.entries.into_iter().next().unwrap())
            .unwrap_err();
        assert!(why.contains("version 2"), "{why}");
        // Planned again, the loser gets the next version and a new id.
        assert_eq!(register(&mut s, "a-value", &other).unwrap(), 3);
        assert_eq!(
            s.versions("a-value", Which::Live, false).unwrap(),
            vec![1, 2, 3]
        );
    }

    #[test]
    fn deletes_are_soft_first_then_permanent() {
        let mut s = State::default();
        register(&mut s, "a-value", V1).unwrap();
        let err = s.plan_delete_subject("a-value", true).unwrap_err();
        assert_eq!(err.code, 40405);
        for e in s.plan_delete_subject("a-value", false).unwrap().entries {
            s.apply(e).unwrap();
        }
        assert_eq!(s.subjects("", Which::Live), Vec::<String>::new());
        assert_eq!(s.subjects("", Which::All), vec!["a-value".to_string()]);
        assert_eq!(
            s.plan_delete_subject("a-value", false).unwrap_err().code,
            40404
        );
        assert!(
            s.schema(1).is_some(),
            "a soft-deleted schema stays readable by id"
        );
        for e in s.plan_delete_subject("a-value", true).unwrap().entries {
            s.apply(e).unwrap();
        }
        assert!(s.schema(1).is_none());
        assert_eq!(
            s.versions("a-value", Which::All, false).unwrap_err().code,
            40401
        );
    }

    #[test]
    fn read_only_mode_refuses_writes() {
        let mut s = State::default();
        for e in s.plan_set_mode(None, Mode::ReadOnly).unwrap().entries {
            s.apply(e).unwrap();
        }
        assert_eq!(register(&mut s, "a-value", V1).unwrap_err().code, 42205);
    }

    #[test]
    fn contract_parts_are_inherited_by_a_plain_registration() {
        let mut s = State::default();
        let with_rules = SchemaRequest {
            rule_set: Some(
                serde_json::json!({"domainRules":[{"name":"r","kind":"CONDITION","type":"CEL","mode":"WRITE","expr":"true"}]}),
            ),
            ..request(V1)
        };
        let plan = s.plan_register("a-value", &with_rules).unwrap();
        for e in plan.entries {
            s.apply(e).unwrap();
        }
        assert_eq!(register(&mut s, "a-value", V1).unwrap(), 1);
        assert!(s.schema(1).unwrap().rule_set.is_some());
    }

    #[test]
    fn a_rule_set_that_does_not_compile_or_reads_a_missing_field_is_refused() {
        let mut s = State::default();
        let with_rule = |schema: &str, expr: &str| SchemaRequest {
            rule_set: Some(serde_json::json!({"domainRules":[{"name":"long_enough",
                "kind":"CONDITION","type":"CEL","mode":"WRITE","expr":expr}]})),
            ..request(schema)
        };
        let missing = s
            .plan_register("a-value", &with_rule(V1, "message.ms > 0"))
            .unwrap_err();
        assert_eq!(missing.code, 42201);
        assert!(
            missing.message.contains("long_enough") && missing.message.contains("`ms`"),
            "{}",
            missing.message
        );
        let broken = s
            .plan_register("a-value", &with_rule(V2, "message.ms >"))
            .unwrap_err();
        assert_eq!(broken.code, 42201);
        assert!(broken.message.contains("long_enough"), "{}", broken.message);
        apply(&mut s, |s| {
            s.plan_register("a-value", &with_rule(V2, "message.ms > 0"))
        });
        // a schema change that removes a field the inherited rule reads is refused too
        let removed = s.plan_register("a-value", &request(V1)).unwrap_err();
        assert_eq!(removed.code, 42201, "{}", removed.message);
    }

    /// Plans a write on `state` and applies it.
    fn apply<T>(state: &mut State, plan: impl FnOnce(&State) -> Result<Plan<T>>) -> T {
        let plan = plan(state).unwrap();
        for e in plan.entries {
            state.apply(e).unwrap();
        }
        plan.answer
    }

    #[test]
    fn json_and_protobuf_schemas_keep_their_type_through_the_log_and_evolve_by_their_rules() {
        let json = |text: &str| SchemaRequest {
            schema: Some(text.into()),
            schema_type: Some("JSON".into()),
            ..Default::default()
        };
        let v1 = r#"{"type": "object", "properties": {"id": {"type": "string"}}, "additionalProperties": false}"#;
        let mut s = State::default();
        let plan = s.plan_register("j-value", &json(v1)).unwrap();
        let entries = plan.entries.clone();
        for e in plan.entries {
            s.apply(e).unwrap();
        }
        let body = s.schema(plan.answer).unwrap().body();
        assert_eq!(body.schema_type.as_deref(), Some("JSON"));
        assert_eq!(
            body.schema,
            r#"{"additionalProperties":false,"properties":{"id":{"type":"string"}},"type":"object"}"#
        );
        // a replay of the log gives the same schema, typed
        let mut replayed = State::default();
        for e in entries {
            replayed.apply(e).unwrap();
        }
        assert_eq!(replayed.schema(plan.answer).unwrap().body(), body);
        // the same text as AVRO is another schema
        assert!(s.plan_register("j-value", &request(r#""string""#)).is_err());
        // a required property added breaks BACKWARD
        let v2 = r#"{"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"], "additionalProperties": false}"#;
        let refused = s.plan_register("j-value", &json(v2)).unwrap_err();
        assert!(
            refused.message.contains("required properties added: id"),
            "{}",
            refused.message
        );
        let invalid = s.plan_register("k-value", &json(r#"{"type": "strnig"}"#));
        assert!(invalid
            .unwrap_err()
            .message
            .contains("not a valid JSON Schema"));
        // Protobuf: typed, evolving by its rules, a broken file refused
        let proto = |text: &str| SchemaRequest {
            schema_type: Some("PROTOBUF".into()),
            ..json(text)
        };
        let order = "syntax = \"proto3\";\npackage shop;\nmessage Order { string id = 1; }";
        let id = apply(&mut s, |s| s.plan_register("o-value", &proto(order)));
        assert_eq!(
            s.schema(id).unwrap().body().schema_type.as_deref(),
            Some("PROTOBUF")
        );
        let changed = "syntax = \"proto3\";\npackage shop;\nmessage Order { int64 id = 1; }";
        let refused = s.plan_register("o-value", &proto(changed)).unwrap_err();
        assert!(
            refused.message.contains("type changed"),
            "{}",
            refused.message
        );
        let broken = s.plan_register("q-value", &proto("message {")).unwrap_err();
        assert!(
            broken.message.contains("not a valid .proto schema"),
            "{}",
            broken.message
        );
    }

    #[test]
    fn an_alias_stands_for_its_subject_and_associates_its_topic() {
        let mut s = State::default();
        let id = register(&mut s, "p-value", V1).unwrap();
        let alias = SubjectConfig {
            alias: Some("p-value".into()),
            ..SubjectConfig::default()
        };
        apply(&mut s, |s| {
            s.plan_set_config(Some("p.ingress-value"), &alias)
        });
        assert_eq!(s.resolve("p.ingress-value"), "p-value");
        assert_eq!(s.resolve("other-value"), "other-value");
        // a level set later keeps the alias
        let level = SubjectConfig {
            compatibility: Some(Compatibility::Full),
            ..SubjectConfig::default()
        };
        let merged = apply(&mut s, |s| {
            s.plan_set_config(Some("p.ingress-value"), &level)
        });
        assert_eq!(merged.alias.as_deref(), Some("p-value"));
        let found = s.associations(Some("p.ingress"), None);
        assert_eq!(found.len(), 1);
        assert_eq!(
            (
                found[0].subject.as_str(),
                found[0].association_type.as_str()
            ),
            ("p-value", "value")
        );
        assert_eq!(s.subjects("", Which::Live), vec!["p-value".to_string()]);
        assert!(s
            .plan_set_config(
                Some("x"),
                &SubjectConfig {
                    alias: Some("x".into()),
                    ..SubjectConfig::default()
                }
            )
            .is_err());
        // removing the alias keeps the level
        assert!(apply(
            &mut s,
            |s| Ok(s.plan_remove_alias("p.ingress-value"))
        ));
        assert_eq!(s.resolve("p.ingress-value"), "p.ingress-value");
        assert_eq!(s.config(Some("p.ingress-value")), Some(Compatibility::Full));
        assert!(s.associations(Some("p.ingress"), None).is_empty());
        assert_eq!(id, 1);
    }

    #[test]
    fn normalize_finds_one_schema_in_two_spellings() {
        let mut s = State::default();
        let id = register(&mut s, "a-value", V1).unwrap();
        let respelled =
            r#"{"fields":[{"type":"string","name":"track"}],"name":"Play","type":"record"}"#;
        let normalized = Options {
            normalize: true,
            force: false,
        };
        let found = s
            .lookup("a-value", &request(respelled), false, normalized)
            .unwrap();
        assert_eq!(found.id, Some(id));
        let plan = s
            .plan_register_with("a-value", &request(respelled), normalized)
            .unwrap();
        assert!(plan.entries.is_empty(), "no new version");
        assert_eq!(plan.answer, id);
        // under another subject it is a new version of the same id
        let other = apply(&mut s, |s| {
            s.plan_register_with("b-value", &request(respelled), normalized)
        });
        assert_eq!(other, id);
    }

    #[test]
    fn force_registers_past_the_compatibility_level() {
        let mut s = State::default();
        register(&mut s, "a-value", V1).unwrap();
        let forced = Options {
            normalize: false,
            force: true,
        };
        let id = apply(&mut s, |s| {
            s.plan_register_with("a-value", &request(V2_NO_DEFAULT), forced)
        });
        assert_eq!(id, 2);
    }

    #[test]
    fn qualified_subjects_of_the_default_context_are_the_subjects() {
        assert_eq!(in_default_context(":.:a-value").unwrap(), "a-value");
        assert_eq!(in_default_context("a-value").unwrap(), "a-value");
        assert_eq!(
            in_default_context(":.other:a-value").unwrap_err().code,
            40401
        );
    }

    #[test]
    fn references_must_be_registered() {
        let mut s = State::default();
        let user = r#"{"type":"record","name":"User","namespace":"x","fields":[{"name":"id","type":"string"}]}"#;
        let play = r#"{"type":"record","name":"Play","namespace":"x","fields":[{"name":"user","type":"x.User"}]}"#;
        let with_ref = SchemaRequest {
            references: Some(vec![Reference {
                name: "x.User".into(),
                subject: "user".into(),
                version: 1,
            }]),
            ..request(play)
        };
        assert_eq!(s.plan_register("play", &with_ref).unwrap_err().code, 42201);
        register(&mut s, "user", user).unwrap();
        let plan = s.plan_register("play", &with_ref).unwrap();
        for e in plan.entries {
            s.apply(e).unwrap();
        }
        assert_eq!(
            s.referenced_by("user", VersionId::Number(1)).unwrap(),
            vec![2]
        );
    }
}
