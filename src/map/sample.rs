//! The reference report of docs/CONVENTIONS.md, generated: one trust-month `pqom-annex1`
//! MeasureReport with 12 groups (the first twelve conventions indicator codes), each stratified by
//! ethnic category and IMD decile, numerator and denominator in every stratum. Deterministic, so
//! tests and benchmarks can assert on it. Counts are consistent: strata sum to the totals.

use serde_json::{Value, json};

use super::catalogue::{
    ETHNIC_CATEGORY_CODES, ETHNIC_CATEGORY_SYSTEM, IMD_DECILE_SYSTEM, INDICATOR_SYSTEM,
    POPULATION_SYSTEM, STRATIFIER_SYSTEM,
};
use crate::fhir::ODS_ORG_SYSTEM;

/// The twelve indicator codes of the reference report (one list, in `crate::samples`).
pub use crate::samples::REFERENCE_INDICATORS as REFERENCE_GROUPS;

fn pops(num: u64, den: u64) -> Value {
    json!([
        {"code": {"coding": [{"system": POPULATION_SYSTEM, "code": "numerator"}]}, "count": num},
        {"code": {"coding": [{"system": POPULATION_SYSTEM, "code": "denominator"}]}, "count": den}
    ])
}

/// Split `total` over `n` strata deterministically (varying shares, summing to `total`).
fn split(total: u64, n: usize, salt: u64) -> Vec<u64> {
    let weights: Vec<u64> = (0..n as u64).map(|i| 1 + (i * 7 + salt * 3) % 11).collect();
    let sum: u64 = weights.iter().sum();
    let mut parts: Vec<u64> = weights.iter().map(|w| total * w / sum).collect();
    let rest = total - parts.iter().sum::<u64>();
    parts[0] += rest;
    parts
}

/// The reference report for `trust` (ODS code) and a month starting `start` (`YYYY-MM-DD`) and
/// ending `end`.
pub fn reference_report(trust: &str, start: &str, end: &str) -> Value {
    let deciles: Vec<String> = (1..=10).map(|d| d.to_string()).collect();
    let groups: Vec<Value> = REFERENCE_GROUPS
        .iter()
        .enumerate()
        .map(|(gi, code)| {
            let den = 400 + 37 * gi as u64;
            let num = 5 + (gi as u64 * 13) % 60;
            let strat = |stratifier: &str, system: &str, codes: &[&str], salt: u64| {
                let dens = split(den, codes.len(), salt);
                let nums = split(num, codes.len(), salt + 1);
                let strata: Vec<Value> = codes
                    .iter()
                    .zip(dens.iter().zip(nums.iter()))
                    .map(|(c, (d, n))| {
                        json!({
                            "value": {"coding": [{"system": system, "code": c}]},
                            "population": pops((*n).min(*d), *d)
                        })
                    })
                    .collect();
                json!({
                    "code": [{"coding": [{"system": STRATIFIER_SYSTEM, "code": stratifier}]}],
                    "stratum": strata
                })
            };
            let decile_refs: Vec<&str> = deciles.iter().map(String::as_str).collect();
            json!({
                "code": {"coding": [{"system": INDICATOR_SYSTEM, "code": code}]},
                "population": pops(num, den),
                "stratifier": [
                    strat("ethnic-category", ETHNIC_CATEGORY_SYSTEM, ETHNIC_CATEGORY_CODES, gi as u64),
                    strat("imd-decile", IMD_DECILE_SYSTEM, &decile_refs, gi as u64 + 5)
                ]
            })
        })
        .collect();
    json!({
        "resourceType": "MeasureReport",
        "id": format!("{trust}-{start}"),
        "meta": {"profile": ["https://fhir.pqom-gateway.org/StructureDefinition/pqom-trust-measurereport"]},
        "identifier": [{"system": "https://fhir.pqom-gateway.org/Id/report", "value": format!("{trust}-{start}")}],
        "status": "complete",
        "type": "summary",
        "measure": "https://fhir.pqom-gateway.org/Measure/pqom-annex1|1.0.0",
        "date": format!("{end}T12:00:00Z"),
        "reporter": {"identifier": {"system": ODS_ORG_SYSTEM, "value": trust}},
        "period": {"start": start, "end": end},
        "group": groups
    })
}
