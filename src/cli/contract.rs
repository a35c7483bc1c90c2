//! `meshline contract`: checks a producer team runs in its own CI.

use std::{path::PathBuf, process::ExitCode};

use clap::Subcommand;

use crate::product::Catalog;

/// Contract checks.
#[derive(Debug, Subcommand)]
pub enum ContractCommand {
    /// Validate every descriptor and schema under PATH; exit non-zero on any error.
    Lint {
        /// Directory of descriptors.
        #[arg(default_value = "config")]
        path: PathBuf,
    },
}

/// Runs a contract subcommand.
pub fn run(command: ContractCommand) -> anyhow::Result<ExitCode> {
    match command {
        ContractCommand::Lint { path } => match Catalog::load(&path) {
            Ok(catalog) => {
                for product in catalog.iter() {
                    println!("ok  {}  ({})", product.id(), product.path.display());
                }
                println!("{} data product(s), no errors", catalog.len());
                Ok(ExitCode::SUCCESS)
            }
            Err(errors) => {
                for e in &errors.0 {
                    eprintln!("error: {e}");
                }
                eprintln!("{} error(s)", errors.0.len());
                Ok(ExitCode::FAILURE)
            }
        },
    }
}
