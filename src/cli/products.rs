//! `meshline products list|show ID`: the catalog of a running meshline.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use serde_json::Value;

use super::DEFAULT_HTTP;

/// Catalog commands.
#[derive(Debug, Subcommand)]
pub enum ProductsCommand {
    /// Every data product: id, owner, description, address.
    List(CatalogArgs),
    /// One product: owner, topics, schema, rules, SLOs, snapshot views and its contract in other
    /// standards (ODCS, AsyncAPI, Sloth, OpenSLO), with addresses.
    Show {
        /// Product id, e.g. `player.play-events`.
        id: String,
        /// Where the catalog is.
        #[command(flatten)]
        catalog: CatalogArgs,
    },
}

/// Where the catalog is, and how to print it.
#[derive(Debug, Args)]
pub struct CatalogArgs {
    /// Base URL of the gateway serving the catalog.
    #[arg(long, default_value_t = format!("http://{DEFAULT_HTTP}"), env = "MESHLINE_URL")]
    pub url: String,
    /// Print the catalog document as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Runs a products subcommand.
pub(super) async fn run(command: ProductsCommand) -> anyhow::Result<ExitCode> {
    let (path, args) = match &command {
        ProductsCommand::List(args) => ("/products".to_owned(), args),
        ProductsCommand::Show { id, catalog } => (format!("/products/{id}"), catalog),
    };
    let url = format!("{}{path}", args.url.trim_end_matches('/'));
    let body = match fetch(&url).await? {
        Ok(body) => body,
        Err(error) => {
            eprintln!("error: {error}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&body)?);
        return Ok(ExitCode::SUCCESS);
    }
    match command {
        ProductsCommand::List(_) => print_list(&body),
        ProductsCommand::Show { .. } => print_product(&body),
    }
    Ok(ExitCode::SUCCESS)
}

/// A catalog document, or the catalog's error message.
pub(super) async fn fetch(url: &str) -> anyhow::Result<Result<Value, String>> {
    let response = reqwest::get(url).await.with_context(|| {
        format!("cannot reach the catalog at {url}; start it with `meshline up`, or pass `--url`")
    })?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .with_context(|| format!("reading the answer of {url}"))?;
    let body: Value = serde_json::from_slice(&bytes)
        .with_context(|| format!("{url} did not answer a catalog document"))?;
    if status.is_success() {
        Ok(Ok(body))
    } else {
        Ok(Err(body["error"]
            .as_str()
            .unwrap_or("the catalog refused the request")
            .to_owned()))
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn print_list(body: &Value) {
    let products = body["products"].as_array().cloned().unwrap_or_default();
    for p in &products {
        println!(
            "{:<28} {:<16} {}",
            text(&p["id"]),
            text(&p["owner"]),
            text(&p["description"])
        );
        println!("{:<28} {}", "", text(&p["address"]));
    }
    println!("{} data product(s)", products.len());
}

fn print_product(p: &Value) {
    println!("{}  ({})", text(&p["id"]), text(&p["address"]));
    println!("  {}", text(&p["description"]));
    println!(
        "  owner:         {} <{}>",
        text(&p["owner"]["team"]),
        text(&p["owner"]["email"])
    );
    println!(
        "  topics:        {}  (ingress {}, dead letters {})",
        text(&p["topics"]["product"]),
        text(&p["topics"]["ingress"]),
        text(&p["topics"]["dlq"])
    );
    let schema = &p["schema"];
    println!(
        "  schema:        subject {}, id {}, version {}  ({})",
        text(&schema["subject"]),
        text(&schema["id"]),
        text(&schema["version"]),
        text(&schema["url"])
    );
    println!("  compatibility: {}", text(&p["compatibility"]));
    println!("  retention:     {}", text(&p["retention"]));
    for rule in p["rules"].as_array().into_iter().flatten() {
        println!(
            "  rule:          {}: {}  (on failure: {})",
            text(&rule["name"]),
            text(&rule["expression"]),
            text(&rule["on_failure"])
        );
    }
    if let Some(slos) = p["slos"].as_object() {
        for (name, slo) in slos.iter().filter(|(_, v)| !v.is_null()) {
            let threshold = slo
                .get("threshold")
                .filter(|t| !t.is_null())
                .map(|t| format!(", within {}", text(t)))
                .unwrap_or_default();
            println!(
                "  slo:           {name} {}% over {}{threshold}",
                text(&slo["objective"]),
                text(&slo["window"])
            );
        }
    }
    for (direction, label) in [("upstream", "computed from"), ("downstream", "feeds")] {
        for edge in p["lineage"][direction].as_array().into_iter().flatten() {
            println!(
                "  {:<15}{} ({})  {}",
                format!("{label}:"),
                text(&edge["product"]),
                text(&edge["port"]),
                text(&edge["address"])
            );
        }
    }
    if let Some(documents) = p["documents"].as_object() {
        for (standard, address) in documents {
            println!("  document:      {standard:<9} {}", text(address));
        }
    }
    for view in p["views"].as_array().into_iter().flatten() {
        println!(
            "  view:          {} ({} per {})  {}",
            text(&view["name"]),
            text(&view["kind"]),
            text(&view["window"]),
            text(&view["address"])
        );
    }
}
