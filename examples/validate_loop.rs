//! Validates the reference report (or the submission message) N times in one process, for
//! instruction-count profiling with callgrind, which does not depend on machine load
//! (BENCHMARKS.md "Validation"):
//!
//! ```text
//! cargo build --profile bench --example validate_loop
//! valgrind --tool=callgrind --callgrind-out-file=target/cg.out \
//!     --toggle-collect='*validate_loop::run*' target/release/examples/validate_loop report 20
//! callgrind_annotate target/cg.out | head -60
//! ```
//!
//! Arguments: `report` | `message` | `parse` (sonic-rs parse only, the baseline) | `tree` (the
//! validator's own parse into its tree, nothing else), then N.
//! Collection is limited to [`run`] with `--toggle-collect`, so loading the definitions is not
//! counted; divide the total by N for instructions per report.

use std::hint::black_box;
use std::path::PathBuf;

use pqom_gateway::samples::{reference_report_bytes, submission_bundle_bytes};
use pqom_gateway::validate::Validator;
use pqom_gateway::validate::terminology::load_validator;

#[inline(never)]
fn run(v: &Validator, what: &str, bytes: &[u8], n: usize) -> usize {
    let mut issues = 0;
    for _ in 0..n {
        if what == "tree" {
            black_box(Validator::parse_only(black_box(bytes)).expect("parses"));
        } else if what == "parse" {
            let parsed: sonic_rs::Value = sonic_rs::Deserializer::from_slice(black_box(bytes))
                .use_rawnumber()
                .deserialize()
                .expect("parses");
            black_box(&parsed);
        } else {
            let outcome = v.validate(black_box(bytes), &[]);
            issues += outcome.issues.len();
        }
    }
    issues
}

fn main() {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_else(|| "report".into());
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(10);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let v = load_validator(&[root.join("definitions/r4"), root.join("profiles")])
        .unwrap_or_else(|e| panic!("definitions load: {e}"));
    let bytes = match what.as_str() {
        "message" => submission_bundle_bytes(),
        _ => reference_report_bytes(),
    };
    let outcome = v.validate(&bytes, &[]);
    assert!(
        !outcome.has_errors(),
        "sample must be valid: {:#}",
        outcome.to_json()
    );
    for i in &outcome.issues {
        eprintln!("note (not an error): {i:?}");
    }
    let cpu0 = cpu_ns();
    let t = std::time::Instant::now();
    let issues = run(&v, &what, &bytes, n);
    let el = t.elapsed();
    let cpu = cpu_ns().zip(cpu0).map(|(b, a)| (b - a) as f64 / 1e9);
    println!(
        "{what}: {n} x {} bytes in {:.3} s wall: {:.3} ms each, {:.1}/s ({issues} issues in total)",
        bytes.len(),
        el.as_secs_f64(),
        el.as_secs_f64() * 1e3 / n as f64,
        n as f64 / el.as_secs_f64()
    );
    if let Some(cpu) = cpu {
        println!(
            "{what}: {cpu:.3} s on CPU: {:.3} ms each, {:.1}/s, {:.1} MB/s",
            cpu * 1e3 / n as f64,
            n as f64 / cpu,
            (n * bytes.len()) as f64 / cpu / 1e6
        );
    }
}

/// Time this thread has spent on a CPU (Linux `schedstat`, nanoseconds): on a shared machine
/// the wall clock also counts the time other processes held the core.
fn cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}
