//! The delivery outbox in both backends (migration `0004_outbox`).
//!
//! Owns three tables: `outbox_event` (one row per accepted submission, written by
//! [`insert_event`](sqlite::insert_event) inside the commit that accepts it), `static_destination`
//! (event counter and status of each configured destination) and `delivery` (one row per event
//! per destination, numbered per destination). What to send where, and how, is decided by
//! `deliver::outbox`; this module only keeps the state durable and hands out claims:
//!
//! - [`Outbox::dispatch`] turns undispatched events, in `seq` order, into deliveries, giving each
//!   the destination's next event number in the same transaction. One dispatcher at a time:
//!   SQLite has one writer; PostgreSQL takes a transaction-scoped advisory lock (an instance
//!   that does not get it skips the round).
//! - [`Outbox::claim`] leases the *head* (lowest pending number) of each eligible destination,
//!   so a destination never has two deliveries in flight and N+1 never leaves before N is
//!   delivered or dead-lettered. PostgreSQL claims with `FOR UPDATE SKIP LOCKED`; the lease
//!   (`claimed_until`) then keeps other instances off until it expires, so a crashed instance's
//!   claims are picked up again after the lease.
//! - [`Outbox::finish`] records the outcome of an attempt.
//!
//! The SQL is written once (a macro instantiates it per backend): placeholders are written `?`
//! (and `?U` for a UUID) and turned into PostgreSQL's `$n` (`$n::uuid`) by [`Dialect::sql`].

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{StoreError, StoreResult, from_micros};

/// Topic of an event (the Subscriptions backport topic it belongs to).
pub const TOPIC_SUBMISSION: &str = "submission";
pub const TOPIC_REGIONAL_BUNDLE: &str = "regional-bundle";

/// What an accepted submission puts in the outbox (facts the dispatcher routes on).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxEvent {
    pub topic: String,
    /// ODS code of the submitting trust.
    pub reporter: Option<String>,
    /// The trust's ICB and region, from the organisation directory (None: not in it).
    pub icb: Option<String>,
    pub region: Option<String>,
    /// `pqom-indicator` codes the submission mapped to.
    pub indicators: Vec<String>,
}

/// A stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    pub seq: i64,
    pub id: Uuid,
    pub submission_id: Uuid,
    /// When the submission was accepted (committed).
    pub created_at: OffsetDateTime,
    pub event: OutboxEvent,
}

/// Where the dispatcher sends one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fanout {
    /// Destination key ([`static_key`] or [`subscription_key`]).
    pub destination: String,
    /// Held for the pull feed instead of pushed.
    pub feed: bool,
}

/// Destination key of a configured destination.
pub fn static_key(name: &str) -> String {
    format!("static:{name}")
}

/// Destination key of a Subscription.
pub fn subscription_key(id: &str) -> String {
    format!("subscription:{id}")
}

/// A delivery claimed for sending.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    pub destination: String,
    pub number: i64,
    pub event_seq: i64,
    pub bundle_id: Uuid,
    /// Attempts made before this one.
    pub attempts: i64,
    /// When the submission was accepted (delivery latency is measured from here).
    pub accepted_at: OffsetDateTime,
    /// When the delivery was queued, or re-queued by a replay (the retry horizon counts from
    /// here).
    pub queued_at: OffsetDateTime,
}

/// State of a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryState {
    Pending,
    Delivered,
    /// Given up after the retry horizon, or the receiver is gone; `last_error` says why.
    Dead,
    /// Held for a pull destination's feed.
    Feed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Pending => "pending",
            DeliveryState::Delivered => "delivered",
            DeliveryState::Dead => "dead",
            DeliveryState::Feed => "feed",
        }
    }

    fn parse(s: &str) -> StoreResult<DeliveryState> {
        Ok(match s {
            "pending" => DeliveryState::Pending,
            "delivered" => DeliveryState::Delivered,
            "dead" => DeliveryState::Dead,
            "feed" => DeliveryState::Feed,
            other => return Err(StoreError::Corrupt(format!("delivery state '{other}'"))),
        })
    }
}

/// A delivery as stored (for feeds, `$events`, dead-letter lists).
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRecord {
    pub destination: String,
    pub number: i64,
    pub event_seq: i64,
    pub event_id: Uuid,
    pub submission_id: Uuid,
    pub bundle_id: Uuid,
    pub state: DeliveryState,
    pub attempts: i64,
    pub next_attempt_at: OffsetDateTime,
    pub last_status: Option<i64>,
    pub last_error: Option<String>,
    pub accepted_at: OffsetDateTime,
    pub delivered_at: Option<OffsetDateTime>,
}

/// The outcome of one attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Finish {
    /// 2xx.
    Delivered { status: i64, at: i64 },
    /// Try again at `at` (microseconds).
    Retry {
        at: i64,
        status: Option<i64>,
        error: String,
    },
    /// Give up.
    Dead { status: Option<i64>, reason: String },
}

/// A stored resource version as its JSON text (forwarding must not reshape decimals).
#[derive(Debug, Clone, PartialEq)]
pub struct RawResource {
    pub resource_type: String,
    pub id: String,
    pub version_id: i64,
    pub last_updated: OffsetDateTime,
    pub json: String,
}

/// The outbox operations (both backends; see the module docs).
#[async_trait]
pub trait Outbox: Send + Sync {
    /// Make sure every configured destination has its row (new ones start at event 0).
    async fn sync_static_destinations(&self, names: &[String]) -> StoreResult<()>;

    /// `(name, status, error)` of every configured destination.
    async fn static_destinations(&self) -> StoreResult<Vec<(String, String, Option<String>)>>;

    async fn set_static_destination_status(
        &self,
        name: &str,
        status: &str,
        error: Option<&str>,
    ) -> StoreResult<()>;

    /// Fan out up to `limit` undispatched events, in `seq` order, to the destinations `route`
    /// names. Returns how many events were dispatched (0 also when another instance holds the
    /// dispatcher lock).
    async fn dispatch(
        &self,
        limit: i64,
        now: i64,
        route: &(dyn for<'e> Fn(&'e EventRecord) -> Vec<Fanout> + Send + Sync),
    ) -> StoreResult<usize>;

    /// Lease the head delivery of up to `limit` destinations among `eligible` that is due.
    async fn claim(
        &self,
        eligible: &[String],
        limit: i64,
        now: i64,
        lease_until: i64,
        instance: &str,
    ) -> StoreResult<Vec<Claimed>>;

    async fn event(&self, seq: i64) -> StoreResult<Option<EventRecord>>;

    /// The resource versions a submission wrote.
    async fn submission_resources(&self, submission_id: Uuid) -> StoreResult<Vec<RawResource>>;

    async fn payload(&self, destination: &str, number: i64) -> StoreResult<Option<Vec<u8>>>;

    /// Keep the built bundle unless one is there already; returns the one kept (so concurrent
    /// builders agree on the bytes).
    async fn set_payload(
        &self,
        destination: &str,
        number: i64,
        payload: &[u8],
    ) -> StoreResult<Vec<u8>>;

    /// Record an attempt's outcome. Retry and Dead apply only while `instance` holds the claim
    /// (an instance whose lease expired must not undo another's); Delivered always applies to a
    /// pending delivery. Returns whether a row changed.
    async fn finish(
        &self,
        destination: &str,
        number: i64,
        instance: &str,
        finish: &Finish,
    ) -> StoreResult<bool>;

    /// Drop the leases of `instance` (graceful shutdown), or of everyone (`None`: SQLite at
    /// start, where this process is the only sender).
    async fn release_claims(&self, instance: Option<&str>) -> StoreResult<u64>;

    /// Pending deliveries, and undispatched events.
    async fn queue_depth(&self) -> StoreResult<(i64, i64)>;

    /// Deliveries of one destination with `after < number <= until`, in number order.
    async fn deliveries(
        &self,
        destination: &str,
        after: i64,
        until: Option<i64>,
        limit: i64,
    ) -> StoreResult<Vec<DeliveryRecord>>;

    /// Dead letters, of one destination or all, in (destination, number) order.
    async fn dead_letters(
        &self,
        destination: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<DeliveryRecord>>;

    /// Re-queue delivered or dead deliveries `from..=to` of a destination (same bundle id and
    /// bytes). Returns how many.
    async fn requeue(&self, destination: &str, from: i64, to: i64, now: i64) -> StoreResult<u64>;
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// `?` -> `$n`, `?U` -> `$n::uuid` for PostgreSQL; `?U` -> `?` for SQLite.
    pub(crate) fn sql(self, text: &str) -> String {
        match self {
            Dialect::Sqlite => text.replace("?U", "?"),
            Dialect::Postgres => {
                let mut out = String::with_capacity(text.len() + 16);
                let mut n = 0;
                let mut chars = text.chars().peekable();
                while let Some(c) = chars.next() {
                    if c == '?' {
                        n += 1;
                        out.push_str(&format!("${n}"));
                        if chars.peek() == Some(&'U') {
                            chars.next();
                            out.push_str("::uuid");
                        }
                    } else {
                        out.push(c);
                    }
                }
                out
            }
        }
    }
}

fn uuid(text: &str, what: &str) -> StoreResult<Uuid> {
    Uuid::parse_str(text).map_err(|e| StoreError::Corrupt(format!("{what} '{text}': {e}")))
}

fn indicators_json(codes: &[String]) -> String {
    serde_json::to_string(codes).unwrap_or_else(|_| "[]".into())
}

fn parse_indicators(text: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("event indicators: {e}")))
}

const EVENT_COLUMNS: &str = "seq, id, topic, CAST(submission_id AS TEXT), created_at, reporter, \
     icb, region, indicators";
const DELIVERY_COLUMNS: &str = "d.destination, d.number, d.event_seq, e.id, \
     CAST(e.submission_id AS TEXT), d.bundle_id, d.state, d.attempts, d.next_attempt_at, \
     d.last_status, d.last_error, e.created_at, d.delivered_at";

/// The backend-independent body: `$db` the sqlx database, `$dialect` the placeholder style,
/// `begin_write` and `lock_dispatch` defined by the including module.
macro_rules! outbox_backend {
    ($db:ty, $pool:ty, $dialect:expr, $claim_lock:expr) => {
        use sqlx::{Row, Transaction};

        use super::*;

        fn q(text: &str) -> sqlx::AssertSqlSafe<String> {
            sqlx::AssertSqlSafe($dialect.sql(text))
        }

        /// Write the outbox event of an accepted submission inside its commit.
        pub(crate) async fn insert_event(
            tx: &mut Transaction<'static, $db>,
            submission_id: Uuid,
            event: &OutboxEvent,
            now: i64,
        ) -> StoreResult<()> {
            sqlx::query(q(
                "INSERT INTO outbox_event (id, topic, submission_id, created_at, reporter, icb, \
                 region, indicators) VALUES (?, ?, ?U, ?, ?, ?, ?, ?)",
            ))
            .bind(Uuid::new_v4().to_string())
            .bind(event.topic.as_str())
            .bind(submission_id.to_string())
            .bind(now)
            .bind(event.reporter.as_deref())
            .bind(event.icb.as_deref())
            .bind(event.region.as_deref())
            .bind(indicators_json(&event.indicators))
            .execute(&mut **tx)
            .await?;
            Ok(())
        }

        fn event_from_row(row: &<$db as sqlx::Database>::Row) -> StoreResult<EventRecord> {
            let id: String = row.try_get(1)?;
            let submission_id: String = row.try_get(3)?;
            let indicators: String = row.try_get(8)?;
            Ok(EventRecord {
                seq: row.try_get(0)?,
                id: uuid(&id, "event id")?,
                submission_id: uuid(&submission_id, "submission id")?,
                created_at: from_micros(row.try_get(4)?)?,
                event: OutboxEvent {
                    topic: row.try_get(2)?,
                    reporter: row.try_get(5)?,
                    icb: row.try_get(6)?,
                    region: row.try_get(7)?,
                    indicators: parse_indicators(&indicators)?,
                },
            })
        }

        fn delivery_from_row(row: &<$db as sqlx::Database>::Row) -> StoreResult<DeliveryRecord> {
            let event_id: String = row.try_get(3)?;
            let submission_id: String = row.try_get(4)?;
            let bundle_id: String = row.try_get(5)?;
            let state: String = row.try_get(6)?;
            let delivered_at: Option<i64> = row.try_get(12)?;
            Ok(DeliveryRecord {
                destination: row.try_get(0)?,
                number: row.try_get(1)?,
                event_seq: row.try_get(2)?,
                event_id: uuid(&event_id, "event id")?,
                submission_id: uuid(&submission_id, "submission id")?,
                bundle_id: uuid(&bundle_id, "bundle id")?,
                state: DeliveryState::parse(&state)?,
                attempts: row.try_get(7)?,
                next_attempt_at: from_micros(row.try_get(8)?)?,
                last_status: row.try_get(9)?,
                last_error: row.try_get(10)?,
                accepted_at: from_micros(row.try_get(11)?)?,
                delivered_at: delivered_at.map(from_micros).transpose()?,
            })
        }

        /// The outbox of one database (writes through `writer`, reads through `reader`).
        #[derive(Debug, Clone)]
        pub struct SqlOutbox {
            pub(crate) writer: $pool,
            pub(crate) reader: $pool,
        }

        #[async_trait]
        impl Outbox for SqlOutbox {
            async fn sync_static_destinations(&self, names: &[String]) -> StoreResult<()> {
                let mut tx = begin_write(&self.writer).await?;
                for name in names {
                    sqlx::query(q(
                        "INSERT INTO static_destination (name) VALUES (?) \
                         ON CONFLICT (name) DO NOTHING",
                    ))
                    .bind(name)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn static_destinations(
                &self,
            ) -> StoreResult<Vec<(String, String, Option<String>)>> {
                let rows = sqlx::query(q(
                    "SELECT name, status, error FROM static_destination ORDER BY name",
                ))
                .fetch_all(&self.reader)
                .await?;
                rows.iter()
                    .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
                    .collect()
            }

            async fn set_static_destination_status(
                &self,
                name: &str,
                status: &str,
                error: Option<&str>,
            ) -> StoreResult<()> {
                sqlx::query(q(
                    "UPDATE static_destination SET status = ?, error = ? WHERE name = ?",
                ))
                .bind(status)
                .bind(error)
                .bind(name)
                .execute(&self.writer)
                .await?;
                Ok(())
            }

            async fn dispatch(
                &self,
                limit: i64,
                now: i64,
                route: &(dyn for<'e> Fn(&'e EventRecord) -> Vec<Fanout> + Send + Sync),
            ) -> StoreResult<usize> {
                let mut tx = begin_write(&self.writer).await?;
                if !lock_dispatch(&mut tx).await? {
                    tx.rollback().await?;
                    return Ok(0);
                }
                let rows = sqlx::query(q(&format!(
                    "SELECT {EVENT_COLUMNS} FROM outbox_event WHERE dispatched_at IS NULL \
                     ORDER BY seq LIMIT ?"
                )))
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
                let events = rows.iter().map(event_from_row).collect::<StoreResult<Vec<_>>>()?;
                for event in &events {
                    for fanout in route(event) {
                        let number: Option<i64> =
                            if let Some(name) = fanout.destination.strip_prefix("static:") {
                                sqlx::query_scalar(q(
                                    "UPDATE static_destination \
                                     SET events_since_start = events_since_start + 1 \
                                     WHERE name = ? RETURNING events_since_start",
                                ))
                                .bind(name)
                                .fetch_optional(&mut *tx)
                                .await?
                            } else if let Some(id) = fanout.destination.strip_prefix("subscription:")
                            {
                                sqlx::query_scalar(q(
                                    "UPDATE subscription \
                                     SET events_since_start = events_since_start + 1 \
                                     WHERE id = ? RETURNING events_since_start",
                                ))
                                .bind(id)
                                .fetch_optional(&mut *tx)
                                .await?
                            } else {
                                None
                            };
                        // A destination removed since the route was computed gets nothing.
                        let Some(number) = number else { continue };
                        let state = if fanout.feed {
                            DeliveryState::Feed
                        } else {
                            DeliveryState::Pending
                        };
                        sqlx::query(q(
                            "INSERT INTO delivery (destination, number, event_seq, bundle_id, \
                             state, next_attempt_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                        ))
                        .bind(&fanout.destination)
                        .bind(number)
                        .bind(event.seq)
                        .bind(Uuid::new_v4().to_string())
                        .bind(state.as_str())
                        .bind(now)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    }
                    sqlx::query(q("UPDATE outbox_event SET dispatched_at = ? WHERE seq = ?"))
                        .bind(now)
                        .bind(event.seq)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(events.len())
            }

            async fn claim(
                &self,
                eligible: &[String],
                limit: i64,
                now: i64,
                lease_until: i64,
                instance: &str,
            ) -> StoreResult<Vec<Claimed>> {
                if eligible.is_empty() || limit <= 0 {
                    return Ok(Vec::new());
                }
                let marks = vec!["?"; eligible.len()].join(", ");
                let sql = format!(
                    "WITH heads AS (SELECT destination, MIN(number) AS number FROM delivery \
                       WHERE state = 'pending' AND destination IN ({marks}) GROUP BY destination) \
                     SELECT d.destination, d.number, d.event_seq, d.bundle_id, d.attempts, \
                       e.created_at, d.created_at \
                     FROM delivery d \
                     JOIN heads h ON h.destination = d.destination AND h.number = d.number \
                     JOIN outbox_event e ON e.seq = d.event_seq \
                     WHERE d.state = 'pending' AND d.next_attempt_at <= ? \
                       AND (d.claimed_until IS NULL OR d.claimed_until < ?) \
                     ORDER BY d.next_attempt_at, d.destination LIMIT ? {}",
                    $claim_lock
                );
                let mut tx = begin_write(&self.writer).await?;
                let mut query = sqlx::query(q(&sql));
                for e in eligible {
                    query = query.bind(e);
                }
                let rows = query
                    .bind(now)
                    .bind(now)
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?;
                let mut claimed = Vec::with_capacity(rows.len());
                for row in &rows {
                    let bundle_id: String = row.try_get(3)?;
                    claimed.push(Claimed {
                        destination: row.try_get(0)?,
                        number: row.try_get(1)?,
                        event_seq: row.try_get(2)?,
                        bundle_id: uuid(&bundle_id, "bundle id")?,
                        attempts: row.try_get(4)?,
                        accepted_at: from_micros(row.try_get(5)?)?,
                        queued_at: from_micros(row.try_get(6)?)?,
                    });
                }
                for c in &claimed {
                    sqlx::query(q(
                        "UPDATE delivery SET claimed_until = ?, claimed_by = ? \
                         WHERE destination = ? AND number = ?",
                    ))
                    .bind(lease_until)
                    .bind(instance)
                    .bind(&c.destination)
                    .bind(c.number)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(claimed)
            }

            async fn event(&self, seq: i64) -> StoreResult<Option<EventRecord>> {
                sqlx::query(q(&format!(
                    "SELECT {EVENT_COLUMNS} FROM outbox_event WHERE seq = ?"
                )))
                .bind(seq)
                .fetch_optional(&self.reader)
                .await?
                .as_ref()
                .map(event_from_row)
                .transpose()
            }

            async fn submission_resources(
                &self,
                submission_id: Uuid,
            ) -> StoreResult<Vec<RawResource>> {
                let rows = sqlx::query(q(
                    "SELECT resource_type, id, version_id, last_updated, CAST(resource AS TEXT) \
                     FROM resource_version WHERE submission_id = ?U ORDER BY resource_type, id",
                ))
                .bind(submission_id.to_string())
                .fetch_all(&self.reader)
                .await?;
                rows.iter()
                    .map(|r| {
                        Ok(RawResource {
                            resource_type: r.try_get(0)?,
                            id: r.try_get(1)?,
                            version_id: r.try_get(2)?,
                            last_updated: from_micros(r.try_get(3)?)?,
                            json: r.try_get(4)?,
                        })
                    })
                    .collect()
            }

            async fn payload(&self, destination: &str, number: i64) -> StoreResult<Option<Vec<u8>>> {
                Ok(sqlx::query_scalar(q(
                    "SELECT payload FROM delivery WHERE destination = ? AND number = ?",
                ))
                .bind(destination)
                .bind(number)
                .fetch_optional(&self.writer)
                .await?
                .flatten())
            }

            async fn set_payload(
                &self,
                destination: &str,
                number: i64,
                payload: &[u8],
            ) -> StoreResult<Vec<u8>> {
                let mut tx = begin_write(&self.writer).await?;
                sqlx::query(q(
                    "UPDATE delivery SET payload = ? \
                     WHERE destination = ? AND number = ? AND payload IS NULL",
                ))
                .bind(payload)
                .bind(destination)
                .bind(number)
                .execute(&mut *tx)
                .await?;
                let kept: Option<Vec<u8>> = sqlx::query_scalar(q(
                    "SELECT payload FROM delivery WHERE destination = ? AND number = ?",
                ))
                .bind(destination)
                .bind(number)
                .fetch_optional(&mut *tx)
                .await?
                .flatten();
                tx.commit().await?;
                kept.ok_or_else(|| {
                    StoreError::Corrupt(format!("delivery {destination} #{number} vanished"))
                })
            }

            async fn finish(
                &self,
                destination: &str,
                number: i64,
                instance: &str,
                finish: &Finish,
            ) -> StoreResult<bool> {
                let done = match finish {
                    Finish::Delivered { status, at } => {
                        sqlx::query(q(
                            "UPDATE delivery SET state = 'delivered', delivered_at = ?, \
                             last_status = ?, last_error = NULL, attempts = attempts + 1, \
                             claimed_until = NULL, claimed_by = NULL \
                             WHERE destination = ? AND number = ? AND state = 'pending'",
                        ))
                        .bind(*at)
                        .bind(*status)
                        .bind(destination)
                        .bind(number)
                        .execute(&self.writer)
                        .await?
                    }
                    Finish::Retry { at, status, error } => {
                        sqlx::query(q(
                            "UPDATE delivery SET next_attempt_at = ?, last_status = ?, \
                             last_error = ?, attempts = attempts + 1, claimed_until = NULL, \
                             claimed_by = NULL \
                             WHERE destination = ? AND number = ? AND state = 'pending' \
                             AND claimed_by = ?",
                        ))
                        .bind(*at)
                        .bind(*status)
                        .bind(error)
                        .bind(destination)
                        .bind(number)
                        .bind(instance)
                        .execute(&self.writer)
                        .await?
                    }
                    Finish::Dead { status, reason } => {
                        sqlx::query(q(
                            "UPDATE delivery SET state = 'dead', last_status = ?, \
                             last_error = ?, attempts = attempts + 1, claimed_until = NULL, \
                             claimed_by = NULL \
                             WHERE destination = ? AND number = ? AND state = 'pending' \
                             AND claimed_by = ?",
                        ))
                        .bind(*status)
                        .bind(reason)
                        .bind(destination)
                        .bind(number)
                        .bind(instance)
                        .execute(&self.writer)
                        .await?
                    }
                };
                Ok(done.rows_affected() > 0)
            }

            async fn release_claims(&self, instance: Option<&str>) -> StoreResult<u64> {
                let done = match instance {
                    Some(i) => {
                        sqlx::query(q(
                            "UPDATE delivery SET claimed_until = NULL, claimed_by = NULL \
                             WHERE claimed_by = ? AND state = 'pending'",
                        ))
                        .bind(i)
                        .execute(&self.writer)
                        .await?
                    }
                    None => {
                        sqlx::query(q(
                            "UPDATE delivery SET claimed_until = NULL, claimed_by = NULL \
                             WHERE claimed_by IS NOT NULL AND state = 'pending'",
                        ))
                        .execute(&self.writer)
                        .await?
                    }
                };
                Ok(done.rows_affected())
            }

            async fn queue_depth(&self) -> StoreResult<(i64, i64)> {
                let pending: i64 = sqlx::query_scalar(q(
                    "SELECT COUNT(*) FROM delivery WHERE state = 'pending'",
                ))
                .fetch_one(&self.reader)
                .await?;
                let undispatched: i64 = sqlx::query_scalar(q(
                    "SELECT COUNT(*) FROM outbox_event WHERE dispatched_at IS NULL",
                ))
                .fetch_one(&self.reader)
                .await?;
                Ok((pending, undispatched))
            }

            async fn deliveries(
                &self,
                destination: &str,
                after: i64,
                until: Option<i64>,
                limit: i64,
            ) -> StoreResult<Vec<DeliveryRecord>> {
                let rows = sqlx::query(q(&format!(
                    "SELECT {DELIVERY_COLUMNS} FROM delivery d \
                     JOIN outbox_event e ON e.seq = d.event_seq \
                     WHERE d.destination = ? AND d.number > ? AND d.number <= ? \
                     ORDER BY d.number LIMIT ?"
                )))
                .bind(destination)
                .bind(after)
                .bind(until.unwrap_or(i64::MAX))
                .bind(limit)
                .fetch_all(&self.reader)
                .await?;
                rows.iter().map(delivery_from_row).collect()
            }

            async fn dead_letters(
                &self,
                destination: Option<&str>,
                limit: i64,
            ) -> StoreResult<Vec<DeliveryRecord>> {
                let rows = sqlx::query(q(&format!(
                    "SELECT {DELIVERY_COLUMNS} FROM delivery d \
                     JOIN outbox_event e ON e.seq = d.event_seq \
                     WHERE d.state = 'dead' AND (? IS NULL OR d.destination = ?) \
                     ORDER BY d.destination, d.number LIMIT ?"
                )))
                .bind(destination)
                .bind(destination)
                .bind(limit)
                .fetch_all(&self.reader)
                .await?;
                rows.iter().map(delivery_from_row).collect()
            }

            async fn requeue(
                &self,
                destination: &str,
                from: i64,
                to: i64,
                now: i64,
            ) -> StoreResult<u64> {
                let done = sqlx::query(q(
                    "UPDATE delivery SET state = 'pending', next_attempt_at = ?, created_at = ?, \
                     attempts = 0, claimed_until = NULL, claimed_by = NULL, \
                     last_error = 'replay requested' \
                     WHERE destination = ? AND number >= ? AND number <= ? \
                     AND state IN ('delivered', 'dead')",
                ))
                .bind(now)
                .bind(now)
                .bind(destination)
                .bind(from)
                .bind(to)
                .execute(&self.writer)
                .await?;
                Ok(done.rows_affected())
            }
        }
    };
}

pub(crate) mod sqlite {
    use sqlx::{Sqlite, SqlitePool};

    async fn begin_write(pool: &SqlitePool) -> StoreResult<Transaction<'static, Sqlite>> {
        Ok(pool.begin_with("BEGIN IMMEDIATE").await?)
    }

    /// SQLite has one writer, and `BEGIN IMMEDIATE` already holds it.
    async fn lock_dispatch(_tx: &mut Transaction<'static, Sqlite>) -> StoreResult<bool> {
        Ok(true)
    }

    outbox_backend!(Sqlite, SqlitePool, Dialect::Sqlite, "");
}

pub(crate) mod postgres {
    use sqlx::{PgPool, Postgres};

    /// Key of the dispatcher's advisory lock ("pqom" + 1).
    const DISPATCH_LOCK: i64 = 0x7071_6f6d_0001;

    async fn begin_write(pool: &PgPool) -> StoreResult<Transaction<'static, Postgres>> {
        Ok(pool.begin().await?)
    }

    /// One dispatcher across instances: a transaction-scoped advisory lock, released at commit.
    /// Not waiting for it: the instance holding it is dispatching the same events.
    async fn lock_dispatch(tx: &mut Transaction<'static, Postgres>) -> StoreResult<bool> {
        Ok(sqlx::query_scalar("SELECT pg_try_advisory_xact_lock($1)")
            .bind(DISPATCH_LOCK)
            .fetch_one(&mut **tx)
            .await?)
    }

    outbox_backend!(
        Postgres,
        PgPool,
        Dialect::Postgres,
        "FOR UPDATE OF d SKIP LOCKED"
    );
}

#[cfg(test)]
mod tests {
    use super::Dialect;

    #[test]
    fn placeholders_become_numbered_for_postgres() {
        let sql = "UPDATE t SET a = ? WHERE b = ?U AND c = ?";
        assert_eq!(
            Dialect::Postgres.sql(sql),
            "UPDATE t SET a = $1 WHERE b = $2::uuid AND c = $3"
        );
        assert_eq!(
            Dialect::Sqlite.sql(sql),
            "UPDATE t SET a = ? WHERE b = ? AND c = ?"
        );
    }
}
