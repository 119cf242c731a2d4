//! Commits per second of the reference report (`pqom_gateway::samples`, docs/CONVENTIONS.md:
//! one trust-month `pqom-annex1` MeasureReport, 12 groups each stratified by ethnic category
//! (17) and IMD decile (10), numerator and denominator everywhere) through
//! `Store::commit_submission`: the submission row with the received message bytes, one resource
//! version, its search index, one transaction, synced.
//!
//! Also a rejected 1 KB submission, to show the fixed cost of a commit (transaction and sync).
//!
//! `cargo bench --bench store` (add `--profile dev` to skip a release build of every
//! dependency). PostgreSQL runs when `PQOM_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) is reachable, in a scratch database dropped
//! afterwards.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use sqlx::sqlite::SqliteSynchronous;
use time::OffsetDateTime;
use uuid::Uuid;

use pqom_gateway::samples::{self, ReportParams};
use pqom_gateway::store::sqlite::SqliteStore;
use pqom_gateway::store::{self, Channel, NewSubmission, ResourceWrite, Store, SubmissionStatus};

static SEQ: AtomicU64 = AtomicU64::new(0);

/// A new submission of a new report (each commit creates a logical resource).
fn next_submission(report: &Value, message: &[u8]) -> NewSubmission {
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let identifier = format!("bench-{n}");
    let mut resource = report.clone();
    resource["identifier"][0]["value"] = json!(identifier);
    let body = message.to_vec();
    NewSubmission {
        id: Uuid::new_v4(),
        received_at: OffsetDateTime::now_utc(),
        channel: Channel::Message,
        message_id: Some(format!("bench-msg-{}", Uuid::new_v4())),
        sender: Some("RX1".into()),
        sha256: Sha256::digest(&body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        body,
        status: SubmissionStatus::Accepted,
        outcome: json!({"resourceType": "OperationOutcome", "issue": [{"severity": "information", "code": "informational"}]}),
        response: None,
        resources: vec![ResourceWrite {
            resource_type: "MeasureReport".into(),
            resource,
            identifier: Some((
                "https://fhir.pqom-gateway.org/Id/report-id".into(),
                identifier,
            )),
        }],
        event: None,
        indicator_values: vec![],
    }
}

/// A rejected submission: a 1 KB body and no resources, so the per-commit cost (transaction,
/// sync) shows without the JSON work of a report.
fn small_submission() -> NewSubmission {
    let body = vec![b' '; 1024];
    NewSubmission {
        id: Uuid::new_v4(),
        received_at: OffsetDateTime::now_utc(),
        channel: Channel::Rest,
        message_id: None,
        sender: Some("RX1".into()),
        sha256: Sha256::digest(&body)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect(),
        body,
        status: SubmissionStatus::Rejected,
        outcome: json!({"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "structure"}]}),
        response: None,
        resources: vec![],
        event: None,
        indicator_values: vec![],
    }
}

fn bench_store(c: &mut Criterion, name: &str, store: Arc<dyn Store>, rt: &tokio::runtime::Runtime) {
    let mut group = c.benchmark_group("commit_rejected_1kb");
    group.throughput(Throughput::Elements(1));
    group.sample_size(30);
    group.bench_function(name, |b| {
        b.iter_batched(
            small_submission,
            |submission| {
                rt.block_on(store.commit_submission(submission))
                    .expect("commit")
            },
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();

    let report = samples::reference_report(&ReportParams::default());
    let message = samples::submission_bundle_bytes();
    let mut group = c.benchmark_group("commit_reference_report");
    group.throughput(Throughput::Elements(1));
    group.sample_size(30);
    group.bench_function(name, |b| {
        b.iter_batched(
            || next_submission(&report, &message),
            |submission| {
                rt.block_on(store.commit_submission(submission))
                    .expect("commit")
            },
            criterion::BatchSize::SmallInput,
        )
    });
    group.finish();
}

fn commits(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    eprintln!(
        "reference report: {} bytes; submission message as received: {} bytes",
        samples::reference_report_bytes().len(),
        samples::submission_bundle_bytes().len()
    );

    let dir = tempfile::tempdir().expect("tempdir");
    for (name, synchronous) in [
        ("sqlite_synchronous_full", SqliteSynchronous::Full),
        ("sqlite_synchronous_normal", SqliteSynchronous::Normal),
    ] {
        let path = dir.path().join(format!("{name}.db"));
        let store: Arc<dyn Store> = Arc::new(
            rt.block_on(SqliteStore::open_with_synchronous(&path, synchronous))
                .expect("open SQLite"),
        );
        bench_store(c, name, store, &rt);
    }

    let admin = std::env::var("PQOM_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let db = format!("pqom_bench_{}", Uuid::new_v4().simple());
    let created = rt.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&admin).await?;
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{db}\"")))
            .execute(&mut conn)
            .await
            .map(|_| ())
    });
    match created {
        Ok(()) => {
            let url = match admin.rsplit_once('/') {
                Some((prefix, _)) => format!("{prefix}/{db}"),
                None => admin.clone(),
            };
            let store = rt
                .block_on(store::open(Some(&url), dir.path()))
                .expect("open PostgreSQL");
            bench_store(c, "postgres", store.clone(), &rt);
            drop(store);
            let _ = rt.block_on(async {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&admin).await?;
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE \"{db}\" WITH (FORCE)"
                )))
                .execute(&mut conn)
                .await
            });
        }
        Err(e) => eprintln!("PostgreSQL not reachable at {admin} ({e}): PostgreSQL bench skipped"),
    }
}

criterion_group!(benches, commits);
criterion_main!(benches);
