//! A fresh PostgreSQL database per test, shared by the store suite and the API suites.
//!
//! PostgreSQL is a real dependency of the test run: when it is unreachable the test fails with a
//! clear message, unless `PQOM_SKIP_POSTGRES=1` says to skip the PostgreSQL half.

use uuid::Uuid;

fn admin_url() -> String {
    std::env::var("PQOM_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// `url` with its database name replaced.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = base.find("://").map(|i| i + 3).unwrap_or(0);
    let prefix = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{prefix}/{database}?{q}"),
        None => format!("{prefix}/{database}"),
    }
}

/// A database created for one test, dropped (even if the test panics) when this is dropped.
pub struct PgDatabase {
    admin_url: String,
    name: String,
    /// Connection URL of the new database.
    pub url: String,
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime; a separate thread with its own runtime may block.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                use sqlx::Connection;
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url).await {
                    let sql = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(sql))
                        .execute(&mut conn)
                        .await;
                }
            })
        })
        .join();
    }
}

/// Create `<prefix>_<uuid>`; `None` when `PQOM_SKIP_POSTGRES=1`.
pub async fn fresh_database(prefix: &str) -> Option<PgDatabase> {
    use sqlx::Connection;
    if std::env::var("PQOM_SKIP_POSTGRES").is_ok_and(|v| v == "1") {
        eprintln!("PQOM_SKIP_POSTGRES=1: PostgreSQL test skipped");
        return None;
    }
    let admin_url = admin_url();
    let mut admin = sqlx::PgConnection::connect(&admin_url)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {admin_url}: {e}\n\
                 Start PostgreSQL, point PQOM_TEST_POSTGRES_URL at it, or set PQOM_SKIP_POSTGRES=1 \
                 to skip the PostgreSQL half of the suites."
            )
        });
    let name = format!("{prefix}_{}", Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut admin)
        .await
        .expect("CREATE DATABASE");
    Some(PgDatabase {
        url: with_database(&admin_url, &name),
        admin_url,
        name,
    })
}
