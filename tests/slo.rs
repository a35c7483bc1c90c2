//! The SLO rules and dashboards generated from the descriptors: committed and current, valid for
//! Prometheus (`promtool check rules`), firing at the documented burn rates (`promtool test
//! rules` on synthetic error rates), and dashboards well formed for Grafana.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

use meshline::{product::Catalog, slo};
use serde_json::{json, Value};

mod common;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn catalog() -> Catalog {
    meshline::formats::load_catalog(&root().join("config")).unwrap()
}

/// Runs promtool; the test command (`scripts/test.sh`) installs it (Debian's `prometheus` package).
fn promtool(args: &[&str]) -> String {
    let output = Command::new("promtool")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run promtool ({e}): install Debian's `prometheus` package, as .ci/run does"
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

fn rule_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("deploy").join(slo::RULES_DIR))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

const FORMATS: [slo::Format; 3] = [
    slo::Format::Prometheus,
    slo::Format::Sloth,
    slo::Format::Openslo,
];

#[test]
fn generated_files_are_committed_and_current() {
    let deploy = root().join("deploy");
    for format in FORMATS {
        let generated = slo::generate(&catalog(), format).unwrap();
        for (path, text) in &generated {
            let committed = std::fs::read_to_string(deploy.join(path)).unwrap_or_default();
            assert!(
                &committed == text,
                "deploy/{} is stale: run `cargo run -- slo generate --format {format:?}`",
                path.display()
            );
        }
        for dir in format.dirs() {
            for entry in std::fs::read_dir(deploy.join(dir)).unwrap() {
                let path = entry.unwrap().path();
                let relative = path.strip_prefix(&deploy).unwrap();
                assert!(
                    generated.contains_key(relative),
                    "deploy/{} belongs to no product: run `cargo run -- slo generate --format {format:?}`",
                    relative.display()
                );
            }
        }
        // every product has a dashboard; every product with SLOs has rules, a Sloth spec and
        // OpenSLO documents
        let with_slos = catalog()
            .iter()
            .filter(|p| slo::rules::for_product(p).is_some())
            .count();
        let expected = match format {
            slo::Format::Prometheus => catalog().len() + with_slos,
            _ => with_slos,
        };
        assert_eq!(generated.len(), expected, "{format:?}");
    }
}

fn generated(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("deploy").join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn sloth_specs_follow_sloths_rules() {
    let files = generated(slo::SLOTH_DIR);
    common::assert_valid(&common::fixture("sloth/prometheus-v1.schema.json"), &files);
    for file in &files {
        let spec: Value = serde_norway::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        let slos = spec["slos"].as_array().unwrap();
        for slo in slos {
            // the one rule of Sloth's validation a schema cannot say
            let events = &slo["sli"]["events"];
            assert_ne!(events["error_query"], events["total_query"], "{slo}");
        }
        // the alerts meshline's own rules raise, one SLO per objective
        let product = catalog()
            .require(spec["service"].as_str().unwrap())
            .unwrap()
            .clone();
        let declared = slo::Sli::ALL
            .iter()
            .filter(|s| s.objective(&product.descriptor.slos).is_some())
            .count();
        assert_eq!(slos.len(), declared, "{}", file.display());
    }
}

#[test]
fn openslo_documents_follow_the_openslo_v1_schema() {
    let files = generated(slo::OPENSLO_DIR);
    common::assert_valid(&common::fixture("openslo/v1/openslo.schema.json"), &files);
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let docs: Vec<Value> = text
            .split("\n---\n")
            .skip(1)
            .map(|d| serde_norway::from_str(d).unwrap())
            .collect();
        // every reference names a document of the same file
        let names: BTreeSet<(String, String)> = docs
            .iter()
            .map(|d| {
                (
                    d["kind"].as_str().unwrap().to_owned(),
                    d["metadata"]["name"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let has = |kind: &str, name: &Value| {
            names.contains(&(kind.to_owned(), name.as_str().unwrap().to_owned()))
        };
        for doc in &docs {
            let spec = &doc["spec"];
            match doc["kind"].as_str().unwrap() {
                "SLO" => {
                    assert!(has("Service", &spec["service"]), "{doc}");
                    for policy in spec["alertPolicies"].as_array().unwrap() {
                        assert!(has("AlertPolicy", policy), "{doc}");
                    }
                    let target = spec["objectives"][0]["target"].as_f64().unwrap();
                    assert!(target > 0.9 && target < 1.0, "{doc}");
                }
                "AlertPolicy" => {
                    assert!(has(
                        "AlertCondition",
                        &spec["conditions"][0]["conditionRef"]
                    ));
                    assert!(has(
                        "AlertNotificationTarget",
                        &spec["notificationTargets"][0]["targetRef"]
                    ));
                }
                _ => {}
            }
        }
    }
}

#[test]
fn the_rules_and_the_prometheus_config_pass_promtool() {
    let files = rule_files();
    assert!(!files.is_empty());
    let mut args = vec!["check", "rules"];
    args.extend(files.iter().map(|f| f.to_str().unwrap()));
    let out = promtool(&args);
    assert!(out.contains("SUCCESS"), "{out}");
    let config = root().join("deploy/prometheus/prometheus.yml");
    promtool(&["check", "config", "--syntax-only", config.to_str().unwrap()]);
}

/// The labels and annotations a firing alert of `name` for `slo` of `product` carries.
fn expected_alert(rules: &Value, name: &str, product: &str, slo_name: &str) -> Value {
    let rule = rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .find(|r| r["alert"] == name && r["labels"]["slo"] == slo_name)
        .unwrap_or_else(|| panic!("no alert {name} for {slo_name}"));
    let mut labels = rule["labels"].clone();
    if name != slo::rules::ABSENT_ALERT {
        // the recordings' labels, but sloth_window
        labels["sloth_id"] = json!(format!("{}-{slo_name}", product.replace('.', "-")));
        labels["sloth_service"] = json!(product);
        labels["sloth_slo"] = json!(slo_name);
    }
    json!({ "exp_labels": labels, "exp_annotations": rule["annotations"] })
}

fn series(outcome: &str, values: &str) -> Value {
    json!({
        "series": format!("meshline_gateway_events_total{{domain=\"player\",product=\"player.play-events\",outcome=\"{outcome}\"}}"),
        "values": values,
    })
}

#[test]
fn burn_rate_alerts_fire_at_the_documented_thresholds() {
    const PRODUCT: &str = "player.play-events";
    let file = root().join(format!("deploy/prometheus/rules/{PRODUCT}.yaml"));
    let rules: Value = serde_norway::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    // validity: objective 99.5%, so the error budget is 0.5% of events
    let objective = catalog()
        .require(PRODUCT)
        .unwrap()
        .descriptor
        .slos
        .validity
        .clone();
    assert_eq!(
        objective.unwrap().objective,
        99.5,
        "the scenarios below assume 99.5%"
    );
    let page = expected_alert(&rules, "MeshlineSLOBurnRatePage", PRODUCT, "validity");
    let ticket = expected_alert(&rules, "MeshlineSLOBurnRateTicket", PRODUCT, "validity");
    let absent = expected_alert(&rules, "MeshlineSLIAbsent", PRODUCT, "validity");
    let exhausted = expected_alert(&rules, slo::rules::EXHAUSTED_ALERT, PRODUCT, "validity");
    let check = |at: &str, alert: &str, expect: Vec<Value>| json!({ "eval_time": at, "alertname": alert, "exp_alerts": expect });
    let tests = json!([
        {
            // 6 h at 100 events/min without errors, then 10% errors: a 20x burn. The 1x ticket
            // pair (6h, 3d) crosses after ~19 min; the 14.4x page pair (1h, 5m) after ~44 min.
            "name": "a 20x burn tickets after ~19 min and pages after ~44 min",
            "interval": "1m",
            "input_series": [
                series("accepted", "0+100x360 36000+90x120"),
                series("dead_lettered", "0x360 0+10x120"),
                series("duplicate", "0x480"),
            ],
            "alert_rule_test": [
                check("370m", "MeshlineSLOBurnRateTicket", vec![]),
                check("370m", "MeshlineSLOBurnRatePage", vec![]),
                check("395m", "MeshlineSLOBurnRateTicket", vec![ticket.clone()]),
                check("395m", "MeshlineSLOBurnRatePage", vec![]),
                check("415m", "MeshlineSLOBurnRatePage", vec![page.clone()]),
            ],
        },
        {
            "name": "a steady 4x burn (2% errors) tickets but never pages",
            "interval": "1m",
            "input_series": [
                series("accepted", "0+98x600"),
                series("dead_lettered", "0+2x600"),
            ],
            "alert_rule_test": [
                check("3h", "MeshlineSLOBurnRateTicket", vec![ticket.clone()]),
                check("3h", "MeshlineSLOBurnRatePage", vec![]),
                check("10h", "MeshlineSLOBurnRatePage", vec![]),
            ],
        },
        {
            "name": "a steady 0.8x burn (0.4% errors) stays within budget: no alert",
            "interval": "1m",
            "input_series": [
                series("accepted", "0+249x600"),
                series("dead_lettered", "0+1x600"),
            ],
            "alert_rule_test": [
                check("10h", "MeshlineSLOBurnRateTicket", vec![]),
                check("10h", "MeshlineSLOBurnRatePage", vec![]),
                check("10h", slo::rules::EXHAUSTED_ALERT, vec![]),
            ],
        },
        {
            // half the events failing is a 100x burn: over the period's average the budget is
            // spent, and the alert fires once that has held for 5 min
            "name": "a budget spent over the SLO period raises the exhausted alert",
            "interval": "1m",
            "input_series": [
                series("accepted", "0+50x60"),
                series("dead_lettered", "0+50x60"),
            ],
            "alert_rule_test": [
                check("4m", slo::rules::EXHAUSTED_ALERT, vec![]),
                check("20m", slo::rules::EXHAUSTED_ALERT, vec![exhausted]),
            ],
        },
        {
            "name": "half the events failing at 6 events an hour is under min_events: no alert",
            "interval": "1m",
            "input_series": [
                series("accepted", "0+0.05x600"),
                series("dead_lettered", "0+0.05x600"),
            ],
            "alert_rule_test": [
                check("3h", "MeshlineSLOBurnRatePage", vec![]),
                check("3h", "MeshlineSLOBurnRateTicket", vec![]),
            ],
        },
        {
            // 5m windows without events record no ratio (not NaN), so the SLO window's average
            // is the ratio of the windows that had events, not NaN for 28 days
            "name": "a quiet spell does not blank the SLI over the SLO window",
            "interval": "1m",
            "input_series": [
                series("accepted", "0x30 0+99x30"),
                series("dead_lettered", "0x30 0+1x30"),
            ],
            "promql_expr_test": [{
                "eval_time": "60m",
                "expr": "(slo:sli_error:ratio_rate28d{sloth_id=\"player-play-events-validity\"} > bool 0.0099) * (slo:sli_error:ratio_rate28d{sloth_id=\"player-play-events-validity\"} < bool 0.0101)",
                "exp_samples": [{
                    "labels": "{domain=\"player\",product=\"player.play-events\",sloth_id=\"player-play-events-validity\",sloth_service=\"player.play-events\",sloth_slo=\"validity\",sloth_window=\"28d\"}",
                    "value": 1,
                }],
            }],
        },
        {
            "name": "no validity series for 10 min: absent alert",
            "interval": "1m",
            "input_series": [
                { "series": "meshline_gateway_freshness_seconds_count{domain=\"player\",product=\"player.play-events\"}", "values": "0+100x30" },
                { "series": "meshline_gateway_ingress_requests_total{domain=\"player\",product=\"player.play-events\",code=\"202\"}", "values": "0+1x30" },
                { "series": "meshline_snapshot_delay_seconds_count{domain=\"player\",product=\"player.play-events\",view=\"hourly-events\"}", "values": "0x30" },
            ],
            "alert_rule_test": [
                check("5m", "MeshlineSLIAbsent", vec![]),
                check("15m", "MeshlineSLIAbsent", vec![absent]),
            ],
        },
    ]);
    let dir = tempfile::tempdir().unwrap();
    let test_file = dir.path().join("burn_rate_test.yaml");
    let unit = json!({
        "rule_files": [file.to_str().unwrap()],
        "evaluation_interval": "1m",
        "tests": tests,
    });
    std::fs::write(&test_file, serde_norway::to_string(&unit).unwrap()).unwrap();
    let out = promtool(&["test", "rules", test_file.to_str().unwrap()]);
    assert!(out.contains("SUCCESS"), "{out}");
}

fn dashboards() -> Vec<(PathBuf, Value)> {
    let dir = root().join("deploy").join(slo::DASHBOARDS_DIR);
    let mut out: Vec<(PathBuf, Value)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let path = e.unwrap().path();
            let value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            (path, value)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn exprs(dashboard: &Value) -> Vec<String> {
    dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect()
}

/// Grafana's dashboard JSON model: what Grafana needs to load and lay out a dashboard.
#[test]
fn dashboards_follow_grafanas_json_model() {
    let boards = dashboards();
    assert_eq!(boards.len(), catalog().len());
    let mut uids = BTreeSet::new();
    for (path, d) in &boards {
        let name = path.display();
        assert!(
            uids.insert(d["uid"].as_str().unwrap().to_owned()),
            "{name}: uid twice"
        );
        assert!(
            d["uid"].as_str().unwrap().len() <= 40,
            "{name}: uid over 40 characters"
        );
        assert!(d["title"].as_str().is_some_and(|t| !t.is_empty()), "{name}");
        assert_eq!(d["schemaVersion"], slo::dashboard::SCHEMA_VERSION, "{name}");
        assert!(
            d["time"]["from"].is_string() && d["time"]["to"].is_string(),
            "{name}"
        );
        let variables = d["templating"]["list"].as_array().unwrap();
        assert!(
            variables.iter().any(|v| v["name"] == "datasource"
                && v["type"] == "datasource"
                && v["query"] == "prometheus"),
            "{name}: a prometheus data source variable"
        );
        let panels = d["panels"].as_array().unwrap();
        let mut ids = BTreeSet::new();
        let mut cells = BTreeSet::new();
        for panel in panels {
            let title = panel["title"].as_str().unwrap();
            assert!(
                ids.insert(panel["id"].as_u64().unwrap()),
                "{name}: panel id twice"
            );
            let kind = panel["type"].as_str().unwrap();
            assert!(
                ["row", "stat", "timeseries"].contains(&kind),
                "{name}: {kind}"
            );
            let g = &panel["gridPos"];
            let (x, y, w, h) = (
                g["x"].as_u64().unwrap(),
                g["y"].as_u64().unwrap(),
                g["w"].as_u64().unwrap(),
                g["h"].as_u64().unwrap(),
            );
            assert!(
                w >= 1 && h >= 1 && x + w <= 24,
                "{name}: {title} off the 24-column grid"
            );
            for cx in x..x + w {
                for cy in y..y + h {
                    assert!(
                        cells.insert((cx, cy)),
                        "{name}: {title} overlaps another panel"
                    );
                }
            }
            if kind == "row" {
                continue;
            }
            assert_eq!(
                panel["datasource"]["uid"], "${datasource}",
                "{name}: {title}"
            );
            let targets = panel["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{name}: {title} has no query");
            let mut refs = BTreeSet::new();
            for t in targets {
                assert!(
                    refs.insert(t["refId"].as_str().unwrap()),
                    "{name}: refId twice"
                );
                assert_eq!(t["datasource"]["uid"], "${datasource}");
            }
        }
        let titles: Vec<&str> = panels
            .iter()
            .map(|p| p["title"].as_str().unwrap())
            .collect();
        for wanted in [
            "Events by outcome",
            "Dead letters by reason",
            "Freshness",
            "Consumer lag",
            "HTTP ingress answers",
        ] {
            assert!(titles.contains(&wanted), "{name}: no {wanted} panel");
        }
    }
    let player = &boards
        .iter()
        .find(|(p, _)| p.ends_with("player.play-events.json"))
        .unwrap()
        .1;
    let titles: Vec<&str> = player["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["title"].as_str().unwrap())
        .collect();
    for wanted in [
        "validity SLI (28d)",
        "validity error budget left (28d)",
        "validity burn rate",
        "freshness burn rate",
        "availability burn rate",
        "timeliness burn rate",
        "Snapshots behind",
    ] {
        assert!(
            titles.contains(&wanted),
            "player dashboard: no {wanted} panel"
        );
    }
}

/// Every dashboard query is valid PromQL (promtool parses it as a recording rule), and every
/// `slo:` series it reads is recorded by the rules.
#[test]
fn dashboard_queries_are_valid_promql_over_recorded_series() {
    let recorded: BTreeSet<String> = rule_files()
        .iter()
        .flat_map(|f| {
            let rules: Value =
                serde_norway::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
            rules["groups"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|g| g["rules"].as_array().unwrap().clone())
                .filter_map(|r| r["record"].as_str().map(str::to_owned))
                .collect::<Vec<_>>()
        })
        .collect();
    let mut rules = Vec::new();
    for (path, d) in dashboards() {
        for expr in exprs(&d) {
            for word in expr.split(|c: char| !(c.is_alphanumeric() || c == ':' || c == '_')) {
                if word.starts_with("slo:") {
                    assert!(
                        recorded.contains(word),
                        "{}: {word} is not recorded",
                        path.display()
                    );
                }
            }
            rules.push(json!({ "record": "dashboard:query", "expr": expr }));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard-queries.yaml");
    let doc = json!({ "groups": [{ "name": "dashboard-queries", "rules": rules }] });
    std::fs::write(&file, serde_norway::to_string(&doc).unwrap()).unwrap();
    promtool(&["check", "rules", file.to_str().unwrap()]);
}
