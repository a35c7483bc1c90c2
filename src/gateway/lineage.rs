//! The gateway's OpenLineage runs: one per product for the life of this gateway, job
//! `gateway.<product>`, reading the product's ingress topic (and, for a derived product, the
//! upstream ports its descriptor declares) and writing its product and dead-letter topics.
//! `START` when the gateway starts, `RUNNING` every interval and `COMPLETE` when it stops,
//! each with the run's counts so far, read from the gateway's metrics: events handled (the
//! ingress' data quality metrics), each quality rule's result (the assertions: passed while no
//! event failed it), events written to each output (output statistics).

use std::{collections::BTreeMap, sync::Arc};

use prometheus::proto::MetricFamily;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::metrics::RULE_FAILURES;
use crate::{
    lineage::{facet, EventType, Job, Lineage, Naming, Run},
    product::{Catalog, Product},
};

/// The gateway's runs, reporting until [`GatewayLineage::complete`].
#[derive(Debug)]
pub struct GatewayLineage {
    reporter: Arc<Reporter>,
    task: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Reporter {
    lineage: Lineage,
    naming: Naming,
    catalog: Arc<Catalog>,
    metrics: prometheus::Registry,
    runs: BTreeMap<String, Run>,
}

impl GatewayLineage {
    /// Starts a run per product of `catalog` (a `START` event each), then reports every
    /// `lineage.interval` until `stop`.
    pub fn start(
        lineage: Lineage,
        naming: Naming,
        catalog: Arc<Catalog>,
        metrics: prometheus::Registry,
        stop: CancellationToken,
    ) -> Self {
        let runs = catalog
            .iter()
            .map(|p| (p.id().to_owned(), Run::new()))
            .collect();
        let reporter = Arc::new(Reporter {
            lineage,
            naming,
            catalog,
            metrics,
            runs,
        });
        if !reporter.lineage.enabled() {
            return Self {
                reporter,
                task: None,
            };
        }
        reporter.report(EventType::Start);
        let periodic = reporter.clone();
        let task = tokio::spawn(async move {
            let mut interval = tokio::time::interval(periodic.lineage.interval);
            interval.tick().await;
            loop {
                tokio::select! {
                    _ = interval.tick() => periodic.report(EventType::Running),
                    () = stop.cancelled() => break,
                }
            }
        });
        Self {
            reporter,
            task: Some(task),
        }
    }

    /// Ends every run (a `COMPLETE` event each, with the final counts): call once the gateway's
    /// stream has stopped.
    pub async fn complete(self) {
        if let Some(task) = self.task {
            task.await.ok();
            self.reporter.report(EventType::Complete);
        }
    }
}

impl Reporter {
    fn report(&self, kind: EventType) {
        let families = self.metrics.gather();
        for product in self.catalog.iter() {
            if let Some(run) = self.runs.get(product.id()) {
                let counts = (kind != EventType::Start).then(|| Counts::of(&families, product));
                let job = self.job(product, counts.as_ref());
                self.lineage.emit(self.lineage.run_event(kind, run, job));
            }
        }
    }

    fn job(&self, product: &Product, counts: Option<&Counts>) -> Job<'static> {
        let topics = product.topics();
        let mut ingress = self.naming.topic(&topics.ingress, Some(product));
        let mut out = self.naming.topic(&topics.product, Some(product));
        let mut dlq = self.naming.topic(&topics.dlq, None);
        if let Some(counts) = counts {
            ingress["inputFacets"] = json!({
                "dataQualityMetrics": facet("1-0-3/DataQualityMetricsInputDatasetFacet", json!({
                    "rowCount": counts.handled(),
                    "columnMetrics": {},
                })),
                "dataQualityAssertions": facet("1-1-0/DataQualityAssertionsDatasetFacet", json!({
                    "assertions": product.descriptor.rules.iter().map(|rule| json!({
                        "assertion": rule.name,
                        "success": counts.rule_failures.get(&rule.name).copied().unwrap_or(0) == 0,
                    })).collect::<Vec<_>>(),
                })),
            });
            out["outputFacets"] = statistics(counts.written());
            dlq["outputFacets"] = statistics(counts.outcome("dead_lettered"));
        }
        let mut inputs = vec![ingress];
        for input in &product.descriptor.inputs {
            if let Some(upstream) = self.catalog.get(&input.product) {
                inputs.push(self.naming.port(upstream, &input.port));
            }
        }
        Job {
            name: format!("gateway.{}", product.id()),
            description: format!(
                "meshline's gateway checks each event of {} against the contract of {} and writes it to {} or, refused, to {}",
                topics.ingress, product.id(), topics.product, topics.dlq
            ),
            processing: "STREAMING",
            kind: "CONTRACT_GATEWAY",
            inputs,
            outputs: vec![out, dlq],
        }
    }
}

fn statistics(rows: u64) -> Value {
    json!({
        "outputStatistics": facet("1-0-2/OutputStatisticsOutputDatasetFacet", json!({ "rowCount": rows })),
    })
}

/// A product's counts in the gateway's metrics.
#[derive(Debug, Default)]
struct Counts {
    /// Events by outcome.
    outcomes: BTreeMap<String, u64>,
    /// Events that failed each rule.
    rule_failures: BTreeMap<String, u64>,
}

impl Counts {
    fn of(families: &[MetricFamily], product: &Product) -> Self {
        Self {
            outcomes: sum_by(
                families,
                "meshline_gateway_events_total",
                product.id(),
                "outcome",
            ),
            rule_failures: sum_by(families, RULE_FAILURES, product.id(), "rule"),
        }
    }

    fn outcome(&self, outcome: &str) -> u64 {
        self.outcomes.get(outcome).copied().unwrap_or(0)
    }

    /// Events checked (repeats of events already written are not).
    fn handled(&self) -> u64 {
        self.written() + self.outcome("dead_lettered")
    }

    /// Events written to the product topic.
    fn written(&self) -> u64 {
        self.outcome("accepted") + self.outcome("warned")
    }
}

/// The counter `name`'s values for `product`, summed by the value of `label`.
fn sum_by(
    families: &[MetricFamily],
    name: &str,
    product: &str,
    label: &str,
) -> BTreeMap<String, u64> {
    let mut sums = BTreeMap::new();
    for metric in families
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.get_metric())
    {
        let labels = metric.get_label();
        let value_of = |key: &str| labels.iter().find(|l| l.name() == key).map(|l| l.value());
        if value_of("product") != Some(product) {
            continue;
        }
        if let Some(key) = value_of(label) {
            // counters are whole numbers held as floats
            *sums.entry(key.to_owned()).or_default() += metric.get_counter().value() as u64;
        }
    }
    sums
}
