//! `meshline produce PRODUCT`: JSON lines in, CloudEvents with Confluent-framed Avro out.

use std::{
    io::{BufRead, BufReader},
    path::PathBuf,
    process::ExitCode,
};

use anyhow::Context as _;
use clap::Args;

use super::{DEFAULT_KAFKA, DEFAULT_REGISTRY_URL};
use crate::{
    codec::json::from_json,
    sdk::{
        producer::{Pending, ValueEvent},
        Producer, Target,
    },
};

/// Arguments of `meshline produce`.
#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Product id, e.g. `player.play-events`.
    pub product: String,
    /// JSON lines, one event's data per line (default: standard input).
    #[arg(long)]
    pub file: Option<PathBuf>,
    /// CloudEvents `type` (default: the product's first declared type).
    #[arg(long = "type")]
    pub ty: Option<String>,
    /// CloudEvents `source` (default: the source prefix the product's domain owns).
    #[arg(long)]
    pub source: Option<String>,
    /// Field whose value becomes the CloudEvents `subject` and the Kafka key.
    #[arg(long)]
    pub key_field: Option<String>,
    /// Write the product topic itself instead of its `.ingress` topic.
    #[arg(long)]
    pub direct: bool,
    /// Kafka bootstrap servers.
    #[arg(long, default_value = DEFAULT_KAFKA, env = "MESHLINE_BOOTSTRAP")]
    pub bootstrap: String,
    /// Schema registry holding the product's contract.
    #[arg(long, default_value = DEFAULT_REGISTRY_URL, env = "MESHLINE_REGISTRY")]
    pub registry: String,
}

/// Sends every line; a line that is not valid JSON or breaks the contract is reported with its
/// number and not sent, and the exit code is then non-zero.
pub(super) async fn run(args: ProduceArgs) -> anyhow::Result<ExitCode> {
    let input: Box<dyn BufRead> = match &args.file {
        Some(path) => Box::new(BufReader::new(
            std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?,
        )),
        None => Box::new(BufReader::new(std::io::stdin())),
    };
    let mut builder = Producer::builder(&args.bootstrap, &args.registry).target(if args.direct {
        Target::Direct
    } else {
        Target::Ingress
    });
    if let Some(source) = &args.source {
        builder = builder.source(source);
    }
    let producer = builder.build().await?;
    let mut pending: Vec<(usize, Pending)> = Vec::new();
    let mut refused = 0usize;
    for (n, line) in input.lines().enumerate() {
        let n = n + 1;
        let line = line.context("reading the input")?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed = crate::codec::strict::check_unique_keys(line.as_bytes())
            .and_then(|()| serde_json::from_str::<serde_json::Value>(&line));
        let json: serde_json::Value = match parsed {
            Ok(json) => json,
            Err(e) => {
                eprintln!("line {n}: not JSON: {e}");
                refused += 1;
                continue;
            }
        };
        let key = args
            .key_field
            .as_ref()
            .and_then(|f| json.get(f))
            .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_owned));
        let event = ValueEvent {
            value: from_json(&json),
            ty: args.ty.clone(),
            subject: key.clone(),
            key,
            time: None,
            traceparent: None,
        };
        match producer.enqueue_value(&args.product, event).await {
            Ok(p) => pending.push((n, p)),
            Err(e @ crate::sdk::producer::Error::UnknownProduct { .. }) => return Err(e.into()),
            Err(e) => {
                eprintln!("line {n}: {e}");
                refused += 1;
            }
        }
    }
    let mut sent = 0usize;
    let mut topic = String::new();
    for (n, p) in pending {
        match p.acknowledged().await {
            Ok(d) => {
                sent += 1;
                topic = d.topic;
            }
            Err(e) => {
                eprintln!("line {n}: {e}");
                refused += 1;
            }
        }
    }
    println!("{sent} event(s) sent to {topic}");
    if refused > 0 {
        eprintln!("{refused} line(s) not sent");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
