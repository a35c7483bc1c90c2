//! The SLO state of a running meshline, computed from two scrapes of its `/metrics` taken
//! `interval` apart: rates over the interval, SLIs since the process started, and the burn rate
//! over the interval against each objective's error budget. Pure: scrapes in, rows out.

use std::{fmt::Write as _, time::Duration};

use prometheus_parse::{Sample, Scrape, Value};

use super::{error_budget, Sli};
use crate::product::{Catalog, Product};

/// Good and all events of an SLI, as counted by the metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Counts {
    /// Events that met the objective.
    pub good: f64,
    /// All events.
    pub all: f64,
}

/// One SLO's state.
#[derive(Debug, Clone, PartialEq)]
pub struct SloState {
    /// The SLI.
    pub sli: Sli,
    /// Objective, in percent.
    pub objective: f64,
    /// Good ÷ all since the process started, in percent (`None`: no events yet).
    pub since_start: Option<f64>,
    /// Error ratio over the interval ÷ error budget (`None`: no events in the interval).
    pub burn_rate: Option<f64>,
}

impl SloState {
    /// `ok`, `page` (burning at 14.4× or more), `ticket` (3× or more), `below` (under its
    /// objective since start) or `no data`.
    pub fn verdict(&self) -> &'static str {
        match (self.burn_rate, self.since_start) {
            (Some(b), _) if b >= 14.4 => "page",
            (Some(b), _) if b >= 3.0 => "ticket",
            (_, Some(s)) if s < self.objective => "below",
            (None, None) => "no data",
            _ => "ok",
        }
    }
}

/// One product's row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Product id.
    pub product: String,
    /// Events handled per second over the interval (duplicates left out).
    pub events_per_second: f64,
    /// Dead letters per second over the interval.
    pub dead_letters_per_second: f64,
    /// Ingress records not yet handled.
    pub lag: f64,
    /// Its SLOs.
    pub slos: Vec<SloState>,
    /// Per view: seconds since the instant its windows are complete through (its watermark).
    pub snapshots_behind: Vec<(String, Option<f64>)>,
}

fn is_product(sample: &Sample, product: &str) -> bool {
    sample.labels.get("product") == Some(product)
}

fn scalar(value: &Value) -> f64 {
    match value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        Value::Histogram(_) | Value::Summary(_) => 0.0,
    }
}

fn sum(scrape: &Scrape, metric: &str, keep: impl Fn(&Sample) -> bool) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric && keep(s))
        .map(|s| scalar(&s.value))
        .sum()
}

/// Good and all events of `sli` for `product` in `scrape`.
pub fn counts(scrape: &Scrape, product: &str, sli: Sli, threshold: Option<Duration>) -> Counts {
    let metric = sli.metric();
    match sli {
        Sli::Validity => {
            let outcome = |s: &Sample| s.labels.get("outcome").unwrap_or_default().to_owned();
            let all = sum(scrape, metric, |s| {
                is_product(s, product) && outcome(s) != "duplicate"
            });
            let bad = sum(scrape, metric, |s| {
                is_product(s, product) && outcome(s) == "dead_lettered"
            });
            Counts {
                good: all - bad,
                all,
            }
        }
        Sli::Availability => {
            let all = sum(scrape, metric, |s| is_product(s, product));
            let bad = sum(scrape, metric, |s| {
                is_product(s, product) && s.labels.get("code").is_some_and(|c| c.starts_with('5'))
            });
            Counts {
                good: all - bad,
                all,
            }
        }
        Sli::Freshness | Sli::Timeliness => {
            let le = threshold.map_or(0.0, |t| t.as_secs_f64());
            let mut counts = Counts::default();
            for sample in scrape
                .samples
                .iter()
                .filter(|s| s.metric == metric && is_product(s, product))
            {
                if let Value::Histogram(buckets) = &sample.value {
                    for bucket in buckets {
                        if bucket.less_than.is_infinite() {
                            counts.all += bucket.count;
                        } else if (bucket.less_than - le).abs() < 1e-9 {
                            counts.good += bucket.count;
                        }
                    }
                }
            }
            counts
        }
    }
}

/// The rows of every product, from scrapes `before` and `after` taken `interval` apart.
pub fn rows(
    catalog: &Catalog,
    before: &Scrape,
    after: &Scrape,
    interval: Duration,
    now_unix: f64,
) -> Vec<Row> {
    catalog
        .iter()
        .map(|p| row(p, before, after, interval, now_unix))
        .collect()
}

fn row(product: &Product, before: &Scrape, after: &Scrape, interval: Duration, now: f64) -> Row {
    let id = product.id();
    let secs = interval.as_secs_f64().max(1e-3);
    let delta = |metric: &str, keep: &dyn Fn(&Sample) -> bool| {
        (sum(after, metric, keep) - sum(before, metric, keep)).max(0.0) / secs
    };
    let events_per_second = delta("meshline_gateway_events_total", &|s| {
        is_product(s, id) && s.labels.get("outcome") != Some("duplicate")
    });
    let dead_letters_per_second = delta("meshline_gateway_dead_letters_total", &|s| {
        is_product(s, id)
    });
    let lag = sum(after, "meshline_gateway_consumer_lag", |s| {
        is_product(s, id)
    });
    let slos = Sli::ALL
        .into_iter()
        .filter_map(|sli| {
            let objective = sli.objective(&product.descriptor.slos)?;
            let threshold = objective.threshold.map(|t| t.0);
            let (then, now) = (
                counts(before, id, sli, threshold),
                counts(after, id, sli, threshold),
            );
            let all = now.all - then.all;
            let bad = all - (now.good - then.good);
            Some(SloState {
                sli,
                objective: objective.objective,
                since_start: (now.all > 0.0).then(|| 100.0 * now.good / now.all),
                burn_rate: (all > 0.0)
                    .then(|| (bad / all) / error_budget(objective.objective).max(1e-12)),
            })
        })
        .collect();
    let snapshots_behind = product
        .descriptor
        .views
        .iter()
        .map(|view| {
            let through = after
                .samples
                .iter()
                .filter(|s| {
                    s.metric == "meshline_snapshot_closed_through_seconds"
                        && is_product(s, id)
                        && s.labels.get("view") == Some(view.name.as_str())
                })
                .map(|s| scalar(&s.value))
                .fold(None, |max: Option<f64>, v| {
                    Some(max.map_or(v, |m| m.max(v)))
                });
            (view.name.clone(), through.map(|t| (now - t).max(0.0)))
        })
        .collect();
    Row {
        product: id.to_owned(),
        events_per_second,
        dead_letters_per_second,
        lag,
        slos,
        snapshots_behind,
    }
}

/// The rows as a terminal table.
pub fn render(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<26} {:>10} {:>9} {:>7}  SLOS (since start, burn rate over the interval)",
        "PRODUCT", "EVENTS/S", "DLQ/S", "LAG"
    );
    for row in rows {
        let slos: Vec<String> = row
            .slos
            .iter()
            .map(|s| {
                let since = s
                    .since_start
                    .map_or_else(|| "-".to_owned(), |v| format!("{v:.2}%"));
                let burn = s
                    .burn_rate
                    .map_or_else(|| "-".to_owned(), |b| format!("{b:.1}x"));
                format!(
                    "{} {since}/{}% burn {burn} {}",
                    s.sli.name(),
                    s.objective,
                    s.verdict()
                )
            })
            .collect();
        let _ = writeln!(
            out,
            "{:<26} {:>10.1} {:>9.1} {:>7}  {}",
            row.product,
            row.events_per_second,
            row.dead_letters_per_second,
            row.lag,
            if slos.is_empty() {
                "none declared".to_owned()
            } else {
                slos.join("; ")
            }
        );
        for (view, behind) in &row.snapshots_behind {
            let behind = behind.map_or_else(
                || "no snapshot yet".to_owned(),
                |b| {
                    format!(
                        "complete through {} ago (the watermark)",
                        humantime::format_duration(Duration::from_secs(b as u64))
                    )
                },
            );
            let _ = writeln!(out, "{:<26} snapshots of {view}: {behind}", "");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrape(text: &str) -> Scrape {
        Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
    }

    const BEFORE: &str = r#"
# TYPE meshline_gateway_events_total counter
meshline_gateway_events_total{domain="player",product="player.play-events",outcome="accepted"} 1000
meshline_gateway_events_total{domain="player",product="player.play-events",outcome="dead_lettered"} 0
meshline_gateway_events_total{domain="player",product="player.play-events",outcome="duplicate"} 50
# TYPE meshline_gateway_freshness_seconds histogram
meshline_gateway_freshness_seconds_bucket{domain="player",product="player.play-events",le="5"} 990
meshline_gateway_freshness_seconds_bucket{domain="player",product="player.play-events",le="+Inf"} 1000
meshline_gateway_freshness_seconds_sum{domain="player",product="player.play-events"} 100
meshline_gateway_freshness_seconds_count{domain="player",product="player.play-events"} 1000
"#;

    const AFTER: &str = r#"
# TYPE meshline_gateway_events_total counter
meshline_gateway_events_total{domain="player",product="player.play-events",outcome="accepted"} 1900
meshline_gateway_events_total{domain="player",product="player.play-events",outcome="dead_lettered"} 100
meshline_gateway_events_total{domain="player",product="player.play-events",outcome="duplicate"} 500
# TYPE meshline_gateway_freshness_seconds histogram
meshline_gateway_freshness_seconds_bucket{domain="player",product="player.play-events",le="5"} 1990
meshline_gateway_freshness_seconds_bucket{domain="player",product="player.play-events",le="+Inf"} 2000
meshline_gateway_freshness_seconds_sum{domain="player",product="player.play-events"} 200
meshline_gateway_freshness_seconds_count{domain="player",product="player.play-events"} 2000
# TYPE meshline_gateway_consumer_lag gauge
meshline_gateway_consumer_lag{domain="player",product="player.play-events",partition="0"} 7
meshline_gateway_consumer_lag{domain="player",product="player.play-events",partition="1"} 3
"#;

    #[test]
    fn validity_counts_dead_letters_as_bad_and_leaves_duplicates_out() {
        let c = counts(&scrape(AFTER), "player.play-events", Sli::Validity, None);
        assert_eq!(
            c,
            Counts {
                good: 1900.0,
                all: 2000.0
            }
        );
    }

    #[test]
    fn latency_slis_count_events_under_the_threshold_as_good() {
        let c = counts(
            &scrape(AFTER),
            "player.play-events",
            Sli::Freshness,
            Some(Duration::from_secs(5)),
        );
        assert_eq!(
            c,
            Counts {
                good: 1990.0,
                all: 2000.0
            }
        );
    }

    #[test]
    fn a_product_row_has_rates_lag_and_burn_rates() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let catalog = crate::formats::load_catalog(&root.join("config")).unwrap();
        let rows = rows(
            &catalog,
            &scrape(BEFORE),
            &scrape(AFTER),
            Duration::from_secs(10),
            0.0,
        );
        let player = rows
            .iter()
            .find(|r| r.product == "player.play-events")
            .unwrap();
        assert_eq!(player.events_per_second, 100.0);
        assert_eq!(player.lag, 10.0);
        let validity = &player.slos[0];
        assert_eq!(validity.sli, Sli::Validity);
        assert_eq!(validity.since_start, Some(95.0));
        // 10% errors in the interval against a 0.5% budget
        assert!((validity.burn_rate.unwrap() - 20.0).abs() < 1e-9);
        assert_eq!(validity.verdict(), "page");
        let freshness = &player.slos[1];
        assert_eq!(freshness.burn_rate, Some(0.0));
        assert_eq!(freshness.verdict(), "ok");
        assert!(render(&rows).contains("validity 95.00%/99.5% burn 20.0x page"));
    }
}
