//! The views written as Iceberg tables, served read-only through the Iceberg REST catalog API
//! (the endpoints a reader needs: config, namespaces, tables, load table), under `/iceberg`:
//! pyiceberg's `RestCatalog`, Spark's and Trino's REST catalogs load a view's table by name,
//! with no catalog server of their own.
//!
//! Names: a product is the two-level namespace `(domain, name)` (`player.play-events` is
//! `("player", "play-events")`), a view its table. A table is listed once its first window is
//! committed. The snapshotter alone commits these tables: every write endpoint answers `405`
//! with the API's error model.

use axum::{
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use serde::Deserialize;
use serde_json::{json, Value};

use super::Service;
use crate::{
    product::{Product, ProductId, TableFormat},
    snapshot::listing,
};

/// The separator of a namespace's levels in a path (the API's default, `%1F`).
const SEPARATOR: char = '\u{1f}';

/// The read endpoints this catalog serves (the config response lists them, so a client
/// never tries another).
const ENDPOINTS: [&str; 6] = [
    "GET /v1/{prefix}/namespaces",
    "GET /v1/{prefix}/namespaces/{namespace}",
    "HEAD /v1/{prefix}/namespaces/{namespace}",
    "GET /v1/{prefix}/namespaces/{namespace}/tables",
    "GET /v1/{prefix}/namespaces/{namespace}/tables/{table}",
    "HEAD /v1/{prefix}/namespaces/{namespace}/tables/{table}",
];

/// The REST catalog's routes (nested under `/iceberg`).
pub(super) fn router() -> Router<Service> {
    Router::new()
        .route("/v1/config", get(config))
        .route("/v1/namespaces", get(namespaces).post(read_only))
        .route(
            "/v1/namespaces/{namespace}",
            get(namespace).delete(read_only),
        )
        .route(
            "/v1/namespaces/{namespace}/tables",
            get(tables).post(read_only),
        )
        .route(
            "/v1/namespaces/{namespace}/tables/{table}",
            get(table).post(read_only).delete(read_only),
        )
}

/// An error as the API shapes it (`ErrorModel`).
#[derive(Debug)]
struct RestError {
    status: StatusCode,
    /// The exception type a client maps to its own.
    kind: &'static str,
    message: String,
}

impl RestError {
    fn new(status: StatusCode, kind: &'static str, message: String) -> Self {
        Self {
            status,
            kind,
            message,
        }
    }
}

impl IntoResponse for RestError {
    fn into_response(self) -> Response {
        let body = json!({ "error": {
            "message": self.message,
            "type": self.kind,
            "code": self.status.as_u16(),
        } });
        (self.status, Json(body)).into_response()
    }
}

async fn read_only() -> RestError {
    RestError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "UnsupportedOperationException",
        "this catalog is read-only: meshline's snapshotter commits these tables".into(),
    )
}

async fn config() -> Json<Value> {
    Json(json!({ "defaults": {}, "overrides": {}, "endpoints": ENDPOINTS }))
}

/// The products with a view written as an Iceberg table.
fn iceberg_products(s: &Service) -> impl Iterator<Item = &Product> {
    s.catalog.iter().filter(|p| {
        p.descriptor
            .views
            .iter()
            .any(|v| v.format == TableFormat::Iceberg)
    })
}

/// The namespace of a product: `[domain, name]`.
fn namespace_of(product: &Product) -> Vec<&str> {
    match ProductId(product.id()).split() {
        Some((domain, name)) => vec![domain, name],
        None => vec![product.id()],
    }
}

/// The product whose namespace `path` names (levels joined by the separator).
fn product_of<'a>(s: &'a Service, path: &str) -> Result<&'a Product, RestError> {
    let levels: Vec<&str> = path.split(SEPARATOR).collect();
    iceberg_products(s)
        .find(|p| namespace_of(p) == levels)
        .ok_or_else(|| {
            RestError::new(
                StatusCode::NOT_FOUND,
                "NoSuchNamespaceException",
                format!(
                    "no namespace {levels:?}: a product with an Iceberg view is its (domain, name), e.g. {:?}",
                    iceberg_products(s).next().map(namespace_of).unwrap_or_default()
                ),
            )
        })
}

/// Query of a namespace listing.
#[derive(Debug, Deserialize)]
struct Parent {
    /// The namespace whose children to list (levels joined by the separator).
    parent: Option<String>,
}

async fn namespaces(State(s): State<Service>, Query(query): Query<Parent>) -> Json<Value> {
    let mut listed: Vec<Vec<&str>> = Vec::new();
    for product in iceberg_products(&s) {
        let namespace = namespace_of(product);
        let child = match &query.parent {
            None => namespace[..1].to_vec(),
            Some(parent) => {
                let parent: Vec<&str> = parent.split(SEPARATOR).collect();
                if namespace.len() <= parent.len() || namespace[..parent.len()] != parent[..] {
                    continue;
                }
                namespace[..=parent.len()].to_vec()
            }
        };
        if !listed.contains(&child) {
            listed.push(child);
        }
    }
    Json(json!({ "namespaces": listed }))
}

async fn namespace(
    State(s): State<Service>,
    Path(path): Path<String>,
) -> Result<Json<Value>, RestError> {
    let product = product_of(&s, &path)?;
    Ok(Json(json!({
        "namespace": namespace_of(product),
        "properties": {
            "product": product.id(),
            "owner": product.descriptor.owner.team,
            "comment": product.descriptor.description,
            "catalog-address": s.address(product.id()),
        },
    })))
}

async fn tables(
    State(s): State<Service>,
    Path(path): Path<String>,
) -> Result<Json<Value>, RestError> {
    let product = product_of(&s, &path)?;
    let mut identifiers = Vec::new();
    for view in product
        .descriptor
        .views
        .iter()
        .filter(|v| v.format == TableFormat::Iceberg)
    {
        if current(&s, product, &view.name).await?.is_some() {
            identifiers.push(json!({
                "namespace": namespace_of(product),
                "name": view.name,
            }));
        }
    }
    Ok(Json(json!({ "identifiers": identifiers })))
}

async fn table(
    State(s): State<Service>,
    Path((path, name)): Path<(String, String)>,
) -> Result<Json<Value>, RestError> {
    let product = product_of(&s, &path)?;
    let no_table =
        |message: String| RestError::new(StatusCode::NOT_FOUND, "NoSuchTableException", message);
    let Some(view) = product
        .descriptor
        .views
        .iter()
        .find(|v| v.name == name && v.format == TableFormat::Iceberg)
    else {
        return Err(no_table(format!(
            "{} has no view `{name}` written as an Iceberg table (its views are at {})",
            product.id(),
            s.address(product.id())
        )));
    };
    match current(&s, product, &view.name).await? {
        Some((location, metadata)) => Ok(Json(json!({
            "metadata-location": location,
            "metadata": metadata,
            "config": {},
        }))),
        None => Err(no_table(format!(
            "view `{name}` of {} has no committed window yet",
            product.id()
        ))),
    }
}

/// The table's current metadata (location and contents), if it has any.
async fn current(
    s: &Service,
    product: &Product,
    view: &str,
) -> Result<Option<(String, Value)>, RestError> {
    let Some(store) = &s.snapshots else {
        return Ok(None);
    };
    listing::iceberg_metadata(store, product.id(), view)
        .await
        .map_err(|e| {
            RestError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailableException",
                format!("reading the table's metadata: {e}"),
            )
        })
}
