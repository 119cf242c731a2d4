//! FHIRPath evaluation cost: the validator evaluates each invariant on every element it applies to,
//! so what matters is one compiled expression evaluated on one node, over the sonic-rs tree.
//!
//! `cargo bench --bench fhirpath` (see BENCHMARKS.md for figures and the profile they were taken in).

use criterion::{Criterion, criterion_group, criterion_main};
use pqom_gateway::validate::fhirpath::{EvalContext, Expr, Item};
use std::hint::black_box;

const REPORT: &str = include_str!("../tests/fixtures/fhirpath/samples/measurereport-trust.json");

fn bench(c: &mut Criterion) {
    let report: sonic_rs::Value = sonic_rs::from_str(REPORT).expect("sample report");
    let ctx = EvalContext::new().with_resource(&report);

    // The nodes the invariants are evaluated on.
    let locate = |path: &str| -> Item<'_, sonic_rs::Value> {
        let e = Box::leak(Box::new(Expr::parse(path).expect("path")));
        let ctx = Box::leak(Box::new(EvalContext::new().with_resource(&report)));
        e.evaluate(ctx, &report)
            .expect("locate")
            .iter()
            .next()
            .cloned()
            .expect("node")
    };
    let population = locate("group.population.first()");
    let period = locate("period");
    let meta = locate("meta");

    let ele1 = Expr::parse("hasValue() or (children().count() > id.count())").unwrap();
    let per1 =
        Expr::parse("start.hasValue().not() or end.hasValue().not() or (start <= end)").unwrap();
    let mrp2 =
        Expr::parse("group.stratifier.stratum.all(value.exists() xor component.exists())").unwrap();
    let dom3 = Expr::parse("contained.where((('#'+id in (%resource.descendants().reference | %resource.descendants().as(canonical) | %resource.descendants().as(uri) | %resource.descendants().as(url))) or descendants().where(reference = '#').exists() or descendants().where(as(canonical) = '#').exists() or descendants().where(as(canonical) = '#').exists()).not()).trace('unmatched', id).empty()").unwrap();
    let coding = Expr::parse("group.code.coding.where(system = 'https://fhir.pqom-gateway.org/CodeSystem/pqom-indicator' and code = 'stillbirth-rate').exists()").unwrap();

    let mut g = c.benchmark_group("fhirpath");
    g.bench_function("parse ele-1", |b| {
        b.iter(|| Expr::parse(black_box("hasValue() or (children().count() > id.count())")))
    });
    g.bench_function("ele-1 on population", |b| {
        b.iter(|| {
            ele1.evaluate_item(&ctx, black_box(population.clone()))
                .unwrap()
                .as_boolean()
        })
    });
    let sreport: serde_json::Value = serde_json::from_str(REPORT).expect("sample report");
    let sctx = EvalContext::new().with_resource(&sreport);
    let spop = &sreport["group"][0]["population"][0];
    g.bench_function("ele-1 on population (serde_json)", |b| {
        b.iter(|| ele1.evaluate(&sctx, black_box(spop)).unwrap().as_boolean())
    });
    g.bench_function("ele-1 on meta", |b| {
        b.iter(|| {
            ele1.evaluate_item(&ctx, black_box(meta.clone()))
                .unwrap()
                .as_boolean()
        })
    });
    g.bench_function("per-1 on period", |b| {
        b.iter(|| {
            per1.evaluate_item(&ctx, black_box(period.clone()))
                .unwrap()
                .as_boolean()
        })
    });
    g.bench_function("mrp-2 on report", |b| {
        b.iter(|| {
            mrp2.evaluate(&ctx, black_box(&report))
                .unwrap()
                .as_boolean()
        })
    });
    g.bench_function("coding where() on report", |b| {
        b.iter(|| {
            coding
                .evaluate(&ctx, black_box(&report))
                .unwrap()
                .as_boolean()
        })
    });
    g.bench_function("dom-3 on report", |b| {
        b.iter(|| {
            dom3.evaluate(&ctx, black_box(&report))
                .unwrap()
                .as_boolean()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
