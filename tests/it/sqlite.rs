//! SQLite-specific behaviour: pragmas, durability across a reopen, and queues created on first
//! use. (Races on SQLite are in `concurrency`, with the other databases.)

use std::sync::Arc;

use outsourced_backend_sql::SqlBackend;
use outsourced_backend_sql::sea_orm::{ConnectionTrait, Statement};
use outsourced_core::{Actor, Backend, BackendExt, Error, JobState, NewJob, QueueLimit};
use serde_json::json;

use crate::support::test_config;

async fn open(url: &str) -> Arc<SqlBackend> {
    let backend = SqlBackend::open(test_config(url)).await;
    Arc::new(backend.unwrap_or_else(|e| panic!("cannot open {url}: {e}")))
}

fn admin() -> Actor {
    Actor::Admin("root".into())
}

async fn pragma(backend: &SqlBackend, name: &str) -> String {
    let db = backend.connection();
    let sql = format!("PRAGMA {name}");
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect("query a pragma")
        .expect("a pragma row");
    row.try_get_by_index::<String>(0)
        .or_else(|_| row.try_get_by_index::<i64>(0).map(|n| n.to_string()))
        .expect("a pragma value")
}

#[tokio::test]
async fn a_sqlite_file_runs_in_wal_mode_with_a_busy_timeout_and_full_sync() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("pragmas.db").display());
    let backend = open(&url).await;
    assert_eq!(pragma(&backend, "journal_mode").await, "wal");
    assert_eq!(pragma(&backend, "busy_timeout").await, "5000");
    assert_eq!(pragma(&backend, "synchronous").await, "2", "FULL");
    assert_eq!(pragma(&backend, "foreign_keys").await, "1");
}

#[tokio::test]
async fn a_reopened_file_keeps_its_jobs() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("durable.db").display());
    let id = {
        let backend = open(&url).await;
        let job = backend
            .enqueue(&Actor::application(), NewJob::new("Keep", json!([1])))
            .await;
        job.expect("enqueue").id
    };
    let backend = open(&url).await;
    let job = backend
        .job(&admin(), id)
        .await
        .expect("the job survives a reopen");
    assert_eq!(
        (job.class.as_str(), job.state),
        ("Keep", JobState::Available)
    );
}

#[tokio::test]
async fn queues_can_be_created_on_first_use_with_the_default_limit() {
    let mut config = test_config("sqlite::memory:");
    config.create_queues_on_first_use = true;
    let backend = SqlBackend::open(config).await.expect("open");
    let job = NewJob::new("Hello", json!([])).queue("made-on-the-fly");
    let stored = backend
        .enqueue(&Actor::application(), job)
        .await
        .expect("enqueue");
    assert_eq!(stored.queue, "made-on-the-fly");
    let info = backend
        .queue(&admin(), "made-on-the-fly")
        .await
        .expect("the new queue");
    assert_eq!(
        info.limit,
        QueueLimit::Max(outsourced_core::DEFAULT_QUEUE_LIMIT)
    );
    assert_eq!(info.counts.live(), 1);
    let bad = NewJob::new("Hello", json!([])).queue("not a name");
    let refused = backend.enqueue(&Actor::application(), bad).await;
    assert!(
        matches!(refused, Err(Error::InvalidInput { .. })),
        "{refused:?}"
    );
}
