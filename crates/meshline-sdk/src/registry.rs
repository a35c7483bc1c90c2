//! The registry client of the SDK, the gateway and the snapshotter: the Confluent REST API
//! over HTTP, with caches so the hot path never waits on the network.
//!
//! - id → schema: ids are immutable, so a schema fetched once is kept for the life of the
//!   client ([`Client::cached_schema`] is a read-locked map lookup).
//! - subject → latest version: kept and served for [`Client::LATEST_TTL`]; after that the cached
//!   answer is still served while one background request refreshes it.

use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use apache_avro::Schema;
use serde::de::DeserializeOwned;
use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig};

use meshline_core::{
    product::Compatibility,
    registry::api::{self, ApiError, IdResponse, SchemaBody, SchemaRequest, VersionId},
};

/// Errors of the client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No registry answers.
    #[error("cannot reach the schema registry at {url}: {source}; start it with `meshline up` (or `meshline registry`), or pass `--registry URL`")]
    Unreachable {
        /// The registry URL.
        url: String,
        /// Why.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The registry answered with an error.
    #[error("schema registry at {url}: {source}")]
    Api {
        /// The registry URL.
        url: String,
        /// Its error.
        source: ApiError,
    },
    /// The answer is not what the API documents.
    #[error("schema registry at {url} answered something unexpected: {message}")]
    Unexpected {
        /// The registry URL.
        url: String,
        /// What.
        message: String,
    },
}

impl Error {
    /// Confluent's error code, if the registry answered with one.
    pub fn code(&self) -> Option<u32> {
        match self {
            Self::Api { source, .. } => Some(source.code),
            _ => None,
        }
    }
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The latest version of a subject.
#[derive(Debug, Clone)]
pub struct Latest {
    /// Schema id.
    pub id: u32,
    /// Version number.
    pub version: u32,
    /// The parsed schema.
    pub schema: Arc<Schema>,
}

/// A registry client with caches; cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    url: String,
    http: ureq::Agent,
    /// The `Authorization` header's value, if any.
    authorization: Option<Secret>,
    by_id: RwLock<HashMap<u32, Arc<Schema>>>,
    latest: RwLock<HashMap<String, (Latest, Instant)>>,
    refreshing: std::sync::Mutex<HashSet<String>>,
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Client {
    /// How long a subject's latest version is served without asking the registry.
    pub const LATEST_TTL: Duration = Duration::from_secs(30);

    /// A client of the registry at `url` (e.g. `http://127.0.0.1:8081`), with the settings of
    /// the environment ([`Settings::from_env`]). A setting that cannot be used (an unreadable
    /// CA file) is reported and left out.
    pub fn new(url: &str) -> Self {
        let settings = Settings::from_env().unwrap_or_else(|e| {
            tracing::error!(error = %e, "registry client settings");
            Settings::default()
        });
        Self::with_settings(url, &settings)
    }

    /// A client of the registry at `url` with `settings`.
    pub fn with_settings(url: &str, settings: &Settings) -> Self {
        install_crypto_provider();
        let roots = match settings.roots.is_empty() {
            true => RootCerts::PlatformVerifier,
            false => RootCerts::Specific(Arc::new(
                system_roots()
                    .into_iter()
                    .chain(settings.roots.clone())
                    .collect(),
            )),
        };
        let tls = TlsConfig::builder()
            .root_certs(roots)
            .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .build();
        let http = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            // a registry's error answers carry Confluent's error code: read them
            .http_status_as_error(false)
            .tls_config(tls)
            .build()
            .new_agent();
        Self {
            inner: Arc::new(Inner {
                url: url.trim_end_matches('/').to_owned(),
                http,
                authorization: settings.authorization.clone(),
                by_id: RwLock::default(),
                latest: RwLock::default(),
                refreshing: std::sync::Mutex::default(),
            }),
        }
    }

    /// The registry URL.
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// Sends a request on a blocking thread (the HTTP client is synchronous; answers are small
    /// and cached) and reads Confluent's answer or error.
    async fn call<T: DeserializeOwned>(&self, request: Request) -> Result<T> {
        let url = self.inner.url.clone();
        let target = format!("{url}{}", request.path);
        let (http, authorization) = (
            self.inner.http.clone(),
            self.inner.authorization.as_ref().map(|s| s.0.clone()),
        );
        let unreachable = |source: Box<dyn std::error::Error + Send + Sync>| Error::Unreachable {
            url: url.clone(),
            source,
        };
        let (status, bytes) = tokio::task::spawn_blocking(move || {
            request.send(&http, &target, authorization.as_deref())
        })
        .await
        .map_err(|e| unreachable(Box::new(e)))?
        .map_err(|e| unreachable(Box::new(e)))?;
        if !(200..300).contains(&status) {
            let body: api::ErrorBody =
                serde_json::from_slice(&bytes).map_err(|_| Error::Unexpected {
                    url: url.clone(),
                    message: format!("HTTP {status}: {}", String::from_utf8_lossy(&bytes)),
                })?;
            return Err(Error::Api {
                url,
                source: ApiError {
                    status,
                    code: body.error_code,
                    message: body.message,
                },
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| Error::Unexpected {
            url,
            message: e.to_string(),
        })
    }

    fn get(&self, path: &str) -> Request {
        Request {
            method: Method::Get,
            path: path.to_owned(),
            body: Vec::new(),
        }
    }

    fn with_body(&self, method: Method, path: &str, body: Vec<u8>) -> Request {
        Request {
            method,
            path: path.to_owned(),
            body,
        }
    }

    /// The schema with id `id`, if this client has fetched it before: no I/O.
    pub fn cached_schema(&self, id: u32) -> Option<Arc<Schema>> {
        read(&self.inner.by_id).get(&id).cloned()
    }

    /// The schema with id `id`, from the cache or the registry.
    pub async fn schema(&self, id: u32) -> Result<Arc<Schema>> {
        if let Some(schema) = self.cached_schema(id) {
            return Ok(schema);
        }
        let body = self.schema_body(id).await?;
        self.avro(id, &body).await
    }

    /// The Avro schema of `body`, the registry's answer for id `id`, parsed with its references
    /// and cached under `id`.
    pub async fn avro(&self, id: u32, body: &SchemaBody) -> Result<Arc<Schema>> {
        let schema = Arc::new(self.parse(body).await?);
        write(&self.inner.by_id).insert(id, schema.clone());
        Ok(schema)
    }

    /// The schema with id `id` as the registry answers it (any schema type, not cached).
    pub async fn schema_body(&self, id: u32) -> Result<SchemaBody> {
        self.call(self.get(&format!("/schemas/ids/{id}"))).await
    }

    /// Every schema `body` references, directly or not, dependencies first: each one's
    /// reference name and text (any schema type).
    pub async fn referenced(&self, body: &SchemaBody) -> Result<Vec<(String, String)>> {
        let mut found = Vec::new();
        let mut pending: Vec<_> = body.references.clone();
        let mut seen = HashSet::new();
        while let Some(r) = pending.pop() {
            if !seen.insert((r.subject.clone(), r.version)) {
                continue;
            }
            let referenced = self
                .version(&r.subject, VersionId::Number(r.version))
                .await?;
            pending.extend(referenced.references);
            found.push((r.name, referenced.schema));
        }
        found.reverse();
        Ok(found)
    }

    async fn parse(&self, body: &SchemaBody) -> Result<Schema> {
        let texts: Vec<String> = self
            .referenced(body)
            .await?
            .into_iter()
            .map(|(_, text)| text)
            .collect();
        let parsed = if texts.is_empty() {
            Schema::parse_str(&body.schema).map(Ok)
        } else {
            Schema::parse_str_with_list(&body.schema, &texts).map(|(s, _)| Ok(s))
        };
        parsed.unwrap_or_else(|e| {
            Err(Error::Unexpected {
                url: self.inner.url.clone(),
                message: format!("the registry served a schema apache-avro cannot parse: {e}"),
            })
        })
    }

    /// `GET /subjects`: the subjects with a live version.
    pub async fn subjects(&self) -> Result<Vec<String>> {
        self.call(self.get("/subjects")).await
    }

    /// `GET /subjects/{s}/versions`: the live version numbers, oldest first.
    pub async fn versions(&self, subject: &str) -> Result<Vec<u32>> {
        self.call(self.get(&format!("/subjects/{}/versions", encode(subject))))
            .await
    }

    /// `GET /subjects/{s}/versions/{v}`, uncached.
    pub async fn version(&self, subject: &str, version: VersionId) -> Result<SchemaBody> {
        let v = match version {
            VersionId::Latest => "latest".to_owned(),
            VersionId::Number(n) => n.to_string(),
        };
        self.call(self.get(&format!("/subjects/{}/versions/{v}", encode(subject))))
            .await
    }

    /// The latest version of `subject`, from the cache when it has one (refreshed in the
    /// background once older than [`Client::LATEST_TTL`]).
    pub async fn latest(&self, subject: &str) -> Result<Latest> {
        let cached = read(&self.inner.latest).get(subject).cloned();
        match cached {
            Some((latest, fetched)) => {
                if fetched.elapsed() > Self::LATEST_TTL {
                    self.refresh_in_background(subject);
                }
                Ok(latest)
            }
            None => self.fetch_latest(subject).await,
        }
    }

    fn refresh_in_background(&self, subject: &str) {
        let first = self
            .inner
            .refreshing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(subject.to_owned());
        if !first {
            return;
        }
        let client = self.clone();
        let subject = subject.to_owned();
        tokio::spawn(async move {
            if let Err(e) = client.fetch_latest(&subject).await {
                tracing::warn!(%subject, error = %e, "refreshing the latest schema");
            }
            client
                .inner
                .refreshing
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&subject);
        });
    }

    async fn fetch_latest(&self, subject: &str) -> Result<Latest> {
        let body = self.version(subject, VersionId::Latest).await?;
        let (Some(id), Some(version)) = (body.id, body.version) else {
            return Err(Error::Unexpected {
                url: self.inner.url.clone(),
                message: "a subject version without id or version".into(),
            });
        };
        let schema = match self.cached_schema(id) {
            Some(s) => s,
            None => {
                let s = Arc::new(self.parse(&body).await?);
                write(&self.inner.by_id).insert(id, s.clone());
                s
            }
        };
        let latest = Latest {
            id,
            version,
            schema,
        };
        write(&self.inner.latest).insert(subject.to_owned(), (latest.clone(), Instant::now()));
        Ok(latest)
    }

    /// Registers a schema under `subject` and answers its id.
    pub async fn register(&self, subject: &str, request: &SchemaRequest) -> Result<u32> {
        let body = serde_json::to_vec(request).unwrap_or_default();
        let answer: IdResponse = self
            .call(self.with_body(
                Method::Post,
                &format!("/subjects/{}/versions", encode(subject)),
                body,
            ))
            .await?;
        write(&self.inner.latest).remove(subject);
        Ok(answer.id)
    }

    /// Sets the compatibility level of `subject`.
    pub async fn set_compatibility(&self, subject: &str, level: Compatibility) -> Result<()> {
        self.set_config(
            subject,
            api::ConfigRequest {
                compatibility: Some(level.as_str().into()),
                ..Default::default()
            },
        )
        .await
    }

    /// Makes `alias` stand for `subject` (Confluent's subject aliases).
    pub async fn set_alias(&self, alias: &str, subject: &str) -> Result<()> {
        self.set_config(
            alias,
            api::ConfigRequest {
                alias: Some(subject.to_owned()),
                ..Default::default()
            },
        )
        .await
    }

    async fn set_config(&self, subject: &str, request: api::ConfigRequest) -> Result<()> {
        let body = serde_json::to_vec(&request).unwrap_or_default();
        let _: api::ConfigRequest = self
            .call(self.with_body(Method::Put, &format!("/config/{}", encode(subject)), body))
            .await?;
        Ok(())
    }
}

/// How meshline's clients reach a registry: extra CA certificates (a registry served over HTTPS
/// with a private CA) and credentials (a registry whose reads need them, or any other
/// Confluent-compatible registry).
#[derive(Debug, Clone, Default)]
pub struct Settings {
    roots: Vec<Certificate<'static>>,
    authorization: Option<Secret>,
}

/// A credential: shown as `<redacted>` by `Debug`, so that no log or error prints it.
#[derive(Clone)]
struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Settings {
    /// From the environment: `MESHLINE_REGISTRY_CA_FILE` (PEM certificates to trust besides the
    /// system's), and `MESHLINE_REGISTRY_TOKEN` (sent as a bearer token) or
    /// `MESHLINE_REGISTRY_USER_INFO` (`USER:PASSWORD`, sent as basic credentials, as Confluent's
    /// `basic.auth.user.info`).
    pub fn from_env() -> std::result::Result<Self, String> {
        let mut settings = Self::default();
        if let Ok(path) = std::env::var("MESHLINE_REGISTRY_CA_FILE") {
            let pem = std::fs::read(&path)
                .map_err(|e| format!("cannot read MESHLINE_REGISTRY_CA_FILE {path}: {e}"))?;
            settings = settings
                .trusting(&pem)
                .map_err(|e| format!("MESHLINE_REGISTRY_CA_FILE {path}: {e}"))?;
        }
        if let Ok(token) = std::env::var("MESHLINE_REGISTRY_TOKEN") {
            settings = settings.bearer(&token);
        } else if let Ok(user_info) = std::env::var("MESHLINE_REGISTRY_USER_INFO") {
            settings = settings.basic(&user_info);
        }
        Ok(settings)
    }

    /// Trusts the PEM certificates of `pem` too.
    pub fn trusting(mut self, pem: &[u8]) -> std::result::Result<Self, String> {
        let mut certificates = Vec::new();
        for item in ureq::tls::parse_pem(pem) {
            match item.map_err(|e| format!("not PEM certificates: {e}"))? {
                PemItem::Certificate(c) => certificates.push(c),
                _ => continue,
            }
        }
        if certificates.is_empty() {
            return Err("no PEM certificate in it".into());
        }
        self.roots.extend(certificates);
        Ok(self)
    }

    /// Sends `token` as a bearer token.
    pub fn bearer(mut self, token: &str) -> Self {
        self.authorization = Some(Secret(format!("Bearer {}", token.trim())));
        self
    }

    /// Sends `USER:PASSWORD` as basic credentials.
    pub fn basic(mut self, user_info: &str) -> Self {
        use base64::Engine as _;
        let encoded = base64::engine::general_purpose::STANDARD.encode(user_info.trim());
        self.authorization = Some(Secret(format!("Basic {encoded}")));
        self
    }
}

/// Chooses rustls' crypto provider (ring) for every HTTP client of the process that uses the
/// process default: where a dependency tree compiles two (ring and aws-lc-rs), rustls cannot
/// choose one itself. Call before creating such a client; later calls do nothing.
pub fn install_crypto_provider() {
    let _already_installed = rustls::crypto::ring::default_provider().install_default();
}

/// The system's trusted certificates, to trust a registry's CA besides them. Unreadable ones
/// are left out (as the system's own verifier would).
fn system_roots() -> Vec<Certificate<'static>> {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::warn!(error = %e, "reading the system's certificates");
    }
    found
        .certs
        .iter()
        .map(|c| Certificate::from_der(c.as_ref()).to_owned())
        .collect()
}

/// What a request writes.
#[derive(Debug, Clone, Copy)]
enum Method {
    Get,
    Post,
    Put,
}

/// One request to the registry.
#[derive(Debug)]
struct Request {
    method: Method,
    path: String,
    /// The JSON body (empty for `GET`).
    body: Vec<u8>,
}

impl Request {
    /// Sends it to `url`, blocking: the answer's status and body.
    fn send(
        self,
        http: &ureq::Agent,
        url: &str,
        authorization: Option<&str>,
    ) -> std::result::Result<(u16, Vec<u8>), ureq::Error> {
        let mut response = match self.method {
            Method::Get => {
                let mut request = http.get(url).header("Accept", api::CONTENT_TYPE);
                if let Some(value) = authorization {
                    request = request.header("Authorization", value);
                }
                request.call()?
            }
            Method::Post | Method::Put => {
                let mut request = match self.method {
                    Method::Put => http.put(url),
                    _ => http.post(url),
                }
                .header("Accept", api::CONTENT_TYPE)
                .header("Content-Type", api::CONTENT_TYPE);
                if let Some(value) = authorization {
                    request = request.header("Authorization", value);
                }
                request.send(&self.body[..])?
            }
        };
        let status = response.status().as_u16();
        Ok((status, response.body_mut().read_to_vec()?))
    }
}

/// Percent-encodes a subject for a path segment.
fn encode(subject: &str) -> String {
    url::form_urlencoded::byte_serialize(subject.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cached_schema_needs_no_registry() {
        let client = Client::new("http://127.0.0.1:1/");
        assert_eq!(client.url(), "http://127.0.0.1:1");
        assert!(client.cached_schema(1).is_none());
        write(&client.inner.by_id).insert(1, Arc::new(Schema::String));
        assert_eq!(*client.cached_schema(1).unwrap(), Schema::String);
    }

    #[test]
    fn subjects_are_encoded_for_paths() {
        assert_eq!(
            encode("player.play-events-value"),
            "player.play-events-value"
        );
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }

    #[test]
    fn credentials_never_show_in_debug_output() {
        let settings = Settings::default().bearer("mlt_topsecret");
        let client =
            Client::with_settings("http://127.0.0.1:1", &settings.clone().basic("u:pw_secret"));
        for shown in [format!("{settings:?}"), format!("{client:?}")] {
            assert!(
                !shown.contains("topsecret") && !shown.contains("pw_secret"),
                "{shown}"
            );
            assert!(shown.contains("<redacted>"), "{shown}");
        }
    }
}
