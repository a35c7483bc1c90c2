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
    api::{ApiError, Result, SchemaBody, SchemaRequest, SubjectVersion, VersionId},
    compat,
    log::{ConfigValue, Entry, Key, ModeValue, Reference, SchemaValue},
};
use crate::product::Compatibility;

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

/// A schema and its data-contract parts, under one id.
#[derive(Debug)]
pub struct Stored {
    /// The id.
    pub id: u32,
    /// Normalized schema text.
    pub text: String,
    /// Named types used from other subjects.
    pub references: Vec<Reference>,
    /// Data-contract metadata.
    pub metadata: Option<Value>,
    /// Data-contract rules.
    pub rule_set: Option<Value>,
    /// The parsed schema.
    pub parsed: Arc<Schema>,
    fingerprint: String,
}

impl Stored {
    /// The body `GET /schemas/ids/{id}` answers.
    pub fn body(&self) -> SchemaBody {
        SchemaBody {
            subject: None,
            version: None,
            id: None,
            schema_type: None,
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
    parsed: Schema,
    text: String,
    references: Vec<Reference>,
    metadata: Option<Value>,
    rule_set: Option<Value>,
    fingerprint: String,
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

/// The applied state of the log.
#[derive(Debug, Default)]
pub struct State {
    schemas: HashMap<u32, Arc<Stored>>,
    by_fingerprint: HashMap<String, u32>,
    uses: HashMap<u32, BTreeSet<(String, u32)>>,
    subjects: BTreeMap<String, BTreeMap<u32, Version>>,
    configs: HashMap<Option<String>, Compatibility>,
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

impl State {
    // ---- applying the log ----

    /// Applies one record of the log. `Err` says why the record was refused; a refused record
    /// changes nothing, on every instance.
    pub fn apply(&mut self, entry: Entry) -> std::result::Result<(), String> {
        match entry {
            Entry::Config(subject, value) => {
                match value {
                    Some(ConfigValue {
                        compatibility_level,
                    }) => {
                        let level = Compatibility::from_str(&compatibility_level)?;
                        self.configs.insert(subject, level);
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
                        text: candidate.text,
                        references: candidate.references,
                        metadata: candidate.metadata,
                        rule_set: candidate.rule_set,
                        parsed: Arc::new(candidate.parsed),
                        fingerprint: candidate.fingerprint,
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
        text: &str,
        references: Vec<Reference>,
        metadata: Option<Value>,
        rule_set: Option<Value>,
    ) -> Result<Candidate> {
        let mut texts = Vec::new();
        let mut seen = BTreeSet::new();
        self.referenced_texts(&references, &mut texts, &mut seen)?;
        let parsed = if texts.is_empty() {
            Schema::parse_str(text).map_err(ApiError::invalid_schema)?
        } else {
            Schema::parse_str_with_list(text, &texts)
                .map_err(ApiError::invalid_schema)?
                .0
        };
        let text = serde_json::to_string(&parsed).map_err(ApiError::invalid_schema)?;
        let fingerprint = fingerprint(&text, &references, &metadata, &rule_set);
        Ok(Candidate {
            parsed,
            text,
            references,
            metadata,
            rule_set,
            fingerprint,
        })
    }

    fn referenced_texts(
        &self,
        references: &[Reference],
        texts: &mut Vec<String>,
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
            self.referenced_texts(&stored.references, texts, seen)?;
            texts.push(stored.text.clone());
        }
        Ok(())
    }

    fn request_candidate(&self, subject: &str, request: &SchemaRequest) -> Result<Candidate> {
        let text = request
            .schema
            .as_deref()
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| ApiError::invalid_schema("the body has no \"schema\" field"))?;
        if let Some(kind) = &request.schema_type {
            if !kind.eq_ignore_ascii_case("AVRO") {
                return Err(ApiError::invalid_schema(format!(
                    "schemaType {kind} is not supported; meshline serves AVRO (GET /schemas/types)"
                )));
            }
        }
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
            text,
            request.references.clone().unwrap_or_default(),
            metadata,
            rule_set,
        )
    }

    // ---- reads ----

    /// The schema with id `id`.
    pub fn schema(&self, id: u32) -> Option<&Arc<Stored>> {
        self.schemas.get(&id)
    }

    /// Subjects with a live version (or any version, with `deleted`), starting with `prefix`.
    pub fn subjects(&self, prefix: &str, deleted: bool) -> Vec<String> {
        self.subjects
            .iter()
            .filter(|(s, v)| s.starts_with(prefix) && (deleted || v.values().any(|v| !v.deleted)))
            .map(|(s, _)| s.clone())
            .collect()
    }

    fn versions_of(&self, subject: &str) -> Result<&BTreeMap<u32, Version>> {
        self.subjects
            .get(subject)
            .ok_or_else(|| ApiError::subject_not_found(subject))
    }

    /// Version numbers of a subject.
    pub fn versions(&self, subject: &str, deleted: bool) -> Result<Vec<u32>> {
        let versions: Vec<u32> = self
            .versions_of(subject)?
            .iter()
            .filter(|(_, v)| deleted || !v.deleted)
            .map(|(n, _)| *n)
            .collect();
        if versions.is_empty() {
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

    /// `POST /subjects/{s}`: the version of `subject` that holds the schema sent.
    pub fn lookup(
        &self,
        subject: &str,
        request: &SchemaRequest,
        deleted: bool,
    ) -> Result<SchemaBody> {
        let versions = self.versions_of(subject)?;
        let candidate = self.request_candidate(subject, request)?;
        let found = versions.iter().rev().find(|(_, v)| {
            (deleted || !v.deleted)
                && self
                    .schemas
                    .get(&v.id)
                    .is_some_and(|s| s.fingerprint == candidate.fingerprint)
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
        self.configs.get(&subject.map(str::to_owned)).copied()
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
        let previous: Vec<Arc<Schema>> = match version {
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
        let previous: Vec<&Schema> = previous.iter().map(Arc::as_ref).collect();
        Ok(compat::check(level, &candidate.parsed, &previous))
    }

    fn live_schemas(&self, subject: &str) -> Vec<Arc<Schema>> {
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
        let mode = self.writable(subject)?;
        if mode != Mode::Import && (request.id.is_some() || request.version.is_some()) {
            return Err(ApiError::not_permitted(
                "\"id\" and \"version\" may only be given in IMPORT mode; PUT /mode {\"mode\":\"IMPORT\"} first",
            ));
        }
        let candidate = self.request_candidate(subject, request)?;
        if let Some(id) = self.by_fingerprint.get(&candidate.fingerprint) {
            let live = self
                .subjects
                .get(subject)
                .is_some_and(|v| v.values().any(|v| v.id == *id && !v.deleted));
            if live && request.id.is_none_or(|wanted| wanted == *id) {
                return Ok(Plan::read_only(*id));
            }
        }
        if mode != Mode::Import {
            let previous = self.live_schemas(subject);
            let previous: Vec<&Schema> = previous.iter().map(Arc::as_ref).collect();
            let problems =
                compat::check(self.effective_config(subject), &candidate.parsed, &previous);
            if !problems.is_empty() {
                return Err(ApiError::incompatible(subject, &problems));
            }
        }
        let id = match (request.id, self.by_fingerprint.get(&candidate.fingerprint)) {
            (Some(id), _) => id,
            (None, Some(&id)) => id,
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
                    schema: candidate.text,
                    schema_type: "AVRO".into(),
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
                schema_type: "AVRO".into(),
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

    /// `PUT /config[/{s}]`.
    pub fn plan_set_config(
        &self,
        subject: Option<&str>,
        level: Compatibility,
    ) -> Plan<Compatibility> {
        Plan {
            entries: vec![Entry::Config(
                subject.map(str::to_owned),
                Some(ConfigValue {
                    compatibility_level: level.as_str().into(),
                }),
            )],
            answer: level,
        }
    }

    /// `DELETE /config[/{s}]`: answers the level that was set.
    pub fn plan_delete_config(&self, subject: Option<&str>) -> Result<Plan<Compatibility>> {
        let previous = match subject {
            None => self.config(None).unwrap_or_default(),
            Some(s) => self.config(Some(s)).ok_or_else(|| {
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
        assert_eq!(s.versions("a-value", false).unwrap(), vec![1, 2]);
    }

    #[test]
    fn an_incompatible_schema_is_refused_with_409_and_changes_nothing() {
        let mut s = State::default();
        register(&mut s, "a-value", V1).unwrap();
        let err = register(&mut s, "a-value", V2_NO_DEFAULT).unwrap_err();
        assert_eq!(err.code, 409, "{err}");
        assert!(err.message.contains("ms"), "{err}");
        assert_eq!(s.versions("a-value", false).unwrap(), vec![1]);
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
        assert_eq!(s.versions("a-value", false).unwrap(), vec![1, 2, 3]);
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
        assert_eq!(s.subjects("", false), Vec::<String>::new());
        assert_eq!(s.subjects("", true), vec!["a-value".to_string()]);
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
        assert_eq!(s.versions("a-value", true).unwrap_err().code, 40401);
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
