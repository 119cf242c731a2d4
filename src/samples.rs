//! Deterministic sample data: the reference trust-month report (docs/CONVENTIONS.md) and the
//! submission message around it. Tests, benchmarks, the peer-comparison scripts and the demo use
//! these so that every figure is measured on the same bytes.
//!
//! Owns: building the JSON. Must not: depend on the validator or touch the network or disk (callers
//! write the bytes where they need them). Counts come from a seeded generator, so the same
//! [`ReportParams`] always yield the same bytes.

use serde_json::{Value, json};

use crate::fhir::{CANONICAL_BASE, ODS_ORG_SYSTEM};

/// The UK Core ethnic category code system (NHS Data Dictionary codes).
pub const ETHNIC_CATEGORY_SYSTEM: &str =
    "https://fhir.hl7.org.uk/CodeSystem/UKCore-EthnicCategoryEngland";
/// HL7 measure-population code system (numerator, denominator, ...).
pub const MEASURE_POPULATION_SYSTEM: &str =
    "http://terminology.hl7.org/CodeSystem/measure-population";

/// The twelve indicators of the reference report: the first twelve fixed `pqom-indicator` codes.
pub const REFERENCE_INDICATORS: [&str; 12] = [
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

/// The 17 ethnic categories a stratum is reported for (A..S and Z "not stated"; the 18th code,
/// 99 "not known", is folded into Z by the reference data), with their NHS Data Dictionary
/// displays (as in `profiles/CodeSystem-UKCore-EthnicCategoryEngland.json`).
pub const ETHNIC_CATEGORIES: [(&str, &str); 17] = [
    ("A", "White - British"),
    ("B", "White - Irish"),
    ("C", "White - Any other White background"),
    ("D", "Mixed - White and Black Caribbean"),
    ("E", "Mixed - White and Black African"),
    ("F", "Mixed - White and Asian"),
    ("G", "Mixed - Any other mixed background"),
    ("H", "Asian or Asian British - Indian"),
    ("J", "Asian or Asian British - Pakistani"),
    ("K", "Asian or Asian British - Bangladeshi"),
    ("L", "Asian or Asian British - Any other Asian background"),
    ("M", "Black or Black British - Caribbean"),
    ("N", "Black or Black British - African"),
    ("P", "Black or Black British - Any other Black background"),
    ("R", "Other Ethnic Groups - Chinese"),
    ("S", "Other Ethnic Groups - Any other ethnic group"),
    ("Z", "Not stated"),
];

/// Canonical URLs of the PQOM definitions the samples use.
pub fn url(kind: &str, id: &str) -> String {
    format!("{CANONICAL_BASE}/{kind}/{id}")
}

/// Who reports which month, and the seed of the counts.
#[derive(Debug, Clone)]
pub struct ReportParams {
    /// ODS code of the trust (e.g. `RCX`, The Queen Elizabeth Hospital King's Lynn).
    pub ods: String,
    pub trust_name: String,
    pub year: i32,
    /// 1..=12.
    pub month: u32,
    pub seed: u64,
}

impl Default for ReportParams {
    fn default() -> Self {
        ReportParams {
            ods: "RCX".into(),
            trust_name: "The Queen Elizabeth Hospital King's Lynn NHS Foundation Trust".into(),
            year: 2026,
            month: 10,
            seed: 1,
        }
    }
}

/// splitmix64: tiny, deterministic, good enough to spread counts.
struct Counts(u64);

impl Counts {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// (numerator, denominator) with numerator <= denominator.
    fn pair(&mut self, max_den: u64) -> (u64, u64) {
        let den = self.next() % (max_den + 1);
        let num = if den == 0 {
            0
        } else {
            self.next() % (den / 4 + 1)
        };
        (num, den)
    }
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

fn coding(system: &str, code: &str) -> Value {
    json!({ "coding": [{ "system": system, "code": code }] })
}

fn coding_display(system: &str, code: &str, display: &str) -> Value {
    json!({ "coding": [{ "system": system, "code": code, "display": display }] })
}

fn populations(num: u64, den: u64) -> Value {
    json!([
        { "code": coding(MEASURE_POPULATION_SYSTEM, "numerator"), "count": num },
        { "code": coding(MEASURE_POPULATION_SYSTEM, "denominator"), "count": den },
    ])
}

/// The reference report: one trust-month `pqom-annex1` MeasureReport, 12 indicator groups, each
/// stratified by ethnic category (17) and IMD decile (10), numerator and denominator everywhere.
/// Group totals are the sums of each stratifier's strata, as the gateway checks.
pub fn reference_report(p: &ReportParams) -> Value {
    let mut rng = Counts(p.seed);
    let last = days_in_month(p.year, p.month);
    let groups: Vec<Value> = REFERENCE_INDICATORS
        .iter()
        .map(|code| {
            let ethnic: Vec<(u64, u64)> = ETHNIC_CATEGORIES.iter().map(|_| rng.pair(60)).collect();
            let (num, den) = ethnic
                .iter()
                .fold((0, 0), |(n, d), (a, b)| (n + a, d + b));
            // IMD strata partition the same births: split the denominator by random weights, then the
            // numerator in proportion, topping up greedily (never above a stratum's denominator).
            let weights: Vec<u64> = (0..10).map(|_| rng.next() % 100 + 1).collect();
            let wsum: u64 = weights.iter().sum();
            let mut dens: Vec<u64> = weights.iter().map(|w| den * w / wsum).collect();
            dens[9] += den - dens.iter().sum::<u64>();
            let mut nums: Vec<u64> = dens.iter().map(|d| (num * d).checked_div(den).unwrap_or(0)).collect();
            let mut rest = num - nums.iter().sum::<u64>();
            for (n, d) in nums.iter_mut().zip(&dens) {
                let add = rest.min(d - *n);
                *n += add;
                rest -= add;
            }
            let imd: Vec<(u64, u64)> = nums.into_iter().zip(dens).collect();
            let ethnic_strata: Vec<Value> = ETHNIC_CATEGORIES
                .iter()
                .zip(&ethnic)
                .map(|((c, display), (n, d))| {
                    json!({
                        "value": coding_display(ETHNIC_CATEGORY_SYSTEM, c, display),
                        "population": populations(*n, *d),
                    })
                })
                .collect();
            let imd_strata: Vec<Value> = imd
                .iter()
                .enumerate()
                .map(|(i, (n, d))| {
                    let decile = (i + 1).to_string();
                    let display = match i {
                        0 => "IMD decile 1 (most deprived)".to_owned(),
                        9 => "IMD decile 10 (least deprived)".to_owned(),
                        _ => format!("IMD decile {decile}"),
                    };
                    json!({
                        "value": coding_display(&url("CodeSystem", "imd-decile"), &decile, &display),
                        "population": populations(*n, *d),
                    })
                })
                .collect();
            json!({
                "code": coding(&url("CodeSystem", "pqom-indicator"), code),
                "population": populations(num, den),
                "stratifier": [
                    { "code": [coding(&url("CodeSystem", "pqom-stratifier"), "ethnic-category")], "stratum": ethnic_strata },
                    { "code": [coding(&url("CodeSystem", "pqom-stratifier"), "imd-decile")], "stratum": imd_strata },
                ],
            })
        })
        .collect();
    json!({
        "resourceType": "MeasureReport",
        "id": format!("{}-{}-{:02}", p.ods.to_lowercase(), p.year, p.month),
        "meta": { "profile": [url("StructureDefinition", "pqom-trust-measurereport")] },
        "identifier": [{
            "system": format!("{CANONICAL_BASE}/Id/report-id"),
            "value": format!("{}-pqom-annex1-{}-{:02}", p.ods, p.year, p.month),
        }],
        "status": "complete",
        "type": "summary",
        "measure": url("Measure", "pqom-annex1"),
        "date": format!("{}-{:02}-05T09:00:00Z", if p.month == 12 { p.year + 1 } else { p.year }, p.month % 12 + 1),
        "reporter": {
            "identifier": { "system": ODS_ORG_SYSTEM, "value": p.ods },
            "display": p.trust_name,
        },
        "period": {
            "start": format!("{}-{:02}-01", p.year, p.month),
            "end": format!("{}-{:02}-{last:02}", p.year, p.month),
        },
        "group": groups,
    })
}

/// A deterministic `urn:uuid` from a name, so message bundles are byte-stable across runs.
fn urn(seed: u64, name: &str) -> String {
    let mut rng = Counts(
        seed ^ name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
        }),
    );
    let (a, b) = (rng.next(), rng.next());
    // Version 4 / variant 1 bits, as a random UUID would have.
    let a = (a & 0xffff_ffff_ffff_0fff) | 0x4000;
    let b = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    format!(
        "urn:uuid:{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xffff,
        b >> 48,
        b & 0xffff_ffff_ffff
    )
}

/// A full submission: a FHIR message Bundle (MessageHeader with event `pqom-submission` first,
/// focus = the reference report, sender = the trust Organization identified by ODS code).
pub fn submission_bundle(p: &ReportParams) -> Value {
    let header_id = urn(p.seed, "header");
    let report_id = urn(p.seed, "report");
    let org_id = urn(p.seed, "organization");
    let mut report = reference_report(p);
    report["reporter"]["reference"] = json!(org_id);
    let timestamp = report["date"].clone();
    json!({
        "resourceType": "Bundle",
        "id": format!("{}-submission", report["id"].as_str().unwrap_or("report")),
        "meta": { "profile": [url("StructureDefinition", "pqom-submission-bundle")] },
        "identifier": { "system": "urn:ietf:rfc:3986", "value": urn(p.seed, "bundle") },
        "type": "message",
        "timestamp": timestamp,
        "entry": [
            {
                "fullUrl": header_id,
                "resource": {
                    "resourceType": "MessageHeader",
                    "id": header_id.trim_start_matches("urn:uuid:"),
                    "meta": { "profile": [url("StructureDefinition", "pqom-messageheader")] },
                    "eventCoding": {
                        "system": url("CodeSystem", "pqom-message-event"),
                        "code": "pqom-submission",
                        "display": "PQOM submission",
                    },
                    "destination": [{ "name": "PQOM gateway", "endpoint": format!("{CANONICAL_BASE}/fhir") }],
                    "sender": { "reference": org_id, "identifier": { "system": ODS_ORG_SYSTEM, "value": p.ods } },
                    "source": {
                        "name": "Maternity EPR",
                        "software": "Reference EPR",
                        "version": "1.0",
                        "endpoint": format!("https://epr.{}.nhs.example/fhir", p.ods.to_lowercase()),
                    },
                    "focus": [{ "reference": report_id }],
                },
            },
            { "fullUrl": report_id, "resource": report },
            {
                "fullUrl": org_id,
                "resource": {
                    "resourceType": "Organization",
                    "id": p.ods.to_lowercase(),
                    "identifier": [{ "system": ODS_ORG_SYSTEM, "value": p.ods }],
                    "active": true,
                    "name": p.trust_name,
                },
            },
        ],
    })
}

/// The reference report as the bytes benchmarks and peers read (compact JSON).
pub fn reference_report_bytes() -> Vec<u8> {
    to_bytes(&reference_report(&ReportParams::default()))
}

/// The reference submission message as bytes (compact JSON).
pub fn submission_bundle_bytes() -> Vec<u8> {
    to_bytes(&submission_bundle(&ReportParams::default()))
}

fn to_bytes(v: &Value) -> Vec<u8> {
    // Serialising a Value built here cannot fail (string keys only).
    serde_json::to_vec(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(pop: &Value, which: &str) -> u64 {
        pop.as_array()
            .unwrap()
            .iter()
            .find(|p| p["code"]["coding"][0]["code"] == which)
            .unwrap()["count"]
            .as_u64()
            .unwrap()
    }

    #[test]
    fn reference_report_has_the_documented_shape_and_size() {
        let r = reference_report(&ReportParams::default());
        let groups = r["group"].as_array().unwrap();
        assert_eq!(groups.len(), 12);
        for g in groups {
            let s = g["stratifier"].as_array().unwrap();
            assert_eq!(s[0]["stratum"].as_array().unwrap().len(), 17);
            assert_eq!(s[1]["stratum"].as_array().unwrap().len(), 10);
            for stratifier in s {
                let (mut n, mut d) = (0, 0);
                for st in stratifier["stratum"].as_array().unwrap() {
                    let (sn, sd) = (
                        count(&st["population"], "numerator"),
                        count(&st["population"], "denominator"),
                    );
                    assert!(sn <= sd, "numerator above denominator in {st}");
                    n += sn;
                    d += sd;
                }
                assert_eq!(
                    n,
                    count(&g["population"], "numerator"),
                    "strata sum to the group numerator"
                );
                assert_eq!(
                    d,
                    count(&g["population"], "denominator"),
                    "strata sum to the group denominator"
                );
            }
        }
        let len = reference_report_bytes().len();
        assert!((120_000..170_000).contains(&len), "about 145 KB, got {len}");
    }

    #[test]
    fn samples_are_deterministic_and_seeded() {
        assert_eq!(reference_report_bytes(), reference_report_bytes());
        assert_eq!(submission_bundle_bytes(), submission_bundle_bytes());
        let other = ReportParams {
            seed: 2,
            ..Default::default()
        };
        assert_ne!(
            reference_report(&other),
            reference_report(&ReportParams::default())
        );
    }

    #[test]
    fn submission_message_references_resolve_inside_the_bundle() {
        let b = submission_bundle(&ReportParams::default());
        let entries = b["entry"].as_array().unwrap();
        assert_eq!(entries[0]["resource"]["resourceType"], "MessageHeader");
        assert_eq!(
            entries[0]["resource"]["eventCoding"]["code"],
            "pqom-submission"
        );
        let full_urls: Vec<&str> = entries
            .iter()
            .map(|e| e["fullUrl"].as_str().unwrap())
            .collect();
        let focus = entries[0]["resource"]["focus"][0]["reference"]
            .as_str()
            .unwrap();
        let sender = entries[0]["resource"]["sender"]["reference"]
            .as_str()
            .unwrap();
        assert_eq!(
            entries[full_urls.iter().position(|u| *u == focus).unwrap()]["resource"]["resourceType"],
            "MeasureReport"
        );
        assert_eq!(
            entries[full_urls.iter().position(|u| *u == sender).unwrap()]["resource"]["resourceType"],
            "Organization"
        );
        assert!(
            full_urls
                .iter()
                .all(|u| u.len() == 45 && u.starts_with("urn:uuid:"))
        );
    }

    #[test]
    fn period_covers_the_whole_month() {
        let feb = reference_report(&ReportParams {
            year: 2028,
            month: 2,
            ..Default::default()
        });
        assert_eq!(feb["period"]["end"], "2028-02-29");
        let dec = reference_report(&ReportParams {
            month: 12,
            ..Default::default()
        });
        assert_eq!(dec["date"], "2027-01-05T09:00:00Z");
    }
}
