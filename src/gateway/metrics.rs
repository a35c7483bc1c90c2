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
    validation: HistogramVec,
    end_to_end: HistogramVec,
    lag: IntGaugeVec,
    transactions: IntGauge,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let events = IntCounterVec::new(
            Opts::new(
                "meshline_gateway_events_total",
                "Events the gateway handled, by product and outcome (accepted, warned, dead_lettered, duplicate).",
            ),
            &["product", "outcome"],
        )?;
        let dead_letters = IntCounterVec::new(
            Opts::new(
                "meshline_gateway_dead_letters_total",
                "Events written to a dead-letter topic, by product and reason code.",
            ),
            &["product", "reason"],
        )?;
        let validation = HistogramVec::new(
            HistogramOpts::new(
                "meshline_gateway_validation_seconds",
                "Time to check one event against its product's contract.",
            )
            .buckets(vec![
                1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 1e-3, 1e-2,
            ]),
            &["product"],
        )?;
        let end_to_end = HistogramVec::new(
            HistogramOpts::new(
                "meshline_gateway_end_to_end_seconds",
                "From the event's ce_time to its output being acknowledged and its offset committed.",
            )
            .buckets(vec![0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0]),
            &["product"],
        )?;
        let lag = IntGaugeVec::new(
            Opts::new(
                "meshline_gateway_consumer_lag",
                "Ingress records not yet handled, by product and partition.",
            ),
            &["product", "partition"],
        )?;
        let transactions = IntGauge::new(
            "meshline_gateway_transactions_in_flight",
            "Kafka transactions open (transactional delivery only).",
        )?;
        registry.register(Box::new(events.clone()))?;
        registry.register(Box::new(dead_letters.clone()))?;
        registry.register(Box::new(validation.clone()))?;
        registry.register(Box::new(end_to_end.clone()))?;
        registry.register(Box::new(lag.clone()))?;
        registry.register(Box::new(transactions.clone()))?;
        Ok(Self {
            events,
            dead_letters,
            validation,
            end_to_end,
            lag,
            transactions,
        })
    }

    /// Counts an event's outcome.
    /// The handles of one product's metrics, resolved once: a labelled lookup per event would
    /// cost more than the contract check.
    pub fn product(&self, product: &str) -> ProductMetrics {
        let event = |outcome: Outcome| self.events.with_label_values(&[product, outcome.label()]);
        ProductMetrics {
            accepted: event(Outcome::Accepted),
            warned: event(Outcome::Warned),
            dead_lettered: event(Outcome::DeadLettered),
            duplicate: event(Outcome::Duplicate),
            validation: self.validation.with_label_values(&[product]),
            end_to_end: self.end_to_end.with_label_values(&[product]),
            dead_letters: self.dead_letters.clone(),
            product: product.to_owned(),
        }
    }

    pub fn lag(&self, product: &str, partition: i32, lag: i64) {
        self.lag
            .with_label_values(&[product, &partition.to_string()])
            .set(lag);
    }

    /// Sets the number of open transactions.
    pub fn transactions_in_flight(&self, n: i64) {
        self.transactions.set(n);
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
    end_to_end: Histogram,
    dead_letters: IntCounterVec,
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
        self.dead_letters
            .with_label_values(&[&self.product, reason])
            .inc();
    }

    /// Observes the time one contract check took.
    pub fn validated(&self, seconds: f64) {
        self.validation.observe(seconds);
    }

    /// Observes the time from an event's `ce_time` to its commit.
    pub fn end_to_end(&self, seconds: f64) {
        self.end_to_end.observe(seconds);
    }
}
