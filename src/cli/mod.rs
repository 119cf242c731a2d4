//! The `pqom-gateway` command line: one binary, one subcommand per job.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod map;
pub mod serve;
pub mod validate;
pub mod verify;

#[derive(Debug, Parser)]
#[command(name = "pqom-gateway", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway (embedded SQLite by default, PostgreSQL with --database-url).
    Serve(crate::config::ServeArgs),
    /// Run the gateway on a local embedded store with sample trust submissions loaded.
    Demo(serve::DemoArgs),
    /// Exit 0 if the gateway at --url answers ready (for container health checks).
    Healthcheck(HealthcheckArgs),
    /// Show the indicator values a submission (MeasureReport or message Bundle) would produce, and why.
    Map(map::MapArgs),
    /// Work with the Annex 1 indicator catalogue (export the generated FHIR resources).
    Catalogue(map::CatalogueArgs),
    /// Check a forwarded bundle: signature (kid, alg, value), source hash and Provenance targets.
    Verify(verify::VerifyArgs),
    /// Validate FHIR JSON files or folders against base R4, the PQOM profiles and any --ig.
    Validate(validate::ValidateArgs),
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::serve(args),
        Command::Demo(args) => serve::demo(args),
        Command::Healthcheck(args) => healthcheck(args),
        Command::Map(args) => map::run_map(args),
        Command::Catalogue(args) => map::run_catalogue(args),
        Command::Verify(args) => verify::run(args),
        Command::Validate(args) => validate::run(args),
    }
}

#[derive(Debug, clap::Args)]
pub struct HealthcheckArgs {
    /// Readiness URL to probe.
    #[arg(long, default_value = "http://127.0.0.1:8080/readyz")]
    pub url: String,
}

/// A probe for images without curl: GET the URL, succeed on 2xx.
fn healthcheck(args: HealthcheckArgs) -> ExitCode {
    let probe = async {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(5))
            .build()?;
        client.get(&args.url).send().await?.error_for_status()
    };
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|rt| rt.block_on(probe).map_err(|e| e.to_string()));
    match result {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("not ready: {e}");
            ExitCode::FAILURE
        }
    }
}
