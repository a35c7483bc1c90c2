//! `meshline slo generate`: Prometheus rules and Grafana dashboards from the descriptors;
//! `meshline status`: the SLO state of a running meshline in the terminal.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context as _;
use clap::{Args, Subcommand};

use super::ConfigArgs;
use crate::slo;

/// `meshline slo …`
#[derive(Debug, Subcommand)]
pub enum SloCommand {
    /// Write every product's Prometheus rules (`<out>/prometheus/rules/<id>.yaml`: Sloth-style
    /// recordings and multi-window multi-burn-rate alerts) and Grafana dashboard
    /// (`<out>/grafana/dashboards/<id>.json`), or with `--format` its Sloth spec
    /// (`<out>/sloth/<id>.yaml`) or OpenSLO documents (`<out>/openslo/<id>.yaml`); files of
    /// products no longer declared are removed.
    Generate {
        /// Output directory.
        #[arg(long, default_value = "deploy")]
        out: PathBuf,
        /// What to write.
        #[arg(long, value_enum, default_value_t)]
        format: slo::Format,
        /// Where the descriptors are.
        #[command(flatten)]
        config: ConfigArgs,
    },
}

/// `meshline status`
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The gateway's HTTP server (its `/metrics`; in `meshline up`, the snapshotter's too).
    #[arg(
        long,
        default_value = "http://127.0.0.1:8080",
        env = "MESHLINE_GATEWAY_URL"
    )]
    url: String,
    /// Time between the two scrapes the rates come from.
    #[arg(long, default_value = "2s")]
    interval: humantime::Duration,
    /// Refresh every interval until Ctrl-C.
    #[arg(long)]
    watch: bool,
    /// Where the descriptors are (for the objectives).
    #[command(flatten)]
    config: ConfigArgs,
}

/// Runs a `slo` subcommand.
pub(super) async fn run(command: SloCommand) -> anyhow::Result<ExitCode> {
    match command {
        SloCommand::Generate {
            out,
            format,
            config,
        } => {
            let catalog = config.load()?;
            let files = slo::generate(&catalog, format)?;
            for dir in format.dirs() {
                let dir = out.join(dir);
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                for entry in std::fs::read_dir(&dir)? {
                    let path = entry?.path();
                    let relative = path.strip_prefix(&out).unwrap_or(&path).to_owned();
                    if path.is_file() && !files.contains_key(&relative) {
                        std::fs::remove_file(&path)
                            .with_context(|| format!("removing stale {}", path.display()))?;
                        println!("removed {}", path.display());
                    }
                }
            }
            for (relative, text) in &files {
                let path = out.join(relative);
                std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("wrote {}", path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs `meshline status`.
pub(super) async fn status(args: StatusArgs) -> anyhow::Result<ExitCode> {
    let catalog = args.config.load()?;
    let url = format!("{}/metrics", args.url.trim_end_matches('/'));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let interval: Duration = args.interval.into();
    let mut before = scrape(&client, &url).await?;
    loop {
        tokio::time::sleep(interval).await;
        let after = scrape(&client, &url).await?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let rows = slo::status::rows(&catalog, &before, &after, interval, now);
        if args.watch {
            // clear the screen, cursor home
            print!("\x1b[2J\x1b[H");
        }
        print!("{}", slo::status::render(&rows));
        if !args.watch {
            return Ok(ExitCode::SUCCESS);
        }
        before = after;
    }
}

async fn scrape(client: &reqwest::Client, url: &str) -> anyhow::Result<prometheus_parse::Scrape> {
    let text = client
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| {
            format!(
                "scraping {url}; is meshline running (`meshline up`), and is --url its gateway?"
            )
        })?
        .text()
        .await?;
    Ok(prometheus_parse::Scrape::parse(
        text.lines().map(|l| Ok(l.to_owned())),
    )?)
}
