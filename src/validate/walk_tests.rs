//! Tests of every check the walk makes, each asserting the exact FHIRPath expression.

use serde_json::{Value, json};

use crate::fhir::{Issue, IssueType, Outcome, Severity};
use crate::validate::testkit::{self, PROFILE};

fn run(v: &Value) -> Outcome {
    testkit::validator().validate(v.to_string().as_bytes(), &[])
}

fn errors(o: &Outcome) -> Vec<&Issue> {
    o.issues.iter().filter(|i| i.severity.is_error()).collect()
}

/// The single error at `expr`, with its message containing `needle`.
#[track_caller]
fn assert_error_at(o: &Outcome, expr: &str, needle: &str) -> Issue {
    let hits: Vec<&Issue> = errors(o)
        .into_iter()
        .filter(|i| i.expression.as_deref() == Some(expr))
        .collect();
    assert!(
        hits.iter().any(|i| i.diagnostics.contains(needle)),
        "no error at {expr} containing {needle:?}; issues: {:#?}",
        o.issues
    );
    (*hits
        .iter()
        .find(|i| i.diagnostics.contains(needle))
        .unwrap())
    .clone()
}

#[test]
fn reference_report_is_valid() {
    let o = run(&testkit::reference_report(12));
    assert!(errors(&o).is_empty(), "{:#?}", o.issues);
}

fn report() -> Value {
    testkit::reference_report(3)
}

#[test]
fn load_warnings_list_each_unevaluable_invariant_once() {
    let w = testkit::validator().load_warnings();
    for x in w {
        eprintln!("{x}");
    }
    let mut msgs: Vec<&str> = w.iter().map(|w| w.message.as_str()).collect();
    msgs.sort();
    msgs.dedup();
    assert_eq!(msgs.len(), w.len());
}

#[test]
fn base_invariants_run_through_fhirpath() {
    let mut r = report();
    r["period"]["start"] = json!("2025-05-01");
    r["type"] = json!("data-collection");
    let v = testkit::validator();
    let o = v.validate(r.to_string().as_bytes(), &[]);
    let i = assert_error_at(&o, "MeasureReport.period", "per-1");
    assert_eq!(i.code, IssueType::Invariant);
    assert_eq!(i.element_id.as_deref(), Some("Period"));
    assert_error_at(&o, "MeasureReport", "mrp-1");
}

#[test]
fn invalid_json_is_one_structure_error() {
    let o = testkit::validator().validate(b"{\"resourceType\": ", &[]);
    assert_eq!(o.issues.len(), 1);
    assert_eq!(o.issues[0].code, IssueType::Structure);
    assert!(o.issues[0].diagnostics.contains("not valid JSON"));
}

#[test]
fn unknown_element_names_the_property() {
    let mut r = report();
    r["group"][1]["flavour"] = json!("mint");
    let o = run(&r);
    let i = assert_error_at(
        &o,
        "MeasureReport.group[1].flavour",
        "unknown element 'flavour'",
    );
    assert_eq!(i.code, IssueType::Structure);
}

#[test]
fn missing_required_element() {
    let mut r = report();
    r.as_object_mut().unwrap().remove("status");
    let o = run(&r);
    let i = assert_error_at(
        &o,
        "MeasureReport.status",
        "missing required element 'status'",
    );
    assert_eq!(i.code, IssueType::Required);
    assert_eq!(i.element_id.as_deref(), Some("MeasureReport.status"));
}

#[test]
fn profile_cardinality_and_rule_source() {
    let mut r = report();
    r["reporter"].as_object_mut().unwrap().remove("identifier");
    let o = run(&r);
    let i = assert_error_at(
        &o,
        "MeasureReport.reporter.identifier",
        "missing required element",
    );
    assert_eq!(i.profile.as_deref(), Some(PROFILE));
    assert_eq!(
        i.element_id.as_deref(),
        Some("MeasureReport.reporter.identifier")
    );
}

#[test]
fn too_few_items_in_an_array() {
    let mut r = report();
    r["group"][0]["population"].as_array_mut().unwrap().pop();
    let o = run(&r);
    let i = assert_error_at(&o, "MeasureReport.group[0].population", "has 1 items");
    assert_eq!(i.code, IssueType::Required);
}

#[test]
fn json_shape_arrays_objects_nulls() {
    let mut r = report();
    r["group"][0]["stratifier"][0]["stratum"][0]["population"] = json!({"count": 1});
    r["group"][1]["stratifier"] = json!([]);
    r["period"] = json!([{"start": "2025-04-01"}]);
    r["group"][2]["population"][0]["count"] = Value::Null;
    let o = run(&r);
    assert_error_at(
        &o,
        "MeasureReport.group[0].stratifier[0].stratum[0].population",
        "must be a JSON array",
    );
    assert_error_at(&o, "MeasureReport.group[1].stratifier", "empty array");
    assert_error_at(&o, "MeasureReport.period", "must be a single value");
    assert_error_at(&o, "MeasureReport.group[2].population[0].count", "is null");
}

#[test]
fn null_in_array_and_object_expected() {
    let mut r = report();
    r["group"][0]["stratifier"][1]["stratum"][2]["population"][0] = Value::Null;
    r["group"][0]["code"] = json!("stillbirth-rate");
    let o = run(&r);
    assert_error_at(
        &o,
        "MeasureReport.group[0].stratifier[1].stratum[2].population[0]",
        "null in 'population'",
    );
    assert_error_at(
        &o,
        "MeasureReport.group[0].code",
        "must be a JSON object (CodeableConcept)",
    );
}

#[test]
fn primitive_types_and_formats() {
    let mut r = report();
    r["group"][0]["population"][1]["count"] = json!("6000");
    r["group"][1]["population"][1]["count"] = json!(1.5);
    r["period"]["start"] = json!("2025-02-30");
    r["date"] = json!("2025-05-02T09:30:00");
    r["id"] = json!("bad id!");
    r["group"][2]["measureScore"]["value"] = json!("0.5");
    let o = run(&r);
    assert_error_at(
        &o,
        "MeasureReport.group[0].population[1].count",
        "must be a JSON number",
    );
    assert_error_at(
        &o,
        "MeasureReport.group[1].population[1].count",
        "not a valid integer",
    );
    assert_error_at(&o, "MeasureReport.period.start", "not a valid dateTime");
    assert_error_at(&o, "MeasureReport.date", "must have a time zone");
    assert_error_at(&o, "MeasureReport.id", "not a valid id");
    assert_error_at(
        &o,
        "MeasureReport.group[2].measureScore.value",
        "must be a JSON number",
    );
}

#[test]
fn decimal_text_is_kept_exactly() {
    let mut bytes = report().to_string();
    bytes = bytes.replacen("\"value\":0.007", "\"value\":0.00700000000000000000001", 1);
    let o = testkit::validator().validate(bytes.as_bytes(), &[]);
    assert!(errors(&o).is_empty(), "{:#?}", o.issues);
    let bytes = bytes.replacen("\"count\":6000", "\"count\":6000.0", 1);
    let o = testkit::validator().validate(bytes.as_bytes(), &[]);
    assert_error_at(
        &o,
        "MeasureReport.group[0].population[1].count",
        "whole number",
    );
}

#[test]
fn primitive_companions() {
    let mut r = report();
    r["_status"] = json!({"extension": [{"url": "http://example.org/x", "valueString": "a"}]});
    let o = run(&r);
    assert!(errors(&o).is_empty(), "{:#?}", o.issues);
    let w = o
        .issues
        .iter()
        .find(|i| i.severity == Severity::Warning)
        .unwrap();
    // FHIRPath has no `_status`: the extension is on the primitive itself.
    assert_eq!(
        w.expression.as_deref(),
        Some("MeasureReport.status.extension[0]")
    );
    r["_status"] = json!({"id": "only-id"});
    r.as_object_mut().unwrap().remove("status");
    let o = run(&r);
    assert_error_at(&o, "MeasureReport.status", "ele-1");
    r["_status"] = json!("complete");
    let o = run(&r);
    assert_error_at(
        &o,
        "MeasureReport.status",
        "must be an object with id/extension",
    );
}

#[test]
fn choice_types_one_value_only_and_of_type_paths() {
    let o = run(&json!({
        "resourceType": "Observation", "status": "final",
        "code": {"text": "weight"},
        "valueQuantity": {"value": "70"},
        "valueString": "seventy"
    }));
    assert_error_at(&o, "Observation.valueString", "only one type may be used");
    assert_error_at(
        &o,
        "Observation.value.ofType(Quantity).value",
        "must be a JSON number",
    );
}

#[test]
fn fixed_value_from_profile() {
    let mut r = report();
    r["type"] = json!("individual");
    let o = run(&r);
    let i = assert_error_at(&o, "MeasureReport.type", "fixed value \"summary\"");
    assert_eq!(i.code, IssueType::Value);
    assert_eq!(i.profile.as_deref(), Some(PROFILE));
}

#[test]
fn fixed_system_inside_expanded_type() {
    let mut r = report();
    r["reporter"]["identifier"]["system"] = json!("https://example.org/not-ods");
    let o = run(&r);
    assert_error_at(
        &o,
        "MeasureReport.reporter.identifier.system",
        "fixed value",
    );
}

#[test]
fn required_binding_is_an_error_extensible_a_warning() {
    let mut r = report();
    r["group"][2]["code"]["coding"][0]["code"] = json!("not-an-indicator");
    r["group"][0]["population"][0]["code"]["coding"][0]["code"] = json!("numerator-ish");
    let o = run(&r);
    let i = assert_error_at(
        &o,
        "MeasureReport.group[2].code",
        "not in the required value set",
    );
    assert_eq!(i.code, IssueType::CodeInvalid);
    let w = o
        .issues
        .iter()
        .find(|i| i.expression.as_deref() == Some("MeasureReport.group[0].population[0].code"))
        .expect("extensible binding warning");
    assert_eq!(w.severity, Severity::Warning);
    assert!(w.diagnostics.contains("extensible"), "{}", w.diagnostics);
}

#[test]
fn slice_children_rules_apply_to_matched_items() {
    let mut r = report();
    r["group"][0]["stratifier"][0]["stratum"][3]["value"]["coding"][0]["code"] = json!("QQ");
    r["group"][1]["stratifier"][1]["stratum"][4]
        .as_object_mut()
        .unwrap()
        .remove("value");
    let o = run(&r);
    let i = assert_error_at(
        &o,
        "MeasureReport.group[0].stratifier[0].stratum[3].value",
        "not in the required value set",
    );
    assert_eq!(
        i.element_id.as_deref(),
        Some("MeasureReport.group.stratifier:ethnic.stratum.value")
    );
    let i = assert_error_at(
        &o,
        "MeasureReport.group[1].stratifier[1].stratum[4].value",
        "missing required element",
    );
    assert_eq!(
        i.element_id.as_deref(),
        Some("MeasureReport.group.stratifier:imd.stratum.value")
    );
}

#[test]
fn slice_cardinality() {
    let mut r = report();
    let s = r["group"][0]["stratifier"][0].clone();
    r["group"][0]["stratifier"].as_array_mut().unwrap().push(s);
    let o = run(&r);
    let i = assert_error_at(&o, "MeasureReport.group[0].stratifier", "slice 'ethnic'");
    assert!(
        i.diagnostics.contains("has 2 items; it allows 0..1"),
        "{}",
        i.diagnostics
    );
}

#[test]
fn extensions_known_unknown_modifier_and_ext_1() {
    let mut r = report();
    r["extension"] = json!([
        {"url": "http://example.org/unknown", "valueString": "x"},
        {"url": "http://example.org/both", "valueString": "x", "extension": [{"url": "a", "valueCode": "b"}]}
    ]);
    r["modifierExtension"] = json!([{"url": "http://example.org/mod", "valueBoolean": true}]);
    let o = run(&r);
    let w = o
        .issues
        .iter()
        .find(|i| i.expression.as_deref() == Some("MeasureReport.extension[0]"))
        .unwrap();
    assert_eq!(w.severity, Severity::Warning);
    assert_eq!(w.code, IssueType::Extension);
    assert_error_at(&o, "MeasureReport.extension[1]", "ext-1");
    let i = assert_error_at(&o, "MeasureReport.modifierExtension[0]", "not known");
    assert_eq!(i.code, IssueType::Extension);
}

/// fhir-test-cases `pat-dob-ext`, `target-ref-profile-empty`: an extension whose definition is
/// not loaded is an error outside example domains (as in the HL7 validator), on the element and
/// on a primitive's `_name`; an example-domain or FHIR cross-version one is not.
#[test]
fn unknown_extensions_outside_example_domains_are_errors() {
    let mut r = report();
    r["extension"] = json!([
        {"url": "http://vendor.invalid/fhir/StructureDefinition/x", "valueString": "x"},
        {"url": "http://example.org/fhir/StructureDefinition/x", "valueString": "x"},
        {"url": "http://hl7.org/fhir/5.0/StructureDefinition/extension-MeasureReport.x", "valueString": "x"}
    ]);
    r["_date"] = json!({"extension": [{"url": "https://ehr.invalid/age", "valueInteger": 3}]});
    let o = run(&r);
    let i = assert_error_at(&o, "MeasureReport.extension[0]", "cannot be found");
    assert_eq!(i.code, IssueType::Extension);
    assert_error_at(
        &o,
        "MeasureReport.date.extension[0]",
        "https://ehr.invalid/age",
    );
    assert!(
        errors(&o).iter().all(|i| !matches!(
            i.expression.as_deref(),
            Some("MeasureReport.extension[1]" | "MeasureReport.extension[2]")
        )),
        "{:#?}",
        o.issues
    );
}

#[test]
fn meta_profile_unknown_is_a_warning_and_type_mismatch_an_error() {
    let mut r = report();
    r["meta"]["profile"] = json!(["https://example.org/StructureDefinition/nope"]);
    let o = run(&r);
    let w = o
        .issues
        .iter()
        .find(|i| i.expression.as_deref() == Some("MeasureReport.meta.profile[0]"))
        .unwrap();
    assert_eq!(w.severity, Severity::Warning);
    let o = testkit::validator().validate(
        br#"{"resourceType":"Patient","meta":{"profile":["https://fhir.pqom-gateway.org/StructureDefinition/test-trust-measurereport"]}}"#,
        &[],
    );
    assert_error_at(
        &o,
        "Patient",
        "is for MeasureReport, but the resource is a Patient",
    );
}

#[test]
fn requested_profile_applies_and_unknown_requested_is_an_error() {
    let mut r = report();
    r.as_object_mut().unwrap().remove("meta");
    r["type"] = json!("individual");
    let bytes = r.to_string();
    let v = testkit::validator();
    assert!(!v.validate(bytes.as_bytes(), &[]).has_errors());
    let o = v.validate(bytes.as_bytes(), &[PROFILE]);
    assert_error_at(&o, "MeasureReport.type", "fixed value");
    let o = v.validate(bytes.as_bytes(), &["https://example.org/none"]);
    assert_eq!(errors(&o)[0].code, IssueType::NotSupported);
}

fn bundle(report: Value) -> Value {
    json!({
        "resourceType": "Bundle", "id": "b1", "type": "message",
        "timestamp": "2025-05-02T09:30:00Z",
        "entry": [
            {"fullUrl": "urn:uuid:0e1d7c5a-6b3a-4f39-9d6e-0d1b2f1c0a01",
             "resource": {"resourceType": "MessageHeader", "id": "h",
                "eventCoding": {"system": "https://fhir.pqom-gateway.org/CodeSystem/pqom-message-event", "code": "pqom-submission"},
                "source": {"endpoint": "https://trust.example.org/fhir"},
                "focus": [{"reference": "urn:uuid:0e1d7c5a-6b3a-4f39-9d6e-0d1b2f1c0a02"}]}},
            {"fullUrl": "urn:uuid:0e1d7c5a-6b3a-4f39-9d6e-0d1b2f1c0a02", "resource": report}
        ]
    })
}

#[test]
fn bundle_entries_are_validated_with_full_paths() {
    let mut r = report();
    r["group"][2]["stratifier"][0]["stratum"][3]["value"] =
        json!({"coding": [{"system": "x y", "code": "A"}]});
    let o = run(&bundle(r));
    assert_error_at(
        &o,
        "Bundle.entry[1].resource.group[2].stratifier[0].stratum[3].value.coding[0].system",
        "not a valid uri",
    );
    assert_error_at(
        &o,
        "Bundle.entry[1].resource.group[2].stratifier[0].stratum[3].value",
        "not in the required value set",
    );
}

#[test]
fn bundle_references_resolve_and_types_are_checked() {
    let mut b = bundle(report());
    assert!(errors(&run(&b)).is_empty(), "{:#?}", run(&b).issues);
    b["entry"][0]["resource"]["focus"][0]["reference"] =
        json!("urn:uuid:0e1d7c5a-6b3a-4f39-9d6e-0d1b2f1c0aff");
    b["entry"][1]["resource"]["reporter"]["reference"] = json!("Patient/p1");
    let o = run(&b);
    // A dangling urn:uuid is a warning (as the HL7 validator has it; fhir-test-cases
    // ref-policy-default-apply-r5), not an error.
    let i = o
        .issues
        .iter()
        .find(|i| i.expression.as_deref() == Some("Bundle.entry[0].resource.focus[0].reference"))
        .unwrap_or_else(|| panic!("no issue on the dangling focus: {:#?}", o.issues));
    assert_eq!(i.severity, Severity::Warning, "{i:?}");
    assert!(i.diagnostics.contains("does not resolve"), "{i:?}");
    assert_eq!(i.code, IssueType::NotFound);
    assert_error_at(
        &o,
        "Bundle.entry[1].resource.reporter.reference",
        "allows Organization",
    );
}

#[test]
fn entry_resources_need_a_known_resource_type() {
    let mut b = bundle(report());
    b["entry"][1]["resource"]
        .as_object_mut()
        .unwrap()
        .remove("resourceType");
    b["entry"][0]["resource"]["resourceType"] = json!("MessageHeadr");
    let o = run(&b);
    assert_error_at(&o, "Bundle.entry[1].resource", "no resourceType");
    assert_error_at(
        &o,
        "Bundle.entry[0].resource",
        "unknown resource type 'MessageHeadr'",
    );
}

#[test]
fn contained_resources_and_local_references() {
    let mut r = report();
    r["contained"] = json!([{"resourceType": "Organization", "id": "org", "active": "yes"}]);
    r["reporter"]["reference"] = json!("#org");
    r["subject"] = json!({"reference": "#missing"});
    let o = run(&r);
    assert_error_at(
        &o,
        "MeasureReport.contained[0].active",
        "must be a JSON boolean",
    );
    assert_error_at(&o, "MeasureReport.subject.reference", "does not exist");
    assert!(
        !errors(&o)
            .iter()
            .any(|i| i.expression.as_deref() == Some("MeasureReport.reporter.reference")),
        "{:#?}",
        o.issues
    );
}

#[test]
fn duplicate_properties_are_errors() {
    let bytes = br#"{"resourceType":"Patient","active":true,"active":false}"#;
    let o = testkit::validator().validate(bytes, &[]);
    assert_error_at(&o, "Patient.active", "appears more than once");
}

#[test]
fn empty_object_fails_ele_1() {
    let mut r = report();
    r["period"] = json!({});
    let o = run(&r);
    let i = assert_error_at(&o, "MeasureReport.period", "ele-1");
    assert_eq!(i.code, IssueType::Invariant);
}

/// Quick local timing, not an assertion (criterion benches own the figures):
/// `cargo test --lib --config 'profile.dev.package.pqom-gateway.opt-level=3' \
///   --config 'profile.dev.package.sonic-rs.opt-level=3' validate::walk::tests::timing -- --ignored --nocapture`
#[test]
#[ignore]
fn timing() {
    let bytes = testkit::reference_report(12).to_string().into_bytes();
    let v = testkit::validator();
    assert!(!v.validate(&bytes, &[]).has_errors());
    let n = 2000;
    let t = std::time::Instant::now();
    for _ in 0..n {
        let _: sonic_rs::Value = sonic_rs::Deserializer::from_slice(&bytes)
            .use_rawnumber()
            .deserialize()
            .unwrap();
    }
    let parse = t.elapsed().as_secs_f64() / n as f64;
    let t = std::time::Instant::now();
    for _ in 0..n {
        std::hint::black_box(v.validate(&bytes, &[]));
    }
    let full = t.elapsed().as_secs_f64() / n as f64;
    let parsed: sonic_rs::Value = sonic_rs::Deserializer::from_slice(&bytes)
        .use_rawnumber()
        .deserialize()
        .unwrap();
    let t = std::time::Instant::now();
    for _ in 0..n * 5 {
        std::hint::black_box(v.validate_value(&parsed, &[]));
    }
    let walk = t.elapsed().as_secs_f64() / (n * 5) as f64;
    fn visit(v: &sonic_rs::Value) -> usize {
        use sonic_rs::{JsonContainerTrait, JsonValueTrait};
        if let Some(o) = v.as_object() {
            o.iter().map(|(k, x)| k.len() + visit(x)).sum::<usize>() + 1
        } else if let Some(a) = v.as_array() {
            a.iter().map(visit).sum::<usize>() + 1
        } else {
            v.as_str().map_or(1, |s| s.len())
        }
    }
    let t = std::time::Instant::now();
    for _ in 0..n * 5 {
        std::hint::black_box(visit(std::hint::black_box(&parsed)));
    }
    let trav = t.elapsed().as_secs_f64() / (n * 5) as f64;
    eprintln!("bare traversal {:.0}/s", 1.0 / trav);
    eprintln!(
        "report {} bytes: parse {:.0}/s, walk only {:.0}/s, parse+validate {:.0}/s ({:.0} MB/s)",
        bytes.len(),
        1.0 / parse,
        1.0 / walk,
        1.0 / full,
        bytes.len() as f64 / full / 1e6
    );
}

/// The R4 rules no StructureDefinition carries (validate::rules), placed by the walk: a relative
/// or value-set Coding.system (also inside a CodeableConcept), an Attachment whose size disagrees
/// with its data, and a relative Bundle.entry.fullUrl.
#[test]
fn prose_rules_are_reported_at_the_element() {
    let mut r = report();
    r["group"][0]["code"]["coding"][0]["system"] = json!("Location1");
    let o = run(&r);
    assert_error_at(
        &o,
        "MeasureReport.group[0].code.coding[0].system",
        "absolute URI",
    );

    let media = json!({"resourceType": "Media", "status": "completed",
        "content": {"contentType": "text/plain", "data": "aGVscCBpJ20gYSBidWc=", "size": 100}});
    assert_error_at(&run(&media), "Media.content", "decodes to 14 bytes");

    let mut b = bundle(report());
    b["entry"][1]["fullUrl"] = json!("MeasureReport/r1");
    let o = run(&b);
    assert_error_at(&o, "Bundle.entry[1].fullUrl", "absolute URL");
    assert_eq!(errors(&o).len(), 1, "{:#?}", o.issues);

    let search = json!({"resourceType": "Bundle", "type": "searchset", "entry": [
        {"fullUrl": "urn:uuid:0e1d7c5a-6b3a-4f39-9d6e-0d1b2f1c0a09", "search": {"mode": "outcome"},
         "resource": {"resourceType": "Patient"}}]});
    assert_error_at(
        &run(&search),
        "Bundle.entry[0].resource",
        "must be an OperationOutcome",
    );
}

fn extension_sd(url: &str, context: &str) -> Value {
    json!({"resourceType": "StructureDefinition", "url": url, "type": "Extension",
    "kind": "complex-type", "derivation": "constraint",
    "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Extension",
    "context": [{"type": "element", "expression": context}],
    "differential": {"element": [
        {"id": "Extension", "path": "Extension"},
        {"id": "Extension.url", "path": "Extension.url", "fixedUri": url},
        {"id": "Extension.value[x]", "path": "Extension.value[x]", "type": [{"code": "dateTime"}]}
    ]}})
}

/// StructureDefinition.context: an extension for Patient.birthDate (like core patient-birthTime)
/// is allowed there (through `_birthDate`), not on the Patient itself nor on a MeasureReport
/// group; one with context Element (like data-absent-reason) anywhere.
#[test]
fn extension_context_is_checked() {
    let mut defs = testkit::core_definitions().clone();
    for sd in [
        extension_sd("http://x/ext/birth-time", "Patient.birthDate"),
        extension_sd("http://x/ext/anywhere", "Element"),
    ] {
        defs.add_resource(std::path::Path::new("ext.json"), sd);
    }
    let v = crate::validate::Validator::from_definitions(
        &defs,
        std::sync::Arc::new(crate::validate::NoTerminology),
    )
    .expect("extensions compile");
    let run = |r: &Value| v.validate(r.to_string().as_bytes(), &[]);
    let birth_time =
        json!({"url": "http://x/ext/birth-time", "valueDateTime": "2020-01-01T10:00:00Z"});
    let anywhere = json!({"url": "http://x/ext/anywhere", "valueDateTime": "2020-01-01T10:00:00Z"});

    let ok = json!({"resourceType": "Patient", "birthDate": "2020-01-01",
        "_birthDate": {"extension": [birth_time]}, "extension": [anywhere]});
    assert!(errors(&run(&ok)).is_empty(), "{:#?}", run(&ok).issues);
    let on_root = json!({"resourceType": "Patient", "extension": [birth_time]});
    let i = assert_error_at(
        &run(&on_root),
        "Patient.extension[0]",
        "is not allowed on Patient: its definition allows it on Patient.birthDate",
    );
    assert_eq!(i.code, IssueType::Extension);

    let mr = json!({"resourceType": "MeasureReport", "status": "complete", "type": "summary",
        "measure": "http://x/Measure/m", "period": {"start": "2024-01-01"},
        "_date": {"extension": [anywhere]},
        "group": [{"code": {"text": "g"}, "extension": [birth_time]}]});
    let o = run(&mr);
    assert_error_at(
        &o,
        "MeasureReport.group[0].extension[0]",
        "is not allowed on MeasureReport.group",
    );
    assert_eq!(errors(&o).len(), 1, "{:#?}", o.issues);
}

/// The memo skips a value identical to one already validated clean under the same rule; a value
/// with a problem is never remembered, so each copy of it is reported at its own path, and a clean
/// value does not vouch for the same text under another rule.
#[test]
fn repeated_values_are_reported_wherever_they_are_wrong() {
    let mut r = report();
    let bad = json!({"coding":[{"system":"https://fhir.hl7.org.uk/CodeSystem/UKCore-EthnicCategoryEngland","code":"ZZ"}]});
    r["group"][0]["stratifier"][0]["stratum"][1]["value"] = bad.clone();
    r["group"][1]["stratifier"][0]["stratum"][1]["value"] = bad.clone();
    r["group"][2]["stratifier"][0]["stratum"][3]["value"] = bad;
    let o = run(&r);
    for at in [
        "MeasureReport.group[0].stratifier[0].stratum[1].value",
        "MeasureReport.group[1].stratifier[0].stratum[1].value",
        "MeasureReport.group[2].stratifier[0].stratum[3].value",
    ] {
        assert_error_at(&o, at, "not in the required value set");
    }
    // A population code that is clean where it stands is wrong as a stratum value: the stratum
    // value rule must still see it.
    let mut r = report();
    let pop_code = r["group"][0]["population"][0]["code"].clone();
    r["group"][0]["stratifier"][0]["stratum"][0]["value"] = pop_code;
    let o = run(&r);
    assert_error_at(
        &o,
        "MeasureReport.group[0].stratifier[0].stratum[0].value",
        "not in the required value set",
    );
}

/// A stratum population is remembered only when it has no `subjectResults`: a Reference reads
/// the resource around it, so the same text can be right in one report and wrong in another.
#[test]
fn repeated_values_with_references_are_walked_again() {
    let pop = |r: &Value| r["group"][0]["stratifier"][0]["stratum"][0]["population"][0].clone();
    let mut a = report();
    let mut with_ref = pop(&a);
    with_ref["subjectResults"] = json!({"reference": "#subjects"});
    a["group"][0]["stratifier"][0]["stratum"][0]["population"][0] = with_ref.clone();
    a["contained"] = json!([{
        "resourceType": "List", "id": "subjects", "status": "current", "mode": "working"
    }]);
    // The same population text in a second report, which contains no such List.
    let mut b = report();
    b["id"] = json!("second");
    b["group"][0]["stratifier"][0]["stratum"][0]["population"][0] = with_ref;
    let mut bundle = bundle(a);
    bundle["entry"].as_array_mut().unwrap().push(json!({
        "fullUrl": "urn:uuid:0e1d7c5a-6b3a-4f39-9d6e-0d1b2f1c0a03", "resource": b
    }));
    let o = run(&bundle);
    let at = "Bundle.entry[2].resource.group[0].stratifier[0].stratum[0].population[0].subjectResults.reference";
    assert_error_at(&o, at, "does not exist");
    assert!(
        !errors(&o)
            .iter()
            .any(|i| i.expression.as_deref().is_some_and(|e| e.starts_with(
                "Bundle.entry[1].resource.group[0].stratifier[0].stratum[0].population"
            ))),
        "the first report's population resolves: {:#?}",
        o.issues
    );
}
