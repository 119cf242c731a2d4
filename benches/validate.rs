//! Validation throughput on the reference report (docs/CONVENTIONS.md) and the submission message
//! around it, one core, against the parse-only baselines. Figures and commands: BENCHMARKS.md.
//!
//! `cargo bench --bench validate` (release profile). Criterion prints time per report, reports/s
//! ("elem/s") and MB/s for each line. For instruction counts that do not depend on machine load,
//! run `examples/validate_loop.rs` under callgrind (commands in BENCHMARKS.md).

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pqom_gateway::samples::{reference_report_bytes, submission_bundle_bytes};
use pqom_gateway::validate::Validator;
use pqom_gateway::validate::terminology::load_validator;

fn validator() -> Validator {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let v = load_validator(&[root.join("definitions/r4"), root.join("profiles")])
        .unwrap_or_else(|e| panic!("definitions load: {e}"));
    // A benchmark of a report that does not validate would measure the error path.
    let outcome = v.validate(&reference_report_bytes(), &[]);
    assert!(
        !outcome.has_errors(),
        "reference report must be valid: {:#}",
        outcome.to_json()
    );
    let outcome = v.validate(&submission_bundle_bytes(), &[]);
    assert!(
        !outcome.has_errors(),
        "submission message must be valid: {:#}",
        outcome.to_json()
    );
    v
}

fn bench(c: &mut Criterion) {
    let report = reference_report_bytes();
    let message = submission_bundle_bytes();
    let v = validator();

    let mut g = c.benchmark_group("reference-report");
    g.throughput(Throughput::ElementsAndBytes {
        elements: 1,
        bytes: report.len() as u64,
    });
    g.bench_function("parse serde_json::Value", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(&report)).map(drop))
    });
    g.bench_function("parse sonic_rs::Value", |b| {
        b.iter(|| sonic_rs::from_slice::<sonic_rs::Value>(black_box(&report)).map(drop))
    });
    g.bench_function("parse into the validator's tree", |b| {
        b.iter(|| Validator::parse_only(black_box(&report)))
    });
    g.bench_function("validate (base R4 + PQOM profile + invariants)", |b| {
        b.iter(|| v.validate(black_box(&report), &[]))
    });
    g.finish();

    let mut g = c.benchmark_group("submission-message");
    g.throughput(Throughput::ElementsAndBytes {
        elements: 1,
        bytes: message.len() as u64,
    });
    g.bench_function("validate (Bundle + MessageHeader + report profiles)", |b| {
        b.iter(|| v.validate(black_box(&message), &[]))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
