//! The snapshotter's Prometheus metrics.

use std::time::{Duration, SystemTime};

use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use crate::telemetry::registered;

/// The snapshotter's Prometheus metrics; cheap to clone.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub(super) rows: IntCounterVec,
    pub(super) late: IntCounterVec,
    pub(super) skipped: IntCounterVec,
    pub(super) snapshots: IntCounterVec,
    pub(super) held: IntGaugeVec,
    pub(super) spilled: IntGaugeVec,
    pub(super) restarts: IntCounterVec,
    pub(super) watermark: IntGaugeVec,
    pub(super) delay: HistogramVec,
    pub(super) consuming: IntGauge,
    pub(super) settled: IntGauge,
    pub(super) expired: IntCounterVec,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let rows = registered(
            registry,
            IntCounterVec::new(
                Opts::new(
                    "meshline_snapshot_rows_total",
                    "Events taken into a window, by product and view.",
                ),
                &["domain", "product", "view"],
            )?,
        )?;
        let late = registered(registry, IntCounterVec::new(
            Opts::new(
                "meshline_snapshot_late_events_total",
                "Events that arrived after their window closed, by product, view and policy (drop, dlq, amend).",
            ),
            &["domain", "product", "view", "policy"],
        )?)?;
        let skipped = registered(registry, IntCounterVec::new(
            Opts::new(
                "meshline_snapshot_skipped_total",
                "Product-topic records left out of every snapshot, by product and reason (payload, no_event_time).",
            ),
            &["domain", "product", "reason"],
        )?)?;
        let snapshots = registered(
            registry,
            IntCounterVec::new(
                Opts::new(
                    "meshline_snapshot_snapshots_total",
                    "Snapshot versions written (manifests), by product and view.",
                ),
                &["domain", "product", "view"],
            )?,
        )?;
        let held = registered(registry, IntGaugeVec::new(
            Opts::new(
                "meshline_snapshot_held",
                "What a view holds in memory: buffered rows (events), keys (latest) or groups (aggregate).",
            ),
            &["domain", "product", "view"],
        )?)?;
        let restarts = registered(registry, IntCounterVec::new(
            Opts::new(
                "meshline_snapshot_restarts_total",
                "Times a product's snapshotter failed (store, Kafka or registry error) and restarted from its progress.",
            ),
            &["domain", "product"],
        )?)?;
        let spilled = registered(registry, IntGaugeVec::new(
            Opts::new(
                "meshline_snapshot_spilled",
                "Keys (latest) or groups (aggregate) a view holds spilled to local disk, past its --max-state-rows.",
            ),
            &["domain", "product", "view"],
        )?)?;
        let watermark = registered(
            registry,
            IntGaugeVec::new(
                Opts::new(
                    "meshline_snapshot_closed_through_seconds",
                    "Windows ending at or before this Unix time are written, by product and view.",
                ),
                &["domain", "product", "view"],
            )?,
        )?;
        let delay = registered(registry, HistogramVec::new(
            HistogramOpts::new(
                "meshline_snapshot_delay_seconds",
                "From a window's close (its end plus the allowed lateness, or the arrival of the records that closed it, whichever is later) to its manifest being written.",
            )
            .buckets(crate::slo::DELAY_BUCKETS.to_vec()),
            &["domain", "product", "view"],
        )?)?;
        let consuming = registered(
            registry,
            IntGauge::new(
                "meshline_snapshot_products_consuming",
                "Products this worker runs the commit step of (it holds their partition 0).",
            )?,
        )?;
        let settled = registered(
            registry,
            IntGauge::new(
                "meshline_snapshot_products_settled",
                "Products whose snapshotter group gave this worker its share (partitions, or none).",
            )?,
        )?;
        let expired = registered(
            registry,
            IntCounterVec::new(
                Opts::new(
                    "meshline_snapshot_expired_windows_total",
                    "Windows deleted, every version, past their view's `keep`, by product and view.",
                ),
                &["domain", "product", "view"],
            )?,
        )?;
        Ok(Self {
            rows,
            late,
            skipped,
            snapshots,
            held,
            spilled,
            restarts,
            watermark,
            delay,
            consuming,
            settled,
            expired,
        })
    }

    /// How many products' commit steps this worker runs.
    pub fn products_consuming(&self) -> i64 {
        self.consuming.get()
    }

    /// How many products' snapshotter groups gave this worker its share.
    pub fn products_settled(&self) -> i64 {
        self.settled.get()
    }
}

/// Counts a product as settled (its group gave this worker its share) while it lives.
pub(super) struct Settled(IntGauge);

impl Settled {
    pub(super) fn start(metrics: &Metrics) -> Self {
        metrics.settled.inc();
        Self(metrics.settled.clone())
    }
}

impl Drop for Settled {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Counts a product as consuming while it lives.
pub(super) struct Consuming(IntGauge);

impl Consuming {
    pub(super) fn start(gauge: &IntGauge) -> Self {
        gauge.inc();
        Self(gauge.clone())
    }
}

impl Drop for Consuming {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Seconds from a window's close to now: its close is its end plus `lateness`, or the arrival of
/// the records that closed it when that came later (a backfill of old windows).
pub(super) fn delay(
    window_end: &str,
    lateness: Duration,
    last_received: SystemTime,
) -> Option<f64> {
    let end = chrono::DateTime::parse_from_rfc3339(window_end).ok()?;
    let end = SystemTime::UNIX_EPOCH
        + Duration::from_millis(u64::try_from(end.timestamp_millis()).ok()?)
        + lateness;
    let closed = end.max(last_received);
    Some(
        SystemTime::now()
            .duration_since(closed)
            .unwrap_or_default()
            .as_secs_f64(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_closes_at_its_end_plus_lateness_or_when_its_last_records_came() {
        let lateness = Duration::from_secs(60);
        let end = SystemTime::now() - Duration::from_secs(3_600);
        let end_text = chrono::DateTime::<chrono::Utc>::from(end).to_rfc3339();
        let on_time = delay(&end_text, lateness, SystemTime::UNIX_EPOCH).unwrap();
        assert!((3_539.0..3_600.0).contains(&on_time), "{on_time}");
        // a backfill: the records that closed the window came ten seconds ago
        let came = SystemTime::now() - Duration::from_secs(10);
        let backfill = delay(&end_text, lateness, came).unwrap();
        assert!((10.0..11.0).contains(&backfill), "{backfill}");
        assert_eq!(delay("not a time", lateness, came), None);
    }
}
