//! `$validate` over HTTP: system and type level, raw resource or Parameters, `profile` parameter.

use std::path::PathBuf;

use pqom_gateway::api::{self, AppState};
use pqom_gateway::ingest::Limits;
use pqom_gateway::pipeline::Pipeline;
use pqom_gateway::samples::{ReportParams, reference_report, submission_bundle};
use pqom_gateway::validate::terminology::load_validator;
use serde_json::{Value, json};

struct Server {
    base: String,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let store = pqom_gateway::store::open(None, dir.path()).await.unwrap();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let validator = load_validator(&[root.join("definitions/r4"), root.join("profiles")])
        .expect("definitions load");
    let state = AppState::new(Pipeline::new(store, Limits::default()))
        .with_validator(std::sync::Arc::new(validator));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, api::router(state)).await });
    Server {
        base: format!("http://{addr}/fhir"),
        client: reqwest::Client::new(),
        _dir: dir,
    }
}

impl Server {
    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/fhir+json")
            .body(serde_json::to_vec(body).unwrap())
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap())
    }
}

fn errors(oo: &Value) -> Vec<String> {
    oo["issue"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| matches!(i["severity"].as_str(), Some("error" | "fatal")))
        .map(|i| i["expression"][0].as_str().unwrap_or("-").to_owned())
        .collect()
}

#[tokio::test]
async fn validate_operation_over_http() {
    let s = server().await;
    let p = ReportParams::default();

    // A valid report and a valid message: 200, no errors, nothing stored.
    let (status, oo) = s.post("/$validate", &reference_report(&p)).await;
    assert_eq!(
        (status, oo["resourceType"].as_str()),
        (200, Some("OperationOutcome")),
        "{oo:#}"
    );
    assert!(errors(&oo).is_empty(), "{oo:#}");
    let (status, oo) = s.post("/Bundle/$validate", &submission_bundle(&p)).await;
    assert_eq!(status, 200);
    assert!(errors(&oo).is_empty(), "{oo:#}");

    // An invalid report: still 200 (the operation worked), errors at the exact element.
    let mut bad = reference_report(&p);
    bad["type"] = json!("individual");
    let (status, oo) = s.post("/MeasureReport/$validate", &bad).await;
    assert_eq!(status, 200);
    assert_eq!(errors(&oo), vec!["MeasureReport.type".to_owned()], "{oo:#}");

    // Percent-encoded `$`, and a type not in the REST table.
    let (status, oo) = s
        .post(
            "/Patient/%24validate",
            &json!({"resourceType": "Patient", "gender": "woman"}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(errors(&oo), vec!["Patient.gender".to_owned()], "{oo:#}");

    // Parameters with resource + profile: the profile applies even without meta.profile.
    let mut plain = reference_report(&p);
    plain.as_object_mut().unwrap().remove("meta");
    plain["type"] = json!("individual");
    let (_, oo) = s.post("/$validate", &plain).await;
    assert!(
        errors(&oo).is_empty(),
        "base R4 accepts an individual report: {oo:#}"
    );
    let params = json!({"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": plain},
        {"name": "profile", "valueUri": "https://fhir.pqom-gateway.org/StructureDefinition/pqom-trust-measurereport"}
    ]});
    let (status, oo) = s.post("/MeasureReport/$validate", &params).await;
    assert_eq!(status, 200);
    assert_eq!(errors(&oo), vec!["MeasureReport.type".to_owned()], "{oo:#}");

    // The same profile as a query parameter.
    let (_, oo) = s
        .post("/$validate?profile=https://fhir.pqom-gateway.org/StructureDefinition/pqom-trust-measurereport", &plain)
        .await;
    assert_eq!(errors(&oo), vec!["MeasureReport.type".to_owned()], "{oo:#}");

    // Request errors: 400 with an OperationOutcome.
    let (status, oo) = s.post("/Patient/$validate", &reference_report(&p)).await;
    assert_eq!(status, 400, "type mismatch: {oo:#}");
    let (status, oo) = s
        .post(
            "/$validate?profile=https://example.org/nope",
            &reference_report(&p),
        )
        .await;
    assert_eq!(status, 400, "unknown profile: {oo:#}");
    assert!(
        oo["issue"][0]["diagnostics"]
            .as_str()
            .unwrap()
            .contains("not loaded")
    );
    let (status, _) = s
        .post(
            "/$validate",
            &json!({"resourceType": "Parameters", "parameter": []}),
        )
        .await;
    assert_eq!(status, 400, "Parameters without a resource");

    // Nothing was stored.
    let r = s
        .client
        .get(format!("{}/MeasureReport", s.base))
        .send()
        .await
        .unwrap();
    let bundle: Value = r.json().await.unwrap();
    assert_eq!(bundle["total"].as_u64().unwrap_or(0), 0, "{bundle:#}");
}
