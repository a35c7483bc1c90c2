//! The service-level indicators a descriptor may declare objectives for: the bucket bounds a
//! latency objective's threshold must be one of (the metrics' histogram buckets), the metric
//! each is measured by, and its good and total events in PromQL.

use std::time::Duration;

use super::{Objective, Slos};

/// Upper bounds of `meshline_gateway_freshness_seconds`' buckets, in seconds. A freshness
/// objective's `threshold` must be one of them: the rules count the events under it.
pub const FRESHNESS_BUCKETS: &[f64] = &[
    0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
];

/// Upper bounds of `meshline_snapshot_delay_seconds`' buckets, in seconds. A timeliness
/// objective's `threshold` must be one of them.
pub const DELAY_BUCKETS: &[f64] = &[
    1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0, 86400.0,
];

/// A service-level indicator of a data product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sli {
    /// Events that pass the contract ÷ all events the gateway handled.
    Validity,
    /// Events available in the product topic within the threshold of their event time ÷ all.
    Freshness,
    /// HTTP ingress requests answered without a server error ÷ all.
    Availability,
    /// Snapshot windows written within the threshold of their close ÷ all.
    Timeliness,
}

impl Sli {
    /// Every SLI, in the order dashboards and rules show them.
    pub const ALL: [Self; 4] = [
        Self::Validity,
        Self::Freshness,
        Self::Availability,
        Self::Timeliness,
    ];

    /// The SLI's name, as in descriptors and the `sloth_slo` label.
    pub fn name(self) -> &'static str {
        match self {
            Self::Validity => "validity",
            Self::Freshness => "freshness",
            Self::Availability => "availability",
            Self::Timeliness => "timeliness",
        }
    }

    /// The descriptor field declaring its objective.
    pub fn field(self) -> &'static str {
        match self {
            Self::Validity => "slos.validity",
            Self::Freshness => "slos.freshness",
            Self::Availability => "slos.availability",
            Self::Timeliness => "slos.timeliness",
        }
    }

    /// The objective a descriptor declares for it.
    pub fn objective(self, slos: &Slos) -> Option<&Objective> {
        match self {
            Self::Validity => slos.validity.as_ref(),
            Self::Freshness => slos.freshness.as_ref(),
            Self::Availability => slos.availability.as_ref(),
            Self::Timeliness => slos.timeliness.as_ref(),
        }
    }

    /// The bucket bounds a threshold must be one of (empty: the SLI takes no threshold).
    pub fn buckets(self) -> &'static [f64] {
        match self {
            Self::Freshness => FRESHNESS_BUCKETS,
            Self::Timeliness => DELAY_BUCKETS,
            Self::Validity | Self::Availability => &[],
        }
    }
}

/// The buckets, as durations, for error messages.
pub fn bucket_list(buckets: &[f64]) -> String {
    buckets
        .iter()
        .map(|b| humantime::format_duration(Duration::from_secs_f64(*b)).to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

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
        self.total(product, &|series| format!("rate({series}[{window}])"))
    }

    /// PromQL: the number of events over `window`.
    pub fn total_increase(self, product: &str, window: &str) -> String {
        self.total(product, &|series| format!("increase({series}[{window}])"))
    }

    /// PromQL: the number of events ever counted (a counter, for tools that take rates
    /// themselves).
    pub fn total_events(self, product: &str) -> String {
        self.total(product, &|series| series.to_owned())
    }

    /// PromQL: the per-second rate of bad events over `window` (0 when there are none).
    pub fn error_rate(self, product: &str, window: &str, threshold: Option<Duration>) -> String {
        self.bad(product, threshold, &|series| {
            format!("rate({series}[{window}])")
        })
    }

    /// PromQL: the number of bad events ever counted (a counter, for tools that take rates
    /// themselves).
    pub fn bad_events(self, product: &str, threshold: Option<Duration>) -> String {
        self.bad(product, threshold, &|series| series.to_owned())
    }

    /// The sum of `over(series)` of every event.
    fn total(self, product: &str, over: &dyn Fn(&str) -> String) -> String {
        let series = match self {
            Self::Validity => format!(
                "{}{}",
                self.metric(),
                Self::selector(product, ",outcome!=\"duplicate\"")
            ),
            _ => self.presence(product),
        };
        format!("sum({})", over(&series))
    }

    /// The sum of `over(series)` of the bad events.
    fn bad(
        self,
        product: &str,
        threshold: Option<Duration>,
        over: &dyn Fn(&str) -> String,
    ) -> String {
        let metric = self.metric();
        match self {
            Self::Validity => format!(
                "sum({})",
                over(&format!(
                    "{metric}{}",
                    Self::selector(product, ",outcome=\"dead_lettered\"")
                ))
            ),
            Self::Availability => format!(
                "(sum({}) or vector(0))",
                over(&format!(
                    "{metric}{}",
                    Self::selector(product, ",code=~\"5..\"")
                ))
            ),
            Self::Freshness | Self::Timeliness => {
                let le = threshold.map_or(0.0, |t| t.as_secs_f64());
                // Prometheus 3 writes `le` as a float (`5.0`), earlier versions as scraped (`5`)
                format!(
                    "({} - sum({}))",
                    self.total(product, over),
                    over(&format!(
                        "{metric}_bucket{}",
                        Self::selector(product, &format!(",le=~\"{le}(\\\\.0)?\""))
                    ))
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
