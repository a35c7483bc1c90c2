//! The `meshline` command line: one binary, one subcommand per job.

mod contract;
mod demo;
mod dlq;
mod gateway;
mod produce;
mod products;
mod registry;
mod slo;
mod snapshots;
mod snapshotter;
mod tail;
mod up;

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use tokio_util::sync::CancellationToken;

use crate::{
    auth::{Tokens, PLATFORM},
    product::{Catalog, Errors},
    telemetry::{HttpMetrics, LogFormat},
};

/// meshline: the self-serve event-streaming backbone of a data mesh.
#[derive(Debug, Parser)]
#[command(name = "meshline", version, about, propagate_version = true)]
pub struct Cli {
    /// Log format: `text` for people, `json` for log pipelines.
    #[arg(long, global = true, default_value = "text", value_enum)]
    pub log_format: LogFormat,
    /// Export spans over OTLP/HTTP to this collector (e.g. `http://127.0.0.1:4318`); the
    /// standard `OTEL_EXPORTER_OTLP_*` variables work as well.
    #[arg(long, global = true)]
    pub otlp_endpoint: Option<String>,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run everything on this machine: the embedded Kafka-API broker and every product's topics
    /// (and, with `--demo`, the media-streaming demo producers).
    Up(Box<up::UpArgs>),
    /// Run the gateway alone: every product's contract enforced on its `.ingress` topic, and
    /// the HTTP ingress, against a running Kafka cluster and schema registry.
    Gateway(gateway::GatewayArgs),
    /// Print a product's events as JSON lines, CloudEvents attributes and decoded payload.
    Tail(tail::TailArgs),
    /// Send JSON lines to a product as CloudEvents with Avro payloads, checked by its contract.
    Produce(produce::ProduceArgs),
    /// Work with dead-letter topics (replay after a fix).
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
    /// Check data product contracts.
    #[command(subcommand)]
    Contract(contract::ContractCommand),
    /// Run the schema registry alone, against a running Kafka cluster.
    Registry(registry::StandaloneArgs),
    /// Browse the data product catalog of a running meshline.
    #[command(subcommand)]
    Products(products::ProductsCommand),
    /// Run the snapshotter alone: every product's views as Parquet snapshots, against a running
    /// Kafka cluster and schema registry.
    Snapshotter(snapshotter::SnapshotterArgs),
    /// List the snapshots of a running meshline, or show one's manifest.
    #[command(subcommand)]
    Snapshots(snapshots::SnapshotsCommand),
    /// Generate the products' SLO rules (Prometheus) and dashboards (Grafana).
    #[command(subcommand)]
    Slo(slo::SloCommand),
    /// Run the media-streaming demo's producers (history, then live events) against a running
    /// meshline.
    Demo(demo::DemoArgs),
    /// Show each product's rates, lag, SLO state and snapshots, from a running meshline.
    Status(slo::StatusArgs),
}

/// Where the data product descriptors are.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// Directory of data product descriptors (`*.yaml`, searched recursively).
    #[arg(long, default_value = "config", env = "MESHLINE_CONFIG")]
    pub config: PathBuf,
}

impl ConfigArgs {
    /// Loads every descriptor, or returns every error found.
    pub fn load(&self) -> Result<Catalog, Errors> {
        crate::formats::load_catalog(&self.config)
    }
}

/// Default Kafka API address of `meshline up`.
pub const DEFAULT_KAFKA: &str = "127.0.0.1:9092";
/// Default schema registry URL.
pub const DEFAULT_REGISTRY_URL: &str = "http://127.0.0.1:8081";
/// Default address of the gateway's HTTP server (ingress, catalog, metrics).
pub const DEFAULT_HTTP: &str = "127.0.0.1:8080";

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if !cli.command.serves() {
        ends_quietly_on_a_closed_pipe();
    }
    let _tracing = crate::telemetry::init(cli.log_format, cli.otlp_endpoint.as_deref());
    crate::registry::client::install_crypto_provider();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Up(args) => up::run(*args).await,
            Command::Gateway(args) => gateway::run(args).await,
            Command::Tail(args) => tail::run(args).await,
            Command::Produce(args) => produce::run(args).await,
            Command::Contract(command) => contract::run(command).await,
            Command::Dlq(command) => dlq::run(command).await,
            Command::Registry(args) => registry::run(args).await,
            Command::Products(command) => products::run(command).await,
            Command::Snapshotter(args) => snapshotter::run(args).await,
            Command::Snapshots(command) => snapshots::run(command).await,
            Command::Slo(command) => slo::run(command).await,
            Command::Status(args) => slo::status(args).await,
            Command::Demo(args) => demo::run(args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

impl Command {
    /// Whether the command runs servers (which must outlive a closed pipe of theirs).
    fn serves(&self) -> bool {
        match self {
            Command::Registry(args) => args.command.is_none(),
            other => matches!(
                other,
                Command::Up(_) | Command::Gateway(_) | Command::Snapshotter(_) | Command::Demo(_)
            ),
        }
    }
}

/// A command whose output goes into a pipe that closes (`meshline snapshots list … | head`)
/// ends as other command-line tools do, without an error: the default action of `SIGPIPE`,
/// which Rust programs otherwise ignore (and then fail on the next write).
fn ends_quietly_on_a_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: called before any other thread exists; restores the signal's default action
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// The address to reach a server listening on `addr` from this machine (`0.0.0.0` is not one).
fn reachable(mut addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    addr
}

/// Parses `HOST:PORT` for listen addresses.
pub fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|e| format!("`{s}` is not an address like 127.0.0.1:9092 ({e})"))
}

/// The tokens of `--tokens FILE`, or one generated for each domain of `catalog` and one for
/// the `platform` principal (shown once: the second value).
fn tokens(
    file: Option<&std::path::Path>,
    catalog: &Catalog,
) -> anyhow::Result<(Tokens, Vec<(String, String)>)> {
    Ok(match file {
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

/// Shows generated tokens and how to use them: printed with `--demo` (`into` is `None`);
/// otherwise written to a new file only its owner can read, in `into` (the data directory) or,
/// without one, the system's temporary directory, and only the file's path is printed, so that
/// no token lands in a log collector that reads standard output.
fn print_tokens(
    generated: &[(String, String)],
    http: &str,
    example_product: Option<&str>,
    into: Option<TokensOut<'_>>,
) -> anyhow::Result<()> {
    if generated.is_empty() {
        return Ok(());
    }
    if let Some(into) = into {
        let path = write_tokens(generated, into)?;
        println!(
            "  tokens for the HTTP ingress and schema registry writes: generated for this run, written to {} (readable by its owner only; pass --tokens FILE to keep your own)",
            path.display()
        );
        return Ok(());
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
    Ok(())
}

/// Where generated tokens are written instead of printed.
#[derive(Debug, Clone, Copy)]
enum TokensOut<'a> {
    /// `tokens.generated` in this directory (the data directory), replaced at each start.
    Dir(&'a std::path::Path),
    /// A new file in the system's temporary directory.
    Temp,
}

/// Writes `principal token` lines to a file of mode 0600 and returns its path.
fn write_tokens(
    generated: &[(String, String)],
    into: TokensOut<'_>,
) -> anyhow::Result<std::path::PathBuf> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let text: String = generated
        .iter()
        .map(|(principal, token)| format!("{principal} {token}\n"))
        .collect();
    let (mut file, path) = match into {
        TokensOut::Dir(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            let path = dir.join("tokens.generated");
            // a new file each time (never one another user planted or linked there)
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).with_context(|| format!("replacing {}", path.display()))
                }
                _ => {}
            }
            let file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("writing the generated tokens to {}", path.display()))?;
            (file, path)
        }
        TokensOut::Temp => {
            let file = tempfile::Builder::new()
                .prefix("meshline-tokens-")
                .tempfile()
                .context("writing the generated tokens to a temporary file")?;
            let (file, path) = file.keep().context("keeping the tokens file")?;
            (file, path)
        }
    };
    file.write_all(text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// What each HTTP server gives one client at most (`server::Limits`).
#[derive(Debug, Clone, clap::Args)]
pub struct HttpLimitsArgs {
    /// Longest time a client may take to send a request's headers; also how long an idle
    /// kept-alive connection stays open.
    #[arg(long, default_value = "10s", env = "MESHLINE_HTTP_HEADER_TIMEOUT")]
    pub http_header_timeout: crate::product::HumanDuration,
    /// Longest time from a request's headers to its answer, the body's upload included (408
    /// past it).
    #[arg(long, default_value = "60s", env = "MESHLINE_HTTP_REQUEST_TIMEOUT")]
    pub http_request_timeout: crate::product::HumanDuration,
    /// Most connections each HTTP server serves at once; past it a new one is answered 503.
    #[arg(long, default_value_t = 1024, env = "MESHLINE_HTTP_MAX_CONNECTIONS")]
    pub http_max_connections: usize,
}

impl HttpLimitsArgs {
    /// The servers' limits.
    pub fn limits(&self) -> crate::server::Limits {
        crate::server::Limits {
            header_read: self.http_header_timeout.0,
            request: self.http_request_timeout.0,
            max_connections: self.http_max_connections.max(1),
        }
    }
}

/// Adds `/metrics` and request counting to a server's router.
fn with_metrics(router: axum::Router, server: &str) -> anyhow::Result<axum::Router> {
    Ok(HttpMetrics::new(server)
        .context("creating the HTTP metrics")?
        .instrument(router))
}

/// Cancels `stop` on Ctrl-C or SIGTERM.
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

/// Waits (10 s at most) for the OpenLineage transport to send what the components reported,
/// once `lineage`, the last handle, is dropped.
async fn finish_lineage(
    lineage: crate::lineage::Lineage,
    task: Option<tokio::task::JoinHandle<()>>,
) {
    drop(lineage);
    if let Some(task) = task {
        if tokio::time::timeout(std::time::Duration::from_secs(10), task)
            .await
            .is_err()
        {
            tracing::warn!("OpenLineage events still unsent after 10 s; stopping without them");
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
