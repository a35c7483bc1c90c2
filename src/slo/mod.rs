//! Service-level objectives of data products, derived from their descriptors:
//!
//! - the SLIs, each with the metrics that measure it and its PromQL, are the core's
//!   (`product::sli`), since descriptors name them;
//! - [`rules`]: Prometheus recording rules and multi-window multi-burn-rate alerts, in the
//!   naming Sloth uses (`slo:sli_error:ratio_rate5m` … );
//! - [`dashboard`]: one Grafana dashboard per product;
//! - [`status`]: the SLO state of a running meshline, from its `/metrics`, for `meshline status`.
//!
//! Everything here is pure: descriptors in, text out.

pub mod dashboard;
pub mod rules;
pub mod status;

use std::{collections::BTreeMap, path::PathBuf};

use crate::product::Catalog;

/// Where generated rule files go, under the output directory.
pub const RULES_DIR: &str = "prometheus/rules";
/// Where generated dashboards go, under the output directory.
pub const DASHBOARDS_DIR: &str = "grafana/dashboards";

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

/// Every file the descriptors imply, by path relative to the output directory: one rule file
/// per product with SLOs, one dashboard per product.
pub fn generate(catalog: &Catalog) -> Result<BTreeMap<PathBuf, String>> {
    let mut files = BTreeMap::new();
    for product in catalog.iter() {
        let id = product.id();
        if let Some(file) = rules::for_product(product) {
            let yaml = rules::to_yaml(product, &file).map_err(|source| Error::Yaml {
                product: id.to_owned(),
                source,
            })?;
            files.insert(PathBuf::from(RULES_DIR).join(format!("{id}.yaml")), yaml);
        }
        let dashboard =
            dashboard::to_json(&dashboard::for_product(product)).map_err(|source| Error::Json {
                product: id.to_owned(),
                source,
            })?;
        files.insert(
            PathBuf::from(DASHBOARDS_DIR).join(format!("{id}.json")),
            dashboard,
        );
    }
    Ok(files)
}

pub use crate::product::sli::{
    bucket_list, error_budget, prom_duration, ratio, Sli, DELAY_BUCKETS, FRESHNESS_BUCKETS,
};
