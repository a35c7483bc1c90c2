//! Data products as code: descriptors under `config/`, schemas (Avro, JSON Schema or Protobuf)
//! under `schemas/`, and the names every other component derives from them (topics, registry
//! subjects).

pub mod acls;
mod descriptor;
pub mod odcs;
pub mod sli;

pub use descriptor::*;

use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
};

use apache_avro::Schema;

/// Errors found while loading descriptors; each names the file, the field and what to do.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The YAML does not match the descriptor format.
    #[error("{path}: {message}")]
    Parse {
        /// The descriptor file.
        path: PathBuf,
        /// The parser's message (it names the field and the line).
        message: String,
    },
    /// A field has a value the product cannot use.
    #[error("{path}: field `{field}`: {message}")]
    Invalid {
        /// The descriptor file.
        path: PathBuf,
        /// The field at fault.
        field: &'static str,
        /// What is wrong and what to do.
        message: String,
    },
    /// The schema file is missing or not a valid Avro schema.
    #[error("{path}: field `schema`: {schema}: {message}")]
    Schema {
        /// The descriptor file.
        path: PathBuf,
        /// The schema file it names.
        schema: PathBuf,
        /// What is wrong and what to do.
        message: String,
    },
    /// Two descriptors declare the same product id.
    #[error("{path}: field `id`: product `{id}` is already declared in {first}; product ids must be unique")]
    Duplicate {
        /// The second descriptor.
        path: PathBuf,
        /// The id.
        id: String,
        /// The first descriptor.
        first: PathBuf,
    },
    /// The directory holds no descriptor.
    #[error("{0}: no data product descriptor (*.yaml) found; pass the directory that holds them (default `config/`)")]
    Empty(PathBuf),
}

/// Every error of a load, so a user fixes them all in one pass.
#[derive(Debug)]
pub struct Errors(pub Vec<Error>);

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Errors {}

/// Result of this module.
pub type Result<T, E = Errors> = std::result::Result<T, E>;

/// The three topics of a product, derived from its id and never typed by hand.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Topics {
    /// `<domain>.<product>`: valid events.
    pub product: String,
    /// `<domain>.<product>.ingress`: events waiting for the gateway.
    pub ingress: String,
    /// `<domain>.<product>.dlq`: events refused, with the reason.
    pub dlq: String,
}

impl Topics {
    /// The topics of product `id`.
    pub fn of(id: &str) -> Self {
        Self {
            product: id.to_owned(),
            ingress: format!("{id}.ingress"),
            dlq: format!("{id}.dlq"),
        }
    }

    /// All three, product first.
    pub fn all(&self) -> [&str; 3] {
        [&self.product, &self.ingress, &self.dlq]
    }
}

/// The language of a product's schema, from its file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaFormat {
    /// Avro (`.avsc`): the events are Avro in Confluent's wire format.
    Avro,
    /// JSON Schema (`.json`): the events are JSON documents after Confluent's schema id.
    Json,
    /// Protobuf (`.proto`): the events are one message, after Confluent's schema id and
    /// message indexes.
    Protobuf,
}

impl SchemaFormat {
    /// The format of a schema file, by its extension (`None` for another extension, which the
    /// loader reads as Avro).
    pub fn of_file(path: &str) -> Option<Self> {
        let extension = path.rsplit_once('.').map(|(_, e)| e);
        match extension {
            Some("avsc") => Some(Self::Avro),
            Some("json") => Some(Self::Json),
            Some("proto") => Some(Self::Protobuf),
            _ => None,
        }
    }

    /// The format of a registered schema's `schemaType` (absent: Avro).
    pub fn of_schema_type(schema_type: Option<&str>) -> Option<Self> {
        match schema_type.unwrap_or("AVRO") {
            "AVRO" => Some(Self::Avro),
            "JSON" => Some(Self::Json),
            "PROTOBUF" => Some(Self::Protobuf),
            _ => None,
        }
    }

    /// The registry's `schemaType`.
    pub fn schema_type(self) -> &'static str {
        match self {
            Self::Avro => "AVRO",
            Self::Json => "JSON",
            Self::Protobuf => "PROTOBUF",
        }
    }

    /// The CloudEvents `datacontenttype` (the `content-type` header in Kafka's binary mode) of
    /// events in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Avro => "application/avro",
            Self::Json => "application/json",
            Self::Protobuf => "application/protobuf",
        }
    }

    /// Whether `content_type` (parameters aside) names this format; Protobuf also answers to
    /// `application/x-protobuf`.
    pub fn accepts(self, content_type: &str) -> bool {
        let media = content_type.split(';').next().unwrap_or_default().trim();
        media.eq_ignore_ascii_case(self.content_type())
            || (self == Self::Protobuf && media.eq_ignore_ascii_case("application/x-protobuf"))
    }
}

impl fmt::Display for SchemaFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Avro => "Avro",
            Self::Json => "JSON Schema",
            Self::Protobuf => "Protobuf",
        })
    }
}

/// Compiles a Protobuf schema's `message` (the file's first when `None`) into its Avro field
/// model. The platform provides it ([`Catalog::load_with`]): the core has no `.proto` compiler.
pub type ProtobufFields = fn(text: &str, message: Option<&str>) -> Result<Schema, String>;

/// A loaded data product: its descriptor and its parsed schema.
#[derive(Debug, Clone)]
pub struct Product {
    /// The declaration.
    pub descriptor: Descriptor,
    /// The language of its schema.
    pub format: SchemaFormat,
    /// Its events' fields as an Avro record, what rules, views and snapshots read: the schema
    /// itself for an Avro product, derived from the JSON Schema or the Protobuf message
    /// otherwise.
    pub schema: Schema,
    /// The schema's text as written.
    pub schema_text: String,
    /// The descriptor file.
    pub path: PathBuf,
}

/// The directory of a product's snapshots in a snapshot store: `snapshots/<domain>/<name>`,
/// each view in a directory of its own below.
pub fn snapshot_root(product_id: &str) -> String {
    match ProductId(product_id).split() {
        Some((domain, name)) => format!("snapshots/{domain}/{name}"),
        None => format!("snapshots/{product_id}"),
    }
}

/// `source` is the prefix itself or a path below it (`/player` owns `/player/web`, not
/// `/playerx`).
pub fn source_is_under(source: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    source == prefix
        || source
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/') || prefix.is_empty())
}

/// Checks that `source`, the CloudEvents source prefix a contract declares, lies under
/// `/<domain>`: a domain speaks only for itself, so no contract may make another domain's
/// sources its own.
pub fn source_owned(domain: &str, source: &str) -> std::result::Result<(), String> {
    let owned = format!("/{domain}");
    let prefix = source.trim_end_matches('/');
    if domain.is_empty() || prefix.is_empty() || !source_is_under(prefix, &owned) {
        return Err(format!(
            "cloudevents.source `{source}` is not under `{owned}`, the prefix domain `{domain}` owns"
        ));
    }
    Ok(())
}

/// A product id, `<domain>.<name>`: its parts are read here and nowhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProductId<'a>(pub &'a str);

impl<'a> ProductId<'a> {
    /// The owning domain (the whole id if it has no `.`, which a valid descriptor never has).
    pub fn domain(self) -> &'a str {
        self.split().map_or(self.0, |(domain, _)| domain)
    }

    /// The product's name within its domain (the whole id if it has no `.`).
    pub fn name(self) -> &'a str {
        self.split().map_or(self.0, |(_, name)| name)
    }

    /// The domain and the product's name within it, if the id has both.
    pub fn split(self) -> Option<(&'a str, &'a str)> {
        self.0.split_once('.')
    }
}

impl Product {
    /// `<domain>.<product>`.
    pub fn id(&self) -> &str {
        &self.descriptor.id
    }

    /// The product's topics.
    pub fn topics(&self) -> Topics {
        Topics::of(&self.descriptor.id)
    }

    /// The events' fields as Avro JSON: the schema as written for an Avro product, its derived
    /// field model for JSON Schema and Protobuf.
    pub fn avro_json(&self) -> serde_json::Value {
        match self.format {
            SchemaFormat::Avro => serde_json::from_str(&self.schema_text),
            SchemaFormat::Json | SchemaFormat::Protobuf => serde_json::to_value(&self.schema),
        }
        .unwrap_or(serde_json::Value::Null)
    }

    /// The product's output ports: its topic ([`EVENTS_PORT`]) and each view.
    pub fn ports(&self) -> Vec<&str> {
        std::iter::once(EVENTS_PORT)
            .chain(self.descriptor.views.iter().map(|v| v.name.as_str()))
            .collect()
    }

    /// The registry subject of the product's value schema (TopicNameStrategy).
    pub fn subject(&self) -> String {
        format!("{}-value", self.descriptor.id)
    }
}

/// All products of a configuration directory, by id.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    products: BTreeMap<String, Product>,
}

impl Catalog {
    /// Loads every `*.yaml`/`*.yml` descriptor under `dir` (recursively) with its schema, and
    /// reports every error found, not only the first.
    pub fn load(dir: &Path) -> Result<Self> {
        Self::load_with(dir, None)
    }

    /// [`Catalog::load`], with Protobuf products compiled by `protobuf` (without it a `.proto`
    /// schema is an error).
    pub fn load_with(dir: &Path, protobuf: Option<ProtobufFields>) -> Result<Self> {
        let mut files = Vec::new();
        collect_yaml(dir, &mut files).map_err(|e| Errors(vec![e]))?;
        files.sort();
        if files.is_empty() {
            return Err(Errors(vec![Error::Empty(dir.to_owned())]));
        }
        let mut errors = Vec::new();
        let mut products: BTreeMap<String, Product> = BTreeMap::new();
        for file in files {
            match load_product_with(&file, protobuf) {
                Ok(product) => {
                    if let Some(first) = products.get(product.id()) {
                        errors.push(Error::Duplicate {
                            path: file,
                            id: product.id().to_owned(),
                            first: first.path.clone(),
                        });
                    } else {
                        products.insert(product.id().to_owned(), product);
                    }
                }
                Err(mut e) => errors.append(&mut e),
            }
        }
        let catalog = Self { products };
        errors.extend(catalog.check_inputs());
        if errors.is_empty() {
            Ok(catalog)
        } else {
            Err(Errors(errors))
        }
    }

    /// Every declared input names another product and one of its output ports, and no product
    /// is its own ancestor.
    fn check_inputs(&self) -> Vec<Error> {
        let mut errors = Vec::new();
        for product in self.iter() {
            let invalid = |message: String| Error::Invalid {
                path: product.path.clone(),
                field: "inputs",
                message,
            };
            for input in &product.descriptor.inputs {
                let Some(upstream) = self.get(&input.product) else {
                    errors.push(invalid(format!(
                        "product `{}` is not declared; declared products: {}",
                        input.product,
                        self.products.keys().cloned().collect::<Vec<_>>().join(", ")
                    )));
                    continue;
                };
                let ports = upstream.ports();
                if !ports.contains(&input.port.as_str()) {
                    errors.push(invalid(format!(
                        "`{}` has no output port `{}`; its ports: {}",
                        input.product,
                        input.port,
                        ports.join(", ")
                    )));
                }
            }
            if self.upstream_of(product.id()).contains(product.id()) {
                errors.push(invalid(format!(
                    "{} is computed from itself through its inputs; lineage must not loop",
                    product.id()
                )));
            }
        }
        errors
    }

    /// Every product `id` is computed from, directly or not.
    pub fn upstream_of(&self, id: &str) -> std::collections::BTreeSet<String> {
        let mut seen = std::collections::BTreeSet::new();
        let mut next: Vec<&str> = vec![id];
        while let Some(current) = next.pop() {
            for input in self
                .get(current)
                .into_iter()
                .flat_map(|p| &p.descriptor.inputs)
            {
                if seen.insert(input.product.clone()) {
                    next.push(&input.product);
                }
            }
        }
        seen
    }

    /// The products that declare `id` among their inputs, with the port each reads.
    pub fn downstream_of<'a>(
        &'a self,
        id: &'a str,
    ) -> impl Iterator<Item = (&'a Product, &'a Input)> {
        self.iter().flat_map(move |p| {
            p.descriptor
                .inputs
                .iter()
                .filter(move |i| i.product == id)
                .map(move |i| (p, i))
        })
    }

    /// The product `id`, if declared.
    pub fn get(&self, id: &str) -> Option<&Product> {
        self.products.get(id)
    }

    /// Adds `product`, or replaces the one with its id (an embedding's own products); answers
    /// the one replaced.
    pub fn insert(&mut self, product: Product) -> Option<Product> {
        self.products.insert(product.id().to_owned(), product)
    }

    /// Products in id order.
    pub fn iter(&self) -> impl Iterator<Item = &Product> {
        self.products.values()
    }

    /// Number of products.
    pub fn len(&self) -> usize {
        self.products.len()
    }

    /// True when no product is declared.
    pub fn is_empty(&self) -> bool {
        self.products.is_empty()
    }

    /// The product `id`, or an error listing the declared ones.
    pub fn require(&self, id: &str) -> std::result::Result<&Product, UnknownProduct> {
        self.get(id).ok_or_else(|| UnknownProduct {
            id: id.to_owned(),
            known: self.products.keys().cloned().collect(),
        })
    }
}

/// A product id that no descriptor declares.
#[derive(Debug, thiserror::Error)]
#[error("unknown data product `{id}`; declared products: {}", known.join(", "))]
pub struct UnknownProduct {
    /// The id asked for.
    pub id: String,
    /// The ids declared.
    pub known: Vec<String>,
}

fn collect_yaml(dir: &Path, out: &mut Vec<PathBuf>) -> std::result::Result<(), Error> {
    let read = |source| Error::Read {
        path: dir.to_owned(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(read)? {
        let path = entry.map_err(read)?.path();
        if path.is_dir() {
            collect_yaml(&path, out)?;
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml")
        ) {
            out.push(path);
        }
    }
    Ok(())
}

/// Loads one descriptor file and its schema.
pub fn load_product(path: &Path) -> std::result::Result<Product, Vec<Error>> {
    load_product_with(path, None)
}

/// [`load_product`], with a Protobuf schema compiled by `protobuf`.
pub fn load_product_with(
    path: &Path,
    protobuf: Option<ProtobufFields>,
) -> std::result::Result<Product, Vec<Error>> {
    let text = std::fs::read_to_string(path).map_err(|source| {
        vec![Error::Read {
            path: path.to_owned(),
            source,
        }]
    })?;
    let descriptor: Descriptor = serde_norway::from_str(&text).map_err(|e| {
        vec![Error::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        }]
    })?;
    let mut errors = validate(path, &descriptor);
    let schema_path = path
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join(&descriptor.schema);
    let schema_error = |message: String| Error::Schema {
        path: path.to_owned(),
        schema: schema_path.clone(),
        message,
    };
    let format = SchemaFormat::of_file(&descriptor.schema);
    if descriptor.message.is_some() && format != Some(SchemaFormat::Protobuf) {
        errors.push(Error::Invalid {
            path: path.to_owned(),
            field: "message",
            message:
                "names a Protobuf message, and the schema is not a `.proto` file; leave it out"
                    .into(),
        });
    }
    let loaded = std::fs::read_to_string(&schema_path)
        .map_err(|e| {
            schema_error(format!(
                "cannot read it ({e}); the path is relative to the descriptor file"
            ))
        })
        .and_then(|text| {
            let fields = match format {
                // any other extension is read as Avro
                Some(SchemaFormat::Avro) | None => Schema::parse_str(&text)
                    .map_err(|e| format!("not a valid Avro schema: {e}")),
                Some(SchemaFormat::Json) => serde_json::from_str(&text)
                    .map_err(|e| format!("not JSON: {e}"))
                    .and_then(|json| {
                        crate::codec::json_schema::avro_fields(&json, ProductId(&descriptor.id).name())
                    })
                    .map_err(|e| format!("JSON Schema: {e}")),
                Some(SchemaFormat::Protobuf) => match protobuf {
                    Some(compile) => compile(&text, descriptor.message.as_deref()),
                    None => Err("a Protobuf schema is compiled by the platform (`meshline`); this loader has no .proto compiler".into()),
                },
            };
            fields.map(|schema| (schema, text)).map_err(schema_error)
        })
        .and_then(|(schema, text)| match schema {
            Schema::Record(_) => Ok((schema, text)),
            _ => Err(schema_error(
                "the top-level type must be an Avro `record`".into(),
            )),
        });
    if let Ok((schema, _)) = &loaded {
        errors.extend(check_view_fields(path, &descriptor, schema));
    }
    match loaded {
        Ok((schema, schema_text)) if errors.is_empty() => Ok(Product {
            descriptor,
            format: format.unwrap_or(SchemaFormat::Avro),
            schema,
            schema_text,
            path: path.to_owned(),
        }),
        Ok(_) => Err(errors),
        Err(e) => {
            errors.push(e);
            Err(errors)
        }
    }
}

/// Every field a view groups or aggregates by must be a top-level field of the schema, and every
/// aggregation but `count` needs one.
fn check_view_fields(path: &Path, d: &Descriptor, schema: &Schema) -> Vec<Error> {
    let Schema::Record(record) = schema else {
        return Vec::new();
    };
    let known: Vec<&str> = record.fields.iter().map(|f| f.name.as_str()).collect();
    let mut errors = Vec::new();
    let unknown = |field: &'static str, view: &str, name: &str| Error::Invalid {
        path: path.to_owned(),
        field,
        message: format!(
            "view `{view}` uses `{name}`, which is not a field of the schema; use one of {}",
            known.join(", ")
        ),
    };
    for view in &d.views {
        for key in view.key.iter().filter(|k| !known.contains(&k.as_str())) {
            errors.push(unknown("views.key", &view.name, key));
        }
        if let Some(field) = view
            .time_field
            .as_ref()
            .filter(|f| !known.contains(&f.as_str()))
        {
            errors.push(unknown("views.time_field", &view.name, field));
        }
        for aggregation in &view.aggregations {
            match (&aggregation.field, aggregation.function) {
                (Some(field), _) if !known.contains(&field.as_str()) => {
                    errors.push(unknown("views.aggregations.field", &view.name, field))
                }
                (None, f) if f != AggregateFunction::Count => errors.push(Error::Invalid {
                    path: path.to_owned(),
                    field: "views.aggregations.field",
                    message: format!(
                        "view `{}`: aggregation `{}` ({f:?}) needs a `field`",
                        view.name, aggregation.name
                    ),
                }),
                _ => {}
            }
        }
    }
    errors
}

/// A lowercase name usable in topic names: `[a-z0-9][a-z0-9_-]*`.
fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn validate(path: &Path, d: &Descriptor) -> Vec<Error> {
    let mut errors = Vec::new();
    let mut invalid = |field, message: String| {
        errors.push(Error::Invalid {
            path: path.to_owned(),
            field,
            message,
        })
    };
    if !is_name(&d.domain) {
        invalid(
            "domain",
            format!(
                "`{}` must be lowercase letters, digits, `-` or `_`",
                d.domain
            ),
        );
    }
    match ProductId(&d.id).split() {
        Some((domain, name)) if domain == d.domain && is_name(name) => {}
        _ => invalid(
            "id",
            format!(
                "`{}` must be `<domain>.<product>` with domain `{}` and a lowercase product name, e.g. `{}.play-events`",
                d.id, d.domain, d.domain
            ),
        ),
    }
    if !(1..=1024).contains(&d.partitions) {
        invalid(
            "partitions",
            format!("{} is out of range; use 1 to 1024", d.partitions),
        );
    }
    if let Some(rf) = d.replication_factor.filter(|rf| *rf < 1) {
        invalid(
            "replication_factor",
            format!(
                "{rf} is out of range; use 1 or more, or leave it out for the broker's default"
            ),
        );
    }
    match (d.min_insync_replicas, d.replication_factor) {
        (Some(min), _) if min < 1 => invalid(
            "min_insync_replicas",
            format!("{min} is out of range; use 1 or more, or leave it out for the broker's default"),
        ),
        (Some(min), Some(rf)) if min > rf => invalid(
            "min_insync_replicas",
            format!("{min} is more than replication_factor {rf}: every write would fail; use at most {rf}"),
        ),
        _ => {}
    }
    if d.cloudevents.types.is_empty() {
        invalid(
            "cloudevents.types",
            "declare at least one CloudEvents `type` the product accepts".into(),
        );
    }
    if d.cloudevents.source.is_empty() {
        invalid(
            "cloudevents.source",
            format!(
                "declare the source prefix the domain owns, e.g. `/{}`",
                d.domain
            ),
        );
    } else if let Err(why) = source_owned(&d.domain, &d.cloudevents.source) {
        invalid("cloudevents.source", why);
    }
    if !d.owner.email.contains('@') {
        invalid(
            "owner.email",
            format!("`{}` is not an email address", d.owner.email),
        );
    }
    let mut rule_names = std::collections::HashSet::new();
    for rule in &d.rules {
        if let Err(e) = cel::Program::compile(&rule.expression) {
            invalid(
                "rules.expression",
                format!(
                    "rule `{}`: `{}` is not a CEL expression: {}; write a condition on `message`, e.g. `message.duration_ms >= 0`",
                    rule.name,
                    rule.expression,
                    e.to_string().trim()
                ),
            );
        }
        if !rule_names.insert(rule.name.as_str()) {
            invalid(
                "rules",
                format!(
                    "rule `{}` is declared twice; rule names must be unique",
                    rule.name
                ),
            );
        }
    }
    let mut view_names = std::collections::HashSet::new();
    for view in &d.views {
        if !is_name(&view.name) || !view_names.insert(view.name.as_str()) {
            invalid(
                "views",
                format!(
                    "view name `{}` must be unique, lowercase letters, digits, `-` or `_`",
                    view.name
                ),
            );
        }
        if view.time_zone.parse::<chrono_tz::Tz>().is_err() {
            invalid(
                "views.time_zone",
                format!(
                    "view `{}`: `{}` is not an IANA time zone; use e.g. `UTC` or `Europe/Stockholm`",
                    view.name, view.time_zone
                ),
            );
        }
        if view.kind != ViewKind::Events && view.key.is_empty() {
            invalid(
                "views.key",
                format!(
                    "view `{}` of kind {:?} needs `key` fields",
                    view.name, view.kind
                ),
            );
        }
        match view.keep {
            Some(keep) if keep.0.is_zero() => invalid(
                "views.keep",
                format!(
                    "view `{}` keeps nothing with `keep: 0s`; give a duration (e.g. `90d`) or leave it out to keep every window",
                    view.name
                ),
            ),
            Some(keep) if view.late == LatePolicy::Amend && keep.0 < view.amend_for.0 => invalid(
                "views.keep",
                format!(
                    "view `{}` amends windows for {} but keeps them only {}: make `keep` at least `amend_for`",
                    view.name, view.amend_for, keep
                ),
            ),
            _ => {}
        }
    }
    for sli in sli::Sli::ALL {
        let Some(o) = sli.objective(&d.slos) else {
            continue;
        };
        let field = sli.field();
        if !(0.0 < o.objective && o.objective < 100.0) {
            invalid(
                field,
                format!(
                    "objective {} must be a percentage between 0 and 100 (exclusive), e.g. 99.9",
                    o.objective
                ),
            );
        }
        let buckets = sli.buckets();
        match (&o.threshold, buckets.is_empty()) {
            (None, false) => invalid(
                field,
                format!(
                    "a {} objective needs a latency `threshold`, one of {}",
                    sli.name(),
                    sli::bucket_list(buckets)
                ),
            ),
            (Some(t), false) if !buckets.contains(&t.0.as_secs_f64()) => invalid(
                field,
                format!(
                    "threshold {} is not a bucket bound of {}; use one of {}",
                    humantime::format_duration(t.0),
                    sli.metric(),
                    sli::bucket_list(buckets)
                ),
            ),
            (Some(_), true) => invalid(
                field,
                format!("a {} objective has no `threshold`; remove it", sli.name()),
            ),
            _ => {}
        }
        if o.window.0 < std::time::Duration::from_secs(3 * 24 * 3600) {
            invalid(
                field,
                "the window must be at least `3d`, the longest alert window".into(),
            );
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_are_derived_from_the_id() {
        let t = Topics::of("player.play-events");
        assert_eq!(
            t.all(),
            [
                "player.play-events",
                "player.play-events.ingress",
                "player.play-events.dlq"
            ]
        );
    }

    #[test]
    fn names_are_lowercase_topic_safe() {
        assert!(is_name("play-events"));
        assert!(is_name("labels_2"));
        assert!(!is_name("Play"));
        assert!(!is_name("-x"));
        assert!(!is_name(""));
        assert!(!is_name("a.b"));
    }

    #[test]
    fn retention_parses_durations_and_forever() {
        let r: Retention = serde_json::from_str("\"7d\"").unwrap();
        assert_eq!(r.as_retention_ms(), 7 * 24 * 3600 * 1000);
        let r: Retention = serde_json::from_str("\"forever\"").unwrap();
        assert_eq!(r.as_retention_ms(), -1);
        let e = serde_json::from_str::<Retention>("\"a week\"").unwrap_err();
        assert!(e.to_string().contains("not a duration"), "{e}");
    }

    #[test]
    fn a_contract_declares_sources_only_under_its_own_domain() {
        for source in ["/player", "/player/", "/player/web"] {
            assert_eq!(source_owned("player", source), Ok(()), "{source}");
        }
        for source in ["/", "", "/labels", "/players", "https://x/player"] {
            let err = source_owned("player", source).unwrap_err();
            assert!(err.contains("not under `/player`"), "{source}: {err}");
        }
        assert!(source_owned("", "/").is_err());
    }
}
