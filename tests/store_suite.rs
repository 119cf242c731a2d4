//! The storage contract, run against both backends: every test below runs once on SQLite (a
//! fresh temporary data directory) and once on PostgreSQL (a fresh `pqom_test_<uuid>` database,
//! dropped afterwards), so the two cannot drift.
//!
//! PostgreSQL: `PQOM_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//! must reach a server that lets the user create databases. If it is unreachable the PostgreSQL
//! tests fail, unless `PQOM_SKIP_POSTGRES=1`.

#[path = "common/pg.rs"]
mod pg;

use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use pqom_gateway::map::{IndicatorValue, Period, StratumKey};
use pqom_gateway::store::search::{Cursor, SearchQuery};
use pqom_gateway::store::{
    self, Channel, CommitOutcome, IndicatorQuery, NewSubmission, ResourceWrite, Store, StoreError,
    StoredResource, SubmissionStatus,
};

const ODS: &str = "https://fhir.nhs.uk/Id/ods-organization-code";
const REPORT_ID_SYSTEM: &str = "https://fhir.rx1.nhs.uk/Id/pqom-report";
const ANNEX1: &str = "https://fhir.pqom-gateway.org/Measure/pqom-annex1";
const CQIM: &str = "https://fhir.pqom-gateway.org/Measure/msds-cqim";

// ---------------------------------------------------------------------------------------------
// Backends

/// A store and what must outlive it (the temporary directory, or the database to drop).
struct Backend {
    store: Arc<dyn Store>,
    /// What `store::open` was given, to open a second instance on the same database.
    database_url: Option<String>,
    data_dir: std::path::PathBuf,
    _guard: Guard,
}

impl Backend {
    /// Another gateway instance sharing this database (for SQLite, another connection pool
    /// on the same file, as a second process would have).
    async fn another_instance(&self) -> Arc<dyn Store> {
        store::open(self.database_url.as_deref(), &self.data_dir)
            .await
            .expect("open a second instance")
    }
}

enum Guard {
    Sqlite { _dir: tempfile::TempDir },
    Postgres { _database: pg::PgDatabase },
}

async fn sqlite_backend() -> Backend {
    let dir = tempfile::tempdir().expect("temporary directory");
    // A directory that does not exist yet: the store creates it.
    let data_dir = dir.path().join("data");
    let store = store::open(None, &data_dir)
        .await
        .expect("open SQLite store");
    Backend {
        store,
        database_url: None,
        data_dir,
        _guard: Guard::Sqlite { _dir: dir },
    }
}

async fn postgres_backend() -> Option<Backend> {
    let database = pg::fresh_database("pqom_test").await?;
    let database_url = database.url.clone();
    let store = store::open(Some(&database_url), std::path::Path::new("."))
        .await
        .expect("open PostgreSQL store");
    Some(Backend {
        store,
        database_url: Some(database_url),
        data_dir: ".".into(),
        _guard: Guard::Postgres {
            _database: database,
        },
    })
}

/// Declare each test once; run it on both backends.
macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let backend = super::sqlite_backend().await;
                    super::$name(&backend).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    let Some(backend) = super::postgres_backend().await else { return };
                    super::$name(&backend).await;
                }
            )*
        }
    };
}

suite!(
    commit_stamps_id_version_and_last_updated,
    resubmission_becomes_next_version_with_history,
    writes_without_matching_identifier_are_new_resources,
    duplicate_message_id_returns_original_and_writes_nothing,
    concurrent_duplicate_message_id_commits_once,
    concurrent_resubmission_does_not_fork_versions,
    rejected_submission_is_kept_with_outcome_and_no_resources,
    received_bytes_are_returned_exactly,
    decimals_keep_their_written_form,
    submissions_by_sender_newest_first,
    search_by_reporter,
    search_by_period_prefixes,
    search_by_measure_status_and_identifier,
    search_by_last_updated_prefixes,
    search_measures_by_url_version_and_name,
    paging_follows_the_cursor_across_pages,
    default_and_maximum_page_size,
    search_matches_current_versions_only,
    a_write_that_is_not_a_resource_is_refused_and_nothing_is_written,
    indicator_values_are_committed_with_their_submission,
    a_failing_commit_leaves_neither_submission_nor_values,
);

// ---------------------------------------------------------------------------------------------
// Fixtures

struct Report<'a> {
    identifier: &'a str,
    reporter: Value,
    measure: &'a str,
    status: &'a str,
    period: Value,
}

impl Default for Report<'_> {
    fn default() -> Self {
        Report {
            identifier: "r-1",
            reporter: json!({"reference": "Organization/RX1", "identifier": {"system": ODS, "value": "RX1"}}),
            measure: ANNEX1,
            status: "complete",
            period: json!({"start": "2025-04-01", "end": "2025-04-30"}),
        }
    }
}

impl Report<'_> {
    fn json(&self) -> Value {
        json!({
            "resourceType": "MeasureReport",
            "meta": {"profile": ["https://fhir.pqom-gateway.org/StructureDefinition/pqom-trust-measurereport"]},
            "identifier": [{"system": REPORT_ID_SYSTEM, "value": self.identifier}],
            "status": self.status,
            "type": "summary",
            "measure": self.measure,
            "reporter": self.reporter,
            "period": self.period,
            "group": [{"code": {"coding": [{"code": "stillbirth-rate"}]}}]
        })
    }

    fn write(&self) -> ResourceWrite {
        ResourceWrite {
            resource_type: "MeasureReport".into(),
            resource: self.json(),
            identifier: Some((REPORT_ID_SYSTEM.into(), self.identifier.into())),
        }
    }
}

fn measure(identifier: &str, url: &str, version: &str, name: &str) -> ResourceWrite {
    ResourceWrite {
        resource_type: "Measure".into(),
        resource: json!({
            "resourceType": "Measure",
            "identifier": [{"system": "urn:ietf:rfc:3986", "value": identifier}],
            "url": url,
            "version": version,
            "name": name,
            "status": "active"
        }),
        identifier: Some(("urn:ietf:rfc:3986".into(), identifier.into())),
    }
}

fn submission(
    message_id: Option<&str>,
    sender: &str,
    resources: Vec<ResourceWrite>,
) -> NewSubmission {
    let body = serde_json::to_vec(&json!({
        "resourceType": "Bundle",
        "type": "message",
        "entry": resources.iter().map(|r| json!({"resource": r.resource})).collect::<Vec<_>>()
    }))
    .expect("serialise");
    NewSubmission {
        id: Uuid::new_v4(),
        received_at: OffsetDateTime::now_utc(),
        channel: Channel::Message,
        message_id: message_id.map(str::to_owned),
        sender: Some(sender.to_owned()),
        sha256: hex(&Sha256::digest(&body)),
        body,
        status: SubmissionStatus::Accepted,
        outcome: json!({"resourceType": "OperationOutcome", "issue": [{"severity": "information", "code": "informational"}]}),
        response: message_id.map(
            |m| json!({"resourceType": "Bundle", "type": "message", "id": format!("resp-{m}")}),
        ),
        resources,
        event: None,
        indicator_values: vec![],
    }
}

/// An October 2026 value of `indicator` for `trust` (a total, or one stratum).
fn indicator_value(
    indicator: &str,
    trust: &str,
    stratum: Option<&str>,
    numerator: u64,
    denominator: u64,
) -> IndicatorValue {
    IndicatorValue {
        indicator: indicator.to_owned(),
        trust: trust.to_owned(),
        period: Period {
            start: "2026-10-01".into(),
            end: "2026-10-31".into(),
        },
        stratum: stratum.map(|code| StratumKey {
            stratifier: "imd-quintile".into(),
            system: "https://fhir.pqom-gateway.org/CodeSystem/pqom-imd-quintile".into(),
            code: code.into(),
        }),
        numerator,
        denominator: Some(denominator),
        value: Some(numerator as f64 / denominator as f64 * 1000.0),
        narrative: None,
        hit: 0,
    }
}

/// Current (numerator, denominator, submission) of each stored value of `trust`, by indicator
/// and stratum code.
async fn current_values(
    store: &Arc<dyn Store>,
    trust: &str,
) -> Vec<(String, String, u64, Option<u64>, Uuid)> {
    store
        .indicator_values(&IndicatorQuery {
            trusts: vec![trust.to_owned()],
            ..IndicatorQuery::default()
        })
        .await
        .expect("indicator values")
        .into_iter()
        .map(|s| {
            (
                s.value.indicator,
                s.value.stratum.map(|k| k.code).unwrap_or_default(),
                s.value.numerator,
                s.value.denominator,
                s.submission_id,
            )
        })
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn commit(store: &Arc<dyn Store>, submission: NewSubmission) -> Vec<StoredResource> {
    match store.commit_submission(submission).await.expect("commit") {
        CommitOutcome::Committed(written) => written,
        CommitOutcome::DuplicateMessage(s) => panic!("unexpected duplicate of {}", s.id),
    }
}

async fn commit_one(store: &Arc<dyn Store>, write: ResourceWrite) -> StoredResource {
    let mut written = commit(store, submission(None, "RX1", vec![write])).await;
    assert_eq!(written.len(), 1);
    written.remove(0)
}

/// Business identifiers (first `identifier.value`) of the resources a search returns.
async fn search_ids(
    store: &Arc<dyn Store>,
    resource_type: &str,
    params: &[(&str, &str)],
) -> BTreeSet<String> {
    let params: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let query = SearchQuery::parse(resource_type, &params)
        .unwrap_or_else(|issues| panic!("{params:?} did not parse: {issues:?}"));
    let page = store.search(resource_type, &query).await.expect("search");
    assert!(page.next.is_none(), "fixture searches fit on one page");
    page.resources
        .iter()
        .map(|r| {
            r.resource["identifier"][0]["value"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

fn instant_us(at: OffsetDateTime) -> String {
    at.format(time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    ))
    .expect("format")
}

// ---------------------------------------------------------------------------------------------
// Tests

async fn commit_stamps_id_version_and_last_updated(backend: &Backend) {
    let store = backend.store.clone();
    let sub = submission(Some("m-1"), "RX1", vec![Report::default().write()]);
    let sub_id = sub.id;
    let written = commit(&store, sub).await;
    let stored = &written[0];
    assert_eq!(stored.version_id, 1);
    assert_eq!(stored.submission_id, sub_id);
    assert_eq!(stored.resource["id"], json!(stored.id));
    assert_eq!(stored.resource["meta"]["versionId"], json!("1"));
    let last_updated = stored.resource["meta"]["lastUpdated"]
        .as_str()
        .expect("lastUpdated");
    assert_eq!(
        OffsetDateTime::parse(last_updated, &time::format_description::well_known::Rfc3339)
            .expect("instant"),
        stored.last_updated
    );
    // Other meta members are kept.
    assert!(stored.resource["meta"]["profile"].is_array());

    let read = store
        .read("MeasureReport", &stored.id)
        .await
        .expect("read")
        .expect("found");
    assert_eq!(&read, stored);
    assert!(
        store
            .read("Measure", &stored.id)
            .await
            .expect("read")
            .is_none()
    );
    assert!(
        store
            .read("MeasureReport", "no-such-id")
            .await
            .expect("read")
            .is_none()
    );

    let submission = store
        .submission(sub_id)
        .await
        .expect("submission")
        .expect("found");
    assert_eq!(submission.message_id.as_deref(), Some("m-1"));
    assert_eq!(submission.sender.as_deref(), Some("RX1"));
    assert_eq!(submission.status, SubmissionStatus::Accepted);
    assert_eq!(submission.channel, Channel::Message);
    assert_eq!(
        submission.response.as_ref().expect("response")["id"],
        json!("resp-m-1")
    );
    assert_eq!(
        store
            .submission_by_message_id("m-1")
            .await
            .expect("by message id")
            .map(|s| s.id),
        Some(sub_id)
    );
    store.ping().await.expect("ping");
}

async fn resubmission_becomes_next_version_with_history(backend: &Backend) {
    let store = backend.store.clone();
    let first = commit_one(
        &store,
        Report {
            status: "pending",
            ..Report::default()
        }
        .write(),
    )
    .await;
    let second = commit_one(&store, Report::default().write()).await;
    let third = commit_one(
        &store,
        Report {
            status: "error",
            ..Report::default()
        }
        .write(),
    )
    .await;

    assert_eq!(
        second.id, first.id,
        "same identifier, same logical resource"
    );
    assert_eq!(third.id, first.id);
    assert_eq!(
        (first.version_id, second.version_id, third.version_id),
        (1, 2, 3)
    );
    assert!(second.last_updated > first.last_updated && third.last_updated > second.last_updated);
    assert_eq!(third.resource["meta"]["versionId"], json!("3"));

    let current = store
        .read("MeasureReport", &first.id)
        .await
        .expect("read")
        .expect("found");
    assert_eq!(current, third);

    let history = store
        .history("MeasureReport", &first.id)
        .await
        .expect("history");
    assert_eq!(
        history.iter().map(|r| r.version_id).collect::<Vec<_>>(),
        vec![3, 2, 1]
    );
    assert_eq!(history[2], first);

    let v1 = store
        .vread("MeasureReport", &first.id, 1)
        .await
        .expect("vread")
        .expect("v1");
    assert_eq!(v1.resource["status"], json!("pending"));
    assert_eq!(v1, first);
    assert!(
        store
            .vread("MeasureReport", &first.id, 4)
            .await
            .expect("vread")
            .is_none()
    );

    let found = store
        .find_by_identifier("MeasureReport", REPORT_ID_SYSTEM, "r-1")
        .await
        .expect("find")
        .expect("found");
    assert_eq!(found, third);
    assert!(
        store
            .find_by_identifier("MeasureReport", "other-system", "r-1")
            .await
            .expect("find")
            .is_none()
    );
}

async fn writes_without_matching_identifier_are_new_resources(backend: &Backend) {
    let store = backend.store.clone();
    let a = commit_one(&store, Report::default().write()).await;
    let b = commit_one(
        &store,
        Report {
            identifier: "r-2",
            ..Report::default()
        }
        .write(),
    )
    .await;
    // Same identifier value, other system: another resource.
    let mut other_system = Report::default().write();
    other_system.identifier = Some(("https://other.example/Id".into(), "r-1".into()));
    let c = commit_one(&store, other_system).await;
    // No identifier: always a new resource.
    let mut anonymous = Report::default().write();
    anonymous.identifier = None;
    let d = commit_one(&store, anonymous.clone()).await;
    let e = commit_one(&store, anonymous).await;
    // Same identifier on another resource type: another resource.
    let mut as_measure = measure("r-1", "https://x/Measure/m", "1", "M");
    as_measure.identifier = Some((REPORT_ID_SYSTEM.into(), "r-1".into()));
    let f = commit_one(&store, as_measure).await;

    let ids: BTreeSet<&str> = [&a, &b, &c, &d, &e, &f]
        .iter()
        .map(|r| r.id.as_str())
        .collect();
    assert_eq!(ids.len(), 6);
    assert!([&a, &b, &c, &d, &e, &f].iter().all(|r| r.version_id == 1));
}

async fn duplicate_message_id_returns_original_and_writes_nothing(backend: &Backend) {
    let store = backend.store.clone();
    let original = submission(Some("m-dup"), "RX1", vec![Report::default().write()]);
    let original_id = original.id;
    let written = commit(&store, original).await;

    let again = submission(
        Some("m-dup"),
        "RX1",
        vec![
            Report {
                status: "error",
                ..Report::default()
            }
            .write(),
            Report {
                identifier: "r-new",
                ..Report::default()
            }
            .write(),
        ],
    );
    let again_id = again.id;
    match store.commit_submission(again).await.expect("commit") {
        CommitOutcome::DuplicateMessage(first) => {
            assert_eq!(first.id, original_id);
            assert_eq!(first.response.expect("response")["id"], json!("resp-m-dup"));
        }
        CommitOutcome::Committed(_) => panic!("a duplicate message id was processed again"),
    }
    assert!(
        store
            .submission(again_id)
            .await
            .expect("submission")
            .is_none()
    );
    let current = store
        .read("MeasureReport", &written[0].id)
        .await
        .expect("read")
        .expect("found");
    assert_eq!(current.version_id, 1);
    assert_eq!(current.resource["status"], json!("complete"));
    assert!(
        store
            .find_by_identifier("MeasureReport", REPORT_ID_SYSTEM, "r-new")
            .await
            .expect("find")
            .is_none()
    );
}

async fn concurrent_duplicate_message_id_commits_once(backend: &Backend) {
    let store = backend.store.clone();
    // Two instances sharing the database race, as well as tasks within each.
    let instances = [store.clone(), backend.another_instance().await];
    const RACERS: usize = 8;
    let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
    let tasks: Vec<_> = (0..RACERS)
        .map(|i| {
            let store = instances[i % 2].clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                let identifier = format!("race-{i}");
                let sub = submission(
                    Some("m-race"),
                    "RX1",
                    vec![
                        Report {
                            identifier: &identifier,
                            ..Report::default()
                        }
                        .write(),
                    ],
                );
                let id = sub.id;
                barrier.wait().await;
                (id, store.commit_submission(sub).await.expect("commit"))
            })
        })
        .collect();
    let mut winners = Vec::new();
    let mut duplicates_of = Vec::new();
    for task in tasks {
        match task.await.expect("task") {
            (id, CommitOutcome::Committed(_)) => winners.push(id),
            (_, CommitOutcome::DuplicateMessage(original)) => duplicates_of.push(original.id),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one racer commits");
    assert_eq!(duplicates_of.len(), RACERS - 1);
    assert!(duplicates_of.iter().all(|id| *id == winners[0]));
    let query = SearchQuery::default();
    let page = store.search("MeasureReport", &query).await.expect("search");
    assert_eq!(
        page.resources.len(),
        1,
        "only the winner's resource was written"
    );
    assert_eq!(page.resources[0].submission_id, winners[0]);
}

async fn concurrent_resubmission_does_not_fork_versions(backend: &Backend) {
    let store = backend.store.clone();
    // Two instances sharing the database race, as well as tasks within each.
    let instances = [store.clone(), backend.another_instance().await];
    const RACERS: usize = 8;
    let barrier = Arc::new(tokio::sync::Barrier::new(RACERS));
    let tasks: Vec<_> = (0..RACERS)
        .map(|i| {
            let store = instances[i % 2].clone();
            let barrier = barrier.clone();
            tokio::spawn(async move {
                let sub = submission(
                    Some(&format!("m-{i}")),
                    "RX1",
                    vec![Report::default().write()],
                );
                barrier.wait().await;
                store.commit_submission(sub).await.expect("commit")
            })
        })
        .collect();
    let mut written = Vec::new();
    for task in tasks {
        match task.await.expect("task") {
            CommitOutcome::Committed(mut w) => written.push(w.remove(0)),
            CommitOutcome::DuplicateMessage(_) => panic!("distinct message ids are not duplicates"),
        }
    }
    let ids: BTreeSet<&str> = written.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids.len(), 1, "one logical resource, not a fork");
    let mut versions: Vec<i64> = written.iter().map(|r| r.version_id).collect();
    versions.sort();
    assert_eq!(versions, (1..=RACERS as i64).collect::<Vec<_>>());
    let id = written[0].id.clone();
    let history = store.history("MeasureReport", &id).await.expect("history");
    assert_eq!(
        history.iter().map(|r| r.version_id).collect::<Vec<_>>(),
        (1..=RACERS as i64).rev().collect::<Vec<_>>()
    );
    let current = store
        .read("MeasureReport", &id)
        .await
        .expect("read")
        .expect("found");
    assert_eq!(current.version_id, RACERS as i64);
}

async fn rejected_submission_is_kept_with_outcome_and_no_resources(backend: &Backend) {
    let store = backend.store.clone();
    let mut rejected = submission(Some("m-bad"), "RX9", vec![]);
    rejected.status = SubmissionStatus::Rejected;
    rejected.outcome = json!({
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "required", "diagnostics": "MeasureReport.period is required", "expression": ["Bundle.entry[1].resource.period"]}]
    });
    let id = rejected.id;
    let outcome = rejected.outcome.clone();
    assert!(commit(&store, rejected).await.is_empty());

    let stored = store
        .submission(id)
        .await
        .expect("submission")
        .expect("found");
    assert_eq!(stored.status, SubmissionStatus::Rejected);
    assert_eq!(stored.outcome, outcome);
    let page = store
        .search("MeasureReport", &SearchQuery::default())
        .await
        .expect("search");
    assert!(page.resources.is_empty());

    // A rejected message id is still a message id: resending it gets the same answer.
    let resend = submission(Some("m-bad"), "RX9", vec![Report::default().write()]);
    match store.commit_submission(resend).await.expect("commit") {
        CommitOutcome::DuplicateMessage(first) => {
            assert_eq!(first.id, id);
            assert_eq!(first.status, SubmissionStatus::Rejected);
        }
        CommitOutcome::Committed(_) => panic!("resent message processed again"),
    }
}

async fn received_bytes_are_returned_exactly(backend: &Backend) {
    let store = backend.store.clone();
    let mut sub = submission(Some("m-bytes"), "RX1", vec![]);
    // A byte-order mark, odd whitespace, escapes and a non-UTF-8 byte: none of it normalised.
    let body =
        b"\xef\xbb\xbf{ \"resourceType\" :\t\"Bundle\",\r\n \"x\": \"\\u00e9\xc3\xa9\" }\xff\x00"
            .to_vec();
    sub.sha256 = hex(&Sha256::digest(&body));
    sub.body = body.clone();
    let id = sub.id;
    let sha = sub.sha256.clone();
    commit(&store, sub).await;
    assert_eq!(store.submission_body(id).await.expect("body"), Some(body));
    assert_eq!(
        store
            .submission(id)
            .await
            .expect("submission")
            .expect("found")
            .sha256,
        sha
    );
    assert_eq!(
        store.submission_body(Uuid::new_v4()).await.expect("body"),
        None
    );
}

async fn decimals_keep_their_written_form(backend: &Backend) {
    // FHIR decimals carry their precision in their text (`0.750` is not `0.75`), and forwarded
    // resources are signed over their text: what is read back must be what was written.
    let store = backend.store.clone();
    let mut write = Report {
        identifier: "r-decimal",
        ..Report::default()
    }
    .write();
    let score: Value =
        serde_json::from_str(r#"{"value": 0.750, "unit": "1", "big": 12345678901234567890.0100}"#)
            .expect("json");
    write.resource["group"][0]["measureScore"] = score;
    let stored = commit_one(&store, write).await;
    for (what, resource) in [
        ("as committed", stored.resource.clone()),
        (
            "as read",
            store
                .read("MeasureReport", &stored.id)
                .await
                .expect("read")
                .expect("found")
                .resource,
        ),
    ] {
        let text = serde_json::to_string(&resource["group"][0]["measureScore"]).expect("text");
        assert!(
            text.contains(r#""value":0.750"#) && text.contains("12345678901234567890.0100"),
            "{what} ({}): decimals reshaped: {text}",
            if backend.database_url.is_some() {
                "PostgreSQL"
            } else {
                "SQLite"
            }
        );
    }
}

async fn submissions_by_sender_newest_first(backend: &Backend) {
    let store = backend.store.clone();
    let base = OffsetDateTime::now_utc();
    for (i, sender) in ["RX1", "RX2", "RX1", "RX1"].iter().enumerate() {
        let mut sub = submission(Some(&format!("m-{i}")), sender, vec![]);
        sub.received_at = base + time::Duration::seconds(i as i64);
        if i == 2 {
            sub.status = SubmissionStatus::Rejected;
        }
        commit(&store, sub).await;
    }
    let rx1 = store
        .submissions_by_sender("RX1", 10)
        .await
        .expect("by sender");
    assert_eq!(
        rx1.iter()
            .map(|s| s.message_id.clone().unwrap_or_default())
            .collect::<Vec<_>>(),
        vec!["m-3", "m-2", "m-0"]
    );
    assert_eq!(rx1[1].status, SubmissionStatus::Rejected);
    assert_eq!(
        store
            .submissions_by_sender("RX1", 2)
            .await
            .expect("limit")
            .len(),
        2
    );
    assert!(
        store
            .submissions_by_sender("RX7", 10)
            .await
            .expect("none")
            .is_empty()
    );
}

async fn search_by_reporter(backend: &Backend) {
    let store = backend.store.clone();
    commit_one(
        &store,
        Report {
            identifier: "a",
            ..Report::default()
        }
        .write(),
    )
    .await;
    commit_one(
        &store,
        Report {
            identifier: "b",
            reporter: json!({"identifier": {"system": ODS, "value": "RX2"}}),
            ..Report::default()
        }
        .write(),
    )
    .await;
    commit_one(
        &store,
        Report {
            identifier: "c",
            reporter: json!({"reference": "https://example.org/fhir/Organization/RX3"}),
            ..Report::default()
        }
        .write(),
    )
    .await;
    let mr = "MeasureReport";
    let ods_rx2 = format!("{ODS}|RX2");
    let ods_any = format!("{ODS}|");
    assert_eq!(
        search_ids(&store, mr, &[("reporter", "RX1")]).await,
        set(&["a"])
    );
    assert_eq!(
        search_ids(&store, mr, &[("reporter", &ods_rx2)]).await,
        set(&["b"])
    );
    assert_eq!(
        search_ids(&store, mr, &[("reporter", "Organization/RX1")]).await,
        set(&["a"])
    );
    assert_eq!(
        search_ids(&store, mr, &[("reporter", "Organization/RX3")]).await,
        set(&["c"])
    );
    assert_eq!(
        search_ids(&store, mr, &[("reporter", "RX3")]).await,
        set(&["c"])
    );
    assert_eq!(
        search_ids(&store, mr, &[("reporter", "https://other|RX1")]).await,
        set(&[])
    );
    assert_eq!(
        search_ids(&store, mr, &[("reporter", "RX1,RX2")]).await,
        set(&["a", "b"])
    );
    assert_eq!(
        search_ids(&store, mr, &[("reporter", &ods_any)]).await,
        set(&["a", "b"])
    );
    assert_eq!(
        search_ids(&store, mr, &[("reporter", "RX1"), ("reporter", "RX2")]).await,
        set(&[])
    );
}

async fn search_by_period_prefixes(backend: &Backend) {
    let store = backend.store.clone();
    let april = json!({"start": "2025-04-01", "end": "2025-04-30"});
    let may = json!({"start": "2025-05-01T00:00:00Z", "end": "2025-05-31T23:59:59Z"});
    let open = json!({"start": "2025-06-01"});
    commit_one(
        &store,
        Report {
            identifier: "apr",
            period: april,
            ..Report::default()
        }
        .write(),
    )
    .await;
    commit_one(
        &store,
        Report {
            identifier: "may",
            period: may,
            ..Report::default()
        }
        .write(),
    )
    .await;
    commit_one(
        &store,
        Report {
            identifier: "open",
            period: open,
            ..Report::default()
        }
        .write(),
    )
    .await;
    let mut no_period = Report {
        identifier: "none",
        ..Report::default()
    }
    .json();
    no_period.as_object_mut().expect("object").remove("period");
    commit_one(
        &store,
        ResourceWrite {
            resource_type: "MeasureReport".into(),
            resource: no_period,
            identifier: None,
        },
    )
    .await;

    let cases: &[(&[&str], &[&str])] = &[
        (&["2025-04"], &["apr"]),
        (&["eq2025-04"], &["apr"]),
        (&["2025"], &["apr", "may"]),
        (&["2025-04-01"], &[]),
        (&["ne2025-04"], &["may", "open"]),
        (&["gt2025-04-30"], &["may", "open"]),
        (&["lt2025-05-01"], &["apr"]),
        (&["ge2025-05"], &["may", "open"]),
        (&["le2025-05"], &["apr", "may"]),
        (&["sa2025-04"], &["may", "open"]),
        (&["eb2025-05"], &["apr"]),
        (&["eb2025-05-01T00:00:00Z"], &["apr"]),
        (&["sa2025-05-31T23:59:59+00:00"], &["open"]),
        (&["ge2025-04", "le2025-04"], &["apr"]),
        (&["2025-04,2025-05"], &["apr", "may"]),
        (&["gt2030-01-01"], &["open"]),
    ];
    for (values, expected) in cases {
        let params: Vec<(&str, &str)> = values.iter().map(|v| ("period", *v)).collect();
        assert_eq!(
            search_ids(&store, "MeasureReport", &params).await,
            set(expected),
            "period={values:?}"
        );
    }
}

async fn search_by_measure_status_and_identifier(backend: &Backend) {
    let store = backend.store.clone();
    let annex1_v1 = format!("{ANNEX1}|1.0.0");
    let cqim_v2 = format!("{CQIM}|2");
    commit_one(
        &store,
        Report {
            identifier: "a",
            measure: &annex1_v1,
            ..Report::default()
        }
        .write(),
    )
    .await;
    commit_one(
        &store,
        Report {
            identifier: "b",
            status: "pending",
            ..Report::default()
        }
        .write(),
    )
    .await;
    commit_one(
        &store,
        Report {
            identifier: "c",
            measure: &cqim_v2,
            status: "error",
            ..Report::default()
        }
        .write(),
    )
    .await;
    let mut unsystematic = Report {
        identifier: "d",
        ..Report::default()
    }
    .json();
    unsystematic["identifier"] = json!([{"value": "d"}, {"system": "urn:x", "value": "second"}]);
    commit_one(
        &store,
        ResourceWrite {
            resource_type: "MeasureReport".into(),
            resource: unsystematic,
            identifier: None,
        },
    )
    .await;

    let mr = "MeasureReport";
    assert_eq!(
        search_ids(&store, mr, &[("measure", ANNEX1)]).await,
        set(&["a", "b", "d"])
    );
    assert_eq!(
        search_ids(&store, mr, &[("measure", &annex1_v1)]).await,
        set(&["a"])
    );
    assert_eq!(
        search_ids(&store, mr, &[("measure", &format!("{ANNEX1}|9"))]).await,
        set(&[])
    );
    assert_eq!(
        search_ids(&store, mr, &[("measure", &cqim_v2)]).await,
        set(&["c"])
    );
    assert_eq!(
        search_ids(&store, mr, &[("status", "pending,error")]).await,
        set(&["b", "c"])
    );
    assert_eq!(
        search_ids(&store, mr, &[("status", "complete")]).await,
        set(&["a", "d"])
    );
    assert_eq!(
        search_ids(
            &store,
            mr,
            &[("identifier", &format!("{REPORT_ID_SYSTEM}|b"))]
        )
        .await,
        set(&["b"])
    );
    assert_eq!(
        search_ids(&store, mr, &[("identifier", "b")]).await,
        set(&["b"])
    );
    assert_eq!(
        search_ids(&store, mr, &[("identifier", "|d")]).await,
        set(&["d"])
    );
    assert_eq!(
        search_ids(&store, mr, &[("identifier", "|a")]).await,
        set(&[])
    );
    assert_eq!(
        search_ids(&store, mr, &[("identifier", "urn:x|second")]).await,
        set(&["d"])
    );
    assert_eq!(
        search_ids(
            &store,
            mr,
            &[
                ("measure", ANNEX1),
                ("status", "complete"),
                ("reporter", "RX1")
            ]
        )
        .await,
        set(&["a", "d"])
    );
}

async fn search_by_last_updated_prefixes(backend: &Backend) {
    let store = backend.store.clone();
    let a = commit_one(
        &store,
        Report {
            identifier: "a",
            ..Report::default()
        }
        .write(),
    )
    .await;
    // Distinct instants for the two resources; the assertions do not depend on timing.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let b = commit_one(
        &store,
        Report {
            identifier: "b",
            ..Report::default()
        }
        .write(),
    )
    .await;
    assert!(b.last_updated > a.last_updated);
    let (ta, tb) = (instant_us(a.last_updated), instant_us(b.last_updated));
    let mr = "MeasureReport";
    let cases: Vec<(String, &[&str])> = vec![
        (ta.clone(), &["a"]),
        (format!("eq{tb}"), &["b"]),
        (format!("ne{ta}"), &["b"]),
        (format!("gt{ta}"), &["b"]),
        (format!("lt{tb}"), &["a"]),
        (format!("ge{tb}"), &["b"]),
        (format!("ge{ta}"), &["a", "b"]),
        (format!("le{ta}"), &["a"]),
        (format!("sa{ta}"), &["b"]),
        (format!("eb{tb}"), &["a"]),
        ("ge2000-01-01".to_owned(), &["a", "b"]),
        ("lt2000".to_owned(), &[]),
    ];
    for (value, expected) in cases {
        assert_eq!(
            search_ids(&store, mr, &[("_lastUpdated", &value)]).await,
            set(expected),
            "_lastUpdated={value}"
        );
    }
}

async fn search_measures_by_url_version_and_name(backend: &Backend) {
    let store = backend.store.clone();
    let still = "https://fhir.pqom-gateway.org/Measure/stillbirth-rate";
    let neo = "https://fhir.pqom-gateway.org/Measure/neonatal-death-rate";
    commit(
        &store,
        submission(
            None,
            "RX1",
            vec![
                measure("m1", still, "1.0.0", "StillbirthRate"),
                measure("m2", still, "2.0.0", "StillbirthRate"),
                measure("m3", neo, "1.0.0", "NeonatalDeathRate"),
            ],
        ),
    )
    .await;
    let m = "Measure";
    assert_eq!(
        search_ids(&store, m, &[("url", still)]).await,
        set(&["m1", "m2"])
    );
    assert_eq!(
        search_ids(&store, m, &[("url", still), ("version", "2.0.0")]).await,
        set(&["m2"])
    );
    assert_eq!(
        search_ids(&store, m, &[("version", "1.0.0")]).await,
        set(&["m1", "m3"])
    );
    assert_eq!(
        search_ids(&store, m, &[("name", "still")]).await,
        set(&["m1", "m2"])
    );
    assert_eq!(
        search_ids(&store, m, &[("name", "NEONATAL")]).await,
        set(&["m3"])
    );
    assert_eq!(search_ids(&store, m, &[("name", "Rate")]).await, set(&[]));
    assert_eq!(
        search_ids(&store, m, &[("name:exact", "StillbirthRate")]).await,
        set(&["m1", "m2"])
    );
    assert_eq!(
        search_ids(&store, m, &[("name:exact", "stillbirthrate")]).await,
        set(&[])
    );
    assert_eq!(search_ids(&store, m, &[("name", "100%_")]).await, set(&[]));
    assert_eq!(
        search_ids(&store, m, &[("status", "active"), ("identifier", "m3")]).await,
        set(&["m3"])
    );
    // Measures are not MeasureReports.
    assert_eq!(search_ids(&store, "MeasureReport", &[]).await, set(&[]));
}

async fn paging_follows_the_cursor_across_pages(backend: &Backend) {
    let store = backend.store.clone();
    // 25 reports in 5 submissions: resources of one submission share their lastUpdated, so the
    // id tie-break matters.
    for s in 0..5 {
        let writes: Vec<ResourceWrite> = (0..5)
            .map(|i| {
                let identifier = format!("p-{s}-{i}");
                Report {
                    identifier: &identifier,
                    ..Report::default()
                }
                .write()
            })
            .collect();
        commit(&store, submission(None, "RX1", writes)).await;
    }
    for (sort, ascending) in [("_lastUpdated", true), ("-_lastUpdated", false)] {
        let mut seen: Vec<StoredResource> = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = Vec::new();
        loop {
            let mut params = vec![
                ("_count".to_owned(), "10".to_owned()),
                ("_sort".to_owned(), sort.to_owned()),
            ];
            if let Some(c) = &cursor {
                params.push(("_cursor".to_owned(), c.clone()));
            }
            let query = SearchQuery::parse("MeasureReport", &params).expect("parse");
            let page = store.search("MeasureReport", &query).await.expect("search");
            pages.push(page.resources.len());
            seen.extend(page.resources);
            match page.next {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        assert_eq!(pages, vec![10, 10, 5], "{sort}");
        let keys: Vec<(OffsetDateTime, String)> = seen
            .iter()
            .map(|r| (r.last_updated, r.id.clone()))
            .collect();
        let mut sorted = keys.clone();
        sorted.sort();
        if !ascending {
            sorted.reverse();
        }
        assert_eq!(keys, sorted, "{sort}: pages follow (lastUpdated, id) order");
        assert_eq!(
            keys.iter().map(|k| &k.1).collect::<BTreeSet<_>>().len(),
            25,
            "{sort}: no repeats, none missed"
        );
    }
    // A cursor from a page stays valid for the same search.
    let first = store
        .search(
            "MeasureReport",
            &SearchQuery {
                count: 3,
                ..SearchQuery::default()
            },
        )
        .await
        .expect("search");
    let after = Cursor::decode(first.next.as_deref().expect("next")).expect("our cursor");
    let second = store
        .search(
            "MeasureReport",
            &SearchQuery {
                count: 3,
                after: Some(after),
                ..SearchQuery::default()
            },
        )
        .await
        .expect("search");
    assert!(
        second
            .resources
            .iter()
            .all(|r| !first.resources.contains(r))
    );
}

async fn default_and_maximum_page_size(backend: &Backend) {
    let store = backend.store.clone();
    let writes: Vec<ResourceWrite> = (0..25)
        .map(|i| {
            let identifier = format!("d-{i}");
            Report {
                identifier: &identifier,
                ..Report::default()
            }
            .write()
        })
        .collect();
    commit(&store, submission(None, "RX1", writes)).await;
    let page = store
        .search("MeasureReport", &SearchQuery::default())
        .await
        .expect("search");
    assert_eq!(page.resources.len(), 20);
    assert!(page.next.is_some());
    let all =
        SearchQuery::parse("MeasureReport", &[("_count".into(), "100000".into())]).expect("parse");
    assert_eq!(all.count, 200);
    let page = store.search("MeasureReport", &all).await.expect("search");
    assert_eq!(page.resources.len(), 25);
    assert!(page.next.is_none());
    let exact = store
        .search(
            "MeasureReport",
            &SearchQuery {
                count: 25,
                ..SearchQuery::default()
            },
        )
        .await
        .expect("search");
    assert!(
        exact.next.is_none(),
        "no next link when the last page is exactly full"
    );
}

async fn search_matches_current_versions_only(backend: &Backend) {
    let store = backend.store.clone();
    commit_one(
        &store,
        Report {
            status: "pending",
            reporter: json!({"identifier": {"system": ODS, "value": "RX5"}}),
            ..Report::default()
        }
        .write(),
    )
    .await;
    let v2 = commit_one(&store, Report::default().write()).await;
    let mr = "MeasureReport";
    assert_eq!(
        search_ids(&store, mr, &[("status", "pending")]).await,
        set(&[])
    );
    assert_eq!(
        search_ids(&store, mr, &[("reporter", "RX5")]).await,
        set(&[]),
        "tokens of old versions are gone"
    );
    assert_eq!(
        search_ids(&store, mr, &[("reporter", "RX1")]).await,
        set(&["r-1"])
    );
    let page = store
        .search(mr, &SearchQuery::default())
        .await
        .expect("search");
    assert_eq!(page.resources, vec![v2]);
}

async fn a_write_that_is_not_a_resource_is_refused_and_nothing_is_written(backend: &Backend) {
    let store = backend.store.clone();
    let bad = ResourceWrite {
        resource_type: "MeasureReport".into(),
        resource: json!([1, 2]),
        identifier: None,
    };
    let sub = submission(
        Some("m-invalid"),
        "RX1",
        vec![Report::default().write(), bad],
    );
    let id = sub.id;
    assert!(matches!(
        store.commit_submission(sub).await,
        Err(StoreError::Invalid(_))
    ));
    let mismatched = ResourceWrite {
        resource_type: "Measure".into(),
        resource: Report::default().json(),
        identifier: None,
    };
    assert!(matches!(
        store
            .commit_submission(submission(None, "RX1", vec![mismatched]))
            .await,
        Err(StoreError::Invalid(_))
    ));
    assert!(store.submission(id).await.expect("submission").is_none());
    assert!(
        store
            .submission_by_message_id("m-invalid")
            .await
            .expect("lookup")
            .is_none()
    );
}

async fn indicator_values_are_committed_with_their_submission(backend: &Backend) {
    let store = backend.store.clone();
    let mut sub = submission(Some("m-values"), "RX1", vec![Report::default().write()]);
    sub.indicator_values = vec![
        indicator_value("stillbirth-rate", "RX1", None, 5, 400),
        indicator_value("stillbirth-rate", "RX1", Some("1"), 2, 90),
        indicator_value("neonatal-death-rate", "RX1", None, 1, 395),
    ];
    let first = sub.id;
    let written = commit(&store, sub).await;
    let values = store
        .indicator_values(&IndicatorQuery::default())
        .await
        .expect("indicator values");
    assert_eq!(values.len(), 3);
    for v in &values {
        assert_eq!(v.submission_id, first);
        assert_eq!(v.superseded_by, None);
        // Stamped by the commit itself, not by a later write.
        assert!(v.recorded_at <= written[0].last_updated);
    }
    assert_eq!(
        current_values(&store, "RX1").await,
        vec![
            ("neonatal-death-rate".into(), "".into(), 1, Some(395), first),
            ("stillbirth-rate".into(), "".into(), 5, Some(400), first),
            ("stillbirth-rate".into(), "1".into(), 2, Some(90), first),
        ]
    );

    // A resubmission of one indicator replaces that indicator's values (stratum included) and
    // leaves the other; the replaced rows stay as history.
    let mut again = submission(Some("m-values-2"), "RX1", vec![]);
    again.indicator_values = vec![indicator_value("stillbirth-rate", "RX1", None, 4, 400)];
    let second = again.id;
    commit(&store, again).await;
    assert_eq!(
        current_values(&store, "RX1").await,
        vec![
            ("neonatal-death-rate".into(), "".into(), 1, Some(395), first),
            ("stillbirth-rate".into(), "".into(), 4, Some(400), second),
        ]
    );
    let history = store
        .indicator_values(&IndicatorQuery {
            include_history: true,
            ..IndicatorQuery::default()
        })
        .await
        .expect("history");
    assert_eq!(history.len(), 4);
    assert_eq!(
        history
            .iter()
            .filter(|v| v.superseded_by == Some(second))
            .count(),
        2
    );

    // A duplicate message id writes nothing, values included.
    let mut duplicate = submission(Some("m-values"), "RX1", vec![]);
    duplicate.indicator_values = vec![indicator_value("stillbirth-rate", "RX1", None, 9, 9)];
    assert!(matches!(
        store.commit_submission(duplicate).await.expect("commit"),
        CommitOutcome::DuplicateMessage(s) if s.id == first
    ));
    assert_eq!(current_values(&store, "RX1").await.len(), 2);
}

async fn a_failing_commit_leaves_neither_submission_nor_values(backend: &Backend) {
    let store = backend.store.clone();
    let mut sub = submission(Some("m-ok"), "RX1", vec![Report::default().write()]);
    sub.indicator_values = vec![indicator_value("stillbirth-rate", "RX1", None, 5, 400)];
    let first = sub.id;
    let v1 = commit(&store, sub).await.remove(0);

    // A resubmission whose last value cannot be stored (a count beyond the database's 64-bit
    // integers): the failure comes after the submission, its resource version and the
    // superseding of the current values were written in the transaction, so all of that must
    // be rolled back with it.
    let mut bad = submission(Some("m-bad"), "RX1", vec![Report::default().write()]);
    bad.indicator_values = vec![
        indicator_value("neonatal-death-rate", "RX1", None, 1, 395),
        indicator_value("stillbirth-rate", "RX1", None, u64::MAX, 400),
    ];
    let bad_id = bad.id;
    assert!(store.commit_submission(bad).await.is_err());
    assert!(store.submission(bad_id).await.expect("lookup").is_none());
    assert!(
        store
            .submission_by_message_id("m-bad")
            .await
            .expect("lookup")
            .is_none()
    );
    let current = store
        .read("MeasureReport", &v1.id)
        .await
        .expect("read")
        .expect("found");
    assert_eq!(current.version_id, 1, "no new version of the report");
    assert_eq!(
        current_values(&store, "RX1").await,
        vec![("stillbirth-rate".into(), "".into(), 5, Some(400), first)],
        "the current values are neither superseded nor joined by the failed commit's"
    );
    let history = store
        .indicator_values(&IndicatorQuery {
            include_history: true,
            ..IndicatorQuery::default()
        })
        .await
        .expect("history");
    assert_eq!(history.len(), 1);

    // The same message can be sent again, fixed, and is committed whole.
    let mut fixed = submission(Some("m-bad"), "RX1", vec![Report::default().write()]);
    fixed.indicator_values = vec![indicator_value("stillbirth-rate", "RX1", None, 6, 400)];
    let fixed_id = fixed.id;
    let v2 = commit(&store, fixed).await.remove(0);
    assert_eq!(v2.version_id, 2);
    assert_eq!(
        current_values(&store, "RX1").await,
        vec![("stillbirth-rate".into(), "".into(), 6, Some(400), fixed_id)]
    );
}

// ---------------------------------------------------------------------------------------------
// Backend-specific

#[tokio::test]
async fn unreachable_postgres_is_unavailable_not_a_panic() {
    let result = store::open(
        Some("postgres://postgres@127.0.0.1:1/pqom?connect_timeout=2"),
        std::path::Path::new("."),
    )
    .await;
    assert!(
        matches!(&result, Err(StoreError::Unavailable(sqlx::Error::Io(_)))),
        "{:?}",
        result.err()
    );
}

/// `url` with its host and port replaced by `host_port`.
fn with_host_port(url: &str, host_port: &str) -> String {
    let (scheme, rest) = url.split_once("://").expect("URL with scheme");
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((user, _)) => format!("{scheme}://{user}@{host_port}{path}"),
        None => format!("{scheme}://{host_port}{path}"),
    }
}

/// The database going away under a running gateway: calls fail with `Unavailable` (503 at the
/// API), never a panic or a generic database error. A TCP proxy in front of PostgreSQL stands in
/// for the network, and is cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_going_away_is_unavailable() {
    let Some(backend) = postgres_backend().await else {
        return;
    };
    let database_url = backend.database_url.clone().expect("PostgreSQL URL");
    let options: sqlx::postgres::PgConnectOptions = database_url.parse().expect("URL");
    let upstream = format!("{}:{}", options.get_host(), options.get_port());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let proxy_addr = listener.local_addr().expect("addr");
    let proxy = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        while let Ok((mut inbound, _)) = listener.accept().await {
            let upstream = upstream.clone();
            connections.spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });

    let proxied = with_host_port(&database_url, &proxy_addr.to_string());
    let store = store::open(Some(&proxied), std::path::Path::new("."))
        .await
        .expect("open through the proxy");
    store.ping().await.expect("reachable through the proxy");

    // Cut the network: the listener and every proxied connection go away.
    proxy.abort();
    let _ = proxy.await;

    let ping = store.ping().await;
    assert!(matches!(ping, Err(StoreError::Unavailable(_))), "{ping:?}");
    let commit = store
        .commit_submission(submission(None, "RX1", vec![Report::default().write()]))
        .await;
    assert!(
        matches!(commit, Err(StoreError::Unavailable(_))),
        "{:?}",
        commit.err()
    );
}

#[tokio::test]
async fn other_url_schemes_are_a_configuration_error() {
    let result = store::open(Some("mysql://localhost/x"), std::path::Path::new(".")).await;
    assert!(matches!(result, Err(StoreError::Config(_))));
}

#[tokio::test]
async fn sqlite_creates_its_directory_and_keeps_data_across_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("nested").join("data");
    let id = {
        let store = store::open(None, &data).await.expect("open");
        commit_one(&store, Report::default().write()).await.id
    };
    assert!(data.join(store::SQLITE_FILE).is_file());
    let store = store::open(None, &data).await.expect("reopen");
    let read = store
        .read("MeasureReport", &id)
        .await
        .expect("read")
        .expect("kept");
    assert_eq!(read.version_id, 1);
    // Migrations ran once; a resubmission still versions after reopening.
    assert_eq!(
        commit_one(&store, Report::default().write())
            .await
            .version_id,
        2
    );
}
