//! `pqom-gateway validate` as a vendor's CI runs it: the built binary on files and folders.

use std::path::Path;
use std::process::{Command, Output};

use pqom_gateway::samples::{ReportParams, reference_report, submission_bundle};
use serde_json::{Value, json};

fn validate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pqom-gateway"))
        .arg("validate")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("binary runs")
}

fn write(dir: &Path, name: &str, v: &Value) -> String {
    let path = dir.join(name);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    std::fs::write(&path, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    path.to_str().unwrap().to_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A report whose third group's second ethnic stratum has a negative count and whose type is wrong.
fn broken_report() -> Value {
    let mut r = reference_report(&ReportParams::default());
    r["type"] = json!("individual");
    r["group"][2]["stratifier"][0]["stratum"][1]["population"][0]["count"] = json!("seven");
    r
}

#[test]
fn valid_report_and_message_pass_with_exit_zero() {
    let dir = tempfile::tempdir().unwrap();
    let p = ReportParams::default();
    let report = write(dir.path(), "report.json", &reference_report(&p));
    let message = write(dir.path(), "message.json", &submission_bundle(&p));
    let out = validate(&[&report, &message]);
    assert!(
        out.status.success(),
        "{}\n{}",
        stdout(&out),
        String::from_utf8_lossy(&out.stderr)
    );
    // Warnings (e.g. dom-6: no narrative) may be listed; errors may not.
    let text = stdout(&out);
    assert!(
        !text.contains(": error [") && !text.contains(": fatal ["),
        "{text}"
    );
}

#[test]
fn errors_name_file_severity_and_exact_element_and_exit_one() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "bad.json", &broken_report());
    let out = validate(&[&bad]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(text.contains("bad.json: error"), "{text}");
    assert!(text.contains("MeasureReport.type"), "{text}");
    assert!(
        text.contains("MeasureReport.group[2].stratifier[0].stratum[1].population[0].count"),
        "{text}"
    );
}

#[test]
fn json_format_is_an_operation_outcome_for_one_file_and_a_bundle_for_several() {
    let dir = tempfile::tempdir().unwrap();
    let bad = write(dir.path(), "bad.json", &broken_report());
    let out = validate(&["--format", "json", &bad]);
    assert_eq!(out.status.code(), Some(1));
    let oo: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(oo["resourceType"], "OperationOutcome");
    let issues = oo["issue"].as_array().unwrap();
    assert!(
        issues
            .iter()
            .any(|i| i["severity"] == "error" && i["expression"][0] == "MeasureReport.type"),
        "{oo:#}"
    );

    write(
        dir.path(),
        "nested/good.json",
        &reference_report(&ReportParams::default()),
    );
    let out = validate(&["--format", "json", dir.path().to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "one bad file makes the run fail"
    );
    let bundle: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(bundle["resourceType"], "Bundle");
    let entries = bundle["entry"].as_array().unwrap();
    assert_eq!(
        entries.len(),
        2,
        "directories are walked recursively: {bundle:#}"
    );
    assert!(
        entries
            .iter()
            .all(|e| e["fullUrl"].as_str().unwrap().starts_with("file://"))
    );
    assert!(
        entries
            .iter()
            .all(|e| e["resource"]["resourceType"] == "OperationOutcome")
    );
}

#[test]
fn unreadable_and_non_json_files_are_errors_not_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.json");
    std::fs::write(&junk, b"{ not json").unwrap();
    let missing = dir.path().join("missing.json");
    let out = validate(&[junk.to_str().unwrap(), missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("junk.json: error"), "{text}");
    assert!(text.contains("missing.json: error"), "{text}");
}

#[test]
fn unknown_profile_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let report = write(
        dir.path(),
        "r.json",
        &reference_report(&ReportParams::default()),
    );
    let out = validate(&[
        "--profile",
        "https://example.org/StructureDefinition/nope",
        &report,
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not loaded"));
}

#[test]
fn ig_folder_adds_profiles_used_by_profile_flag() {
    let dir = tempfile::tempdir().unwrap();
    let ig = dir.path().join("ig");
    let profile = "https://example.org/StructureDefinition/patient-with-birthdate";
    write(
        &ig,
        "StructureDefinition-p.json",
        &json!({
            "resourceType": "StructureDefinition", "id": "patient-with-birthdate", "url": profile,
            "name": "PatientWithBirthDate", "status": "active", "kind": "resource", "abstract": false,
            "type": "Patient", "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
            "derivation": "constraint",
            "differential": { "element": [{ "id": "Patient.birthDate", "path": "Patient.birthDate", "min": 1 }] }
        }),
    );
    let patient = write(
        dir.path(),
        "patient.json",
        &json!({"resourceType": "Patient", "id": "p1"}),
    );
    let out = validate(&[&patient]);
    assert!(
        out.status.success(),
        "base R4 alone accepts it: {}",
        stdout(&out)
    );
    let out = validate(&["--ig", ig.to_str().unwrap(), "--profile", profile, &patient]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(stdout(&out).contains("birthDate"), "{}", stdout(&out));
}
