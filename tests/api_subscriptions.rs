//! Subscriptions end to end: the real `pqom-gateway serve` binary (SQLite in a fresh directory,
//! or a fresh PostgreSQL database), real HTTP, and wiremock as the subscriber's endpoint.
//!
//! Timing is never asserted with a fixed sleep: tests poll the endpoint's received requests (or
//! the API) until a deadline, and fail with what they saw.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use common::{issue, json, pg};

const SUBMISSION_TOPIC: &str =
    "https://fhir.pqom-gateway.org/SubscriptionTopic/pqom-validated-submission";
const BACKPORT: &str = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition";
const STATUS_PROFILE: &str = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-subscription-status-r4";
/// How long a test waits for something the gateway does in the background.
const DEADLINE: Duration = Duration::from_secs(20);

/// The real binary, killed when dropped.
struct Gateway {
    child: Child,
    fhir: String,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
    _db: Option<pg::PgDatabase>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

async fn start(backend: Backend) -> Option<Gateway> {
    let dir = tempfile::tempdir().unwrap();
    let db = match backend {
        Backend::Sqlite => None,
        Backend::Postgres => Some(pg::fresh_database("pqom_subs_api").await?),
    };
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pqom-gateway"));
    cmd.args([
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--subscription-http-loopback",
    ])
    .arg("--data-dir")
    .arg(dir.path())
    .env_remove("PQOM_DATABASE_URL")
    .env("RUST_LOG", "warn")
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    if let Some(db) = &db {
        cmd.args(["--database-url", &db.url]);
    }
    let mut child = cmd.spawn().expect("start pqom-gateway");
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    })
    .await
    .unwrap();
    let base = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in {line:?}"))
        .to_owned();
    Some(Gateway {
        child,
        fhir: format!("{base}/fhir"),
        client: reqwest::Client::new(),
        _dir: dir,
        _db: db,
    })
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let gw = super::start(super::Backend::Sqlite).await.unwrap();
                    super::$name(gw).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(gw) = super::start(super::Backend::Postgres).await {
                        super::$name(gw).await;
                    }
                }
            )*
        }
    };
}

on_both!(
    create_handshakes_with_headers_then_active,
    failing_handshake_puts_the_subscription_in_error,
    invalid_subscriptions_are_refused_with_expressions,
    heartbeats_arrive_and_stop_after_delete,
    status_operation_reports_events_since_start,
    update_search_and_topics,
);

impl Gateway {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> reqwest::Response {
        let mut r = self.client.request(method, format!("{}{path}", self.fhir));
        if let Some(b) = body {
            r = r
                .header("content-type", "application/fhir+json")
                .body(serde_json::to_vec(b).unwrap());
        }
        r.send().await.expect("request")
    }

    async fn create(&self, body: &Value) -> (reqwest::StatusCode, Option<String>, Value) {
        let r = self
            .send(reqwest::Method::POST, "/Subscription", Some(body))
            .await;
        let status = r.status();
        let location = r
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        (status, location, json(r).await)
    }

    async fn get_json(&self, path: &str) -> (reqwest::StatusCode, Value) {
        let r = self.send(reqwest::Method::GET, path, None).await;
        let status = r.status();
        (status, json(r).await)
    }
}

fn subscription(endpoint: &str, heartbeat: Option<u64>) -> Value {
    let mut channel_ext =
        vec![json!({ "url": format!("{BACKPORT}/backport-timeout"), "valueUnsignedInt": 3 })];
    if let Some(h) = heartbeat {
        channel_ext.push(json!({ "url": format!("{BACKPORT}/backport-heartbeat-period"), "valueUnsignedInt": h }));
    }
    json!({
        "resourceType": "Subscription",
        "meta": { "profile": [ format!("{BACKPORT}/backport-subscription") ] },
        "status": "requested",
        "reason": "QMM quality dashboard",
        "criteria": SUBMISSION_TOPIC,
        "_criteria": { "extension": [
            { "url": format!("{BACKPORT}/backport-filter-criteria"), "valueString": "MeasureReport?icb=QMM" }
        ] },
        "channel": {
            "extension": channel_ext,
            "type": "rest-hook",
            "endpoint": endpoint,
            "payload": "application/fhir+json",
            "_payload": { "extension": [
                { "url": format!("{BACKPORT}/backport-payload-content"), "valueCode": "id-only" }
            ] },
            "header": [ "Authorization: Bearer qmm-secret", "X-Feed: pqom" ]
        }
    })
}

async fn endpoint(status: u16) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/notify"))
        .respond_with(ResponseTemplate::new(status))
        .mount(&server)
        .await;
    server
}

/// The notification Bundles the endpoint received whose status Parameters say `kind`.
async fn received(server: &MockServer, kind: &str) -> Vec<(Request, Value)> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| {
            let body: Value = serde_json::from_slice(&r.body).ok()?;
            let params = body["entry"][0]["resource"]["parameter"].as_array()?;
            params
                .iter()
                .any(|p| p["name"] == "type" && p["valueCode"] == kind)
                .then_some((r, body))
        })
        .collect()
}

/// Poll until the endpoint has received at least `n` notifications of `kind`.
async fn wait_for(server: &MockServer, kind: &str, n: usize) -> Vec<(Request, Value)> {
    let start = Instant::now();
    loop {
        let got = received(server, kind).await;
        if got.len() >= n {
            return got;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "waited {DEADLINE:?} for {n} {kind} notification(s); got {}",
            got.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn param<'a>(bundle: &'a Value, name: &str) -> &'a Value {
    bundle["entry"][0]["resource"]["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no parameter {name} in {bundle:#}"))
}

async fn create_handshakes_with_headers_then_active(gw: Gateway) {
    let hook = endpoint(200).await;
    let (status, location, body) = gw
        .create(&subscription(&format!("{}/notify", hook.uri()), None))
        .await;
    assert_eq!(status, 201, "{body:#}");
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(
        location.as_deref(),
        Some(format!("{}/Subscription/{id}/_history/1", gw.fhir).as_str())
    );
    assert_eq!(
        body["status"], "active",
        "the handshake succeeded: {body:#}"
    );
    assert!(body.get("error").is_none());

    let handshakes = wait_for(&hook, "handshake", 1).await;
    assert_eq!(handshakes.len(), 1);
    let (request, bundle) = &handshakes[0];
    assert_eq!(request.headers["authorization"], "Bearer qmm-secret");
    assert_eq!(request.headers["x-feed"], "pqom");
    assert_eq!(request.headers["content-type"], "application/fhir+json");
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "history");
    let first = &bundle["entry"][0];
    assert_eq!(first["resource"]["resourceType"], "Parameters");
    assert_eq!(first["resource"]["meta"]["profile"][0], STATUS_PROFILE);
    assert_eq!(
        first["request"]["url"],
        format!("{}/Subscription/{id}/$status", gw.fhir)
    );
    assert_eq!(
        param(bundle, "subscription")["valueReference"]["reference"],
        format!("{}/Subscription/{id}", gw.fhir)
    );
    assert_eq!(param(bundle, "topic")["valueCanonical"], SUBMISSION_TOPIC);
    assert_eq!(param(bundle, "status")["valueCode"], "requested");
    assert_eq!(
        param(bundle, "events-since-subscription-start")["valueString"],
        "0"
    );

    let (status, read) = gw.get_json(&format!("/Subscription/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(read["status"], "active");
}

async fn failing_handshake_puts_the_subscription_in_error(gw: Gateway) {
    let hook = endpoint(500).await;
    let (status, _, body) = gw
        .create(&subscription(&format!("{}/notify", hook.uri()), None))
        .await;
    assert_eq!(
        status, 201,
        "stored even though the endpoint failed: {body:#}"
    );
    assert_eq!(body["status"], "error");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("HTTP 500"), "{error}");
    let id = body["id"].as_str().unwrap();
    let (_, read) = gw.get_json(&format!("/Subscription/{id}")).await;
    assert_eq!(read["status"], "error");
    assert!(read["error"].as_str().unwrap().contains("HTTP 500"));

    // Nothing listening at all: the reason says so.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        format!("http://127.0.0.1:{port}/notify")
    };
    let (_, _, body) = gw.create(&subscription(&dead, None)).await;
    assert_eq!(body["status"], "error");
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("could not be reached"),
        "{body:#}"
    );
}

async fn invalid_subscriptions_are_refused_with_expressions(gw: Gateway) {
    let mut bad_topic = subscription("https://icb.example/notify", None);
    bad_topic["criteria"] = json!("https://example.org/SubscriptionTopic/nope");
    bad_topic["channel"]["endpoint"] = json!("http://icb.example/notify");
    bad_topic["_criteria"]["extension"][0]["valueString"] = json!("MeasureReport?patient=1");
    let (status, _, outcome) = gw.create(&bad_topic).await;
    assert_eq!(status, 422, "{outcome:#}");
    issue(&outcome, "value", Some("Subscription.criteria"));
    issue(&outcome, "value", Some("Subscription.channel.endpoint"));
    issue(
        &outcome,
        "not-supported",
        Some("Subscription.criteria.extension[0].value"),
    );

    let mut bad_channel = subscription("https://icb.example/notify", None);
    bad_channel["channel"]["type"] = json!("email");
    bad_channel["channel"]["_payload"]["extension"][0]["valueCode"] = json!("everything");
    let (status, _, outcome) = gw.create(&bad_channel).await;
    assert_eq!(status, 422);
    issue(&outcome, "not-supported", Some("Subscription.channel.type"));
    issue(
        &outcome,
        "code-invalid",
        Some("Subscription.channel.payload.extension[0].value"),
    );

    let (status, _, outcome) = gw.create(&json!({ "resourceType": "Patient" })).await;
    assert_eq!(status, 400);
    issue(&outcome, "invalid", Some("resourceType"));

    let r = gw
        .client
        .post(format!("{}/Subscription", gw.fhir))
        .header("content-type", "application/fhir+json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Nothing was stored.
    let (_, search) = gw.get_json("/Subscription").await;
    assert_eq!(search["total"], 0, "{search:#}");
    let (status, outcome) = gw.get_json("/Subscription?colour=blue").await;
    assert_eq!(status, 400);
    issue(&outcome, "not-supported", Some("colour"));
}

async fn heartbeats_arrive_and_stop_after_delete(gw: Gateway) {
    let hook = endpoint(200).await;
    let (status, _, body) = gw
        .create(&subscription(&format!("{}/notify", hook.uri()), Some(1)))
        .await;
    assert_eq!(status, 201);
    assert_eq!(body["status"], "active");
    let id = body["id"].as_str().unwrap().to_owned();

    let beats = wait_for(&hook, "heartbeat", 2).await;
    let (request, bundle) = &beats[0];
    assert_eq!(request.headers["authorization"], "Bearer qmm-secret");
    assert_eq!(bundle["type"], "history");
    assert_eq!(param(bundle, "status")["valueCode"], "active");
    assert_eq!(
        bundle["entry"].as_array().unwrap().len(),
        1,
        "no events in a heartbeat"
    );

    let r = gw
        .send(
            reqwest::Method::DELETE,
            &format!("/Subscription/{id}"),
            None,
        )
        .await;
    assert_eq!(r.status(), 204);
    let (status, outcome) = gw.get_json(&format!("/Subscription/{id}")).await;
    assert_eq!(status, 410);
    issue(&outcome, "deleted", None);

    // After the delete, let several periods pass (observed through the endpoint itself: the
    // count must stop growing) and check no heartbeat arrived after the delete was answered.
    let after_delete = received(&hook, "heartbeat").await.len();
    let mut stable_since = Instant::now();
    let mut last = after_delete;
    let start = Instant::now();
    while stable_since.elapsed() < Duration::from_secs(3) {
        assert!(
            start.elapsed() < DEADLINE,
            "heartbeats kept coming after delete"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = received(&hook, "heartbeat").await.len();
        if now != last {
            last = now;
            stable_since = Instant::now();
        }
    }
    // One heartbeat may have been in flight when the delete committed; no more than that.
    assert!(
        last <= after_delete + 1,
        "{} heartbeats after the delete",
        last - after_delete
    );
}

async fn status_operation_reports_events_since_start(gw: Gateway) {
    let hook = endpoint(200).await;
    let (_, _, body) = gw
        .create(&subscription(&format!("{}/notify", hook.uri()), None))
        .await;
    let id = body["id"].as_str().unwrap().to_owned();
    for path in [
        format!("/Subscription/{id}/$status"),
        format!("/Subscription/{id}/%24status"),
    ] {
        let (status, bundle) = gw.get_json(&path).await;
        assert_eq!(status, 200, "{bundle:#}");
        assert_eq!(bundle["type"], "history");
        assert_eq!(
            bundle["entry"][0]["resource"]["meta"]["profile"][0],
            STATUS_PROFILE
        );
        assert_eq!(param(&bundle, "type")["valueCode"], "query-status");
        assert_eq!(param(&bundle, "status")["valueCode"], "active");
        assert_eq!(
            param(&bundle, "events-since-subscription-start")["valueString"],
            "0"
        );
    }
    let r = gw
        .send(
            reqwest::Method::POST,
            &format!("/Subscription/{id}/$status"),
            Some(&json!({ "resourceType": "Parameters" })),
        )
        .await;
    assert_eq!(r.status(), 200);
    let (status, outcome) = gw.get_json("/Subscription/nope/$status").await;
    assert_eq!(status, 404);
    issue(&outcome, "not-found", Some("Subscription"));

    // The CapabilityStatement lists Subscription with its interactions and $status.
    let (_, caps) = gw.get_json("/metadata").await;
    let sub = caps["rest"][0]["resource"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["type"] == "Subscription")
        .expect("Subscription in the CapabilityStatement");
    let codes: Vec<&str> = sub["interaction"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["read", "search-type", "create", "update", "delete"]);
    assert_eq!(sub["operation"][0]["name"], "status");
}

async fn update_search_and_topics(gw: Gateway) {
    let ok = endpoint(200).await;
    let failing = endpoint(503).await;
    let (_, _, first) = gw
        .create(&subscription(&format!("{}/notify", failing.uri()), None))
        .await;
    assert_eq!(first["status"], "error");
    let id = first["id"].as_str().unwrap().to_owned();

    // The client fixes its endpoint: a PUT makes version 2 and handshakes again.
    let mut fixed = subscription(&format!("{}/notify", ok.uri()), None);
    fixed["id"] = json!(id);
    let r = gw
        .send(
            reqwest::Method::PUT,
            &format!("/Subscription/{id}"),
            Some(&fixed),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["etag"], "W/\"2\"");
    let updated = json(r).await;
    assert_eq!(updated["status"], "active", "{updated:#}");
    assert_eq!(updated["meta"]["versionId"], "2");
    assert!(updated.get("error").is_none());
    wait_for(&ok, "handshake", 1).await;

    let mut mismatched = fixed.clone();
    mismatched["id"] = json!("other");
    let r = gw
        .send(
            reqwest::Method::PUT,
            &format!("/Subscription/{id}"),
            Some(&mismatched),
        )
        .await;
    assert_eq!(r.status(), 400);
    let r = gw
        .send(
            reqwest::Method::PUT,
            "/Subscription/unknown",
            Some(&{
                let mut v = fixed.clone();
                v["id"] = json!("unknown");
                v
            }),
        )
        .await;
    assert_eq!(r.status(), 404);

    // An "off" subscription is stored without a handshake.
    let mut off = subscription(&format!("{}/notify", ok.uri()), None);
    off["status"] = json!("off");
    let (status, _, off) = gw.create(&off).await;
    assert_eq!(status, 201);
    assert_eq!(off["status"], "off");
    assert_eq!(received(&ok, "handshake").await.len(), 1);

    let (_, active) = gw.get_json("/Subscription?status=active").await;
    assert_eq!(active["total"], 1);
    assert_eq!(active["entry"][0]["resource"]["id"], id.as_str());
    let (_, both) = gw.get_json("/Subscription?status=active,off").await;
    assert_eq!(both["total"], 2);
    let url = format!("{}/notify", ok.uri());
    let (_, by_url) = gw
        .get_json(&format!("/Subscription?url={}", urlencode(&url)))
        .await;
    assert_eq!(by_url["total"], 2);
    let (_, by_topic) = gw
        .get_json(&format!(
            "/Subscription?topic={}",
            urlencode(SUBMISSION_TOPIC)
        ))
        .await;
    assert_eq!(by_topic["total"], 2);
    let (_, none) = gw.get_json("/Subscription?status=error").await;
    assert_eq!(none["total"], 0);

    // The topics are published for receivers.
    let (status, topic) = gw.get_json("/Basic/pqom-validated-submission").await;
    assert_eq!(status, 200);
    assert_eq!(topic["resourceType"], "Basic");
    assert_eq!(topic["extension"][0]["valueUri"], SUBMISSION_TOPIC);
    let (_, topics) = gw.get_json("/Basic?code=SubscriptionTopic").await;
    assert_eq!(topics["total"], 2);
    let (status, _) = gw.get_json("/Basic/nope").await;
    assert_eq!(status, 404);
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// SIGTERM with a heartbeat loop running: the gateway stops promptly and cleanly (the loop
/// listens to the same shutdown signal as the server).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_the_gateway_and_its_heartbeats() {
    let mut gw = start(Backend::Sqlite).await.unwrap();
    let hook = endpoint(200).await;
    let (_, _, body) = gw
        .create(&subscription(&format!("{}/notify", hook.uri()), Some(1)))
        .await;
    assert_eq!(body["status"], "active");
    wait_for(&hook, "heartbeat", 1).await;
    let term = Command::new("kill")
        .args(["-TERM", &gw.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(term.success());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = gw.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "still running {DEADLINE:?} after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "exit status {status}");
}
