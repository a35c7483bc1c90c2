//! The registry's state (sans-io): schemas deduplicated by canonical form to one id, and the
//! ordered versions of each subject.

use std::{collections::HashMap, sync::Arc};

use apache_avro::Schema;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The text is not a valid Avro schema.
    #[error("invalid Avro schema: {0}")]
    InvalidSchema(String),
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A registered schema.
#[derive(Debug, Clone)]
pub struct Registered {
    /// Global id, the one in the wire format.
    pub id: u32,
    /// Version within the subject, from 1.
    pub version: u32,
    /// The parsed schema.
    pub schema: Arc<Schema>,
}

/// Schemas by id and subjects by name.
#[derive(Debug, Default)]
pub struct Store {
    schemas: Vec<Arc<Schema>>,
    by_canonical: HashMap<String, u32>,
    subjects: HashMap<String, Vec<u32>>,
}

impl Store {
    /// Registers `text` under `subject`: the same schema (by canonical form) keeps its id, and a
    /// subject that already has it as a version gets that version back.
    pub fn register(&mut self, subject: &str, text: &str) -> Result<Registered> {
        let schema = Schema::parse_str(text).map_err(|e| Error::InvalidSchema(e.to_string()))?;
        let canonical = schema.canonical_form();
        let id = match self.by_canonical.get(&canonical) {
            Some(&id) => id,
            None => {
                self.schemas.push(Arc::new(schema));
                let id = u32::try_from(self.schemas.len()).unwrap_or(u32::MAX);
                self.by_canonical.insert(canonical, id);
                id
            }
        };
        let versions = self.subjects.entry(subject.to_owned()).or_default();
        let version = match versions.iter().position(|&v| v == id) {
            Some(i) => i + 1,
            None => {
                versions.push(id);
                versions.len()
            }
        };
        Ok(Registered {
            id,
            version: u32::try_from(version).unwrap_or(u32::MAX),
            schema: self.schemas[id as usize - 1].clone(),
        })
    }

    /// The schema with global id `id`.
    pub fn schema(&self, id: u32) -> Option<Arc<Schema>> {
        let index = usize::try_from(id).ok()?.checked_sub(1)?;
        self.schemas.get(index).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = r#"{"type":"record","name":"A","fields":[{"name":"x","type":"long"}]}"#;
    const A_SPACED: &str = r#"{ "type": "record", "name": "A", "doc": "same", "fields": [ {"name": "x", "type": "long"} ] }"#;
    const B: &str = r#"{"type":"record","name":"A","fields":[{"name":"x","type":"long"},{"name":"y","type":"string","default":""}]}"#;

    #[test]
    fn same_canonical_schema_gets_the_same_id_in_any_subject() {
        let mut s = Store::default();
        let a = s.register("t-value", A).unwrap();
        let again = s.register("u-value", A_SPACED).unwrap();
        assert_eq!((a.id, a.version), (1, 1));
        assert_eq!((again.id, again.version), (1, 1));
        let b = s.register("t-value", B).unwrap();
        assert_eq!((b.id, b.version), (2, 2));
        assert_eq!(s.register("t-value", A).unwrap().version, 1);
        assert!(s.schema(2).is_some());
        assert!(s.schema(0).is_none() && s.schema(3).is_none());
    }

    #[test]
    fn invalid_schema_is_refused_and_changes_nothing() {
        let mut s = Store::default();
        assert!(s.register("t-value", "{\"type\":\"recod\"}").is_err());
        assert!(s.schema(1).is_none());
    }
}
