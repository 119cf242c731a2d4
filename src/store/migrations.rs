//! Each backend's SQL migrations, embedded in the binary so that it needs no files at run time.
//!
//! Numbering is per concern (docs/CONVENTIONS.md): `0001` spine (submissions, resources),
//! `0002` indicators, `0003` subscriptions, `0004` the delivery outbox. To add one, put
//! `NNNN_name.sql` in both `migrations/sqlite` and `migrations/postgres` and add one line to each
//! list below. Applied migrations are checksummed: never edit one that has shipped, add a new one.

use std::borrow::Cow;

use sqlx::SqlSafeStr;
use sqlx::migrate::{Migration, MigrationType, Migrator};

/// `(version, description, sql)`.
type Embedded = (i64, &'static str, &'static str);

const SQLITE: &[Embedded] = &[
    (1, "spine", include_str!("migrations/sqlite/0001_spine.sql")),
    (
        2,
        "indicators",
        include_str!("migrations/sqlite/0002_indicators.sql"),
    ),
    (
        3,
        "subscriptions",
        include_str!("migrations/sqlite/0003_subscriptions.sql"),
    ),
    (
        4,
        "outbox",
        include_str!("migrations/sqlite/0004_outbox.sql"),
    ),
];

const POSTGRES: &[Embedded] = &[
    (
        1,
        "spine",
        include_str!("migrations/postgres/0001_spine.sql"),
    ),
    (
        2,
        "indicators",
        include_str!("migrations/postgres/0002_indicators.sql"),
    ),
    (
        3,
        "subscriptions",
        include_str!("migrations/postgres/0003_subscriptions.sql"),
    ),
    (
        4,
        "outbox",
        include_str!("migrations/postgres/0004_outbox.sql"),
    ),
];

fn migrator(embedded: &[Embedded]) -> Migrator {
    Migrator::with_migrations(
        embedded
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    Cow::Borrowed(description),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

pub(crate) fn sqlite() -> Migrator {
    migrator(SQLITE)
}

pub(crate) fn postgres() -> Migrator {
    migrator(POSTGRES)
}
