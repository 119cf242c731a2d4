//! Shared fixtures for the deliver tests and the signing bench: the reference report of
//! docs/CONVENTIONS.md (12 groups, each stratified by ethnic category (17) and IMD decile (10),
//! numerator and denominator everywhere, about 145 KB) and a signed forwarded bundle around it.
#![allow(dead_code)]

use std::path::Path;

use pqom_gateway::deliver::canonical::Json;
use pqom_gateway::deliver::directory::{Directory, Route};
use pqom_gateway::deliver::forward::{
    self, Destination, ForwardInput, ForwardResource, Submission,
};
use pqom_gateway::deliver::keys::SigningKey;
use pqom_gateway::deliver::provenance::Gateway;
use serde_json::{Value, json};

const BASE: &str = "https://fhir.pqom-gateway.org";
use pqom_gateway::samples::REFERENCE_INDICATORS as INDICATORS;
const ETHNIC: [&str; 17] = [
    "A", "B", "C", "D", "E", "F", "G", "H", "J", "K", "L", "M", "N", "P", "R", "S", "Z",
];

fn populations(num: u64, den: u64) -> Value {
    let pop = |code: &str, count: u64| {
        json!({
            "code": { "coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/measure-population",
                "code": code
            }]},
            "count": count
        })
    };
    json!([pop("numerator", num), pop("denominator", den)])
}

/// The reference trust-month report as compact JSON text (what a trust would send).
/// Every group's measureScore is written with three decimals (`0.750` style) so that
/// decimal precision is exercised.
pub fn reference_report(trust: &str) -> Vec<u8> {
    let mut groups = Vec::new();
    for (g, code) in INDICATORS.iter().enumerate() {
        let strat = |strat_code: &str, system: &str, values: Vec<String>| {
            let strata: Vec<Value> = values
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let den = 40 + ((g * 7 + i * 13) % 60) as u64;
                    json!({
                        "value": { "coding": [{ "system": system, "code": v }] },
                        "population": populations(den / 10, den)
                    })
                })
                .collect();
            json!({
                "code": [{ "coding": [{
                    "system": format!("{BASE}/CodeSystem/pqom-stratifier"),
                    "code": strat_code
                }]}],
                "stratum": strata
            })
        };
        groups.push(json!({
            "code": { "coding": [{ "system": format!("{BASE}/CodeSystem/pqom-indicator"), "code": code }] },
            "population": populations(30 + g as u64, 400),
            "measureScore": { "value": "__SCORE__" },
            "stratifier": [
                strat(
                    "ethnic-category",
                    "https://fhir.hl7.org.uk/CodeSystem/UKCore-EthnicCategoryEngland",
                    ETHNIC.iter().map(|s| s.to_string()).collect(),
                ),
                strat(
                    "imd-decile",
                    &format!("{BASE}/CodeSystem/imd-decile"),
                    (1..=10).map(|d| d.to_string()).collect(),
                ),
            ]
        }));
    }
    let report = json!({
        "resourceType": "MeasureReport",
        "meta": { "profile": [format!("{BASE}/StructureDefinition/pqom-trust-measurereport")] },
        "identifier": [{ "system": "https://trust.example.nhs.uk/Id/pqom-report", "value": format!("{trust}-2026-10") }],
        "status": "complete",
        "type": "summary",
        "measure": format!("{BASE}/Measure/pqom-annex1"),
        "reporter": { "identifier": { "system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": trust } },
        "date": "2026-11-05T09:30:00Z",
        "period": { "start": "2026-10-01", "end": "2026-10-31" },
        "group": groups
    });
    // Compact, resourceType first, as an EPR would typically send it.
    let text = String::from_utf8(Json::from_fhir_value(&report).to_compact()).unwrap();
    text.replace("\"__SCORE__\"", "0.750").into_bytes()
}

/// A submission message Bundle around a report (the "bytes as received").
pub fn submission(report: &[u8]) -> Vec<u8> {
    let mut out = br#"{"resourceType":"Bundle","type":"message","entry":[{"fullUrl":"urn:uuid:9b1d3c1e-0000-4000-8000-000000000001","resource":{"resourceType":"MessageHeader","id":"msg-0001","eventCoding":{"system":"https://fhir.pqom-gateway.org/CodeSystem/pqom-message-event","code":"pqom-submission"}}},{"fullUrl":"urn:uuid:9b1d3c1e-0000-4000-8000-000000000002","resource":"#.to_vec();
    out.extend_from_slice(report);
    out.extend_from_slice(b"}]}\n");
    out
}

/// Routing, gateway and destination for trust RM1 (loaded once).
pub struct Fixture {
    pub route: Route,
    pub gateway: Gateway,
    pub destination: Destination,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = Directory::load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("mappings/organisations.toml"),
        )
        .unwrap();
        Fixture {
            route: dir.route("RM1").unwrap(),
            gateway: Gateway::new("https://pqom.example.nhs.uk/fhir", "test"),
            destination: Destination {
                name: "Norfolk and Waveney ICB".into(),
                endpoint: "https://icb.example.nhs.uk/fhir/$process-message".into(),
                receiver_ods: Some("QMM".into()),
            },
        }
    }

    /// A signed forwarded bundle carrying `report` as MeasureReport/mr-1 version `version`,
    /// and the submission it came from.
    pub fn forward(&self, key: &SigningKey, report: &[u8], version: &str) -> (Vec<u8>, Vec<u8>) {
        let submission = submission(report);
        let resources = [ForwardResource {
            resource_type: "MeasureReport".into(),
            id: "mr-1".into(),
            version_id: version.into(),
            last_updated: Some("2026-11-05T09:30:01.000Z".into()),
            json: report.to_vec(),
        }];
        let input = ForwardInput {
            bundle_id: uuid::Uuid::new_v4(),
            submission: Submission {
                body: &submission,
                message_id: "msg-0001",
            },
            resources: &resources,
            indicators: &[],
            route: &self.route,
            destination: &self.destination,
            gateway: &self.gateway,
            now: time::OffsetDateTime::now_utc(),
        };
        (forward::build(&input, key).unwrap().body, submission)
    }
}

/// [`Fixture::forward`] with a fresh fixture.
pub fn forwarded(key: &SigningKey, report: &[u8], version: &str) -> (Vec<u8>, Vec<u8>) {
    Fixture::new().forward(key, report, version)
}
