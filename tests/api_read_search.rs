//! Reading over HTTP: read, vread, history, search with paging, the CapabilityStatement (and
//! that everything it advertises answers), health, metrics, negotiation, unknown routes.

mod common;

use reqwest::StatusCode;
use serde_json::{Value, json};

use common::*;

on_both_backends!(
    read_and_vread_unknown_are_404_with_an_operation_outcome,
    search_pages_with_next_links_until_done,
    search_by_reporter_period_measure_and_status,
    search_with_an_unknown_parameter_is_400,
    every_interaction_the_capability_statement_advertises_answers,
    readyz_is_200_when_the_store_answers,
);

async fn read_and_vread_unknown_are_404_with_an_operation_outcome(app: TestApp) {
    let r = app.get("/MeasureReport/does-not-exist").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    issue(&json(r).await, "not-found", None);
    let created = json(app.post("/MeasureReport", &measure_report("R-1")).await).await;
    let id = created["id"].as_str().unwrap();
    let r = app.get(&format!("/MeasureReport/{id}/_history/7")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    issue(&json(r).await, "not-found", None);
    let r = app.get(&format!("/MeasureReport/{id}/_history/abc")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = app.get("/MeasureReport/does-not-exist/_history").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // A Measure id is not a MeasureReport.
    let r = app.get(&format!("/Measure/{id}")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

async fn search_pages_with_next_links_until_done(app: TestApp) {
    for i in 0..5 {
        let r = app
            .post("/MeasureReport", &measure_report(&format!("P-{i}")))
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let mut url = format!("{}/MeasureReport?reporter=RX1&_count=2", app.fhir);
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let r = app.get(&url).await;
        assert_eq!(r.status(), StatusCode::OK);
        let page = json(r).await;
        assert_eq!(page["type"], "searchset");
        pages += 1;
        let links = page["link"].as_array().unwrap();
        assert_eq!(links[0]["relation"], "self");
        for e in page["entry"].as_array().unwrap() {
            assert_eq!(e["search"]["mode"], "match");
            let id = e["resource"]["id"].as_str().unwrap();
            assert_eq!(e["fullUrl"], format!("{}/MeasureReport/{id}", app.fhir));
            seen.push(id.to_owned());
        }
        match links.iter().find(|l| l["relation"] == "next") {
            Some(next) => {
                assert!(
                    page.get("total").is_none(),
                    "total is only given when cheap"
                );
                url = next["url"].as_str().unwrap().to_owned();
                assert!(url.contains("reporter=RX1") && url.contains("_count=2"));
            }
            None => break,
        }
    }
    assert_eq!(pages, 3);
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 5, "every report exactly once");

    let all = json(app.get("/MeasureReport?reporter=RX1").await).await;
    assert_eq!(all["total"], 5);
}

async fn search_by_reporter_period_measure_and_status(app: TestApp) {
    app.post("/MeasureReport", &measure_report("S-1")).await;
    let mut other = measure_report("S-2");
    other["reporter"] = json!({ "identifier": { "system": ODS, "value": "RY2" } });
    other["period"] = json!({ "start": "2026-09-01", "end": "2026-09-30" });
    other["status"] = json!("pending");
    app.post("/MeasureReport", &other).await;

    async fn count(app: &TestApp, query: &str) -> usize {
        let r = app.get(&format!("/MeasureReport?{query}")).await;
        assert_eq!(r.status(), StatusCode::OK, "{query}");
        json(r).await["entry"].as_array().unwrap().len()
    }
    assert_eq!(count(&app, "reporter=RY2").await, 1);
    assert_eq!(count(&app, &format!("reporter={ODS}|RX1")).await, 1);
    assert_eq!(count(&app, "period=2026-10").await, 1);
    assert_eq!(
        count(&app, "period=ge2026-09-01&period=le2026-10-31").await,
        2
    );
    assert_eq!(count(&app, &format!("measure={ANNEX1}")).await, 2);
    assert_eq!(count(&app, "status=pending").await, 1);
    assert_eq!(count(&app, "status=complete,pending").await, 2);
    assert_eq!(count(&app, "_lastUpdated=gt2000-01-01").await, 2);
}

async fn search_with_an_unknown_parameter_is_400(app: TestApp) {
    let r = app.get("/MeasureReport?colour=blue").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    issue(&json(r).await, "not-supported", None);
    let r = app.get("/MeasureReport?period=last-tuesday").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

/// Everything `GET /fhir/metadata` says this server does, it does: no advertised interaction,
/// search parameter or operation answers 404 or 405.
async fn every_interaction_the_capability_statement_advertises_answers(app: TestApp) {
    let cs = json(app.get("/metadata").await).await;
    assert_eq!(cs["resourceType"], "CapabilityStatement");
    assert_eq!(cs["fhirVersion"], "4.0.1");
    assert!(cs["format"].as_array().unwrap().iter().any(|f| f == "json"));
    let rest = &cs["rest"][0];
    assert_eq!(rest["mode"], "server");
    let resources = rest["resource"].as_array().unwrap();
    assert!(!resources.is_empty());
    for resource in resources {
        let ty = resource["type"].as_str().unwrap();
        let codes: Vec<&str> = resource["interaction"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["code"].as_str().unwrap())
            .collect();
        let body = match ty {
            "MeasureReport" => Some(measure_report("CS-1")),
            "Measure" => Some(measure("https://fhir.pqom-gateway.org/Measure/cs", "cs")),
            // The endpoint does not answer: stored, then in error after the handshake.
            "Subscription" => Some(subscription("https://127.0.0.1:9/notify")),
            // Built-in topic definitions: read-only.
            "Basic" => None,
            other => panic!("advertised type {other} has no fixture"),
        };
        let (created_status, id) = match &body {
            Some(body) if codes.contains(&"create") => {
                let created = app.post(&format!("/{ty}"), body).await;
                let status = created.status();
                let created = json(created).await;
                (status, created["id"].as_str().unwrap_or("none").to_owned())
            }
            _ => (StatusCode::OK, "pqom-validated-submission".to_owned()),
        };
        for code in &codes {
            let status = match *code {
                "create" => created_status,
                "read" => app.get(&format!("/{ty}/{id}")).await.status(),
                "vread" => app.get(&format!("/{ty}/{id}/_history/1")).await.status(),
                "history-instance" => app.get(&format!("/{ty}/{id}/_history")).await.status(),
                "search-type" => app.get(&format!("/{ty}")).await.status(),
                "update" => {
                    let mut body = body.clone().expect("an updatable type has a fixture");
                    body["id"] = serde_json::json!(id);
                    app.client
                        .put(format!("{}/{ty}/{id}", app.fhir))
                        .header("content-type", "application/fhir+json")
                        .body(serde_json::to_vec(&body).unwrap())
                        .send()
                        .await
                        .unwrap()
                        .status()
                }
                "delete" => continue, // last, below
                other => panic!("advertised interaction {other} is not exercised by this test"),
            };
            assert!(status.is_success(), "{ty} {code} answered {status}");
        }
        for param in resource["searchParam"].as_array().unwrap() {
            let name = param["name"].as_str().unwrap();
            let value = match (ty, name, param["type"].as_str().unwrap()) {
                (_, _, "date") => "ge2000-01-01",
                ("Subscription", "status", _) => "active",
                _ => "x",
            };
            let r = app.get(&format!("/{ty}?{name}={value}")).await;
            assert_eq!(r.status(), StatusCode::OK, "{ty}?{name}={value}");
        }
        for op in resource["operation"].as_array().into_iter().flatten() {
            let name = op["name"].as_str().unwrap();
            let r = app.get(&format!("/{ty}/{id}/${name}")).await;
            assert_eq!(r.status(), StatusCode::OK, "{ty}/{id}/${name}");
        }
        if codes.contains(&"delete") {
            let r = app
                .client
                .delete(format!("{}/{ty}/{id}", app.fhir))
                .send()
                .await
                .unwrap();
            assert!(
                r.status().is_success(),
                "{ty} delete answered {}",
                r.status()
            );
        }
    }
    for op in rest["operation"].as_array().unwrap() {
        match op["name"].as_str().unwrap() {
            "process-message" => {
                let (bundle, _) = message("CS-2");
                assert_eq!(app.message(&bundle).await.status(), StatusCode::OK);
            }
            "regional" => {
                // Routed; this app has no organisation directory, and says so (404), rather
                // than answering "no route" or 405.
                let r = app.get("/Bundle/$regional?region=Y61&period=2026-10").await;
                let status = r.status();
                let body = json(r).await;
                assert!(
                    status.is_success() || status == StatusCode::NOT_FOUND,
                    "{status} {body}"
                );
                assert!(!body.to_string().contains("no route"), "{body}");
            }
            "events" => {
                // Routed; this app runs no delivery engine, and says so (404).
                let r = app.get("/$events?destination=x").await;
                let status = r.status();
                let body = json(r).await;
                assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
                assert!(body.to_string().contains("delivery"), "{body}");
            }
            other => panic!("advertised operation {other} is not exercised by this test"),
        }
    }
    // The advertised messaging endpoint is where messages are accepted.
    let address = cs["messaging"][0]["endpoint"][0]["address"]
        .as_str()
        .unwrap();
    assert_eq!(address, format!("{}/$process-message", app.fhir));
    let (bundle, _) = message("CS-3");
    let r = app
        .client
        .post(address)
        .header("content-type", "application/fhir+json")
        .body(serde_json::to_vec(&bundle).unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

async fn readyz_is_200_when_the_store_answers(app: TestApp) {
    let r = app
        .client
        .get(format!("{}/readyz", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------
// Storage-independent behaviour (SQLite).

#[tokio::test]
async fn loaded_profiles_are_advertised() {
    let profile = "https://fhir.pqom-gateway.org/StructureDefinition/pqom-trust-measurereport";
    let bundle_profile = "https://fhir.pqom-gateway.org/StructureDefinition/pqom-submission-bundle";
    let app = spawn_with(Backend::Sqlite, Default::default(), |s| {
        s.with_profiles(vec![
            ("MeasureReport".into(), profile.into()),
            ("Bundle".into(), bundle_profile.into()),
        ])
    })
    .await
    .unwrap();
    let cs = json(app.get("/metadata").await).await;
    let resources = cs["rest"][0]["resource"].as_array().unwrap();
    let of = |ty: &str| resources.iter().find(|r| r["type"] == ty).unwrap().clone();
    assert_eq!(of("MeasureReport")["supportedProfile"][0], profile);
    assert_eq!(of("Bundle")["supportedProfile"][0], bundle_profile);
    assert!(
        of("Bundle").get("interaction").is_none(),
        "Bundles are received as messages only"
    );
}

#[tokio::test]
async fn healthz_readyz_and_metrics() {
    let app = spawn(Backend::Sqlite).await.unwrap();
    let r = app
        .client
        .get(format!("{}/healthz", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let (bundle, _) = message("M-1");
    app.message(&bundle).await;
    app.post_raw("/MeasureReport", "application/fhir+json", b"nope".to_vec())
        .await;
    app.get("/MeasureReport/unknown").await;
    let r = app
        .client
        .get(format!("{}/metrics", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = r.text().await.unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("pqom_http_requests_total")
                && l.contains("route=\"/fhir/MeasureReport/{id}\"")
                && l.contains("status=\"404\"")),
        "{text}"
    );
    assert!(
        text.contains("pqom_http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("pqom_submissions_total")
            && l.contains("outcome=\"accepted\"")
            && l.contains("channel=\"message\"")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("pqom_submissions_total")
            && l.contains("outcome=\"rejected\"")
            && l.contains("reason=\"not-json\"")),
        "{text}"
    );
}

#[tokio::test]
async fn readyz_is_503_when_the_store_is_down() {
    let app = spawn_unavailable().await;
    let r = app
        .client
        .get(format!("{}/readyz", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    issue(&json(r).await, "transient", None);
    let r = app.get("/MeasureReport/x").await;
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_an_operation_outcome() {
    let app = spawn(Backend::Sqlite).await.unwrap();
    let r = app.get("/Patient/1").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let oo = json(r).await;
    assert!(
        issue(&oo, "not-supported", None)["diagnostics"]
            .as_str()
            .unwrap()
            .contains("'Patient'")
    );

    let r = app
        .client
        .get(format!("{}/nowhere", app.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    issue(&json(r).await, "not-supported", None);

    let r = app
        .client
        .delete(format!("{}/MeasureReport/1", app.fhir))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    issue(&json(r).await, "not-supported", None);
}

#[tokio::test]
async fn json_media_types_and_format_are_honoured() {
    let app = spawn(Backend::Sqlite).await.unwrap();
    let content_type =
        |r: &reqwest::Response| r.headers()["content-type"].to_str().unwrap().to_owned();
    let r = app
        .client
        .get(format!("{}/metadata", app.fhir))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert!(content_type(&r).starts_with("application/json"));
    let r = app
        .client
        .get(format!("{}/metadata", app.fhir))
        .header("accept", "application/fhir+json")
        .send()
        .await
        .unwrap();
    assert!(content_type(&r).starts_with("application/fhir+json"));
    // _format wins over Accept.
    let r = app
        .client
        .get(format!("{}/metadata?_format=json", app.fhir))
        .header("accept", "application/xml")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(content_type(&r).starts_with("application/fhir+json"));
    // The dollar of $process-message may come percent-encoded.
    let (bundle, _) = message("F-1");
    let r = app.post("/%24process-message", &bundle).await;
    assert_eq!(r.status(), StatusCode::OK);
    // application/json bodies are accepted too.
    let r = app
        .post_raw(
            "/MeasureReport",
            "application/json; charset=utf-8",
            serde_json::to_vec(&measure_report("F-2")).unwrap(),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let _: Value = json(r).await;
}

fn subscription(endpoint: &str) -> serde_json::Value {
    serde_json::json!({
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "capability check",
        "criteria": "https://fhir.pqom-gateway.org/SubscriptionTopic/pqom-validated-submission",
        "channel": { "type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json" }
    })
}
