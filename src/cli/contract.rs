//! `meshline contract`: checks a producer team runs in its own CI.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context as _;
use clap::Subcommand;

use super::{DEFAULT_HTTP, DEFAULT_KAFKA, DEFAULT_REGISTRY_URL};
use crate::{
    product::{Catalog, Compatibility, SchemaFormat},
    registry::{api::VersionId, client::Client, compat, state::Parsed},
};

/// Contract checks.
#[derive(Debug, Subcommand)]
pub enum ContractCommand {
    /// Validate every descriptor and schema under PATH; exit non-zero on any error.
    Lint {
        /// Directory of descriptors.
        #[arg(default_value = "config")]
        path: PathBuf,
    },
    /// List each change from OLD to NEW field by field, and which break the compatibility mode
    /// (exit non-zero when one does); for a registered product, also the rule and metadata
    /// changes of its descriptor against the registered contract.
    Diff {
        /// The old schema: a schema file (`.avsc`, `.json` JSON Schema, `.proto`), or a product
        /// id (the versions the registry holds for it, under the product's mode).
        old: String,
        /// The new schema, in the old one's language.
        new: PathBuf,
        /// Compatibility mode (default: the product's, or BACKWARD for two files).
        #[arg(long)]
        compatibility: Option<Compatibility>,
        /// Directory of descriptors, to resolve a product id.
        #[arg(long, default_value = "config")]
        config: PathBuf,
        /// Schema registry holding the product's versions.
        #[arg(long, default_value = DEFAULT_REGISTRY_URL, env = "MESHLINE_REGISTRY")]
        registry: String,
        /// Compare a product with the schema committed next to its descriptor instead of the
        /// registry's versions (no registry needed).
        #[arg(long)]
        committed: bool,
    },
    /// Register every product's schema and contract (rules, owner, SLOs) in a registry, with
    /// its compatibility level and the aliases of its ingress and DLQ subjects: what
    /// `meshline up` does in the registry it starts, done explicitly for a registry you run
    /// (Confluent, Karapace, Apicurio with Confluent's API, or `meshline registry`).
    /// Credentials from MESHLINE_REGISTRY_TOKEN or MESHLINE_REGISTRY_USER_INFO.
    Publish {
        /// Directory of descriptors.
        #[arg(long, default_value = "config")]
        config: PathBuf,
        /// The registry.
        #[arg(long, default_value = DEFAULT_REGISTRY_URL, env = "MESHLINE_REGISTRY")]
        registry: String,
    },
    /// Print a product's contract in another standard: an Open Data Contract Standard v3.1
    /// document (`odcs`) or an AsyncAPI 3.0 document (`asyncapi`); the catalog serves both.
    Export {
        /// Product id, e.g. `player.play-events`.
        product: String,
        /// The standard.
        #[arg(long, value_enum, default_value_t = ExportFormat::Odcs)]
        format: ExportFormat,
        /// Directory of descriptors.
        #[arg(long, default_value = "config")]
        config: PathBuf,
        /// The Kafka cluster serving the product (the documents name it).
        #[arg(long, default_value = DEFAULT_KAFKA, env = "MESHLINE_BOOTSTRAP")]
        bootstrap: String,
        /// The schema registry (AsyncAPI names it).
        #[arg(long, default_value = DEFAULT_REGISTRY_URL, env = "MESHLINE_REGISTRY")]
        registry: String,
        /// The catalog's base URL (AsyncAPI links the product's address).
        #[arg(long, default_value_t = format!("http://{DEFAULT_HTTP}"), env = "MESHLINE_URL")]
        url: String,
    },
    /// Write a descriptor and its Avro schema from an ODCS v3 document (`<out>/<name>.yaml`,
    /// `<out>/<name>.avsc`), then lint them; say what the contract could not carry.
    Import {
        /// The ODCS document (YAML or JSON).
        file: PathBuf,
        /// Directory to write the descriptor and schema to.
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
    /// Print the broker ACLs the descriptors imply, as a `kafka-acls.sh` script (each domain
    /// writes only its own products' ingress topics).
    Acls {
        /// Directory of descriptors.
        #[arg(default_value = "config")]
        path: PathBuf,
    },
}

/// The standards `contract export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// Open Data Contract Standard v3.1.
    Odcs,
    /// AsyncAPI 3.0.
    Asyncapi,
}

/// Registers every product of `catalog` in the registry of `client`; prints each id.
pub(super) async fn publish(catalog: &Catalog, client: &Client) -> anyhow::Result<()> {
    for product in catalog.iter() {
        let subject = product.subject();
        let context = || format!("publishing {} to {}", product.id(), client.url());
        client
            .set_compatibility(&subject, product.descriptor.compatibility)
            .await
            .with_context(context)?;
        for alias in crate::registry::contract::aliases(product) {
            client
                .set_alias(&alias, &subject)
                .await
                .with_context(context)?;
        }
        let id = client
            .register(&subject, &crate::registry::contract::registration(product))
            .await
            .with_context(context)?;
        println!("{}: {subject} id {id}", product.id());
    }
    Ok(())
}

/// Runs a contract subcommand.
pub(super) async fn run(command: ContractCommand) -> anyhow::Result<ExitCode> {
    match command {
        ContractCommand::Lint { path } => Ok(lint(&path)),
        ContractCommand::Publish { config, registry } => {
            publish(
                &crate::formats::load_catalog(&config)?,
                &Client::new(&registry),
            )
            .await?;
            Ok(ExitCode::SUCCESS)
        }
        ContractCommand::Export {
            product,
            format,
            config,
            bootstrap,
            registry,
            url,
        } => {
            let catalog = crate::formats::load_catalog(&config)?;
            let product = catalog.require(&product)?;
            let document = match format {
                ExportFormat::Odcs => crate::product::odcs::export(product, &bootstrap),
                ExportFormat::Asyncapi => crate::catalog::asyncapi::document(
                    product,
                    crate::catalog::asyncapi::Endpoints {
                        bootstrap: &bootstrap,
                        registry: &registry,
                        catalog: &format!(
                            "{}/products/{}",
                            url.trim_end_matches('/'),
                            product.id()
                        ),
                    },
                ),
            };
            print!("{}", serde_norway::to_string(&document)?);
            Ok(ExitCode::SUCCESS)
        }
        ContractCommand::Import { file, out } => import(&file, &out),
        ContractCommand::Acls { path } => {
            let catalog = crate::formats::load_catalog(&path)?;
            print!("{}", crate::product::acls::kafka_acls_script(&catalog));
            Ok(ExitCode::SUCCESS)
        }
        ContractCommand::Diff {
            old,
            new,
            compatibility,
            config,
            registry,
            committed,
        } => {
            let old = resolve_old(&old, &config, (!committed).then_some(&registry)).await?;
            diff(old, &new, compatibility)
        }
    }
}

/// What a new schema is compared with: the registered versions (oldest first; the last is the
/// one the field diff is against) and the mode of the product, if OLD names one.
struct Old {
    versions: Vec<Parsed>,
    mode: Option<Compatibility>,
    /// The product's Protobuf message, for the field changes.
    message: Option<String>,
    /// The rule and metadata changes from the registered contract to the descriptor's, when
    /// OLD names a registered product.
    contract: Option<Vec<String>>,
}

async fn resolve_old(old: &str, config: &Path, registry: Option<&String>) -> anyhow::Result<Old> {
    if Path::new(old).is_file() {
        return Ok(Old {
            versions: vec![read_schema(Path::new(old))?],
            mode: None,
            message: None,
            contract: None,
        });
    }
    let catalog = crate::formats::load_catalog(config)?;
    let product = catalog
        .require(old)
        .with_context(|| format!("`{old}` is neither a schema file nor a declared product"))?;
    let mode = Some(product.descriptor.compatibility);
    let message = product.descriptor.message.clone();
    let Some(url) = registry else {
        return Ok(Old {
            versions: vec![
                Parsed::of(product.format, &product.schema_text).map_err(anyhow::Error::msg)?
            ],
            mode,
            message,
            contract: None,
        });
    };
    let client = Client::new(url);
    let subject = product.subject();
    let numbers = client.versions(&subject).await.with_context(|| {
        format!("reading the registered versions of {old}; pass `--committed` to compare with the schema committed next to its descriptor instead")
    })?;
    let mut versions = Vec::with_capacity(numbers.len());
    let mut latest = None;
    for n in numbers {
        let body = client.version(&subject, VersionId::Number(n)).await?;
        let format =
            SchemaFormat::of_schema_type(body.schema_type.as_deref()).unwrap_or(SchemaFormat::Avro);
        versions.push(
            Parsed::of(format, &body.schema)
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("version {n} of {subject} in the registry"))?,
        );
        latest = Some(body);
    }
    // the rules and metadata `contract publish` would register, against the registered ones
    let ours = crate::registry::contract::registration(product);
    let contract = latest.map(|body| {
        crate::registry::contract::diff(
            (body.metadata.as_ref(), body.rule_set.as_ref()),
            (ours.metadata.as_ref(), ours.rule_set.as_ref()),
        )
    });
    Ok(Old {
        versions,
        mode,
        message,
        contract,
    })
}

fn lint(path: &Path) -> ExitCode {
    match crate::formats::load_catalog(path) {
        Ok(catalog) => {
            for product in catalog.iter() {
                println!("ok  {}  ({})", product.id(), product.path.display());
            }
            println!("{} data product(s), no errors", catalog.len());
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("error: {e}");
            }
            eprintln!("{} error(s)", errors.0.len());
            ExitCode::FAILURE
        }
    }
}

fn import(file: &Path, out: &Path) -> anyhow::Result<ExitCode> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
    let document: serde_json::Value = serde_norway::from_str(&text)
        .with_context(|| format!("{} is not YAML or JSON", file.display()))?;
    let imported = match crate::product::odcs::import(&document) {
        Ok(imported) => imported,
        Err(e) => {
            eprintln!("error: {}: {e}", file.display());
            return Ok(ExitCode::FAILURE);
        }
    };
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let descriptor = out.join(format!("{}.yaml", imported.name));
    let schema = out.join(&imported.descriptor.schema);
    for path in [&descriptor, &schema] {
        anyhow::ensure!(
            !path.exists(),
            "{} exists already; import into another --out directory",
            path.display()
        );
    }
    std::fs::write(&schema, &imported.schema_text)
        .with_context(|| format!("writing {}", schema.display()))?;
    let yaml = format!(
        "# Imported from {} by `meshline contract import`.\n{}",
        file.display(),
        serde_norway::to_string(&imported.descriptor)?
    );
    std::fs::write(&descriptor, yaml)
        .with_context(|| format!("writing {}", descriptor.display()))?;
    println!("wrote {} and {}", descriptor.display(), schema.display());
    for note in &imported.notes {
        println!("note: {note}");
    }
    match crate::product::load_product_with(&descriptor, Some(crate::formats::protobuf::fields)) {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(errors) => {
            for e in &errors {
                eprintln!("error: {e}");
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

/// A schema file, in the language its extension names (Avro for any other).
fn read_schema(path: &Path) -> anyhow::Result<Parsed> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read schema file {}", path.display()))?;
    let format = SchemaFormat::of_file(&path.to_string_lossy()).unwrap_or(SchemaFormat::Avro);
    Parsed::of(format, &text)
        .map_err(anyhow::Error::msg)
        .with_context(|| format!("{} is not a valid {format} schema", path.display()))
}

fn diff(old: Old, new: &Path, mode: Option<Compatibility>) -> anyhow::Result<ExitCode> {
    let new_schema = read_schema(new)?;
    let mode = mode.or(old.mode).unwrap_or_default();
    let Some(latest) = old.versions.last() else {
        anyhow::bail!("nothing registered to compare with");
    };
    // the field changes, on the field models; for Avro, each with its verdict under the mode
    let message = old.message.as_deref().map(
        |m| serde_json::json!({ "properties": { crate::registry::contract::MESSAGE_PROPERTY: m } }),
    );
    let fields = |parsed: &Parsed| {
        parsed
            .field_model(message.as_ref())
            .map_err(anyhow::Error::msg)
    };
    let changes = compat::diff(&fields(latest)?, &fields(&new_schema)?);
    if changes.is_empty() {
        println!("no field changes");
    }
    let avro = matches!(new_schema, Parsed::Avro(_));
    for change in &changes {
        let verdict = match (avro, change.breaks(mode)) {
            (false, _) => "field   ",
            (true, true) => "BREAKING",
            (true, false) => "ok      ",
        };
        println!("{verdict}  {change}");
    }
    match &old.contract {
        Some(changes) if changes.is_empty() => {
            println!("no rule or metadata changes against the registered contract");
        }
        Some(changes) => {
            for change in changes {
                println!("contract  {change}");
            }
        }
        None => {}
    }
    // the verdict by the rules of the schema's own language
    let previous: Vec<&Parsed> = old.versions.iter().collect();
    let problems = new_schema.compatibility(mode, &previous);
    if problems.is_empty() {
        println!("compatible under {mode}");
        Ok(ExitCode::SUCCESS)
    } else {
        for p in &problems {
            eprintln!("error: {p}");
        }
        eprintln!("not compatible under {mode}");
        Ok(ExitCode::FAILURE)
    }
}
