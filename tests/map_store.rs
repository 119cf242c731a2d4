//! Indicator values as a time series, on both backends: a resubmission replaces that trust,
//! indicator and period's values and the history remains.
//!
//! PostgreSQL: `PQOM_TEST_POSTGRES_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`);
//! `PQOM_SKIP_POSTGRES=1` skips that half.

use std::path::PathBuf;
use std::sync::Arc;

use pqom_gateway::map::{IndicatorValue, Mapper, sample};
use pqom_gateway::store::{self, Channel, IndicatorQuery, NewSubmission, Store, SubmissionStatus};
use serde_json::json;
use time::OffsetDateTime;
use uuid::Uuid;

fn mapper() -> Mapper {
    Mapper::load(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("mappings")).unwrap()
}

/// Commit a submission carrying `values`: they are written in its transaction.
async fn commit(store: &Arc<dyn Store>, values: &[IndicatorValue]) -> Uuid {
    let id = Uuid::new_v4();
    store
        .commit_submission(NewSubmission {
            id,
            received_at: OffsetDateTime::now_utc(),
            channel: Channel::Rest,
            message_id: None,
            sender: Some("RM1".into()),
            body: b"{}".to_vec(),
            sha256: "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a".into(),
            status: SubmissionStatus::Accepted,
            outcome: json!({"resourceType": "OperationOutcome", "issue": []}),
            response: None,
            resources: vec![],
            event: None,
            indicator_values: values.to_vec(),
        })
        .await
        .expect("commit");
    id
}

async fn resubmission_replaces_values_and_keeps_history(store: Arc<dyn Store>) {
    let m = mapper();
    let first = m
        .map_report(&sample::reference_report("RM1", "2026-10-01", "2026-10-31"))
        .values;
    let s1 = commit(&store, &first).await;
    // Another month and another trust are untouched by the resubmission below.
    let other = m
        .map_report(&sample::reference_report("RGP", "2026-10-01", "2026-10-31"))
        .values;
    let s_other = commit(&store, &other).await;

    let q = IndicatorQuery {
        indicator: Some("stillbirth-rate".into()),
        trusts: vec!["RM1".into()],
        ..Default::default()
    };
    let current = store.indicator_values(&q).await.unwrap();
    assert_eq!(current.len(), 1 + 18 + 10 + 5);
    assert!(
        current
            .iter()
            .all(|v| v.submission_id == s1 && v.superseded_by.is_none())
    );
    let total = current.iter().find(|v| v.value.stratum.is_none()).unwrap();
    assert_eq!(
        (total.value.numerator, total.value.denominator),
        (5, Some(400))
    );
    assert_eq!(total.value.value, Some(12.5));

    // A correction: the stillbirth total only, with new counts.
    let mut fixed = first
        .iter()
        .find(|v| v.indicator == "stillbirth-rate" && v.stratum.is_none())
        .unwrap()
        .clone();
    fixed.numerator = 4;
    fixed.value = Some(10.0);
    let s2 = commit(&store, &[fixed]).await;

    let current = store.indicator_values(&q).await.unwrap();
    assert_eq!(
        current.len(),
        1,
        "the resubmission replaces that indicator, trust and period"
    );
    assert_eq!(
        (current[0].value.numerator, current[0].submission_id),
        (4, s2)
    );

    let history = store
        .indicator_values(&IndicatorQuery {
            include_history: true,
            ..q.clone()
        })
        .await
        .unwrap();
    assert_eq!(history.len(), 1 + 34);
    assert!(
        history
            .iter()
            .filter(|v| v.submission_id == s1)
            .all(|v| v.superseded_by == Some(s2))
    );

    // Other indicators of RM1, and RGP, are untouched.
    let robson = store
        .indicator_values(&IndicatorQuery {
            indicator: Some("caesarean-robson-1".into()),
            totals_only: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(robson.len(), 2);
    assert!(robson.iter().all(|v| v.superseded_by.is_none()));
    let period = store
        .indicator_values(&IndicatorQuery {
            trusts: vec!["RGP".into()],
            period_from: Some("2026-10-01".into()),
            period_to: Some("2026-10-31".into()),
            totals_only: true,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(period.len(), 12);
    assert!(period.iter().all(|v| v.submission_id == s_other));
    let none = store
        .indicator_values(&IndicatorQuery {
            period_from: Some("2026-11-01".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(none.is_empty());
}

#[tokio::test]
async fn sqlite_resubmission_replaces_values_and_keeps_history() {
    let dir = tempfile::tempdir().unwrap();
    let store = store::open(None, dir.path()).await.unwrap();
    resubmission_replaces_values_and_keeps_history(store).await;
}

#[tokio::test]
async fn postgres_resubmission_replaces_values_and_keeps_history() {
    use sqlx::Connection;
    if std::env::var("PQOM_SKIP_POSTGRES").is_ok_and(|v| v == "1") {
        return;
    }
    let admin = std::env::var("PQOM_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("PostgreSQL reachable (or PQOM_SKIP_POSTGRES=1)");
    let name = format!("pqom_test_{}", Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await
        .unwrap();
    let url = match admin.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => admin.clone(),
    };
    let store = store::open(Some(&url), std::path::Path::new("."))
        .await
        .unwrap();
    resubmission_replaces_values_and_keeps_history(store.clone()).await;
    drop(store);
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
    )))
    .execute(&mut conn)
    .await;
}
