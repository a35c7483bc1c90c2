//! `meshline up`: everything on one machine.

use std::{
    collections::HashMap, net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration,
};

use anyhow::Context as _;
use clap::Args;
use rdkafka::producer::FutureProducer;
use tokio_util::sync::CancellationToken;

use super::{parse_listen, ConfigArgs, DEFAULT_KAFKA, DEFAULT_REGISTRY_URL};
use crate::{broker, demo, registry::store::Store};

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
    /// Address the embedded broker listens on.
    #[arg(long, default_value = DEFAULT_KAFKA, value_parser = parse_listen)]
    pub listen: SocketAddr,
    /// Descriptors.
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// Runs until Ctrl-C (SIGINT) or SIGTERM, then stops the demo, waits for every pending
/// delivery, and stops the broker.
pub async fn run(args: UpArgs) -> anyhow::Result<ExitCode> {
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

    let topics = broker::ensure_topics(&bootstrap, &catalog)
        .await
        .context("creating the products' topics")?;

    let mut store = Store::default();
    let mut targets = HashMap::new();
    for product in catalog.iter() {
        let registered = store
            .register(&product.subject(), &product.schema_text)
            .with_context(|| format!("registering the schema of {}", product.id()))?;
        if let Some(&id) = demo::PRODUCTS.iter().find(|&&p| p == product.id()) {
            targets.insert(
                id,
                demo::Target {
                    schema: registered.schema,
                    schema_id: registered.id,
                    topic: product.topics().product,
                },
            );
        }
    }

    println!("meshline is up");
    println!("  Kafka API:  {bootstrap}");
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
    if args.bootstrap.is_none() {
        println!("  data dir:   {}", args.data_dir.display());
    }
    println!("Try: meshline tail player.play-events --bootstrap {bootstrap}");
    println!("Stop with Ctrl-C.");

    let demo_task = if args.demo {
        let producer: FutureProducer = broker::producer_config(&bootstrap)
            .create()
            .context("creating the demo producer")?;
        Some(tokio::spawn(demo::run(
            producer,
            targets,
            DEFAULT_REGISTRY_URL.to_owned(),
            stop.clone(),
        )))
    } else {
        None
    };

    stop.cancelled().await;
    tracing::info!("shutting down");
    if let Some(task) = demo_task {
        let stats = task.await.context("demo task")??;
        let mut acked: Vec<_> = stats.acked.into_iter().collect();
        acked.sort();
        for (product, n) in acked {
            println!("demo: {n} events acknowledged in {product}");
        }
        if stats.failed > 0 {
            println!("demo: {} events not delivered", stats.failed);
        }
    }
    #[cfg(feature = "embedded-broker")]
    if let Some(embedded) = embedded {
        embedded.stop().await;
    }
    println!("meshline stopped cleanly");
    Ok(ExitCode::SUCCESS)
}

fn spawn_signal_handler(stop: CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the Ctrl-C handler")?;
    let mut terminate =
        signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        stop.cancel();
    });
    Ok(())
}
