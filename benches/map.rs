//! Mapping cost: the reference report (one trust-month `pqom-annex1` MeasureReport, 12 groups x
//! 27 strata, about 145 KB) through the mapping engine, from a parsed value and from bytes.
//! Compare with the validation benchmark: mapping should cost less than validating.

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pqom_gateway::map::{Level, Mapper, StaticDirectory, sample};

fn bench(c: &mut Criterion) {
    let mapper = Mapper::load(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mappings"))
        .expect("mappings load");
    let report = sample::reference_report("RM1", "2026-10-01", "2026-10-31");
    let bytes = serde_json::to_vec(&report).expect("serialises");
    eprintln!("reference report: {} bytes", bytes.len());

    let mut g = c.benchmark_group("map");
    g.throughput(Throughput::Elements(1));
    g.bench_function("map_report (parsed value)", |b| {
        b.iter(|| black_box(mapper.map_report(black_box(&report))))
    });
    g.bench_function("parse + map_report (bytes)", |b| {
        b.iter(|| {
            let v: serde_json::Value = serde_json::from_slice(black_box(&bytes)).expect("parses");
            black_box(mapper.map_report(&v))
        })
    });
    let values = mapper.map_report(&report).values;
    g.bench_function("indicator MeasureReports", |b| {
        b.iter(|| black_box(mapper.indicator_reports(black_box(&values), "2026-11-01T00:00:00Z")))
    });
    // 40 trusts' values pooled to their ICB.
    let mut dir = StaticDirectory::new();
    let mut all = Vec::new();
    for t in 0..40 {
        let ods = format!("R{t:02}");
        dir = dir.with(&ods, &format!("Q{:02}", t / 5), "Y61");
        all.extend(values.iter().cloned().map(|mut v| {
            v.trust = ods.clone();
            v
        }));
    }
    g.throughput(Throughput::Elements(all.len() as u64));
    g.bench_function("pool 40 trusts to ICB (values)", |b| {
        b.iter(|| black_box(mapper.pool(black_box(&all), Level::Icb, &dir)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
