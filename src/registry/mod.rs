//! The schema registry: which Avro schema each id names, and the versions of each subject.

pub mod compat;
pub mod store;
