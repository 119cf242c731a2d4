//! Durable storage behind one trait, [`Store`], with two backends: SQLite (embedded default,
//! WAL) and PostgreSQL (several gateway instances sharing one database). Each backend owns its
//! migrations (`migrations/sqlite`, `migrations/postgres`).
//!
//! Contract: when [`Store::commit_submission`] returns `Ok`, the submission, its outcome, every
//! resource version it wrote and its indicator values are durable (committed and synced, in one
//! transaction). A 2xx answer is only ever sent after that.
//!
//! Layout: [`index`] extracts the search index from resource JSON (pure), [`search`] parses
//! searches and builds their SQL, [`sqlite`] and [`postgres`] are the backends, [`migrations`]
//! embeds each backend's SQL migrations in the binary, [`outbox`] keeps the delivery outbox
//! (events written in the accepting commit, deliveries, claims) in both backends. This module
//! must not know about HTTP: [`StoreError::Unavailable`] is what the API turns into 503.
//!
//! Instants are kept as microseconds since the Unix epoch (UTC) in both backends, so that the
//! same search SQL and cursors work on both; values returned are truncated to microseconds.

pub mod index;
pub mod indicators;
mod migrations;
pub mod outbox;
pub mod postgres;
pub mod search;
pub mod sqlite;
pub mod subscriptions;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

pub use indicators::{IndicatorQuery, StoredIndicatorValue};
pub use search::{SearchPage, SearchQuery};
pub use subscriptions::{StoredSubscription, SubscriptionStatus, SubscriptionWrite};

/// How a submission arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// `POST /fhir/$process-message` with a message Bundle.
    Message,
    /// `POST /fhir/{type}` with a single resource.
    Rest,
}

/// Whether the gateway accepted the submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubmissionStatus {
    Accepted,
    Rejected,
}

/// One submission as received, with what the gateway decided about it.
#[derive(Debug, Clone)]
pub struct NewSubmission {
    pub id: Uuid,
    pub received_at: OffsetDateTime,
    pub channel: Channel,
    /// `MessageHeader.id` of a message: the reliable-messaging key. A second submission with the
    /// same key is not processed again; the first response is returned.
    pub message_id: Option<String>,
    /// ODS code of the submitting organisation, when the submission names one.
    pub sender: Option<String>,
    /// The request body exactly as received (validation and provenance need the exact input).
    pub body: Vec<u8>,
    /// Lower-case hex SHA-256 of `body`.
    pub sha256: String,
    pub status: SubmissionStatus,
    /// The OperationOutcome given to the submitter.
    pub outcome: Value,
    /// The response message Bundle, for messages (returned again on a duplicate).
    pub response: Option<Value>,
    /// Resources to create or version. Empty when rejected.
    pub resources: Vec<ResourceWrite>,
    /// The outbox event to write in the same transaction (accepted submissions that are to be
    /// delivered; never set for a rejected one, and the store ignores it if it is).
    pub event: Option<outbox::OutboxEvent>,
    /// The indicator values mapped from the submission ([`crate::map`]), written in the same
    /// transaction: they replace the current values of the same indicator, trust and period,
    /// and the replaced values stay as history. Empty when rejected or unmapped.
    pub indicator_values: Vec<crate::map::IndicatorValue>,
}

/// A resource to store as part of a submission.
#[derive(Debug, Clone)]
pub struct ResourceWrite {
    pub resource_type: String,
    /// The resource JSON. The store sets `id`, `meta.versionId` and `meta.lastUpdated`.
    pub resource: Value,
    /// Business identifier (system, value) used to find the logical resource this is a new
    /// version of: a resubmission with the same identifier becomes a new version.
    pub identifier: Option<(String, String)>,
}

/// A stored resource version.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResource {
    pub resource_type: String,
    pub id: String,
    pub version_id: i64,
    pub last_updated: OffsetDateTime,
    /// The resource JSON with `id` and `meta` as stored.
    pub resource: Value,
    /// The submission that wrote this version.
    pub submission_id: Uuid,
}

/// A stored submission.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSubmission {
    pub id: Uuid,
    pub received_at: OffsetDateTime,
    pub channel: Channel,
    pub message_id: Option<String>,
    pub sender: Option<String>,
    pub sha256: String,
    pub status: SubmissionStatus,
    pub outcome: Value,
    pub response: Option<Value>,
}

/// What committing a submission did.
// Returned once per commit and matched at once: boxing the larger variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum CommitOutcome {
    /// Committed; the versions written, in the order of `NewSubmission::resources`.
    Committed(Vec<StoredResource>),
    /// A submission with the same `message_id` was already committed; nothing was written.
    DuplicateMessage(StoredSubmission),
}

/// Errors of the storage stage.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database is unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error")]
    Database(#[source] sqlx::Error),
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is not readable: {0}")]
    Corrupt(String),
    #[error("invalid database configuration: {0}")]
    Config(String),
    /// A write the store cannot accept (a caller bug: validation admits only JSON objects of
    /// the declared type).
    #[error("resource not storable: {0}")]
    Invalid(String),
}

impl StoreError {
    /// Classify a driver error: anything that says the database cannot be reached or is
    /// overloaded right now (I/O, TLS, pool exhaustion, PostgreSQL connection and shutdown
    /// classes, SQLite busy/locked/full) is [`StoreError::Unavailable`]; the rest is a
    /// [`StoreError::Database`] error.
    pub fn from_sqlx(error: sqlx::Error) -> StoreError {
        let transient = match &error {
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::BeginFailed => true,
            sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                // PostgreSQL SQLSTATE: 08 connection exception, 53 insufficient resources,
                // 57P01-57P03 shutdown / cannot connect now. SQLite primary result codes:
                // 5 BUSY, 6 LOCKED, 10 IOERR, 13 FULL, 14 CANTOPEN (extended codes keep the
                // primary code in the low byte).
                let code = code.as_ref();
                code.starts_with("08")
                    || code.starts_with("53")
                    || matches!(code, "57P01" | "57P02" | "57P03")
                    || code
                        .parse::<i64>()
                        .is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 10 | 13 | 14))
            }),
            _ => false,
        };
        if transient {
            StoreError::Unavailable(error)
        } else {
            StoreError::Database(error)
        }
    }
}

/// `?` on a driver result classifies the error (see [`StoreError::from_sqlx`]).
impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        StoreError::from_sqlx(error)
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The storage stage. Backends: SQLite and PostgreSQL; the same test suite runs on both.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Commit a submission, its outcome, its resource versions and its indicator values in one
    /// transaction. Indicator values are stamped with the commit's instant (`recorded_at`).
    async fn commit_submission(&self, submission: NewSubmission) -> StoreResult<CommitOutcome>;

    async fn submission(&self, id: Uuid) -> StoreResult<Option<StoredSubmission>>;

    async fn submission_by_message_id(
        &self,
        message_id: &str,
    ) -> StoreResult<Option<StoredSubmission>>;

    /// Current version of a resource.
    async fn read(&self, resource_type: &str, id: &str) -> StoreResult<Option<StoredResource>>;

    /// A specific version of a resource.
    async fn vread(
        &self,
        resource_type: &str,
        id: &str,
        version_id: i64,
    ) -> StoreResult<Option<StoredResource>>;

    /// All versions of a resource, newest first.
    async fn history(&self, resource_type: &str, id: &str) -> StoreResult<Vec<StoredResource>>;

    /// Current version of the resource of this type with this business identifier.
    async fn find_by_identifier(
        &self,
        resource_type: &str,
        system: &str,
        value: &str,
    ) -> StoreResult<Option<StoredResource>>;

    /// The request body of a submission exactly as received.
    async fn submission_body(&self, id: Uuid) -> StoreResult<Option<Vec<u8>>>;

    /// Submissions from one sender (ODS code), newest first, at most `limit`: lets a submitter
    /// see what it sent and why a submission was rejected.
    async fn submissions_by_sender(
        &self,
        sender: &str,
        limit: u32,
    ) -> StoreResult<Vec<StoredSubmission>>;

    /// Search current versions of `resource_type` (see [`search`] for parameters and paging).
    async fn search(&self, resource_type: &str, query: &SearchQuery) -> StoreResult<SearchPage>;

    /// Liveness of the database (for `/readyz`).
    async fn ping(&self) -> StoreResult<()>;

    /// The delivery outbox of this store (`None`: this store cannot deliver).
    fn outbox(&self) -> Option<&dyn outbox::Outbox> {
        None
    }

    /// Indicator values, ordered by indicator, trust, period, recording time and stratum.
    async fn indicator_values(
        &self,
        _query: &IndicatorQuery,
    ) -> StoreResult<Vec<StoredIndicatorValue>> {
        Err(StoreError::Config(
            "this store does not keep indicator values".into(),
        ))
    }

    // Subscriptions (see [`subscriptions`]). The defaults refuse, for stores that keep none.

    /// Store a new Subscription (version 1, a new logical id).
    async fn create_subscription(
        &self,
        _write: SubscriptionWrite,
    ) -> StoreResult<StoredSubscription> {
        Err(no_subscriptions())
    }

    /// Replace a live Subscription: the next version, `error` cleared; the event counter, the
    /// creation time and `last_sent_at` kept. `None` if there is no live Subscription `id`.
    async fn update_subscription(
        &self,
        _id: &str,
        _write: SubscriptionWrite,
    ) -> StoreResult<Option<StoredSubscription>> {
        Err(no_subscriptions())
    }

    /// Mark a Subscription deleted (status `off`; the row stays). `false` if there was no live
    /// Subscription `id`.
    async fn delete_subscription(&self, _id: &str) -> StoreResult<bool> {
        Err(no_subscriptions())
    }

    /// A Subscription by id, deleted ones included (`deleted` says so).
    async fn subscription(&self, _id: &str) -> StoreResult<Option<StoredSubscription>> {
        Err(no_subscriptions())
    }

    /// Live (not deleted) Subscriptions, with this status if given, oldest first.
    async fn subscriptions(
        &self,
        _status: Option<SubscriptionStatus>,
    ) -> StoreResult<Vec<StoredSubscription>> {
        Err(no_subscriptions())
    }

    /// Set the status and its reason (`error`, cleared when `None`) of a live Subscription; the
    /// served JSON follows. Not a new version. `None` if there is no live Subscription `id`.
    async fn set_subscription_status(
        &self,
        _id: &str,
        _status: SubscriptionStatus,
        _error: Option<&str>,
    ) -> StoreResult<Option<StoredSubscription>> {
        Err(no_subscriptions())
    }

    /// [`Store::set_subscription_status`] only if the Subscription is still at `version_id`: a
    /// handshake's verdict must not land on a version the client has since replaced.
    async fn set_subscription_status_at_version(
        &self,
        _id: &str,
        _version_id: i64,
        _status: SubscriptionStatus,
        _error: Option<&str>,
    ) -> StoreResult<Option<StoredSubscription>> {
        Err(no_subscriptions())
    }

    /// Record that a notification reached the endpoint at `at` (never moves `last_sent_at` back).
    async fn touch_subscription_sent(&self, _id: &str, _at: OffsetDateTime) -> StoreResult<()> {
        Err(no_subscriptions())
    }

    /// Take the right to send a heartbeat: sets `last_sent_at` to `at` only if it is still `seen`
    /// and the Subscription is live and active. `true`: this caller sends it (two instances
    /// sharing a database never both do).
    async fn claim_heartbeat(
        &self,
        _id: &str,
        _seen: Option<OffsetDateTime>,
        _at: OffsetDateTime,
    ) -> StoreResult<bool> {
        Err(no_subscriptions())
    }
}

fn no_subscriptions() -> StoreError {
    StoreError::Config("this store does not keep subscriptions".into())
}

/// File name of the SQLite database inside the data directory.
pub const SQLITE_FILE: &str = "pqom.db";

/// Open the store and bring its schema up to date: a `postgres://` (or `postgresql://`) URL
/// selects PostgreSQL; otherwise SQLite in `<data_dir>/pqom.db`, created with its directory
/// if missing.
pub async fn open(database_url: Option<&str>, data_dir: &Path) -> StoreResult<Arc<dyn Store>> {
    match database_url {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Ok(Arc::new(postgres::PostgresStore::open(url).await?))
        }
        Some(url) if !url.is_empty() => Err(StoreError::Config(format!(
            "database URL must start with postgres:// (SQLite needs no URL, it lives in the \
             data directory); got scheme '{}'",
            url.split(':').next().unwrap_or_default()
        ))),
        _ => Ok(Arc::new(
            sqlite::SqliteStore::open(&data_dir.join(SQLITE_FILE)).await?,
        )),
    }
}

/// A migration failure caused by an unreachable database is [`StoreError::Unavailable`].
pub(crate) fn migrate_error(error: sqlx::migrate::MigrateError) -> StoreError {
    match error {
        sqlx::migrate::MigrateError::Execute(e) => match StoreError::from_sqlx(e) {
            StoreError::Database(e) => StoreError::Migrate(sqlx::migrate::MigrateError::Execute(e)),
            other => other,
        },
        other => StoreError::Migrate(other),
    }
}

impl Channel {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Channel::Message => "message",
            Channel::Rest => "rest",
        }
    }

    pub(crate) fn parse(text: &str) -> StoreResult<Channel> {
        match text {
            "message" => Ok(Channel::Message),
            "rest" => Ok(Channel::Rest),
            other => Err(StoreError::Corrupt(format!("unknown channel '{other}'"))),
        }
    }
}

impl SubmissionStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SubmissionStatus::Accepted => "accepted",
            SubmissionStatus::Rejected => "rejected",
        }
    }

    pub(crate) fn parse(text: &str) -> StoreResult<SubmissionStatus> {
        match text {
            "accepted" => Ok(SubmissionStatus::Accepted),
            "rejected" => Ok(SubmissionStatus::Rejected),
            other => Err(StoreError::Corrupt(format!("unknown status '{other}'"))),
        }
    }
}

/// Microseconds since the Unix epoch back to an instant.
pub(crate) fn from_micros(us: i64) -> StoreResult<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1_000)
        .map_err(|e| StoreError::Corrupt(format!("instant {us} out of range: {e}")))
}

pub(crate) fn parse_json(text: &str, what: &str) -> StoreResult<Value> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// Check a write before any SQL runs, and compute its search index.
pub(crate) fn prepare(write: &ResourceWrite) -> StoreResult<index::SearchIndex> {
    let Some(object) = write.resource.as_object() else {
        return Err(StoreError::Invalid(format!(
            "a {} must be a JSON object",
            write.resource_type
        )));
    };
    match object.get("resourceType").and_then(Value::as_str) {
        Some(t) if t == write.resource_type => {}
        other => {
            return Err(StoreError::Invalid(format!(
                "resourceType is {other:?}, expected \"{}\"",
                write.resource_type
            )));
        }
    }
    Ok(index::extract(&write.resource_type, &write.resource))
}

/// Make `resource` the JSON as stored: `id`, `meta.versionId` and `meta.lastUpdated` set by
/// the store (other `meta` members, such as `profile`, kept). In place: reports are large, and
/// a commit never needs the unstamped JSON again.
pub(crate) fn stamp(
    resource: &mut Value,
    id: &str,
    version_id: i64,
    last_updated: i64,
) -> StoreResult<()> {
    let instant = from_micros(last_updated)?
        .format(&Rfc3339)
        .map_err(|e| StoreError::Corrupt(format!("instant not formattable: {e}")))?;
    if let Some(object) = resource.as_object_mut() {
        object.insert("id".into(), Value::String(id.to_owned()));
        let meta = object
            .entry("meta")
            .or_insert_with(|| Value::Object(Default::default()));
        if !meta.is_object() {
            *meta = Value::Object(Default::default());
        }
        if let Some(meta) = meta.as_object_mut() {
            meta.insert("versionId".into(), Value::String(version_id.to_string()));
            meta.insert("lastUpdated".into(), Value::String(instant));
        }
    }
    Ok(())
}

/// The instant a commit stamps on what it writes, at the store's microsecond precision.
pub(crate) fn now_micros() -> i64 {
    index::micros(OffsetDateTime::now_utc())
}

/// A new logical id: a UUID, which is a valid FHIR id (`[A-Za-z0-9\-\.]{1,64}`).
pub(crate) fn new_logical_id() -> String {
    Uuid::new_v4().to_string()
}

/// Decode `resource_type, id, version_id, last_updated, submission_id, resource` (both
/// backends select these as text and integers).
pub(crate) fn resource_from_row<R>(row: &R) -> StoreResult<StoredResource>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let submission_id: String = row.try_get(4)?;
    let resource: String = row.try_get(5)?;
    Ok(StoredResource {
        resource_type: row.try_get(0)?,
        id: row.try_get(1)?,
        version_id: row.try_get(2)?,
        last_updated: from_micros(row.try_get(3)?)?,
        submission_id: parse_uuid(&submission_id)?,
        resource: parse_json(&resource, "stored resource")?,
    })
}

/// Decode `id, received_at, channel, message_id, sender, sha256, status, outcome, response`.
pub(crate) fn submission_from_row<R>(row: &R) -> StoreResult<StoredSubmission>
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let id: String = row.try_get(0)?;
    let channel: String = row.try_get(2)?;
    let status: String = row.try_get(6)?;
    let outcome: String = row.try_get(7)?;
    let response: Option<String> = row.try_get(8)?;
    Ok(StoredSubmission {
        id: parse_uuid(&id)?,
        received_at: from_micros(row.try_get(1)?)?,
        channel: Channel::parse(&channel)?,
        message_id: row.try_get(3)?,
        sender: row.try_get(4)?,
        sha256: row.try_get(5)?,
        status: SubmissionStatus::parse(&status)?,
        outcome: parse_json(&outcome, "stored outcome")?,
        response: response
            .map(|r| parse_json(&r, "stored response"))
            .transpose()?,
    })
}

fn parse_uuid(text: &str) -> StoreResult<Uuid> {
    Uuid::parse_str(text).map_err(|e| StoreError::Corrupt(format!("submission id '{text}': {e}")))
}

/// Rows fetched one past the page size become the `next` cursor.
pub(crate) fn page(mut resources: Vec<StoredResource>, query: &SearchQuery) -> SearchPage {
    let count = query.count as usize;
    let next = if resources.len() > count {
        resources.truncate(count);
        resources.last().map(|last| {
            search::Cursor {
                last_updated: index::micros(last.last_updated),
                id: last.id.clone(),
            }
            .encode()
        })
    } else {
        None
    };
    SearchPage { resources, next }
}
