//! Service-level objectives of data products, derived from their descriptors:
//!
//! - this module: the SLIs, each with the metrics that measure it and its PromQL;
//! - [`rules`]: Prometheus recording rules and multi-window multi-burn-rate alerts, in the
//!   naming Sloth uses (`slo:sli_error:ratio_rate5m` … );
//! - [`dashboard`]: one Grafana dashboard per product;
//! - [`status`]: the SLO state of a running meshline, from its `/metrics`, for `meshline status`.
//!
//! Everything here is pure: descriptors in, text out.

pub mod dashboard;
pub mod rules;
pub mod status;

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use crate::product::{Catalog, Objective};

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

pub use crate::product::sli::{bucket_list, Sli, DELAY_BUCKETS, FRESHNESS_BUCKETS};

impl Sli {
    /// The metric measuring it.
    pub fn metric(self) -> &'static str {
        match self {
            Self::Validity => "meshline_gateway_events_total",
            Self::Freshness => "meshline_gateway_freshness_seconds",
            Self::Availability => "meshline_gateway_ingress_requests_total",
            Self::Timeliness => "meshline_snapshot_delay_seconds",
        }
    }

    /// What a good event is, for people.
    pub fn describe(self, objective: &Objective) -> String {
        let threshold = objective
            .threshold
            .map(|t| humantime::format_duration(t.0).to_string())
            .unwrap_or_default();
        match self {
            Self::Validity => "events that pass the contract".to_owned(),
            Self::Freshness => {
                format!("events in the product topic within {threshold} of their time")
            }
            Self::Availability => {
                "HTTP ingress requests answered without a server error".to_owned()
            }
            Self::Timeliness => {
                format!("snapshot windows written within {threshold} of their close")
            }
        }
    }

    /// What to look at when its budget burns.
    pub fn runbook(self, product: &str) -> String {
        match self {
            Self::Validity => format!(
                "See why with `meshline tail {product} --dlq`; fix the producer, then `meshline dlq replay {product}`."
            ),
            Self::Freshness => "Check the gateway's consumer lag (meshline_gateway_consumer_lag) and the producers' clocks.".to_owned(),
            Self::Availability => "Check the gateway's logs: 5xx answers mean the broker or the registry is unreachable.".to_owned(),
            Self::Timeliness => "Check the snapshotter's logs and its object store; an idle partition holds windows open until idle_timeout.".to_owned(),
        }
    }

    /// Default of `min_events`: the traffic below which burn-rate alerts stay silent.
    pub fn default_min_events(self) -> u64 {
        match self {
            Self::Timeliness => 1,
            _ => 100,
        }
    }

    /// PromQL selector of `product`'s series.
    fn selector(product: &str, extra: &str) -> String {
        format!("{{product=\"{product}\"{extra}}}")
    }

    /// The series whose absence means nothing measures the SLI.
    pub fn presence(self, product: &str) -> String {
        let metric = match self {
            Self::Freshness | Self::Timeliness => format!("{}_count", self.metric()),
            _ => self.metric().to_owned(),
        };
        format!("{metric}{}", Self::selector(product, ""))
    }

    /// PromQL: the per-second rate of events over `window`.
    pub fn total_rate(self, product: &str, window: &str) -> String {
        format!("sum(rate({}[{window}]))", self.total_series(product))
    }

    /// PromQL: the number of events over `window`.
    pub fn total_increase(self, product: &str, window: &str) -> String {
        format!("sum(increase({}[{window}]))", self.total_series(product))
    }

    fn total_series(self, product: &str) -> String {
        match self {
            Self::Validity => format!(
                "{}{}",
                self.metric(),
                Self::selector(product, ",outcome!=\"duplicate\"")
            ),
            _ => self.presence(product),
        }
    }

    /// PromQL: the per-second rate of bad events over `window` (0 when there are none).
    pub fn error_rate(self, product: &str, window: &str, threshold: Option<Duration>) -> String {
        let metric = self.metric();
        match self {
            Self::Validity => format!(
                "sum(rate({metric}{}[{window}]))",
                Self::selector(product, ",outcome=\"dead_lettered\"")
            ),
            Self::Availability => format!(
                "(sum(rate({metric}{}[{window}])) or vector(0))",
                Self::selector(product, ",code=~\"5..\"")
            ),
            Self::Freshness | Self::Timeliness => {
                let le = threshold.map_or(0.0, |t| t.as_secs_f64());
                // Prometheus 3 writes `le` as a float (`5.0`), earlier versions as scraped (`5`)
                format!(
                    "({} - sum(rate({metric}_bucket{}[{window}])))",
                    self.total_rate(product, window),
                    Self::selector(product, &format!(",le=~\"{le}(\\\\.0)?\""))
                )
            }
        }
    }

    /// PromQL: the ratio of bad events over `window`; no sample at all (not NaN) when there
    /// were no events, so averages over the SLO window skip quiet spells instead of turning NaN
    /// for the whole window.
    pub fn error_ratio(self, product: &str, window: &str, threshold: Option<Duration>) -> String {
        format!(
            "{}\n/\n({} > 0)",
            self.error_rate(product, window, threshold),
            self.total_rate(product, window)
        )
    }
}

/// A duration in PromQL's notation, in its largest whole unit (`28d`, `6h`, `5m`, `90s`).
pub fn prom_duration(d: Duration) -> String {
    let secs = d.as_secs().max(1);
    for (unit, size) in [("d", 86_400), ("h", 3_600), ("m", 60)] {
        if secs.is_multiple_of(size) {
            return format!("{}{unit}", secs / size);
        }
    }
    format!("{secs}s")
}

/// A ratio without float noise (`1 - 0.995` is `0.005`, not `0.0050000000000000044`).
pub fn ratio(value: f64) -> String {
    let rounded = format!("{value:.10}");
    rounded
        .trim_end_matches('0')
        .trim_end_matches('.')
        .to_owned()
}

/// The error budget of an objective in percent, as a ratio (`99.5` → `0.005`).
pub fn error_budget(objective: f64) -> f64 {
    ((100.0 - objective) / 100.0 * 1e10).round() / 1e10
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_use_their_largest_whole_unit() {
        assert_eq!(prom_duration(Duration::from_secs(28 * 86_400)), "28d");
        assert_eq!(prom_duration(Duration::from_secs(6 * 3_600)), "6h");
        assert_eq!(prom_duration(Duration::from_secs(300)), "5m");
        assert_eq!(prom_duration(Duration::from_secs(90)), "90s");
    }

    #[test]
    fn ratios_have_no_float_noise() {
        assert_eq!(ratio(error_budget(99.5)), "0.005");
        assert_eq!(ratio(error_budget(99.9)), "0.001");
        assert_eq!(ratio(0.995), "0.995");
        assert_eq!(ratio(1.0), "1");
    }

    #[test]
    fn latency_errors_count_the_events_over_the_threshold() {
        let q = Sli::Freshness.error_rate("a.b", "5m", Some(Duration::from_secs(5)));
        assert_eq!(
            q,
            "(sum(rate(meshline_gateway_freshness_seconds_count{product=\"a.b\"}[5m])) - sum(rate(meshline_gateway_freshness_seconds_bucket{product=\"a.b\",le=~\"5(\\\\.0)?\"}[5m])))"
        );
    }
}
