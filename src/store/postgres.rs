//! The PostgreSQL backend: several gateway instances sharing one database.
//!
//! Correct under concurrency without application locks, in PostgreSQL's default READ
//! COMMITTED isolation:
//! - Duplicate message ids: `INSERT ... ON CONFLICT (message_id) DO NOTHING`. If another
//!   instance is inserting the same id, the insert waits for that transaction; if it commits,
//!   this one inserts nothing and returns the original, if it rolls back, this one proceeds.
//! - Resubmissions of one business identifier: one `INSERT ... ON CONFLICT DO UPDATE` per
//!   write creates the logical resource or increments its version while holding its row lock
//!   until commit, so concurrent resubmissions get versions n+1, n+2, ... and never fork two
//!   logical resources or two equal versions.
//! - Writes of one submission take their row locks in a fixed order (by type and identifier),
//!   so two submissions touching the same resources cannot deadlock; a deadlock or
//!   serialization failure reported anyway is retried.
//!
//! Keyset paging relies on `last_updated` stamped by each instance's clock: with skewed clocks
//! a client paging concurrently with writes can miss a resource written "in the past". Keep
//! instance clocks NTP-synchronised.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
use sqlx::{Connection, Postgres, QueryBuilder, Transaction};
use uuid::Uuid;

use super::index::SearchIndex;
use super::{
    CommitOutcome, NewSubmission, SearchPage, SearchQuery, Store, StoreError, StoreResult,
    StoredResource, StoredSubmission, SubmissionStatus, migrate_error, migrations, new_logical_id,
    now_micros, page, prepare, resource_from_row, search, stamp, submission_from_row,
};

const MAX_CONNECTIONS: u32 = 16;
/// How long a request waits for a connection before the store reports itself unavailable (the
/// API answers 503 well inside its request timeout).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// Attempts at a commit that failed with a deadlock or serialization failure.
const COMMIT_ATTEMPTS: usize = 3;

const RESOURCE_COLUMNS: &str = "v.resource_type, v.id, v.version_id, v.last_updated, \
     v.submission_id::text, v.resource::text";
const SUBMISSION_COLUMNS: &str = "id::text, received_at, channel, message_id, sender, sha256, \
     status, outcome::text, response::text";

/// The shared store.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    pool: PgPool,
    outbox: super::outbox::postgres::SqlOutbox,
}

impl PostgresStore {
    /// Connect and migrate (migrations take an advisory lock, so instances starting together
    /// apply them once).
    pub async fn open(url: &str) -> StoreResult<PostgresStore> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Config(format!("invalid PostgreSQL URL: {e}")))?
            .application_name("pqom-gateway");
        // One direct connection first: an unreachable server fails at once with its cause
        // (the pool would retry until its timeout and report only that).
        PgConnection::connect_with(&options).await?.close().await?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await?;
        migrations::postgres()
            .run(&pool)
            .await
            .map_err(migrate_error)?;
        Ok(PostgresStore {
            outbox: super::outbox::postgres::SqlOutbox {
                writer: pool.clone(),
                reader: pool.clone(),
            },
            pool,
        })
    }

    /// Close the pool, waiting for connections to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn try_commit(
        &self,
        submission: &mut NewSubmission,
        indexes: &[SearchIndex],
    ) -> StoreResult<CommitOutcome> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO submission \
             (id, received_at, channel, message_id, sender, body, sha256, status, outcome, response) \
             VALUES ($1::uuid, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10::jsonb) \
             ON CONFLICT (message_id) DO NOTHING",
        )
        .bind(submission.id.to_string())
        .bind(super::index::micros(submission.received_at))
        .bind(submission.channel.as_str())
        .bind(submission.message_id.as_deref())
        .bind(submission.sender.as_deref())
        .bind(submission.body.as_slice())
        .bind(submission.sha256.as_str())
        .bind(submission.status.as_str())
        .bind(submission.outcome.to_string())
        .bind(submission.response.as_ref().map(|r| r.to_string()))
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            tx.rollback().await?;
            let original = match submission.message_id.as_deref() {
                Some(m) => self.submission_by_message_id(m).await?,
                None => None,
            };
            return original
                .map(CommitOutcome::DuplicateMessage)
                .ok_or_else(|| {
                    StoreError::Corrupt(
                        "submission insert ignored without a message id conflict".into(),
                    )
                });
        }

        let now = now_micros();
        // Lock resources in one global order (see the module docs); results keep input order.
        let mut order: Vec<usize> = (0..submission.resources.len()).collect();
        order.sort_by(|&a, &b| {
            let (a, b) = (&submission.resources[a], &submission.resources[b]);
            (&a.resource_type, &a.identifier).cmp(&(&b.resource_type, &b.identifier))
        });
        let mut written: Vec<(String, i64, i64)> = vec![Default::default(); order.len()];
        for i in order {
            let write = &mut submission.resources[i];
            let (system, value) = match &write.identifier {
                Some((s, v)) => (Some(s.as_str()), Some(v.as_str())),
                None => (None, None),
            };
            let (id, version_id, last_updated) = upsert_resource(
                &mut tx,
                &write.resource_type,
                system,
                value,
                &indexes[i],
                now,
            )
            .await?;
            // Stamped in place: a retried attempt stamps again over the same members.
            stamp(&mut write.resource, &id, version_id, last_updated)?;
            sqlx::query(
                "INSERT INTO resource_version \
                 (resource_type, id, version_id, last_updated, submission_id, resource) \
                 VALUES ($1, $2, $3, $4, $5::uuid, $6::jsonb)",
            )
            .bind(&write.resource_type)
            .bind(&id)
            .bind(version_id)
            .bind(last_updated)
            .bind(submission.id.to_string())
            .bind(write.resource.to_string())
            .execute(&mut *tx)
            .await?;
            written[i] = (id, version_id, last_updated);
        }
        super::indicators::postgres::record(
            &mut tx,
            submission.id,
            now,
            &submission.indicator_values,
        )
        .await?;
        if let (Some(event), SubmissionStatus::Accepted) = (&submission.event, submission.status) {
            super::outbox::postgres::insert_event(&mut tx, submission.id, event, now).await?;
        }
        tx.commit().await?;
        // Committed: no retry will need the resources again, so they move into the result.
        let resources = std::mem::take(&mut submission.resources);
        let stored = resources
            .into_iter()
            .zip(written)
            .map(|(write, (id, version_id, last_updated))| {
                Ok(StoredResource {
                    resource_type: write.resource_type,
                    id,
                    version_id,
                    last_updated: super::from_micros(last_updated)?,
                    resource: write.resource,
                    submission_id: submission.id,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(CommitOutcome::Committed(stored))
    }
}

/// Deadlock (40P01) or serialization failure (40001): the transaction was rolled back and may
/// simply be run again.
fn is_retryable(error: &StoreError) -> bool {
    match error {
        StoreError::Database(sqlx::Error::Database(db)) => {
            matches!(db.code().as_deref(), Some("40P01" | "40001"))
        }
        _ => false,
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn commit_submission(&self, mut submission: NewSubmission) -> StoreResult<CommitOutcome> {
        let indexes = submission
            .resources
            .iter()
            .map(prepare)
            .collect::<StoreResult<Vec<_>>>()?;
        let mut attempt = 1;
        loop {
            match self.try_commit(&mut submission, &indexes).await {
                Err(e) if attempt < COMMIT_ATTEMPTS && is_retryable(&e) => {
                    tracing::warn!(error = %e, attempt, "commit conflicted, retrying");
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    async fn submission(&self, id: Uuid) -> StoreResult<Option<StoredSubmission>> {
        let sql = format!("SELECT {SUBMISSION_COLUMNS} FROM submission WHERE id = $1::uuid");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .map(|row| submission_from_row(&row))
            .transpose()
    }

    async fn submission_by_message_id(
        &self,
        message_id: &str,
    ) -> StoreResult<Option<StoredSubmission>> {
        let sql = format!("SELECT {SUBMISSION_COLUMNS} FROM submission WHERE message_id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(message_id)
            .fetch_optional(&self.pool)
            .await?
            .map(|row| submission_from_row(&row))
            .transpose()
    }

    async fn read(&self, resource_type: &str, id: &str) -> StoreResult<Option<StoredResource>> {
        let sql = format!(
            "SELECT {RESOURCE_COLUMNS} FROM resource r JOIN resource_version v \
             ON v.resource_type = r.resource_type AND v.id = r.id AND v.version_id = r.version_id \
             WHERE r.resource_type = $1 AND r.id = $2"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(resource_type)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(|row| resource_from_row(&row))
            .transpose()
    }

    async fn vread(
        &self,
        resource_type: &str,
        id: &str,
        version_id: i64,
    ) -> StoreResult<Option<StoredResource>> {
        let sql = format!(
            "SELECT {RESOURCE_COLUMNS} FROM resource_version v \
             WHERE v.resource_type = $1 AND v.id = $2 AND v.version_id = $3"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(resource_type)
            .bind(id)
            .bind(version_id)
            .fetch_optional(&self.pool)
            .await?
            .map(|row| resource_from_row(&row))
            .transpose()
    }

    async fn history(&self, resource_type: &str, id: &str) -> StoreResult<Vec<StoredResource>> {
        let sql = format!(
            "SELECT {RESOURCE_COLUMNS} FROM resource_version v \
             WHERE v.resource_type = $1 AND v.id = $2 ORDER BY v.version_id DESC"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(resource_type)
            .bind(id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(resource_from_row)
            .collect()
    }

    async fn find_by_identifier(
        &self,
        resource_type: &str,
        system: &str,
        value: &str,
    ) -> StoreResult<Option<StoredResource>> {
        let sql = format!(
            "SELECT {RESOURCE_COLUMNS} FROM resource r JOIN resource_version v \
             ON v.resource_type = r.resource_type AND v.id = r.id AND v.version_id = r.version_id \
             WHERE r.resource_type = $1 AND r.identifier_system = $2 AND r.identifier_value = $3"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(resource_type)
            .bind(system)
            .bind(value)
            .fetch_optional(&self.pool)
            .await?
            .map(|row| resource_from_row(&row))
            .transpose()
    }

    async fn submission_body(&self, id: Uuid) -> StoreResult<Option<Vec<u8>>> {
        Ok(
            sqlx::query_scalar("SELECT body FROM submission WHERE id = $1::uuid")
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn submissions_by_sender(
        &self,
        sender: &str,
        limit: u32,
    ) -> StoreResult<Vec<StoredSubmission>> {
        let sql = format!(
            "SELECT {SUBMISSION_COLUMNS} FROM submission WHERE sender = $1 \
             ORDER BY received_at DESC, id DESC LIMIT $2"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(sender)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(submission_from_row)
            .collect()
    }

    async fn search(&self, resource_type: &str, query: &SearchQuery) -> StoreResult<SearchPage> {
        let mut qb = QueryBuilder::<Postgres>::new(format!(
            "SELECT {RESOURCE_COLUMNS} FROM resource r JOIN resource_version v \
             ON v.resource_type = r.resource_type AND v.id = r.id AND v.version_id = r.version_id \
             WHERE r.resource_type = "
        ));
        qb.push_bind(resource_type.to_owned());
        search::push_criteria(&mut qb, query);
        let resources = qb
            .build()
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(resource_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(page(resources, query))
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    fn outbox(&self) -> Option<&dyn super::outbox::Outbox> {
        Some(&self.outbox)
    }

    async fn indicator_values(
        &self,
        query: &super::IndicatorQuery,
    ) -> StoreResult<Vec<super::StoredIndicatorValue>> {
        super::indicators::postgres::query(&self.pool, query).await
    }

    async fn create_subscription(
        &self,
        write: super::SubscriptionWrite,
    ) -> StoreResult<super::StoredSubscription> {
        super::subscriptions::postgres::create(&self.pool, write).await
    }

    async fn update_subscription(
        &self,
        id: &str,
        write: super::SubscriptionWrite,
    ) -> StoreResult<Option<super::StoredSubscription>> {
        super::subscriptions::postgres::update(&self.pool, id, write).await
    }

    async fn delete_subscription(&self, id: &str) -> StoreResult<bool> {
        super::subscriptions::postgres::delete(&self.pool, id).await
    }

    async fn subscription(&self, id: &str) -> StoreResult<Option<super::StoredSubscription>> {
        super::subscriptions::postgres::get(&self.pool, id).await
    }

    async fn subscriptions(
        &self,
        status: Option<super::SubscriptionStatus>,
    ) -> StoreResult<Vec<super::StoredSubscription>> {
        super::subscriptions::postgres::list(&self.pool, status).await
    }

    async fn set_subscription_status(
        &self,
        id: &str,
        status: super::SubscriptionStatus,
        error: Option<&str>,
    ) -> StoreResult<Option<super::StoredSubscription>> {
        super::subscriptions::postgres::set_status(&self.pool, id, None, status, error).await
    }

    async fn set_subscription_status_at_version(
        &self,
        id: &str,
        version_id: i64,
        status: super::SubscriptionStatus,
        error: Option<&str>,
    ) -> StoreResult<Option<super::StoredSubscription>> {
        super::subscriptions::postgres::set_status(&self.pool, id, Some(version_id), status, error)
            .await
    }

    async fn touch_subscription_sent(&self, id: &str, at: time::OffsetDateTime) -> StoreResult<()> {
        super::subscriptions::postgres::touch_sent(&self.pool, id, at).await
    }

    async fn claim_heartbeat(
        &self,
        id: &str,
        seen: Option<time::OffsetDateTime>,
        at: time::OffsetDateTime,
    ) -> StoreResult<bool> {
        super::subscriptions::postgres::claim_heartbeat(&self.pool, id, seen, at).await
    }
}

/// Create the logical resource, or (same type and business identifier) make this its next
/// version, in one statement that holds the row lock until commit; returns
/// `(id, version_id, last_updated)`. `last_updated` never goes backwards within a resource.
async fn upsert_resource(
    tx: &mut Transaction<'static, Postgres>,
    resource_type: &str,
    system: Option<&str>,
    value: Option<&str>,
    index: &SearchIndex,
    now: i64,
) -> StoreResult<(String, i64, i64)> {
    let (period_start, period_end) = index.period.unzip();
    let (id, version_id, last_updated): (String, i64, i64) = sqlx::query_as(
        "INSERT INTO resource AS r \
         (resource_type, id, version_id, last_updated, identifier_system, identifier_value, \
          status, measure_url, measure_version, period_start, period_end, url, version, name) \
         VALUES ($1, $2, 1, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
         ON CONFLICT (resource_type, identifier_system, identifier_value) DO UPDATE SET \
           version_id = r.version_id + 1, \
           last_updated = GREATEST(EXCLUDED.last_updated, r.last_updated + 1), \
           status = EXCLUDED.status, measure_url = EXCLUDED.measure_url, \
           measure_version = EXCLUDED.measure_version, period_start = EXCLUDED.period_start, \
           period_end = EXCLUDED.period_end, url = EXCLUDED.url, version = EXCLUDED.version, \
           name = EXCLUDED.name \
         RETURNING id, version_id, last_updated",
    )
    .bind(resource_type)
    .bind(new_logical_id())
    .bind(now)
    .bind(system)
    .bind(value)
    .bind(index.status.as_deref())
    .bind(index.measure_url.as_deref())
    .bind(index.measure_version.as_deref())
    .bind(period_start)
    .bind(period_end)
    .bind(index.url.as_deref())
    .bind(index.version.as_deref())
    .bind(index.name.as_deref())
    .fetch_one(&mut **tx)
    .await?;
    if version_id > 1 {
        sqlx::query("DELETE FROM resource_token WHERE resource_type = $1 AND id = $2")
            .bind(resource_type)
            .bind(&id)
            .execute(&mut **tx)
            .await?;
    }
    if !index.tokens.is_empty() {
        // One round trip for all tokens.
        let params: Vec<&str> = index.tokens.iter().map(|t| t.param).collect();
        let systems: Vec<Option<&str>> = index.tokens.iter().map(|t| t.system.as_deref()).collect();
        let values: Vec<&str> = index.tokens.iter().map(|t| t.value.as_str()).collect();
        sqlx::query(
            "INSERT INTO resource_token (resource_type, id, param, system, value) \
             SELECT $1, $2, p, s, v FROM UNNEST($3::text[], $4::text[], $5::text[]) AS t(p, s, v)",
        )
        .bind(resource_type)
        .bind(&id)
        .bind(params)
        .bind(systems)
        .bind(values)
        .execute(&mut **tx)
        .await?;
    }
    Ok((id, version_id, last_updated))
}
