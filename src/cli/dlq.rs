//! `meshline dlq`: work with a product's dead-letter topic.

use std::process::ExitCode;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};

use super::DEFAULT_KAFKA;
use crate::{
    contract::Reason,
    gateway::replay::{self, Filter},
};

/// Dead-letter commands.
#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Re-submit dead letters to the product's ingress topic after a fix; the gateway checks
    /// them again. Replays that fail again are not replayed again unless `--include-replayed`.
    Replay(ReplayArgs),
}

/// Arguments of `meshline dlq replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The product, e.g. `player.play-events`.
    pub product: String,
    /// Only dead letters with this reason code (e.g. `rule_failed`, `unknown_schema`).
    #[arg(long, value_parser = parse_reason)]
    pub reason: Option<String>,
    /// Only dead letters written at or after this time: RFC 3339 (`2026-11-25T10:00:00Z`) or a
    /// duration ago (`2h`).
    #[arg(long, value_parser = parse_since)]
    pub since: Option<DateTime<Utc>>,
    /// Also replay dead letters that are themselves replays.
    #[arg(long)]
    pub include_replayed: bool,
    /// List the dead letters that would be replayed; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Kafka bootstrap servers.
    #[arg(long, default_value = DEFAULT_KAFKA, env = "MESHLINE_BOOTSTRAP")]
    pub bootstrap: String,
}

fn parse_reason(s: &str) -> Result<String, String> {
    if Reason::ALL.iter().any(|r| r.code() == s) {
        Ok(s.to_owned())
    } else {
        let codes: Vec<_> = Reason::ALL.iter().map(|r| r.code()).collect();
        Err(format!(
            "`{s}` is not a reason code; one of: {}",
            codes.join(", ")
        ))
    }
}

fn parse_since(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(time) = DateTime::parse_from_rfc3339(s) {
        return Ok(time.with_timezone(&Utc));
    }
    let ago = humantime::parse_duration(s)
        .map_err(|_| format!("`{s}` is neither an RFC 3339 time nor a duration like 2h"))?;
    chrono::Duration::from_std(ago)
        .ok()
        .and_then(|ago| Utc::now().checked_sub_signed(ago))
        .ok_or_else(|| format!("`{s}` is too far back"))
}

/// Runs a dead-letter command.
pub(super) async fn run(command: DlqCommand) -> anyhow::Result<ExitCode> {
    match command {
        DlqCommand::Replay(args) => {
            let filter = Filter {
                reason: args.reason,
                since: args.since,
                include_replayed: args.include_replayed,
            };
            let (product, dry_run) = (args.product.clone(), args.dry_run);
            let report = tokio::task::spawn_blocking(move || {
                replay::replay(&args.bootstrap, &args.product, &filter, args.dry_run)
            })
            .await
            .context("replay task")?
            .with_context(|| format!("replaying the dead letters of {product}"))?;
            for (letter, reason, id) in &report.letters {
                println!("{letter}\t{reason}\t{id}");
            }
            let verb = if dry_run {
                "would be replayed"
            } else {
                "replayed"
            };
            println!(
                "{product}: {} dead letter(s) read, {} {verb}, {} replayed before, {} skipped as replays already, {} filtered out",
                report.read, report.replayed, report.replayed_before, report.already_replayed, report.filtered
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
