//! Subscriptions (FHIR Subscriptions R5 Backport IG for R4) in both backends: the resource as
//! served plus the columns delivery filters, counts and schedules on (migration `0003`).
//!
//! The store knows nothing of topics, filters or channels (that is `deliver::subscription`): it
//! keeps what the API parsed out of the resource (`topic`, `endpoint`) and the state the gateway
//! changes (`status`, `error`, `events_since_start`, `last_sent_at`). The JSON it returns is the
//! Subscription as served: `id`, `meta.versionId`, `meta.lastUpdated`, `status` and `error` are
//! always in step with the columns, because every write goes through [`serve_json`].
//!
//! `version_id` counts client writes (create, update); the gateway changing `status` (handshake,
//! a dead endpoint) does not make a new version, it updates `meta.lastUpdated` only.
//!
//! Deleting keeps the row, marked `deleted` with status `off`: outbox rows may refer to it, and a
//! read of a deleted Subscription can answer 410 Gone rather than 404.

use serde_json::Value;
use time::OffsetDateTime;

use super::index::micros;
use super::{StoreError, StoreResult, from_micros, parse_json, stamp};

/// `Subscription.status` (R4 `subscription-status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubscriptionStatus {
    /// Created; the handshake has not succeeded yet.
    Requested,
    /// Receiving notifications.
    Active,
    /// Delivery failed (the reason is in `error`); nothing is sent until a client updates it.
    Error,
    /// Switched off by the client (or deleted).
    Off,
}

impl SubscriptionStatus {
    /// The FHIR code.
    pub fn as_str(self) -> &'static str {
        match self {
            SubscriptionStatus::Requested => "requested",
            SubscriptionStatus::Active => "active",
            SubscriptionStatus::Error => "error",
            SubscriptionStatus::Off => "off",
        }
    }

    /// From the FHIR code; `None` for anything else.
    pub fn from_code(code: &str) -> Option<SubscriptionStatus> {
        match code {
            "requested" => Some(SubscriptionStatus::Requested),
            "active" => Some(SubscriptionStatus::Active),
            "error" => Some(SubscriptionStatus::Error),
            "off" => Some(SubscriptionStatus::Off),
            _ => None,
        }
    }

    pub(crate) fn parse(text: &str) -> StoreResult<SubscriptionStatus> {
        Self::from_code(text)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown subscription status '{text}'")))
    }
}

/// A Subscription to create or to replace (update), as the API parsed it.
#[derive(Debug, Clone)]
pub struct SubscriptionWrite {
    /// The R4 Subscription JSON. The store sets `id`, `meta.versionId`, `meta.lastUpdated`,
    /// `status` (from [`SubscriptionWrite::status`]) and removes `error`.
    pub resource: Value,
    /// SubscriptionTopic canonical URL (`Subscription.criteria`).
    pub topic: String,
    /// Normally [`SubscriptionStatus::Requested`] (the handshake makes it active) or
    /// [`SubscriptionStatus::Off`].
    pub status: SubscriptionStatus,
    /// `Subscription.channel.endpoint`.
    pub endpoint: String,
}

/// A stored Subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSubscription {
    pub id: String,
    pub version_id: i64,
    /// The R4 Subscription as served (see the module docs).
    pub resource: Value,
    pub topic: String,
    pub status: SubscriptionStatus,
    pub endpoint: String,
    /// Why the status is `error`.
    pub error: Option<String>,
    /// The last event number assigned (`eventsSinceSubscriptionStart`); 0 before any event.
    pub events_since_start: i64,
    pub created_at: OffsetDateTime,
    /// Last change of any kind (client write or status change): `meta.lastUpdated`.
    pub updated_at: OffsetDateTime,
    /// When a notification last reached the endpoint.
    pub last_sent_at: Option<OffsetDateTime>,
    pub deleted: bool,
}

/// Make `resource` the Subscription as served: stamped, with `status` and `error` as given.
pub(crate) fn serve_json(
    resource: &mut Value,
    id: &str,
    version_id: i64,
    updated_at: i64,
    status: SubscriptionStatus,
    error: Option<&str>,
) -> StoreResult<()> {
    let Some(object) = resource.as_object_mut() else {
        return Err(StoreError::Invalid(
            "a Subscription must be a JSON object".into(),
        ));
    };
    match object.get("resourceType").and_then(Value::as_str) {
        Some("Subscription") => {}
        other => {
            return Err(StoreError::Invalid(format!(
                "resourceType is {other:?}, expected \"Subscription\""
            )));
        }
    }
    object.insert("status".into(), Value::String(status.as_str().to_owned()));
    match error {
        Some(e) => object.insert("error".into(), Value::String(e.to_owned())),
        None => object.remove("error"),
    };
    stamp(resource, id, version_id, updated_at)
}

/// The columns every read selects, in this order (both backends select JSON as text).
pub(crate) const COLUMNS: &str = "id, version_id, resource, topic, status, endpoint, error, \
     events_since_start, created_at, updated_at, last_sent_at, deleted";

// One call site per backend, each passing a row's columns in order.
#[allow(clippy::too_many_arguments)]
fn subscription_from_parts(
    id: String,
    version_id: i64,
    resource: String,
    topic: String,
    status: String,
    endpoint: String,
    error: Option<String>,
    events_since_start: i64,
    times: (i64, i64, Option<i64>),
    deleted: bool,
) -> StoreResult<StoredSubscription> {
    Ok(StoredSubscription {
        id,
        version_id,
        resource: parse_json(&resource, "stored subscription")?,
        topic,
        status: SubscriptionStatus::parse(&status)?,
        endpoint,
        error,
        events_since_start,
        created_at: from_micros(times.0)?,
        updated_at: from_micros(times.1)?,
        last_sent_at: times.2.map(from_micros).transpose()?,
        deleted,
    })
}

pub(crate) mod sqlite {
    use super::*;
    use sqlx::sqlite::SqliteRow;
    use sqlx::{Row, SqlitePool};

    fn from_row(r: &SqliteRow) -> StoreResult<StoredSubscription> {
        let deleted: i64 = r.try_get(11)?;
        subscription_from_parts(
            r.try_get(0)?,
            r.try_get(1)?,
            r.try_get(2)?,
            r.try_get(3)?,
            r.try_get(4)?,
            r.try_get(5)?,
            r.try_get(6)?,
            r.try_get(7)?,
            (r.try_get(8)?, r.try_get(9)?, r.try_get(10)?),
            deleted != 0,
        )
    }

    pub async fn create(
        pool: &SqlitePool,
        mut write: SubscriptionWrite,
    ) -> StoreResult<StoredSubscription> {
        let id = super::super::new_logical_id();
        let now = super::super::now_micros();
        serve_json(&mut write.resource, &id, 1, now, write.status, None)?;
        let sql = format!(
            "INSERT INTO subscription (id, version_id, resource, topic, status, endpoint, \
             created_at, updated_at) VALUES (?, 1, ?, ?, ?, ?, ?, ?) RETURNING {COLUMNS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&id)
            .bind(write.resource.to_string())
            .bind(&write.topic)
            .bind(write.status.as_str())
            .bind(&write.endpoint)
            .bind(now)
            .bind(now)
            .fetch_one(pool)
            .await?;
        from_row(&row)
    }

    pub async fn update(
        pool: &SqlitePool,
        id: &str,
        mut write: SubscriptionWrite,
    ) -> StoreResult<Option<StoredSubscription>> {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        let current: Option<(i64, i64)> = sqlx::query_as(
            "SELECT version_id, updated_at FROM subscription WHERE id = ? AND deleted = 0",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((version_id, updated_at)) = current else {
            tx.rollback().await?;
            return Ok(None);
        };
        let version_id = version_id + 1;
        // lastUpdated never goes backwards within a resource, even if the clock does.
        let now = super::super::now_micros().max(updated_at + 1);
        serve_json(&mut write.resource, id, version_id, now, write.status, None)?;
        let sql = format!(
            "UPDATE subscription SET version_id = ?, resource = ?, topic = ?, status = ?, \
             endpoint = ?, error = NULL, updated_at = ? WHERE id = ? RETURNING {COLUMNS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(version_id)
            .bind(write.resource.to_string())
            .bind(&write.topic)
            .bind(write.status.as_str())
            .bind(&write.endpoint)
            .bind(now)
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let stored = from_row(&row)?;
        tx.commit().await?;
        Ok(Some(stored))
    }

    /// Set status and error, patching the served JSON; only if the row is live and (when
    /// `version` is given) still at that version.
    pub async fn set_status(
        pool: &SqlitePool,
        id: &str,
        version: Option<i64>,
        status: SubscriptionStatus,
        error: Option<&str>,
    ) -> StoreResult<Option<StoredSubscription>> {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        let current: Option<(i64, String, i64)> = sqlx::query_as(
            "SELECT version_id, resource, updated_at FROM subscription WHERE id = ? AND deleted = 0",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((version_id, resource, updated_at)) =
            current.filter(|(v, _, _)| version.is_none_or(|expected| expected == *v))
        else {
            tx.rollback().await?;
            return Ok(None);
        };
        let mut resource = parse_json(&resource, "stored subscription")?;
        let now = super::super::now_micros().max(updated_at + 1);
        serve_json(&mut resource, id, version_id, now, status, error)?;
        let sql = format!(
            "UPDATE subscription SET resource = ?, status = ?, error = ?, updated_at = ? \
             WHERE id = ? RETURNING {COLUMNS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(resource.to_string())
            .bind(status.as_str())
            .bind(error)
            .bind(now)
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let stored = from_row(&row)?;
        tx.commit().await?;
        Ok(Some(stored))
    }

    pub async fn delete(pool: &SqlitePool, id: &str) -> StoreResult<bool> {
        let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
        let current: Option<(i64, String, i64)> = sqlx::query_as(
            "SELECT version_id, resource, updated_at FROM subscription WHERE id = ? AND deleted = 0",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((version_id, resource, updated_at)) = current else {
            tx.rollback().await?;
            return Ok(false);
        };
        let mut resource = parse_json(&resource, "stored subscription")?;
        let now = super::super::now_micros().max(updated_at + 1);
        serve_json(
            &mut resource,
            id,
            version_id,
            now,
            SubscriptionStatus::Off,
            None,
        )?;
        sqlx::query(
            "UPDATE subscription SET deleted = 1, status = 'off', error = NULL, resource = ?, \
             updated_at = ? WHERE id = ?",
        )
        .bind(resource.to_string())
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn get(pool: &SqlitePool, id: &str) -> StoreResult<Option<StoredSubscription>> {
        let sql = format!("SELECT {COLUMNS} FROM subscription WHERE id = ?");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(pool)
            .await?
            .map(|r| from_row(&r))
            .transpose()
    }

    pub async fn list(
        pool: &SqlitePool,
        status: Option<SubscriptionStatus>,
    ) -> StoreResult<Vec<StoredSubscription>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM subscription WHERE deleted = 0 \
             AND (? IS NULL OR status = ?) ORDER BY created_at, id"
        );
        let status = status.map(SubscriptionStatus::as_str);
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(status)
            .bind(status)
            .fetch_all(pool)
            .await?
            .iter()
            .map(from_row)
            .collect()
    }

    pub async fn touch_sent(pool: &SqlitePool, id: &str, at: OffsetDateTime) -> StoreResult<()> {
        // MAX: a late report of an earlier send never moves the clock back.
        sqlx::query(
            "UPDATE subscription SET last_sent_at = MAX(COALESCE(last_sent_at, 0), ?) WHERE id = ?",
        )
        .bind(micros(at))
        .bind(id)
        .execute(pool)
        .await?;
        Ok(())
    }

    pub async fn claim_heartbeat(
        pool: &SqlitePool,
        id: &str,
        seen: Option<OffsetDateTime>,
        at: OffsetDateTime,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE subscription SET last_sent_at = ? WHERE id = ? AND deleted = 0 \
             AND status = 'active' AND last_sent_at IS ?",
        )
        .bind(micros(at))
        .bind(id)
        .bind(seen.map(micros))
        .execute(pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

pub(crate) mod postgres {
    use super::*;
    use sqlx::postgres::PgRow;
    use sqlx::{PgPool, Row};

    /// [`COLUMNS`] with the JSON read as text.
    const PG_COLUMNS: &str = "id, version_id, resource::text, topic, status, endpoint, error, \
         events_since_start, created_at, updated_at, last_sent_at, deleted";

    fn from_row(r: &PgRow) -> StoreResult<StoredSubscription> {
        subscription_from_parts(
            r.try_get(0)?,
            r.try_get(1)?,
            r.try_get(2)?,
            r.try_get(3)?,
            r.try_get(4)?,
            r.try_get(5)?,
            r.try_get(6)?,
            r.try_get(7)?,
            (r.try_get(8)?, r.try_get(9)?, r.try_get(10)?),
            r.try_get(11)?,
        )
    }

    pub async fn create(
        pool: &PgPool,
        mut write: SubscriptionWrite,
    ) -> StoreResult<StoredSubscription> {
        let id = super::super::new_logical_id();
        let now = super::super::now_micros();
        serve_json(&mut write.resource, &id, 1, now, write.status, None)?;
        let sql = format!(
            "INSERT INTO subscription (id, version_id, resource, topic, status, endpoint, \
             created_at, updated_at) VALUES ($1, 1, $2::jsonb, $3, $4, $5, $6, $6) \
             RETURNING {PG_COLUMNS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&id)
            .bind(write.resource.to_string())
            .bind(&write.topic)
            .bind(write.status.as_str())
            .bind(&write.endpoint)
            .bind(now)
            .fetch_one(pool)
            .await?;
        from_row(&row)
    }

    pub async fn update(
        pool: &PgPool,
        id: &str,
        mut write: SubscriptionWrite,
    ) -> StoreResult<Option<StoredSubscription>> {
        let mut tx = pool.begin().await?;
        // The row lock serialises this update against status changes and other updates.
        let current: Option<(i64, i64)> = sqlx::query_as(
            "SELECT version_id, updated_at FROM subscription WHERE id = $1 AND NOT deleted \
             FOR UPDATE",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((version_id, updated_at)) = current else {
            tx.rollback().await?;
            return Ok(None);
        };
        let version_id = version_id + 1;
        let now = super::super::now_micros().max(updated_at + 1);
        serve_json(&mut write.resource, id, version_id, now, write.status, None)?;
        let sql = format!(
            "UPDATE subscription SET version_id = $1, resource = $2::jsonb, topic = $3, \
             status = $4, endpoint = $5, error = NULL, updated_at = $6 WHERE id = $7 \
             RETURNING {PG_COLUMNS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(version_id)
            .bind(write.resource.to_string())
            .bind(&write.topic)
            .bind(write.status.as_str())
            .bind(&write.endpoint)
            .bind(now)
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let stored = from_row(&row)?;
        tx.commit().await?;
        Ok(Some(stored))
    }

    pub async fn set_status(
        pool: &PgPool,
        id: &str,
        version: Option<i64>,
        status: SubscriptionStatus,
        error: Option<&str>,
    ) -> StoreResult<Option<StoredSubscription>> {
        let mut tx = pool.begin().await?;
        let current: Option<(i64, String, i64)> = sqlx::query_as(
            "SELECT version_id, resource::text, updated_at FROM subscription \
             WHERE id = $1 AND NOT deleted FOR UPDATE",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((version_id, resource, updated_at)) =
            current.filter(|(v, _, _)| version.is_none_or(|expected| expected == *v))
        else {
            tx.rollback().await?;
            return Ok(None);
        };
        let mut resource = parse_json(&resource, "stored subscription")?;
        let now = super::super::now_micros().max(updated_at + 1);
        serve_json(&mut resource, id, version_id, now, status, error)?;
        let sql = format!(
            "UPDATE subscription SET resource = $1::jsonb, status = $2, error = $3, \
             updated_at = $4 WHERE id = $5 RETURNING {PG_COLUMNS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(resource.to_string())
            .bind(status.as_str())
            .bind(error)
            .bind(now)
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let stored = from_row(&row)?;
        tx.commit().await?;
        Ok(Some(stored))
    }

    pub async fn delete(pool: &PgPool, id: &str) -> StoreResult<bool> {
        let mut tx = pool.begin().await?;
        let current: Option<(i64, String, i64)> = sqlx::query_as(
            "SELECT version_id, resource::text, updated_at FROM subscription \
             WHERE id = $1 AND NOT deleted FOR UPDATE",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((version_id, resource, updated_at)) = current else {
            tx.rollback().await?;
            return Ok(false);
        };
        let mut resource = parse_json(&resource, "stored subscription")?;
        let now = super::super::now_micros().max(updated_at + 1);
        serve_json(
            &mut resource,
            id,
            version_id,
            now,
            SubscriptionStatus::Off,
            None,
        )?;
        sqlx::query(
            "UPDATE subscription SET deleted = TRUE, status = 'off', error = NULL, \
             resource = $1::jsonb, updated_at = $2 WHERE id = $3",
        )
        .bind(resource.to_string())
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn get(pool: &PgPool, id: &str) -> StoreResult<Option<StoredSubscription>> {
        let sql = format!("SELECT {PG_COLUMNS} FROM subscription WHERE id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(pool)
            .await?
            .map(|r| from_row(&r))
            .transpose()
    }

    pub async fn list(
        pool: &PgPool,
        status: Option<SubscriptionStatus>,
    ) -> StoreResult<Vec<StoredSubscription>> {
        let sql = format!(
            "SELECT {PG_COLUMNS} FROM subscription WHERE NOT deleted \
             AND ($1::text IS NULL OR status = $1) ORDER BY created_at, id"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(status.map(SubscriptionStatus::as_str))
            .fetch_all(pool)
            .await?
            .iter()
            .map(from_row)
            .collect()
    }

    pub async fn touch_sent(pool: &PgPool, id: &str, at: OffsetDateTime) -> StoreResult<()> {
        // GREATEST: a late report of an earlier send never moves the clock back.
        sqlx::query(
            "UPDATE subscription SET last_sent_at = GREATEST(COALESCE(last_sent_at, 0), $1) \
             WHERE id = $2",
        )
        .bind(micros(at))
        .bind(id)
        .execute(pool)
        .await?;
        Ok(())
    }

    pub async fn claim_heartbeat(
        pool: &PgPool,
        id: &str,
        seen: Option<OffsetDateTime>,
        at: OffsetDateTime,
    ) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE subscription SET last_sent_at = $1 WHERE id = $2 AND NOT deleted \
             AND status = 'active' AND last_sent_at IS NOT DISTINCT FROM $3",
        )
        .bind(micros(at))
        .bind(id)
        .bind(seen.map(micros))
        .execute(pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
