//! The data product catalog: one document per product, at a stable address, built from its
//! descriptor and the registry's view of its schema; served at `GET /products` and
//! `GET /products/{id}` on the gateway's HTTP server (with each product's upstream and downstream
//! products, and the whole lineage graph at `GET /lineage`), with the views written as Iceberg tables
//! under `/iceberg` (`iceberg`: the Iceberg REST catalog API, read-only). Each product's contract
//! is also served in the standards other tools read: ODCS (`contract.odcs.yaml`), AsyncAPI
//! (`asyncapi.yaml`, [`asyncapi`]), Sloth and OpenSLO (`slos.sloth.yaml`, `slos.openslo.yaml`).

pub mod asyncapi;
mod iceberg;

use std::sync::Arc;

use axum::{
    extract::{Path, Query, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Json, Router,
};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::{
    product::{Catalog, Product, TableFormat, View},
    registry::client::Client,
    snapshot::{self, Store},
};

/// The catalog's shared state.
#[derive(Debug, Clone)]
pub struct Service {
    catalog: Arc<Catalog>,
    registry: Client,
    base_url: String,
    /// The Kafka cluster serving the products (for the documents that name it).
    bootstrap: String,
    snapshots: Option<Store>,
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
    /// A catalog of `catalog`, with addresses under `base_url` (e.g. `http://127.0.0.1:8080`),
    /// schema ids from `registry`, and the products served by the Kafka cluster at `bootstrap`.
    pub fn new(catalog: Arc<Catalog>, registry: Client, base_url: &str, bootstrap: &str) -> Self {
        Self {
            catalog,
            registry,
            base_url: base_url.trim_end_matches('/').to_owned(),
            bootstrap: bootstrap.to_owned(),
            snapshots: None,
        }
    }

    /// Lists the views' snapshots found in `store`.
    pub fn with_snapshots(mut self, store: Store) -> Self {
        self.snapshots = Some(store);
        self
    }

    /// A view as the catalog shows it: its descriptor, its address, its snapshots, and where its
    /// table is (`table`: format and location, for `deltalake`, pyiceberg, Spark or Trino; an
    /// Iceberg table's REST catalog URI and identifier).
    async fn view(&self, id: &str, view: &View) -> Value {
        let mut shown = json!(view);
        shown["address"] = json!(format!("{}/views/{}", self.address(id), view.name));
        shown["snapshots"] = self.snapshots(id, &view.name).await;
        shown["table"] = match (&self.snapshots, view.format) {
            (Some(store), TableFormat::Delta | TableFormat::Iceberg) => json!({
                "format": view.format,
                "location": store.uri(&format!(
                    "{}/{}",
                    snapshot::manifest::product_root(id),
                    view.name
                )),
            }),
            _ => Value::Null,
        };
        if self.snapshots.is_some() && view.format == TableFormat::Iceberg {
            // the same table by name, through the Iceberg REST API (`iceberg`)
            shown["table"]["rest_catalog"] = json!({
                "uri": format!("{}/iceberg", self.base_url),
                "identifier": format!("{id}.{}", view.name),
            });
        }
        shown
    }

    /// The snapshots of a view, newest version of each window, with their catalog addresses.
    async fn snapshots(&self, id: &str, view: &str) -> Value {
        let Some(store) = &self.snapshots else {
            return json!([]);
        };
        match snapshot::listing::list(store, id, view).await {
            Ok(listed) => json!(listed
                .into_iter()
                .map(|l| {
                    let mut entry = json!(l);
                    entry["address"] = json!(format!(
                        "{}/views/{view}/snapshots/{}",
                        self.address(id),
                        l.window
                    ));
                    entry
                })
                .collect::<Vec<_>>()),
            Err(e) => {
                tracing::warn!(product = id, view, error = %e, "catalog: cannot list snapshots");
                json!([])
            }
        }
    }

    /// The stable address of a product.
    pub fn address(&self, id: &str) -> String {
        format!("{}/products/{id}", self.base_url)
    }

    /// The product's schema as registered, and the rules of its registered contract (what the
    /// gateway enforces: a new version registered since `up` shows here), when the registry
    /// answered.
    async fn registered(&self, product: &Product) -> (SchemaRef, Option<Value>) {
        let subject = product.subject();
        let latest = self
            .registry
            .version(&subject, crate::registry::api::VersionId::Latest)
            .await;
        if let Err(e) = &latest {
            tracing::warn!(product = product.id(), error = %e, "catalog: no registered version");
        }
        let latest = latest.ok();
        let rules = latest.as_ref().and_then(|l| l.rule_set.as_ref()).map(|r| {
            let enforced: Vec<_> = crate::registry::contract::rules_of(Some(r))
                .filter(|(_, disabled)| !disabled)
                .map(|(rule, _)| rule)
                .collect();
            json!(enforced)
        });
        let schema = SchemaRef {
            url: format!("{}/subjects/{subject}/versions/latest", self.registry.url()),
            subject,
            id: latest.as_ref().and_then(|l| l.id),
            version: latest.and_then(|l| l.version),
        };
        (schema, rules)
    }

    /// The catalog document of one product.
    pub async fn document(&self, product: &Product) -> Value {
        let d = &product.descriptor;
        let address = self.address(product.id());
        let mut views: Vec<Value> = Vec::new();
        for v in &d.views {
            views.push(self.view(product.id(), v).await);
        }
        let (schema, registered_rules) = self.registered(product).await;
        json!({
            "id": d.id,
            "address": address,
            "domain": d.domain,
            "owner": d.owner,
            "description": d.description,
            "topics": product.topics(),
            "schema": schema,
            "compatibility": d.compatibility,
            "cloudevents": d.cloudevents,
            "rules": registered_rules.unwrap_or_else(|| json!(d.rules)),
            "slos": d.slos,
            "views": views,
            "retention": d.retention,
            "access": d.access,
            "documents": self.documents(product),
            "lineage": self.lineage(product),
        })
    }

    /// The products `product` is computed from and the ones computed from it, with the port
    /// each edge reads.
    fn lineage(&self, product: &Product) -> Value {
        let edge = |id: &str, port: &str| json!({ "product": id, "port": port, "address": self.address(id) });
        json!({
            "upstream": product
                .descriptor
                .inputs
                .iter()
                .map(|i| edge(&i.product, &i.port))
                .collect::<Vec<_>>(),
            "downstream": self
                .catalog
                .downstream_of(product.id())
                .map(|(p, i)| edge(p.id(), &i.port))
                .collect::<Vec<_>>(),
        })
    }

    /// The lineage graph of every product: nodes and the edges from each input to the product
    /// computed from it.
    fn graph(&self) -> Value {
        json!({
            "nodes": self
                .catalog
                .iter()
                .map(|p| json!({ "id": p.id(), "domain": p.descriptor.domain, "address": self.address(p.id()) }))
                .collect::<Vec<_>>(),
            "edges": self
                .catalog
                .iter()
                .flat_map(|p| p.descriptor.inputs.iter().map(move |i| {
                    json!({ "from": i.product, "port": i.port, "to": p.id() })
                }))
                .collect::<Vec<_>>(),
        })
    }

    /// Where the product's contract is served in other standards.
    fn documents(&self, product: &Product) -> Value {
        let address = self.address(product.id());
        let mut documents = json!({
            "odcs": format!("{address}/contract.odcs.yaml"),
            "asyncapi": format!("{address}/asyncapi.yaml"),
        });
        if crate::slo::rules::for_product(product).is_some() {
            documents["sloth"] = json!(format!("{address}/slos.sloth.yaml"));
            documents["openslo"] = json!(format!("{address}/slos.openslo.yaml"));
        }
        documents
    }

    /// The document `name` of `product` as YAML, if the product has one.
    fn standard(&self, product: &Product, name: &str) -> Option<Result<String, String>> {
        let yaml = |value: &Value| serde_norway::to_string(value).map_err(|e| e.to_string());
        Some(match name {
            "contract.odcs.yaml" => yaml(&crate::product::odcs::export(product, &self.bootstrap)),
            "asyncapi.yaml" => yaml(&asyncapi::document(
                product,
                asyncapi::Endpoints {
                    bootstrap: &self.bootstrap,
                    registry: self.registry.url(),
                    catalog: &self.address(product.id()),
                },
            )),
            "slos.sloth.yaml" => {
                let spec = crate::slo::sloth::for_product(product)?;
                crate::slo::sloth::to_yaml(product, &spec).map_err(|e| e.to_string())
            }
            "slos.openslo.yaml" => {
                let docs = crate::slo::openslo::for_product(product);
                if docs.is_empty() {
                    return None;
                }
                crate::slo::openslo::to_yaml(product, &docs).map_err(|e| e.to_string())
            }
            _ => return None,
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
        .route("/lineage", get(graph))
        .route("/products/{id}", get(show))
        .route("/products/{id}/{document}", get(standard))
        .route("/products/{id}/views/{view}", get(view))
        .route("/products/{id}/views/{view}/snapshots", get(view_snapshots))
        .route(
            "/products/{id}/views/{view}/snapshots/{window}",
            get(snapshot_manifest),
        )
        .nest("/iceberg", iceberg::router())
        .with_state(service)
}

async fn list(State(s): State<Service>) -> Json<Value> {
    Json(json!({
        "products": s.catalog.iter().map(|p| s.summary(p)).collect::<Vec<_>>()
    }))
}

async fn graph(State(s): State<Service>) -> Json<Value> {
    Json(s.graph())
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
            let mut view = s.view(&id, v).await;
            view["product"] = json!(s.address(&id));
            Json(view).into_response()
        }
        None => unknown(&s.catalog, &id),
    }
}

/// One of the product's documents in another standard, as YAML.
async fn standard(State(s): State<Service>, Path((id, name)): Path<(String, String)>) -> Response {
    let Some(product) = s.catalog.get(&id) else {
        return unknown(&s.catalog, &id);
    };
    match s.standard(product, &name) {
        Some(Ok(yaml)) => ([(header::CONTENT_TYPE, "application/yaml")], yaml).into_response(),
        Some(Err(e)) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({ "error": format!("writing {name}: {e}") })),
        )
            .into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({
                "error": format!("{id} has no document `{name}`; its documents are listed at {}", s.address(&id)),
                "documents": s.documents(product),
            })),
        )
            .into_response(),
    }
}

fn has_view(s: &Service, id: &str, name: &str) -> bool {
    s.catalog
        .get(id)
        .is_some_and(|p| p.descriptor.views.iter().any(|v| v.name == name))
}

async fn view_snapshots(
    State(s): State<Service>,
    Path((id, name)): Path<(String, String)>,
) -> Response {
    if !has_view(&s, &id, &name) {
        return unknown(&s.catalog, &id);
    }
    Json(json!({ "snapshots": s.snapshots(&id, &name).await })).into_response()
}

/// Query of a snapshot's manifest.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct VersionQuery {
    /// A version other than the newest.
    version: Option<u32>,
}

async fn snapshot_manifest(
    State(s): State<Service>,
    Path((id, name, window)): Path<(String, String, String)>,
    Query(query): Query<VersionQuery>,
) -> Response {
    if !has_view(&s, &id, &name) {
        return unknown(&s.catalog, &id);
    }
    let not_found = |message: String| {
        (StatusCode::NOT_FOUND, Json(json!({ "error": message }))).into_response()
    };
    let Some(store) = &s.snapshots else {
        return not_found("this server does not read a snapshot store".into());
    };
    match snapshot::listing::manifest(store, &id, &name, &window, query.version).await {
        Ok(Some(bytes)) => match serde_json::from_slice::<Value>(&bytes) {
            Ok(manifest) => Json(manifest).into_response(),
            Err(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                Json(json!({ "error": format!("the manifest is not JSON: {e}") })),
            )
                .into_response(),
        },
        Ok(None) => not_found(format!(
            "view `{name}` of {id} has no snapshot of window `{window}` yet; list them at {}/views/{name}/snapshots",
            s.address(&id)
        )),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "error": e.to_string() })),
        )
            .into_response(),
    }
}
