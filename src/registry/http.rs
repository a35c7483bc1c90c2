//! The Confluent Schema Registry REST API over HTTP (axum): each handler maps a request onto
//! the [`Registry`] and answers in Confluent's format and content type.
//!
//! As Confluent's server does, a subject in a `/subjects/{subject}/…` or
//! `/compatibility/subjects/{subject}/…` path (and the `subject` parameter of
//! `/schemas/ids/{id}`) that is an alias stands for the subject it names, and a subject in the
//! default context may be written qualified (`:.:subject`).

use std::{str::FromStr, sync::Arc};

use axum::{
    body::Body,
    extract::{FromRequestParts, Path, State},
    http::{header, request::Parts, HeaderMap, StatusCode, Uri},
    response::{IntoResponse, Response},
    routing::{get, post},
    Router,
};
use serde::{de::DeserializeOwned, Serialize};

use super::{
    access,
    api::{
        self, ApiError, Association, CompatibilityResponse, ConfigBody, ConfigRequest, ModeBody,
        Params, Result, SchemaRequest, VersionId,
    },
    service::Registry,
    state::{
        in_default_context, parse_compatibility, Mode, Options, State as Log, SubjectConfig, Which,
    },
};

use crate::auth::Tokens;

/// A registry error as an HTTP answer: Confluent's status and error body.
struct Failure(ApiError);

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Self(e)
    }
}

/// What a handler answers.
type Reply<T> = std::result::Result<T, Failure>;

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let Self(e) = self;
        e.into_response()
    }
}

/// Confluent's status and error body.
trait IntoAnswer {
    fn into_response(self) -> Response;
}

impl IntoAnswer for ApiError {
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

/// The query parameters of a request.
struct Query(Params);

impl<S: Send + Sync> FromRequestParts<S> for Query {
    type Rejection = Failure;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Reply<Self> {
        Ok(Self(Params::parse(parts.uri.query())))
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
        .route(
            "/",
            get(|| async { Json(serde_json::json!({})) })
                .post(|| async { Json(serde_json::json!({})) }),
        )
        .route("/schemas", get(schemas))
        .route(
            "/schemas/types",
            get(|| async { Json(super::state::SCHEMA_TYPES) }),
        )
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(schema_text_by_id))
        .route("/schemas/ids/{id}/versions", get(versions_of_id))
        .route("/schemas/ids/{id}/subjects", get(subjects_of_id))
        .route("/schemas/guids/{guid}", get(schema_by_guid))
        .route("/schemas/guids/{guid}/ids", get(ids_of_guid))
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route("/subjects/{subject}/metadata", get(latest_with_metadata))
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
        .route("/contexts", get(contexts))
        .route("/v1/metadata/id", get(cluster_id))
        .route("/v1/metadata/version", get(server_version))
        .route("/associations", post(create_associations))
        .route(
            "/associations/subjects/{subject}",
            get(associations_of_subject),
        )
        .route(
            "/associations/resources/{namespace}/{name}",
            get(associations_of_topic),
        )
        .route(
            "/associations/resources/{id}",
            get(associations_of_topic_id)
                .put(update_associations)
                .delete(delete_associations),
        )
        .fallback(|uri: Uri| async move { Failure(ApiError::no_such_endpoint(uri.path())) })
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

/// Who may use the registry: the tokens of its principals, and whether reads need one.
#[derive(Debug, Clone)]
pub struct Access {
    /// The principals' tokens (domains, and [`access::PLATFORM`]).
    pub tokens: Tokens,
    /// Reads need no credentials.
    pub reads_open: bool,
}

/// [`router`], with every request authenticated and authorised by `access`
/// ([`access::decide`]): a domain writes only its own subjects, the platform everything.
pub fn secured_router(registry: Registry, access: Access) -> Router {
    let state = (registry.clone(), Arc::new(access));
    router(registry).layer(axum::middleware::from_fn_with_state(state, authorize))
}

/// Authorizes a request and, for a write, records it in the audit trail with its answer.
async fn authorize(
    State((registry, access)): State<(Registry, Arc<Access>)>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let method = request.method().as_str().to_owned();
    let path = request.uri().path().to_owned();
    let write = !matches!(
        access::need(&method, &path, str::to_owned),
        Ok(access::Need::Read)
    );
    let principal = credentials(request.headers(), &access.tokens)
        .ok()
        .flatten();
    let response = answer(&registry, &access, request, next).await;
    if !write {
        return response;
    }
    // the answer is small JSON: read it for the version and id, then send it on
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, api::MAX_BODY)
        .await
        .unwrap_or_default();
    let event = super::audit::Event::of(
        principal.as_deref(),
        &method,
        &path,
        parts.status.as_u16(),
        &body,
    );
    registry.audit(&event).await;
    Response::from_parts(parts, Body::from(body))
}

async fn answer(
    registry: &Registry,
    access: &Access,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let checked = credentials(request.headers(), &access.tokens).and_then(|principal| {
        let need = access::need(request.method().as_str(), request.uri().path(), |s| {
            registry.state().resolve(s).to_owned()
        })?;
        access::decide(principal.as_deref(), &need, access.reads_open)?;
        Ok(principal)
    });
    match checked {
        Ok(principal) => {
            // the write handlers check again, atomically with the write, on the subject the
            // write lands in (an alias may be repointed while the body is read)
            let mut request = request;
            request.extensions_mut().insert(Principal(principal));
            next.run(request).await
        }
        Err(e) if e.status == 401 => {
            let mut response = e.into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Basic realm=\"meshline schema registry\""),
            );
            response
        }
        Err(e) => e.into_response(),
    }
}

/// Who sent a request the secured router authenticated (`None`: no credentials).
#[derive(Debug, Clone)]
struct Principal(Option<String>);

/// Checks, inside a write's plan, that the request's principal may write `subject`, the subject
/// the write lands in; no check on the router without access control.
fn may_write(principal: Option<&Principal>, subject: &str) -> Result<()> {
    match principal {
        Some(Principal(principal)) => access::decide(
            principal.as_deref(),
            &access::Need::Subject(subject.to_owned()),
            true,
        ),
        None => Ok(()),
    }
}

/// The principal of a request's `Authorization` header: `Basic` (Confluent's
/// `basic.auth.user.info=PRINCIPAL:TOKEN`) or `Bearer TOKEN`; `None` without one. Credentials
/// that name no principal are refused, not taken as none.
fn credentials(headers: &HeaderMap, tokens: &Tokens) -> Result<Option<String>> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let refused = || ApiError::unauthorized("be recognised (these credentials are not)");
    let value = value.to_str().map_err(|_| refused())?;
    let (scheme, rest) = value.split_once(' ').ok_or_else(refused)?;
    if scheme.eq_ignore_ascii_case("basic") {
        use base64::Engine as _;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .map_err(|_| refused())?;
        let decoded = String::from_utf8(decoded).map_err(|_| refused())?;
        let (user, token) = decoded.split_once(':').ok_or_else(refused)?;
        match tokens.principal(token) {
            Some(principal) if principal == user => Ok(Some(principal.to_owned())),
            _ => Err(refused()),
        }
    } else if scheme.eq_ignore_ascii_case("bearer") {
        tokens
            .principal(rest.trim())
            .map(|p| Some(p.to_owned()))
            .ok_or_else(refused)
    } else {
        Err(refused())
    }
}

fn parse_id(id: &str) -> Result<u32> {
    id.parse()
        .map_err(|_| ApiError::schema_not_found(format!("'{id}' (ids are positive integers)")))
}

/// The subject a `/subjects/{subject}/…` request acts on: unqualified, then through its alias.
fn subject_of(state: &Log, subject: &str) -> Result<String> {
    Ok(state.resolve(in_default_context(subject)?).to_owned())
}

/// `deleted` as Confluent's endpoints name it (`lookupDeletedSchema` on some).
fn deleted(q: &Params) -> Result<bool> {
    q.flag(&["deleted", "lookupDeletedSchema"])
}

/// `deletedOnly` (Python's client sends `deleted_only`) with `deleted`.
fn which(q: &Params) -> Result<Which> {
    Ok(Which::from_flags(
        deleted(q)?,
        q.flag(&["deletedOnly", "deleted_only"])?,
    ))
}

fn options(q: &Params) -> Result<Options> {
    Ok(Options {
        normalize: q.flag(&["normalize"])?,
        force: q.flag(&["force"])?,
    })
}

async fn schemas(State(r): State<Registry>, Query(q): Query) -> Reply<Json<Vec<api::SchemaBody>>> {
    let prefix = in_default_context(q.text(&["subjectPrefix"]).unwrap_or(""))?.to_owned();
    let all = r.state().all_versions(
        &prefix,
        deleted(&q)?,
        q.flag(&["latestOnly"])?,
        q.flag(&["aliases"])?,
    );
    Ok(Json(q.page()?.of(all)))
}

async fn schema_by_id(
    State(r): State<Registry>,
    Path(id): Path<String>,
    Query(q): Query,
) -> Reply<Json<api::SchemaBody>> {
    let id = parse_id(&id)?;
    // as Confluent's: `subject` names the context to look in, and ids are global in the
    // default context, so any subject of it finds every id
    in_default_context(q.text(&["subject"]).unwrap_or(""))?;
    let state = r.state();
    let mut body = state
        .schema(id)
        .map(|s| s.body())
        .ok_or_else(|| ApiError::schema_not_found(id))?;
    if q.flag(&["fetchMaxId"])? {
        body.max_id = Some(state.max_id());
    }
    Ok(Json(body))
}

async fn schema_text_by_id(State(r): State<Registry>, Path(id): Path<String>) -> Reply<Response> {
    let id = parse_id(&id)?;
    let text = r.state().schema(id).map(|s| s.text.clone());
    let text = text.ok_or_else(|| ApiError::schema_not_found(id))?;
    Ok(([(header::CONTENT_TYPE, api::CONTENT_TYPE)], text).into_response())
}

async fn schema_by_guid(
    State(r): State<Registry>,
    Path(guid): Path<String>,
) -> Reply<Json<api::SchemaBody>> {
    let body = r.state().schema_by_guid(&guid).map(|s| s.body());
    body.map(Json)
        .ok_or_else(|| ApiError::schema_not_found(format!("with guid {guid}")))
        .map_err(Failure)
}

async fn ids_of_guid(
    State(r): State<Registry>,
    Path(guid): Path<String>,
) -> Reply<Json<serde_json::Value>> {
    let id = r.state().schema_by_guid(&guid).map(|s| s.id);
    let id = id.ok_or_else(|| ApiError::schema_not_found(format!("with guid {guid}")))?;
    Ok(Json(serde_json::json!([{ "context": ".", "id": id }])))
}

/// The uses of an id, narrowed to one subject with `subject`.
fn uses(r: &Registry, id: &str, q: &Params) -> Result<Vec<api::SubjectVersion>> {
    let state = r.state();
    let mut uses = state.uses_of(parse_id(id)?, deleted(q)?)?;
    if let Some(subject) = q.text(&["subject"]).filter(|s| !s.is_empty()) {
        let subject = subject_of(&state, subject)?;
        uses.retain(|u| u.subject == subject);
    }
    Ok(q.page()?.of(uses))
}

async fn versions_of_id(
    State(r): State<Registry>,
    Path(id): Path<String>,
    Query(q): Query,
) -> Reply<Json<Vec<api::SubjectVersion>>> {
    uses(&r, &id, &q).map(Json).map_err(Failure)
}

async fn subjects_of_id(
    State(r): State<Registry>,
    Path(id): Path<String>,
    Query(q): Query,
) -> Reply<Json<Vec<String>>> {
    let mut subjects: Vec<String> = uses(&r, &id, &q)?.into_iter().map(|u| u.subject).collect();
    subjects.dedup();
    Ok(Json(subjects))
}

async fn subjects(State(r): State<Registry>, Query(q): Query) -> Reply<Json<Vec<String>>> {
    let prefix = in_default_context(q.text(&["subjectPrefix"]).unwrap_or(""))?.to_owned();
    let subjects = r.state().subjects(&prefix, which(&q)?);
    Ok(Json(q.page()?.of(subjects)))
}

async fn versions(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Query(q): Query,
) -> Reply<Json<Vec<i64>>> {
    let state = r.state();
    let subject = subject_of(&state, &subject)?;
    let versions = state.versions(&subject, which(&q)?, q.flag(&["deletedAsNegative"])?)?;
    Ok(Json(q.page()?.of(versions)))
}

async fn register(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Query(q): Query,
    principal: Option<axum::Extension<Principal>>,
    headers: HeaderMap,
    body: Body,
) -> Reply<Json<api::SchemaBody>> {
    let request: SchemaRequest = read_body(&headers, body).await?;
    let options = options(&q)?;
    let named = in_default_context(&subject)?.to_owned();
    let principal = principal.map(|p| p.0);
    // the alias resolved and the principal checked on the state the write is planned on
    let landed = std::sync::Mutex::new(named.clone());
    let id = r
        .write(|s| {
            let subject = s.resolve(&named);
            may_write(principal.as_ref(), subject)?;
            subject.clone_into(&mut landed.lock().unwrap_or_else(|e| e.into_inner()));
            s.plan_register_with(subject, &request, options)
        })
        .await?;
    let subject = landed.into_inner().unwrap_or_else(|e| e.into_inner());
    // Confluent answers the registered version whole; `id` is what every client reads
    let state = r.state();
    let version = state
        .uses_of(id, false)?
        .into_iter()
        .filter(|u| u.subject == subject)
        .map(|u| u.version)
        .max();
    let body = match version {
        Some(version) => state.version_body(&subject, VersionId::Number(version), false)?,
        None => state
            .schema(id)
            .map(|s| s.body())
            .ok_or_else(|| ApiError::schema_not_found(id))?,
    };
    Ok(Json(api::SchemaBody {
        id: Some(id),
        ..body
    }))
}

async fn version(
    State(r): State<Registry>,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Query,
) -> Reply<Json<api::SchemaBody>> {
    let version = VersionId::parse(&version)?;
    let state = r.state();
    let subject = subject_of(&state, &subject)?;
    state
        .version_body(&subject, version, deleted(&q)?)
        .map(Json)
        .map_err(Failure)
}

async fn version_text(
    State(r): State<Registry>,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Query,
) -> Reply<Response> {
    let version = VersionId::parse(&version)?;
    let state = r.state();
    let subject = subject_of(&state, &subject)?;
    let body = state.version_body(&subject, version, deleted(&q)?)?;
    Ok(([(header::CONTENT_TYPE, api::CONTENT_TYPE)], body.schema).into_response())
}

async fn referenced_by(
    State(r): State<Registry>,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Query,
) -> Reply<Json<Vec<u32>>> {
    let version = VersionId::parse(&version)?;
    let state = r.state();
    let subject = subject_of(&state, &subject)?;
    let ids = state.referenced_by(&subject, version)?;
    Ok(Json(q.page()?.of(ids)))
}

async fn lookup(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Query(q): Query,
    headers: HeaderMap,
    body: Body,
) -> Reply<Json<api::SchemaBody>> {
    let request: SchemaRequest = read_body(&headers, body).await?;
    let state = r.state();
    let subject = subject_of(&state, &subject)?;
    let (deleted, options) = (deleted(&q)?, options(&q)?);
    super::service::cpu(|| state.lookup(&subject, &request, deleted, options))
        .map(Json)
        .map_err(Failure)
}

async fn latest_with_metadata(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Query(q): Query,
) -> Reply<Json<api::SchemaBody>> {
    let keys = q.all("key");
    let values = q.all("value");
    if keys.len() != values.len() {
        return Err(ApiError::bad_request(format!(
            "{} key parameter(s) and {} value parameter(s): send one value per key",
            keys.len(),
            values.len()
        ))
        .into());
    }
    let wanted: Vec<(&str, &str)> = keys.into_iter().zip(values).collect();
    let state = r.state();
    let subject = subject_of(&state, &subject)?;
    state
        .latest_with_metadata(&subject, &wanted, deleted(&q)?)
        .map(Json)
        .map_err(Failure)
}

async fn delete_subject(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Query(q): Query,
) -> Reply<Json<Vec<u32>>> {
    let permanent = q.flag(&["permanent"])?;
    let subject = subject_of(&r.state(), &subject)?;
    r.write(|s| s.plan_delete_subject(&subject, permanent))
        .await
        .map(Json)
        .map_err(Failure)
}

async fn delete_version(
    State(r): State<Registry>,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Query,
) -> Reply<Json<u32>> {
    let version = VersionId::parse(&version)?;
    let permanent = q.flag(&["permanent"])?;
    let subject = subject_of(&r.state(), &subject)?;
    r.write(|s| s.plan_delete_version(&subject, version, permanent))
        .await
        .map(Json)
        .map_err(Failure)
}

async fn compatibility(
    r: &Registry,
    subject: &str,
    version: Option<VersionId>,
    q: &Params,
    headers: HeaderMap,
    body: Body,
) -> Reply<Json<CompatibilityResponse>> {
    let request: SchemaRequest = read_body(&headers, body).await?;
    let verbose = q.flag(&["verbose"])?;
    // `normalize` changes no answer here: compatibility compares parsed schemas
    q.flag(&["normalize"])?;
    let state = r.state();
    let subject = subject_of(&state, subject)?;
    let problems = super::service::cpu(|| state.compatibility(&subject, version, &request))?;
    Ok(Json(CompatibilityResponse {
        is_compatible: problems.is_empty(),
        messages: verbose.then_some(problems),
    }))
}

async fn compatibility_with_version(
    State(r): State<Registry>,
    Path((subject, version)): Path<(String, String)>,
    Query(q): Query,
    headers: HeaderMap,
    body: Body,
) -> Reply<Json<CompatibilityResponse>> {
    let version = VersionId::parse(&version)?;
    compatibility(&r, &subject, Some(version), &q, headers, body).await
}

async fn compatibility_with_all(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Query(q): Query,
    headers: HeaderMap,
    body: Body,
) -> Reply<Json<CompatibilityResponse>> {
    compatibility(&r, &subject, None, &q, headers, body).await
}

/// The settings a `PUT /config` body asks for.
fn config_update(request: &ConfigRequest) -> Result<SubjectConfig> {
    request.check_supported()?;
    let update = SubjectConfig {
        compatibility: request
            .compatibility
            .as_deref()
            .map(parse_compatibility)
            .transpose()?,
        alias: request.alias.clone(),
        normalize: request.normalize,
    };
    if update == SubjectConfig::default() {
        return Err(ApiError::invalid_compatibility(
            "(missing: send {\"compatibility\": \"BACKWARD\"}, {\"alias\": \"SUBJECT\"} or {\"normalize\": true})",
        ));
    }
    Ok(update)
}

fn config_request(config: &SubjectConfig) -> Json<ConfigRequest> {
    Json(ConfigRequest {
        compatibility: config.compatibility.map(|c| c.as_str().to_owned()),
        alias: config.alias.clone(),
        normalize: config.normalize,
        ..ConfigRequest::default()
    })
}

/// The global settings, with the default level when none is set.
fn global_body(config: Option<&SubjectConfig>) -> ConfigBody {
    let mut config = config.cloned().unwrap_or_default();
    config.compatibility = Some(config.compatibility.unwrap_or_default());
    config.body()
}

async fn global_config(State(r): State<Registry>) -> Json<ConfigBody> {
    Json(global_body(r.state().subject_config(None)))
}

async fn set_global_config(
    State(r): State<Registry>,
    headers: HeaderMap,
    body: Body,
) -> Reply<Json<ConfigRequest>> {
    let request: ConfigRequest = read_body(&headers, body).await?;
    let update = config_update(&request)?;
    let config = r.write(|s| s.plan_set_config(None, &update)).await?;
    Ok(config_request(&config))
}

async fn delete_global_config(State(r): State<Registry>) -> Reply<Json<ConfigBody>> {
    let previous = r.write(|s| s.plan_delete_config(None)).await?;
    Ok(Json(global_body(Some(&previous))))
}

async fn subject_config(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Query(q): Query,
) -> Reply<Json<ConfigBody>> {
    let subject = in_default_context(&subject)?;
    let state = r.state();
    match state.subject_config(Some(subject)) {
        Some(config) if q.flag(&["defaultToGlobal"])? => {
            let mut merged = config.clone();
            merged.compatibility = Some(state.effective_config(subject));
            Ok(Json(merged.body()))
        }
        Some(config) => Ok(Json(config.body())),
        None if q.flag(&["defaultToGlobal"])? => Ok(Json(global_body(state.subject_config(None)))),
        None => Err(Failure(ApiError::subject_has_no_config(subject))),
    }
}

async fn set_subject_config(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    principal: Option<axum::Extension<Principal>>,
    headers: HeaderMap,
    body: Body,
) -> Reply<Json<ConfigRequest>> {
    let request: ConfigRequest = read_body(&headers, body).await?;
    let update = config_update(&request)?;
    let subject = in_default_context(&subject)?.to_owned();
    // an alias points only at a subject its owner may write
    if let Some(target) = &request.alias {
        may_write(
            principal.as_ref().map(|p| &p.0),
            in_default_context(target)?,
        )?;
    }
    let config = r
        .write(|s| s.plan_set_config(Some(&subject), &update))
        .await?;
    Ok(config_request(&config))
}

async fn delete_subject_config(
    State(r): State<Registry>,
    Path(subject): Path<String>,
) -> Reply<Json<ConfigBody>> {
    let subject = in_default_context(&subject)?.to_owned();
    let previous = r.write(|s| s.plan_delete_config(Some(&subject))).await?;
    Ok(Json(previous.body()))
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
    Query(q): Query,
    headers: HeaderMap,
    body: Body,
) -> Reply<Json<ModeBody>> {
    q.flag(&["force"])?;
    let request: ModeBody = read_body(&headers, body).await?;
    let mode = Mode::from_str(&request.mode)?;
    r.write(|s| s.plan_set_mode(None, mode))
        .await
        .map(mode_body)
        .map_err(Failure)
}

async fn subject_mode(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Query(q): Query,
) -> Reply<Json<ModeBody>> {
    let subject = in_default_context(&subject)?;
    let state = r.state();
    match state.mode(Some(subject)) {
        Some(mode) => Ok(mode_body(mode)),
        None if q.flag(&["defaultToGlobal"])? => Ok(mode_body(state.effective_mode(subject))),
        None => Err(Failure(ApiError::subject_has_no_mode(subject))),
    }
}

async fn set_subject_mode(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Query(q): Query,
    headers: HeaderMap,
    body: Body,
) -> Reply<Json<ModeBody>> {
    q.flag(&["force"])?;
    let request: ModeBody = read_body(&headers, body).await?;
    let mode = Mode::from_str(&request.mode)?;
    let subject = in_default_context(&subject)?.to_owned();
    r.write(|s| s.plan_set_mode(Some(&subject), mode))
        .await
        .map(mode_body)
        .map_err(Failure)
}

async fn delete_subject_mode(
    State(r): State<Registry>,
    Path(subject): Path<String>,
) -> Reply<Json<ModeBody>> {
    let subject = in_default_context(&subject)?.to_owned();
    r.write(|s| s.plan_delete_mode(&subject))
        .await
        .map(mode_body)
        .map_err(Failure)
}

/// `GET /contexts`: the default context only.
async fn contexts(Query(q): Query) -> Reply<Json<Vec<&'static str>>> {
    Ok(Json(q.page()?.of(["."])))
}

/// `GET /v1/metadata/id`: the Kafka cluster the registry keeps its state in.
async fn cluster_id(State(r): State<Registry>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "scope": {
            "path": [],
            "clusters": {
                "kafka-cluster": r.cluster_id(),
                "schema-registry-cluster": "schema-registry",
            }
        }
    }))
}

/// `GET /v1/metadata/version`.
async fn server_version() -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "commitId": "unknown",
    }))
}

/// Narrows associations by `resourceType` and `associationType`, then pages them.
fn associations_answer(mut found: Vec<Association>, q: &Params) -> Result<Json<Vec<Association>>> {
    if let Some(kind) = q.text(&["resourceType"]).filter(|k| !k.is_empty()) {
        found.retain(|a| a.resource_type.eq_ignore_ascii_case(kind));
    }
    let kinds = q.all("associationType");
    if !kinds.is_empty() {
        found.retain(|a| {
            kinds
                .iter()
                .any(|k| a.association_type.eq_ignore_ascii_case(k))
        });
    }
    Ok(Json(q.page()?.of(found)))
}

async fn associations_of_topic(
    State(r): State<Registry>,
    Path((_namespace, name)): Path<(String, String)>,
    Query(q): Query,
) -> Reply<Json<Vec<Association>>> {
    let found = r.state().associations(Some(&name), None);
    associations_answer(found, &q).map_err(Failure)
}

async fn associations_of_topic_id(
    State(r): State<Registry>,
    Path(id): Path<String>,
    Query(q): Query,
) -> Reply<Json<Vec<Association>>> {
    let found = r.state().associations(Some(&id), None);
    associations_answer(found, &q).map_err(Failure)
}

async fn associations_of_subject(
    State(r): State<Registry>,
    Path(subject): Path<String>,
    Query(q): Query,
) -> Reply<Json<Vec<Association>>> {
    let subject = in_default_context(&subject)?.to_owned();
    let found = r.state().associations(None, Some(&subject));
    associations_answer(found, &q).map_err(Failure)
}

/// `key` or `value`, as an association type names them.
fn association_kind(kind: Option<&str>) -> Result<&'static str> {
    match kind.unwrap_or("value") {
        k if k.eq_ignore_ascii_case("value") => Ok("value"),
        k if k.eq_ignore_ascii_case("key") => Ok("key"),
        other => Err(ApiError::bad_request(format!(
            "associationType '{other}' is not one of key, value"
        ))),
    }
}

/// Creates (or updates) a topic's associations: each is the alias `<topic>-<type>` of its
/// subject, after the schema given, if any, is registered under the subject.
async fn associate(
    r: &Registry,
    mut request: api::AssociationRequest,
) -> Reply<Json<api::AssociationRequest>> {
    if let Some(kind) = request.resource_type.as_deref() {
        if !kind.eq_ignore_ascii_case("topic") {
            return Err(ApiError::bad_request(format!(
                "resourceType '{kind}' is not served; associations are of topics"
            ))
            .into());
        }
    }
    let topic = request
        .resource_name
        .clone()
        .or_else(|| request.resource_id.clone())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::bad_request("the body names no topic (resourceName)"))?;
    for info in &mut request.associations {
        let kind = association_kind(info.association_type.as_deref())?;
        let subject = info
            .subject
            .as_deref()
            .map(in_default_context)
            .transpose()?
            .map(str::to_owned)
            .ok_or_else(|| ApiError::bad_request("an association names no subject"))?;
        if let Some(schema) = info.schema.take() {
            let options = Options {
                normalize: info.normalize.unwrap_or(false),
                force: false,
            };
            r.write(|s| s.plan_register_with(&subject, &schema, options))
                .await?;
        }
        let alias = format!("{topic}-{kind}");
        r.write(|s| s.plan_associate(&alias, &subject)).await?;
        info.association_type = Some(kind.to_owned());
        info.subject = Some(subject);
        info.normalize = None;
    }
    request.resource_id = Some(request.resource_id.take().unwrap_or_else(|| topic.clone()));
    request.resource_name = Some(topic);
    request.resource_namespace = Some(
        request
            .resource_namespace
            .take()
            .unwrap_or_else(|| "-".into()),
    );
    request.resource_type = Some("topic".into());
    Ok(Json(request))
}

async fn create_associations(
    State(r): State<Registry>,
    headers: HeaderMap,
    body: Body,
) -> Reply<Json<api::AssociationRequest>> {
    let request = read_body(&headers, body).await?;
    associate(&r, request).await
}

async fn update_associations(
    State(r): State<Registry>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Reply<Json<api::AssociationRequest>> {
    let mut request: api::AssociationRequest = read_body(&headers, body).await?;
    request.resource_id = Some(id.clone());
    request.resource_name.get_or_insert(id);
    associate(&r, request).await
}

/// Removes a topic's associations (the aliases of its key and value subjects, or of the types
/// given); the subjects and their schemas stay.
async fn delete_associations(
    State(r): State<Registry>,
    Path(id): Path<String>,
    Query(q): Query,
) -> Reply<StatusCode> {
    let mut kinds = q
        .all("associationType")
        .into_iter()
        .map(|k| association_kind(Some(k)))
        .collect::<Result<Vec<_>>>()?;
    if kinds.is_empty() {
        kinds = vec!["key", "value"];
    }
    let mut removed = false;
    for kind in kinds {
        let alias = format!("{id}-{kind}");
        removed |= r.write(|s| Ok(s.plan_remove_alias(&alias))).await?;
    }
    if !removed {
        return Err(Failure(ApiError::association_not_found(format!(
            "topic '{id}' has none"
        ))));
    }
    Ok(StatusCode::NO_CONTENT)
}
