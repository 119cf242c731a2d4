//! Test harness for the HTTP API: the real router on a random loopback port, over SQLite (a
//! fresh temporary data directory) or PostgreSQL (a fresh `pqom_api_<uuid>` database, dropped
//! afterwards), driven with reqwest.
//!
//! PostgreSQL: `PQOM_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`).
//! Unreachable means the PostgreSQL tests fail, unless `PQOM_SKIP_POSTGRES=1`.

#![allow(dead_code)]

pub mod gateway;
pub mod pg;

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Value, json};
use uuid::Uuid;

use pqom_gateway::api::{self, AppState};
use pqom_gateway::pipeline::{Limits, Pipeline};
use pqom_gateway::store::search::{SearchPage, SearchQuery};
use pqom_gateway::store::{
    self, CommitOutcome, NewSubmission, Store, StoreError, StoreResult, StoredResource,
    StoredSubmission,
};

pub const ODS: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
pub const REPORT_IDS: &str = "https://fhir.rx1.nhs.uk/Id/pqom-report";
pub const ANNEX1: &str = "https://fhir.pqom-gateway.org/Measure/pqom-annex1";
pub const EVENT_SYSTEM: &str = "https://fhir.pqom-gateway.org/CodeSystem/pqom-message-event";

#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A running gateway.
pub struct TestApp {
    /// `http://127.0.0.1:{port}`
    pub addr: String,
    /// `{addr}/fhir`
    pub fhir: String,
    pub client: reqwest::Client,
    pub store: Arc<dyn Store>,
    _guard: Guard,
}

enum Guard {
    None,
    Sqlite(tempfile::TempDir),
    Postgres(pg::PgDatabase),
}

/// Start the gateway on `backend`; `None` when PostgreSQL is skipped.
pub async fn spawn(backend: Backend) -> Option<TestApp> {
    spawn_with(backend, Limits::default(), |s| s).await
}

pub async fn spawn_with(
    backend: Backend,
    limits: Limits,
    configure: impl FnOnce(AppState) -> AppState,
) -> Option<TestApp> {
    let (store, guard) = match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("temporary directory");
            let store = store::open(None, dir.path()).await.expect("open SQLite");
            (store, Guard::Sqlite(dir))
        }
        Backend::Postgres => {
            let (store, db) = postgres_store().await?;
            (store, Guard::Postgres(db))
        }
    };
    Some(serve(store, limits, configure, guard).await)
}

/// The gateway over a store that is always unavailable.
pub async fn spawn_unavailable() -> TestApp {
    serve(Arc::new(DownStore), Limits::default(), |s| s, Guard::None).await
}

async fn serve(
    store: Arc<dyn Store>,
    limits: Limits,
    configure: impl FnOnce(AppState) -> AppState,
    guard: Guard,
) -> TestApp {
    let pipeline = Pipeline::new(store.clone(), limits);
    let state = configure(AppState::new(pipeline));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let app = api::router(state);
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("serve");
    });
    let addr = format!("http://127.0.0.1:{port}");
    TestApp {
        fhir: format!("{addr}/fhir"),
        addr,
        client: reqwest::Client::new(),
        store,
        _guard: guard,
    }
}

impl TestApp {
    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.fhir))
            .header("content-type", "application/fhir+json")
            .body(serde_json::to_vec(body).expect("json"))
            .send()
            .await
            .expect("request")
    }

    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.fhir))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request")
    }

    pub async fn get(&self, path_or_url: &str) -> reqwest::Response {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_owned()
        } else {
            format!("{}{path_or_url}", self.fhir)
        };
        self.client.get(url).send().await.expect("request")
    }

    pub async fn message(&self, body: &Value) -> reqwest::Response {
        self.post("/$process-message", body).await
    }
}

pub async fn json(response: reqwest::Response) -> Value {
    let bytes = response.bytes().await.expect("body");
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
}

/// Assert an OperationOutcome has an issue with `code` at `expression` (if given); returns it.
pub fn issue<'a>(outcome: &'a Value, code: &str, expression: Option<&str>) -> &'a Value {
    assert_eq!(outcome["resourceType"], "OperationOutcome", "{outcome:#}");
    let issues = outcome["issue"].as_array().expect("issues");
    issues
        .iter()
        .find(|i| {
            i["code"] == code
                && expression.is_none_or(|e| i["expression"][0] == e)
                && i["severity"].is_string()
                && i["diagnostics"].as_str().is_some_and(|d| !d.is_empty())
        })
        .unwrap_or_else(|| panic!("no '{code}' issue at {expression:?} in {outcome:#}"))
}

// ---------------------------------------------------------------------------------------------
// Fixtures

pub fn measure_report(identifier: &str) -> Value {
    json!({
        "resourceType": "MeasureReport",
        "identifier": [ { "system": REPORT_IDS, "value": identifier } ],
        "status": "complete",
        "type": "summary",
        "measure": ANNEX1,
        "reporter": { "identifier": { "system": ODS, "value": "RX1" } },
        "period": { "start": "2026-10-01", "end": "2026-10-31" },
        "group": [ {
            "code": { "coding": [ { "system": "https://fhir.pqom-gateway.org/CodeSystem/pqom-indicator", "code": "stillbirth-rate" } ] },
            "population": [
                { "code": { "coding": [ { "system": "http://terminology.hl7.org/CodeSystem/measure-population", "code": "numerator" } ] }, "count": 2 },
                { "code": { "coding": [ { "system": "http://terminology.hl7.org/CodeSystem/measure-population", "code": "denominator" } ] }, "count": 512 }
            ],
            "measureScore": { "value": 0.0039 }
        } ]
    })
}

pub fn measure(url: &str, identifier: &str) -> Value {
    json!({
        "resourceType": "Measure",
        "url": url,
        "identifier": [ { "system": "https://fhir.pqom-gateway.org/Id/measure", "value": identifier } ],
        "version": "1.0.0",
        "name": "PQOMAnnex1",
        "status": "active"
    })
}

/// A submission message whose focus is one MeasureReport; returns (bundle, header id).
pub fn message_with(report: Value) -> (Value, String) {
    let header_id = Uuid::new_v4().to_string();
    let report_url = format!("urn:uuid:{}", Uuid::new_v4());
    let bundle = json!({
        "resourceType": "Bundle",
        "type": "message",
        "timestamp": "2026-11-01T09:00:00Z",
        "entry": [
            {
                "fullUrl": format!("urn:uuid:{header_id}"),
                "resource": {
                    "resourceType": "MessageHeader",
                    "id": header_id,
                    "eventCoding": { "system": EVENT_SYSTEM, "code": "pqom-submission" },
                    "sender": { "identifier": { "system": ODS, "value": "RX1" } },
                    "source": { "endpoint": "https://epr.rx1.example/fhir" },
                    "focus": [ { "reference": report_url } ]
                }
            },
            { "fullUrl": report_url, "resource": report },
            {
                "fullUrl": format!("urn:uuid:{}", Uuid::new_v4()),
                "resource": { "resourceType": "Organization", "identifier": [ { "system": ODS, "value": "RX1" } ] }
            }
        ]
    });
    (bundle, header_id)
}

pub fn message(identifier: &str) -> (Value, String) {
    message_with(measure_report(identifier))
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

async fn postgres_store() -> Option<(Arc<dyn Store>, pg::PgDatabase)> {
    let database = pg::fresh_database("pqom_api").await?;
    let store = store::open(Some(&database.url), std::path::Path::new("."))
        .await
        .expect("open PostgreSQL store");
    Some((store, database))
}

/// Run each named test (an `async fn(TestApp)`) once per backend. With `with = f;` first, the
/// app state is configured by `f: fn(AppState) -> AppState` (plug in mappings, keys...).
#[macro_export]
macro_rules! on_both_backends {
    (with = $configure:ident; $($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let app = $crate::common::spawn_with(
                        $crate::common::Backend::Sqlite, Default::default(), super::$configure,
                    ).await.expect("sqlite");
                    super::$name(app).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(app) = $crate::common::spawn_with(
                        $crate::common::Backend::Postgres, Default::default(), super::$configure,
                    ).await {
                        super::$name(app).await;
                    }
                }
            )*
        }
    };
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let app = $crate::common::spawn($crate::common::Backend::Sqlite).await.expect("sqlite");
                    super::$name(app).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(app) = $crate::common::spawn($crate::common::Backend::Postgres).await {
                        super::$name(app).await;
                    }
                }
            )*
        }
    };
}

// ---------------------------------------------------------------------------------------------
// A store that is always down

struct DownStore;

fn down<T>() -> StoreResult<T> {
    Err(StoreError::Unavailable(sqlx::Error::PoolTimedOut))
}

#[async_trait]
impl Store for DownStore {
    async fn commit_submission(&self, _: NewSubmission) -> StoreResult<CommitOutcome> {
        down()
    }
    async fn submission(&self, _: Uuid) -> StoreResult<Option<StoredSubmission>> {
        down()
    }
    async fn submission_by_message_id(&self, _: &str) -> StoreResult<Option<StoredSubmission>> {
        down()
    }
    async fn read(&self, _: &str, _: &str) -> StoreResult<Option<StoredResource>> {
        down()
    }
    async fn vread(&self, _: &str, _: &str, _: i64) -> StoreResult<Option<StoredResource>> {
        down()
    }
    async fn history(&self, _: &str, _: &str) -> StoreResult<Vec<StoredResource>> {
        down()
    }
    async fn find_by_identifier(
        &self,
        _: &str,
        _: &str,
        _: &str,
    ) -> StoreResult<Option<StoredResource>> {
        down()
    }
    async fn submission_body(&self, _: Uuid) -> StoreResult<Option<Vec<u8>>> {
        down()
    }
    async fn submissions_by_sender(&self, _: &str, _: u32) -> StoreResult<Vec<StoredSubmission>> {
        down()
    }
    async fn search(&self, _: &str, _: &SearchQuery) -> StoreResult<SearchPage> {
        down()
    }
    async fn ping(&self) -> StoreResult<()> {
        down()
    }
}
