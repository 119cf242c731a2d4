//! The SQLite backend: the embedded default, one file `<data-dir>/pqom.db`.
//!
//! Durability and concurrency choices:
//! - WAL journal: readers never block the writer nor each other.
//! - `synchronous=FULL`: in WAL mode, `NORMAL` syncs only at checkpoints, so a power loss can
//!   roll back transactions that already returned; the gateway answers 2xx only after a commit,
//!   and a trust will not resend a message it got a 2xx for, so every commit is fsynced before it
//!   returns. (A `kill -9` alone loses nothing even with `NORMAL`, as the WAL is in the OS page
//!   cache, see `tests/store_crash.rs`; `FULL` is what covers a crash of the machine.) The cost
//!   is one fsync of the WAL per commit: 0.6-0.9 ms on the development machine, against 20-30 ms
//!   for a whole reference-report commit in the dev profile (BENCHMARKS.md, `benches/store.rs`).
//! - All writes go through one pooled connection, so writers queue in-process rather than spin
//!   on SQLITE_BUSY; they still open with `BEGIN IMMEDIATE` (take the write lock up front, so a
//!   transaction never fails upgrading a read lock) and a busy timeout covers other processes
//!   (the CLI) using the same file.
//! - Foreign keys on.

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Sqlite, Transaction};
use uuid::Uuid;

use super::index::SearchIndex;
use super::{
    CommitOutcome, NewSubmission, SearchPage, SearchQuery, Store, StoreError, StoreResult,
    StoredResource, StoredSubmission, SubmissionStatus, migrate_error, migrations, new_logical_id,
    now_micros, page, prepare, resource_from_row, search, stamp, submission_from_row,
};

const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
const READERS: u32 = 4;
/// How long a commit waits for the writer (behind other commits) or a reader waits for a
/// connection before the store reports itself unavailable (503, inside the request timeout).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

const RESOURCE_COLUMNS: &str =
    "v.resource_type, v.id, v.version_id, v.last_updated, v.submission_id, v.resource";
const SUBMISSION_COLUMNS: &str =
    "id, received_at, channel, message_id, sender, sha256, status, outcome, response";

/// The embedded store.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
    path: PathBuf,
    outbox: super::outbox::sqlite::SqlOutbox,
}

impl SqliteStore {
    /// Open (creating the file and its directory if missing) and migrate.
    pub async fn open(path: &Path) -> StoreResult<SqliteStore> {
        Self::open_with_synchronous(path, SqliteSynchronous::Full).await
    }

    /// [`SqliteStore::open`] with another `synchronous` level: only for measuring what
    /// `FULL` costs (`benches/store.rs`). The gateway always uses `FULL`.
    #[doc(hidden)]
    pub async fn open_with_synchronous(
        path: &Path,
        synchronous: SqliteSynchronous,
    ) -> StoreResult<SqliteStore> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir).await.map_err(|e| {
                StoreError::Config(format!(
                    "cannot create data directory {}: {e}",
                    dir.display()
                ))
            })?;
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(synchronous)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.clone())
            .await?;
        migrations::sqlite()
            .run(&writer)
            .await
            .map_err(migrate_error)?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.read_only(true))
            .await?;
        Ok(SqliteStore {
            outbox: super::outbox::sqlite::SqlOutbox {
                writer: writer.clone(),
                reader: reader.clone(),
            },
            writer,
            reader,
            path: path.to_owned(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Close both pools, waiting for connections to finish (checkpoints the WAL).
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn commit_submission(&self, submission: NewSubmission) -> StoreResult<CommitOutcome> {
        let indexes = submission
            .resources
            .iter()
            .map(prepare)
            .collect::<StoreResult<Vec<_>>>()?;
        let outcome = submission.outcome.to_string();
        let response = submission.response.as_ref().map(|r| r.to_string());

        let mut tx = self.writer.begin_with("BEGIN IMMEDIATE").await?;
        // Taken under the write lock, so commits are stamped in commit order.
        let now = now_micros();
        let inserted = sqlx::query(
            "INSERT INTO submission \
             (id, received_at, channel, message_id, sender, body, sha256, status, outcome, response) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
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
        .bind(outcome)
        .bind(response)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            tx.rollback().await?;
            return duplicate(self, submission.message_id.as_deref()).await;
        }

        let mut written = Vec::with_capacity(submission.resources.len());
        for (mut write, index) in submission.resources.into_iter().zip(&indexes) {
            let (system, value) = match &write.identifier {
                Some((s, v)) => (Some(s.as_str()), Some(v.as_str())),
                None => (None, None),
            };
            let (id, version_id, last_updated) =
                upsert_resource(&mut tx, &write.resource_type, system, value, index, now).await?;
            stamp(&mut write.resource, &id, version_id, last_updated)?;
            sqlx::query(
                "INSERT INTO resource_version \
                 (resource_type, id, version_id, last_updated, submission_id, resource) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(&write.resource_type)
            .bind(&id)
            .bind(version_id)
            .bind(last_updated)
            .bind(submission.id.to_string())
            .bind(write.resource.to_string())
            .execute(&mut *tx)
            .await?;
            written.push(StoredResource {
                resource_type: write.resource_type,
                id,
                version_id,
                last_updated: super::from_micros(last_updated)?,
                resource: write.resource,
                submission_id: submission.id,
            });
        }
        super::indicators::sqlite::record(
            &mut tx,
            submission.id,
            now,
            &submission.indicator_values,
        )
        .await?;
        if let (Some(event), SubmissionStatus::Accepted) = (&submission.event, submission.status) {
            super::outbox::sqlite::insert_event(&mut tx, submission.id, event, now).await?;
        }
        tx.commit().await?;
        Ok(CommitOutcome::Committed(written))
    }

    async fn submission(&self, id: Uuid) -> StoreResult<Option<StoredSubmission>> {
        let sql = format!("SELECT {SUBMISSION_COLUMNS} FROM submission WHERE id = ?");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&self.reader)
            .await?
            .map(|row| submission_from_row(&row))
            .transpose()
    }

    async fn submission_by_message_id(
        &self,
        message_id: &str,
    ) -> StoreResult<Option<StoredSubmission>> {
        submission_by_message_id(&self.reader, message_id).await
    }

    async fn read(&self, resource_type: &str, id: &str) -> StoreResult<Option<StoredResource>> {
        let sql = format!(
            "SELECT {RESOURCE_COLUMNS} FROM resource r JOIN resource_version v \
             ON v.resource_type = r.resource_type AND v.id = r.id AND v.version_id = r.version_id \
             WHERE r.resource_type = ? AND r.id = ?"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(resource_type)
            .bind(id)
            .fetch_optional(&self.reader)
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
             WHERE v.resource_type = ? AND v.id = ? AND v.version_id = ?"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(resource_type)
            .bind(id)
            .bind(version_id)
            .fetch_optional(&self.reader)
            .await?
            .map(|row| resource_from_row(&row))
            .transpose()
    }

    async fn history(&self, resource_type: &str, id: &str) -> StoreResult<Vec<StoredResource>> {
        let sql = format!(
            "SELECT {RESOURCE_COLUMNS} FROM resource_version v \
             WHERE v.resource_type = ? AND v.id = ? ORDER BY v.version_id DESC"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(resource_type)
            .bind(id)
            .fetch_all(&self.reader)
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
             WHERE r.resource_type = ? AND r.identifier_system = ? AND r.identifier_value = ?"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(resource_type)
            .bind(system)
            .bind(value)
            .fetch_optional(&self.reader)
            .await?
            .map(|row| resource_from_row(&row))
            .transpose()
    }

    async fn submission_body(&self, id: Uuid) -> StoreResult<Option<Vec<u8>>> {
        Ok(
            sqlx::query_scalar("SELECT body FROM submission WHERE id = ?")
                .bind(id.to_string())
                .fetch_optional(&self.reader)
                .await?,
        )
    }

    async fn submissions_by_sender(
        &self,
        sender: &str,
        limit: u32,
    ) -> StoreResult<Vec<StoredSubmission>> {
        let sql = format!(
            "SELECT {SUBMISSION_COLUMNS} FROM submission WHERE sender = ? \
             ORDER BY received_at DESC, id DESC LIMIT ?"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(sender)
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(submission_from_row)
            .collect()
    }

    async fn search(&self, resource_type: &str, query: &SearchQuery) -> StoreResult<SearchPage> {
        let mut qb = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {RESOURCE_COLUMNS} FROM resource r JOIN resource_version v \
             ON v.resource_type = r.resource_type AND v.id = r.id AND v.version_id = r.version_id \
             WHERE r.resource_type = "
        ));
        qb.push_bind(resource_type.to_owned());
        search::push_criteria(&mut qb, query);
        let resources = qb
            .build()
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(resource_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(page(resources, query))
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    fn outbox(&self) -> Option<&dyn super::outbox::Outbox> {
        Some(&self.outbox)
    }

    async fn indicator_values(
        &self,
        query: &super::IndicatorQuery,
    ) -> StoreResult<Vec<super::StoredIndicatorValue>> {
        super::indicators::sqlite::query(&self.reader, query).await
    }

    async fn create_subscription(
        &self,
        write: super::SubscriptionWrite,
    ) -> StoreResult<super::StoredSubscription> {
        super::subscriptions::sqlite::create(&self.writer, write).await
    }

    async fn update_subscription(
        &self,
        id: &str,
        write: super::SubscriptionWrite,
    ) -> StoreResult<Option<super::StoredSubscription>> {
        super::subscriptions::sqlite::update(&self.writer, id, write).await
    }

    async fn delete_subscription(&self, id: &str) -> StoreResult<bool> {
        super::subscriptions::sqlite::delete(&self.writer, id).await
    }

    async fn subscription(&self, id: &str) -> StoreResult<Option<super::StoredSubscription>> {
        super::subscriptions::sqlite::get(&self.reader, id).await
    }

    async fn subscriptions(
        &self,
        status: Option<super::SubscriptionStatus>,
    ) -> StoreResult<Vec<super::StoredSubscription>> {
        super::subscriptions::sqlite::list(&self.reader, status).await
    }

    async fn set_subscription_status(
        &self,
        id: &str,
        status: super::SubscriptionStatus,
        error: Option<&str>,
    ) -> StoreResult<Option<super::StoredSubscription>> {
        super::subscriptions::sqlite::set_status(&self.writer, id, None, status, error).await
    }

    async fn set_subscription_status_at_version(
        &self,
        id: &str,
        version_id: i64,
        status: super::SubscriptionStatus,
        error: Option<&str>,
    ) -> StoreResult<Option<super::StoredSubscription>> {
        super::subscriptions::sqlite::set_status(&self.writer, id, Some(version_id), status, error)
            .await
    }

    async fn touch_subscription_sent(&self, id: &str, at: time::OffsetDateTime) -> StoreResult<()> {
        super::subscriptions::sqlite::touch_sent(&self.writer, id, at).await
    }

    async fn claim_heartbeat(
        &self,
        id: &str,
        seen: Option<time::OffsetDateTime>,
        at: time::OffsetDateTime,
    ) -> StoreResult<bool> {
        super::subscriptions::sqlite::claim_heartbeat(&self.writer, id, seen, at).await
    }
}

async fn submission_by_message_id(
    pool: &SqlitePool,
    message_id: &str,
) -> StoreResult<Option<StoredSubmission>> {
    let sql = format!("SELECT {SUBMISSION_COLUMNS} FROM submission WHERE message_id = ?");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(message_id)
        .fetch_optional(pool)
        .await?
        .map(|row| submission_from_row(&row))
        .transpose()
}

/// The submission insert did nothing: its `message_id` is taken (a fresh UUID `id` cannot
/// collide, and a repeated one fails loudly on the primary key instead).
async fn duplicate(store: &SqliteStore, message_id: Option<&str>) -> StoreResult<CommitOutcome> {
    let original = match message_id {
        Some(m) => submission_by_message_id(&store.writer, m).await?,
        None => None,
    };
    original
        .map(CommitOutcome::DuplicateMessage)
        .ok_or_else(|| {
            StoreError::Corrupt("submission insert ignored without a message id conflict".into())
        })
}

/// Create the logical resource, or (same type and business identifier) make this its next
/// version, in one statement; returns `(id, version_id, last_updated)`. `last_updated` never
/// goes backwards within a resource, even if the clock does.
async fn upsert_resource(
    tx: &mut Transaction<'static, Sqlite>,
    resource_type: &str,
    system: Option<&str>,
    value: Option<&str>,
    index: &SearchIndex,
    now: i64,
) -> StoreResult<(String, i64, i64)> {
    let (period_start, period_end) = index.period.unzip();
    let (id, version_id, last_updated): (String, i64, i64) = sqlx::query_as(
        "INSERT INTO resource \
         (resource_type, id, version_id, last_updated, identifier_system, identifier_value, \
          status, measure_url, measure_version, period_start, period_end, url, version, name) \
         VALUES (?, ?, 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
         ON CONFLICT (resource_type, identifier_system, identifier_value) DO UPDATE SET \
           version_id = resource.version_id + 1, \
           last_updated = MAX(excluded.last_updated, resource.last_updated + 1), \
           status = excluded.status, measure_url = excluded.measure_url, \
           measure_version = excluded.measure_version, period_start = excluded.period_start, \
           period_end = excluded.period_end, url = excluded.url, version = excluded.version, \
           name = excluded.name \
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
        sqlx::query("DELETE FROM resource_token WHERE resource_type = ? AND id = ?")
            .bind(resource_type)
            .bind(&id)
            .execute(&mut **tx)
            .await?;
    }
    for token in &index.tokens {
        sqlx::query(
            "INSERT INTO resource_token (resource_type, id, param, system, value) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .bind(resource_type)
        .bind(&id)
        .bind(token.param)
        .bind(token.system.as_deref())
        .bind(token.value.as_str())
        .execute(&mut **tx)
        .await?;
    }
    Ok((id, version_id, last_updated))
}
