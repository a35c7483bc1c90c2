//! A product's SLOs as OpenSLO v1 documents, for teams whose SLO tooling reads OpenSLO: a
//! `Service` (the product), an `AlertNotificationTarget` (the owner's address), the page and
//! ticket burn-rate `AlertCondition`s and `AlertPolicy`s of meshline's own rules, and one `SLO`
//! per objective with its indicator inline (a ratio of bad to total events, as Prometheus
//! counters), its rolling window and `Occurrences` budgeting.

use serde_json::{json, Value};

use super::{prom_duration, ratio, rules::BURN_ALERTS, Sli};
use crate::product::Product;

/// The API version of every document.
const API_VERSION: &str = "openslo/v1";

/// The OpenSLO documents of `product`'s SLOs (none: empty).
pub fn for_product(product: &Product) -> Vec<Value> {
    let id = product.id();
    let d = &product.descriptor;
    let slis: Vec<Sli> = Sli::ALL
        .into_iter()
        .filter(|sli| sli.objective(&d.slos).is_some())
        .collect();
    if slis.is_empty() {
        return Vec::new();
    }
    let labels = json!({ "domain": d.domain, "team": d.owner.team });
    let target = format!("{id}-owner");
    let mut docs = vec![
        json!({
            "apiVersion": API_VERSION,
            "kind": "Service",
            "metadata": { "name": id, "labels": labels },
            "spec": { "description": d.description },
        }),
        json!({
            "apiVersion": API_VERSION,
            "kind": "AlertNotificationTarget",
            "metadata": { "name": target, "labels": labels },
            "spec": {
                "target": format!("mailto:{}", d.owner.email),
                "description": format!("{}, the team that owns {id}", d.owner.team),
            },
        }),
    ];
    for alert in BURN_ALERTS {
        // the long window of the alert's first pair, held for its short window
        let (factor, short, long) = alert.pairs[0];
        let name = format!("{id}-{}", alert.severity);
        docs.push(json!({
            "apiVersion": API_VERSION,
            "kind": "AlertCondition",
            "metadata": { "name": name, "labels": labels },
            "spec": {
                "description": format!("The error budget burns at {factor}x over {long}"),
                "severity": alert.severity,
                "condition": {
                    "kind": "burnrate",
                    "op": "gt",
                    "threshold": factor,
                    "lookbackWindow": long,
                    "alertAfter": short,
                },
            },
        }));
        docs.push(json!({
            "apiVersion": API_VERSION,
            "kind": "AlertPolicy",
            "metadata": { "name": name, "labels": labels },
            "spec": {
                "description": format!("{} when {id}'s error budget burns fast", alert.severity),
                "alertWhenNoData": true,
                "alertWhenResolved": false,
                "alertWhenBreaching": true,
                "conditions": [{ "conditionRef": name }],
                "notificationTargets": [{ "targetRef": target }],
            },
        }));
    }
    for sli in slis {
        let Some(objective) = sli.objective(&d.slos) else {
            continue;
        };
        let threshold = objective.threshold.map(|t| t.0);
        let name = super::rules::sloth_id(id, sli);
        docs.push(json!({
            "apiVersion": API_VERSION,
            "kind": "SLO",
            "metadata": {
                "name": name,
                "displayName": format!("{id} {}", sli.name()),
                "labels": labels,
            },
            "spec": {
                "description": format!("{}% of {}", objective.objective, sli.describe(objective)),
                "service": id,
                "indicator": {
                    "metadata": { "name": format!("{name}-sli") },
                    "spec": {
                        "ratioMetric": {
                            "counter": true,
                            "bad": prometheus(&sli.bad_events(id, threshold)),
                            "total": prometheus(&sli.total_events(id)),
                        },
                    },
                },
                "timeWindow": [{ "duration": prom_duration(objective.window.0), "isRolling": true }],
                "budgetingMethod": "Occurrences",
                "objectives": [{
                    "displayName": sli.name(),
                    "target": ratio(objective.objective / 100.0).parse::<f64>().unwrap_or(0.0),
                }],
                "alertPolicies": BURN_ALERTS
                    .iter()
                    .map(|a| format!("{id}-{}", a.severity))
                    .collect::<Vec<_>>(),
            },
        }));
    }
    docs
}

fn prometheus(query: &str) -> Value {
    json!({ "metricSource": { "type": "Prometheus", "spec": { "query": query } } })
}

/// The documents as one YAML stream, with a header saying where they come from.
pub fn to_yaml(product: &Product, docs: &[Value]) -> Result<String, serde_norway::Error> {
    let mut out = format!(
        "# Generated by `meshline slo generate --format openslo` from {}; do not edit.\n",
        product.id()
    );
    for doc in docs {
        out.push_str("---\n");
        out.push_str(&serde_norway::to_string(doc)?);
    }
    Ok(out)
}
