//! The `pqom-gateway` command line: one binary, one subcommand per job.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod map;
pub mod verify;

#[derive(Debug, Parser)]
#[command(name = "pqom-gateway", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the indicator values a submission (MeasureReport or message Bundle) would produce, and why.
    Map(map::MapArgs),
    /// Work with the Annex 1 indicator catalogue (export the generated FHIR resources).
    Catalogue(map::CatalogueArgs),
    /// Check a forwarded bundle: signature (kid, alg, value), source hash and Provenance targets.
    Verify(verify::VerifyArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Map(args) => map::run_map(args),
        Command::Catalogue(args) => map::run_catalogue(args),
        Command::Verify(args) => verify::run(args),
    }
}
