//! One Grafana dashboard per product (Grafana's dashboard JSON model, schema version 39): each
//! SLO's SLI against its objective, error budget left and burn rates, then events by outcome,
//! dead-letter reasons, latency, ingress answers, consumer lag and snapshot status. Queries read
//! the recordings of [`super::rules`] and meshline's own metrics through a data source variable,
//! so the dashboard works with any Prometheus data source.

use serde_json::{json, Value};

use super::{error_budget, prom_duration, rules::sloth_id, Sli};
use crate::product::Product;

/// Grafana's dashboard schema version the JSON follows.
pub const SCHEMA_VERSION: u64 = 39;

/// The data source every panel queries: the dashboard's `datasource` variable.
fn datasource() -> Value {
    json!({ "type": "prometheus", "uid": "${datasource}" })
}

/// Lays panels out on Grafana's 24-column grid and numbers them.
struct Layout {
    panels: Vec<Value>,
    x: u64,
    y: u64,
    row_height: u64,
}

impl Layout {
    fn new() -> Self {
        Self {
            panels: Vec::new(),
            x: 0,
            y: 0,
            row_height: 0,
        }
    }

    fn next_id(&self) -> u64 {
        self.panels.len() as u64 + 1
    }

    fn row(&mut self, title: &str) {
        self.newline();
        let id = self.next_id();
        self.panels.push(json!({
            "id": id, "type": "row", "title": title, "collapsed": false, "panels": [],
            "gridPos": { "h": 1, "w": 24, "x": 0, "y": self.y },
        }));
        self.y += 1;
    }

    fn newline(&mut self) {
        self.y += self.row_height;
        self.x = 0;
        self.row_height = 0;
    }

    fn add(&mut self, width: u64, height: u64, mut panel: Value) {
        if self.x + width > 24 {
            self.newline();
        }
        panel["id"] = json!(self.next_id());
        panel["gridPos"] = json!({ "h": height, "w": width, "x": self.x, "y": self.y });
        panel["datasource"] = datasource();
        self.panels.push(panel);
        self.x += width;
        self.row_height = self.row_height.max(height);
    }
}

fn target(ref_id: &str, expr: &str, legend: &str) -> Value {
    json!({ "refId": ref_id, "datasource": datasource(), "expr": expr, "legendFormat": legend })
}

fn targets(queries: &[(&str, &str)]) -> Value {
    let ids = ["A", "B", "C", "D", "E"];
    Value::Array(
        queries
            .iter()
            .zip(ids)
            .map(|((expr, legend), id)| target(id, expr, legend))
            .collect(),
    )
}

fn thresholds(steps: &[(Option<f64>, &str)]) -> Value {
    json!({
        "mode": "absolute",
        "steps": steps.iter().map(|(v, c)| json!({ "color": c, "value": v })).collect::<Vec<_>>(),
    })
}

fn stat(title: &str, description: &str, expr: &str, unit: &str, steps: Value) -> Value {
    json!({
        "type": "stat", "title": title, "description": description,
        "targets": targets(&[(expr, "")]),
        "fieldConfig": { "defaults": { "unit": unit, "decimals": 3, "thresholds": steps }, "overrides": [] },
        "options": {
            "reduceOptions": { "calcs": ["lastNotNull"], "fields": "", "values": false },
            "colorMode": "background", "graphMode": "area", "textMode": "auto",
            "justifyMode": "auto", "orientation": "auto",
        },
    })
}

fn timeseries(title: &str, description: &str, queries: &[(&str, &str)], unit: &str) -> Value {
    json!({
        "type": "timeseries", "title": title, "description": description,
        "targets": targets(queries),
        "fieldConfig": { "defaults": { "unit": unit, "custom": { "drawStyle": "line", "fillOpacity": 10 } }, "overrides": [] },
        "options": {
            "legend": { "displayMode": "list", "placement": "bottom", "showLegend": true },
            "tooltip": { "mode": "multi", "sort": "desc" },
        },
    })
}

/// The dashboard's uid (stable, so links survive regeneration).
pub fn uid(product: &str) -> String {
    format!("meshline-{}", product.replace('.', "-"))
}

/// The dashboard of `product`.
pub fn for_product(product: &Product) -> Value {
    let id = product.id();
    let p = format!("product=\"{id}\"");
    let mut layout = Layout::new();

    for sli in Sli::ALL {
        let Some(objective) = sli.objective(&product.descriptor.slos) else {
            continue;
        };
        let name = sli.name();
        let sloth = sloth_id(id, sli);
        let sel = format!("{{sloth_id=\"{sloth}\"}}");
        let period = prom_duration(objective.window.0);
        let target_ratio = objective.objective / 100.0;
        layout.row(&format!(
            "SLO {name}: {}% of {} over {period}",
            objective.objective,
            sli.describe(objective)
        ));
        layout.add(
            5,
            6,
            stat(
                &format!("{name} SLI ({period})"),
                &format!(
                    "Share of {} over the SLO window; red below the objective.",
                    sli.describe(objective)
                ),
                &format!("1 - slo:sli_error:ratio_rate{period}{sel}"),
                "percentunit",
                thresholds(&[(None, "red"), (Some(target_ratio), "green")]),
            ),
        );
        layout.add(
            5,
            6,
            stat(
                &format!("{name} error budget left ({period})"),
                "Share of the SLO window's error budget not yet spent.",
                &format!("slo:period_error_budget_remaining:ratio{sel}"),
                "percentunit",
                thresholds(&[(None, "red"), (Some(0.0), "orange"), (Some(0.25), "green")]),
            ),
        );
        let budget = super::ratio(error_budget(objective.objective));
        let burn = |w: &str| format!("slo:sli_error:ratio_rate{w}{sel} / {budget}");
        let (b5m, b1h, b6h, b3d) = (burn("5m"), burn("1h"), burn("6h"), burn("3d"));
        let mut panel = timeseries(
            &format!("{name} burn rate"),
            "How fast the error budget burns (1 = exactly spent at the window's end). Pages at 14.4× (1h and 5m) or 6× (6h and 30m); tickets at 3× (1d and 2h) or 1× (3d and 6h).",
            &[(&b5m, "5m"), (&b1h, "1h"), (&b6h, "6h"), (&b3d, "3d")],
            "x",
        );
        panel["fieldConfig"]["defaults"]["thresholds"] = thresholds(&[
            (None, "green"),
            (Some(1.0), "yellow"),
            (Some(6.0), "orange"),
            (Some(14.4), "red"),
        ]);
        panel["fieldConfig"]["defaults"]["custom"]["thresholdsStyle"] = json!({ "mode": "dashed" });
        layout.add(14, 6, panel);
    }

    layout.row("Events");
    let outcomes = format!("sum by (outcome) (rate(meshline_gateway_events_total{{{p}}}[5m]))");
    layout.add(
        12,
        8,
        timeseries(
            "Events by outcome",
            "Events the gateway handled per second: accepted, warned (a rule with on_failure: none failed), dead_lettered, duplicate (already written, skipped).",
            &[(&outcomes, "{{outcome}}")],
            "ops",
        ),
    );
    let reasons = format!("sum by (reason) (rate(meshline_gateway_dead_letters_total{{{p}}}[5m]))");
    layout.add(
        12,
        8,
        timeseries(
            "Dead letters by reason",
            "Events sent to the dead-letter topic per second, by reason code.",
            &[(&reasons, "{{reason}}")],
            "ops",
        ),
    );

    layout.row("Latency and lag");
    let quantile = |q: &str, metric: &str| {
        format!("histogram_quantile({q}, sum by (le) (rate({metric}_bucket{{{p}}}[5m])))")
    };
    let (f50, f99) = (
        quantile("0.5", "meshline_gateway_freshness_seconds"),
        quantile("0.99", "meshline_gateway_freshness_seconds"),
    );
    layout.add(
        8,
        8,
        timeseries(
            "Freshness",
            "From an event's time to its being available in the product topic.",
            &[(&f50, "p50"), (&f99, "p99")],
            "s",
        ),
    );
    let v99 = quantile("0.99", "meshline_gateway_validation_seconds");
    layout.add(
        8,
        8,
        timeseries(
            "Contract check",
            "Time to check one event against the product's contract.",
            &[(&v99, "p99")],
            "s",
        ),
    );
    let lag = format!("sum(meshline_gateway_consumer_lag{{{p}}})");
    layout.add(
        8,
        8,
        timeseries(
            "Consumer lag",
            "Ingress records the gateways have not handled yet.",
            &[(&lag, "records")],
            "short",
        ),
    );
    let codes = format!("sum by (code) (rate(meshline_gateway_ingress_requests_total{{{p}}}[5m]))");
    layout.add(
        12,
        8,
        timeseries(
            "HTTP ingress answers",
            "Ingress requests per second by status code; 5xx count against availability.",
            &[(&codes, "{{code}}")],
            "reqps",
        ),
    );

    if !product.descriptor.views.is_empty() {
        layout.row("Snapshots");
        let behind =
            format!("time() - max by (view) (meshline_snapshot_closed_through_seconds{{{p}}})");
        layout.add(
            8,
            8,
            timeseries(
                "Snapshots behind",
                "Now minus the instant each view's snapshots are complete through (its watermark).",
                &[(&behind, "{{view}}")],
                "s",
            ),
        );
        let written =
            format!("sum by (view) (increase(meshline_snapshot_snapshots_total{{{p}}}[1h]))");
        let late = format!(
            "sum by (view, policy) (increase(meshline_snapshot_late_events_total{{{p}}}[1h]))"
        );
        layout.add(
            8,
            8,
            timeseries(
                "Snapshots written and late events per hour",
                "Manifests written (new windows and amendments) and events that came after their window closed, by late policy.",
                &[(&written, "{{view}} snapshots"), (&late, "{{view}} late ({{policy}})")],
                "short",
            ),
        );
        let delay = quantile("0.99", "meshline_snapshot_delay_seconds");
        layout.add(
            8,
            8,
            timeseries(
                "Snapshot delay",
                "From a window's close to its manifest being written.",
                &[(&delay, "p99")],
                "s",
            ),
        );
    }

    json!({
        "uid": uid(id),
        "title": format!("{id}: data product SLOs"),
        "description": product.descriptor.description,
        "tags": ["meshline", product.descriptor.domain, "slo"],
        "editable": true,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "time": { "from": "now-6h", "to": "now" },
        "timepicker": {},
        "timezone": "browser",
        "annotations": { "list": [] },
        "links": [],
        "templating": { "list": [{
            "name": "datasource", "label": "Data source", "type": "datasource",
            "query": "prometheus", "current": {}, "hide": 0, "refresh": 1,
            "includeAll": false, "multi": false, "options": [], "regex": "",
        }]},
        "panels": layout.panels,
    })
}

/// The dashboard as pretty JSON, ending with a newline.
pub fn to_json(dashboard: &Value) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(dashboard).map(|s| s + "\n")
}
