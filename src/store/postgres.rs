//! The PostgreSQL backend (lands in the next commit; SQLite is the default and complete).
use std::sync::Arc;

use super::{Store, StoreError, StoreResult};

pub async fn open(_url: &str) -> StoreResult<Arc<dyn Store>> {
    let _schema = super::migrations::postgres();
    Err(StoreError::Config(
        "the PostgreSQL backend is not available in this build yet".into(),
    ))
}
