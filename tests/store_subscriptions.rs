//! The subscription half of the storage contract (migration `0003`), run on both backends like
//! `store_suite.rs`: SQLite in a fresh temporary directory, PostgreSQL in a fresh database.

#[path = "common/pg.rs"]
mod pg;

use std::sync::Arc;

use serde_json::{Value, json};
use sqlx::Connection;
use time::{Duration, OffsetDateTime};

use pqom_gateway::store::{self, Store, SubscriptionStatus, SubscriptionWrite};

const TOPIC: &str = "https://fhir.pqom-gateway.org/SubscriptionTopic/pqom-validated-submission";

struct Backend {
    store: Arc<dyn Store>,
    database_url: Option<String>,
    data_dir: std::path::PathBuf,
    _guard: Guard,
}

enum Guard {
    Sqlite { _dir: tempfile::TempDir },
    Postgres { _database: pg::PgDatabase },
}

impl Backend {
    /// Run the outbox helper's event-number statement exactly as the contract gives it, on a
    /// connection of its own; returns the number taken.
    async fn next_event_number(&self, id: &str) -> i64 {
        match &self.database_url {
            Some(url) => {
                let mut c = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::query_scalar(
                    "UPDATE subscription SET events_since_start = events_since_start + 1 \
                     WHERE id = $1 RETURNING events_since_start",
                )
                .bind(id)
                .fetch_one(&mut c)
                .await
                .unwrap()
            }
            None => {
                let path = self.data_dir.join(store::SQLITE_FILE);
                let mut c =
                    sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
                        .await
                        .unwrap();
                sqlx::query_scalar(
                    "UPDATE subscription SET events_since_start = events_since_start + 1 \
                     WHERE id = ? RETURNING events_since_start",
                )
                .bind(id)
                .fetch_one(&mut c)
                .await
                .unwrap()
            }
        }
    }
}

async fn sqlite_backend() -> Backend {
    let dir = tempfile::tempdir().expect("temporary directory");
    let data_dir = dir.path().join("data");
    let store = store::open(None, &data_dir).await.expect("open SQLite");
    Backend {
        store,
        database_url: None,
        data_dir,
        _guard: Guard::Sqlite { _dir: dir },
    }
}

async fn postgres_backend() -> Option<Backend> {
    let database = pg::fresh_database("pqom_subs").await?;
    let url = database.url.clone();
    let store = store::open(Some(&url), std::path::Path::new("."))
        .await
        .expect("open PostgreSQL");
    Some(Backend {
        store,
        database_url: Some(url),
        data_dir: ".".into(),
        _guard: Guard::Postgres {
            _database: database,
        },
    })
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(&super::sqlite_backend().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(backend) = super::postgres_backend().await else { return };
                    super::$name(&backend).await;
                }
            )*
        }
    };
}

suite!(
    create_stamps_and_serves_the_status,
    update_makes_the_next_version_and_keeps_the_counters,
    status_changes_patch_the_json_without_a_new_version,
    status_change_at_a_replaced_version_is_refused,
    list_filters_by_status_and_hides_deleted,
    delete_keeps_the_row_switched_off,
    event_numbers_follow_the_contract_statement,
    touch_and_claim_heartbeat,
    a_write_that_is_not_a_subscription_is_refused,
);

fn subscription(endpoint: &str) -> Value {
    json!({
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "test",
        "criteria": TOPIC,
        "error": "left over from the client",
        "channel": { "type": "rest-hook", "endpoint": endpoint, "payload": "application/fhir+json" }
    })
}

fn write(endpoint: &str, status: SubscriptionStatus) -> SubscriptionWrite {
    SubscriptionWrite {
        resource: subscription(endpoint),
        topic: TOPIC.into(),
        status,
        endpoint: endpoint.into(),
    }
}

async fn create_stamps_and_serves_the_status(b: &Backend) {
    let before = OffsetDateTime::now_utc() - Duration::seconds(1);
    let s = b
        .store
        .create_subscription(write(
            "https://a.example/hook",
            SubscriptionStatus::Requested,
        ))
        .await
        .unwrap();
    assert_eq!(s.version_id, 1);
    assert_eq!(s.status, SubscriptionStatus::Requested);
    assert_eq!(s.topic, TOPIC);
    assert_eq!(s.endpoint, "https://a.example/hook");
    assert_eq!(s.events_since_start, 0);
    assert_eq!(s.error, None);
    assert_eq!(s.last_sent_at, None);
    assert!(!s.deleted);
    assert!(s.created_at >= before && s.created_at == s.updated_at);
    assert_eq!(s.resource["id"], s.id.as_str());
    assert_eq!(s.resource["meta"]["versionId"], "1");
    assert!(s.resource["meta"]["lastUpdated"].is_string());
    assert_eq!(s.resource["status"], "requested");
    assert!(
        s.resource.get("error").is_none(),
        "the client's error is dropped"
    );
    let read = b.store.subscription(&s.id).await.unwrap().unwrap();
    assert_eq!(read, s);
    assert!(b.store.subscription("nope").await.unwrap().is_none());
}

async fn update_makes_the_next_version_and_keeps_the_counters(b: &Backend) {
    let s = b
        .store
        .create_subscription(write(
            "https://a.example/hook",
            SubscriptionStatus::Requested,
        ))
        .await
        .unwrap();
    b.store
        .set_subscription_status(&s.id, SubscriptionStatus::Error, Some("500"))
        .await
        .unwrap();
    assert_eq!(b.next_event_number(&s.id).await, 1);
    let at = OffsetDateTime::now_utc();
    b.store.touch_subscription_sent(&s.id, at).await.unwrap();
    let u = b
        .store
        .update_subscription(
            &s.id,
            write("https://b.example/hook", SubscriptionStatus::Requested),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(u.version_id, 2);
    assert_eq!(u.endpoint, "https://b.example/hook");
    assert_eq!(u.status, SubscriptionStatus::Requested);
    assert_eq!(u.error, None, "an update clears the error");
    assert_eq!(
        u.events_since_start, 1,
        "the event counter survives updates"
    );
    assert!(u.last_sent_at.is_some());
    assert_eq!(u.created_at, s.created_at);
    assert!(u.updated_at > s.updated_at);
    assert_eq!(u.resource["meta"]["versionId"], "2");
    assert_eq!(u.resource["channel"]["endpoint"], "https://b.example/hook");
    assert!(
        b.store
            .update_subscription(
                "nope",
                write("https://b.example/hook", SubscriptionStatus::Off)
            )
            .await
            .unwrap()
            .is_none()
    );
}

async fn status_changes_patch_the_json_without_a_new_version(b: &Backend) {
    let s = b
        .store
        .create_subscription(write(
            "https://a.example/hook",
            SubscriptionStatus::Requested,
        ))
        .await
        .unwrap();
    let e = b
        .store
        .set_subscription_status(
            &s.id,
            SubscriptionStatus::Error,
            Some("endpoint answered 500"),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(e.version_id, 1);
    assert_eq!(e.status, SubscriptionStatus::Error);
    assert_eq!(e.error.as_deref(), Some("endpoint answered 500"));
    assert_eq!(e.resource["status"], "error");
    assert_eq!(e.resource["error"], "endpoint answered 500");
    assert_eq!(e.resource["meta"]["versionId"], "1");
    assert_ne!(
        e.resource["meta"]["lastUpdated"],
        s.resource["meta"]["lastUpdated"]
    );
    let a = b
        .store
        .set_subscription_status(&s.id, SubscriptionStatus::Active, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.status, SubscriptionStatus::Active);
    assert_eq!(a.error, None);
    assert!(a.resource.get("error").is_none());
    assert_eq!(b.store.subscription(&s.id).await.unwrap().unwrap(), a);
}

async fn status_change_at_a_replaced_version_is_refused(b: &Backend) {
    let s = b
        .store
        .create_subscription(write(
            "https://a.example/hook",
            SubscriptionStatus::Requested,
        ))
        .await
        .unwrap();
    b.store
        .update_subscription(
            &s.id,
            write("https://b.example/hook", SubscriptionStatus::Requested),
        )
        .await
        .unwrap();
    let late = b
        .store
        .set_subscription_status_at_version(&s.id, 1, SubscriptionStatus::Active, None)
        .await
        .unwrap();
    assert!(
        late.is_none(),
        "a handshake for version 1 must not activate version 2"
    );
    let now = b
        .store
        .set_subscription_status_at_version(&s.id, 2, SubscriptionStatus::Active, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(now.status, SubscriptionStatus::Active);
}

async fn list_filters_by_status_and_hides_deleted(b: &Backend) {
    let mut ids = Vec::new();
    for i in 0..4 {
        let s = b
            .store
            .create_subscription(write(
                &format!("https://{i}.example/hook"),
                SubscriptionStatus::Requested,
            ))
            .await
            .unwrap();
        ids.push(s.id);
    }
    for id in &ids[..2] {
        b.store
            .set_subscription_status(id, SubscriptionStatus::Active, None)
            .await
            .unwrap();
    }
    b.store.delete_subscription(&ids[1]).await.unwrap();
    let active: Vec<String> = b
        .store
        .subscriptions(Some(SubscriptionStatus::Active))
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(active, vec![ids[0].clone()]);
    let all: Vec<String> = b
        .store
        .subscriptions(None)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(
        all,
        vec![ids[0].clone(), ids[2].clone(), ids[3].clone()],
        "oldest first"
    );
    assert_eq!(
        b.store
            .subscriptions(Some(SubscriptionStatus::Requested))
            .await
            .unwrap()
            .len(),
        2
    );
}

async fn delete_keeps_the_row_switched_off(b: &Backend) {
    let s = b
        .store
        .create_subscription(write(
            "https://a.example/hook",
            SubscriptionStatus::Requested,
        ))
        .await
        .unwrap();
    assert!(b.store.delete_subscription(&s.id).await.unwrap());
    assert!(
        !b.store.delete_subscription(&s.id).await.unwrap(),
        "already gone"
    );
    assert!(!b.store.delete_subscription("nope").await.unwrap());
    let d = b.store.subscription(&s.id).await.unwrap().unwrap();
    assert!(d.deleted);
    assert_eq!(d.status, SubscriptionStatus::Off);
    assert_eq!(d.resource["status"], "off");
    assert!(
        b.store
            .set_subscription_status(&s.id, SubscriptionStatus::Active, None)
            .await
            .unwrap()
            .is_none(),
        "a deleted subscription cannot be re-activated by the gateway"
    );
    assert!(
        b.store
            .update_subscription(
                &s.id,
                write("https://a.example/hook", SubscriptionStatus::Requested)
            )
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        !b.store
            .claim_heartbeat(&s.id, None, OffsetDateTime::now_utc())
            .await
            .unwrap()
    );
}

async fn event_numbers_follow_the_contract_statement(b: &Backend) {
    let s = b
        .store
        .create_subscription(write(
            "https://a.example/hook",
            SubscriptionStatus::Requested,
        ))
        .await
        .unwrap();
    let other = b
        .store
        .create_subscription(write(
            "https://b.example/hook",
            SubscriptionStatus::Requested,
        ))
        .await
        .unwrap();
    for expected in 1..=3 {
        assert_eq!(b.next_event_number(&s.id).await, expected);
    }
    assert_eq!(
        b.next_event_number(&other.id).await,
        1,
        "numbers are per subscription"
    );
    assert_eq!(
        b.store
            .subscription(&s.id)
            .await
            .unwrap()
            .unwrap()
            .events_since_start,
        3
    );
}

async fn touch_and_claim_heartbeat(b: &Backend) {
    let s = b
        .store
        .create_subscription(write(
            "https://a.example/hook",
            SubscriptionStatus::Requested,
        ))
        .await
        .unwrap();
    let t0 = OffsetDateTime::now_utc();
    assert!(
        !b.store.claim_heartbeat(&s.id, None, t0).await.unwrap(),
        "not active yet"
    );
    b.store
        .set_subscription_status(&s.id, SubscriptionStatus::Active, None)
        .await
        .unwrap();
    assert!(b.store.claim_heartbeat(&s.id, None, t0).await.unwrap());
    assert!(
        !b.store.claim_heartbeat(&s.id, None, t0).await.unwrap(),
        "a second claimer (another instance) that saw the old value loses"
    );
    let stored = b.store.subscription(&s.id).await.unwrap().unwrap();
    let seen = stored.last_sent_at;
    assert_eq!(seen.map(|t| t.unix_timestamp()), Some(t0.unix_timestamp()));
    let t1 = t0 + Duration::seconds(5);
    assert!(b.store.claim_heartbeat(&s.id, seen, t1).await.unwrap());

    // An event delivery touches it; an older report never moves it back.
    let t2 = t1 + Duration::seconds(5);
    b.store.touch_subscription_sent(&s.id, t2).await.unwrap();
    b.store.touch_subscription_sent(&s.id, t0).await.unwrap();
    let last = b
        .store
        .subscription(&s.id)
        .await
        .unwrap()
        .unwrap()
        .last_sent_at;
    assert_eq!(last.map(|t| t.unix_timestamp()), Some(t2.unix_timestamp()));
}

async fn a_write_that_is_not_a_subscription_is_refused(b: &Backend) {
    let mut w = write("https://a.example/hook", SubscriptionStatus::Requested);
    w.resource = json!({ "resourceType": "Patient" });
    assert!(matches!(
        b.store.create_subscription(w).await,
        Err(store::StoreError::Invalid(_))
    ));
    assert!(b.store.subscriptions(None).await.unwrap().is_empty());
}
