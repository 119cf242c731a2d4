//! ICB and region indicator values over real HTTP, on both backends: trusts of the demo directory
//! (RM1, RGP, RCX in ICB QMM, region Y61; `mappings/organisations.toml`) submit through
//! `$process-message`; pooled reports must equal the sums of the submitted counts (computed here
//! from the submitted reports, not constants), say how many trusts reported, page with `_count`
//! and `next`, follow resubmissions; the consolidated regional bundle must verify with
//! `pqom-gateway verify` against the gateway's published JWKS.
//!
//! PostgreSQL: `PQOM_TEST_POSTGRES_URL`; `PQOM_SKIP_POSTGRES=1` skips that half.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use pqom_gateway::deliver::directory::Directory;
use pqom_gateway::deliver::keys::{KeyRing, SigningKey};
use pqom_gateway::map::Mapper;
use pqom_gateway::samples::{self, ReportParams};
use pqom_gateway::store::IndicatorQuery;
use reqwest::StatusCode;
use serde_json::Value;

use common::{TestApp, issue, json};
use pqom_gateway::api::AppState;

const STILLBIRTH: &str = "https://fhir.pqom-gateway.org/Measure/stillbirth-rate";
const ODS_SYSTEM: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
const COMPLETENESS: &str = "https://fhir.pqom-gateway.org/StructureDefinition/pqom-completeness";

on_both_backends!(
    with = configured;
    icb_and_region_reports_pool_the_trusts_counts,
    indicator_reports_page_with_count_and_next,
    regional_bundle_verifies_and_says_who_is_missing,
    regional_bundle_refusals_and_an_empty_region,
    a_resubmission_replaces_the_trusts_share_of_the_pool,
    the_series_endpoint_gives_pooled_points_per_period,
);

/// The gateway with the real mappings, the demo directory and a signing key.
fn configured(mut state: AppState) -> AppState {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mappings");
    let mapper = Arc::new(Mapper::load(&root).expect("mappings"));
    let directory = Arc::new(Directory::load(&root.join("organisations.toml")).expect("directory"));
    let ring = KeyRing::new(SigningKey::generate("test-ind").expect("key").0, Vec::new())
        .expect("key ring");
    state.pipeline = state.pipeline.with_mapper(mapper).with_directory(directory);
    state.with_keys(Arc::new(ring))
}

/// Submit one trust-month through `$process-message`; returns the MeasureReport submitted.
async fn submit(app: &TestApp, ods: &str, month: u32, seed: u64) -> Value {
    let params = ReportParams {
        ods: ods.into(),
        trust_name: format!("{ods} trust"),
        year: 2026,
        month,
        seed,
    };
    let bundle = samples::submission_bundle(&params);
    let response = app.message(&bundle).await;
    let status = response.status();
    let body = json(response).await;
    assert_eq!(status, StatusCode::OK, "{body:#}");
    bundle["entry"][1]["resource"].clone()
}

fn population(group: &Value, code: &str) -> u64 {
    group["population"]
        .as_array()
        .expect("populations")
        .iter()
        .find(|p| p["code"]["coding"][0]["code"] == code)
        .and_then(|p| p["count"].as_u64())
        .unwrap_or_else(|| panic!("no {code} in {group}"))
}

/// (numerator, denominator) of a report's group for `indicator` (a submitted report), or of its
/// only group (an indicator report).
fn counts(report: &Value, indicator: Option<&str>) -> (u64, u64) {
    let groups = report["group"].as_array().expect("groups");
    let group = match indicator {
        Some(code) => groups
            .iter()
            .find(|g| g["code"]["coding"][0]["code"] == code)
            .unwrap_or_else(|| panic!("no group {code}")),
        None => &groups[0],
    };
    (
        population(group, "numerator"),
        population(group, "denominator"),
    )
}

fn sum(reports: &[&Value], indicator: &str) -> (u64, u64) {
    reports
        .iter()
        .map(|r| counts(r, Some(indicator)))
        .fold((0, 0), |(n, d), (a, b)| (n + a, d + b))
}

/// Counts of one stratum (stratifier code, stratum code) of the only group of an indicator
/// report, or of `indicator`'s group of a submitted report.
fn stratum(report: &Value, indicator: Option<&str>, stratifier: &str, code: &str) -> (u64, u64) {
    let groups = report["group"].as_array().expect("groups");
    let group = match indicator {
        Some(i) => groups
            .iter()
            .find(|g| g["code"]["coding"][0]["code"] == i)
            .expect("group"),
        None => &groups[0],
    };
    let s = group["stratifier"]
        .as_array()
        .expect("stratifiers")
        .iter()
        .find(|s| s["code"][0]["coding"][0]["code"] == stratifier)
        .unwrap_or_else(|| panic!("no stratifier {stratifier}"))["stratum"]
        .as_array()
        .expect("strata")
        .iter()
        .find(|s| s["value"]["coding"][0]["code"] == code)
        .unwrap_or_else(|| panic!("no stratum {code}"))
        .clone();
    (population(&s, "numerator"), population(&s, "denominator"))
}

/// (reported, expected, missing) of a pooled report's or MessageHeader's completeness extension.
fn completeness(resource: &Value) -> (u64, u64, Vec<String>) {
    let ext = resource["extension"]
        .as_array()
        .expect("extensions")
        .iter()
        .find(|e| e["url"] == COMPLETENESS)
        .unwrap_or_else(|| panic!("no completeness in {resource}"));
    let parts = ext["extension"].as_array().expect("parts");
    let n = |name: &str| {
        parts
            .iter()
            .find(|p| p["url"] == name)
            .and_then(|p| p["valueUnsignedInt"].as_u64())
            .expect("count")
    };
    let missing = parts
        .iter()
        .filter(|p| p["url"] == "missing")
        .map(|p| p["valueIdentifier"]["value"].as_str().unwrap().to_owned())
        .collect();
    (n("reported"), n("expected"), missing)
}

async fn search(app: &TestApp, query: &str) -> Vec<Value> {
    let response = app.get(&format!("/MeasureReport?{query}")).await;
    let status = response.status();
    let body = json(response).await;
    assert_eq!(status, StatusCode::OK, "{query}: {body:#}");
    assert_eq!(body["type"], "searchset");
    body["entry"]
        .as_array()
        .map(|e| e.iter().map(|e| e["resource"].clone()).collect())
        .unwrap_or_default()
}

fn reporter(report: &Value) -> &str {
    report["reporter"]["identifier"]["value"].as_str().unwrap()
}

fn score(report: &Value) -> f64 {
    report["group"][0]["measureScore"]["value"]
        .as_f64()
        .expect("measureScore")
}

// ---------------------------------------------------------------------------------------------

async fn icb_and_region_reports_pool_the_trusts_counts(app: TestApp) {
    let rm1 = submit(&app, "RM1", 10, 1).await;
    let rgp = submit(&app, "RGP", 10, 2).await;
    // RCX has not reported October.
    let (n, d) = sum(&[&rm1, &rgp], "stillbirth-rate");
    assert!(d > 0, "the fixture has births");

    for (reporter_param, level) in [
        ("QMM".to_owned(), "icb"),
        ("Y61".to_owned(), "region"),
        (format!("{ODS_SYSTEM}|QMM"), "icb"),
        ("qmm".to_owned(), "icb"),
    ] {
        let found = search(
            &app,
            &format!(
                "measure={STILLBIRTH}&reporter={}&period=2026-10",
                reporter_param.replace('|', "%7C")
            ),
        )
        .await;
        assert_eq!(found.len(), 1, "{reporter_param}: {found:#?}");
        let report = &found[0];
        assert_eq!(counts(report, None), (n, d), "{reporter_param}");
        // The rate is recomputed from the pooled counts (per 1,000 births), not averaged.
        let expected = (n as f64 / d as f64 * 1000.0 * 10_000.0).round() / 10_000.0;
        assert!((score(report) - expected).abs() < 1e-9, "{reporter_param}");
        assert_eq!(
            completeness(report),
            (2, 3, vec!["RCX".to_owned()]),
            "{reporter_param}"
        );
        let level_ext = report["extension"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["url"].as_str().unwrap().ends_with("pqom-reporting-level"))
            .unwrap();
        assert_eq!(level_ext["valueCode"], level);
        // Strata pool too: one ethnic category and one IMD decile.
        for (stratifier, code) in [("ethnic-category", "A"), ("imd-decile", "1")] {
            let a = stratum(&rm1, Some("stillbirth-rate"), stratifier, code);
            let b = stratum(&rgp, Some("stillbirth-rate"), stratifier, code);
            assert_eq!(
                stratum(report, None, stratifier, code),
                (a.0 + b.0, a.1 + b.1),
                "{reporter_param} {stratifier} {code}"
            );
        }
    }

    // `subject` is a synonym; a trust gets its own values; several reporters at once.
    let by_subject = search(&app, &format!("measure={STILLBIRTH}&subject=QMM")).await;
    assert_eq!(counts(&by_subject[0], None), (n, d));
    let own = search(&app, &format!("measure={STILLBIRTH}&reporter=RM1")).await;
    assert_eq!(own.len(), 1);
    assert_eq!(counts(&own[0], None), counts(&rm1, Some("stillbirth-rate")));
    assert!(
        own[0]["extension"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["url"] != COMPLETENESS),
        "a trust's own report has no completeness"
    );
    let several = search(&app, &format!("measure={STILLBIRTH}&reporter=RM1,QMM,Y61")).await;
    let reporters: Vec<&str> = several.iter().map(reporter).collect();
    assert_eq!(reporters, ["QMM", "RM1", "Y61"]);

    // Mistakes are 400 with an OperationOutcome.
    for bad in [
        "reporter=https://other.example/ids%7CQMM",
        "period=October",
        "_count=0",
        "_cursor=garbage",
        "focus=x",
    ] {
        let response = app
            .get(&format!("/MeasureReport?measure={STILLBIRTH}&{bad}"))
            .await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{bad}");
        let outcome = json(response).await;
        assert_eq!(outcome["resourceType"], "OperationOutcome", "{bad}");
    }
}

async fn indicator_reports_page_with_count_and_next(app: TestApp) {
    let mut seed = 0;
    for ods in ["RM1", "RGP", "RCX"] {
        for month in [9, 10] {
            seed += 1;
            submit(&app, ods, month, seed).await;
        }
    }
    // 3 trusts + the ICB + the region, 2 months each.
    let query = format!("measure={STILLBIRTH}&reporter=RM1,RGP,RCX,QMM,Y61&_count=3");
    let first = app.get(&format!("/MeasureReport?{query}")).await;
    assert_eq!(first.status(), StatusCode::OK);
    let mut page = json(first).await;
    assert!(
        page.get("total").is_none(),
        "no total while more pages follow"
    );
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        pages += 1;
        let entries = page["entry"].as_array().cloned().unwrap_or_default();
        assert!(entries.len() <= 3);
        for e in entries {
            let r = &e["resource"];
            seen.push((
                reporter(r).to_owned(),
                r["period"]["start"].as_str().unwrap().to_owned(),
            ));
        }
        let next = page["link"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["relation"] == "next")
            .map(|l| l["url"].as_str().unwrap().to_owned());
        let Some(next) = next else { break };
        assert!(next.contains("_cursor="), "{next}");
        let response = app.get(&next).await;
        assert_eq!(response.status(), StatusCode::OK);
        page = json(response).await;
    }
    assert_eq!(pages, 4, "10 reports, 3 per page");
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "keyset order: reporter, then period");
    let distinct: BTreeSet<_> = seen.iter().cloned().collect();
    assert_eq!(distinct.len(), 10, "every report once: {seen:?}");
    let expected: BTreeSet<(String, String)> = ["QMM", "RCX", "RGP", "RM1", "Y61"]
        .iter()
        .flat_map(|r| {
            ["2026-09-01", "2026-10-01"]
                .iter()
                .map(move |p| (r.to_string(), p.to_string()))
        })
        .collect();
    assert_eq!(distinct, expected);

    // Everything on one page: a total, no next.
    let all = app
        .get(&format!(
            "/MeasureReport?measure={STILLBIRTH}&reporter=QMM&period=ge2026-09&period=le2026-10"
        ))
        .await;
    let all = json(all).await;
    assert_eq!(all["total"], 2);
    assert!(
        all["link"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["relation"] != "next")
    );
}

async fn regional_bundle_verifies_and_says_who_is_missing(app: TestApp) {
    let rm1 = submit(&app, "RM1", 10, 1).await;
    let rgp = submit(&app, "RGP", 10, 2).await;
    // Another month is not in the October bundle.
    submit(&app, "RCX", 9, 3).await;

    let response = app.get("/Bundle/$regional?region=Y61&period=2026-10").await;
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.bytes().await.unwrap().to_vec();
    let bundle: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(bundle["type"], "message");
    let entries: Vec<&Value> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .collect();
    let header = entries[0];
    assert_eq!(header["eventCoding"]["code"], "pqom-regional-bundle");
    assert_eq!(completeness(header), (2, 3, vec!["RCX".to_owned()]));
    assert_eq!(entries.last().unwrap()["resourceType"], "Provenance");

    let reports: Vec<&Value> = entries
        .iter()
        .copied()
        .filter(|r| r["resourceType"] == "MeasureReport")
        .collect();
    let stillbirth: Vec<&Value> = reports
        .iter()
        .copied()
        .filter(|r| r["measure"].as_str().unwrap().starts_with(STILLBIRTH))
        .collect();
    let by = |ods: &str| {
        stillbirth
            .iter()
            .copied()
            .find(|r| reporter(r) == ods)
            .unwrap_or_else(|| panic!("no {ods} report"))
    };
    let pooled = sum(&[&rm1, &rgp], "stillbirth-rate");
    assert_eq!(counts(by("Y61"), None), pooled);
    assert_eq!(counts(by("QMM"), None), pooled);
    assert_eq!(
        counts(by("RM1"), None),
        counts(&rm1, Some("stillbirth-rate"))
    );
    assert_eq!(
        counts(by("RGP"), None),
        counts(&rgp, Some("stillbirth-rate"))
    );
    assert_eq!(stillbirth.len(), 4, "region, ICB, two trusts");
    // Every mapped indicator: one region, one ICB and two trust reports each.
    let indicators: BTreeSet<&str> = reports
        .iter()
        .map(|r| r["measure"].as_str().unwrap())
        .collect();
    assert_eq!(reports.len(), indicators.len() * 4);
    // Region reports first, then the ICB's, then the trusts'.
    let levels: Vec<&str> = reports.iter().map(|r| reporter(r)).collect();
    let first_icb = levels.iter().position(|r| *r == "QMM").unwrap();
    let first_trust = levels.iter().position(|r| r.starts_with('R')).unwrap();
    assert!(levels[..first_icb].iter().all(|r| *r == "Y61"));
    assert!(levels[first_icb..first_trust].iter().all(|r| *r == "QMM"));

    // `pqom-gateway verify` checks it against the JWKS this gateway publishes.
    let (ok, out) = verify(&app, &bytes).await;
    assert!(ok, "{out}");
    assert!(out.contains("PASS  signature"), "{out}");
    assert!(out.contains("2 source submission(s)"), "{out}");
    // A changed count does not verify.
    let (pooled_n, _) = pooled;
    let tampered = String::from_utf8(bytes.clone()).unwrap().replacen(
        &format!("\"count\":{pooled_n}"),
        &format!("\"count\":{}", pooled_n + 1),
        1,
    );
    assert_ne!(tampered.as_bytes(), bytes.as_slice());
    let (ok, out) = verify(&app, tampered.as_bytes()).await;
    assert!(!ok, "{out}");
}

async fn regional_bundle_refusals_and_an_empty_region(app: TestApp) {
    submit(&app, "RM1", 10, 1).await;
    // The Midlands (Y60: QHL with RQ3 and RRK) has sent nothing: a valid bundle, 0 of 2.
    let response = app
        .get("/Bundle/%24regional?region=Y60&period=2026-10")
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.bytes().await.unwrap().to_vec();
    let bundle: Value = serde_json::from_slice(&bytes).unwrap();
    let entries = bundle["entry"].as_array().unwrap();
    assert_eq!(entries.len(), 2, "MessageHeader and Provenance only");
    assert_eq!(
        completeness(&entries[0]["resource"]),
        (0, 2, vec!["RQ3".to_owned(), "RRK".to_owned()])
    );
    let (ok, out) = verify(&app, &bytes).await;
    assert!(ok, "{out}");

    for (query, status, code) in [
        (
            "region=ZZ9&period=2026-10",
            StatusCode::NOT_FOUND,
            "not-found",
        ),
        (
            "region=QMM&period=2026-10",
            StatusCode::BAD_REQUEST,
            "value",
        ),
        (
            "region=RM1&period=2026-10",
            StatusCode::BAD_REQUEST,
            "value",
        ),
        ("region=Y61", StatusCode::BAD_REQUEST, "required"),
        ("period=2026-10", StatusCode::BAD_REQUEST, "required"),
        ("region=Y61&period=Oct", StatusCode::BAD_REQUEST, "value"),
        (
            "region=Y61&period=2026-10&x=1",
            StatusCode::BAD_REQUEST,
            "not-supported",
        ),
    ] {
        let response = app.get(&format!("/Bundle/$regional?{query}")).await;
        assert_eq!(response.status(), status, "{query}");
        let outcome = json(response).await;
        issue(&outcome, code, None);
    }
}

async fn a_resubmission_replaces_the_trusts_share_of_the_pool(app: TestApp) {
    let first = submit(&app, "RM1", 10, 1).await;
    let rgp = submit(&app, "RGP", 10, 2).await;
    let before = search(&app, &format!("measure={STILLBIRTH}&reporter=QMM")).await;
    assert_eq!(
        counts(&before[0], None),
        sum(&[&first, &rgp], "stillbirth-rate")
    );

    // RM1 corrects October (same report identifier, another message, other counts).
    let fixed = submit(&app, "RM1", 10, 41).await;
    assert_ne!(
        counts(&fixed, Some("stillbirth-rate")),
        counts(&first, Some("stillbirth-rate")),
        "the fixture changes the counts"
    );
    let after = search(&app, &format!("measure={STILLBIRTH}&reporter=QMM")).await;
    assert_eq!(after.len(), 1);
    assert_eq!(
        counts(&after[0], None),
        sum(&[&fixed, &rgp], "stillbirth-rate")
    );
    assert_eq!(completeness(&after[0]).0, 2, "still two trusts, not three");

    // The replaced values remain as history.
    let history = app
        .store
        .indicator_values(&IndicatorQuery {
            indicator: Some("stillbirth-rate".into()),
            trusts: vec!["RM1".into()],
            totals_only: true,
            include_history: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(history.len(), 2);
    assert_eq!(
        history.iter().filter(|v| v.superseded_by.is_some()).count(),
        1
    );
}

async fn the_series_endpoint_gives_pooled_points_per_period(app: TestApp) {
    let rm1_sep = submit(&app, "RM1", 9, 1).await;
    let rm1_oct = submit(&app, "RM1", 10, 2).await;
    let rgp_oct = submit(&app, "RGP", 10, 3).await;
    let response = app
        .client
        .get(format!(
            "{}/api/indicators/stillbirth-rate/series?org=QMM",
            app.addr
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let series = json(response).await;
    assert_eq!(series["level"], "icb");
    let points = series["points"].as_array().unwrap();
    assert_eq!(points.len(), 2);
    let (n, d) = sum(&[&rm1_sep], "stillbirth-rate");
    assert_eq!(points[0]["period_start"], "2026-09-01");
    assert_eq!(
        (
            points[0]["numerator"].as_u64(),
            points[0]["denominator"].as_u64()
        ),
        (Some(n), Some(d))
    );
    assert_eq!(points[0]["trusts_reported"], 1);
    assert_eq!(points[0]["trusts_expected"], 3);
    let (n, d) = sum(&[&rm1_oct, &rgp_oct], "stillbirth-rate");
    assert_eq!(
        (
            points[1]["numerator"].as_u64(),
            points[1]["denominator"].as_u64()
        ),
        (Some(n), Some(d))
    );
    assert_eq!(points[1]["trusts_reported"], 2);

    let from = app
        .client
        .get(format!(
            "{}/api/indicators/stillbirth-rate/series?org=RM1&from=2026-10",
            app.addr
        ))
        .send()
        .await
        .unwrap();
    let from = json(from).await;
    assert_eq!(from["level"], "trust");
    assert_eq!(from["points"].as_array().unwrap().len(), 1);

    for (path, status) in [
        (
            "/api/indicators/no-such-indicator/series?org=QMM",
            StatusCode::NOT_FOUND,
        ),
        (
            "/api/indicators/stillbirth-rate/series",
            StatusCode::BAD_REQUEST,
        ),
        (
            "/api/indicators/stillbirth-rate/series?org=QMM&from=x",
            StatusCode::BAD_REQUEST,
        ),
    ] {
        let response = app
            .client
            .get(format!("{}{path}", app.addr))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{path}");
        assert_eq!(json(response).await["resourceType"], "OperationOutcome");
    }
}

/// Run `pqom-gateway verify` on `bundle` with `--jwks {gateway}/.well-known/jwks.json`.
async fn verify(app: &TestApp, bundle: &[u8]) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("regional.json");
    std::fs::write(&file, bundle).unwrap();
    let jwks = format!("{}/.well-known/jwks.json", app.addr);
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_pqom-gateway"))
            .arg("verify")
            .arg(&file)
            .arg("--jwks")
            .arg(&jwks)
            .output()
            .expect("run pqom-gateway verify")
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}
