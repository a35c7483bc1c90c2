//! The `meshline` binary as a user runs it: `up --demo`, `tail`, `contract lint`, and the errors
//! bad configuration gets.

mod common;

use std::{
    io::Read,
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use common::*;
use meshline::sdk::kafka::RecordExt as _;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn up_demo_streams_events_that_tail_shows_and_a_clean_stop_loses_none() {
    meshline::registry::client::install_crypto_provider();
    let data = tempfile::tempdir().unwrap();
    let at = UpAt::new();
    let (addr, registry, http) = (at.kafka.clone(), at.registry.clone(), at.http.clone());
    let mut up = at
        .command(&repo_config(), data.path())
        .arg("--demo")
        .spawn()
        .unwrap();
    let _guard = KillOnDrop(up.id());
    let lines = stdout_lines(&mut up);
    let banner = wait_for(&lines, "Stop with Ctrl-C", 60);
    assert!(
        banner
            .iter()
            .any(|l| l.contains(&format!("Kafka API:  {addr}"))),
        "{banner:?}"
    );
    assert!(
        banner
            .iter()
            .any(|l| l.contains(&format!("registry:   http://{registry}"))),
        "{banner:?}"
    );

    // a second terminal: tail shows demo events within seconds
    let mut tail = meshline()
        .args([
            "tail",
            "player.play-events",
            "--bootstrap",
            &addr,
            "--max-events",
            "3",
            "--registry",
            &format!("http://{registry}"),
        ])
        .arg("--config")
        .arg(repo_config())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_exit(&mut tail, 60);
    let mut stdout = String::new();
    let mut stderr = String::new();
    tail.stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    tail.stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{stderr}");
    let events: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 3);
    for e in &events {
        assert_eq!(
            e["attributes"]["type"], "com.example.player.track.played",
            "{e}"
        );
        assert_eq!(
            e["attributes"]["datacontenttype"], "application/avro",
            "{e}"
        );
        assert!(
            e["attributes"]["source"]
                .as_str()
                .unwrap()
                .starts_with("/player"),
            "{e}"
        );
        assert!(
            e["data"]["user_id"].as_str().unwrap().starts_with("user-"),
            "{e}"
        );
        assert_eq!(e["attributes"]["subject"], e["data"]["user_id"], "{e}");
        assert!(e.get("error").is_none(), "{e}");
    }

    // the catalog: every product, with its schema id from the registry
    let (ok, list, _) = run_products(&["list"], &http);
    assert!(ok, "{list}");
    assert!(
        list.contains("player.play-events") && list.contains("6 data product(s)"),
        "{list}"
    );
    assert!(
        list.contains(&format!("http://{http}/products/labels.onboarded")),
        "{list}"
    );
    let id = events[0]["schema_id"].as_u64().unwrap();
    let (ok, show, _) = run_products(&["show", "player.play-events"], &http);
    assert!(ok, "{show}");
    for needle in [
        format!("schema:        subject player.play-events-value, id {id}, version 1"),
        "owner:         player-squad".to_owned(),
        "rule:          non_negative_duration".to_owned(),
        "slo:           availability 99.9% over 28days".to_owned(),
        format!("http://{http}/products/player.play-events/views/daily-plays"),
        format!(
            "document:      odcs      http://{http}/products/player.play-events/contract.odcs.yaml"
        ),
        format!("document:      asyncapi  http://{http}/products/player.play-events/asyncapi.yaml"),
    ] {
        assert!(show.contains(&needle), "{needle} not in\n{show}");
    }
    // lineage: the derived product names its input, the input its consumer
    let (ok, derived, _) = run_products(&["show", "artists.artist-plays"], &http);
    assert!(ok, "{derived}");
    assert!(
        derived.contains(&format!(
            "computed from: player.play-events (events)  http://{http}/products/player.play-events"
        )),
        "{derived}"
    );
    assert!(
        show.contains(&format!(
            "feeds:         artists.artist-plays (events)  http://{http}/products/artists.artist-plays"
        )),
        "{show}"
    );
    let graph = json_of(&format!("http://{http}/lineage")).await;
    assert_eq!(
        graph["edges"],
        serde_json::json!([{"from": "player.play-events", "port": "events", "to": "artists.artist-plays"}]),
        "{graph}"
    );
    // the catalog serves each product's contract in other standards, valid against their schemas
    let docs = tempfile::tempdir().unwrap();
    let mut served: std::collections::BTreeMap<&str, Vec<std::path::PathBuf>> = Default::default();
    let ids: Vec<String> = meshline::formats::load_catalog(&repo_config())
        .unwrap()
        .iter()
        .map(|p| p.id().to_owned())
        .collect();
    for id in &ids {
        let show = json_of(&format!("http://{http}/products/{id}")).await;
        for (standard, url) in show["documents"].as_object().unwrap() {
            let response = reqwest::get(url.as_str().unwrap()).await.unwrap();
            assert!(response.status().is_success(), "{url}");
            let file = docs.path().join(format!("{id}.{standard}.yaml"));
            std::fs::write(&file, response.text().await.unwrap()).unwrap();
            served.entry(standard_key(standard)).or_default().push(file);
        }
    }
    for (standard, schema) in [
        ("odcs", "odcs/odcs-json-schema-v3.1.0.json"),
        ("asyncapi", "asyncapi/3.0.0.json"),
        ("sloth", "sloth/prometheus-v1.schema.json"),
        ("openslo", "openslo/v1/openslo.schema.json"),
    ] {
        assert_eq!(served[standard].len(), ids.len(), "{standard}");
        common::assert_valid(&common::fixture(schema), &served[standard]);
    }
    let (ok, _, err) = run_products(&["show", "player.nothing"], &http);
    assert!(!ok && err.contains("player.play-events"), "{err}");
    let view = json_of(&format!(
        "http://{http}/products/player.play-events/views/daily-plays"
    ))
    .await;
    assert_eq!(view["window"], "day", "a view address resolves: {view}");
    // where an engine reads the view as a table
    assert_eq!(view["table"]["format"], "delta", "{view}");
    assert!(
        view["table"]["location"]
            .as_str()
            .is_some_and(|l| l.starts_with("file:///")
                && l.ends_with("/snapshots/player/play-events/daily-plays")),
        "{view}"
    );
    // an Iceberg view names its table in the catalog's Iceberg REST API too
    let profiles = json_of(&format!(
        "http://{http}/products/artists.profile-changes/views/profiles"
    ))
    .await;
    assert_eq!(profiles["table"]["format"], "iceberg", "{profiles}");
    let rest = &profiles["table"]["rest_catalog"];
    assert_eq!(rest["identifier"], "artists.profile-changes.profiles");
    let namespaces = json_of(&format!("{}/v1/namespaces", rest["uri"].as_str().unwrap())).await;
    assert_eq!(
        namespaces["namespaces"],
        serde_json::json!([["artists"]]),
        "{namespaces}"
    );
    let metrics = text_of(&format!("http://{registry}/metrics")).await;
    assert!(
        metrics.contains("meshline_http_requests_total"),
        "{metrics}"
    );

    // the demo's history: snapshots of the past days appear within a minute of the start, for
    // the Avro, JSON Schema and Protobuf products alike
    let first_snapshots = |product: &'static str, view: &'static str| {
        let http = http.clone();
        async move {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            loop {
                let listed = snapshots(&["list", product, "--view", view, "--json"], &http);
                if listed[0]["snapshots"]
                    .as_array()
                    .is_some_and(|s| !s.is_empty())
                {
                    break listed;
                }
                assert!(
                    std::time::Instant::now() < deadline,
                    "no {view} snapshot of {product} within a minute: {listed}"
                );
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        }
    };
    for (product, view) in [
        ("labels.releases", "daily-releases"),
        ("artists.follows", "hourly-follows"),
    ] {
        let listed = first_snapshots(product, view).await;
        let window = listed[0]["snapshots"][0]["window"].as_str().unwrap();
        let manifest = snapshots(&["show", product, view, window], &http);
        assert!(
            manifest["rows"].as_u64().unwrap() >= 1,
            "{product} {view} {window}: {manifest}"
        );
    }
    // the Iceberg view by name from the Iceberg SQL catalog in the data directory, with the
    // README's reader
    first_snapshots("artists.profile-changes", "profiles").await;
    let read = std::process::Command::new(common::interop_python())
        .arg("-c")
        .arg(
            "import sys; from pyiceberg.catalog.sql import SqlCatalog; \
             catalog = SqlCatalog('meshline', uri='sqlite:///' + sys.argv[1]); \
             print(len(catalog.load_table('artists.profile-changes.profiles').scan().to_arrow()))",
        )
        .arg(data.path().join("iceberg-catalog.db"))
        .output()
        .unwrap();
    assert!(
        read.status.success(),
        "{}",
        String::from_utf8_lossy(&read.stderr)
    );
    let profiles: usize = String::from_utf8_lossy(&read.stdout)
        .trim()
        .parse()
        .unwrap();
    assert!(profiles >= 1, "{profiles} artist profiles");

    let listed = first_snapshots("player.play-events", "daily-plays").await;
    let window = listed[0]["snapshots"][0]["window"]
        .as_str()
        .unwrap()
        .to_owned();
    let manifest = snapshots(
        &["show", "player.play-events", "daily-plays", &window],
        &http,
    );
    assert_eq!(manifest["window"], window.as_str());
    let file = manifest["files"][0]["path"].as_str().unwrap();
    let parquet = std::fs::read(data.path().join(file)).unwrap();
    assert_eq!(&parquet[..4], b"PAR1", "{file} is a Parquet file");

    // every SLI's metric, scraped, with sensible values
    let refused = reqwest::Client::new()
        .post(format!(
            "http://{http}/v1/products/player.play-events/events"
        ))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401, "no token");
    let scraped = text_of(&format!("http://{http}/metrics")).await;
    let scrape =
        prometheus_parse::Scrape::parse(scraped.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let value = |metric: &str, labels: &[(&str, &str)]| -> Option<f64> {
        let samples: Vec<_> = scrape
            .samples
            .iter()
            .filter(|s| {
                s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
            })
            .collect();
        (!samples.is_empty()).then(|| {
            samples
                .iter()
                .map(|s| match &s.value {
                    prometheus_parse::Value::Counter(v)
                    | prometheus_parse::Value::Gauge(v)
                    | prometheus_parse::Value::Untyped(v) => *v,
                    prometheus_parse::Value::Histogram(b) => b
                        .iter()
                        .find(|b| b.less_than.is_infinite())
                        .map_or(0.0, |b| b.count),
                    prometheus_parse::Value::Summary(_) => 0.0,
                })
                .sum()
        })
    };
    let player = [("domain", "player"), ("product", "player.play-events")];
    let with = |extra: (&'static str, &'static str)| {
        let mut labels = player.to_vec();
        labels.push(extra);
        labels
    };
    // validity: the demo's events accepted, none dead-lettered
    let accepted = value(
        "meshline_gateway_events_total",
        &with(("outcome", "accepted")),
    )
    .unwrap();
    assert!(accepted >= 3.0, "{scraped}");
    assert_eq!(
        value(
            "meshline_gateway_events_total",
            &with(("outcome", "dead_lettered"))
        ),
        Some(0.0)
    );
    // freshness: one observation per forwarded event, once its batch is committed
    let fresh = value("meshline_gateway_freshness_seconds", &player).unwrap();
    assert!(fresh >= 1.0 && fresh <= accepted, "{fresh} of {accepted}");
    assert!(value("meshline_gateway_validation_seconds", &player).unwrap() >= accepted);
    // availability: the refused request, by status
    assert_eq!(
        value(
            "meshline_gateway_ingress_requests_total",
            &with(("code", "401"))
        ),
        Some(1.0)
    );
    // lag: one gauge per ingress partition, and the gateway keeps up
    let lag = value("meshline_gateway_consumer_lag", &player).unwrap();
    assert!((0.0..10_000.0).contains(&lag), "lag {lag}");
    // snapshot timeliness: the backfilled windows closed as their records arrived
    let daily = with(("view", "daily-plays"));
    assert!(value("meshline_snapshot_snapshots_total", &daily).unwrap() >= 1.0);
    let delays = value("meshline_snapshot_delay_seconds", &daily).unwrap();
    assert!(delays >= 1.0, "{scraped}");
    let delay_sum = value("meshline_snapshot_delay_seconds_sum", &daily).unwrap();
    assert!(
        delay_sum / delays < 60.0,
        "mean delay {}",
        delay_sum / delays
    );
    let through = value("meshline_snapshot_closed_through_seconds", &daily).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        now - through < 3.0 * 86_400.0 && through <= now,
        "{through}"
    );
    let status = meshline()
        .args([
            "status",
            "--url",
            &format!("http://{http}"),
            "--interval",
            "1s",
        ])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success(),
        "{shown}{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(
        shown.contains("player.play-events") && shown.contains("validity 100.00%/99.5%"),
        "{shown}"
    );
    assert!(
        shown.contains("snapshots of daily-plays: complete through"),
        "{shown}"
    );

    // Ctrl-C: the demo stops, pending deliveries are awaited, the broker stops
    interrupt(&up);
    let status = wait_exit(&mut up, 60);
    assert!(status.success(), "{status}");
    let tail_lines: Vec<String> = lines.try_iter().collect();
    assert!(
        tail_lines.iter().any(|l| l == "meshline stopped cleanly"),
        "{tail_lines:?}"
    );
    let acked = demo_count(&tail_lines, " events acknowledged in player.play-events");
    assert!(acked >= 3);
    let counted = demo_count(&tail_lines, " plays counted into artists.artist-plays");
    assert!(counted > 0, "the play counter derived nothing");

    // restart on the same data: every acknowledged event is in the ingress topic, exactly once,
    // and the gateway forwarded no more than that (the rest goes on at the next start)
    let broker = sqlite_broker(data.path()).await;
    let bootstrap = broker.bootstrap();
    let (ingress, forwarded) = tokio::task::spawn_blocking(move || {
        (
            high_watermarks(&bootstrap, "player.play-events.ingress"),
            high_watermarks(&bootstrap, "player.play-events")
                + high_watermarks(&bootstrap, "player.play-events.dlq"),
        )
    })
    .await
    .unwrap();
    assert_eq!(ingress, acked);
    assert!(forwarded <= ingress, "{forwarded} forwarded of {ingress}");
}

/// The count a `demo: <n><what>` line of `up`'s last words gives.
fn demo_count(lines: &[String], what: &str) -> i64 {
    lines
        .iter()
        .find_map(|l| l.strip_prefix("demo: ").and_then(|r| r.strip_suffix(what)))
        .unwrap_or_else(|| panic!("no `demo: …{what}` in {lines:?}"))
        .parse()
        .unwrap()
}

/// A `documents` key of the catalog as a `'static` name.
fn standard_key(key: &str) -> &'static str {
    ["odcs", "asyncapi", "sloth", "openslo"]
        .into_iter()
        .find(|k| *k == key)
        .unwrap_or_else(|| panic!("unexpected document {key}"))
}

/// The JSON body of a GET.
async fn json_of(url: &str) -> serde_json::Value {
    reqwest::get(url).await.unwrap().json().await.unwrap()
}

/// The body of a GET.
async fn text_of(url: &str) -> String {
    reqwest::get(url).await.unwrap().text().await.unwrap()
}

/// `meshline snapshots ARGS` against the catalog at `http`: its JSON output.
fn snapshots(args: &[&str], http: &str) -> serde_json::Value {
    let out = meshline()
        .arg("snapshots")
        .args(args)
        .args(["--url", &format!("http://{http}")])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    serde_json::from_slice(&out.stdout).unwrap()
}

fn run_products(args: &[&str], http: &str) -> (bool, String, String) {
    let out = meshline()
        .arg("products")
        .args(args)
        .args(["--url", &format!("http://{http}")])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn contract_lint_accepts_the_committed_descriptors() {
    let out = meshline()
        .args(["contract", "lint"])
        .arg(repo_config())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("6 data product(s), no errors"));
}

/// Copies the committed config and schemas into a temp dir, applying `edit` to the labels'
/// descriptor.
fn broken_config(edit: impl FnOnce(String) -> String) -> tempfile::TempDir {
    edited_config("labels/onboarded.yaml", edit)
}

/// Copies the committed config and schemas into a temp dir, applying `edit` to the descriptor
/// `products/<descriptor>`.
fn edited_config(descriptor: &str, edit: impl FnOnce(String) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let copy = |from: &Path, to: &Path| {
        let status = Command::new("cp")
            .arg("-r")
            .arg(from)
            .arg(to)
            .status()
            .unwrap();
        assert!(status.success());
    };
    copy(&root.join("config"), dir.path());
    copy(&root.join("schemas"), dir.path());
    let file = dir.path().join("config/products").join(descriptor);
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, edit(text)).unwrap();
    dir
}

fn lint(dir: &Path) -> (bool, String) {
    let out = meshline()
        .args(["contract", "lint"])
        .arg(dir.join("config"))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_unknown_descriptor_field_is_named_with_its_file() {
    let dir = broken_config(|t| t.replace("partitions: 1", "partitions: 1\npartitons: 2"));
    let (ok, err) = lint(dir.path());
    assert!(!ok);
    assert!(
        err.contains("onboarded.yaml") && err.contains("unknown field `partitons`"),
        "{err}"
    );
}

#[test]
fn a_missing_schema_file_is_named_with_what_to_do() {
    let dir = broken_config(|t| t.replace("label-onboarded.avsc", "labels.avsc"));
    let (ok, err) = lint(dir.path());
    assert!(!ok);
    assert!(
        err.contains("field `schema`")
            && err.contains("labels.avsc")
            && err.contains("relative to the descriptor"),
        "{err}"
    );
}

#[test]
fn an_invalid_id_and_partition_count_are_both_reported() {
    let dir = broken_config(|t| {
        t.replace("id: labels.onboarded", "id: player.onboarded")
            .replace("partitions: 1", "partitions: 0")
    });
    let (ok, err) = lint(dir.path());
    assert!(!ok);
    assert!(
        err.contains("field `id`") && err.contains("field `partitions`"),
        "{err}"
    );
    assert!(err.contains("2 error(s)"), "{err}");
}

#[test]
fn every_other_lint_error_class_names_its_field_and_what_to_do() {
    let cases: [(&str, &str, &[&str]); 20] = [
        (
            "allowed_lateness: 1h",
            "allowed_lateness: 1h\n    late: amend\n    amend_for: 7d\n    keep: 1d",
            &[
                "field `views.keep`",
                "amends windows for 7d",
                "at least `amend_for`",
            ],
        ),
        (
            "allowed_lateness: 1h",
            "allowed_lateness: 1h\n    keep: 0s",
            &["field `views.keep`", "keeps nothing", "`90d`"],
        ),
        (
            "allowed_lateness: 1h",
            "allowed_lateness: 1h\n    time_zone: Mars/Olympus",
            &[
                "field `views.time_zone`",
                "IANA time zone",
                "Europe/Stockholm",
            ],
        ),
        (
            "allowed_lateness: 1h",
            "allowed_lateness: 1h\n    time_field: signed_at",
            &["field `views.time_field`", "`signed_at`", "use one of"],
        ),
        (
            "allowed_lateness: 1h",
            "allowed_lateness: 1h\n    late: later",
            &["onboarded.yaml", "unknown variant `later`"],
        ),
        (
            "allowed_lateness: 1h",
            "allowed_lateness: 1h\n    amend_for: soon",
            &["onboarded.yaml", "`soon` is not a duration", "`7d`"],
        ),
        (
            "partitions: 1",
            "partitions: four",
            &["onboarded.yaml", "partitions", "invalid type"],
        ),
        (
            "label-onboarded.avsc",
            "../../config/products/labels/onboarded.yaml",
            &["field `schema`", "not a valid Avro schema"],
        ),
        (
            // another product's id, in the same domain (so that its source stays its own)
            "id: labels.onboarded\ndomain: labels",
            "id: labels.releases\ndomain: labels",
            &["field `id`", "already declared in", "releases.yaml"],
        ),
        (
            "message.catalog_size > 0",
            "message.catalog_size >",
            &[
                "field `rules.expression`",
                "catalog_not_empty",
                "not a CEL expression",
            ],
        ),
        (
            "key: [tier, country]",
            "key: [tier, nation]",
            &[
                "field `views.key`",
                "`nation`",
                "use one of",
                "catalog_size",
            ],
        ),
        (
            "{name: tracks, function: sum, field: catalog_size}",
            "{name: tracks, function: sum}",
            &[
                "field `views.aggregations.field`",
                "`tracks`",
                "needs a `field`",
            ],
        ),
        (
            "{name: tracks, function: sum, field: catalog_size}",
            "{name: tracks, function: sum, field: tracks}",
            &[
                "field `views.aggregations.field`",
                "`tracks`, which is not a field",
            ],
        ),
        (
            "objective: 99.0",
            "objective: 150",
            &["field `slos.validity`", "between 0 and 100"],
        ),
        (
            "compatibility: BACKWARD_TRANSITIVE",
            "compatibility: SIDEWAYS",
            &["compatibility", "SIDEWAYS", "FULL_TRANSITIVE"],
        ),
        (
            "allowed_lateness: 1h",
            "allowed_lateness: soon",
            &["not a duration", "10m"],
        ),
        (
            "email: label-relations@example.com",
            "email: label-relations",
            &["field `owner.email`", "not an email address"],
        ),
        (
            "partitions: 1",
            "partitions: 1\ninputs: [{product: player.nothing}]",
            &[
                "field `inputs`",
                "`player.nothing` is not declared",
                "player.play-events",
            ],
        ),
        (
            "partitions: 1",
            "partitions: 1\ninputs: [{product: player.play-events, port: weekly}]",
            &[
                "field `inputs`",
                "no output port `weekly`",
                "events, daily-plays",
            ],
        ),
        (
            "partitions: 1",
            "partitions: 1\ninputs: [{product: labels.onboarded}]",
            &["field `inputs`", "computed from itself"],
        ),
    ];
    for (from, to, mentions) in cases {
        let dir = broken_config(|t| {
            assert!(t.contains(from), "the fixture has no `{from}`");
            t.replace(from, to)
        });
        let (ok, err) = lint(dir.path());
        assert!(!ok, "`{to}` passed lint");
        for m in mentions {
            assert!(err.contains(m), "`{to}`: `{m}` not in {err}");
        }
    }
    let empty = tempfile::tempdir().unwrap();
    std::fs::create_dir(empty.path().join("config")).unwrap();
    let (ok, err) = lint(empty.path());
    assert!(!ok && err.contains("no data product descriptor"), "{err}");
}

#[test]
fn up_on_a_taken_port_says_so() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let data = tempfile::tempdir().unwrap();
    let out = meshline()
        .args(["up", "--listen", &addr, "--config"])
        .arg(repo_config())
        .arg("--data-dir")
        .arg(data.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("in use") && err.contains(&addr), "{err}");
}

#[test]
fn up_with_an_unreachable_bootstrap_says_so() {
    let addr = free_port();
    let out = meshline()
        .args(["up", "--bootstrap", &addr, "--config"])
        .arg(repo_config())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot reach Kafka") && err.contains(&addr),
        "{err}"
    );
}

#[test]
fn tail_of_an_unknown_product_lists_the_declared_ones() {
    let out = meshline()
        .args(["tail", "player.skips", "--config"])
        .arg(repo_config())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown data product `player.skips`") && err.contains("player.play-events"),
        "{err}"
    );
}

/// The committed play-event schema with `edit` applied, written to a temp file.
fn play_event_variant(
    edit: impl FnOnce(String) -> String,
) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("schemas/player/play-event.avsc")).unwrap();
    let path = dir.path().join("new.avsc");
    std::fs::write(&path, edit(text)).unwrap();
    (dir, path)
}

fn diff(old: &str, new: &Path, extra: &[&str]) -> (bool, String, String) {
    let out = meshline()
        .args(["contract", "diff", old])
        .arg(new)
        .arg("--config")
        .arg(repo_config())
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `contract diff player.play-events NEW --registry URL`, off the async runtime.
async fn diff_registered(new: &Path, url: &str) -> (bool, String, String) {
    let (new, url) = (new.to_owned(), url.to_owned());
    tokio::task::spawn_blocking(move || diff("player.play-events", &new, &["--registry", &url]))
        .await
        .unwrap()
}

const WITH_DEFAULTED_FIELD: &str = r#"{"name": "shuffle", "type": "boolean", "default": false},
    {"name": "play_id""#;
const WITH_REQUIRED_FIELD: &str = r#"{"name": "shuffle", "type": "boolean"},
    {"name": "play_id""#;

#[test]
fn contract_diff_accepts_a_compatible_change_against_a_product() {
    let (_d, new) =
        play_event_variant(|t| t.replacen(r#"{"name": "play_id""#, WITH_DEFAULTED_FIELD, 1));
    let (ok, out, err) = diff("player.play-events", &new, &["--committed"]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("ok        shuffle: added, with a default"),
        "{out}"
    );
    assert!(out.contains("compatible under BACKWARD"), "{out}");
}

#[test]
fn contract_diff_flags_a_breaking_change_under_the_products_mode() {
    let (_d, new) =
        play_event_variant(|t| t.replacen(r#"{"name": "play_id""#, WITH_REQUIRED_FIELD, 1));
    let (ok, out, err) = diff("player.play-events", &new, &["--committed"]);
    assert!(!ok);
    assert!(
        out.contains("BREAKING  shuffle: added, without a default"),
        "{out}"
    );
    assert!(err.contains("not compatible under BACKWARD"), "{err}");
    // the same change is fine for producers-first evolution
    let (ok, out, err) = diff(
        "player.play-events",
        &new,
        &["--committed", "--compatibility", "FORWARD"],
    );
    assert!(ok, "{out}{err}");
}

#[test]
fn contract_diff_checks_json_schema_and_protobuf_products_by_their_own_rules() {
    let dir = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let variant = |from: &str, name: &str, edit: &dyn Fn(String) -> String| {
        let text = std::fs::read_to_string(root.join(from)).unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, edit(text)).unwrap();
        path
    };
    // JSON Schema: a closed content model takes an optional property, not a required one
    let with_genre = |t: String| {
        t.replace(
            r#""explicit": {"type": "boolean"}"#,
            r#""explicit": {"type": "boolean"}, "genre": {"type": "string"}"#,
        )
    };
    let optional = variant(
        "labels/release-announced.schema.json",
        "optional.schema.json",
        &with_genre,
    );
    let (ok, out, err) = diff("labels.releases", &optional, &["--committed"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("field     genre: added"), "{out}");
    assert!(out.contains("compatible under BACKWARD"), "{out}");
    let required = variant(
        "labels/release-announced.schema.json",
        "required.schema.json",
        &|t| with_genre(t).replace(r#""release_date"]"#, r#""release_date", "genre"]"#),
    );
    let (ok, _, err) = diff("labels.releases", &required, &["--committed"]);
    assert!(!ok);
    assert!(
        err.contains("genre") && err.contains("not compatible under BACKWARD"),
        "{err}"
    );
    // Protobuf: a field added is compatible; a string that became an int64 is not
    let added = variant("artists/artist-followed.proto", "added.proto", &|t| {
        t.replace(
            "bool notifications = 5;",
            "bool notifications = 5;\n  string playlist_id = 6;",
        )
    });
    let (ok, out, err) = diff("artists.follows", &added, &["--committed"]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("playlist_id: added"), "{out}");
    let retyped = variant("artists/artist-followed.proto", "retyped.proto", &|t| {
        t.replace("string artist_id = 3;", "int64 artist_id = 3;")
    });
    let (ok, _, err) = diff("artists.follows", &retyped, &["--committed"]);
    assert!(!ok);
    assert!(err.contains("not compatible under BACKWARD"), "{err}");
}

#[test]
fn contract_diff_names_an_invalid_schema_and_a_bad_mode() {
    let (_d, new) = play_event_variant(|t| t.replace("\"record\"", "\"recrod\""));
    let (ok, _, err) = diff("player.play-events", &new, &["--committed"]);
    assert!(!ok);
    assert!(err.contains("is not a valid Avro schema"), "{err}");
    let (ok, _, err) = diff(
        "player.play-events",
        &new,
        &["--committed", "--compatibility", "SIDEWAYS"],
    );
    assert!(!ok);
    assert!(
        err.contains("not a compatibility mode") && err.contains("FULL_TRANSITIVE"),
        "{err}"
    );
    let (ok, _, err) = diff(
        "player.play-events",
        Path::new("/nonexistent/new.avsc"),
        &["--committed"],
    );
    assert!(!ok);
    assert!(
        err.contains("cannot read schema file /nonexistent/new.avsc"),
        "{err}"
    );
    let (ok, _, err) = diff("player.skips", &new, &["--committed"]);
    assert!(!ok);
    assert!(
        err.contains("neither a schema file nor a declared product")
            && err.contains("player.play-events"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn contract_diff_of_a_product_checks_every_version_the_registry_holds() {
    let dir = tempfile::tempdir().unwrap();
    let broker = sqlite_broker(dir.path()).await;
    let (registry, url, _stop) = registry(&broker.bootstrap()).await;
    let catalog = common::catalog();
    let product = catalog.get("player.play-events").unwrap();
    let subject = product.subject();
    let request = meshline::registry::contract::registration(product);
    registry
        .write(|s| s.plan_register(&subject, &request))
        .await
        .unwrap();

    let (_d, breaking) =
        play_event_variant(|t| t.replacen(r#"{"name": "play_id""#, WITH_REQUIRED_FIELD, 1));
    let (_e, fine) =
        play_event_variant(|t| t.replacen(r#"{"name": "play_id""#, WITH_DEFAULTED_FIELD, 1));
    let (ok, out, err) = diff_registered(&breaking, &url).await;
    assert!(!ok, "{out}");
    assert!(out.contains("BREAKING  shuffle"), "{out}");
    assert!(err.contains("version 1"), "{err}");
    let (ok, out, err) = diff_registered(&fine, &url).await;
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("no rule or metadata changes against the registered contract"),
        "{out}"
    );

    // someone registered a relaxed rule: the descriptor would change it back
    let mut relaxed = request.clone();
    for rule in relaxed.rule_set.as_mut().unwrap()["domainRules"]
        .as_array_mut()
        .unwrap()
    {
        if rule["name"] == "known_country" {
            rule["onFailure"] = "NONE".into();
        }
    }
    registry
        .write(|s| s.plan_register(&subject, &relaxed))
        .await
        .unwrap();
    let (ok, out, err) = diff_registered(&fine, &url).await;
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("contract  rule `known_country` onFailure: NONE -> DLQ"),
        "{out}"
    );

    // no registry: the error says how to compare offline
    let (ok, _, err) = tokio::task::spawn_blocking(move || {
        diff(
            "player.play-events",
            &fine,
            &["--registry", "http://127.0.0.1:9"],
        )
    })
    .await
    .unwrap();
    assert!(!ok);
    assert!(
        err.contains("cannot reach the schema registry") && err.contains("--committed"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn produce_sends_json_lines_through_the_contract_and_tail_reads_them() {
    let dir = tempfile::tempdir().unwrap();
    let broker = sqlite_broker(dir.path()).await;
    let bootstrap = broker.bootstrap();
    let catalog = catalog();
    meshline::broker::ensure_topics(&bootstrap, &catalog)
        .await
        .unwrap();
    let (registry, url, _stop) = registry(&bootstrap).await;
    for product in catalog.iter() {
        registry.register_product(product).await.unwrap();
    }
    let input = dir.path().join("labels.jsonl");
    std::fs::write(
        &input,
        [
            r#"{"label_id":"label-1","name":"One","country":"SE","tier":"INDIE","catalog_size":12,"onboarded_at":1795600000000}"#,
            r#"{"label_id":"label-2","name":"Two","country":"US","tier":"MAJOR","catalog_size":900,"distributor":"D","onboarded_at":1795600000000}"#,
            r#"{"label_id":"label-3","name":"Empty","country":"SE","tier":"INDIE","catalog_size":0,"onboarded_at":1795600000000}"#,
            r#"{"label_id": "#,
            r#"{"label_id":"label-5","name":"Odd","country":"SE","tier":"GIANT","catalog_size":5,"onboarded_at":1795600000000}"#,
        ]
        .join("\n"),
    )
    .unwrap();
    let (b, u) = (bootstrap.clone(), url.clone());
    let out = tokio::task::spawn_blocking(move || {
        meshline()
            .args([
                "produce",
                "labels.onboarded",
                "--direct",
                "--key-field",
                "label_id",
            ])
            .args(["--bootstrap", &b, "--registry", &u, "--file"])
            .arg(&input)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "bad lines make the exit code non-zero"
    );
    assert!(
        stdout.contains("2 event(s) sent to labels.onboarded"),
        "{stdout}{stderr}"
    );
    assert!(
        stderr.contains("line 3:") && stderr.contains("catalog_not_empty"),
        "{stderr}"
    );
    assert!(stderr.contains("line 4: not JSON"), "{stderr}");
    assert!(
        stderr.contains("line 5:") && stderr.contains("GIANT"),
        "{stderr}"
    );
    assert!(stderr.contains("3 line(s) not sent"), "{stderr}");

    let out = tokio::task::spawn_blocking(move || {
        meshline()
            .args([
                "tail",
                "labels.onboarded",
                "--from-beginning",
                "--max-events",
                "2",
            ])
            .args(["--bootstrap", &bootstrap, "--registry", &url, "--config"])
            .arg(repo_config())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events[0]["data"]["label_id"], "label-1");
    assert_eq!(events[0]["attributes"]["subject"], "label-1");
    assert_eq!(events[0]["attributes"]["source"], "/labels");
    assert_eq!(events[1]["data"]["distributor"], "D");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readyz_turns_200_only_once_every_products_subject_is_registered() {
    meshline::registry::client::install_crypto_provider();
    let data = tempfile::tempdir().unwrap();
    let (kafka, registry, http) = (free_port(), free_port(), free_port());
    let mut up = meshline()
        .args(["up", "--listen", &kafka])
        .args(["--registry-listen", &registry, "--http-listen", &http])
        .arg("--config")
        .arg(repo_config())
        .arg("--data-dir")
        .arg(data.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let _guard = KillOnDrop(up.id());
    let lines = stdout_lines(&mut up);
    std::thread::spawn(move || for _ in lines {});
    let client = reqwest::Client::new();
    // an orchestrator's probe, from the moment the process starts: at its first 200 every
    // product's subject answers
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut answers = Vec::new();
    loop {
        assert!(std::time::Instant::now() < deadline, "{answers:?}");
        let Ok(response) = client.get(format!("http://{registry}/readyz")).send().await else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let status = response.status().as_u16();
        answers.push(status);
        if status == 200 {
            break;
        }
        assert_eq!(status, 503, "not ready is 503");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for product in catalog().iter() {
        let url = format!(
            "http://{registry}/subjects/{}-value/versions/latest",
            product.id()
        );
        let response = client.get(&url).send().await.unwrap();
        assert_eq!(response.status(), 200, "{url} once /readyz said ready");
    }
    assert_eq!(
        client
            .get(format!("http://{registry}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // the gateway's server is ready once the gateway holds its partitions and the snapshotter
    // consumes every product
    let ready = loop {
        let response = client
            .get(format!("http://{http}/readyz"))
            .send()
            .await
            .unwrap();
        if response.status() == 200 {
            break response.text().await.unwrap();
        }
        assert!(std::time::Instant::now() < deadline, "gateway never ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        ready.contains("gateway holds ingress partitions"),
        "{ready}"
    );
    assert!(
        ready.contains("snapshotter settled for every product"),
        "{ready}"
    );
    interrupt(&up);
    assert!(wait_exit(&mut up, 60).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn up_uses_an_existing_registry_once_the_products_are_published_there() {
    meshline::registry::client::install_crypto_provider();
    let data = tempfile::tempdir().unwrap();
    let broker = sqlite_broker(&data.path().join("kafka")).await;
    let bootstrap = broker.bootstrap();
    // the registry the platform team already runs, its writes needing the platform's token
    let token = "platform-token-of-the-existing-registry";
    let tokens = data.path().join("tokens.yaml");
    common::write_platform_token(&tokens, token);
    let registry = free_port();
    let url = format!("http://{registry}");
    let mut existing = meshline()
        .args([
            "registry",
            "--bootstrap",
            &bootstrap,
            "--registry-listen",
            &registry,
        ])
        .arg("--schemas-topic")
        .arg("_their_schemas")
        .arg("--tokens")
        .arg(&tokens)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let _existing = KillOnDrop(existing.id());
    let client = reqwest::Client::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while client
        .get(format!("{url}/readyz"))
        .send()
        .await
        .map_or(true, |r| r.status() != 200)
    {
        assert!(std::time::Instant::now() < deadline, "registry never ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // not published yet: `up` says what to do and starts nothing
    let (http, up_registry) = (free_port(), free_port());
    let up_args = |cmd: &mut std::process::Command| {
        cmd.args(["up", "--bootstrap", &bootstrap, "--registry-url", &url])
            .args(["--http-listen", &http, "--registry-listen", &up_registry])
            .arg("--config")
            .arg(repo_config())
            .arg("--data-dir")
            .arg(data.path().join("up"));
    };
    let mut refused = meshline();
    up_args(&mut refused);
    let out = refused.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("meshline contract publish"), "{stderr}");

    // publishing is explicit, and needs the registry's credentials
    let publish = |token: Option<&str>| {
        let mut cmd = meshline();
        cmd.args(["contract", "publish", "--registry", &url])
            .arg("--config")
            .arg(repo_config());
        if let Some(token) = token {
            cmd.env("MESHLINE_REGISTRY_TOKEN", token);
        }
        cmd.output().unwrap()
    };
    let anonymous = publish(None);
    assert!(!anonymous.status.success());
    assert!(String::from_utf8_lossy(&anonymous.stderr).contains("40101"));
    let published = publish(Some(token));
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );
    assert!(String::from_utf8_lossy(&published.stdout).contains("player.play-events-value id"));

    // now `up` runs on it: no registry of its own, the gateway checks against the existing one
    let mut up = meshline();
    up_args(&mut up);
    let mut up = up.stdout(Stdio::piped()).spawn().unwrap();
    let _up = KillOnDrop(up.id());
    let lines = stdout_lines(&mut up);
    let banner = wait_for(&lines, "Stop with Ctrl-C", 120);
    assert!(
        banner
            .iter()
            .any(|l| l.contains(&format!("registry:   {url}"))),
        "{banner:?}"
    );
    std::thread::spawn(move || for _ in lines {});
    assert!(
        std::net::TcpStream::connect(&up_registry).is_err(),
        "no registry of its own"
    );
    let sdk = meshline::sdk::Producer::builder(&bootstrap, &url)
        .source("/player/existing")
        .event::<meshline::demo::events::PlayEvent>()
        .build()
        .await
        .unwrap();
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(3);
    for _ in 0..5 {
        let event = meshline::demo::events::PlayEvent::random(&mut rng, chrono::Utc::now());
        sdk.send(&event).await.unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while high_watermarks(&bootstrap, "player.play-events") < 5 {
        assert!(
            std::time::Instant::now() < deadline,
            "gateway forwarded nothing"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // a rule added to the descriptor and published while everything runs: the catalog lists it
    // and the gateway enforces it, with no restart
    let long_play = sdk
        .record_for(&meshline::demo::events::PlayEvent {
            duration_ms: 5_000,
            ..meshline::demo::events::PlayEvent::random(&mut rng, chrono::Utc::now())
        })
        .await
        .unwrap();
    let edited = edited_config("player/play-events.yaml", |text| {
        text.replacen(
            "rules:\n",
            "rules:\n  - name: short_plays\n    expression: message.duration_ms < 1000\n    description: Plays under a second only.\n    on_failure: dlq\n",
            1,
        )
    });
    let published = meshline()
        .args(["contract", "publish", "--registry", &url])
        .arg("--config")
        .arg(edited.path().join("config"))
        .env("MESHLINE_REGISTRY_TOKEN", token)
        .output()
        .unwrap();
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (ok, show, err) = run_products(&["show", "player.play-events"], &http);
        assert!(ok, "{err}");
        if show.contains("short_plays: message.duration_ms < 1000") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{show}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // the gateway asks the registry every 2 s
    tokio::time::sleep(Duration::from_secs(5)).await;
    let producer = common::producer(&bootstrap);
    let mut record =
        rdkafka::producer::FutureRecord::<[u8], [u8]>::to("player.play-events.ingress")
            .headers(long_play.owned_headers());
    if let Some(key) = &long_play.key {
        record = record.key(key.as_slice());
    }
    if let Some(payload) = &long_play.payload {
        record = record.payload(payload.as_slice());
    }
    producer
        .send(record, Duration::from_secs(30))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while high_watermarks(&bootstrap, "player.play-events.dlq") < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the new rule dead-lettered nothing"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(high_watermarks(&bootstrap, "player.play-events"), 5);

    interrupt(&up);
    assert!(wait_exit(&mut up, 60).success());
    existing.kill().ok();
    existing.wait().ok();
}

/// A command whose output pipe closes (`meshline … | head`) ends as other tools do: by the
/// signal, with nothing on stderr, not with a panic.
#[test]
fn a_closed_output_pipe_ends_a_command_quietly() {
    use std::os::unix::process::ExitStatusExt as _;
    let mut child = meshline()
        .args(["contract", "acls"])
        .arg(repo_config())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.signal(), Some(13), "{:?}", out.status);
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
