//! A product's contract as a pure check (sans-io): the CloudEvents attributes it accepts, its
//! schema, and its quality rules. The SDK runs it before sending and the gateway on every event,
//! so both refuse the same events for the same reasons.

mod capture;
mod cel_value;
pub mod cost;
pub mod fast;
pub mod payload;
pub mod record;

use std::sync::Arc;

use apache_avro::{types::Value, Schema};
use serde_json::Value as Json;

use crate::{
    product::{OnFailure, Product, SchemaFormat},
    registry::contract as registered,
};

pub use cel_value::to_cel;
pub use payload::{Decode, WriterSchema};
pub use record::{Accepted, Reason, Rejection};

/// Errors building a contract.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A rule is not a CEL expression.
    #[error("rule `{name}`: `{expression}` is not a CEL expression: {message}")]
    Rule {
        /// The rule.
        name: String,
        /// Its expression.
        expression: String,
        /// The parser's message.
        message: String,
    },
    /// The registered `cloudevents.source` is not under the prefix of the product's domain.
    #[error("the registered contract of {product}: {why}")]
    ForeignSourcePrefix {
        /// The product.
        product: String,
        /// What is wrong.
        why: String,
    },
    /// The registry's data contract lacks something the check needs.
    #[error("the registered contract of {product} has no {what}; register the product from its descriptor (`meshline up`)")]
    Incomplete {
        /// The product.
        product: String,
        /// What is missing.
        what: &'static str,
    },
}

/// Result of this module.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A named quality rule, compiled.
#[derive(Debug)]
pub struct Rule {
    /// Its name.
    pub name: String,
    /// Its CEL expression, over `message`.
    pub expression: String,
    /// What it means.
    pub description: String,
    /// What a failure does.
    pub on_failure: OnFailure,
    program: cel::Program,
    /// Its native form, when it has one.
    native: Option<fast::Expr>,
    /// Whether it iterates over a list or map (holds a macro): then it is not evaluated on an
    /// event whose longest list or map is over [`cost::MAX_ITERATIONS`].
    iterates: bool,
}

impl Rule {
    /// A descriptor's rule, compiled.
    fn of(rule: &crate::product::Rule) -> Result<Self> {
        let refused = |message: String| Error::Rule {
            name: rule.name.clone(),
            expression: rule.expression.chars().take(200).collect(),
            message,
        };
        if rule.expression.len() > cost::MAX_RULE_BYTES {
            return Err(refused(format!(
                "the expression is {} bytes; at most {} are allowed",
                rule.expression.len(),
                cost::MAX_RULE_BYTES
            )));
        }
        let program = cel::Program::compile(&rule.expression)
            .map_err(|e| refused(e.to_string().trim().to_owned()))?;
        let cost = cost::check(&rule.expression, program.expression()).map_err(refused)?;
        Ok(Self {
            iterates: cost.iterates,
            native: fast::Expr::compile(&program.expression().expr),
            program,
            name: rule.name.clone(),
            expression: rule.expression.clone(),
            description: rule.description.clone(),
            on_failure: rule.on_failure,
        })
    }

    /// Whether the rule runs natively rather than in the CEL interpreter (see [`fast`]).
    pub fn is_native(&self) -> bool {
        self.native.is_some()
    }
}

/// Why an event breaks the contract: the reason a dead letter carries.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// The CloudEvents `type` is not one the product accepts.
    #[error("CloudEvents type `{got}` is not one of {product}'s types ({allowed})")]
    UnknownType {
        /// The product.
        product: String,
        /// The type sent.
        got: String,
        /// The accepted types, comma-separated.
        allowed: String,
    },
    /// The CloudEvents `source` is outside the prefix the product's domain owns.
    #[error(
        "CloudEvents source `{got}` is not under `{prefix}`, which the domain of {product} owns"
    )]
    SourceNotOwned {
        /// The product.
        product: String,
        /// The source sent.
        got: String,
        /// The owned prefix.
        prefix: String,
    },
    /// The content type is not the one of the product's schema format.
    #[error("content type `{got}` is not {expected}")]
    ContentType {
        /// The content type sent.
        got: String,
        /// The one the product's format has.
        expected: &'static str,
    },
    /// A rule evaluated to false.
    #[error("rule `{rule}` failed: {expression} ({description})")]
    Rule {
        /// The rule.
        rule: String,
        /// Its expression.
        expression: String,
        /// What it means.
        description: String,
    },
    /// A rule could not be evaluated on this event (missing field, wrong type).
    #[error("rule `{rule}` could not be evaluated: {message}")]
    RuleError {
        /// The rule.
        rule: String,
        /// Why.
        message: String,
    },
}

/// A product's contract.
#[derive(Debug)]
pub struct Contract {
    /// The product id.
    pub product: String,
    /// The CloudEvents types it accepts.
    pub types: Vec<String>,
    /// The source prefix its domain owns.
    pub source: String,
    /// Its schema (for JSON Schema and Protobuf, the Avro field model of its events).
    pub schema: Arc<Schema>,
    /// The language of its schema, which decides the content type it accepts.
    pub format: SchemaFormat,
    /// Its rules.
    pub rules: Vec<Rule>,
    /// The top-level fields the rules read (`None`: all).
    fields_read: Option<Vec<String>>,
}

impl Contract {
    fn new(
        product: String,
        types: Vec<String>,
        source: String,
        schema: Arc<Schema>,
        rules: Vec<Rule>,
    ) -> Self {
        let fields_read = cel_value::fields_read(rules.iter().map(|r| r.expression.as_str()));
        Self {
            product,
            types,
            source,
            schema,
            format: SchemaFormat::Avro,
            rules,
            fields_read,
        }
    }

    /// The same contract for events in `format`.
    pub fn with_format(mut self, format: SchemaFormat) -> Self {
        self.format = format;
        self
    }

    /// The contract a descriptor declares.
    pub fn from_product(product: &Product) -> Result<Self> {
        let d = &product.descriptor;
        let rules = d.rules.iter().map(Rule::of).collect::<Result<_>>()?;
        Ok(Self::new(
            d.id.clone(),
            d.cloudevents.types.clone(),
            d.cloudevents.source.clone(),
            Arc::new(product.schema.clone()),
            rules,
        )
        .with_format(product.format))
    }

    /// The contract as registered with a schema: `metadata.properties` for the CloudEvents
    /// attributes and `ruleSet.domainRules` for the rules (see `registry::contract`).
    pub fn from_registered(
        product: &str,
        schema: Arc<Schema>,
        metadata: Option<&Json>,
        rule_set: Option<&Json>,
    ) -> Result<Self> {
        let incomplete = |what| Error::Incomplete {
            product: product.to_owned(),
            what,
        };
        let properties = metadata
            .and_then(|m| m.get("properties"))
            .ok_or_else(|| incomplete("metadata.properties"))?;
        let text = |key: &str| properties.get(key).and_then(Json::as_str);
        let types = text("cloudevents.types")
            .ok_or_else(|| incomplete("metadata.properties.cloudevents.types"))?
            .split(',')
            .map(|t| t.trim().to_owned())
            .filter(|t| !t.is_empty())
            .collect();
        let source = text("cloudevents.source")
            .ok_or_else(|| incomplete("metadata.properties.cloudevents.source"))?
            .to_owned();
        crate::product::source_owned(crate::product::ProductId(product).domain(), &source)
            .map_err(|why| Error::ForeignSourcePrefix {
                product: product.to_owned(),
                why,
            })?;
        let rules = registered::rules_of(rule_set)
            .filter(|(_, disabled)| !disabled)
            .map(|(rule, _)| Rule::of(&rule))
            .collect::<Result<_>>()?;
        Ok(Self::new(product.to_owned(), types, source, schema, rules))
    }

    /// Checks a `ruleSet` against the schema it is registered with: every CEL condition
    /// compiles, and every field it reads (`message.<field>`) is a field of the schema. The
    /// error names the rule, and the field or the compiler's message.
    pub fn check_rule_set(schema: &Schema, rule_set: &Json) -> std::result::Result<(), String> {
        let fields: Vec<&str> = match schema {
            Schema::Record(record) => record.fields.iter().map(|f| f.name.as_str()).collect(),
            _ => Vec::new(),
        };
        for (rule, _) in registered::rules_of(Some(rule_set)) {
            let (name, expression) = (&rule.name, rule.expression.as_str());
            Rule::of(&rule).map_err(|e| e.to_string())?;
            for read in cel_value::fields_read([expression]).unwrap_or_default() {
                if !fields.contains(&read.as_str()) {
                    return Err(format!(
                        "rule `{name}` ({expression}) reads field `{read}`, which the schema does not have (its fields: {})",
                        fields.join(", ")
                    ));
                }
            }
        }
        Ok(())
    }

    /// Decodes an Avro body written with `schema` into what [`Contract::check_rules`] needs:
    /// the record with the fields the rules read.
    pub fn rule_input(&self, schema: &WriterSchema, body: &[u8]) -> Result<Value, String> {
        schema.decode(body, self.fields_read.as_deref())
    }

    /// [`Contract::rule_input`] for a typed `event` just encoded into `body`: the fields the
    /// rules read are taken from `event` as it serializes when they can be (no read-back), else
    /// decoded from `body`.
    pub fn rule_input_of<T: serde::Serialize + ?Sized>(
        &self,
        schema: &WriterSchema,
        event: &T,
        body: &[u8],
    ) -> Result<Value, String> {
        match self
            .fields_read
            .as_deref()
            .and_then(|wanted| capture::fields(event, wanted, &schema.avro))
        {
            Some(value) => Ok(value),
            None => self.rule_input(schema, body),
        }
    }

    /// Checks the CloudEvents attributes the contract constrains.
    pub fn check_attributes(
        &self,
        ty: &str,
        source: &str,
        content_type: Option<&str>,
    ) -> Result<(), Violation> {
        if !self.types.iter().any(|t| t == ty) {
            return Err(Violation::UnknownType {
                product: self.product.clone(),
                got: ty.to_owned(),
                allowed: self.types.join(", "),
            });
        }
        if !crate::product::source_is_under(source, &self.source) {
            return Err(Violation::SourceNotOwned {
                product: self.product.clone(),
                got: source.to_owned(),
                prefix: self.source.clone(),
            });
        }
        match content_type {
            Some(ct) if self.format.accepts(ct) => Ok(()),
            other => Err(Violation::ContentType {
                got: other.unwrap_or("(none)").to_owned(),
                expected: self.format.content_type(),
            }),
        }
    }

    /// Runs every rule on a decoded event. Returns the first failure of a rule whose
    /// `on_failure` is `error` or `dlq`; otherwise the names of the rules marked `none` that
    /// failed (or could not be evaluated): the event passes, with a warning.
    pub fn check_rules(&self, message: &Value) -> Result<Vec<&str>, (Violation, OnFailure)> {
        let mut warned = Vec::new();
        if self.rules.is_empty() {
            return Ok(warned);
        }
        // a rule's work is bounded by the longest list it iterates over
        if let Some(rule) = self.rules.iter().find(|r| r.iterates) {
            let longest = cost::longest_collection(message);
            if longest > cost::MAX_ITERATIONS {
                let violation = Violation::RuleError {
                    rule: rule.name.clone(),
                    message: format!(
                        "the event holds a list or map of {longest} elements; a rule iterates over at most {}",
                        cost::MAX_ITERATIONS
                    ),
                };
                return Err((violation, rule.on_failure));
            }
        }
        let stopped = cel_value::evaluate(
            self.rules.iter().map(|r| (&r.program, r.native.as_ref())),
            message,
            self.fields_read.as_deref(),
            |i, outcome| {
                let rule = &self.rules[i];
                let failed = outcome != &Ok(true);
                if failed && rule.on_failure == OnFailure::None {
                    warned.push(rule.name.as_str());
                    return false;
                }
                failed
            },
        );
        if let Some((i, outcome)) = stopped {
            let rule = &self.rules[i];
            let violation = match outcome {
                Err(message) => Violation::RuleError {
                    rule: rule.name.clone(),
                    message,
                },
                Ok(_) => Violation::Rule {
                    rule: rule.name.clone(),
                    expression: rule.expression.clone(),
                    description: rule.description.clone(),
                },
            };
            return Err((violation, rule.on_failure));
        }
        Ok(warned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::product::Catalog;

    fn play_events() -> Contract {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/products/player");
        let catalog = Catalog::load(&dir).unwrap();
        Contract::from_product(catalog.get("player.play-events").unwrap()).unwrap()
    }

    fn play(duration_ms: i64, country: &str) -> Value {
        Value::Record(vec![
            ("play_id".into(), Value::String("p".into())),
            ("duration_ms".into(), Value::Long(duration_ms)),
            ("country".into(), Value::String(country.into())),
            ("context".into(), Value::Union(0, Box::new(Value::Null))),
        ])
    }

    #[test]
    fn attributes_outside_the_contract_are_named() {
        let c = play_events();
        let ok = c.check_attributes(
            "com.example.player.track.played",
            "/player/web",
            Some("application/avro"),
        );
        assert_eq!(ok, Ok(()));
        let bad_type = c.check_attributes(
            "com.example.player.track.skipped",
            "/player",
            Some("application/avro"),
        );
        assert!(
            matches!(bad_type, Err(Violation::UnknownType { .. })),
            "{bad_type:?}"
        );
        let foreign = c.check_attributes(
            "com.example.player.track.played",
            "/playerx/web",
            Some("application/avro"),
        );
        assert!(
            matches!(foreign, Err(Violation::SourceNotOwned { .. })),
            "{foreign:?}"
        );
        let json = c.check_attributes(
            "com.example.player.track.played",
            "/player",
            Some("application/json"),
        );
        assert!(
            matches!(json, Err(Violation::ContentType { .. })),
            "{json:?}"
        );
    }

    #[test]
    fn rules_pass_and_fail_on_decoded_events() {
        let c = play_events();
        assert!(c.rules.iter().all(Rule::is_native), "{:?}", c.rules);
        assert_eq!(c.check_rules(&play(1000, "SE")), Ok(Vec::new()));
        let (violation, on_failure) = c.check_rules(&play(-1, "SE")).unwrap_err();
        assert_eq!(on_failure, OnFailure::Dlq);
        assert!(
            violation.to_string().contains("non_negative_duration"),
            "{violation}"
        );
        let (violation, _) = c.check_rules(&play(1, "SWE")).unwrap_err();
        assert!(
            violation.to_string().contains("known_country"),
            "{violation}"
        );
    }

    #[test]
    fn a_failed_rule_marked_none_warns_and_lets_the_event_pass() {
        let mut c = play_events();
        for rule in &mut c.rules {
            if rule.name == "known_country" {
                rule.on_failure = OnFailure::None;
            }
        }
        assert_eq!(c.check_rules(&play(1, "SWE")), Ok(vec!["known_country"]));
        assert_eq!(c.check_rules(&play(1, "SE")), Ok(Vec::new()));
        // a rule that blocks still blocks, whatever warned before it
        let (violation, on_failure) = c.check_rules(&play(-1, "SWE")).unwrap_err();
        assert_eq!(on_failure, OnFailure::Dlq);
        assert!(
            violation.to_string().contains("non_negative_duration"),
            "{violation}"
        );
    }

    #[test]
    fn a_rule_set_must_compile_and_read_only_fields_of_its_schema() {
        let c = play_events();
        let rules = |expr: &str| {
            serde_json::json!({"domainRules": [{"name": "r", "kind": "CONDITION", "type": "CEL",
                "mode": "WRITE", "expr": expr}]})
        };
        assert_eq!(
            Contract::check_rule_set(&c.schema, &rules("size(message.country) == 2")),
            Ok(())
        );
        let missing =
            Contract::check_rule_set(&c.schema, &rules("message.region == 'EU'")).unwrap_err();
        assert!(
            missing.contains("rule `r`") && missing.contains("field `region`"),
            "{missing}"
        );
        let broken = Contract::check_rule_set(&c.schema, &rules("message.country ==")).unwrap_err();
        assert!(broken.contains("`r`"), "{broken}");
    }

    #[test]
    fn a_rule_on_a_missing_field_is_an_evaluation_error() {
        let mut c = play_events();
        c.rules.truncate(1);
        let (violation, _) = c
            .check_rules(&Value::Record(vec![("x".into(), Value::Int(1))]))
            .unwrap_err();
        assert!(
            matches!(violation, Violation::RuleError { .. }),
            "{violation:?}"
        );
    }

    #[test]
    fn the_registered_contract_matches_the_descriptor() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/products/player");
        let catalog = Catalog::load(&dir).unwrap();
        let product = catalog.get("player.play-events").unwrap();
        let request = crate::registry::contract::registration(product);
        let registered = Contract::from_registered(
            product.id(),
            Arc::new(product.schema.clone()),
            request.metadata.as_ref(),
            request.rule_set.as_ref(),
        )
        .unwrap();
        let declared = Contract::from_product(product).unwrap();
        assert_eq!(registered.types, declared.types);
        assert_eq!(registered.source, declared.source);
        let names = |c: &Contract| {
            c.rules
                .iter()
                .map(|r| (r.name.clone(), r.expression.clone(), r.on_failure))
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&registered), names(&declared));
    }
}
