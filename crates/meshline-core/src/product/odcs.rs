//! A product's contract as an Open Data Contract Standard (ODCS) v3.1 document, and a
//! descriptor from one.
//!
//! Export: the product's event type is the one schema object (its properties from the Avro
//! schema, the Avro schema itself kept as the object's `avroSchema` custom property), its rules
//! are `custom` quality checks on the `cel` engine, its retention and SLOs are SLA properties,
//! the Kafka cluster is the server, the owner is the team and the email support channel, the
//! producers and readers are roles. What ODCS has no field for (compatibility mode,
//! CloudEvents attributes, partitions, SLO windows and thresholds, views, access lists, the
//! products it is computed from) goes into
//! the contract's custom properties, so export → import → export gives the same document.
//!
//! Import takes those custom properties when present and otherwise reads the standard fields:
//! a contract written by another tool becomes a descriptor with an Avro schema derived from its
//! properties (`logicalType`, `physicalType` where it names an Avro type, `required`).

use std::collections::{BTreeMap, BTreeSet};

use serde::{de::DeserializeOwned, Serialize};
use serde_json::{json, Map, Value};

use super::{
    Access, CloudEventsSpec, Compatibility, Descriptor, Input, OnFailure, Owner, Product,
    Retention, Rule, Slos, View,
};
use crate::product::sli::Sli;

/// The standard version written.
pub const API_VERSION: &str = "v3.1.0";

/// The quality engine of meshline's rules.
const CEL: &str = "cel";

/// Errors of an import.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The document lacks what a product needs, or has it in a form meshline cannot use.
    #[error("field `{field}`: {message}")]
    Invalid {
        /// The ODCS field at fault.
        field: String,
        /// What is wrong and what to do.
        message: String,
    },
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn invalid(field: impl Into<String>, message: impl Into<String>) -> Error {
    Error::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// The ODCS document of `product`, served by the Kafka cluster at `bootstrap`.
pub fn export(product: &Product, bootstrap: &str) -> Value {
    let d = &product.descriptor;
    let topics = product.topics();
    let avro: Value = product.avro_json();
    let mut object = Map::new();
    object.insert("name".into(), json!(avro["name"].as_str().unwrap_or(&d.id)));
    object.insert("physicalName".into(), json!(topics.product));
    object.insert("physicalType".into(), json!("topic"));
    object.insert("logicalType".into(), json!("object"));
    if let Some(doc) = avro["doc"].as_str() {
        object.insert("description".into(), json!(doc));
    }
    object.insert("properties".into(), json!(Properties::of(&avro)));
    if !d.rules.is_empty() {
        object.insert(
            "quality".into(),
            json!(d.rules.iter().map(quality).collect::<Vec<_>>()),
        );
    }
    object.insert(
        "customProperties".into(),
        json!([{ "property": "avroSchema", "value": avro_schema_text(product) }]),
    );

    let mut customs = vec![
        custom("compatibility", &d.compatibility),
        custom("cloudevents", &d.cloudevents),
        custom("partitions", &d.partitions),
        custom("access", &d.access),
    ];
    if d.slos != Slos::default() {
        customs.push(custom("slos", &d.slos));
    }
    if !d.views.is_empty() {
        customs.push(custom("views", &d.views));
    }
    if !d.inputs.is_empty() {
        customs.push(custom("inputs", &d.inputs));
    }
    if let Some(n) = d.replication_factor {
        customs.push(custom("replicationFactor", &n));
    }
    if let Some(n) = d.min_insync_replicas {
        customs.push(custom("minInsyncReplicas", &n));
    }

    json!({
        "apiVersion": API_VERSION,
        "kind": "DataContract",
        "id": d.id,
        "name": d.id,
        "version": "1.0.0",
        "status": "active",
        "domain": d.domain,
        "tags": [d.domain],
        "description": {
            "purpose": d.description,
            "usage": format!(
                "Read the topic {} with any Kafka client (Avro in the Confluent wire format, CloudEvents attributes as ce_ headers); produce into {}; refused events wait in {} with the reason.",
                topics.product, topics.ingress, topics.dlq
            ),
        },
        "schema": [object],
        "servers": [{
            "server": "kafka",
            "type": "kafka",
            "host": bootstrap,
            "format": "avro",
            "description": format!("topics {}, {}, {}", topics.product, topics.ingress, topics.dlq),
        }],
        "team": {
            "name": d.owner.team,
            "members": [{ "username": d.owner.email, "role": "owner" }],
        },
        "support": [{
            "channel": "email",
            "url": format!("mailto:{}", d.owner.email),
            "description": format!("{}, the team that owns {}", d.owner.team, d.id),
        }],
        "roles": roles(d),
        "slaProperties": sla(d),
        "customProperties": customs,
    })
}

fn custom(property: &str, value: &impl Serialize) -> Value {
    json!({ "property": property, "value": value })
}

fn quality(rule: &Rule) -> Value {
    json!({
        "name": rule.name,
        "description": rule.description,
        "type": "custom",
        "engine": CEL,
        "implementation": rule.expression,
        "dimension": "conformity",
        "severity": match rule.on_failure {
            OnFailure::None => "warning",
            OnFailure::Dlq | OnFailure::Error => "error",
        },
        "customProperties": [{ "property": "onFailure", "value": rule.on_failure }],
    })
}

fn roles(d: &Descriptor) -> Vec<Value> {
    let producers = if d.access.producers.is_empty() {
        vec![d.domain.clone()]
    } else {
        d.access.producers.clone()
    };
    let mut roles = vec![json!({
        "role": format!("{}-producer", d.id),
        "access": "write",
        "description": format!("writes the ingress topic: {}", producers.join(", ")),
    })];
    roles.push(json!({
        "role": format!("{}-reader", d.id),
        "access": "read",
        "description": if d.access.readers.is_empty() {
            "reads the product topic: everyone".to_owned()
        } else {
            format!("reads the product topic: {}", d.access.readers.join(", "))
        },
    }));
    roles
}

fn sla(d: &Descriptor) -> Vec<Value> {
    let mut sla = vec![match d.retention {
        Retention::For(duration) => json!({
            "property": "retention",
            "value": duration.as_secs() / 86_400,
            "unit": "d",
            "description": "how long the product topic keeps events",
        }),
        Retention::Forever => json!({
            "property": "retention",
            "value": "forever",
            "description": "the product topic keeps events for ever",
        }),
    }];
    for sli in Sli::ALL {
        let Some(objective) = sli.objective(&d.slos) else {
            continue;
        };
        let window = humantime::format_duration(objective.window.0).to_string();
        let mut property = json!({
            "property": match sli {
                Sli::Freshness => "latency",
                other => other.name(),
            },
            "value": objective.objective,
            "unit": "percent",
            "description": format!("{}% of {} over {window}", objective.objective, sli.describe(objective)),
        });
        if let Some(threshold) = objective.threshold {
            property["valueExt"] = json!(humantime::format_duration(threshold.0).to_string());
        }
        sla.push(property);
    }
    sla
}

/// ODCS properties from an Avro schema.
struct Properties {
    /// Named types seen so far, by full and short name.
    named: BTreeMap<String, Value>,
    /// Records being expanded (a recursive type is not expanded again).
    visiting: BTreeSet<String>,
}

impl Properties {
    /// The properties of the fields of the record `avro`.
    fn of(avro: &Value) -> Vec<Value> {
        let mut properties = Self {
            named: BTreeMap::new(),
            visiting: BTreeSet::new(),
        };
        properties.remember(avro, None);
        properties.fields(avro, None)
    }

    fn remember(&mut self, ty: &Value, namespace: Option<&str>) {
        let (Some(name), Some("record" | "enum" | "fixed")) =
            (ty["name"].as_str(), ty["type"].as_str())
        else {
            return;
        };
        let namespace = ty["namespace"].as_str().or(namespace);
        let full = match namespace {
            Some(ns) if !name.contains('.') => format!("{ns}.{name}"),
            _ => name.to_owned(),
        };
        let short = full.rsplit('.').next().unwrap_or(&full).to_owned();
        self.named.insert(full, ty.clone());
        self.named.insert(short, ty.clone());
    }

    fn fields(&mut self, record: &Value, namespace: Option<&str>) -> Vec<Value> {
        let namespace = record["namespace"]
            .as_str()
            .or(namespace)
            .map(str::to_owned);
        let name = record["name"].as_str().unwrap_or_default().to_owned();
        self.visiting.insert(name.clone());
        let fields = record["fields"]
            .as_array()
            .map(|fields| {
                fields
                    .iter()
                    .map(|f| {
                        let mut property = self.property(&f["type"], namespace.as_deref());
                        let mut named = Map::new();
                        named.insert("name".into(), f["name"].clone());
                        if let Some(doc) = f["doc"].as_str() {
                            named.insert("description".into(), json!(doc));
                        }
                        if let Value::Object(rest) = property.take() {
                            named.extend(rest);
                        }
                        Value::Object(named)
                    })
                    .collect()
            })
            .unwrap_or_default();
        self.visiting.remove(&name);
        fields
    }

    /// A property (without its name) of Avro type `ty`.
    fn property(&mut self, ty: &Value, namespace: Option<&str>) -> Value {
        if let Value::Array(branches) = ty {
            let others: Vec<&Value> = branches.iter().filter(|b| *b != "null").collect();
            let mut property = match others.as_slice() {
                [single] => self.property(single, namespace),
                _ => json!({ "physicalType": "union" }),
            };
            property["required"] = json!(others.len() == branches.len());
            return property;
        }
        let mut property = self.typed(ty, namespace);
        if property.get("required").is_none() {
            property["required"] = json!(true);
        }
        property
    }

    fn typed(&mut self, ty: &Value, namespace: Option<&str>) -> Value {
        let kind = match ty {
            Value::String(name) => name.as_str(),
            Value::Object(_) => {
                if let Some(logical) = ty["logicalType"].as_str() {
                    if let Some(property) = logical_type(logical) {
                        return property;
                    }
                }
                ty["type"].as_str().unwrap_or_default()
            }
            _ => "",
        };
        match kind {
            "string" => json!({ "logicalType": "string", "physicalType": "string" }),
            "int" | "long" => json!({ "logicalType": "integer", "physicalType": kind }),
            "float" | "double" => json!({ "logicalType": "number", "physicalType": kind }),
            "boolean" => json!({ "logicalType": "boolean", "physicalType": "boolean" }),
            "bytes" | "fixed" => {
                self.remember(ty, namespace);
                json!({ "logicalType": "string", "physicalType": kind, "logicalTypeOptions": { "format": "binary" } })
            }
            "enum" => {
                self.remember(ty, namespace);
                json!({
                    "logicalType": "string",
                    "physicalType": "enum",
                    "customProperties": [{ "property": "symbols", "value": ty["symbols"] }],
                })
            }
            "array" => json!({
                "logicalType": "array",
                "physicalType": "array",
                "items": self.property(&ty["items"], namespace),
            }),
            "map" => json!({ "logicalType": "object", "physicalType": "map" }),
            "record" => {
                self.remember(ty, namespace);
                json!({
                    "logicalType": "object",
                    "physicalType": "record",
                    "properties": self.fields(ty, namespace),
                })
            }
            "null" => json!({ "physicalType": "null", "required": false }),
            name => match self.named.get(name).cloned() {
                Some(named) if named["type"] == "record" => {
                    let short = named["name"].as_str().unwrap_or_default();
                    if self.visiting.contains(short) {
                        json!({ "logicalType": "object", "physicalType": "record" })
                    } else {
                        self.typed(&named, namespace)
                    }
                }
                Some(named) => self.typed(&named, namespace),
                None => json!({ "physicalType": name }),
            },
        }
    }
}

/// The property of an Avro logical type meshline maps (`None`: its underlying type's).
fn logical_type(logical: &str) -> Option<Value> {
    Some(match logical {
        "date" => json!({ "logicalType": "date", "physicalType": "date" }),
        "time-millis" | "time-micros" => json!({ "logicalType": "time", "physicalType": logical }),
        "timestamp-millis"
        | "timestamp-micros"
        | "timestamp-nanos"
        | "local-timestamp-millis"
        | "local-timestamp-micros"
        | "local-timestamp-nanos" => json!({ "logicalType": "timestamp", "physicalType": logical }),
        "uuid" => json!({
            "logicalType": "string",
            "physicalType": "uuid",
            "logicalTypeOptions": { "format": "uuid" },
        }),
        "decimal" => json!({ "logicalType": "number", "physicalType": "decimal" }),
        _ => return None,
    })
}

/// The Avro schema's text: as written for an Avro product, the field model's otherwise.
fn avro_schema_text(product: &Product) -> String {
    match product.format {
        crate::product::SchemaFormat::Avro => product.schema_text.trim().to_owned(),
        _ => product.avro_json().to_string(),
    }
}

/// A descriptor and its Avro schema, imported from an ODCS document.
#[derive(Debug, Clone)]
pub struct Imported {
    /// The descriptor (its `schema` names `<name>.avsc`, beside it).
    pub descriptor: Descriptor,
    /// The Avro schema's text.
    pub schema_text: String,
    /// The product's name within its domain: the files' stem.
    pub name: String,
    /// What the import left out or chose, for the person importing.
    pub notes: Vec<String>,
}

/// Imports the ODCS document `doc`.
pub fn import(doc: &Value) -> Result<Imported> {
    let mut notes = Vec::new();
    let customs = custom_properties(&doc["customProperties"]);
    let domain = doc["domain"]
        .as_str()
        .filter(|d| !d.is_empty())
        .ok_or_else(|| {
            invalid(
                "domain",
                "missing: a meshline product belongs to the domain that owns it; add `domain:`",
            )
        })?
        .to_owned();
    let object = match doc["schema"].as_array().map(Vec::as_slice) {
        Some([object]) => object,
        Some(objects) if !objects.is_empty() => {
            return Err(invalid(
                "schema",
                format!(
                    "{} schema objects: a product carries one event type; split the contract in one per object",
                    objects.len()
                ),
            ))
        }
        _ => {
            return Err(invalid(
                "schema",
                "no schema object: describe the product's event as one object with its properties",
            ))
        }
    };
    let id = match doc["id"].as_str() {
        Some(id) if is_product_id(id) && id.starts_with(&format!("{domain}.")) => id.to_owned(),
        other => {
            let base = doc["name"]
                .as_str()
                .or(object["name"].as_str())
                .unwrap_or_default();
            let id = format!(
                "{domain}.{}",
                kebab(base.rsplit('.').next().unwrap_or(base))
            );
            if !is_product_id(&id) {
                return Err(invalid(
                    "id",
                    format!("no product id can be made from `{}` and the domain: give the contract an `id` `<domain>.<name>`", other.unwrap_or(base)),
                ));
            }
            notes.push(format!(
                "product id `{id}` made from the domain and the contract's name (its `id` is {})",
                other.map_or("absent".to_owned(), |o| format!("`{o}`"))
            ));
            id
        }
    };
    let name = id
        .split_once('.')
        .map_or(id.as_str(), |(_, n)| n)
        .to_owned();
    let schema_text = match custom_properties(&object["customProperties"]).get("avroSchema") {
        Some(Value::String(text)) => format!("{text}\n"),
        _ => {
            notes.push(
                "the Avro schema is derived from the schema object's properties: check its types"
                    .to_owned(),
            );
            let record = derive_record(object, &domain)?;
            format!(
                "{}\n",
                serde_json::to_string_pretty(&record).unwrap_or_default()
            )
        }
    };
    apache_avro::Schema::parse_str(&schema_text)
        .map_err(|e| invalid("schema", format!("the Avro schema is not valid: {e}")))?;

    let owner = Owner {
        team: doc["team"]["name"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{domain}-team")),
        email: owner_email(doc).ok_or_else(|| {
            invalid(
                "support",
                "no email to reach the owner: add a support item with `channel: email` and `url: mailto:…`, or a team member whose username is an email",
            )
        })?,
    };
    let rules = rules_of(&object["quality"], &mut notes)?;
    let cloudevents = match customs.get("cloudevents") {
        Some(v) => parse(v, "customProperties.cloudevents")?,
        None => {
            notes.push(format!(
                "cloudevents: accepting type `{id}` from source `/{domain}`; set the event types your producers send"
            ));
            CloudEventsSpec {
                types: vec![id.clone()],
                source: format!("/{domain}"),
            }
        }
    };
    let descriptor = Descriptor {
        id: id.clone(),
        domain: domain.clone(),
        owner,
        description: doc["description"]["purpose"]
            .as_str()
            .or(doc["description"]["usage"].as_str())
            .unwrap_or_default()
            .to_owned(),
        schema: format!("{name}.avsc"),
        message: None,
        compatibility: optional(&customs, "compatibility")?.unwrap_or(Compatibility::Backward),
        cloudevents,
        partitions: optional(&customs, "partitions")?.unwrap_or(3),
        retention: retention_of(&doc["slaProperties"])?,
        replication_factor: optional(&customs, "replicationFactor")?,
        min_insync_replicas: optional(&customs, "minInsyncReplicas")?,
        rules,
        slos: optional::<Slos>(&customs, "slos")?.unwrap_or_default(),
        views: optional::<Vec<View>>(&customs, "views")?.unwrap_or_default(),
        access: optional::<Access>(&customs, "access")?.unwrap_or_default(),
        inputs: optional::<Vec<Input>>(&customs, "inputs")?.unwrap_or_default(),
    };
    Ok(Imported {
        descriptor,
        schema_text,
        name,
        notes,
    })
}

fn custom_properties(list: &Value) -> BTreeMap<String, Value> {
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| Some((p["property"].as_str()?.to_owned(), p["value"].clone())))
        .collect()
}

fn parse<T: DeserializeOwned>(value: &Value, field: &str) -> Result<T> {
    serde_json::from_value(value.clone()).map_err(|e| invalid(field, e.to_string()))
}

fn optional<T: DeserializeOwned>(
    customs: &BTreeMap<String, Value>,
    name: &str,
) -> Result<Option<T>> {
    customs
        .get(name)
        .map(|v| parse(v, &format!("customProperties.{name}")))
        .transpose()
}

fn is_product_id(id: &str) -> bool {
    let part = |p: &str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    id.split_once('.').is_some_and(|(d, n)| part(d) && part(n))
}

fn kebab(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 && !out.ends_with('-') {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_owned()
}

fn owner_email(doc: &Value) -> Option<String> {
    let support = doc["support"].as_array().into_iter().flatten();
    let from_support = support.filter(|s| s["channel"] == "email").find_map(|s| {
        s["url"]
            .as_str()?
            .strip_prefix("mailto:")
            .map(str::to_owned)
    });
    let members = || doc["team"]["members"].as_array().into_iter().flatten();
    from_support.or_else(|| {
        members()
            .filter_map(|m| m["username"].as_str())
            .find(|u| u.contains('@'))
            .map(str::to_owned)
    })
}

fn rules_of(quality: &Value, notes: &mut Vec<String>) -> Result<Vec<Rule>> {
    let mut rules = Vec::new();
    for (i, q) in quality.as_array().into_iter().flatten().enumerate() {
        let name = q["name"].as_str().map(str::to_owned);
        if q["type"] != "custom" || q["engine"] != CEL {
            notes.push(format!(
                "quality check {} left out: meshline enforces CEL rules (`type: custom`, `engine: cel`)",
                name.as_deref().unwrap_or("without a name")
            ));
            continue;
        }
        let field = format!("schema[0].quality[{i}]");
        let expression = q["implementation"]
            .as_str()
            .ok_or_else(|| invalid(&field, "`implementation` must be the CEL expression"))?;
        let on_failure = match custom_properties(&q["customProperties"]).get("onFailure") {
            Some(v) => parse(v, &format!("{field}.customProperties.onFailure"))?,
            None if q["severity"] == "warning" || q["severity"] == "info" => OnFailure::None,
            None => OnFailure::Dlq,
        };
        rules.push(Rule {
            name: name.ok_or_else(|| invalid(&field, "a rule needs a `name`"))?,
            expression: expression.to_owned(),
            description: q["description"].as_str().unwrap_or_default().to_owned(),
            on_failure,
        });
    }
    Ok(rules)
}

fn retention_of(sla: &Value) -> Result<Retention> {
    let Some(retention) = sla
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["property"] == "retention")
    else {
        return Ok(Retention::default());
    };
    let value = &retention["value"];
    if value == "forever" {
        return Ok(Retention::Forever);
    }
    let text = match (value, retention["unit"].as_str()) {
        (Value::Number(n), Some(unit)) => format!("{n}{}", unit_of(unit)),
        (Value::Number(n), None) => format!("{n}d"),
        (Value::String(s), _) => s.clone(),
        _ => String::new(),
    };
    Retention::try_from(text).map_err(|e| invalid("slaProperties.retention", e))
}

fn unit_of(unit: &str) -> &str {
    match unit.to_ascii_lowercase().as_str() {
        "d" | "day" | "days" => "d",
        "h" | "hour" | "hours" => "h",
        "m" | "minute" | "minutes" => "m",
        "y" | "year" | "years" => "y",
        _ => "d",
    }
}

/// An Avro record derived from a schema object's properties.
fn derive_record(object: &Value, namespace: &str) -> Result<Value> {
    let name = object["name"].as_str().unwrap_or("Event");
    let mut record = record_of(name, &object["properties"], "schema[0]")?;
    record["namespace"] = json!(namespace);
    if let Some(doc) = object["description"].as_str() {
        record["doc"] = json!(doc);
    }
    Ok(record)
}

fn record_of(name: &str, properties: &Value, field: &str) -> Result<Value> {
    let mut fields = Vec::new();
    for (i, p) in properties.as_array().into_iter().flatten().enumerate() {
        let path = format!("{field}.properties[{i}]");
        let name = p["name"]
            .as_str()
            .ok_or_else(|| invalid(&path, "a property needs a `name`"))?;
        if !is_avro_name(name) {
            return Err(invalid(
                &path,
                format!("`{name}` is not an Avro field name: use letters, digits and `_`, not starting with a digit"),
            ));
        }
        let mut ty = avro_type(p, &path)?;
        let mut f = json!({ "name": name });
        if let Some(doc) = p["description"].as_str() {
            f["doc"] = json!(doc);
        }
        if p["required"] != true {
            ty = json!(["null", ty]);
            f["default"] = Value::Null;
        }
        f["type"] = ty;
        fields.push(f);
    }
    Ok(json!({ "type": "record", "name": pascal(name), "fields": fields }))
}

fn avro_type(p: &Value, field: &str) -> Result<Value> {
    let physical = p["physicalType"].as_str().unwrap_or_default();
    Ok(match p["logicalType"].as_str().unwrap_or_default() {
        "string" if p["logicalTypeOptions"]["format"] == "uuid" => {
            json!({ "type": "string", "logicalType": "uuid" })
        }
        "string" if physical == "bytes" => json!("bytes"),
        "string" => json!("string"),
        "integer" if physical == "int" => json!("int"),
        "integer" => json!("long"),
        "number" if physical == "float" => json!("float"),
        "number" => json!("double"),
        "boolean" => json!("boolean"),
        "date" => json!({ "type": "int", "logicalType": "date" }),
        "time" => json!({ "type": "int", "logicalType": "time-millis" }),
        "timestamp" if physical == "timestamp-micros" => {
            json!({ "type": "long", "logicalType": "timestamp-micros" })
        }
        "timestamp" => json!({ "type": "long", "logicalType": "timestamp-millis" }),
        "array" => json!({ "type": "array", "items": avro_type(&p["items"], &format!("{field}.items"))? }),
        "object" if p["properties"].is_array() => {
            record_of(p["name"].as_str().unwrap_or("Nested"), &p["properties"], field)?
        }
        "object" => json!({ "type": "map", "values": "string" }),
        other => {
            return Err(invalid(
                field,
                format!("logicalType `{other}`: give each property a logicalType (string, integer, number, boolean, date, time, timestamp, object, array)"),
            ))
        }
    })
}

fn is_avro_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn pascal(name: &str) -> String {
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut chars = p.chars();
            chars
                .next()
                .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn avro_types_become_odcs_properties() {
        let avro = json!({
            "type": "record", "name": "Play", "fields": [
                {"name": "id", "type": {"type": "string", "logicalType": "uuid"}},
                {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}, "doc": "when"},
                {"name": "ms", "type": ["null", "long"]},
                {"name": "device", "type": {"type": "record", "name": "Device", "fields": [
                    {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}}
                ]}},
                {"name": "other", "type": ["null", "Device"]},
                {"name": "tags", "type": {"type": "array", "items": "string"}},
            ]
        });
        let p = Properties::of(&avro);
        assert_eq!(p[0]["logicalTypeOptions"]["format"], "uuid");
        assert_eq!(p[1]["logicalType"], "timestamp");
        assert_eq!(p[1]["description"], "when");
        assert_eq!(p[2]["required"], false);
        assert_eq!(p[2]["logicalType"], "integer");
        assert_eq!(p[3]["properties"][0]["physicalType"], "enum");
        // a named type used again is expanded by its name
        assert_eq!(p[4]["properties"][0]["name"], "kind");
        assert_eq!(p[5]["items"]["logicalType"], "string");
    }

    #[test]
    fn properties_of_a_foreign_contract_become_an_avro_record() {
        let object = json!({"name": "label_signed", "properties": [
            {"name": "label_id", "logicalType": "string", "required": true},
            {"name": "tier", "logicalType": "integer", "physicalType": "int"},
            {"name": "at", "logicalType": "timestamp", "required": true},
            {"name": "genres", "logicalType": "array", "required": true, "items": {"logicalType": "string"}},
        ]});
        let record = derive_record(&object, "labels").unwrap();
        assert_eq!(record["name"], "LabelSigned");
        assert_eq!(record["fields"][1]["type"], json!(["null", "int"]));
        assert_eq!(
            record["fields"][2]["type"]["logicalType"],
            "timestamp-millis"
        );
        apache_avro::Schema::parse(&record).unwrap();
        let bad = json!({"name": "x", "properties": [{"name": "a-b", "logicalType": "string"}]});
        assert!(derive_record(&bad, "d")
            .unwrap_err()
            .to_string()
            .contains("`a-b`"));
    }

    #[test]
    fn names_become_ids() {
        assert_eq!(kebab("LabelOnboarded"), "label-onboarded");
        assert_eq!(kebab("label onboarded v2"), "label-onboarded-v2");
        assert!(is_product_id("labels.onboarded"));
        assert!(!is_product_id("labels"));
    }
}
