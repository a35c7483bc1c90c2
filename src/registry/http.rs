//! The Confluent Schema Registry REST API over HTTP (axum): each handler maps a request onto
//! the [`Registry`] and answers in Confluent's format and content type.

use std::str::FromStr;

use axum::{
    body::Body,
    extract::{Path, Query, State},
    http::{header, HeaderMap, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

use super::{
    api::{
        self, ApiError, CompatibilityResponse, ConfigRequest, ConfigResponse, IdResponse, ModeBody,
        Result, SchemaRequest, VersionId,
    },
    service::Registry,
    state::{parse_compatibility, Mode},
};

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::error!(code = self.code, message = %self.message, "registry error");
        }
        (status, json_body(&self.body())).into_response()
    }
}

fn json_body<T: Serialize>(value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => ([(header::CONTENT_TYPE, api::CONTENT_TYPE)], bytes).into_response(),
        Err(e) => ApiError::store(e).into_response(),
    }
}

/// A successful answer in Confluent's content type.
struct Json<T>(T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        json_body(&self.0)
    }
}

/// Reads a JSON body: checks its content type and size, then parses it.
async fn read_body<T: DeserializeOwned>(headers: &HeaderMap, body: Body) -> Result<T> {
    if let Some(kind) = headers.get(header::CONTENT_TYPE) {
        let kind = kind.to_str().unwrap_or("(not text)");
        let essence = kind.split(';').next().unwrap_or("").trim();
        if !api::ACCEPTED_CONTENT_TYPES
            .iter()
            .any(|ok| ok.eq_ignore_ascii_case(essence))
        {
            return Err(ApiError::unsupported_media_type(kind));
        }
    }
    let bytes = axum::body::to_bytes(body, api::MAX_BODY)
        .await
        .map_err(|_| ApiError::too_large())?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::bad_request(format!(
            "The request body is not valid JSON for this endpoint: {e}"
        ))
    })
}

/// The registry's routes.
pub fn router(registry: Registry) -> Router {
    Router::new()
        .route("/", get(|| async { Json(serde_json::json!({})) }))
        .route("/schemas/types", get(|| async { Json(["AVRO"]) }))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(schema_text_by_id))
        .route("/schemas/ids/{id}/versions", get(versions_of_id))
        .route("/schemas/ids/{id}/subjects", get(subjects_of_id))
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route("/subjects/{subject}/versions", get(versions).post(register))
        .route(
            "/subjects/{subject}/versions/{version}",
            get(version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(version_text),
        )
        .route(
            "/subjects/{subject}/versions/{version}/referencedby",
            get(referenced_by),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(compatibility_with_version),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(compatibility_with_all),
        )
        .route(
            "/config",
            get(global_config)
                .put(set_global_config)
                .delete(delete_global_config),
        )
        .route(
            "/config/{subject}",
            get(subject_config)
                .put(set_subject_config)
                .delete(delete_subject_config),
        )
        .route("/mode", get(global_mode).put(set_global_mode))
        .route(
            "/mode/{subject}",
            get(subject_mode)
                .put(set_subject_mode)
                .delete(delete_subject_mode),
        )
        .fallback(|uri: Uri| async move { ApiError::no_such_endpoint(uri.path()) })
        .method_not_allowed_fallback(|| async {
            (
                StatusCode::METHOD_NOT_ALLOWED,
                json_body(&api::ErrorBody {
                    error_code: 405,
                    message: "HTTP 405 Method Not Allowed".into(),
                }),
            )
        })
        .with_state(registry)
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Flags {
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    permanent: bool,
    #[serde(default)]
    verbose: bool,
    #[serde(default)]
    default_to_global: bool,
    #[serde(default)]
    subject_prefix: Option<String>,
}

fn parse_id(id: &str) -> Result<u32> {
    id.parse()
        .map_err(|_| ApiError::schema_not_found(format!("'{id}' (ids are positive integers)")))
}

async fn schema_by_id(
    State(r): State<Registry>,
    Path(id): Path<String>,
) -> Result<Json<api::SchemaBody>> {
    let id = parse_id(&id)?;
    let body = r.state().schema(id).map(|s| s.body());
    body.map(Json).ok_or_else(|| ApiError::schema_not_found(id))
}

async fn schema_text_by_id(State(r): State<Registry>, Path(id): Path<String>) -> Result<Response> {
    let id = parse_id(&id)?;
    let text = r.state().schema(id).map(|s| s.text.clone());
    let text = text.ok_or_else(|| ApiError::schema_not_found(id))?;
    Ok(([(header::CONTENT_TYPE, api::CONTENT_TYPE)], text).into_response())
}

async fn versions_of_id(
    State(r): State<Registry>,
    Path(id): Path<String>,
    Query(flags): Query<Flags>,
) -> Result<Json<Vec<api::SubjectVersion>>> {
    r.state().uses_of(parse_id(&id)?, flags.deleted).map(Json)
}

async fn subjects_of_id(
    State(r): State<Registry>,
    Path(id): Path<String>,
    Query(flags): Query<Flags>,
) -> Result<Json<Vec<String>>> {
    let uses = r.state().uses_of(parse_id(&id)?, flags.deleted)?;
    let mut subjects: Vec<String> = uses.into_iter().map(|u| u.subject).collect();
    subjects.dedup();
    Ok(Json(subjects))
}

async fn subjects(State(r): State<Registry>, Query(flags): Query<Flags>) -> Json<Vec<String>> {
    Json(
        r.state()
            .subjects(flags.subject_prefix.as_deref().unwrap_or(""), flags.deleted),
    )
}

async fn versions(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Query(flags): Query<Flags>,
) -> Result<Json<Vec<u32>>> {
    r.state().versions(&subject, flags.deleted).map(Json)
}

async fn register(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<IdResponse>> {
    let request: SchemaRequest = read_body(&headers, body).await?;
    let id = r.write(|s| s.plan_register(&subject, &request)).await?;
    Ok(Json(IdResponse { id }))
}

async fn version(
    State(r): State<Registry>,
    Path((subject, version)): Path<(String, String)>,
    Query(flags): Query<Flags>,
) -> Result<Json<api::SchemaBody>> {
    let version = VersionId::parse(&version)?;
    r.state()
        .version_body(&subject, version, flags.deleted)
        .map(Json)
}

async fn version_text(
    State(r): State<Registry>,
    Path((subject, version)): Path<(String, String)>,
    Query(flags): Query<Flags>,
) -> Result<Response> {
    let version = VersionId::parse(&version)?;
    let body = r.state().version_body(&subject, version, flags.deleted)?;
    Ok(([(header::CONTENT_TYPE, api::CONTENT_TYPE)], body.schema).into_response())
}

async fn referenced_by(
    State(r): State<Registry>,
    Path((subject, version)): Path<(String, String)>,
) -> Result<Json<Vec<u32>>> {
    let version = VersionId::parse(&version)?;
    r.state().referenced_by(&subject, version).map(Json)
}

async fn lookup(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Query(flags): Query<Flags>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<api::SchemaBody>> {
    let request: SchemaRequest = read_body(&headers, body).await?;
    r.state()
        .lookup(&subject, &request, flags.deleted)
        .map(Json)
}

async fn delete_subject(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Query(flags): Query<Flags>,
) -> Result<Json<Vec<u32>>> {
    r.write(|s| s.plan_delete_subject(&subject, flags.permanent))
        .await
        .map(Json)
}

async fn delete_version(
    State(r): State<Registry>,
    Path((subject, version)): Path<(String, String)>,
    Query(flags): Query<Flags>,
) -> Result<Json<u32>> {
    let version = VersionId::parse(&version)?;
    r.write(|s| s.plan_delete_version(&subject, version, flags.permanent))
        .await
        .map(Json)
}

fn compatibility(
    r: &Registry,
    subject: &str,
    version: Option<VersionId>,
    verbose: bool,
    request: &SchemaRequest,
) -> Result<Json<CompatibilityResponse>> {
    let problems = r.state().compatibility(subject, version, request)?;
    Ok(Json(CompatibilityResponse {
        is_compatible: problems.is_empty(),
        messages: verbose.then_some(problems),
    }))
}

async fn compatibility_with_version(
    State(r): State<Registry>,
    Path((subject, version)): Path<(String, String)>,
    Query(flags): Query<Flags>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<CompatibilityResponse>> {
    let version = VersionId::parse(&version)?;
    let request: SchemaRequest = read_body(&headers, body).await?;
    compatibility(&r, &subject, Some(version), flags.verbose, &request)
}

async fn compatibility_with_all(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Query(flags): Query<Flags>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<CompatibilityResponse>> {
    let request: SchemaRequest = read_body(&headers, body).await?;
    compatibility(&r, &subject, None, flags.verbose, &request)
}

fn config_response(level: crate::product::Compatibility) -> Json<ConfigResponse> {
    Json(ConfigResponse {
        compatibility_level: level.as_str().into(),
    })
}

fn config_level(request: &ConfigRequest) -> Result<crate::product::Compatibility> {
    let level = request.compatibility.as_deref().ok_or_else(|| {
        ApiError::invalid_compatibility("(missing: send {\"compatibility\": \"BACKWARD\"})")
    })?;
    parse_compatibility(level)
}

async fn global_config(State(r): State<Registry>) -> Json<ConfigResponse> {
    config_response(r.state().config(None).unwrap_or_default())
}

async fn set_global_config(
    State(r): State<Registry>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ConfigRequest>> {
    let request: ConfigRequest = read_body(&headers, body).await?;
    let level = config_level(&request)?;
    let level = r.write(|s| Ok(s.plan_set_config(None, level))).await?;
    Ok(Json(ConfigRequest {
        compatibility: Some(level.as_str().into()),
    }))
}

async fn delete_global_config(State(r): State<Registry>) -> Result<Json<ConfigResponse>> {
    r.write(|s| s.plan_delete_config(None))
        .await
        .map(config_response)
}

async fn subject_config(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Query(flags): Query<Flags>,
) -> Result<Json<ConfigResponse>> {
    let state = r.state();
    match state.config(Some(&subject)) {
        Some(level) => Ok(config_response(level)),
        None if flags.default_to_global => Ok(config_response(state.effective_config(&subject))),
        None => Err(ApiError::subject_has_no_config(&subject)),
    }
}

async fn set_subject_config(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ConfigRequest>> {
    let request: ConfigRequest = read_body(&headers, body).await?;
    let level = config_level(&request)?;
    let level = r
        .write(|s| Ok(s.plan_set_config(Some(&subject), level)))
        .await?;
    Ok(Json(ConfigRequest {
        compatibility: Some(level.as_str().into()),
    }))
}

async fn delete_subject_config(
    State(r): State<Registry>,
    Path(subject): Path<String>,
) -> Result<Json<ConfigResponse>> {
    r.write(|s| s.plan_delete_config(Some(&subject)))
        .await
        .map(config_response)
}

fn mode_body(mode: Mode) -> Json<ModeBody> {
    Json(ModeBody {
        mode: mode.as_str().into(),
    })
}

async fn global_mode(State(r): State<Registry>) -> Json<ModeBody> {
    mode_body(r.state().mode(None).unwrap_or_default())
}

async fn set_global_mode(
    State(r): State<Registry>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ModeBody>> {
    let request: ModeBody = read_body(&headers, body).await?;
    let mode = Mode::from_str(&request.mode)?;
    r.write(|s| s.plan_set_mode(None, mode))
        .await
        .map(mode_body)
}

async fn subject_mode(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Query(flags): Query<Flags>,
) -> Result<Json<ModeBody>> {
    let state = r.state();
    match state.mode(Some(&subject)) {
        Some(mode) => Ok(mode_body(mode)),
        None if flags.default_to_global => Ok(mode_body(state.effective_mode(&subject))),
        None => Err(ApiError::subject_has_no_mode(&subject)),
    }
}

async fn set_subject_mode(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<ModeBody>> {
    let request: ModeBody = read_body(&headers, body).await?;
    let mode = Mode::from_str(&request.mode)?;
    r.write(|s| s.plan_set_mode(Some(&subject), mode))
        .await
        .map(mode_body)
}

async fn delete_subject_mode(
    State(r): State<Registry>,
    Path(subject): Path<String>,
) -> Result<Json<ModeBody>> {
    r.write(|s| s.plan_delete_mode(&subject))
        .await
        .map(mode_body)
}
