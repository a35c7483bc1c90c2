//! `meshline gateway`: the stream gateway and the HTTP ingress, against a running Kafka cluster
//! and schema registry. `meshline up` runs the same with its own broker and registry.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use anyhow::Context as _;
use clap::Args;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{parse_listen, ConfigArgs, DEFAULT_HTTP, DEFAULT_KAFKA, DEFAULT_REGISTRY_URL};
use crate::{
    auth::{Tokens, PLATFORM},
    broker,
    gateway::{
        self,
        http::{Ingress, IngressConfig},
        Contracts, DeliveryMode, Metrics, StreamConfig,
    },
    health::Readiness,
    product::{Catalog, HumanDuration},
    registry::client::Client,
    server,
    telemetry::HttpMetrics,
};

/// Gateway settings shared by `meshline gateway` and `meshline up`.
#[derive(Debug, Clone, Args)]
pub struct GatewayOptions {
    /// Deliver outputs and offsets in Kafka transactions with this `transactional.id` (one per
    /// gateway instance; needs a broker with transactions, not the embedded one).
    #[arg(long, env = "MESHLINE_TRANSACTIONAL_ID")]
    pub transactional_id: Option<String>,
    /// The gateways' consumer group (every instance of one deployment shares it).
    #[arg(long, default_value = "meshline-gateway")]
    pub gateway_group: String,
    /// Tokens file of the HTTP ingress and of schema registry writes (principals and SHA-256
    /// digests of their tokens; principal `platform` administers the registry). Without one, a
    /// token per domain and one for `platform` are generated and printed at start.
    #[arg(long, env = "MESHLINE_TOKENS")]
    pub tokens: Option<PathBuf>,
    /// Drop HTTP events whose (source, id) was written within this window, e.g. `10m`.
    #[arg(long)]
    pub dedupe_window: Option<HumanDuration>,
    /// How long events whose schema id is not cached wait for an unreachable registry before
    /// they go to the dead-letter topic as `schema_unavailable` (replay them once it is back).
    #[arg(long, default_value = "2m")]
    pub schema_wait: HumanDuration,
    /// Events per second each domain may send over HTTP (also its largest burst); over it,
    /// requests get 429 and nothing is written. No limit by default.
    #[arg(long)]
    pub rate_limit: Option<std::num::NonZeroU32>,
    /// PEM certificate chain: the gateway's HTTP server (ingress, catalog, `/metrics`) speaks
    /// HTTPS (TLS by rustls) instead of HTTP. Needs --tls-key.
    #[arg(long, requires = "tls_key", env = "MESHLINE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert", env = "MESHLINE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Largest HTTP request body, in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
}

/// Arguments of `meshline gateway`.
#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Kafka bootstrap servers.
    #[arg(long, default_value = DEFAULT_KAFKA, env = "MESHLINE_BOOTSTRAP")]
    pub bootstrap: String,
    /// Schema registry URL.
    #[arg(long, default_value = DEFAULT_REGISTRY_URL, env = "MESHLINE_REGISTRY_URL")]
    pub registry_url: String,
    /// Address of the HTTP server (ingress, `/metrics`).
    #[arg(long, default_value = DEFAULT_HTTP, value_parser = parse_listen)]
    pub http_listen: SocketAddr,
    /// Gateway settings.
    #[command(flatten)]
    pub gateway: GatewayOptions,
    /// Descriptors.
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// A started gateway: its HTTP routes (ingress and `/metrics`) and its stream task.
pub(super) struct Started {
    pub router: axum::Router,
    pub stream: JoinHandle<()>,
    /// The registry the HTTP server's `/metrics` renders.
    pub metrics: prometheus::Registry,
    /// The HTTP server's readiness (`/readyz`): the gateway holds ingress partitions.
    pub readiness: Readiness,
}

/// The tokens of `--tokens FILE`, or one generated for each domain of `catalog` and one for
/// the `platform` principal (shown once: the second value).
pub(super) fn tokens(
    options: &GatewayOptions,
    catalog: &Catalog,
) -> anyhow::Result<(Tokens, Vec<(String, String)>)> {
    Ok(match &options.tokens {
        Some(path) => (Tokens::load(path)?, Vec::new()),
        None => {
            let mut principals: Vec<&str> = catalog
                .iter()
                .map(|p| p.descriptor.domain.as_str())
                .collect();
            principals.sort_unstable();
            principals.dedup();
            principals.push(PLATFORM);
            Tokens::generate(principals)
        }
    })
}

/// Starts the stream gateway and builds the HTTP ingress routes (merged with `routes`).
pub(super) async fn start(
    options: &GatewayOptions,
    tokens: Tokens,
    bootstrap: &str,
    registry_url: &str,
    catalog: Arc<Catalog>,
    routes: axum::Router,
    stop: CancellationToken,
) -> anyhow::Result<Started> {
    let registry = Client::new(registry_url);
    let contracts = Arc::new(
        Contracts::load(registry, catalog.iter().map(|p| p.id().to_owned()))
            .await
            .context("loading the products' registered contracts")?
            .with_schema_wait(options.schema_wait.0),
    );
    let http_metrics = HttpMetrics::new("gateway").context("creating the HTTP metrics")?;
    let metrics =
        Metrics::new(http_metrics.registry()).context("creating the gateway's metrics")?;
    let mut stream_config = StreamConfig::new(bootstrap);
    stream_config.group = options.gateway_group.clone();
    if let Some(id) = &options.transactional_id {
        stream_config.mode = DeliveryMode::Transactional { id: id.clone() };
    }
    let stream = tokio::spawn(gateway::run_stream(
        stream_config,
        contracts.clone(),
        metrics.clone(),
        stop,
    ));
    let ingress_config = IngressConfig {
        max_body_bytes: options.max_body_bytes,
        dedupe_window: options.dedupe_window.map(|d| d.0),
        rate_limit: options.rate_limit,
        ..IngressConfig::default()
    };
    let mut producer_config = broker::producer_config(bootstrap);
    producer_config
        .set("client.id", "meshline-gateway-http")
        .set(
            "message.timeout.ms",
            ingress_config.ack_timeout.as_millis().to_string(),
        )
        .set(
            "queue.buffering.max.messages",
            ingress_config.max_queued.to_string(),
        );
    let producer = producer_config
        .create()
        .context("creating the HTTP ingress producer")?;
    let held = metrics.clone();
    let ingress = Ingress::new(
        ingress_config,
        catalog,
        contracts,
        tokens,
        producer,
        registry_url,
        metrics,
    );
    let readiness = Readiness::default();
    readiness.add("gateway holds ingress partitions", move || {
        held.assigned_partitions() > 0
    });
    let router = http_metrics.instrument(
        routes
            .merge(gateway::http::router(ingress))
            .merge(readiness.routes()),
    );
    Ok(Started {
        router,
        stream,
        metrics: http_metrics.registry().clone(),
        readiness,
    })
}

impl GatewayOptions {
    /// The TLS identity of the gateway's HTTP server, if one is configured.
    pub fn tls(&self) -> anyhow::Result<Option<server::Tls>> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Ok(Some(server::Tls::load(cert, key)?)),
            _ => Ok(None),
        }
    }

    /// `https` with TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls_cert.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

/// Prints generated tokens and how to use them.
pub(super) fn print_tokens(
    generated: &[(String, String)],
    http: &str,
    example_product: Option<&str>,
) {
    if generated.is_empty() {
        return;
    }
    println!(
        "  tokens for the HTTP ingress and schema registry writes (generated for this run; pass --tokens FILE to keep your own):"
    );
    for (principal, token) in generated {
        println!("    {principal:<12} {token}");
    }
    if let (Some(product), Some((_, token))) = (example_product, generated.first()) {
        println!("  Try: curl -i -X POST {http}/v1/products/{product}/events \\");
        println!("         -H 'Authorization: Bearer {token}' -H 'Content-Type: application/cloudevents+json' -d @event.json");
    }
}

/// Runs the gateway until Ctrl-C or SIGTERM.
pub async fn run(args: GatewayArgs) -> anyhow::Result<ExitCode> {
    let catalog = Arc::new(args.config.load()?);
    let stop = CancellationToken::new();
    super::up::spawn_signal_handler(stop.clone())?;
    broker::check_reachable(&args.bootstrap, Duration::from_secs(10)).await?;
    let listener =
        server::bind(args.http_listen, "the gateway HTTP server", "--http-listen").await?;
    let (tokens, generated) = tokens(&args.gateway, &catalog)?;
    let started = start(
        &args.gateway,
        tokens,
        &args.bootstrap,
        &args.registry_url,
        catalog.clone(),
        axum::Router::new(),
        stop.clone(),
    )
    .await?;
    let tls = args.gateway.tls()?;
    let scheme = args.gateway.scheme();
    let served = server::spawn_with(listener, tls.as_ref(), started.router, stop.clone());
    println!(
        "gateway: {} product(s), Kafka {}, registry {}, HTTP on {scheme}://{}",
        catalog.len(),
        args.bootstrap,
        args.registry_url,
        args.http_listen
    );
    print_tokens(
        &generated,
        &format!("{scheme}://{}", args.http_listen),
        catalog.iter().next().map(|p| p.id()),
    );
    started.stream.await.ok();
    served.await.ok();
    println!("gateway stopped");
    Ok(ExitCode::SUCCESS)
}
