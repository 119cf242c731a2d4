//! The map stage end to end through the HTTP API: a submission message is accepted and mapped,
//! its indicator values are stored, indicator MeasureReports come back from
//! `GET /fhir/MeasureReport?measure=...`, and the catalogue Measures from `GET /fhir/Measure`.

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use pqom_gateway::api::{AppState, router};
use pqom_gateway::map::Mapper;
use pqom_gateway::pipeline::{Limits, Pipeline};
use pqom_gateway::samples::{self, ReportParams};
use pqom_gateway::store;
use serde_json::Value;
use tower::ServiceExt;

async fn app() -> (axum::Router, Pipeline, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = store::open(None, dir.path()).await.unwrap();
    let mapper = Mapper::load(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mappings")).unwrap();
    let pipeline = Pipeline::new(store, Limits::default()).with_mapper(Arc::new(mapper));
    (router(AppState::new(pipeline.clone())), pipeline, dir)
}

async fn call(app: &axum::Router, req: Request<Body>) -> (StatusCode, Value) {
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri)
        .header("accept", "application/fhir+json")
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn a_submission_is_mapped_stored_and_served_as_indicator_reports() {
    let (app, _pipeline, _dir) = app().await;
    let params = ReportParams::default();
    let bundle = samples::submission_bundle(&params);
    let (status, response) = call(
        &app,
        Request::post("/fhir/$process-message")
            .header("content-type", "application/fhir+json")
            .body(Body::from(serde_json::to_vec(&bundle).unwrap()))
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{response}");
    let text = response.to_string();
    assert!(
        text.contains("mapped to"),
        "the response says what was mapped: {text}"
    );

    let measure = "https://fhir.pqom-gateway.org/Measure/stillbirth-rate";
    let (status, found) = call(
        &app,
        get(&format!(
            "/fhir/MeasureReport?measure={measure}&reporter={}",
            params.ods
        )),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(found["type"], "searchset");
    let entries = found["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    let report = &entries[0]["resource"];
    assert_eq!(report["measure"], format!("{measure}|1.0.0"));
    assert_eq!(report["reporter"]["identifier"]["value"], params.ods);
    assert!(report["group"][0]["population"][0]["count"].is_u64());
    assert!(report["group"][0]["stratifier"].as_array().unwrap().len() >= 2);

    // Another trust: nothing. A period filter: the month submitted.
    let (_, none) = call(
        &app,
        get(&format!(
            "/fhir/MeasureReport?measure={measure}&reporter=RM1"
        )),
    )
    .await;
    assert_eq!(none["entry"].as_array().map_or(0, Vec::len), 0);
    let month = report["period"]["start"].as_str().unwrap()[..7].to_owned();
    let (_, by_period) = call(
        &app,
        get(&format!(
            "/fhir/MeasureReport?measure={measure}&period={month}"
        )),
    )
    .await;
    assert_eq!(by_period["entry"].as_array().unwrap().len(), 1);
    let (status, bad) = call(
        &app,
        get(&format!("/fhir/MeasureReport?measure={measure}&focus=x")),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
}

#[tokio::test]
async fn catalogue_measures_are_published_once_and_served() {
    let (app, pipeline, _dir) = app().await;
    let n = pipeline.publish_catalogue().await.unwrap();
    assert!(n > 40, "{n}");
    assert_eq!(
        pipeline.publish_catalogue().await.unwrap(),
        0,
        "publishing again writes nothing"
    );
    let (status, found) = call(
        &app,
        get("/fhir/Measure?url=https://fhir.pqom-gateway.org/Measure/training-compliance"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    let entries = found["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0]["resource"]["title"],
        "Training compliance (core competency framework and job essential training)"
    );
}
