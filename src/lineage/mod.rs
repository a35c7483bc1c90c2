//! OpenLineage run events (spec 2-0-2), so a lineage tool (Marquez, DataHub, OpenMetadata, any
//! OpenLineage consumer) sees what meshline moves: the gateway's run per product (ingress topic
//! and declared upstream products in, product and dead-letter topics out, with the run's counts
//! and the quality rules' results), the snapshotter's run per product (failing with the error)
//! and one run per snapshot window version (product topic in, the view out).
//!
//! Datasets are named as OpenLineage's naming conventions say: a Kafka topic is
//! `kafka://<bootstrap host:port>` / `<topic>`, a view is the snapshot store's location
//! (`file` / `<path>`, `s3://<bucket>` / `<key prefix>`).
//!
//! The parts: this module builds events (pure); [`Lineage`] hands them to the transport
//! (`transport`): an HTTP endpoint (`POST <url>/api/v1/lineage`, as OpenLineage's HTTP
//! transport) or a file of JSON lines, from a task of its own, so an unreachable endpoint never
//! slows events down. Limits: an event that cannot be delivered is logged and dropped (no
//! retry queue); a failure is reported by the product's snapshotter run (`FAIL`), not by the
//! window's (which completes once the restarted loop writes it).

mod transport;

use std::path::PathBuf;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::product::{Product, EVENTS_PORT};

/// The URI naming meshline as the producer of events and facets.
pub const PRODUCER: &str = concat!("urn:meshline:", env!("CARGO_PKG_VERSION"));

/// The schema of a run event.
const RUN_EVENT_SCHEMA: &str = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/RunEvent";

/// Where events go, and under which job namespace.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct LineageArgs {
    /// Send OpenLineage run events to this endpoint (`POST <url>/api/v1/lineage`, e.g. a
    /// Marquez server).
    #[arg(long = "openlineage-url", env = "OPENLINEAGE_URL")]
    pub url: Option<String>,
    /// Bearer token for the endpoint.
    #[arg(
        long = "openlineage-api-key",
        env = "OPENLINEAGE_API_KEY",
        hide_env_values = true
    )]
    pub api_key: Option<String>,
    /// Append OpenLineage run events to this file, one JSON object per line.
    #[arg(long = "openlineage-file")]
    pub file: Option<PathBuf>,
    /// The namespace of meshline's jobs.
    #[arg(
        long = "openlineage-namespace",
        env = "OPENLINEAGE_NAMESPACE",
        default_value = "meshline"
    )]
    pub namespace: String,
    /// How often the gateway reports a running product's counts (a `RUNNING` event).
    #[arg(long = "openlineage-interval", default_value = "60s")]
    pub interval: humantime::Duration,
}

/// Hands run events to the transport; cheap to clone. Without a transport, events go nowhere.
#[derive(Debug, Clone)]
pub struct Lineage {
    sender: Option<mpsc::UnboundedSender<Value>>,
    namespace: String,
    /// How often a long-running job reports.
    pub interval: std::time::Duration,
}

impl Lineage {
    /// No lineage.
    pub fn disabled() -> Self {
        Self {
            sender: None,
            namespace: "meshline".into(),
            interval: std::time::Duration::from_secs(60),
        }
    }

    /// Starts the transport `args` name (none: [`Lineage::disabled`]); returns the handle and
    /// the transport's task, which ends once every handle is dropped and its events are sent.
    pub fn start(args: &LineageArgs) -> (Self, Option<tokio::task::JoinHandle<()>>) {
        let transport = match (&args.url, &args.file) {
            (Some(url), _) => transport::Transport::http(url, args.api_key.as_deref()),
            (None, Some(file)) => transport::Transport::File(file.clone()),
            (None, None) => {
                return (
                    Self {
                        namespace: args.namespace.clone(),
                        interval: args.interval.into(),
                        ..Self::disabled()
                    },
                    None,
                )
            }
        };
        let (sender, receiver) = mpsc::unbounded_channel();
        let task = tokio::spawn(transport.run(receiver));
        (
            Self {
                sender: Some(sender),
                namespace: args.namespace.clone(),
                interval: args.interval.into(),
            },
            Some(task),
        )
    }

    /// Whether events go anywhere.
    pub fn enabled(&self) -> bool {
        self.sender.is_some()
    }

    /// Sends `event` (never waits).
    pub fn emit(&self, event: Value) {
        if let Some(sender) = &self.sender {
            sender.send(event).ok();
        }
    }

    /// A run event of job `job` in this handle's namespace.
    pub fn run_event(&self, kind: EventType, run: &Run, job: Job<'_>) -> Value {
        json!({
            "eventType": kind.as_str(),
            "eventTime": now(),
            "producer": PRODUCER,
            "schemaURL": RUN_EVENT_SCHEMA,
            "run": { "runId": run.id, "facets": run.facets },
            "job": {
                "namespace": self.namespace,
                "name": job.name,
                "facets": {
                    "jobType": facet("2-0-4/JobTypeJobFacet", json!({
                        "processingType": job.processing,
                        "integration": "MESHLINE",
                        "jobType": job.kind,
                    })),
                    "documentation": facet("1-1-0/DocumentationJobFacet", json!({
                        "description": job.description,
                    })),
                },
            },
            "inputs": job.inputs,
            "outputs": job.outputs,
        })
    }
}

/// A run's transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// The run started.
    Start,
    /// The run goes on (a long-running job's report).
    Running,
    /// The run ended well.
    Complete,
    /// The run failed.
    Fail,
}

impl EventType {
    fn as_str(self) -> &'static str {
        match self {
            Self::Start => "START",
            Self::Running => "RUNNING",
            Self::Complete => "COMPLETE",
            Self::Fail => "FAIL",
        }
    }
}

/// A run: its id and its facets.
#[derive(Debug, Clone)]
pub struct Run {
    /// A UUID.
    pub id: String,
    /// Run facets by name.
    pub facets: Value,
}

impl Run {
    /// A new run without facets.
    pub fn new() -> Self {
        Self {
            id: uuid::Uuid::new_v4().to_string(),
            facets: json!({}),
        }
    }

    /// The run of `key`, always the same id (a replay reports the same run).
    pub fn of(key: &str) -> Self {
        let digest = Sha256::digest(key.as_bytes());
        let mut bytes = [0u8; 16];
        bytes.copy_from_slice(&digest[..16]);
        Self {
            id: uuid::Builder::from_random_bytes(bytes)
                .into_uuid()
                .to_string(),
            facets: json!({}),
        }
    }

    /// Adds the run's nominal time: the window it computes.
    pub fn nominal(mut self, start: &str, end: &str) -> Self {
        self.facets["nominalTime"] = facet(
            "1-0-1/NominalTimeRunFacet",
            json!({ "nominalStartTime": start, "nominalEndTime": end }),
        );
        self
    }

    /// Adds an error message.
    pub fn error(mut self, message: &str) -> Self {
        self.facets["errorMessage"] = facet(
            "1-0-1/ErrorMessageRunFacet",
            json!({ "message": message, "programmingLanguage": "RUST" }),
        );
        self
    }
}

impl Default for Run {
    fn default() -> Self {
        Self::new()
    }
}

/// A job and what one of its runs read and wrote.
#[derive(Debug, Clone)]
pub struct Job<'a> {
    /// The job's name in its namespace.
    pub name: String,
    /// What it does, for people.
    pub description: String,
    /// `STREAMING` or `BATCH`.
    pub processing: &'a str,
    /// meshline's kind of job.
    pub kind: &'a str,
    /// Input datasets.
    pub inputs: Vec<Value>,
    /// Output datasets.
    pub outputs: Vec<Value>,
}

/// A facet with its producer and schema (`<version>/<Name>` of OpenLineage's facet specs).
pub fn facet(spec: &str, fields: Value) -> Value {
    let name = spec.rsplit('/').next().unwrap_or(spec);
    let mut facet = Map::new();
    facet.insert("_producer".into(), json!(PRODUCER));
    facet.insert(
        "_schemaURL".into(),
        json!(format!(
            "https://openlineage.io/spec/facets/{spec}.json#/$defs/{name}"
        )),
    );
    if let Value::Object(fields) = fields {
        facet.extend(fields);
    }
    Value::Object(facet)
}

/// How datasets are named: the Kafka cluster and the snapshot store.
#[derive(Debug, Clone)]
pub struct Naming {
    /// `kafka://<first bootstrap server>`.
    kafka: String,
    /// The snapshot store's root URI, if there is one.
    store: Option<String>,
}

impl Naming {
    /// Names for topics of the cluster at `bootstrap` and views under `store` (its root URI).
    pub fn new(bootstrap: &str, store: Option<&str>) -> Self {
        let first = bootstrap.split(',').next().unwrap_or(bootstrap).trim();
        let first = first
            .split_once("://")
            .map_or(first, |(_, address)| address);
        Self {
            kafka: format!("kafka://{first}"),
            store: store.map(|s| s.trim_end_matches('/').to_owned()),
        }
    }

    /// A topic as a dataset, with its schema (the product's, when it carries the product's
    /// events) and data source.
    pub fn topic(&self, topic: &str, schema: Option<&Product>) -> Value {
        let mut facets = json!({
            "dataSource": facet("1-0-1/DatasourceDatasetFacet", json!({ "name": self.kafka, "uri": self.kafka })),
        });
        if let Some(product) = schema {
            facets["schema"] = schema_facet(product);
        }
        json!({ "namespace": self.kafka, "name": topic, "facets": facets })
    }

    /// The dataset of a view of `product` (its directory in the snapshot store).
    pub fn view(&self, product: &str, view: &str) -> Value {
        let store = self.store.as_deref().unwrap_or("meshline://snapshots");
        let uri = format!("{store}/{}/{view}", crate::product::snapshot_root(product));
        let (namespace, name) = split_location(&uri);
        json!({
            "namespace": namespace,
            "name": name,
            "facets": {
                "dataSource": facet("1-0-1/DatasourceDatasetFacet", json!({ "name": namespace, "uri": uri })),
            },
        })
    }

    /// The dataset behind an output port of `product`: its topic, or one of its views.
    pub fn port(&self, product: &Product, port: &str) -> Value {
        if port == EVENTS_PORT {
            self.topic(&product.topics().product, Some(product))
        } else {
            self.view(product.id(), port)
        }
    }
}

/// `(namespace, name)` of a location URI, as OpenLineage names object storage and files.
fn split_location(uri: &str) -> (String, String) {
    match uri.split_once("://") {
        Some(("file", path)) => ("file".into(), path.to_owned()),
        Some((scheme, rest)) => match rest.split_once('/') {
            Some((authority, path)) => (format!("{scheme}://{authority}"), path.to_owned()),
            None => (format!("{scheme}://{rest}"), String::new()),
        },
        None => ("file".into(), uri.to_owned()),
    }
}

/// The schema facet of a product's events: its Avro fields.
fn schema_facet(product: &Product) -> Value {
    let avro: Value = product.avro_json();
    facet(
        "1-2-0/SchemaDatasetFacet",
        json!({ "fields": fields_of(&avro) }),
    )
}

fn fields_of(record: &Value) -> Vec<Value> {
    record["fields"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .map(|(i, f)| {
            let ty = &f["type"];
            let mut field = json!({
                "name": f["name"],
                "type": type_name(ty),
                "ordinal_position": i + 1,
            });
            if let Some(doc) = f["doc"].as_str() {
                field["description"] = json!(doc);
            }
            if ty["type"] == "record" {
                field["fields"] = json!(fields_of(ty));
            }
            field
        })
        .collect()
}

/// An Avro type's name: the primitive, the logical type, or the complex kind.
fn type_name(ty: &Value) -> String {
    match ty {
        Value::String(name) => name.clone(),
        Value::Array(branches) => {
            let names: Vec<String> = branches.iter().map(type_name).collect();
            format!("union<{}>", names.join(","))
        }
        Value::Object(_) => ty["logicalType"]
            .as_str()
            .or(ty["type"].as_str())
            .unwrap_or("unknown")
            .to_owned(),
        _ => "unknown".into(),
    }
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// An RFC 3339 time as OpenLineage writes it, if it parses.
pub fn time(rfc3339: &str) -> Option<String> {
    DateTime::parse_from_rfc3339(rfc3339).ok().map(|t| {
        t.with_timezone(&Utc)
            .to_rfc3339_opts(SecondsFormat::Millis, true)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datasets_are_named_as_openlineage_names_them() {
        let naming = Naming::new("broker-1:9092,broker-2:9092", Some("s3://lake/meshline/"));
        let topic = naming.topic("player.play-events", None);
        assert_eq!(topic["namespace"], "kafka://broker-1:9092");
        assert_eq!(topic["name"], "player.play-events");
        let view = naming.view("player.play-events", "daily-plays");
        assert_eq!(view["namespace"], "s3://lake");
        assert_eq!(
            view["name"],
            "meshline/snapshots/player/play-events/daily-plays"
        );
        let local = Naming::new("127.0.0.1:9092", Some("file:///data"));
        assert_eq!(
            local.view("player.play-events", "daily-plays")["name"],
            "/data/snapshots/player/play-events/daily-plays"
        );
    }

    #[test]
    fn a_window_run_has_the_same_id_in_every_replay() {
        assert_eq!(Run::of("a/b/w/1").id, Run::of("a/b/w/1").id);
        assert_ne!(Run::of("a/b/w/1").id, Run::of("a/b/w/2").id);
        assert!(uuid::Uuid::parse_str(&Run::of("x").id).is_ok());
    }

    #[test]
    fn avro_types_name_schema_fields() {
        let avro = json!({"type": "record", "name": "P", "fields": [
            {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}, "doc": "when"},
            {"name": "ctx", "type": ["null", "string"]},
            {"name": "device", "type": {"type": "record", "name": "D", "fields": [{"name": "os", "type": "string"}]}},
        ]});
        let fields = fields_of(&avro);
        assert_eq!(fields[0]["type"], "timestamp-millis");
        assert_eq!(fields[0]["description"], "when");
        assert_eq!(fields[1]["type"], "union<null,string>");
        assert_eq!(fields[2]["fields"][0]["name"], "os");
        assert_eq!(fields[2]["ordinal_position"], 3);
    }
}
