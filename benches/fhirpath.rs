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

    // The reference report (docs/CONVENTIONS.md): 12 groups, each stratified by ethnic category (17)
    // and IMD decile (10), numerator and denominator everywhere; one contained Organization.
    let reference = reference_report();
    let text = reference.to_string();
    let big: sonic_rs::Value = sonic_rs::from_str(&text).expect("reference report");
    let ctx = EvalContext::new().with_resource(&big);
    let all = Box::leak(Box::new(Expr::parse("descendants()").unwrap()));
    let elements: Vec<Item<'_, sonic_rs::Value>> =
        all.evaluate(&ctx, &big).unwrap().iter().cloned().collect();
    let mut g = c.benchmark_group("fhirpath reference report");
    g.sample_size(20);
    g.bench_function(format!("ele-1 on all {} elements", elements.len()), |b| {
        b.iter(|| {
            let mut failed = 0;
            for e in &elements {
                if ele1
                    .evaluate_item(&ctx, e.clone())
                    .unwrap()
                    .as_boolean()
                    .unwrap()
                    == Some(false)
                {
                    failed += 1;
                }
            }
            black_box(failed)
        })
    });
    g.bench_function("mrp-2", |b| {
        b.iter(|| mrp2.evaluate(&ctx, black_box(&big)).unwrap().as_boolean())
    });
    g.bench_function("dom-3", |b| {
        b.iter(|| dom3.evaluate(&ctx, black_box(&big)).unwrap().as_boolean())
    });
    g.finish();
    eprintln!(
        "reference report: {} bytes, {} elements",
        text.len(),
        elements.len()
    );
}

fn reference_report() -> serde_json::Value {
    use serde_json::json;
    let pop = |code: &str, n: u32| json!({"code": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/measure-population", "code": code}]}, "count": n});
    let stratum = |system: &str, code: &str| {
        json!({
        "value": {"coding": [{"system": system, "code": code}]},
        "population": [pop("numerator", 3), pop("denominator", 40)]})
    };
    let ethnic: Vec<&str> = vec![
        "A", "B", "C", "D", "E", "F", "G", "H", "J", "K", "L", "M", "N", "P", "R", "S", "Z",
    ];
    let groups: Vec<serde_json::Value> = [
        "stillbirth-rate", "neonatal-death-rate", "pph-1500ml", "oasi-tears", "preterm-birth",
        "smoking-at-delivery", "caesarean-robson-1", "caesarean-robson-2", "caesarean-robson-5",
        "apgar-low-5min", "vbac", "nnap-birth-nicu-centre",
    ]
    .iter()
    .map(|code| json!({
        "code": {"coding": [{"system": "https://fhir.pqom-gateway.org/CodeSystem/pqom-indicator", "code": code}]},
        "population": [pop("numerator", 30), pop("denominator", 600)],
        "stratifier": [
            {"code": [{"coding": [{"system": "https://fhir.pqom-gateway.org/CodeSystem/pqom-stratifier", "code": "ethnic-category"}]}],
             "stratum": ethnic.iter().map(|e| stratum("https://fhir.hl7.org.uk/CodeSystem/UKCore-EthnicCategoryEngland", e)).collect::<Vec<_>>()},
            {"code": [{"coding": [{"system": "https://fhir.pqom-gateway.org/CodeSystem/pqom-stratifier", "code": "imd-decile"}]}],
             "stratum": (1..=10).map(|d| stratum("https://fhir.pqom-gateway.org/CodeSystem/imd-decile", &d.to_string())).collect::<Vec<_>>()}
        ]}))
    .collect();
    json!({"resourceType": "MeasureReport", "id": "reference",
        "contained": [{"resourceType": "Organization", "id": "trust", "name": "Example Trust"}],
        "status": "complete", "type": "summary", "measure": "https://fhir.pqom-gateway.org/Measure/pqom-annex1",
        "reporter": {"reference": "#trust"},
        "period": {"start": "2026-10-01", "end": "2026-10-31"}, "group": groups})
}

criterion_group!(benches, bench);
criterion_main!(benches);
