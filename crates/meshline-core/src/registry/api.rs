//! The Confluent Schema Registry REST API as data (sans-io): request and response bodies, and
//! Confluent's error codes, so Confluent's clients work unmodified.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The content type Confluent's registry answers with.
pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// Request content types the registry accepts (as Confluent's does).
pub const ACCEPTED_CONTENT_TYPES: [&str; 4] = [
    "application/vnd.schemaregistry.v1+json",
    "application/vnd.schemaregistry+json",
    "application/json",
    "application/octet-stream",
];

/// Largest request body accepted.
pub const MAX_BODY: usize = 1 << 20;

/// An error as Confluent's registry reports it: an HTTP status and a body
/// `{"error_code": 40401, "message": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message} (error code {code})")]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// Confluent's error code: the status, or the status followed by two digits.
    pub code: u32,
    /// What is wrong and what to do.
    pub message: String,
}

/// The JSON body of an error.
#[derive(Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Confluent's error code.
    pub error_code: u32,
    /// What is wrong.
    pub message: String,
}

impl ApiError {
    fn new(status: u16, code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// The body of this error.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error_code: self.code,
            message: self.message.clone(),
        }
    }

    /// 40401.
    pub fn subject_not_found(subject: &str) -> Self {
        Self::new(
            404,
            40401,
            format!("Subject '{subject}' not found. GET /subjects lists the registered subjects."),
        )
    }
    /// 40402.
    pub fn version_not_found(subject: &str, version: u32) -> Self {
        Self::new(
            404,
            40402,
            format!("Version {version} not found for subject '{subject}'. GET /subjects/{subject}/versions lists its versions."),
        )
    }
    /// 40403.
    pub fn schema_not_found(what: impl std::fmt::Display) -> Self {
        Self::new(404, 40403, format!("Schema {what} not found."))
    }
    /// 40404.
    pub fn subject_soft_deleted(subject: &str) -> Self {
        Self::new(
            404,
            40404,
            format!(
                "Subject '{subject}' was soft deleted. Set permanent=true to delete permanently."
            ),
        )
    }
    /// 40405.
    pub fn subject_not_soft_deleted(subject: &str) -> Self {
        Self::new(
            404,
            40405,
            format!("Subject '{subject}' was not deleted first before being permanently deleted. Delete it without permanent=true first."),
        )
    }
    /// 40406.
    pub fn version_soft_deleted(subject: &str, version: u32) -> Self {
        Self::new(
            404,
            40406,
            format!("Subject '{subject}' Version {version} was soft deleted. Set permanent=true to delete permanently."),
        )
    }
    /// 40407.
    pub fn version_not_soft_deleted(subject: &str, version: u32) -> Self {
        Self::new(
            404,
            40407,
            format!("Subject '{subject}' Version {version} was not deleted first before being permanently deleted. Delete it without permanent=true first."),
        )
    }
    /// 40408.
    pub fn subject_has_no_config(subject: &str) -> Self {
        Self::new(
            404,
            40408,
            format!("Subject '{subject}' does not have subject-level compatibility configured. Add defaultToGlobal=true to read the global level."),
        )
    }
    /// 40409.
    pub fn subject_has_no_mode(subject: &str) -> Self {
        Self::new(
            404,
            40409,
            format!("Subject '{subject}' does not have subject-level mode configured. Add defaultToGlobal=true to read the global mode."),
        )
    }
    /// 40410.
    pub fn association_not_found(what: impl std::fmt::Display) -> Self {
        Self::new(404, 40410, format!("Association not found: {what}."))
    }
    /// 40101: no credentials, or credentials no principal has.
    pub fn unauthorized(what: &str) -> Self {
        Self::new(
            401,
            40101,
            format!("Unauthorized: credentials are needed to {what}; send basic.auth.user.info=PRINCIPAL:TOKEN (or a bearer token) with a token of your domain"),
        )
    }
    /// 40301: the principal may not do this.
    pub fn forbidden(why: impl std::fmt::Display) -> Self {
        Self::new(403, 40301, format!("Forbidden: {why}"))
    }
    /// 409.
    pub fn incompatible(subject: &str, details: &[String]) -> Self {
        Self::new(
            409,
            409,
            format!(
                "Schema being registered is incompatible with an earlier schema for subject \"{subject}\", details: [{}]. Run `meshline contract diff` to see each change.",
                details.join("; ")
            ),
        )
    }
    /// 42201.
    pub fn invalid_schema(why: impl std::fmt::Display) -> Self {
        Self::new(422, 42201, format!("Invalid schema: {why}"))
    }
    /// 42202.
    pub fn invalid_version(version: &str) -> Self {
        Self::new(
            422,
            42202,
            format!("The specified version '{version}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""),
        )
    }
    /// 42203.
    pub fn invalid_compatibility(level: &str) -> Self {
        Self::new(
            422,
            42203,
            format!("Invalid compatibility level '{level}'. Valid values are NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL and FULL_TRANSITIVE."),
        )
    }
    /// 42204.
    pub fn invalid_mode(mode: &str) -> Self {
        Self::new(
            422,
            42204,
            format!("Invalid mode '{mode}'. Valid values are READWRITE, READONLY, READONLY_OVERRIDE and IMPORT."),
        )
    }
    /// 42205.
    pub fn not_permitted(why: impl Into<String>) -> Self {
        Self::new(422, 42205, why)
    }
    /// 400: the body is not the JSON the endpoint takes.
    pub fn bad_request(why: impl Into<String>) -> Self {
        Self::new(400, 400, why)
    }
    /// 413: the body is larger than [`MAX_BODY`].
    pub fn too_large() -> Self {
        Self::new(
            413,
            413,
            format!(
                "Request body is larger than {} bytes (1 MiB); split the schema with references.",
                MAX_BODY
            ),
        )
    }
    /// 415: the content type is not JSON.
    pub fn unsupported_media_type(got: &str) -> Self {
        Self::new(
            415,
            415,
            format!("Content type '{got}' is not supported; send application/vnd.schemaregistry.v1+json or application/json."),
        )
    }
    /// 404 for a path that is not part of the API.
    pub fn no_such_endpoint(path: &str) -> Self {
        Self::new(
            404,
            404,
            format!("HTTP 404 Not Found: {path} is not a registry endpoint."),
        )
    }
    /// 50001.
    pub fn store(why: impl std::fmt::Display) -> Self {
        Self::new(
            500,
            50001,
            format!("Error in the backend data store: {why}"),
        )
    }
    /// 50002.
    pub fn timeout(why: impl std::fmt::Display) -> Self {
        Self::new(500, 50002, format!("Operation timed out: {why}"))
    }
}

/// Result of the API.
pub type Result<T, E = ApiError> = std::result::Result<T, E>;

/// A request's query parameters, read as Confluent's server reads them: names are case
/// sensitive, booleans are `true` or `false` in any case (Python's clients send `True`), a name
/// may repeat (`key=a&key=b`), and parameters an endpoint does not use are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params {
    pairs: Vec<(String, String)>,
}

impl Params {
    /// Parses a raw query string (`a=1&b=x%20y`), `None` for none.
    pub fn parse(query: Option<&str>) -> Self {
        Self {
            pairs: query
                .map(|q| {
                    url::form_urlencoded::parse(q.as_bytes())
                        .map(|(k, v)| (k.into_owned(), v.into_owned()))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// The first value of the first of `names` given.
    pub fn text(&self, names: &[&str]) -> Option<&str> {
        names.iter().find_map(|name| {
            self.pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        })
    }

    /// Every value of `name`, in order.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A boolean under any of `names` (aliases of one parameter); absent or empty is `false`.
    pub fn flag(&self, names: &[&str]) -> Result<bool> {
        match self.text(names) {
            None | Some("") => Ok(false),
            Some(v) if v.eq_ignore_ascii_case("true") => Ok(true),
            Some(v) if v.eq_ignore_ascii_case("false") => Ok(false),
            Some(v) => Err(ApiError::bad_request(format!(
                "query parameter {} is '{v}'; send true or false",
                names.first().copied().unwrap_or_default()
            ))),
        }
    }

    /// An integer parameter, `default` when absent.
    pub fn int(&self, name: &str, default: i64) -> Result<i64> {
        match self.text(&[name]) {
            None | Some("") => Ok(default),
            Some(v) => v.trim().parse().map_err(|_| {
                ApiError::bad_request(format!("query parameter {name} is '{v}'; send an integer"))
            }),
        }
    }

    /// `offset` and `limit` (`-1` or absent: no limit).
    pub fn page(&self) -> Result<Page> {
        let offset = self.int("offset", 0)?;
        let limit = self.int("limit", -1)?;
        if offset < 0 {
            return Err(ApiError::bad_request(format!(
                "query parameter offset is {offset}; send 0 or more"
            )));
        }
        Ok(Page {
            offset: usize::try_from(offset).unwrap_or(usize::MAX),
            limit: usize::try_from(limit).ok().filter(|_| limit >= 0),
        })
    }
}

/// A page of a list answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Page {
    /// Items skipped.
    pub offset: usize,
    /// Items answered at most (`None`: all).
    pub limit: Option<usize>,
}

impl Page {
    /// The page of `items`.
    pub fn of<T>(self, items: impl IntoIterator<Item = T>) -> Vec<T> {
        items
            .into_iter()
            .skip(self.offset)
            .take(self.limit.unwrap_or(usize::MAX))
            .collect()
    }
}

/// Body of `POST /subjects/{s}/versions`, `POST /subjects/{s}` and
/// `POST /compatibility/...`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaRequest {
    /// The schema text.
    #[serde(default)]
    pub schema: Option<String>,
    /// `AVRO` (default); other types are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_type: Option<String>,
    /// Named types used from other subjects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references: Option<Vec<Reference>>,
    /// Data-contract metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// Data-contract rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_set: Option<Value>,
    /// The id to register under (IMPORT mode only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u32>,
    /// The version to register as (IMPORT mode only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
}

/// Answer of `POST /subjects/{s}/versions`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IdResponse {
    /// The schema id.
    pub id: u32,
}

/// A schema with its data-contract parts, as `GET /schemas/ids/{id}` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaBody {
    /// The subject (subject-version answers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    /// The version (subject-version answers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    /// The id (subject-version answers only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u32>,
    /// A stable identifier of the schema's content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guid: Option<String>,
    /// The highest id registered (`GET /schemas/ids/{id}?fetchMaxId=true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_id: Option<u32>,
    /// Omitted for AVRO, as Confluent does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_type: Option<String>,
    /// Named types used from other subjects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Reference>,
    /// Data-contract metadata.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// Data-contract rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_set: Option<Value>,
    /// The schema text.
    pub schema: String,
}

/// One subject version that uses a schema id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubjectVersion {
    /// The subject.
    pub subject: String,
    /// The version.
    pub version: u32,
}

/// Answer of the compatibility endpoints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompatibilityResponse {
    /// Whether the schema may be registered.
    pub is_compatible: bool,
    /// Why not (with `verbose=true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages: Option<Vec<String>>,
}

/// Body of `PUT /config[/{subject}]`, and its answer: the settings to change (the others stay).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigRequest {
    /// The level to set.
    #[serde(
        default,
        alias = "compatibilityLevel",
        skip_serializing_if = "Option::is_none"
    )]
    pub compatibility: Option<String>,
    /// The subject this one stands for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Whether registrations are normalized first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalize: Option<bool>,
    /// Settings of Confluent's that meshline does not keep (`defaultMetadata`,
    /// `overrideRuleSet`, …): a request that sets one is refused, never half applied.
    #[serde(flatten, default, skip_serializing)]
    pub unsupported: std::collections::BTreeMap<String, Value>,
}

impl ConfigRequest {
    /// Refuses settings meshline does not keep.
    pub fn check_supported(&self) -> Result<()> {
        let set: Vec<&str> = self
            .unsupported
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, _)| k.as_str())
            .collect();
        if set.is_empty() {
            return Ok(());
        }
        Err(ApiError::bad_request(format!(
            "config setting(s) {} are not supported; meshline keeps compatibility, alias and normalize",
            set.join(", ")
        )))
    }
}

/// Answer of `GET /config[/{subject}]` and `DELETE /config[/{subject}]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigBody {
    /// The level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compatibility_level: Option<String>,
    /// The subject this one stands for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Whether registrations are normalized first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalize: Option<bool>,
}

/// A topic's key or value associated with a subject, as `GET /associations/…` answers it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Association {
    /// The subject.
    pub subject: String,
    /// The guid of the subject's latest schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guid: Option<String>,
    /// The topic.
    pub resource_name: String,
    /// The cluster (`-`: any).
    pub resource_namespace: String,
    /// The topic's identifier (its name).
    pub resource_id: String,
    /// `topic`.
    pub resource_type: String,
    /// `key` or `value`.
    pub association_type: String,
    /// Whether the association may not change.
    pub frozen: bool,
}

/// Body of `PUT /mode` and its answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModeBody {
    /// The mode.
    pub mode: String,
}

/// One association of `POST /associations` (and `PUT /associations/resources/{id}`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssociationInfo {
    /// The subject the topic's key or value is associated with.
    #[serde(default)]
    pub subject: Option<String>,
    /// `key` or `value` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub association_type: Option<String>,
    /// Confluent's lifecycle (`STRONG`, `WEAK`); kept in the answer only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<String>,
    /// Whether the association may not change (kept in the answer only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frozen: Option<bool>,
    /// A schema to register under the subject first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<SchemaRequest>,
    /// Register that schema normalized.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalize: Option<bool>,
}

/// Body of `POST /associations`, and its answer.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AssociationRequest {
    /// The topic.
    #[serde(default)]
    pub resource_name: Option<String>,
    /// The cluster (`-`: any).
    #[serde(default)]
    pub resource_namespace: Option<String>,
    /// The topic's identifier.
    #[serde(default)]
    pub resource_id: Option<String>,
    /// `topic` (the only kind served).
    #[serde(default)]
    pub resource_type: Option<String>,
    /// The associations.
    #[serde(default)]
    pub associations: Vec<AssociationInfo>,
}

/// A version path segment: a number or `latest` (also `-1`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionId {
    /// The newest version not deleted.
    Latest,
    /// A version number.
    Number(u32),
}

impl VersionId {
    /// Parses a path segment, with Confluent's 42202 for anything else.
    pub fn parse(s: &str) -> Result<Self> {
        if s == "latest" || s == "-1" {
            return Ok(Self::Latest);
        }
        match s.parse::<u32>() {
            Ok(n) if (1..=i32::MAX as u32).contains(&n) => Ok(Self::Number(n)),
            _ => Err(ApiError::invalid_version(s)),
        }
    }
}

/// A reference from a schema to a named type registered under another subject.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Reference {
    /// The full name of the referenced type.
    pub name: String,
    /// The subject it is registered under.
    pub subject: String,
    /// The version of that subject.
    pub version: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_like_confluents() {
        assert_eq!(VersionId::parse("latest").unwrap(), VersionId::Latest);
        assert_eq!(VersionId::parse("-1").unwrap(), VersionId::Latest);
        assert_eq!(VersionId::parse("3").unwrap(), VersionId::Number(3));
        for bad in ["0", "x", "-2", "2147483648"] {
            assert_eq!(VersionId::parse(bad).unwrap_err().code, 42202, "{bad}");
        }
    }

    #[test]
    fn query_booleans_read_as_confluents_server_reads_them() {
        let q = Params::parse(Some("normalize=False&verbose=True&deleted=TRUE&force=&x=1"));
        assert!(!q.flag(&["normalize"]).unwrap());
        assert!(q.flag(&["verbose"]).unwrap());
        assert!(q.flag(&["deleted"]).unwrap());
        assert!(!q.flag(&["force"]).unwrap(), "empty is false");
        assert!(!q.flag(&["permanent"]).unwrap(), "absent is false");
        let bad = Params::parse(Some("deleted=maybe"))
            .flag(&["deleted"])
            .unwrap_err();
        assert_eq!((bad.status, bad.code), (400, 400));
        assert!(bad.message.contains("deleted"), "{bad}");
        // aliases of one parameter: the first given wins
        let q = Params::parse(Some("deleted_only=true"));
        assert!(q.flag(&["deletedOnly", "deleted_only"]).unwrap());
    }

    #[test]
    fn repeated_parameters_and_pages() {
        let q = Params::parse(Some(
            "key=owner&value=a%20b&key=domain&value=player&offset=1&limit=2",
        ));
        assert_eq!(q.all("key"), ["owner", "domain"]);
        assert_eq!(q.all("value"), ["a b", "player"]);
        assert_eq!(q.page().unwrap().of(1..=5), vec![2, 3]);
        let all = Params::parse(Some("limit=-1")).page().unwrap();
        assert_eq!(all.of(1..=3), vec![1, 2, 3]);
        assert_eq!(
            Params::parse(Some("offset=-1")).page().unwrap_err().code,
            400
        );
        assert_eq!(Params::parse(Some("limit=x")).page().unwrap_err().code, 400);
        assert_eq!(Params::parse(None), Params::default());
    }

    #[test]
    fn avro_answers_omit_schema_type_and_empty_references() {
        let body = SchemaBody {
            subject: None,
            version: None,
            id: None,
            guid: None,
            max_id: None,
            schema_type: None,
            references: vec![],
            metadata: None,
            rule_set: None,
            schema: "\"string\"".into(),
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"schema":"\"string\""}"#
        );
    }
}
