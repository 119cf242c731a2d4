//! Writes the reference report and submission message (`pqom_gateway::samples`) to files, for the
//! peer benchmark scripts in `benches/peers/` and for trying the CLI by hand.
//!
//! `cargo run --example write_samples -- [OUT_DIR] [COPIES]` writes `reference-report.json` and
//! `submission-bundle.json` to OUT_DIR (default `target/samples`); with COPIES, also `many/` with
//! that many distinct reports (seeds 1..=COPIES), for the CLI throughput measurement.

use std::path::PathBuf;
use std::process::ExitCode;

use pqom_gateway::samples::{
    ReportParams, reference_report, reference_report_bytes, submission_bundle_bytes,
};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(args.next().unwrap_or_else(|| "target/samples".into()));
    let copies: u64 = args.next().and_then(|n| n.parse().ok()).unwrap_or(0);
    let write = |name: PathBuf, bytes: &[u8]| -> Result<(), String> {
        std::fs::write(&name, bytes).map_err(|e| format!("{}: {e}", name.display()))
    };
    let run = || -> Result<(), String> {
        std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
        write(out.join("reference-report.json"), &reference_report_bytes())?;
        write(
            out.join("submission-bundle.json"),
            &submission_bundle_bytes(),
        )?;
        if copies > 0 {
            let many = out.join("many");
            std::fs::create_dir_all(&many).map_err(|e| format!("{}: {e}", many.display()))?;
            for seed in 1..=copies {
                let report = reference_report(&ReportParams {
                    seed,
                    ..Default::default()
                });
                let bytes = serde_json::to_vec(&report).map_err(|e| e.to_string())?;
                write(many.join(format!("report-{seed:05}.json")), &bytes)?;
            }
        }
        Ok(())
    };
    match run() {
        Ok(()) => {
            println!("wrote samples to {}", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("write_samples: {e}");
            ExitCode::FAILURE
        }
    }
}
