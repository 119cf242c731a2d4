//! Round trips of R4 (4.0.1) example JSON through the R4B models, proving that the elements
//! this module builds mean the same in both versions, and responses built here are well-formed.

use std::path::Path;

use fhir_sdk::r4b::resources::Resource;
use serde_json::{Value, json};

use super::*;
use crate::fhir::{Issue, IssueType};

/// Differences between two JSON trees; numbers compare by value (R4B models hold decimals as
/// f64, so `0.750` comes back as `0.75`: same number, different text — one reason received JSON
/// is never re-serialised through these types).
fn diff(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                match y.get(k) {
                    Some(w) => diff(&format!("{path}.{k}"), v, w, out),
                    None => out.push(format!("{path}.{k} dropped")),
                }
            }
            for k in y.keys().filter(|k| !x.contains_key(*k)) {
                out.push(format!("{path}.{k} added"));
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                diff(&format!("{path}[{i}]"), v, w, out);
            }
        }
        (Value::Number(x), Value::Number(y)) if x.as_f64() == y.as_f64() => {}
        _ if a == b => {}
        _ => out.push(format!("{path}: {a} became {b}")),
    }
}

fn round_trip(original: &Value) -> Vec<String> {
    let typed: Resource = match serde_json::from_value(original.clone()) {
        Ok(t) => t,
        Err(e) => return vec![format!("does not parse as R4B: {e}")],
    };
    let back = serde_json::to_value(&typed).expect("serialises");
    let mut out = Vec::new();
    diff("", original, &back, &mut out);
    out
}

fn fixture(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/r4")
        .join(name);
    serde_json::from_slice(&std::fs::read(&path).expect("fixture")).expect("fixture is JSON")
}

#[test]
fn r4_examples_round_trip_through_r4b_models() {
    let mut failures = Vec::new();
    for name in [
        "measurereport-mr-covid-mr1.json",
        "messageheader-example.json",
        "operationoutcome-mr-covid-m.json",
        "bundle-message-pqom-submission.json",
    ] {
        let diffs = round_trip(&fixture(name));
        if !diffs.is_empty() {
            failures.push(format!("{name}: {diffs:#?}"));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn what_does_not_round_trip_closed_enums_and_missing_required_elements_fail_to_parse() {
    // R4 `Expression.language` has an extensible binding; the R4B model makes it a closed enum,
    // so a real R4 Measure using `text/plain` does not parse at all.
    let diffs = round_trip(&fixture("bundle-mr-covid-bnd1.json"));
    assert_eq!(
        diffs,
        vec!["does not parse as R4B: Unknown value: text/plain".to_owned()]
    );
    // A required element missing (`Expression.language`, 1..1 in R4 and R4B) is a parse error,
    // where a validator would give an issue with a location.
    let diffs = round_trip(&fixture("measure-mr-covid-m.json"));
    assert_eq!(
        diffs,
        vec!["does not parse as R4B: missing field `language`".to_owned()]
    );
}

#[test]
fn what_does_not_round_trip_unknown_elements_are_dropped() {
    // Documented hazard: an element R4B does not know (here a typo a validator must report) is
    // silently dropped by the typed models.
    let report = json!({"resourceType": "MeasureReport", "status": "complete", "type": "summary",
        "measure": "https://fhir.pqom-gateway.org/Measure/pqom-annex1",
        "period": {"start": "2026-10-01"}, "statuss": "final"});
    assert_eq!(round_trip(&report), vec![".statuss dropped".to_owned()]);
}

#[test]
fn operation_outcome_matches_the_shared_issue_model() {
    let outcome = Outcome::new(vec![
        Issue::error(IssueType::NotFound, "focus does not resolve")
            .at("Bundle.entry[0].resource.focus[1]"),
        Issue::warning(IssueType::Value, "odd").from_rule(
            "https://fhir.pqom-gateway.org/StructureDefinition/pqom-trust-measurereport",
            "MeasureReport.group.code",
        ),
    ]);
    let typed = serde_json::to_value(operation_outcome(&outcome, None).unwrap()).unwrap();
    assert_eq!(typed, outcome.to_json());
    let ok = serde_json::to_value(operation_outcome(&Outcome::default(), None).unwrap()).unwrap();
    assert_eq!(ok, Outcome::default().to_json());
}

#[test]
fn response_message_answers_the_request() {
    let outcome = Outcome::single(Issue::information(IssueType::Informational, "stored"));
    let bundle = response_message(&ResponseMessage {
        request_id: "req-1",
        event: Some(ResponseEvent::Coding(json!({"system": "https://fhir.pqom-gateway.org/CodeSystem/pqom-message-event", "code": "pqom-submission"}))),
        destination: Some("https://epr.trust.example/fhir"),
        source_endpoint: "http://localhost:8080/fhir",
        code: ResponseCode::Ok,
        outcome: &outcome,
        timestamp: OffsetDateTime::now_utc(),
    })
    .unwrap();
    assert_eq!(bundle["type"], "message");
    let header = &bundle["entry"][0]["resource"];
    assert_eq!(header["resourceType"], "MessageHeader");
    assert_eq!(header["response"]["identifier"], "req-1");
    assert_eq!(header["response"]["code"], "ok");
    assert_eq!(header["eventCoding"]["code"], "pqom-submission");
    assert_eq!(
        header["destination"][0]["endpoint"],
        "https://epr.trust.example/fhir"
    );
    assert_eq!(
        header["response"]["details"]["reference"],
        bundle["entry"][1]["fullUrl"]
    );
    assert_eq!(
        bundle["entry"][1]["resource"]["resourceType"],
        "OperationOutcome"
    );
    // What we build parses back unchanged: it is well-formed R4B (and so R4) JSON.
    assert!(round_trip(&bundle).is_empty());
}

#[test]
fn capability_statement_is_r4() {
    let cs = capability_statement(&Capabilities {
        base_url: "http://localhost:8080/fhir".into(),
        resources: vec![ResourceCapability {
            resource_type: "MeasureReport",
            supported_profiles: vec![
                "https://fhir.pqom-gateway.org/StructureDefinition/pqom-trust-measurereport".into(),
            ],
            interactions: vec!["read", "create"],
            conditional_create: true,
            search_params: vec![("period", "date", "MeasureReport.period")],
            operations: vec![],
        }],
        operations: vec![(
            "process-message",
            "http://hl7.org/fhir/OperationDefinition/MessageHeader-process-message",
        )],
        supported_messages: vec![],
        messaging_endpoint: Some("http://localhost:8080/fhir/$process-message".into()),
    })
    .unwrap();
    assert_eq!(cs["fhirVersion"], "4.0.1");
    assert_eq!(cs["kind"], "instance");
    assert_eq!(cs["rest"][0]["resource"][0]["type"], "MeasureReport");
    assert_eq!(
        cs["rest"][0]["resource"][0]["searchParam"][0]["type"],
        "date"
    );
    assert!(round_trip(&cs).is_empty());
}

#[test]
fn stored_entries_are_spliced_in_unchanged() {
    let stored = json!({"fullUrl": "http://x/fhir/MeasureReport/1", "resource": {"resourceType": "MeasureReport", "unknownToR4B": 0.750}});
    let b = bundle_of_stored(
        BundleKind::Searchset,
        Some(1),
        &[("self", "http://x/fhir/MeasureReport".into())],
        vec![stored.clone()],
    )
    .unwrap();
    assert_eq!(b["entry"][0], stored);
    assert_eq!(b["total"], 1);
    assert_eq!(b["link"][0]["relation"], "self");
}
