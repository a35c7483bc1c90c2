//! `meshline up`: everything on one machine.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use anyhow::Context as _;
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::{
    gateway::lineage::GatewayLineage,
    lineage::{Lineage, LineageArgs, Naming},
};

use super::{
    gateway::GatewayOptions, parse_listen, print_tokens, reachable, registry::RegistryArgs,
    snapshotter::SnapshotOptions, spawn_signal_handler, tokens, with_metrics, ConfigArgs,
    TokensOut, DEFAULT_HTTP, DEFAULT_KAFKA,
};
use crate::{
    broker, catalog, demo, gateway,
    health::Readiness,
    registry::{self, client::Client, Registry},
    server, snapshot,
};

/// Arguments of `meshline up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Publish the media-streaming demo (player, artists, labels domains).
    #[arg(long)]
    pub demo: bool,
    /// Where the embedded broker keeps its data (durable across restarts).
    #[arg(long, default_value = ".meshline", env = "MESHLINE_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Use this Kafka cluster instead of starting the embedded broker.
    #[arg(long, env = "MESHLINE_BOOTSTRAP")]
    pub bootstrap: Option<String>,
    /// What to do with the products' topics: `missing` creates those that do not exist,
    /// `never` creates none (a platform team's cluster where topics are provisioned apart),
    /// `validate` creates none and checks partitions, replication and configuration against
    /// the descriptors.
    #[arg(long, default_value = "missing", value_parser = clap::value_parser!(broker::CreateTopics))]
    pub create_topics: broker::CreateTopics,
    /// Address the embedded broker listens on.
    #[arg(long, default_value = DEFAULT_KAFKA, value_parser = parse_listen)]
    pub listen: SocketAddr,
    /// Schema registry address.
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Use this Confluent-compatible registry (Confluent, Karapace, Apicurio, a `meshline
    /// registry`) instead of starting one. The products must be published there first
    /// (`meshline contract publish`); credentials from MESHLINE_REGISTRY_TOKEN or
    /// MESHLINE_REGISTRY_USER_INFO.
    #[arg(long, env = "MESHLINE_REGISTRY_URL")]
    pub registry_url: Option<String>,
    /// Address of the gateway's HTTP server (ingress, catalog, `/metrics`).
    #[arg(long, default_value = DEFAULT_HTTP, value_parser = parse_listen)]
    pub http_listen: SocketAddr,
    /// Base URL of product addresses in the catalog (default: `http://` + `--http-listen`).
    #[arg(long)]
    pub public_url: Option<String>,
    /// Gateway settings.
    #[command(flatten)]
    pub gateway: GatewayOptions,
    /// Snapshotter settings.
    #[command(flatten)]
    pub snapshot: SnapshotOptions,
    /// OpenLineage events.
    #[command(flatten)]
    pub lineage: LineageArgs,
    /// Descriptors.
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// Runs until Ctrl-C (SIGINT) or SIGTERM, then stops the demo, waits for every pending
/// delivery, stops the gateway at a checkpoint, and stops the broker.
pub(super) async fn run(args: UpArgs) -> anyhow::Result<ExitCode> {
    let catalog = args.config.load()?;
    let stop = CancellationToken::new();
    spawn_signal_handler(stop.clone())?;

    #[cfg(feature = "embedded-broker")]
    let mut embedded = None;
    let bootstrap = match &args.bootstrap {
        Some(bootstrap) => {
            broker::check_reachable(bootstrap, Duration::from_secs(10)).await?;
            bootstrap.clone()
        }
        #[cfg(feature = "embedded-broker")]
        None => {
            let storage = broker::embedded::Storage::in_dir(&args.data_dir);
            let started = broker::embedded::EmbeddedBroker::start(args.listen, &storage).await?;
            let bootstrap = started.bootstrap();
            embedded = Some(started);
            bootstrap
        }
        #[cfg(not(feature = "embedded-broker"))]
        None => anyhow::bail!(
            "this build has no embedded broker (feature `embedded-broker`); pass `--bootstrap HOST:PORT`"
        ),
    };

    let topics = broker::provision_topics(&bootstrap, &catalog, args.create_topics)
        .await
        .context("checking the products' topics")?;

    let http_listener =
        server::bind(args.http_listen, "the gateway HTTP server", "--http-listen").await?;
    // one token per domain (and one for `platform`): ingress events and registry writes
    let (tokens, generated) = tokens(args.gateway.tokens.as_deref(), &catalog)?;
    // with --tls-cert every HTTP server (registry, gateway, catalog) speaks HTTPS
    let tls = args.gateway.tls()?;
    let mut servers = Vec::new();
    let (registry, registry_url) = match &args.registry_url {
        // a registry the platform team runs: the products must be published there already
        Some(url) => {
            check_published(&catalog, &Client::new(url)).await?;
            (None, url.trim_end_matches('/').to_owned())
        }
        None => {
            let listener = server::bind(
                args.registry.registry_listen,
                "the schema registry",
                "--registry-listen",
            )
            .await?;
            let registry =
                Registry::start_with(&bootstrap, &args.registry.settings(), stop.clone()).await?;
            let access = registry::http::Access {
                tokens: tokens.clone(),
                reads_open: !args.registry.registry_auth_reads,
            };
            // ready once every product's schema and contract is registered: a client that
            // waits for `/readyz` never finds a product's subject missing
            let readiness = Readiness::default();
            readiness.add("registry state read", || true);
            let registered = readiness.flag("products registered");
            servers.push(server::spawn_limited(
                listener,
                tls.as_ref(),
                with_metrics(
                    registry::http::secured_router(registry.clone(), access)
                        .merge(readiness.routes()),
                    "registry",
                )?,
                stop.clone(),
                args.gateway.http_limits.limits(),
            ));
            for product in catalog.iter() {
                registry.register_product(product).await.with_context(|| {
                    format!(
                        "registering the schema of {} from {}; if it changed, check it with `meshline contract diff {} NEW.avsc`",
                        product.id(),
                        product.path.display(),
                        product.id()
                    )
                })?;
            }
            registered.set(true);
            let url = format!(
                "{}://{}",
                args.gateway.scheme(),
                reachable(args.registry.registry_listen)
            );
            (Some(registry), url)
        }
    };
    let public_url = args.public_url.clone().unwrap_or_else(|| {
        format!(
            "{}://{}",
            args.gateway.scheme(),
            reachable(args.http_listen)
        )
    });
    let catalog = Arc::new(catalog);
    let store = args.snapshot.store(&args.data_dir)?;
    let catalog_service = catalog::Service::new(
        catalog.clone(),
        Client::new(&registry_url),
        &public_url,
        &bootstrap,
    )
    .with_snapshots(store.clone());
    let gateway = gateway::start(
        args.gateway.config(&bootstrap, &registry_url),
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
        Naming::new(&bootstrap, Some(&store.uri(""))),
        catalog.clone(),
        gateway.metrics.clone(),
        stop.clone(),
    );
    servers.push(server::spawn_limited(
        http_listener,
        tls.as_ref(),
        gateway.router,
        stop.clone(),
        args.gateway.http_limits.limits(),
    ));
    let mut iceberg_catalog = None;
    let snapshotter = if args.snapshot.no_snapshots {
        None
    } else {
        let metrics = snapshot::Metrics::new(&gateway.metrics)
            .context("creating the snapshotter's metrics")?;
        snapshot::ready(&gateway.readiness, &catalog, &metrics);
        let mut config =
            args.snapshot
                .config(&bootstrap, &registry_url, store.clone(), &args.data_dir);
        config.lineage = lineage.clone();
        let iceberg_views = catalog.iter().any(|p| {
            p.descriptor
                .views
                .iter()
                .any(|v| v.format == crate::product::TableFormat::Iceberg)
        });
        iceberg_catalog = config
            .iceberg_catalog
            .as_ref()
            .filter(|_| iceberg_views)
            .map(|c| c.path().display().to_string());
        Some(tokio::spawn(snapshot::worker::run(
            config,
            catalog.clone(),
            metrics,
            stop.clone(),
        )))
    };

    println!("meshline is up");
    println!("  Kafka API:  {bootstrap}");
    println!("  registry:   {registry_url}");
    println!("  catalog:    {public_url}/products");
    println!("  ingress:    {public_url}/v1/products/{{id}}/events");
    println!("  products:   {}", catalog.len());
    for product in catalog.iter() {
        println!(
            "    {:<28} {} partition(s), owner {}",
            product.id(),
            product.descriptor.partitions,
            product.descriptor.owner.team
        );
    }
    println!("  topics:     {}", topics.len());
    if snapshotter.is_some() {
        println!("  snapshots:  {}", store.uri("snapshots"));
    }
    if let Some(path) = iceberg_catalog {
        println!("  iceberg:    {public_url}/iceberg (REST), {path} (SQL catalog)");
    }
    if args.bootstrap.is_none() {
        println!("  data dir:   {}", args.data_dir.display());
    }
    // the demo's tokens are printed; anywhere else they go to a file only the owner reads
    let tokens_out = (!args.demo).then_some(TokensOut::Dir(&args.data_dir));
    print_tokens(
        &generated,
        &public_url,
        catalog.iter().next().map(|p| p.id()),
        tokens_out,
    )?;
    println!("Try: meshline tail player.play-events --bootstrap {bootstrap}");
    println!("Stop with Ctrl-C.");

    let demo_task = if args.demo {
        let services = demo::services(&bootstrap, &registry_url)
            .await
            .context("starting the demo producers")?;
        let (bootstrap, registry_url, counter_stop) =
            (bootstrap.clone(), registry_url.clone(), stop.clone());
        let counter = tokio::spawn({
            let (bootstrap, registry_url) = (bootstrap.clone(), registry_url.clone());
            async move { demo::artist_plays::run(&bootstrap, &registry_url, counter_stop).await }
        });
        let foreign_stop = stop.clone();
        let foreign = tokio::spawn(async move {
            demo::foreign::run(&bootstrap, &registry_url, foreign_stop).await
        });
        Some((
            tokio::spawn(demo::run(services, stop.clone())),
            counter,
            foreign,
        ))
    } else {
        None
    };

    stop.cancelled().await;
    tracing::info!("shutting down");
    if let Some((task, counter, foreign)) = demo_task {
        let mut stats = task.await.context("demo task")??;
        match counter.await.context("play counter task")? {
            Ok(n) => println!("demo: {n} plays counted into artists.artist-plays"),
            Err(error) => println!("demo: the artists' play counter failed: {error:#}"),
        }
        match foreign
            .await
            .context("JSON Schema and Protobuf demo task")?
        {
            Ok(acked) => stats.acked.extend(acked),
            Err(error) => {
                println!("demo: the JSON Schema and Protobuf producers failed: {error:#}")
            }
        }
        let mut acked: Vec<_> = stats.acked.into_iter().collect();
        acked.sort();
        for (product, n) in acked {
            println!("demo: {n} events acknowledged in {product}");
        }
        if stats.failed > 0 {
            println!("demo: {} events not delivered", stats.failed);
        }
    }
    for server in servers {
        server.await.ok();
    }
    gateway.stream.await.ok();
    gateway_lineage.complete().await;
    if let Some(snapshotter) = snapshotter {
        snapshotter.await.ok();
    }
    super::finish_lineage(lineage, lineage_task).await;
    // the registry's clients go before the broker they talk to
    if let Some(registry) = registry {
        registry.stopped().await;
    }
    #[cfg(feature = "embedded-broker")]
    if let Some(embedded) = embedded {
        embedded.stop().await;
    }
    println!("meshline stopped cleanly");
    Ok(ExitCode::SUCCESS)
}

/// Fails, saying what to do, unless every product's subject is registered in the registry of
/// `client` with the contract meshline enforces.
async fn check_published(catalog: &crate::product::Catalog, client: &Client) -> anyhow::Result<()> {
    for product in catalog.iter() {
        let subject = product.subject();
        crate::formats::latest(client, &subject, product.id())
            .await
            .with_context(|| {
            format!(
                "{} is not published in the registry at {} (subject {subject}); run `meshline contract publish --registry {}` first",
                product.id(),
                client.url(),
                client.url()
            )
        })?;
    }
    Ok(())
}
