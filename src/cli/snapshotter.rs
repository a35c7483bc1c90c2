//! `meshline snapshotter`: every product's views as Parquet snapshots, against a running Kafka
//! cluster and schema registry. `meshline up` runs the same with its own broker and registry.

use std::{net::SocketAddr, path::PathBuf, process::ExitCode, sync::Arc, time::Duration};

use anyhow::Context as _;
use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::lineage::{Lineage, LineageArgs};

use super::{parse_listen, ConfigArgs, DEFAULT_KAFKA, DEFAULT_REGISTRY_URL};
use crate::{
    broker,
    health::Readiness,
    server,
    snapshot::{self, spill::Spill, SnapshotterConfig, SqlCatalog, Store},
    telemetry::HttpMetrics,
};

/// Snapshotter settings shared by `meshline snapshotter` and `meshline up`.
#[derive(Debug, Clone, Args)]
pub struct SnapshotOptions {
    /// Where snapshots go: a directory, `file:///dir`, `memory://` or `s3://bucket/prefix`
    /// (default: the data directory).
    #[arg(long, env = "MESHLINE_SNAPSHOTS")]
    pub snapshots: Option<String>,
    /// Rows per Parquet file of an `events` view (bounds the memory of each open window).
    #[arg(long, default_value_t = 100_000)]
    pub max_rows_per_file: usize,
    /// Keys (`latest`) or groups (`aggregate`) a view holds in memory; past it they spill to
    /// `--spill-dir`.
    #[arg(long, default_value_t = 1_000_000)]
    pub max_state_rows: usize,
    /// Local directory view state spills to (default: `spill` under the data directory).
    #[arg(long)]
    pub spill_dir: Option<PathBuf>,
    /// Do not run the snapshotter.
    #[arg(long)]
    pub no_snapshots: bool,
    /// Prefix of the snapshotter's consumer groups (`<prefix>-<product>`).
    #[arg(long, default_value = "meshline-snapshotter")]
    pub snapshotter_group_prefix: String,
    /// The Iceberg SQL catalog `iceberg` views are registered in: an SQLite file (default:
    /// `iceberg-catalog.db` in the data directory), read by pyiceberg's `SqlCatalog` and the
    /// JDBC catalog of Spark, Trino and Flink.
    #[arg(long, env = "MESHLINE_ICEBERG_SQL_CATALOG")]
    pub iceberg_sql_catalog: Option<PathBuf>,
    /// The catalog's name in the SQL catalog (its `catalog_name` rows).
    #[arg(long, default_value = "meshline")]
    pub iceberg_sql_catalog_name: String,
    /// Register `iceberg` views in no SQL catalog: they are read by path or through the
    /// catalog's Iceberg REST API (for workers on several machines, which share no file).
    #[arg(long, conflicts_with = "iceberg_sql_catalog")]
    pub no_iceberg_sql_catalog: bool,
}

impl SnapshotOptions {
    /// The store, under `data_dir` unless `--snapshots` says otherwise.
    pub fn store(&self, data_dir: &std::path::Path) -> anyhow::Result<Store> {
        let location = self
            .snapshots
            .clone()
            .unwrap_or_else(|| data_dir.display().to_string());
        Store::open(&location).with_context(|| format!("opening the snapshot store {location}"))
    }

    /// The snapshotter's settings.
    pub fn config(
        &self,
        bootstrap: &str,
        registry_url: &str,
        store: Store,
        data_dir: &std::path::Path,
    ) -> SnapshotterConfig {
        let mut config = SnapshotterConfig::new(bootstrap, registry_url, store);
        config.max_rows_per_file = self.max_rows_per_file;
        let dir = self
            .spill_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("spill"));
        config.spill = Spill::new(dir, self.max_state_rows);
        config.group_prefix = self.snapshotter_group_prefix.clone();
        config.iceberg_catalog = (!self.no_iceberg_sql_catalog).then(|| {
            let path = self
                .iceberg_sql_catalog
                .clone()
                .unwrap_or_else(|| data_dir.join("iceberg-catalog.db"));
            SqlCatalog::new(path, &self.iceberg_sql_catalog_name)
        });
        config
    }
}

/// Arguments of `meshline snapshotter`.
#[derive(Debug, Args)]
pub struct SnapshotterArgs {
    /// Kafka bootstrap servers.
    #[arg(long, default_value = DEFAULT_KAFKA, env = "MESHLINE_BOOTSTRAP")]
    pub bootstrap: String,
    /// Schema registry URL.
    #[arg(long, default_value = DEFAULT_REGISTRY_URL, env = "MESHLINE_REGISTRY_URL")]
    pub registry_url: String,
    /// Directory the snapshots go under when `--snapshots` is not given.
    #[arg(long, default_value = ".meshline", env = "MESHLINE_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Address of the HTTP server (`/metrics`).
    #[arg(long, default_value = "127.0.0.1:8083", value_parser = parse_listen)]
    pub http_listen: SocketAddr,
    /// Snapshotter settings.
    #[command(flatten)]
    pub snapshot: SnapshotOptions,
    /// OpenLineage events.
    #[command(flatten)]
    pub lineage: LineageArgs,
    /// Descriptors.
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// Runs until Ctrl-C or SIGTERM, then writes each product's progress and stops.
pub(super) async fn run(args: SnapshotterArgs) -> anyhow::Result<ExitCode> {
    let catalog = Arc::new(args.config.load()?);
    broker::check_reachable(&args.bootstrap, Duration::from_secs(10)).await?;
    let store = args.snapshot.store(&args.data_dir)?;
    let stop = CancellationToken::new();
    super::spawn_signal_handler(stop.clone())?;
    let http_metrics = HttpMetrics::new("snapshotter").context("creating the HTTP metrics")?;
    let metrics = snapshot::Metrics::new(http_metrics.registry())
        .context("creating the snapshotter's metrics")?;
    let listener = server::bind(
        args.http_listen,
        "the snapshotter's HTTP server",
        "--http-listen",
    )
    .await?;
    let readiness = Readiness::default();
    snapshot::ready(&readiness, &catalog, &metrics);
    let http = server::spawn(
        listener,
        http_metrics.instrument(readiness.routes()),
        stop.clone(),
    );
    println!("snapshotter: writing to {}", store.uri(""));
    let (lineage, lineage_task) = Lineage::start(&args.lineage);
    let mut config =
        args.snapshot
            .config(&args.bootstrap, &args.registry_url, store, &args.data_dir);
    config.lineage = lineage.clone();
    snapshot::worker::run(config, catalog, metrics, stop).await;
    super::finish_lineage(lineage, lineage_task).await;
    http.await.ok();
    Ok(ExitCode::SUCCESS)
}
