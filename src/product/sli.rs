//! The service-level indicators a descriptor may declare objectives for, and the bucket bounds
//! a latency objective's threshold must be one of (the metrics' histogram buckets). What each
//! measures in PromQL is in `crate::slo`.

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
