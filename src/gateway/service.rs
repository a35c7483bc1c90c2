//! The gateway of one deployment assembled from its settings: the stream task and the HTTP
//! ingress routes, sharing the registered contracts and the metrics. `meshline gateway` and
//! `meshline up` both start it here.

use std::{sync::Arc, time::Duration};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{
    http::{self, Ingress, IngressConfig},
    Contracts, Error, Metrics, Result, StreamConfig,
};
use crate::{
    auth::Tokens, broker, health::Readiness, product::Catalog, registry::client::Client,
    telemetry::HttpMetrics,
};

/// What a gateway needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// The stream's settings: bootstrap servers, consumer group, delivery mode.
    pub stream: StreamConfig,
    /// Schema registry URL.
    pub registry_url: String,
    /// The HTTP ingress' settings.
    pub ingress: IngressConfig,
    /// How long events whose schema id is not cached wait for an unreachable registry before
    /// they are dead-lettered as `schema_unavailable`.
    pub schema_wait: Duration,
}

/// A started gateway: its HTTP routes (ingress, `/metrics`, `/healthz`, `/readyz`) and its
/// stream task.
pub struct Started {
    /// The routes, to serve.
    pub router: axum::Router,
    /// The stream task; it ends once `stop` is cancelled.
    pub stream: JoinHandle<()>,
    /// The registry the HTTP server's `/metrics` renders.
    pub metrics: prometheus::Registry,
    /// The HTTP server's readiness (`/readyz`): the gateway holds ingress partitions.
    pub readiness: Readiness,
}

/// Loads the products' registered contracts, starts the stream gateway and builds the HTTP
/// ingress routes (merged with `routes`), until `stop`.
pub async fn start(
    config: Config,
    catalog: Arc<Catalog>,
    tokens: Tokens,
    routes: axum::Router,
    stop: CancellationToken,
) -> Result<Started> {
    let registry = Client::new(&config.registry_url);
    let contracts = Arc::new(
        Contracts::load(registry, catalog.iter().map(|p| p.id().to_owned()))
            .await?
            .with_schema_wait(config.schema_wait),
    );
    let http_metrics = HttpMetrics::new("gateway")?;
    let metrics = Metrics::new(http_metrics.registry())?;
    let mut producer_config = broker::producer_config(&config.stream.bootstrap);
    producer_config
        .set("client.id", "meshline-gateway-http")
        .set(
            "message.timeout.ms",
            config.ingress.ack_timeout.as_millis().to_string(),
        )
        .set(
            "queue.buffering.max.messages",
            config.ingress.max_queued.to_string(),
        );
    let producer = producer_config.create().map_err(|source| Error::Kafka {
        context: "creating the HTTP ingress producer".into(),
        source,
    })?;
    let stream = tokio::spawn(super::run_stream(
        config.stream,
        contracts.clone(),
        metrics.clone(),
        stop,
    ));
    let held = metrics.clone();
    let ingress = Ingress::new(
        config.ingress,
        catalog,
        contracts,
        tokens,
        producer,
        &config.registry_url,
        metrics,
    );
    let readiness = Readiness::default();
    readiness.add("gateway holds ingress partitions", move || {
        held.assigned_partitions() > 0
    });
    let router = http_metrics.instrument(
        routes
            .merge(http::router(ingress))
            .merge(readiness.routes()),
    );
    Ok(Started {
        router,
        stream,
        metrics: http_metrics.registry().clone(),
        readiness,
    })
}
