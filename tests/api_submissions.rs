//! Submissions over HTTP: `$process-message` and REST create, the happy paths, reliable
//! messaging, If-None-Exist, resubmission versioning, and every bad input with its status, issue
//! code and expression. Each test runs on SQLite and on PostgreSQL.

mod common;

use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::{Value, json};

use common::*;
use pqom_gateway::fhir::{Issue, IssueType, Outcome};
use pqom_gateway::pipeline::{Limits, Validate};
use pqom_gateway::store::SubmissionStatus;

on_both_backends!(
    message_is_answered_with_a_response_message,
    duplicate_message_id_gets_the_original_response_and_is_stored_once,
    rejected_message_is_stored_with_its_outcome_and_answered_422,
    message_bad_inputs_without_a_readable_header_are_400,
    message_envelope_errors_are_422_response_messages,
    create_returns_201_with_location_etag_and_last_modified,
    create_rejects_the_wrong_resource_type_and_non_json,
    resubmission_with_the_same_identifier_is_a_new_version,
    if_none_exist_returns_the_existing_resource,
    if_none_exist_with_several_matches_is_412,
    if_none_exist_that_is_not_identifier_is_400,
    measure_create_and_read,
);

async fn message_is_answered_with_a_response_message(app: TestApp) {
    let (bundle, header_id) = message("RX1-2026-10");
    let response = app.message(&bundle).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/fhir+json")
    );
    let body = json(response).await;
    assert_eq!(body["resourceType"], "Bundle");
    assert_eq!(body["type"], "message");
    let header = &body["entry"][0]["resource"];
    assert_eq!(header["resourceType"], "MessageHeader");
    assert_eq!(header["response"]["identifier"], header_id.as_str());
    assert_eq!(header["response"]["code"], "ok");
    assert_eq!(header["eventCoding"]["code"], "pqom-submission");
    assert_eq!(
        header["destination"][0]["endpoint"],
        "https://epr.rx1.example/fhir"
    );
    let details = header["response"]["details"]["reference"].as_str().unwrap();
    assert_eq!(body["entry"][1]["fullUrl"], details);
    assert_eq!(
        body["entry"][1]["resource"]["resourceType"],
        "OperationOutcome"
    );

    // The focus MeasureReport is stored and findable; the ride-along Organization is not.
    let found = json(
        app.get(&format!(
            "/MeasureReport?identifier={REPORT_IDS}|RX1-2026-10"
        ))
        .await,
    )
    .await;
    assert_eq!(found["entry"].as_array().unwrap().len(), 1);
    let stored = &found["entry"][0]["resource"];
    assert_eq!(stored["meta"]["versionId"], "1");
    assert_eq!(stored["group"][0]["population"][1]["count"], 512);
    let submission = app
        .store
        .submission_by_message_id(&header_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(submission.status, SubmissionStatus::Accepted);
    assert_eq!(submission.sender.as_deref(), Some("RX1"));
}

async fn duplicate_message_id_gets_the_original_response_and_is_stored_once(app: TestApp) {
    let (bundle, header_id) = message("RX1-2026-11");
    let first = json(app.message(&bundle).await).await;
    // Same MessageHeader id, different content: per the messaging spec it is the same message.
    let mut again = bundle.clone();
    again["entry"][1]["resource"]["group"][0]["population"][0]["count"] = json!(3);
    let response = app.message(&again).await;
    assert_eq!(response.status(), StatusCode::OK);
    let second = json(response).await;
    assert_eq!(
        first, second,
        "the original response, byte for byte the same JSON"
    );

    let found = json(
        app.get(&format!(
            "/MeasureReport?identifier={REPORT_IDS}|RX1-2026-11"
        ))
        .await,
    )
    .await;
    let entries = found["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0]["resource"]["meta"]["versionId"], "1",
        "not processed twice"
    );
    assert_eq!(
        entries[0]["resource"]["group"][0]["population"][0]["count"],
        2
    );
    let by_sender = app.store.submissions_by_sender("RX1", 10).await.unwrap();
    assert_eq!(
        by_sender
            .iter()
            .filter(|s| s.message_id.as_deref() == Some(header_id.as_str()))
            .count(),
        1
    );
}

async fn rejected_message_is_stored_with_its_outcome_and_answered_422(app: TestApp) {
    let (mut bundle, header_id) = message("RX1-2026-12");
    bundle["entry"][0]["resource"]["focus"] =
        json!([{ "reference": "urn:uuid:00000000-0000-4000-8000-000000000000" }]);
    let response = app.message(&bundle).await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = json(response).await;
    let header = &body["entry"][0]["resource"];
    assert_eq!(header["response"]["code"], "fatal-error");
    assert_eq!(header["response"]["identifier"], header_id.as_str());
    issue(
        &body["entry"][1]["resource"],
        "not-found",
        Some("Bundle.entry[0].resource.focus[0]"),
    );

    let stored = app
        .store
        .submission_by_message_id(&header_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.status, SubmissionStatus::Rejected);
    issue(
        &stored.outcome,
        "not-found",
        Some("Bundle.entry[0].resource.focus[0]"),
    );
    // Resending the same message id replays the rejection.
    let again = app.message(&bundle).await;
    assert_eq!(again.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(json(again).await, body);
}

async fn message_bad_inputs_without_a_readable_header_are_400(app: TestApp) {
    // Not JSON.
    let r = app
        .post_raw(
            "/$process-message",
            "application/fhir+json",
            b"{\"resourceType\": \"Bundle\",".to_vec(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let oo = json(r).await;
    assert!(
        issue(&oo, "structure", None)["diagnostics"]
            .as_str()
            .unwrap()
            .contains("not valid JSON")
    );

    // Nested deeper than the limit (64 by default).
    let deep = format!(
        "{{\"resourceType\":\"Bundle\",\"x\":{}{}}}",
        "[".repeat(80),
        "]".repeat(80)
    );
    let r = app
        .post_raw(
            "/$process-message",
            "application/fhir+json",
            deep.into_bytes(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    issue(&json(r).await, "too-long", None);

    // JSON but not a FHIR resource.
    let r = app.message(&json!({"type": "message", "entry": []})).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    issue(&json(r).await, "required", Some("resourceType"));

    // A resource, but not a Bundle.
    let r = app.message(&json!({"resourceType": "Parameters"})).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    issue(&json(r).await, "invalid", Some("resourceType"));

    // A Bundle, but not a message.
    let (mut bundle, _) = message("x");
    bundle["type"] = json!("collection");
    let r = app.message(&bundle).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    issue(&json(r).await, "value", Some("Bundle.type"));

    // First entry not a MessageHeader.
    let (mut bundle, _) = message("x");
    bundle["entry"].as_array_mut().unwrap().swap(0, 1);
    let r = app.message(&bundle).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    issue(
        &json(r).await,
        "structure",
        Some("Bundle.entry[0].resource.resourceType"),
    );
}

/// With a readable MessageHeader, envelope errors get a response message (fatal-error).
async fn message_envelope_errors_are_422_response_messages(app: TestApp) {
    async fn outcome_of(app: &TestApp, bundle: &Value) -> Value {
        let r = app.message(bundle).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body = json(r).await;
        assert_eq!(
            body["entry"][0]["resource"]["response"]["code"],
            "fatal-error"
        );
        body["entry"][1]["resource"].clone()
    }
    // Focus that does not resolve (the second of two).
    let (mut bundle, _) = message("a");
    let good = bundle["entry"][1]["fullUrl"].clone();
    bundle["entry"][0]["resource"]["focus"] =
        json!([{ "reference": good }, { "reference": "MeasureReport/nope" }]);
    issue(
        &outcome_of(&app, &bundle).await,
        "not-found",
        Some("Bundle.entry[0].resource.focus[1]"),
    );

    // Duplicate fullUrls.
    let (mut bundle, _) = message("b");
    bundle["entry"][2]["fullUrl"] = bundle["entry"][1]["fullUrl"].clone();
    issue(
        &outcome_of(&app, &bundle).await,
        "invariant",
        Some("Bundle.entry[2].fullUrl"),
    );

    // Focus that is not a MeasureReport or Measure.
    let (mut bundle, _) = message("c");
    let org = bundle["entry"][2]["fullUrl"].clone();
    bundle["entry"][0]["resource"]["focus"] = json!([{ "reference": org }]);
    issue(
        &outcome_of(&app, &bundle).await,
        "not-supported",
        Some("Bundle.entry[0].resource.focus[0]"),
    );
}

async fn create_returns_201_with_location_etag_and_last_modified(app: TestApp) {
    let r = app.post("/MeasureReport", &measure_report("REST-1")).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    assert_eq!(r.headers()["etag"], "W/\"1\"");
    assert!(
        r.headers()["last-modified"]
            .to_str()
            .unwrap()
            .ends_with("GMT")
    );
    let body = json(r).await;
    let id = body["id"].as_str().unwrap();
    assert_eq!(
        location,
        format!("{}/MeasureReport/{id}/_history/1", app.fhir)
    );
    assert_eq!(body["meta"]["versionId"], "1");
    // Location answers.
    let read = app.get(&location).await;
    assert_eq!(read.status(), StatusCode::OK);
    assert_eq!(json(read).await["id"], id);
}

async fn create_rejects_the_wrong_resource_type_and_non_json(app: TestApp) {
    let r = app
        .post("/MeasureReport", &measure("https://x.org/Measure/a", "a"))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let oo = json(r).await;
    assert!(
        issue(&oo, "invalid", Some("resourceType"))["diagnostics"]
            .as_str()
            .unwrap()
            .contains("'Measure'")
    );

    let r = app
        .post_raw("/Measure", "application/json", b"not json".to_vec())
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    issue(&json(r).await, "structure", None);

    let r = app.post("/MeasureReport", &json!(["a"])).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    issue(&json(r).await, "structure", None);
}

async fn resubmission_with_the_same_identifier_is_a_new_version(app: TestApp) {
    let first = json(app.post("/MeasureReport", &measure_report("REST-2")).await).await;
    let mut changed = measure_report("REST-2");
    changed["group"][0]["population"][0]["count"] = json!(5);
    let r = app.post("/MeasureReport", &changed).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["etag"], "W/\"2\"");
    let second = json(r).await;
    assert_eq!(second["id"], first["id"]);
    assert_eq!(second["meta"]["versionId"], "2");

    let id = first["id"].as_str().unwrap();
    let history = json(app.get(&format!("/MeasureReport/{id}/_history")).await).await;
    assert_eq!(history["type"], "history");
    assert_eq!(history["total"], 2);
    assert_eq!(history["entry"][0]["resource"]["meta"]["versionId"], "2");
    assert_eq!(history["entry"][0]["response"]["etag"], "W/\"2\"");
    let v1 = json(app.get(&format!("/MeasureReport/{id}/_history/1")).await).await;
    assert_eq!(v1["group"][0]["population"][0]["count"], 2);
    let current = json(app.get(&format!("/MeasureReport/{id}")).await).await;
    assert_eq!(current["group"][0]["population"][0]["count"], 5);
}

async fn if_none_exist_returns_the_existing_resource(app: TestApp) {
    let created = json(app.post("/MeasureReport", &measure_report("REST-3")).await).await;
    let mut changed = measure_report("REST-3");
    changed["status"] = json!("error");
    let r = app
        .client
        .post(format!("{}/MeasureReport", app.fhir))
        .header("content-type", "application/fhir+json")
        .header("if-none-exist", format!("identifier={REPORT_IDS}|REST-3"))
        .body(serde_json::to_vec(&changed).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body = json(r).await;
    assert_eq!(body["id"], created["id"]);
    assert_eq!(body["status"], "complete", "nothing was created");
    let id = created["id"].as_str().unwrap();
    let history = json(app.get(&format!("/MeasureReport/{id}/_history")).await).await;
    assert_eq!(history["total"], 1);
}

async fn if_none_exist_with_several_matches_is_412(app: TestApp) {
    app.post("/MeasureReport", &measure_report("REST-4")).await;
    // Another logical report (first identifier differs) that also carries REST-4.
    let mut other = measure_report("REST-5");
    other["identifier"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "system": REPORT_IDS, "value": "REST-4" }));
    assert_eq!(
        app.post("/MeasureReport", &other).await.status(),
        StatusCode::CREATED
    );
    let r = app
        .client
        .post(format!("{}/MeasureReport", app.fhir))
        .header("content-type", "application/fhir+json")
        .header("if-none-exist", format!("identifier={REPORT_IDS}|REST-4"))
        .body(serde_json::to_vec(&measure_report("REST-6")).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    issue(&json(r).await, "multiple-matches", None);
}

async fn if_none_exist_that_is_not_identifier_is_400(app: TestApp) {
    let r = app
        .client
        .post(format!("{}/MeasureReport", app.fhir))
        .header("content-type", "application/fhir+json")
        .header("if-none-exist", "status=complete")
        .body(serde_json::to_vec(&measure_report("REST-7")).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    issue(&json(r).await, "not-supported", Some("If-None-Exist"));
}

async fn measure_create_and_read(app: TestApp) {
    let r = app.post("/Measure", &measure(ANNEX1, "annex1")).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let id = json(r).await["id"].as_str().unwrap().to_owned();
    let found = json(app.get(&format!("/Measure?url={ANNEX1}")).await).await;
    assert_eq!(found["entry"][0]["resource"]["id"], id.as_str());
}

// ---------------------------------------------------------------------------------------------
// Tests that need their own configuration (SQLite is enough: nothing here is storage-specific).

/// Rejects any body containing "reject-me"; warns on "warn-me".
struct TestValidator;

impl Validate for TestValidator {
    fn validate(&self, body: &[u8], resource_type: &str) -> Outcome {
        let text = String::from_utf8_lossy(body);
        let mut issues = Vec::new();
        if text.contains("reject-me") {
            issues.push(
                Issue::error(IssueType::Value, format!("{resource_type} says reject-me"))
                    .at(format!("{resource_type}.status")),
            );
        }
        if text.contains("warn-me") {
            issues.push(Issue::warning(IssueType::Value, "a warning"));
        }
        Outcome::new(issues)
    }
}

async fn with_validator() -> TestApp {
    spawn_with(Backend::Sqlite, Limits::default(), |s| {
        let pipeline = s.pipeline.clone().with_validator(Arc::new(TestValidator));
        pqom_gateway::api::AppState { pipeline, ..s }
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn validation_errors_reject_with_422_and_are_stored() {
    let app = with_validator().await;
    let mut report = measure_report("V-1");
    report["status"] = json!("reject-me");
    let r = app.post("/MeasureReport", &report).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    issue(&json(r).await, "value", Some("MeasureReport.status"));
    let found = json(
        app.get(&format!("/MeasureReport?identifier={REPORT_IDS}|V-1"))
            .await,
    )
    .await;
    assert!(found["entry"].as_array().unwrap().is_empty());

    let (bundle, header_id) = message_with(report);
    let r = app.message(&bundle).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = json(r).await;
    assert_eq!(
        body["entry"][0]["resource"]["response"]["code"],
        "fatal-error"
    );
    issue(
        &body["entry"][1]["resource"],
        "value",
        Some("Bundle.status"),
    );
    let stored = app
        .store
        .submission_by_message_id(&header_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.status, SubmissionStatus::Rejected);
}

#[tokio::test]
async fn validation_warnings_are_kept_with_an_accepted_message() {
    let app = with_validator().await;
    let mut report = measure_report("V-2");
    report["status"] = json!("complete");
    report["extra"] = json!("warn-me");
    let (bundle, _) = message_with(report);
    let r = app.message(&bundle).await;
    assert_eq!(r.status(), StatusCode::OK);
    let body = json(r).await;
    assert_eq!(body["entry"][0]["resource"]["response"]["code"], "ok");
    let oo = &body["entry"][1]["resource"];
    assert!(
        oo["issue"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["severity"] == "warning")
    );
}

#[tokio::test]
async fn body_over_the_limit_is_413_with_an_operation_outcome() {
    let limits = Limits {
        max_body_bytes: 2048,
        ..Limits::default()
    };
    let app = spawn_with(Backend::Sqlite, limits, |s| s).await.unwrap();
    let mut report = measure_report("BIG");
    report["text"] = json!({ "status": "generated", "div": "x".repeat(4096) });
    let r = app.post("/MeasureReport", &report).await;
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    issue(&json(r).await, "too-long", None);
    // Also when the length is not declared up front (chunked): raw HTTP, as reqwest would
    // need its `stream` feature for this.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = app.addr.trim_start_matches("http://").to_owned();
    let mut tcp = tokio::net::TcpStream::connect(&host).await.unwrap();
    let chunk = " ".repeat(1500);
    let request = format!(
        "POST /fhir/$process-message HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/fhir+json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         5dc\r\n{chunk}\r\n5dc\r\n{chunk}\r\n0\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"too-long\""), "{answer}");
}

#[tokio::test]
async fn xml_is_refused_with_406_or_415_saying_json_only() {
    let app = spawn(Backend::Sqlite).await.unwrap();
    let r = app
        .post_raw(
            "/MeasureReport",
            "application/fhir+xml",
            b"<MeasureReport/>".to_vec(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let oo = json(r).await;
    assert!(
        issue(&oo, "not-supported", Some("Content-Type"))["diagnostics"]
            .as_str()
            .unwrap()
            .contains("JSON only")
    );

    let r = app
        .client
        .get(format!("{}/metadata", app.fhir))
        .header("accept", "application/fhir+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_ACCEPTABLE);
    issue(&json(r).await, "not-supported", Some("Accept"));

    let r = app.get("/metadata?_format=xml").await;
    assert_eq!(r.status(), StatusCode::NOT_ACCEPTABLE);
    issue(&json(r).await, "not-supported", Some("_format"));

    let (bundle, _) = message("X-1");
    let r = app
        .client
        .post(format!("{}/$process-message", app.fhir))
        .header("content-type", "application/fhir+json")
        .header("accept", "application/xml")
        .body(serde_json::to_vec(&bundle).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_ACCEPTABLE);
}

#[tokio::test]
async fn store_unavailable_is_503_transient_and_never_500() {
    let app = spawn_unavailable().await;
    let (bundle, _) = message("D-1");
    let r = app.message(&bundle).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(r.headers().contains_key("retry-after"));
    issue(&json(r).await, "transient", None);
    let r = app.post("/MeasureReport", &measure_report("D-2")).await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    // Bad input is still the client's mistake, even with the database down.
    let r = app
        .post_raw("/MeasureReport", "application/json", b"{".to_vec())
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    issue(&json(r).await, "structure", None);
}
