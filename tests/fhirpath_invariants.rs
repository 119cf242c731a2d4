//! FHIRPath against the FHIR R4 core invariants: every distinct invariant expression of the base
//! resources and datatypes (extracted into `tests/fixtures/fhirpath/r4-invariants.json` by
//! `examples/fhirpath_invariants.rs`) parses and evaluates without an unsupported function, and the
//! invariants the gateway meets most (ele-1, ext-1, dom-*, mrp-*, bdl-*, and the datatype ones) give
//! the right answer on passing and failing resources.

use std::path::Path;

use pqom_gateway::validate::fhirpath::{EvalContext, EvalError, Expr, Item};
use serde_json::{Value, json};

fn fixture() -> Vec<Value> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fhirpath/r4-invariants.json");
    serde_json::from_slice(&std::fs::read(path).expect("fixture")).expect("fixture JSON")
}

fn invariant(key: &str) -> Expr {
    let all = fixture();
    let inv = all
        .iter()
        .find(|i| i["key"] == key)
        .unwrap_or_else(|| panic!("no invariant {key}"));
    Expr::parse(inv["expression"].as_str().unwrap()).unwrap()
}

/// Evaluates `key` on `focus` inside `resource` (the focus is the resource itself when `path` is empty,
/// else each node `path` selects) and returns the boolean per node.
fn check(key: &str, resource: &Value, path: &str) -> Vec<Option<bool>> {
    let expr = invariant(key);
    let locator = Expr::parse(if path.is_empty() { "$this" } else { path }).unwrap();
    let ctx = EvalContext::new()
        .with_resource(resource)
        .with_root_resource(resource);
    let nodes: Vec<Item<'_, Value>> = locator
        .evaluate(&ctx, resource)
        .unwrap()
        .iter()
        .cloned()
        .collect();
    assert!(!nodes.is_empty(), "{path} selects nothing");
    nodes
        .into_iter()
        .map(|n| {
            expr.evaluate_item(&ctx, n)
                .unwrap_or_else(|e| panic!("{key}: {e}"))
                .as_boolean()
                .unwrap()
        })
        .collect()
}

fn holds(key: &str, resource: &Value, path: &str) -> bool {
    check(key, resource, path).iter().all(|r| *r != Some(false))
}

fn sample(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fhirpath/samples")
        .join(name);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn every_core_invariant_parses_with_no_unsupported_function() {
    let all = fixture();
    assert!(all.len() >= 200, "fixture holds {} invariants", all.len());
    for inv in &all {
        let text = inv["expression"].as_str().unwrap();
        let expr = Expr::parse(text).unwrap_or_else(|e| panic!("{}: {e}", inv["key"]));
        assert!(
            expr.unsupported_functions().is_empty(),
            "{} uses {:?}",
            inv["key"],
            expr.unsupported_functions()
        );
    }
}

#[test]
fn every_core_invariant_evaluates_on_the_samples_without_unsupported_errors() {
    let samples = [
        "measurereport-trust.json",
        "submission-bundle.json",
        "observation-bp.json",
    ];
    let all = fixture();
    let descendants = Expr::parse("descendants()").unwrap();
    for s in samples {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/fhirpath/samples")
                .join(s),
        )
        .unwrap();
        // Both parse trees the validator may use.
        let serde: Value = serde_json::from_str(&text).unwrap();
        let sonic: sonic_rs::Value = sonic_rs::from_str(&text).unwrap();
        let ctx = EvalContext::new().with_resource(&serde);
        let sctx = EvalContext::new().with_resource(&sonic);
        let nodes = descendants.evaluate(&ctx, &serde).unwrap();
        let snodes = descendants.evaluate(&sctx, &sonic).unwrap();
        assert_eq!(nodes.len(), snodes.len());
        for inv in &all {
            let expr = Expr::parse(inv["expression"].as_str().unwrap()).unwrap();
            let mut from_serde = Vec::new();
            let mut from_sonic = Vec::new();
            for (a, b) in nodes.iter().zip(snodes.iter()) {
                let ra = expr.evaluate_item(&ctx, a.clone());
                let rb = expr.evaluate_item(&sctx, b.clone());
                if let Err(EvalError::UnsupportedFunction { name }) = &ra {
                    panic!("{} needs {name}()", inv["key"]);
                }
                from_serde.push(ra.map(|c| c.to_strings()).ok());
                from_sonic.push(rb.map(|c| c.to_strings()).ok());
            }
            // The two trees must give the same answers. serde_json (without `preserve_order`) walks
            // object fields sorted by name, sonic-rs in document order, so compare as multisets.
            from_serde.sort();
            from_sonic.sort();
            assert_eq!(from_serde, from_sonic, "{} on {s}", inv["key"]);
        }
    }
}

#[test]
fn ele_1_elements_need_a_value_or_children() {
    let r = json!({"resourceType": "Patient", "meta": {"id": "m"}, "name": [{"family": "A"}],
                   "extension": []});
    assert_eq!(check("ele-1", &r, "meta"), vec![Some(false)]);
    assert_eq!(check("ele-1", &r, "name"), vec![Some(true)]);
    assert_eq!(check("ele-1", &r, "name.family"), vec![Some(true)]);
    let ok = json!({"resourceType": "Patient", "meta": {"versionId": "1"}});
    assert_eq!(check("ele-1", &ok, "meta"), vec![Some(true)]);
    // A primitive with only an extension has children; one with only an id does not.
    let p = json!({"resourceType": "Patient", "_gender": {"extension": [{"url": "u", "valueString": "x"}]},
                   "_birthDate": {"id": "b"}});
    assert_eq!(check("ele-1", &p, "gender"), vec![Some(true)]);
    assert_eq!(check("ele-1", &p, "birthDate"), vec![Some(false)]);
}

#[test]
fn ext_1_extension_or_value_not_both() {
    let r = json!({"resourceType": "Patient", "extension": [
        {"url": "a", "valueString": "x"},
        {"url": "b", "extension": [{"url": "c", "valueCode": "y"}]},
        {"url": "d", "valueString": "x", "extension": [{"url": "e", "valueCode": "y"}]},
        {"url": "f"}
    ]});
    assert_eq!(
        check("ext-1", &r, "extension"),
        vec![Some(true), Some(true), Some(false), Some(false)]
    );
}

#[test]
fn dom_invariants_on_contained_resources() {
    let good = sample("measurereport-trust.json");
    for key in ["dom-2", "dom-3", "dom-4", "dom-5", "dom-6"] {
        assert!(holds(key, &good, ""), "{key} on the sample report");
    }
    let nested = json!({"resourceType": "MeasureReport", "contained": [
        {"resourceType": "Organization", "id": "o", "contained": [{"resourceType": "Location", "id": "l"}]}],
        "reporter": {"reference": "#o"}});
    assert!(!holds("dom-2", &nested, ""));

    let unreferenced = json!({"resourceType": "MeasureReport",
        "contained": [{"resourceType": "Organization", "id": "o"}],
        "reporter": {"reference": "Organization/elsewhere"}});
    assert!(!holds("dom-3", &unreferenced, ""));
    // Referenced through a canonical rather than a Reference.
    let canonical = json!({"resourceType": "MeasureReport", "measure": "#m",
        "contained": [{"resourceType": "Measure", "id": "m", "status": "active"}]});
    assert!(holds("dom-3", &canonical, ""));
    // A contained resource that points back at its container with `#`.
    let back = json!({"resourceType": "MeasureReport",
        "contained": [{"resourceType": "Provenance", "id": "p", "target": [{"reference": "#"}]}]});
    assert!(holds("dom-3", &back, ""));

    let versioned = json!({"resourceType": "MeasureReport", "reporter": {"reference": "#o"},
        "contained": [{"resourceType": "Organization", "id": "o", "meta": {"versionId": "2"}}]});
    assert!(!holds("dom-4", &versioned, ""));
    let labelled = json!({"resourceType": "MeasureReport", "reporter": {"reference": "#o"},
        "contained": [{"resourceType": "Organization", "id": "o",
                       "meta": {"security": [{"system": "http://terminology.hl7.org/CodeSystem/v3-Confidentiality", "code": "R"}]}}]});
    assert!(!holds("dom-5", &labelled, ""));
    let no_text = json!({"resourceType": "MeasureReport", "status": "complete"});
    assert!(!holds("dom-6", &no_text, ""));
}

#[test]
fn measure_report_invariants() {
    let good = sample("measurereport-trust.json");
    assert!(holds("mrp-1", &good, ""));
    assert!(holds("mrp-2", &good, ""));
    let data_collection = json!({"resourceType": "MeasureReport", "type": "data-collection",
        "group": [{"population": [{"count": 1}]}]});
    assert!(!holds("mrp-1", &data_collection, ""));
    let both = json!({"resourceType": "MeasureReport", "type": "summary", "group": [{"stratifier": [{"stratum": [
        {"value": {"text": "x"}, "component": [{"code": {"text": "c"}, "value": {"text": "v"}}]}]}]}]});
    assert!(!holds("mrp-2", &both, ""));
    let neither = json!({"resourceType": "MeasureReport", "type": "summary",
        "group": [{"stratifier": [{"stratum": [{"population": [{"count": 1}]}]}]}]});
    assert!(!holds("mrp-2", &neither, ""));
}

#[test]
fn bundle_invariants() {
    let msg = sample("submission-bundle.json");
    for key in [
        "bdl-1", "bdl-2", "bdl-3", "bdl-4", "bdl-7", "bdl-9", "bdl-10", "bdl-11", "bdl-12",
    ] {
        assert!(holds(key, &msg, ""), "{key} on the sample message");
    }
    assert!(holds("bdl-5", &msg, "entry"));
    assert!(holds("bdl-8", &msg, "entry"));

    let first_not_header = json!({"resourceType": "Bundle", "type": "message", "entry": [
        {"resource": {"resourceType": "MeasureReport"}}, {"resource": {"resourceType": "MessageHeader"}}]});
    assert!(!holds("bdl-12", &first_not_header, ""));
    let total_on_collection = json!({"resourceType": "Bundle", "type": "collection", "total": 3});
    assert!(!holds("bdl-1", &total_on_collection, ""));
    let search_on_message = json!({"resourceType": "Bundle", "type": "message",
        "entry": [{"resource": {"resourceType": "MessageHeader"}, "search": {"mode": "match"}}]});
    assert!(!holds("bdl-2", &search_on_message, ""));
    let no_request = json!({"resourceType": "Bundle", "type": "transaction",
        "entry": [{"resource": {"resourceType": "Patient"}}]});
    assert!(!holds("bdl-3", &no_request, ""));
    let dup = json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient"}},
        {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient"}}]});
    assert!(!holds("bdl-7", &dup, ""));
    let versioned_dups = json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient", "meta": {"versionId": "1"}}},
        {"fullUrl": "urn:uuid:1", "resource": {"resourceType": "Patient", "meta": {"versionId": "2"}}}]});
    assert!(holds("bdl-7", &versioned_dups, ""));
    let history_url = json!({"resourceType": "Bundle", "type": "collection", "entry": [
        {"fullUrl": "http://x/Patient/1/_history/2", "resource": {"resourceType": "Patient"}}]});
    assert_eq!(check("bdl-8", &history_url, "entry"), vec![Some(false)]);
    let empty_entry = json!({"resourceType": "Bundle", "type": "collection", "entry": [{"fullUrl": "urn:uuid:1"}]});
    assert_eq!(check("bdl-5", &empty_entry, "entry"), vec![Some(false)]);
    let doc = json!({"resourceType": "Bundle", "type": "document", "timestamp": "2026-01-01T00:00:00Z",
        "identifier": {"system": "urn:ietf:rfc:3986", "value": "urn:uuid:d"},
        "entry": [{"resource": {"resourceType": "Composition"}}]});
    for key in ["bdl-9", "bdl-10", "bdl-11"] {
        assert!(holds(key, &doc, ""), "{key}");
    }
    let bad_doc = json!({"resourceType": "Bundle", "type": "document",
        "entry": [{"resource": {"resourceType": "Patient"}}]});
    for key in ["bdl-9", "bdl-10", "bdl-11"] {
        assert!(!holds(key, &bad_doc, ""), "{key}");
    }
}

#[test]
fn datatype_invariants() {
    let obs = sample("observation-bp.json");
    assert!(holds(
        "rng-2",
        &json!({"resourceType": "Observation", "x": {
        "low": {"value": 1, "code": "mg"}, "high": {"value": 2, "code": "mg"}}}),
        "x"
    ));
    assert!(!holds(
        "rng-2",
        &json!({"resourceType": "Observation", "x": {
        "low": {"value": 3, "code": "mg"}, "high": {"value": 2, "code": "mg"}}}),
        "x"
    ));
    // Different units of one dimension are converted.
    assert!(!holds(
        "rng-2",
        &json!({"resourceType": "Observation", "x": {
        "low": {"value": 3, "code": "g"}, "high": {"value": 2000, "code": "mg"}}}),
        "x"
    ));
    assert!(holds("rng-2", &obs, "referenceRange"));

    let period =
        |s: &str, e: &str| json!({"resourceType": "Encounter", "period": {"start": s, "end": e}});
    assert_eq!(
        check("per-1", &period("2026-01-01", "2026-02-01"), "period"),
        vec![Some(true)]
    );
    assert_eq!(
        check("per-1", &period("2026-03-01", "2026-02-01"), "period"),
        vec![Some(false)]
    );
    assert_eq!(
        check(
            "per-1",
            &period("2026-02-01T10:00:00Z", "2026-02-01T09:00:00-02:00"),
            "period"
        ),
        vec![Some(true)]
    );
    // Same day at different precisions: unknown, which an invariant does not fail on.
    assert_eq!(
        check(
            "per-1",
            &period("2026-02-01", "2026-02-01T10:00:00Z"),
            "period"
        ),
        vec![None]
    );

    let r = json!({"resourceType": "Observation", "contained": [{"resourceType": "Patient", "id": "p"}],
        "subject": {"reference": "#p"}, "performer": [{"reference": "#nope"}]});
    assert_eq!(check("ref-1", &r, "subject"), vec![Some(true)]);
    assert_eq!(check("ref-1", &r, "performer"), vec![Some(false)]);

    assert_eq!(check("txt-1", &obs, "text.div"), vec![Some(true)]);
    let bad = json!({"resourceType": "Observation", "text": {"status": "generated",
        "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><script>alert(1)</script></div>"}});
    assert_eq!(check("txt-1", &bad, "text.div"), vec![Some(false)]);

    let count = |v: Value| json!({"resourceType": "X", "c": v});
    assert!(holds(
        "cnt-3",
        &count(json!({"value": 3, "system": "http://unitsofmeasure.org", "code": "1"})),
        "c"
    ));
    assert!(!holds(
        "cnt-3",
        &count(json!({"value": 3.5, "system": "http://unitsofmeasure.org", "code": "1"})),
        "c"
    ));
    assert!(!holds(
        "cnt-3",
        &count(json!({"value": 3, "system": "http://unitsofmeasure.org", "code": "mg"})),
        "c"
    ));
}
