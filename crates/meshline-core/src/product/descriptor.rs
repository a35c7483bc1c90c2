//! The data product descriptor: one YAML file per product, the single declaration from which
//! topics, the catalog, contract rules, SLO alerts and snapshot views all derive.
//!
//! Field names follow the Open Data Contract Standard (ODCS v3) where it has one; the README
//! documents the mapping.

use std::{fmt, str::FromStr, time::Duration};

use serde::{Deserialize, Serialize};

/// A data product, as declared by its owning domain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct Descriptor {
    /// `<domain>.<product>`: the product's stable identifier, and the name of its topic.
    pub id: String,
    /// The business domain that owns the product (e.g. `player`).
    pub domain: String,
    /// Who answers for the product.
    pub owner: Owner,
    /// What the product holds, for people browsing the catalog.
    pub description: String,
    /// Path of the events' schema, relative to this descriptor file: Avro (`.avsc`), JSON
    /// Schema (`.json`, e.g. `release.schema.json`) or Protobuf (`.proto`).
    pub schema: String,
    /// The Protobuf message of the product's events (a `.proto` schema only); absent: the
    /// file's first message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Schema evolution rule enforced by the registry for the product's subject.
    #[serde(default)]
    pub compatibility: Compatibility,
    /// The CloudEvents attributes the product accepts.
    pub cloudevents: CloudEventsSpec,
    /// Number of partitions of the product topic (and of its `.ingress` and `.dlq` topics).
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    /// How long the product topic keeps events (e.g. `7d`); `forever` keeps them indefinitely.
    #[serde(default)]
    pub retention: Retention,
    /// Copies of each partition the cluster keeps (all three topics); absent: the broker's own
    /// default (`default.replication.factor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_factor: Option<i16>,
    /// Replicas that must acknowledge a write (`acks=all`) for it to succeed; absent: the
    /// broker's own default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_insync_replicas: Option<i16>,
    /// Named quality rules every event must pass.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// Service-level objectives published for the product.
    #[serde(default)]
    pub slos: Slos,
    /// Time-windowed historical views built by the snapshotter.
    #[serde(default)]
    pub views: Vec<View>,
    /// Who may produce into and read from the product.
    #[serde(default)]
    pub access: Access,
    /// The products this one is computed from (a derived product's lineage), with the output
    /// port of each it reads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<Input>,
}

/// An upstream product a derived product reads, and through which output port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// The upstream product's id.
    pub product: String,
    /// The output port read: [`EVENTS_PORT`] (the product topic, the default) or the name of one
    /// of its views.
    #[serde(default = "events_port")]
    pub port: String,
}

/// The output port of a product's topic.
pub const EVENTS_PORT: &str = "events";

fn events_port() -> String {
    EVENTS_PORT.to_owned()
}

fn default_partitions() -> i32 {
    3
}

/// The owning team (ODCS: `team`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Owner {
    /// Team name.
    pub team: String,
    /// Where to reach the team.
    pub email: String,
}

/// The seven Confluent Schema Registry compatibility modes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Compatibility {
    /// New schema can read data written with the previous one.
    #[default]
    Backward,
    /// New schema can read data written with every earlier one.
    BackwardTransitive,
    /// Previous schema can read data written with the new one.
    Forward,
    /// Every earlier schema can read data written with the new one.
    ForwardTransitive,
    /// Backward and forward with the previous schema.
    Full,
    /// Backward and forward with every earlier schema.
    FullTransitive,
    /// No check.
    None,
}

impl Compatibility {
    /// Every mode.
    pub const ALL: [Compatibility; 7] = [
        Self::Backward,
        Self::BackwardTransitive,
        Self::Forward,
        Self::ForwardTransitive,
        Self::Full,
        Self::FullTransitive,
        Self::None,
    ];

    /// The mode's name as Confluent spells it (`BACKWARD_TRANSITIVE`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Backward => "BACKWARD",
            Self::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Self::Forward => "FORWARD",
            Self::ForwardTransitive => "FORWARD_TRANSITIVE",
            Self::Full => "FULL",
            Self::FullTransitive => "FULL_TRANSITIVE",
            Self::None => "NONE",
        }
    }
}

impl FromStr for Compatibility {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|m| m.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!(
                    "`{s}` is not a compatibility mode; use one of {}",
                    Self::ALL.map(Compatibility::as_str).join(", ")
                )
            })
    }
}

impl fmt::Display for Compatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// CloudEvents attributes owned by the product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloudEventsSpec {
    /// The event `type`s the product accepts (e.g. `com.example.player.track.played`).
    pub types: Vec<String>,
    /// The `source` prefix the owning domain publishes under (e.g. `/player`).
    pub source: String,
}

/// A named quality rule (ODCS: `quality`), a CEL expression over the decoded record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Stable rule name, reported with every failure.
    pub name: String,
    /// CEL expression that must be true for a valid event; the record is `message`.
    pub expression: String,
    /// What the rule protects, for people.
    #[serde(default)]
    pub description: String,
    /// What happens to an event that fails the rule.
    #[serde(default)]
    pub on_failure: OnFailure,
}

/// Action on a failed rule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Send the event to the product's dead-letter topic with the reason.
    #[default]
    Dlq,
    /// Refuse the event to its producer (HTTP 400 / SDK error); on the Kafka path, DLQ.
    Error,
    /// Count the failure, keep the event.
    None,
}

/// Service-level objectives (ODCS: `slaProperties`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Slos {
    /// Share of events that pass the contract.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validity: Option<Objective>,
    /// Share of events available in the product topic within `threshold` of their event time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freshness: Option<Objective>,
    /// Share of ingress requests answered without a server error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability: Option<Objective>,
    /// Share of snapshot windows written within `threshold` of their close (window end plus
    /// allowed lateness).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeliness: Option<Objective>,
}

/// One objective: a target ratio over a rolling window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Objective {
    /// Target, in percent (e.g. `99.9`).
    pub objective: f64,
    /// Rolling window the objective is measured over (e.g. `28d`).
    #[serde(default = "default_slo_window")]
    pub window: HumanDuration,
    /// Latency threshold, for freshness and timeliness (e.g. `5s`): one of the bucket bounds
    /// of the metric measuring it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<HumanDuration>,
    /// Burn-rate alerts stay silent while fewer events (windows, for timeliness) than this came
    /// in the alert's long window: a few failures among a handful of events are no outage.
    /// Default 100 (1 for timeliness).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_events: Option<u64>,
}

fn default_slo_window() -> HumanDuration {
    HumanDuration(Duration::from_secs(28 * 24 * 3600))
}

/// A snapshot view of the product.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct View {
    /// View name, part of the snapshot address.
    pub name: String,
    /// What each window's snapshot holds.
    pub kind: ViewKind,
    /// Tumbling calendar window.
    pub window: WindowSize,
    /// Key fields, for `latest` (the entity key) and `aggregate` (group by).
    #[serde(default)]
    pub key: Vec<String>,
    /// Aggregations, for `aggregate`.
    #[serde(default)]
    pub aggregations: Vec<Aggregation>,
    /// How long after a window's end late events are still accepted (e.g. `10m`).
    #[serde(default)]
    pub allowed_lateness: HumanDuration,
    /// Field holding the event time (a timestamp or a long of epoch milliseconds); default: the
    /// CloudEvents `time` attribute (`ce_time`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_field: Option<String>,
    /// IANA time zone of the calendar windows (e.g. `Europe/Stockholm`); default `UTC`.
    #[serde(default = "default_time_zone")]
    pub time_zone: String,
    /// What happens to an event that arrives after its window closed.
    #[serde(default)]
    pub late: LatePolicy,
    /// With `late: amend`, how long after a window's end late events still amend it (e.g.
    /// `7d`); an `aggregate` view keeps the window's groups in memory that long, a `latest`
    /// view its version 1. Later events are dropped and counted.
    #[serde(default = "default_amend_for")]
    pub amend_for: HumanDuration,
    /// A partition that has delivered every record and stays quiet this long (e.g. `1m`) stops
    /// holding the view's watermark back, so windows close on quiet topics too.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout: HumanDuration,
    /// How long windows are kept, counted back from the end of the view's newest closed window
    /// in event time (e.g. `90d`): the snapshotter deletes older windows, every version. Default:
    /// kept for ever. An amending view keeps at least `amend_for`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep: Option<HumanDuration>,
    /// How the view's snapshots are published: `delta` (the default) writes a Delta Lake
    /// transaction log beside the Parquet files, so any Delta reader gets the newest version of
    /// every window; `iceberg` writes Apache Iceberg metadata instead; `parquet` writes the
    /// files and manifests only.
    #[serde(default)]
    pub format: TableFormat,
}

/// How a view's snapshots are published besides their Parquet files and manifests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TableFormat {
    /// A Delta Lake table over the view's files: `_delta_log/` in the view's directory.
    #[default]
    Delta,
    /// An Apache Iceberg table over the view's files: `metadata/` in the view's directory.
    Iceberg,
    /// The files and manifests only.
    Parquet,
}

fn default_time_zone() -> String {
    "UTC".into()
}

fn default_amend_for() -> HumanDuration {
    HumanDuration(Duration::from_secs(24 * 3600))
}

fn default_idle_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}

/// What the snapshotter does with an event whose window already closed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LatePolicy {
    /// Leave it out of the snapshot; counted in `meshline_snapshot_late_events_total`.
    #[default]
    Drop,
    /// Send it to the product's dead-letter topic with reason `late_event`.
    Dlq,
    /// Write a new version of the window's snapshot that includes it (within `amend_for`; for
    /// a `latest` view, of every later window too).
    Amend,
}

/// What a view's snapshot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ViewKind {
    /// Every event of the window.
    Events,
    /// The state of each key as of window end.
    Latest,
    /// Grouped aggregates.
    Aggregate,
}

/// Calendar window sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WindowSize {
    /// One minute.
    Minute,
    /// One hour.
    Hour,
    /// One calendar day.
    Day,
    /// One ISO week (Monday to Monday).
    Week,
    /// One calendar month.
    Month,
}

/// One aggregation of an `aggregate` view.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Aggregation {
    /// Output column name.
    pub name: String,
    /// Aggregate function.
    pub function: AggregateFunction,
    /// Input field (not needed for `count`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// Aggregate functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AggregateFunction {
    /// Number of events.
    Count,
    /// Sum of a numeric field.
    Sum,
    /// Smallest value.
    Min,
    /// Largest value.
    Max,
    /// Number of distinct values.
    DistinctCount,
}

/// Who may produce and read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Access {
    /// Principals allowed to produce (by default, the owning domain only).
    #[serde(default)]
    pub producers: Vec<String>,
    /// Principals or domains allowed to read (empty: everyone).
    #[serde(default)]
    pub readers: Vec<String>,
}

/// Topic retention: a duration, or `forever`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Retention {
    /// Keep events this long.
    For(Duration),
    /// Keep events indefinitely.
    Forever,
}

impl Default for Retention {
    fn default() -> Self {
        Self::For(Duration::from_secs(7 * 24 * 3600))
    }
}

impl Retention {
    /// The Kafka `retention.ms` value (`-1` for forever).
    pub fn as_retention_ms(self) -> i64 {
        match self {
            Self::For(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Self::Forever => -1,
        }
    }
}

impl TryFrom<String> for Retention {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        if s == "forever" {
            return Ok(Self::Forever);
        }
        HumanDuration::from_str(&s).map(|d| Self::For(d.0))
    }
}

impl From<Retention> for String {
    fn from(r: Retention) -> Self {
        match r {
            Retention::For(d) => HumanDuration(d).to_string(),
            Retention::Forever => "forever".into(),
        }
    }
}

/// A duration written the human way (`500ms`, `10m`, `7d`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        humantime::parse_duration(s)
            .map(Self)
            .map_err(|e| format!("`{s}` is not a duration ({e}); write e.g. `500ms`, `10m`, `7d`"))
    }
}

impl TryFrom<String> for HumanDuration {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<HumanDuration> for String {
    fn from(d: HumanDuration) -> Self {
        d.to_string()
    }
}

impl fmt::Display for HumanDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}
