//! Service-level objectives of data products, derived from their descriptors:
//!
//! - the SLIs, each with the metrics that measure it and its PromQL, are the core's
//!   (`product::sli`), since descriptors name them;
//! - [`rules`]: Prometheus recording rules and multi-window multi-burn-rate alerts, in the
//!   naming Sloth uses (`slo:sli_error:ratio_rate5m` … );
//! - [`dashboard`]: one Grafana dashboard per product;
//! - [`sloth`] and [`openslo`]: the same SLOs as a Sloth spec and as OpenSLO documents, for
//!   teams whose own pipeline generates rules from those;
//! - [`status`]: the SLO state of a running meshline, from its `/metrics`, for `meshline status`.
//!
//! Everything here is pure: descriptors in, text out.

pub mod dashboard;
pub mod openslo;
pub mod rules;
pub mod sloth;
pub mod status;

use std::{collections::BTreeMap, path::PathBuf};

use crate::product::Catalog;

/// Where generated rule files go, under the output directory.
pub const RULES_DIR: &str = "prometheus/rules";
/// Where generated dashboards go, under the output directory.
pub const DASHBOARDS_DIR: &str = "grafana/dashboards";
/// Where generated Sloth specs go, under the output directory.
pub const SLOTH_DIR: &str = "sloth";
/// Where generated OpenSLO documents go, under the output directory.
pub const OPENSLO_DIR: &str = "openslo";

/// What `meshline slo generate` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// Prometheus rules and Grafana dashboards, ready to load.
    #[default]
    Prometheus,
    /// Sloth specs (`prometheus/v1`), for Sloth to generate the rules.
    Sloth,
    /// OpenSLO v1 documents.
    Openslo,
}

impl Format {
    /// The directories (under the output directory) this format's files go to.
    pub fn dirs(self) -> &'static [&'static str] {
        match self {
            Self::Prometheus => &[RULES_DIR, DASHBOARDS_DIR],
            Self::Sloth => &[SLOTH_DIR],
            Self::Openslo => &[OPENSLO_DIR],
        }
    }
}

/// Errors of this module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A rule file cannot be written as YAML.
    #[error("writing the rules of {product} as YAML: {source}")]
    Yaml {
        /// The product.
        product: String,
        /// Why.
        #[source]
        source: serde_norway::Error,
    },
    /// A dashboard cannot be written as JSON.
    #[error("writing the dashboard of {product} as JSON: {source}")]
    Json {
        /// The product.
        product: String,
        /// Why.
        #[source]
        source: serde_json::Error,
    },
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every file the descriptors imply in `format`, by path relative to the output directory:
/// for Prometheus one rule file per product with SLOs and one dashboard per product; for Sloth
/// and OpenSLO one file per product with SLOs.
pub fn generate(catalog: &Catalog, format: Format) -> Result<BTreeMap<PathBuf, String>> {
    let mut files = BTreeMap::new();
    for product in catalog.iter() {
        let id = product.id();
        let yaml_error = |source| Error::Yaml {
            product: id.to_owned(),
            source,
        };
        let file =
            |dir: &str, extension: &str| PathBuf::from(dir).join(format!("{id}.{extension}"));
        match format {
            Format::Prometheus => {
                if let Some(rules) = rules::for_product(product) {
                    let yaml = rules::to_yaml(product, &rules).map_err(yaml_error)?;
                    files.insert(file(RULES_DIR, "yaml"), yaml);
                }
                let dashboard =
                    dashboard::to_json(&dashboard::for_product(product)).map_err(|source| {
                        Error::Json {
                            product: id.to_owned(),
                            source,
                        }
                    })?;
                files.insert(file(DASHBOARDS_DIR, "json"), dashboard);
            }
            Format::Sloth => {
                if let Some(spec) = sloth::for_product(product) {
                    let yaml = sloth::to_yaml(product, &spec).map_err(yaml_error)?;
                    files.insert(file(SLOTH_DIR, "yaml"), yaml);
                }
            }
            Format::Openslo => {
                let docs = openslo::for_product(product);
                if !docs.is_empty() {
                    let yaml = openslo::to_yaml(product, &docs).map_err(yaml_error)?;
                    files.insert(file(OPENSLO_DIR, "yaml"), yaml);
                }
            }
        }
    }
    Ok(files)
}

pub use crate::product::sli::{
    bucket_list, error_budget, prom_duration, ratio, Sli, DELAY_BUCKETS, FRESHNESS_BUCKETS,
};
