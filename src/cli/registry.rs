//! `meshline registry`: the schema registry alone, against a running Kafka cluster.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use clap::Args;
use tokio_util::sync::CancellationToken;

use super::{parse_listen, with_metrics, DEFAULT_KAFKA};
use crate::{
    auth::{Tokens, PLATFORM},
    broker,
    health::Readiness,
    registry, server,
};

/// Where the registry listens.
#[derive(Debug, Clone, Args)]
pub struct RegistryArgs {
    /// Address of the schema registry's HTTP server.
    #[arg(long, default_value = "127.0.0.1:8081", value_parser = parse_listen)]
    pub registry_listen: SocketAddr,
    /// Reads of the registry need credentials too (writes always do).
    #[arg(long)]
    pub registry_auth_reads: bool,
    /// The topic the registry keeps its state in; on a cluster where Confluent's registry
    /// already uses `_schemas`, give meshline's another one.
    #[arg(long, default_value = "_schemas", env = "MESHLINE_SCHEMAS_TOPIC")]
    pub schemas_topic: String,
    /// The consumer group the registry reads its topic in.
    #[arg(long, default_value = "meshline-registry")]
    pub registry_group: String,
}

impl RegistryArgs {
    /// Where the registry keeps its state.
    pub fn settings(&self) -> registry::service::Settings {
        registry::service::Settings {
            topic: self.schemas_topic.clone(),
            group: self.registry_group.clone(),
        }
    }
}

/// Arguments of `meshline registry`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct StandaloneArgs {
    /// What else to do than serve the registry.
    #[command(subcommand)]
    pub command: Option<RegistryCommand>,
    /// Kafka bootstrap servers holding the `_schemas` topic.
    #[arg(long, default_value = DEFAULT_KAFKA, env = "MESHLINE_BOOTSTRAP")]
    pub bootstrap: String,
    /// Where to listen.
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// HTTPS (TLS by rustls) instead of HTTP: a PEM certificate chain. Needs --tls-key.
    #[arg(long, requires = "tls_key", env = "MESHLINE_REGISTRY_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert", env = "MESHLINE_REGISTRY_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Tokens file of the principals that may write (a domain its own subjects, `platform`
    /// everything; the format of `meshline up --tokens`). Without one, a `platform` token is
    /// generated and written to a file only its owner reads
    /// (its path printed at start).
    #[arg(long, env = "MESHLINE_TOKENS")]
    pub tokens: Option<PathBuf>,
    /// Limits of the HTTP server.
    #[command(flatten)]
    pub http_limits: super::HttpLimitsArgs,
}

/// `meshline registry …`: what else than serving the registry.
#[derive(Debug, clap::Subcommand)]
pub enum RegistryCommand {
    /// List the audit trail: every write, config or mode change and delete asked of the
    /// registry, accepted or refused, with who asked and what became of it, oldest first.
    Audit(AuditArgs),
}

/// Arguments of `meshline registry audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Kafka bootstrap servers holding the registry's topics.
    #[arg(long, default_value = DEFAULT_KAFKA, env = "MESHLINE_BOOTSTRAP")]
    pub bootstrap: String,
    /// The topic the registry keeps its state in (its audit trail is `<topic>-audit`).
    #[arg(long, default_value = "_schemas", env = "MESHLINE_SCHEMAS_TOPIC")]
    pub schemas_topic: String,
    /// Only the events of this subject.
    #[arg(long)]
    pub subject: Option<String>,
}

/// Prints the audit trail.
async fn audit(args: AuditArgs) -> anyhow::Result<ExitCode> {
    let events = tokio::task::spawn_blocking(move || {
        registry::audit::read(
            &args.bootstrap,
            &args.schemas_topic,
            args.subject.as_deref(),
        )
    })
    .await??;
    for event in &events {
        println!("{}", event.line());
    }
    Ok(ExitCode::SUCCESS)
}

/// Serves the registry until Ctrl-C or SIGTERM.
pub(super) async fn run(args: StandaloneArgs) -> anyhow::Result<ExitCode> {
    if let Some(RegistryCommand::Audit(audit_args)) = args.command {
        return audit(audit_args).await;
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(server::Tls::load(cert, key)?),
        _ => None,
    };
    let stop = CancellationToken::new();
    super::spawn_signal_handler(stop.clone())?;
    broker::check_reachable(&args.bootstrap, Duration::from_secs(10)).await?;
    let listener = server::bind(
        args.registry.registry_listen,
        "the schema registry",
        "--registry-listen",
    )
    .await?;
    let registry =
        registry::Registry::start_with(&args.bootstrap, &args.registry.settings(), stop.clone())
            .await?;
    let (tokens, generated) = match &args.tokens {
        Some(path) => (Tokens::load(path)?, Vec::new()),
        None => Tokens::generate([PLATFORM]),
    };
    let access = registry::http::Access {
        tokens,
        reads_open: !args.registry.registry_auth_reads,
    };
    // started: the state is read to the end of its topic
    let readiness = Readiness::default();
    readiness.add("registry state read", || true);
    let served = server::spawn_limited(
        listener,
        tls.as_ref(),
        with_metrics(
            registry::http::secured_router(registry, access).merge(readiness.routes()),
            "registry",
        )?,
        stop,
        args.http_limits.limits(),
    );
    println!(
        "schema registry on {}://{} (Kafka {})",
        if tls.is_some() { "https" } else { "http" },
        args.registry.registry_listen,
        args.bootstrap
    );
    super::print_tokens(&generated, "", None, Some(super::TokensOut::Temp))?;
    served.await.ok();
    println!("schema registry stopped");
    Ok(ExitCode::SUCCESS)
}
