//! Durable storage behind one trait, [`Store`], with two backends: SQLite (embedded default,
//! WAL) and PostgreSQL (several gateway instances sharing one database). Each backend owns its
//! migrations (`migrations/sqlite`, `migrations/postgres`).
//!
//! Contract: when [`Store::commit_submission`] returns `Ok`, the submission, its outcome and
//! every resource version it wrote are durable (committed and synced). A 2xx answer is only
//! ever sent after that.

use async_trait::async_trait;
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

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
    Database(#[from] sqlx::Error),
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is not readable: {0}")]
    Corrupt(String),
    #[error("invalid database configuration: {0}")]
    Config(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The storage stage. Backends: SQLite and PostgreSQL; the same test suite runs on both.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Commit a submission, its outcome and its resource versions in one transaction.
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

    /// Liveness of the database (for `/readyz`).
    async fn ping(&self) -> StoreResult<()>;
}
