//! `meshline gateway`: the stream gateway and the HTTP ingress, against a running Kafka cluster
//! and schema registry. `meshline up` runs the same with its own broker and registry.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use anyhow::Context as _;
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::{
    gateway::lineage::GatewayLineage,
    lineage::{Lineage, LineageArgs, Naming},
};

use super::{
    parse_listen, print_tokens, reachable, spawn_signal_handler, tokens, ConfigArgs, TokensOut,
    DEFAULT_HTTP, DEFAULT_KAFKA, DEFAULT_REGISTRY_URL,
};
use crate::{
    broker, catalog,
    gateway::{self, http::IngressConfig, DeliveryMode, StreamConfig},
    product::HumanDuration,
    registry::client::Client,
    server,
    snapshot::Store,
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
    /// token per domain and one for `platform` are generated, written to a file only its owner
    /// reads (its path printed at start; `up --demo` prints the tokens themselves).
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
    /// PEM certificate chain: the gateway's HTTP server (ingress, catalog, `/metrics`) and, under
    /// `up`, the schema registry speak HTTPS (TLS by rustls) instead of HTTP; meshline's clients
    /// of the registry trust the CA certificates of `MESHLINE_REGISTRY_CA_FILE`. Needs --tls-key.
    #[arg(long, requires = "tls_key", env = "MESHLINE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert", env = "MESHLINE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Largest HTTP request body, in bytes.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub max_body_bytes: usize,
    /// Limits of the HTTP servers (under `up`, every one).
    #[command(flatten)]
    pub http_limits: super::HttpLimitsArgs,
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
    /// Base URL of product addresses in the catalog (default: `http(s)://` + `--http-listen`).
    #[arg(long, env = "MESHLINE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// The snapshotters' store (their `--snapshots`: a directory, `file:///dir` or
    /// `s3://bucket/prefix`): the catalog lists each view's snapshots from it and serves its
    /// Iceberg views through the Iceberg REST catalog API (`/iceberg`); without it the catalog
    /// serves products, contracts and lineage.
    #[arg(long, env = "MESHLINE_SNAPSHOTS")]
    pub snapshots: Option<String>,
    /// Gateway settings.
    #[command(flatten)]
    pub gateway: GatewayOptions,
    /// OpenLineage events.
    #[command(flatten)]
    pub lineage: LineageArgs,
    /// Descriptors.
    #[command(flatten)]
    pub config: ConfigArgs,
}

impl GatewayOptions {
    /// The gateway's settings, for the cluster at `bootstrap` and the registry at
    /// `registry_url`.
    pub fn config(&self, bootstrap: &str, registry_url: &str) -> gateway::Config {
        let mut stream = StreamConfig::new(bootstrap);
        stream.group = self.gateway_group.clone();
        if let Some(id) = &self.transactional_id {
            stream.mode = DeliveryMode::Transactional { id: id.clone() };
        }
        gateway::Config {
            stream,
            registry_url: registry_url.to_owned(),
            ingress: IngressConfig {
                max_body_bytes: self.max_body_bytes,
                dedupe_window: self.dedupe_window.map(|d| d.0),
                rate_limit: self.rate_limit,
                ..IngressConfig::default()
            },
            schema_wait: self.schema_wait.0,
        }
    }

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

/// Runs the gateway until Ctrl-C or SIGTERM.
pub(super) async fn run(args: GatewayArgs) -> anyhow::Result<ExitCode> {
    let catalog = Arc::new(args.config.load()?);
    let stop = CancellationToken::new();
    spawn_signal_handler(stop.clone())?;
    broker::check_reachable(&args.bootstrap, Duration::from_secs(10)).await?;
    let listener =
        server::bind(args.http_listen, "the gateway HTTP server", "--http-listen").await?;
    let (tokens, generated) = tokens(args.gateway.tokens.as_deref(), &catalog)?;
    let scheme = args.gateway.scheme();
    let public_url = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{}", reachable(args.http_listen)));
    let mut catalog_service = catalog::Service::new(
        catalog.clone(),
        Client::new(&args.registry_url),
        &public_url,
        &args.bootstrap,
    );
    let store = match &args.snapshots {
        Some(location) => Some(
            Store::open(location)
                .with_context(|| format!("opening the snapshot store {location}"))?,
        ),
        None => None,
    };
    if let Some(store) = &store {
        catalog_service = catalog_service.with_snapshots(store.clone());
    }
    let started = gateway::start(
        args.gateway.config(&args.bootstrap, &args.registry_url),
        catalog.clone(),
        tokens,
        catalog::router(catalog_service),
        stop.clone(),
    )
    .await
    .context("starting the gateway")?;
    let (lineage, lineage_task) = Lineage::start(&args.lineage);
    let gateway_lineage = GatewayLineage::start(
        lineage.clone(),
        Naming::new(
            &args.bootstrap,
            store.as_ref().map(|s| s.uri("")).as_deref(),
        ),
        catalog.clone(),
        started.metrics.clone(),
        stop.clone(),
    );
    let tls = args.gateway.tls()?;
    let served = server::spawn_limited(
        listener,
        tls.as_ref(),
        started.router,
        stop.clone(),
        args.gateway.http_limits.limits(),
    );
    println!(
        "gateway: {} product(s), Kafka {}, registry {}, HTTP on {scheme}://{}",
        catalog.len(),
        args.bootstrap,
        args.registry_url,
        args.http_listen
    );
    println!("gateway: catalog on {public_url}/products");
    print_tokens(
        &generated,
        &public_url,
        catalog.iter().next().map(|p| p.id()),
        Some(TokensOut::Temp),
    )?;
    started.stream.await.ok();
    gateway_lineage.complete().await;
    super::finish_lineage(lineage, lineage_task).await;
    served.await.ok();
    println!("gateway stopped");
    Ok(ExitCode::SUCCESS)
}
