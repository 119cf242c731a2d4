//! The `pqom-gateway` command line: one binary, one subcommand per job.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod verify;

#[derive(Debug, Parser)]
#[command(name = "pqom-gateway", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a forwarded bundle: signature (kid, alg, value), source hash and Provenance targets.
    Verify(verify::VerifyArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Verify(args) => verify::run(args),
    }
}
