//! What the map stage publishes conforms to the project's own profiles: every generated Measure
//! to `pqom-measure`, and indicator MeasureReports (trust and pooled) to
//! `pqom-indicator-measurereport`, checked with the gateway's validator.

use std::path::PathBuf;

use pqom_gateway::map::{Level, Mapper, StaticDirectory, sample};
use pqom_gateway::validate::terminology::load_validator;

fn errors(outcome: &pqom_gateway::fhir::Outcome) -> Vec<String> {
    outcome
        .issues
        .iter()
        .filter(|i| i.severity.is_error())
        .map(|i| {
            format!(
                "{}: {}",
                i.expression.as_deref().unwrap_or("-"),
                i.diagnostics
            )
        })
        .collect()
}

#[test]
fn generated_measures_and_indicator_reports_conform_to_the_profiles() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let v = load_validator(&[root.join("definitions/r4"), root.join("profiles")])
        .expect("definitions load");
    let m = Mapper::load(&root.join("mappings")).unwrap();

    // The validator does catch a broken Measure (the profile requires a version).
    let mut broken = m.catalogue().measures().remove(0);
    broken.as_object_mut().unwrap().remove("version");
    assert!(!errors(&v.validate(&serde_json::to_vec(&broken).unwrap(), &[])).is_empty());

    let mut failures = Vec::new();
    for measure in m.catalogue().measures() {
        let e = errors(&v.validate(&serde_json::to_vec(&measure).unwrap(), &[]));
        if !e.is_empty() {
            failures.push(format!("Measure {}: {e:?}", measure["id"]));
        }
    }

    let out = m.map_report(&sample::reference_report("RM1", "2026-10-01", "2026-10-31"));
    let mut values = out.values.clone();
    values.extend(
        m.map_report(&sample::reference_report("RGP", "2026-10-01", "2026-10-31"))
            .values,
    );
    let dir = StaticDirectory::new()
        .with("RM1", "QMM", "Y61")
        .with("RGP", "QMM", "Y61")
        .with("RCX", "QMM", "Y61");
    let pooled = m.pool(&values, Level::Icb, &dir);
    let reports = m
        .indicator_reports(&out.values, "2026-11-01T00:00:00Z")
        .into_iter()
        .chain(m.pooled_reports(&pooled.values, "2026-11-01T00:00:00Z"));
    for r in reports {
        let e = errors(&v.validate(&serde_json::to_vec(&r).unwrap(), &[]));
        if !e.is_empty() {
            failures.push(format!(
                "MeasureReport {} {}: {e:?}",
                r["measure"], r["reporter"]["identifier"]["value"]
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} non-conformant:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
