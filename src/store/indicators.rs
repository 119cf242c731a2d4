//! Indicator values (the output of [`crate::map`]) as a time series, in both backends.
//!
//! A submission's values are written inside its commit (the backends call [`sqlite::record`] /
//! [`postgres::record`] in the submission's transaction), so a 2xx means they are stored too.
//! They replace the current values of the same indicator, trust and period; the replaced rows
//! stay, marked with the submission that superseded them, so the history of a trust's
//! corrections can be shown. Stored as plain columns (not JSON) so that charts and
//! pooling read them with one indexed query.

use serde::Serialize;
use sqlx::{Postgres, QueryBuilder, Row, Sqlite};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{StoreError, StoreResult};
use crate::map::{IndicatorValue, Period, StratumKey};

/// Which indicator values to read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IndicatorQuery {
    /// A `pqom-indicator` code.
    pub indicator: Option<String>,
    /// ODS codes of trusts; empty means every trust.
    pub trusts: Vec<String>,
    /// Periods starting on or after this (compared as ISO 8601 text).
    pub period_from: Option<String>,
    /// Periods starting on or before this.
    pub period_to: Option<String>,
    /// Only totals, no strata.
    pub totals_only: bool,
    /// Superseded values too (the history), not only the current ones.
    pub include_history: bool,
    /// Only the values this submission recorded (what its forwarded bundle carries).
    pub submission: Option<Uuid>,
}

/// A stored indicator value and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredIndicatorValue {
    #[serde(flatten)]
    pub value: IndicatorValue,
    pub submission_id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub recorded_at: OffsetDateTime,
    /// The submission that replaced this value, if any.
    pub superseded_by: Option<Uuid>,
}

const COLUMNS: &str = "indicator, trust, period_start, period_end, stratifier, stratum_system, \
     stratum_code, numerator, denominator, value, narrative, recorded_at";

fn stratum_parts(v: &IndicatorValue) -> (&str, &str, &str) {
    v.stratum.as_ref().map_or(("", "", ""), |k| {
        (k.stratifier.as_str(), k.system.as_str(), k.code.as_str())
    })
}

fn count(n: u64) -> StoreResult<i64> {
    i64::try_from(n).map_err(|_| StoreError::Config(format!("count {n} is too large to store")))
}

/// Distinct (indicator, trust, period) keys of a batch: what a resubmission replaces.
fn keys(values: &[IndicatorValue]) -> Vec<(&str, &str, &Period)> {
    let mut k: Vec<_> = values
        .iter()
        .map(|v| (v.indicator.as_str(), v.trust.as_str(), &v.period))
        .collect();
    k.sort();
    k.dedup();
    k
}

#[allow(clippy::too_many_arguments)]
fn row_to_value(
    indicator: String,
    trust: String,
    start: String,
    end: String,
    stratifier: String,
    system: String,
    code: String,
    numerator: i64,
    denominator: Option<i64>,
    value: Option<f64>,
    narrative: Option<String>,
) -> StoreResult<IndicatorValue> {
    let n = |x: i64| {
        u64::try_from(x).map_err(|_| StoreError::Corrupt(format!("negative count {x} stored")))
    };
    Ok(IndicatorValue {
        indicator,
        trust,
        period: Period { start, end },
        stratum: (!stratifier.is_empty()).then_some(StratumKey {
            stratifier,
            system,
            code,
        }),
        numerator: n(numerator)?,
        denominator: denominator.map(n).transpose()?,
        value,
        narrative,
        hit: 0,
    })
}

fn recorded(at: i64) -> StoreResult<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(at) * 1_000)
        .map_err(|e| StoreError::Corrupt(format!("recorded_at {at}: {e}")))
}

macro_rules! push_filters {
    // `$uuid`: how a bound UUID text is turned into the column's type ("" for SQLite's TEXT,
    // "::uuid" for PostgreSQL), so the submission index serves the comparison.
    ($qb:expr, $q:expr, $uuid:expr) => {{
        $qb.push(" WHERE 1 = 1");
        if !$q.include_history {
            $qb.push(" AND superseded_by IS NULL");
        }
        if let Some(i) = &$q.indicator {
            $qb.push(" AND indicator = ").push_bind(i.clone());
        }
        if !$q.trusts.is_empty() {
            $qb.push(" AND trust IN (");
            let mut sep = $qb.separated(", ");
            for t in &$q.trusts {
                sep.push_bind(t.clone());
            }
            $qb.push(")");
        }
        if let Some(f) = &$q.period_from {
            $qb.push(" AND period_start >= ").push_bind(f.clone());
        }
        if let Some(t) = &$q.period_to {
            $qb.push(" AND period_start <= ").push_bind(t.clone());
        }
        if $q.totals_only {
            $qb.push(" AND stratifier = ''");
        }
        if let Some(s) = &$q.submission {
            $qb.push(" AND submission_id = ")
                .push_bind(s.to_string())
                .push($uuid);
        }
        $qb.push(
            " ORDER BY indicator, trust, period_start, period_end, recorded_at, \
             stratifier, stratum_system, stratum_code",
        );
    }};
}

pub(crate) mod sqlite {
    use super::*;
    use sqlx::{SqliteConnection, SqlitePool};

    /// Write a submission's values inside its transaction (`recorded_at` in microseconds).
    pub async fn record(
        tx: &mut SqliteConnection,
        submission_id: Uuid,
        recorded_at: i64,
        values: &[IndicatorValue],
    ) -> StoreResult<()> {
        let sub = submission_id.to_string();
        for (indicator, trust, period) in keys(values) {
            sqlx::query(
                "UPDATE indicator_value SET superseded_by = ? WHERE indicator = ? AND trust = ? \
                 AND period_start = ? AND period_end = ? AND superseded_by IS NULL",
            )
            .bind(&sub)
            .bind(indicator)
            .bind(trust)
            .bind(&period.start)
            .bind(&period.end)
            .execute(&mut *tx)
            .await?;
        }
        for v in values {
            let (stratifier, system, code) = stratum_parts(v);
            sqlx::query(
                "INSERT INTO indicator_value (submission_id, recorded_at, indicator, trust, \
                 period_start, period_end, stratifier, stratum_system, stratum_code, numerator, \
                 denominator, value, narrative) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&sub)
            .bind(recorded_at)
            .bind(&v.indicator)
            .bind(&v.trust)
            .bind(&v.period.start)
            .bind(&v.period.end)
            .bind(stratifier)
            .bind(system)
            .bind(code)
            .bind(count(v.numerator)?)
            .bind(v.denominator.map(count).transpose()?)
            .bind(v.value.filter(|x| x.is_finite()))
            .bind(v.narrative.as_deref())
            .execute(&mut *tx)
            .await?;
        }
        Ok(())
    }

    pub async fn query(
        pool: &SqlitePool,
        q: &IndicatorQuery,
    ) -> StoreResult<Vec<StoredIndicatorValue>> {
        let mut qb = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {COLUMNS}, submission_id, superseded_by FROM indicator_value"
        ));
        push_filters!(qb, q, "");
        let rows = qb.build().fetch_all(pool).await?;
        rows.into_iter()
            .map(|r| {
                let uuid = |s: Option<String>| {
                    s.map(|s| {
                        Uuid::parse_str(&s)
                            .map_err(|e| StoreError::Corrupt(format!("uuid {s}: {e}")))
                    })
                    .transpose()
                };
                Ok(StoredIndicatorValue {
                    value: row_to_value(
                        r.try_get(0)?,
                        r.try_get(1)?,
                        r.try_get(2)?,
                        r.try_get(3)?,
                        r.try_get(4)?,
                        r.try_get(5)?,
                        r.try_get(6)?,
                        r.try_get(7)?,
                        r.try_get(8)?,
                        r.try_get(9)?,
                        r.try_get(10)?,
                    )?,
                    recorded_at: recorded(r.try_get(11)?)?,
                    submission_id: uuid(r.try_get(12)?)?.ok_or_else(|| {
                        StoreError::Corrupt("indicator value without submission".into())
                    })?,
                    superseded_by: uuid(r.try_get(13)?)?,
                })
            })
            .collect()
    }
}

pub(crate) mod postgres {
    use super::*;
    use sqlx::{PgConnection, PgPool};

    /// Write a submission's values inside its transaction (`recorded_at` in microseconds).
    ///
    /// Two instances committing values for the same indicator, trust and period at once must
    /// not both leave a current set: under READ COMMITTED the second UPDATE would not see the
    /// rows the first inserted. So each key is locked first (a transaction-scoped advisory lock,
    /// taken in sorted order so two commits cannot deadlock), and the UPDATE that follows runs
    /// with a snapshot taken after the other commit.
    pub async fn record(
        tx: &mut PgConnection,
        submission_id: Uuid,
        recorded_at: i64,
        values: &[IndicatorValue],
    ) -> StoreResult<()> {
        let sub = submission_id.to_string();
        let keys = keys(values);
        if keys.is_empty() {
            return Ok(());
        }
        let lock_keys: Vec<String> = keys
            .iter()
            .map(|(i, t, p)| format!("indicator_value|{i}|{t}|{}|{}", p.start, p.end))
            .collect();
        sqlx::query(
            "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) \
             FROM (SELECT k FROM UNNEST($1::text[]) AS t(k) ORDER BY k) AS s",
        )
        .bind(lock_keys)
        .execute(&mut *tx)
        .await?;
        for (indicator, trust, period) in keys {
            sqlx::query(
                "UPDATE indicator_value SET superseded_by = $1::uuid WHERE indicator = $2 \
                 AND trust = $3 AND period_start = $4 AND period_end = $5 \
                 AND superseded_by IS NULL",
            )
            .bind(&sub)
            .bind(indicator)
            .bind(trust)
            .bind(&period.start)
            .bind(&period.end)
            .execute(&mut *tx)
            .await?;
        }
        // One multi-row INSERT per chunk: a reference report is ~400 rows.
        for chunk in values.chunks(500) {
            let mut qb = QueryBuilder::<Postgres>::new(
                "INSERT INTO indicator_value (submission_id, recorded_at, indicator, trust, \
                 period_start, period_end, stratifier, stratum_system, stratum_code, numerator, \
                 denominator, value, narrative) ",
            );
            let mut err = None;
            qb.push_values(chunk, |mut b, v| {
                let (stratifier, system, code) = stratum_parts(v);
                let n = count(v.numerator);
                let d = v.denominator.map(count).transpose();
                let (n, d) = match (n, d) {
                    (Ok(n), Ok(d)) => (n, d),
                    (Err(e), _) | (_, Err(e)) => {
                        err = Some(e);
                        (0, None)
                    }
                };
                b.push_bind(sub.clone())
                    .push_unseparated("::uuid")
                    .push_bind(recorded_at)
                    .push_bind(v.indicator.clone())
                    .push_bind(v.trust.clone())
                    .push_bind(v.period.start.clone())
                    .push_bind(v.period.end.clone())
                    .push_bind(stratifier.to_owned())
                    .push_bind(system.to_owned())
                    .push_bind(code.to_owned())
                    .push_bind(n)
                    .push_bind(d)
                    .push_bind(v.value.filter(|x| x.is_finite()))
                    .push_bind(v.narrative.clone());
            });
            if let Some(e) = err {
                return Err(e);
            }
            qb.build().execute(&mut *tx).await?;
        }
        Ok(())
    }

    pub async fn query(
        pool: &PgPool,
        q: &IndicatorQuery,
    ) -> StoreResult<Vec<StoredIndicatorValue>> {
        let mut qb = QueryBuilder::<Postgres>::new(format!(
            "SELECT {COLUMNS}, submission_id::text, superseded_by::text FROM indicator_value"
        ));
        push_filters!(qb, q, "::uuid");
        let rows = qb.build().fetch_all(pool).await?;
        rows.into_iter()
            .map(|r| {
                let uuid = |s: Option<String>| {
                    s.map(|s| {
                        Uuid::parse_str(&s)
                            .map_err(|e| StoreError::Corrupt(format!("uuid {s}: {e}")))
                    })
                    .transpose()
                };
                Ok(StoredIndicatorValue {
                    value: row_to_value(
                        r.try_get(0)?,
                        r.try_get(1)?,
                        r.try_get(2)?,
                        r.try_get(3)?,
                        r.try_get(4)?,
                        r.try_get(5)?,
                        r.try_get(6)?,
                        r.try_get(7)?,
                        r.try_get(8)?,
                        r.try_get(9)?,
                        r.try_get(10)?,
                    )?,
                    recorded_at: recorded(r.try_get(11)?)?,
                    submission_id: uuid(r.try_get(12)?)?.ok_or_else(|| {
                        StoreError::Corrupt("indicator value without submission".into())
                    })?,
                    superseded_by: uuid(r.try_get(13)?)?,
                })
            })
            .collect()
    }
}
