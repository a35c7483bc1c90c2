//! `meshline snapshots list PRODUCT` and `meshline snapshots show PRODUCT VIEW WINDOW`: the
//! snapshots of a running meshline, from its catalog.

use std::process::ExitCode;

use clap::Subcommand;
use serde_json::Value;

use super::products::{fetch, CatalogArgs};

/// Snapshot commands.
#[derive(Debug, Subcommand)]
pub enum SnapshotsCommand {
    /// Each view's snapshots: window, version and manifest URI.
    List {
        /// Product id, e.g. `player.play-events`.
        product: String,
        /// Only this view.
        #[arg(long)]
        view: Option<String>,
        /// Where the catalog is.
        #[command(flatten)]
        catalog: CatalogArgs,
    },
    /// One snapshot's manifest: its Parquet files, row counts, checksums and source offsets.
    Show {
        /// Product id.
        product: String,
        /// View name.
        view: String,
        /// Window label, e.g. `2026-11-25`.
        window: String,
        /// A version other than the newest.
        #[arg(long = "snapshot-version", value_name = "N")]
        snapshot_version: Option<u32>,
        /// Where the catalog is.
        #[command(flatten)]
        catalog: CatalogArgs,
    },
}

/// Runs a snapshots subcommand.
pub(super) async fn run(command: SnapshotsCommand) -> anyhow::Result<ExitCode> {
    match command {
        SnapshotsCommand::List {
            product,
            view,
            catalog,
        } => {
            let url = format!("{}/products/{product}", catalog.url.trim_end_matches('/'));
            let body = match fetch(&url).await? {
                Ok(body) => body,
                Err(error) => {
                    eprintln!("error: {error}");
                    return Ok(ExitCode::FAILURE);
                }
            };
            let views: Vec<&Value> = body["views"]
                .as_array()
                .map(|v| v.iter().collect())
                .unwrap_or_default();
            let views: Vec<&Value> = views
                .into_iter()
                .filter(|v| view.as_deref().is_none_or(|name| v["name"] == name))
                .collect();
            if let Some(name) = &view {
                if views.is_empty() {
                    eprintln!("error: {product} has no view `{name}`; `meshline products show {product}` lists them");
                    return Ok(ExitCode::FAILURE);
                }
            }
            if catalog.json {
                let out: Vec<Value> = views
                    .iter()
                    .map(|v| serde_json::json!({"view": v["name"], "snapshots": v["snapshots"]}))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&out)?);
                return Ok(ExitCode::SUCCESS);
            }
            for v in views {
                let snapshots = v["snapshots"].as_array().cloned().unwrap_or_default();
                println!(
                    "{} ({}, {} windows): {} snapshot(s)",
                    v["name"].as_str().unwrap_or("?"),
                    v["kind"].as_str().unwrap_or("?"),
                    v["window"].as_str().unwrap_or("?"),
                    snapshots.len()
                );
                for s in snapshots {
                    println!(
                        "  {:<20} v{:<3} {}",
                        s["window"].as_str().unwrap_or("?"),
                        s["version"],
                        s["manifest"].as_str().unwrap_or("?")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        SnapshotsCommand::Show {
            product,
            view,
            window,
            snapshot_version,
            catalog,
        } => {
            let mut url = format!(
                "{}/products/{product}/views/{view}/snapshots/{window}",
                catalog.url.trim_end_matches('/')
            );
            if let Some(v) = snapshot_version {
                url.push_str(&format!("?version={v}"));
            }
            match fetch(&url).await? {
                Ok(body) => {
                    println!("{}", serde_json::to_string_pretty(&body)?);
                    Ok(ExitCode::SUCCESS)
                }
                Err(error) => {
                    eprintln!("error: {error}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
