//! `meshline demo`: the media-streaming demo's producers against a running meshline.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use tokio_util::sync::CancellationToken;

use super::{DEFAULT_KAFKA, DEFAULT_REGISTRY_URL};
use crate::demo;

/// Arguments of `meshline demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Kafka bootstrap servers.
    #[arg(long, default_value = DEFAULT_KAFKA, env = "MESHLINE_BOOTSTRAP")]
    pub bootstrap: String,
    /// Schema registry URL (the products must be registered: `meshline up` or a gateway did).
    #[arg(long, default_value = DEFAULT_REGISTRY_URL, env = "MESHLINE_REGISTRY_URL")]
    pub registry_url: String,
}

/// Sends the demo's history, then live events, until Ctrl-C or SIGTERM.
pub(super) async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let stop = CancellationToken::new();
    super::spawn_signal_handler(stop.clone())?;
    let services = demo::services(&args.bootstrap, &args.registry_url)
        .await
        .context("starting the demo producers")?;
    println!("demo: producing to {} until Ctrl-C", args.bootstrap);
    let stats = demo::run(services, stop).await?;
    let mut acked: Vec<_> = stats.acked.into_iter().collect();
    acked.sort();
    for (product, n) in acked {
        println!("demo: {n} events acknowledged in {product}");
    }
    if stats.failed > 0 {
        println!("demo: {} events not delivered", stats.failed);
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
