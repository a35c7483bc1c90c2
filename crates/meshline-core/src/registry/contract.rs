//! A product descriptor as a Confluent data contract (sans-io): its quality rules become the
//! schema's `ruleSet.domainRules` (CEL conditions checked on write) and its owner and SLOs become
//! `metadata.properties`, so a Confluent client running rule executors sees the contract the
//! gateway enforces.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::api::SchemaRequest;
use crate::product::{OnFailure, Product, Rule};

/// The registration request of a product's schema, with its contract.
pub fn registration(product: &Product) -> SchemaRequest {
    SchemaRequest {
        schema: Some(product.schema_text.clone()),
        schema_type: Some(product.format.schema_type().into()),
        references: None,
        metadata: Some(metadata(product)),
        rule_set: Some(rule_set(product)),
        id: None,
        version: None,
    }
}

/// The `metadata.properties` key naming a Protobuf product's message (absent: the schema's
/// first message).
pub const MESSAGE_PROPERTY: &str = "protobuf.message";

/// The subjects that stand for the product's own (`<id>-value`): those Confluent's default
/// subject naming gives its ingress and dead-letter topics.
pub fn aliases(product: &Product) -> [String; 2] {
    let topics = product.topics();
    [
        format!("{}-value", topics.ingress),
        format!("{}-value", topics.dlq),
    ]
}

/// `ruleSet`: one `CONDITION` rule of type `CEL` per descriptor rule, checked on `WRITE` by the
/// gateway. `enableAt: GATEWAY` says where: Confluent's clients run a rule set only where it is
/// enabled (`ALL` or their own `CLIENT` environment), so a serializer or deserializer with its
/// default settings leaves these rules to the gateway, and neither fails on an action it does
/// not have (`DLQ`) nor checks what the gateway checks again.
pub fn rule_set(product: &Product) -> Value {
    let dlq = product.topics().dlq;
    let rules: Vec<Value> = product
        .descriptor
        .rules
        .iter()
        .map(|rule| {
            let on_failure = match rule.on_failure {
                OnFailure::Dlq => "DLQ",
                OnFailure::Error => "ERROR",
                OnFailure::None => "NONE",
            };
            let mut value = json!({
                "name": rule.name,
                "doc": rule.description,
                "kind": "CONDITION",
                "mode": "WRITE",
                "type": "CEL",
                "expr": rule.expression,
                "onFailure": on_failure,
                "disabled": false,
            });
            if rule.on_failure == OnFailure::Dlq {
                value["params"] = json!({ "dlq.topic": dlq });
            }
            value
        })
        .collect();
    json!({ "domainRules": rules, "enableAt": "GATEWAY" })
}

/// The rules of a registered `ruleSet` as a descriptor declares them, the inverse of
/// [`rule_set`]: its CEL conditions (`domainRules` of kind `CONDITION`, type `CEL`; others, such
/// as transforms or other languages, are not meshline's), each with whether it is disabled.
pub fn rules_of(rule_set: Option<&Value>) -> impl Iterator<Item = (Rule, bool)> + '_ {
    rule_set
        .and_then(|r| r.get("domainRules"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|rule| {
            let field = |k: &str| rule.get(k).and_then(Value::as_str).unwrap_or_default();
            if field("type") != "CEL" || field("kind") != "CONDITION" {
                return None;
            }
            let on_failure = match field("onFailure") {
                "ERROR" => OnFailure::Error,
                "NONE" => OnFailure::None,
                _ => OnFailure::Dlq,
            };
            let disabled = rule.get("disabled").and_then(Value::as_bool) == Some(true);
            Some((
                Rule {
                    name: field("name").to_owned(),
                    expression: field("expr").to_owned(),
                    description: field("doc").to_owned(),
                    on_failure,
                },
                disabled,
            ))
        })
}

/// `metadata.properties`: who owns the product and what it promises. Property values are
/// strings, as Confluent requires.
pub fn metadata(product: &Product) -> Value {
    let d = &product.descriptor;
    let mut properties = BTreeMap::new();
    properties.insert("product".to_owned(), d.id.clone());
    properties.insert("domain".to_owned(), d.domain.clone());
    properties.insert("owner".to_owned(), d.owner.team.clone());
    properties.insert("owner_email".to_owned(), d.owner.email.clone());
    properties.insert("description".to_owned(), d.description.clone());
    properties.insert(
        "cloudevents.types".to_owned(),
        d.cloudevents.types.join(","),
    );
    properties.insert(
        "cloudevents.source".to_owned(),
        d.cloudevents.source.clone(),
    );
    if let Some(message) = &d.message {
        properties.insert(MESSAGE_PROPERTY.to_owned(), message.clone());
    }
    for (name, slo) in [
        ("validity", &d.slos.validity),
        ("freshness", &d.slos.freshness),
        ("availability", &d.slos.availability),
    ] {
        if let Some(slo) = slo {
            properties.insert(format!("slo.{name}.objective"), slo.objective.to_string());
            properties.insert(format!("slo.{name}.window"), slo.window.to_string());
            if let Some(threshold) = slo.threshold {
                properties.insert(format!("slo.{name}.threshold"), threshold.to_string());
            }
        }
    }
    json!({ "properties": properties })
}

/// The changes from one registered contract (`metadata`, `ruleSet`) to another, one line each:
/// rules added, removed or changed (expression, `onFailure`, description, disabled) and
/// `metadata.properties` added, removed or changed. Empty when they are the same.
pub fn diff(
    old: (Option<&Value>, Option<&Value>),
    new: (Option<&Value>, Option<&Value>),
) -> Vec<String> {
    let rules = |rule_set: Option<&Value>| -> BTreeMap<String, Value> {
        rule_set
            .and_then(|r| r.get("domainRules"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|r| Some((r.get("name")?.as_str()?.to_owned(), r.clone())))
            .collect()
    };
    let properties = |metadata: Option<&Value>| -> BTreeMap<String, Value> {
        metadata
            .and_then(|m| m.get("properties"))
            .and_then(Value::as_object)
            .map(|p| p.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    };
    let text = |v: Option<&Value>| match v {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "(none)".to_owned(),
    };
    let mut changes = Vec::new();
    let (old_rules, new_rules) = (rules(old.1), rules(new.1));
    for (name, rule) in &new_rules {
        match old_rules.get(name) {
            None => changes.push(format!(
                "rule `{name}` added: {} (on failure {})",
                text(rule.get("expr")),
                text(rule.get("onFailure"))
            )),
            Some(before) => {
                for key in ["expr", "onFailure", "doc", "disabled"] {
                    if before.get(key) != rule.get(key) {
                        changes.push(format!(
                            "rule `{name}` {key}: {} -> {}",
                            text(before.get(key)),
                            text(rule.get(key))
                        ));
                    }
                }
            }
        }
    }
    for (name, rule) in &old_rules {
        if !new_rules.contains_key(name) {
            changes.push(format!(
                "rule `{name}` removed (was {})",
                text(rule.get("expr"))
            ));
        }
    }
    let (old_properties, new_properties) = (properties(old.0), properties(new.0));
    let keys: std::collections::BTreeSet<&String> =
        old_properties.keys().chain(new_properties.keys()).collect();
    for key in keys {
        let (before, after) = (old_properties.get(key), new_properties.get(key));
        if before != after {
            changes.push(format!(
                "metadata `{key}`: {} -> {}",
                text(before),
                text(after)
            ));
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::product::Catalog;

    #[test]
    fn play_events_rules_and_slos_become_a_confluent_data_contract() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/products/player");
        let catalog = Catalog::load(&dir).unwrap();
        let product = catalog.get("player.play-events").unwrap();
        let request = registration(product);
        let rules = &request.rule_set.as_ref().unwrap()["domainRules"];
        assert_eq!(
            rules.as_array().unwrap().len(),
            product.descriptor.rules.len()
        );
        let first = &rules[0];
        assert_eq!(first["kind"], "CONDITION");
        assert_eq!(first["type"], "CEL");
        assert_eq!(first["mode"], "WRITE");
        assert_eq!(first["onFailure"], "DLQ");
        assert_eq!(
            first["expr"],
            product.descriptor.rules[0].expression.as_str()
        );
        assert_eq!(first["params"]["dlq.topic"], "player.play-events.dlq");
        assert_eq!(request.rule_set.as_ref().unwrap()["enableAt"], "GATEWAY");
        let properties = &request.metadata.as_ref().unwrap()["properties"];
        assert_eq!(properties["owner"], "player-squad");
        assert_eq!(properties["slo.availability.objective"], "99.9");
        assert_eq!(properties["slo.freshness.threshold"], "5s");
    }

    #[test]
    fn a_contract_diff_names_each_rule_and_property_change() {
        let rules = |on_failure: &str, extra: bool| {
            let mut rules = vec![
                json!({"name": "known_country", "expr": "size(message.country) == 2",
                "onFailure": on_failure, "doc": "ISO code", "disabled": false}),
            ];
            if extra {
                rules.push(
                    json!({"name": "short", "expr": "message.duration_ms < 1000",
                    "onFailure": "DLQ"}),
                );
            }
            json!({ "domainRules": rules })
        };
        let meta = |owner: &str| json!({"properties": {"owner": owner, "domain": "player"}});
        let (m1, r1) = (meta("team-a"), rules("DLQ", false));
        assert!(diff((Some(&m1), Some(&r1)), (Some(&m1), Some(&r1))).is_empty());
        let (m2, r2) = (meta("team-b"), rules("NONE", true));
        assert_eq!(
            diff((Some(&m1), Some(&r1)), (Some(&m2), Some(&r2))),
            [
                "rule `known_country` onFailure: DLQ -> NONE",
                "rule `short` added: message.duration_ms < 1000 (on failure DLQ)",
                "metadata `owner`: team-a -> team-b",
            ]
        );
        assert_eq!(
            diff((Some(&m2), Some(&r2)), (Some(&m2), Some(&r1))),
            [
                "rule `known_country` onFailure: NONE -> DLQ",
                "rule `short` removed (was message.duration_ms < 1000)",
            ]
        );
    }
}
