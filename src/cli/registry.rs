//! `meshline registry`: the schema registry alone, against a running Kafka cluster.

use std::{net::SocketAddr, process::ExitCode, time::Duration};

use clap::Args;
use tokio_util::sync::CancellationToken;

use super::{parse_listen, up::with_metrics, DEFAULT_KAFKA};
use crate::{broker, registry, server};

/// Where the registry listens.
#[derive(Debug, Clone, Args)]
pub struct RegistryArgs {
    /// Address of the schema registry's HTTP server.
    #[arg(long, default_value = "127.0.0.1:8081", value_parser = parse_listen)]
    pub registry_listen: SocketAddr,
}

/// Arguments of `meshline registry`.
#[derive(Debug, Args)]
pub struct StandaloneArgs {
    /// Kafka bootstrap servers holding the `_schemas` topic.
    #[arg(long, default_value = DEFAULT_KAFKA, env = "MESHLINE_BOOTSTRAP")]
    pub bootstrap: String,
    /// Where to listen.
    #[command(flatten)]
    pub registry: RegistryArgs,
}

/// Serves the registry until Ctrl-C or SIGTERM.
pub async fn run(args: StandaloneArgs) -> anyhow::Result<ExitCode> {
    let stop = CancellationToken::new();
    super::up::spawn_signal_handler(stop.clone())?;
    broker::check_reachable(&args.bootstrap, Duration::from_secs(10)).await?;
    let listener = server::bind(
        args.registry.registry_listen,
        "the schema registry",
        "--registry-listen",
    )
    .await?;
    let registry = registry::Registry::start(&args.bootstrap, stop.clone()).await?;
    let served = server::spawn(
        listener,
        with_metrics(registry::http::router(registry), "registry")?,
        stop,
    );
    println!(
        "schema registry on http://{} (Kafka {})",
        args.registry.registry_listen, args.bootstrap
    );
    served.await.ok();
    println!("schema registry stopped");
    Ok(ExitCode::SUCCESS)
}
