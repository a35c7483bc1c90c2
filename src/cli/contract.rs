//! `meshline contract`: checks a producer team runs in its own CI.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context as _;
use apache_avro::Schema;
use clap::Subcommand;

use crate::{
    product::{Catalog, Compatibility},
    registry::compat,
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
    /// List each change from OLD to NEW field by field, and which break the compatibility mode;
    /// exit non-zero when one does.
    Diff {
        /// The old schema: an `.avsc` file, or a product id (its committed schema and mode).
        old: String,
        /// The new schema (`.avsc`).
        new: PathBuf,
        /// Compatibility mode (default: the product's, or BACKWARD for two files).
        #[arg(long)]
        compatibility: Option<Compatibility>,
        /// Directory of descriptors, to resolve a product id.
        #[arg(long, default_value = "config")]
        config: PathBuf,
    },
}

/// Runs a contract subcommand.
pub fn run(command: ContractCommand) -> anyhow::Result<ExitCode> {
    match command {
        ContractCommand::Lint { path } => Ok(lint(&path)),
        ContractCommand::Diff {
            old,
            new,
            compatibility,
            config,
        } => diff(&old, &new, compatibility, &config),
    }
}

fn lint(path: &Path) -> ExitCode {
    match Catalog::load(path) {
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

fn read_schema(path: &Path) -> anyhow::Result<Schema> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read schema file {}", path.display()))?;
    Schema::parse_str(&text)
        .with_context(|| format!("{} is not a valid Avro schema", path.display()))
}

fn diff(
    old: &str,
    new: &Path,
    mode: Option<Compatibility>,
    config: &Path,
) -> anyhow::Result<ExitCode> {
    let (old_schema, product_mode) = if Path::new(old).is_file() {
        (read_schema(Path::new(old))?, None)
    } else {
        let catalog = Catalog::load(config)?;
        let product = catalog
            .require(old)
            .with_context(|| format!("`{old}` is neither a schema file nor a declared product"))?;
        (
            product.schema.clone(),
            Some(product.descriptor.compatibility),
        )
    };
    let new_schema = read_schema(new)?;
    let mode = mode.or(product_mode).unwrap_or_default();
    let changes = compat::diff(&old_schema, &new_schema);
    if changes.is_empty() {
        println!("no field changes");
    }
    for change in &changes {
        let verdict = if change.breaks(mode) {
            "BREAKING"
        } else {
            "ok      "
        };
        println!("{verdict}  {change}");
    }
    let problems = compat::check(mode, &new_schema, &[&old_schema]);
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
