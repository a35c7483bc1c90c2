//! The gateway's Prometheus metrics, served on the `/metrics` of its HTTP server.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry,
};

/// What happened to an event, as the `outcome` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Passed its contract: written to the product topic.
    Accepted,
    /// Failed a rule whose `on_failure` is `none`: written to the product topic all the same.
    Warned,
    /// Refused: written to the dead-letter topic.
    DeadLettered,
    /// Already written by an earlier gateway (found at the tail of the outputs): skipped.
    Duplicate,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Warned => "warned",
            Self::DeadLettered => "dead_lettered",
            Self::Duplicate => "duplicate",
        }
    }
}

/// The gateway's metrics; cheap to clone.
#[derive(Debug, Clone)]
pub struct Metrics {
    events: IntCounterVec,
    dead_letters: IntCounterVec,
    rule_failures: IntCounterVec,
    validation: HistogramVec,
    freshness: HistogramVec,
    lag: IntGaugeVec,
    ingress: IntCounterVec,
    transactions: IntGauge,
    rebalances: IntCounterVec,
    assigned: IntGauge,
    contract_version: IntGaugeVec,
}

/// The counter of events that failed a rule, by product and rule.
pub const RULE_FAILURES: &str = "meshline_gateway_rule_failures_total";

pub use crate::telemetry::product_labels;
use crate::telemetry::registered;

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let events = registered(registry, IntCounterVec::new(
            Opts::new(
                "meshline_gateway_events_total",
                "Events the gateway handled, by product and outcome (accepted, warned, dead_lettered, duplicate).",
            ),
            &["domain", "product", "outcome"],
        )?)?;
        let dead_letters = registered(
            registry,
            IntCounterVec::new(
                Opts::new(
                    "meshline_gateway_dead_letters_total",
                    "Events written to a dead-letter topic, by product and reason code.",
                ),
                &["domain", "product", "reason"],
            )?,
        )?;
        let rule_failures = registered(
            registry,
            IntCounterVec::new(
                Opts::new(
                    RULE_FAILURES,
                    "Events that failed a quality rule, by product and rule (dead-lettered, refused, or warned and forwarded by the rule's on_failure).",
                ),
                &["domain", "product", "rule"],
            )?,
        )?;
        let validation = registered(
            registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "meshline_gateway_validation_seconds",
                    "Time to check one event against its product's contract.",
                )
                .buckets(vec![
                    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 1e-3, 1e-2,
                ]),
                &["domain", "product"],
            )?,
        )?;
        let freshness = registered(registry, HistogramVec::new(
            HistogramOpts::new(
                "meshline_gateway_freshness_seconds",
                "From an event's time (ce_time) to its being available in the product topic (output acknowledged, offset committed).",
            )
            .buckets(crate::slo::FRESHNESS_BUCKETS.to_vec()),
            &["domain", "product"],
        )?)?;
        let lag = registered(
            registry,
            IntGaugeVec::new(
                Opts::new(
                    "meshline_gateway_consumer_lag",
                    "Ingress records not yet handled, by product and partition.",
                ),
                &["domain", "product", "partition"],
            )?,
        )?;
        let ingress = registered(
            registry,
            IntCounterVec::new(
                Opts::new(
                    "meshline_gateway_ingress_requests_total",
                    "HTTP ingress requests for a known product, by status code.",
                ),
                &["domain", "product", "code"],
            )?,
        )?;
        let transactions = registered(
            registry,
            IntGauge::new(
                "meshline_gateway_transactions_in_flight",
                "Kafka transactions open (transactional delivery only).",
            )?,
        )?;
        let rebalances = registered(registry, IntCounterVec::new(
            Opts::new(
                "meshline_gateway_rebalances_total",
                "Consumer-group rebalance steps of this gateway instance, by kind (assigned, revoked).",
            ),
            &["kind"],
        )?)?;
        let assigned = registered(
            registry,
            IntGauge::new(
                "meshline_gateway_assigned_partitions",
                "Ingress partitions this gateway instance holds.",
            )?,
        )?;
        let contract_version = registered(registry, IntGaugeVec::new(
            Opts::new(
                "meshline_gateway_contract_version",
                "The version of the product's subject whose contract the gateway enforces (0: none can be loaded).",
            ),
            &["domain", "product"],
        )?)?;
        Ok(Self {
            contract_version,
            events,
            dead_letters,
            rule_failures,
            validation,
            freshness,
            lag,
            ingress,
            transactions,
            rebalances,
            assigned,
        })
    }

    /// The handles of one product's metrics, resolved once: a labelled lookup per event would
    /// cost more than the contract check.
    pub fn product(&self, product: &str) -> ProductMetrics {
        let [domain, product] = product_labels(product);
        let event = |outcome: Outcome| {
            self.events
                .with_label_values(&[domain, product, outcome.label()])
        };
        // every series of an SLO exists from the start, so "absent" means the gateway is down
        self.ingress.with_label_values(&[domain, product, "202"]);
        ProductMetrics {
            accepted: event(Outcome::Accepted),
            warned: event(Outcome::Warned),
            dead_lettered: event(Outcome::DeadLettered),
            duplicate: event(Outcome::Duplicate),
            validation: self.validation.with_label_values(&[domain, product]),
            freshness: self.freshness.with_label_values(&[domain, product]),
            dead_letters: self.dead_letters.clone(),
            rule_failures: self.rule_failures.clone(),
            product: product.to_owned(),
        }
    }

    /// Sets the records of an ingress partition not yet handled.
    pub fn lag(&self, product: &str, partition: i32, lag: i64) {
        let [domain, product] = product_labels(product);
        self.lag
            .with_label_values(&[domain, product, &partition.to_string()])
            .set(lag);
    }

    /// Drops the lag gauge of a partition this gateway no longer reads (another one reports it).
    pub fn lag_revoked(&self, product: &str, partition: i32) {
        let [domain, product] = product_labels(product);
        // absent already is fine
        let _ = self
            .lag
            .remove_label_values(&[domain, product, &partition.to_string()]);
    }

    /// Sets the contract version enforced for `product` (0: none can be loaded).
    pub fn contract_version(&self, product: &str, version: u32) {
        let [domain, product] = product_labels(product);
        self.contract_version
            .with_label_values(&[domain, product])
            .set(i64::from(version));
    }

    /// Counts an HTTP ingress request for `product` answered with `status`.
    pub fn ingress_request(&self, product: &str, status: u16) {
        let [domain, product] = product_labels(product);
        self.ingress
            .with_label_values(&[domain, product, &status.to_string()])
            .inc();
    }

    /// Sets the number of open transactions.
    pub fn transactions_in_flight(&self, n: i64) {
        self.transactions.set(n);
    }

    /// Counts a rebalance that gave this instance `partitions` more partitions.
    pub fn partitions_assigned(&self, partitions: usize) {
        self.rebalances.with_label_values(&["assigned"]).inc();
        self.assigned
            .add(i64::try_from(partitions).unwrap_or(i64::MAX));
    }

    /// Counts a rebalance that took `partitions` partitions from this instance.
    pub fn partitions_revoked(&self, partitions: usize) {
        self.rebalances.with_label_values(&["revoked"]).inc();
        self.assigned
            .sub(i64::try_from(partitions).unwrap_or(i64::MAX));
    }

    /// This instance holds no partition (it gave them all up after an error).
    pub fn partitions_unassigned(&self) {
        self.assigned.set(0);
    }

    /// How many ingress partitions this instance holds (its readiness: more than none).
    pub fn assigned_partitions(&self) -> i64 {
        self.assigned.get()
    }
}

/// One product's metrics (see [`Metrics::product`]).
#[derive(Debug, Clone)]
pub struct ProductMetrics {
    product: String,
    accepted: IntCounter,
    warned: IntCounter,
    dead_lettered: IntCounter,
    duplicate: IntCounter,
    validation: Histogram,
    freshness: Histogram,
    dead_letters: IntCounterVec,
    rule_failures: IntCounterVec,
}

impl ProductMetrics {
    /// Counts an event by outcome.
    pub fn event(&self, outcome: Outcome) {
        match outcome {
            Outcome::Accepted => &self.accepted,
            Outcome::Warned => &self.warned,
            Outcome::DeadLettered => &self.dead_lettered,
            Outcome::Duplicate => &self.duplicate,
        }
        .inc();
    }

    /// Counts a dead letter by reason code.
    pub fn dead_letter(&self, reason: &str) {
        let [domain, product] = product_labels(&self.product);
        self.dead_letters
            .with_label_values(&[domain, product, reason])
            .inc();
    }

    /// Counts an event that failed `rule`.
    pub fn rule_failed(&self, rule: &str) {
        let [domain, product] = product_labels(&self.product);
        self.rule_failures
            .with_label_values(&[domain, product, rule])
            .inc();
    }

    /// Observes the time one contract check took.
    pub fn validated(&self, seconds: f64) {
        self.validation.observe(seconds);
    }

    /// Observes the time from an event's `ce_time` to its commit.
    pub fn freshness(&self, seconds: f64) {
        self.freshness.observe(seconds);
    }
}
