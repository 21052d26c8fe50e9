//! SQLite-specific behaviour: concurrent load with no "database is locked" reaching a caller,
//! every job run exactly once, bounded queues exact across two backends on one file, pragmas,
//! durability across a reopen, and queues created on first use.

use std::collections::HashMap;
use std::sync::Arc;

use futures::future::join_all;
use outsourced_backend_sql::SqlBackend;
use outsourced_backend_sql::sea_orm::{ConnectionTrait, Statement};
use outsourced_core::{
    Actor, Backend, BackendExt, Error, JobFilter, JobState, NewJob, QueueLimit, Reason,
    ReserveOptions, WorkerInstance,
};
use serde_json::json;

use crate::support::test_config;

async fn open(url: &str) -> Arc<SqlBackend> {
    let backend = SqlBackend::open(test_config(url)).await;
    Arc::new(backend.unwrap_or_else(|e| panic!("cannot open {url}: {e}")))
}

fn admin() -> Actor {
    Actor::Admin("root".into())
}

/// Enqueues 1,000 jobs in batches, then works jobs until none are left; returns the ids it
/// completed.
async fn enqueue_and_work(backend: Arc<SqlBackend>, task: usize) -> Vec<i64> {
    let producer = Actor::Producer(format!("p{task}"));
    for batch in 0..10 {
        let jobs = (0..100)
            .map(|i| NewJob::new("Work", json!([task, batch, i])).queue("load"))
            .collect();
        let ids = backend.enqueue_batch(&producer, jobs).await;
        assert_eq!(ids.map(|ids| ids.len()).ok(), Some(100));
    }
    let me = WorkerInstance::new(format!("w{task}"), "i");
    let mut done = Vec::new();
    loop {
        let opts = ReserveOptions::up_to(10).queues(["load"]);
        let batch = backend
            .reserve(&me, opts)
            .await
            .expect("reserve never fails");
        if batch.is_empty() {
            return done;
        }
        let leases: Vec<_> = batch.iter().map(|r| r.lease.to_ref()).collect();
        let results = backend
            .complete_batch(&me, &leases)
            .await
            .expect("complete never fails");
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        done.extend(batch.iter().map(|r| r.job.id.0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_tasks_work_eight_thousand_jobs_exactly_once() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("load.db").display());
    let backend = open(&url).await;
    let created = backend
        .create_queue(&admin(), "load", QueueLimit::Unlimited)
        .await;
    created.expect("create the queue");
    let tasks = (0..8).map(|task| tokio::spawn(enqueue_and_work(backend.clone(), task)));
    let done: Vec<i64> = join_all(tasks)
        .await
        .into_iter()
        .flat_map(|r| r.expect("a task panicked"))
        .collect();
    assert_eq!(done.len(), 8000);
    let mut times = HashMap::<i64, u32>::new();
    for id in &done {
        *times.entry(*id).or_default() += 1;
    }
    assert!(times.values().all(|n| *n == 1), "a job was worked twice");
    let info = backend.queue(&admin(), "load").await.expect("the queue");
    assert_eq!(
        (info.counts.get(JobState::Succeeded), info.counts.total()),
        (8000, 8000)
    );
    // Each job's history shows one completion.
    let some = backend
        .jobs(
            &admin(),
            JobFilter {
                limit: 50,
                ..JobFilter::default()
            },
        )
        .await;
    for job in some.expect("list jobs") {
        let history = backend.history(&admin(), job.id).await.expect("history");
        let completions = history
            .iter()
            .filter(|r| r.reason == Reason::Completed)
            .count();
        assert_eq!(completions, 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_two_producers_on_two_backends_fill_a_queue_of_ten_exactly() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!("sqlite://{}", dir.path().join("race.db").display());
    let first = open(&url).await;
    let second = open(&url).await;
    let created = first
        .create_queue(&admin(), "narrow", QueueLimit::Max(10))
        .await;
    created.expect("create the queue");
    let attempts = (0..32).map(|i| {
        let backend = if i % 2 == 0 {
            first.clone()
        } else {
            second.clone()
        };
        tokio::spawn(async move {
            let job = NewJob::new("Race", json!([i])).queue("narrow");
            backend
                .enqueue(&Actor::Producer(format!("p{i}")), job)
                .await
        })
    });
    let results: Vec<_> = join_all(attempts)
        .await
        .into_iter()
        .map(|r| r.expect("a task panicked"))
        .collect();
    let accepted = results.iter().filter(|r| r.is_ok()).count();
    let full = results
        .iter()
        .filter(|r| matches!(r, Err(Error::QueueFull { queue, limit: 10 }) if queue == "narrow"))
        .count();
    assert_eq!((accepted, full), (10, 22), "{results:?}");
    let info = second.queue(&admin(), "narrow").await.expect("the queue");
    assert_eq!(info.counts.total(), 10);
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
