//! The data product catalog: one document per product, at a stable address, built from its
//! descriptor and the registry's view of its schema; served at `GET /products` and
//! `GET /products/{id}` on the gateway's HTTP server.

use std::sync::Arc;

use axum::{
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{
    product::{Catalog, Product},
    registry::client::Client,
};

/// The catalog's shared state.
#[derive(Debug, Clone)]
pub struct Service {
    catalog: Arc<Catalog>,
    registry: Client,
    base_url: String,
}

/// A product's schema, as the catalog shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SchemaRef {
    /// The registry subject (`<id>-value`).
    pub subject: String,
    /// The id of its latest version, when the registry answered.
    pub id: Option<u32>,
    /// Its latest version, when the registry answered.
    pub version: Option<u32>,
    /// Where the registry serves it.
    pub url: String,
}

impl Service {
    /// A catalog of `catalog`, with addresses under `base_url` (e.g. `http://127.0.0.1:8080`)
    /// and schema ids from `registry`.
    pub fn new(catalog: Arc<Catalog>, registry: Client, base_url: &str) -> Self {
        Self {
            catalog,
            registry,
            base_url: base_url.trim_end_matches('/').to_owned(),
        }
    }

    /// The stable address of a product.
    pub fn address(&self, id: &str) -> String {
        format!("{}/products/{id}", self.base_url)
    }

    async fn schema(&self, product: &Product) -> SchemaRef {
        let subject = product.subject();
        let latest = self.registry.latest(&subject).await;
        if let Err(e) = &latest {
            tracing::warn!(product = product.id(), error = %e, "catalog: no schema id");
        }
        let latest = latest.ok();
        SchemaRef {
            url: format!("{}/subjects/{subject}/versions/latest", self.registry.url()),
            subject,
            id: latest.as_ref().map(|l| l.id),
            version: latest.map(|l| l.version),
        }
    }

    /// The catalog document of one product.
    pub async fn document(&self, product: &Product) -> Value {
        let d = &product.descriptor;
        let address = self.address(product.id());
        let views: Vec<Value> = d
            .views
            .iter()
            .map(|v| {
                let mut view = json!(v);
                view["address"] = json!(format!("{address}/views/{}", v.name));
                view
            })
            .collect();
        json!({
            "id": d.id,
            "address": address,
            "domain": d.domain,
            "owner": d.owner,
            "description": d.description,
            "topics": product.topics(),
            "schema": self.schema(product).await,
            "compatibility": d.compatibility,
            "cloudevents": d.cloudevents,
            "rules": d.rules,
            "slos": d.slos,
            "views": views,
            "retention": d.retention,
            "access": d.access,
        })
    }

    fn summary(&self, product: &Product) -> Value {
        let d = &product.descriptor;
        json!({
            "id": d.id,
            "address": self.address(product.id()),
            "domain": d.domain,
            "owner": d.owner.team,
            "description": d.description,
            "topic": product.topics().product,
        })
    }
}

fn unknown(catalog: &Catalog, id: &str) -> Response {
    let error = match catalog.require(id) {
        Err(e) => e.to_string(),
        Ok(_) => format!("no such view of {id}"),
    };
    (StatusCode::NOT_FOUND, Json(json!({ "error": error }))).into_response()
}

/// The catalog's routes.
pub fn router(service: Service) -> Router {
    Router::new()
        .route("/products", get(list))
        .route("/products/{id}", get(show))
        .route("/products/{id}/views/{view}", get(view))
        .with_state(service)
}

async fn list(State(s): State<Service>) -> Json<Value> {
    Json(json!({
        "products": s.catalog.iter().map(|p| s.summary(p)).collect::<Vec<_>>()
    }))
}

async fn show(State(s): State<Service>, Path(id): Path<String>) -> Response {
    match s.catalog.get(&id) {
        Some(product) => Json(s.document(product).await).into_response(),
        None => unknown(&s.catalog, &id),
    }
}

async fn view(State(s): State<Service>, Path((id, name)): Path<(String, String)>) -> Response {
    let found = s
        .catalog
        .get(&id)
        .and_then(|p| p.descriptor.views.iter().find(|v| v.name == name));
    match found {
        Some(v) => {
            let mut view = json!(v);
            view["product"] = json!(s.address(&id));
            view["address"] = json!(format!("{}/views/{name}", s.address(&id)));
            Json(view).into_response()
        }
        None => unknown(&s.catalog, &id),
    }
}
