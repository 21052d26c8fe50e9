//! Throughput of the SQL backend on a SQLite file, printed as jobs per second.
//!
//! `cargo bench -p outsourced-backend-sql --bench sqlite` (add `-- --quick` for a smaller run).
//! Every scenario checks that each job it enqueued or worked was stored or completed exactly
//! once, so a figure never comes from lost work.

#![recursion_limit = "256"]

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use outsourced_backend_sql::{SqlBackend, SqlConfig, SqliteSync};
use outsourced_core::{
    Actor, Backend, BackendExt, JobState, NewJob, QueueLimit, ReserveOptions, WorkerInstance,
};
use serde_json::json;

struct Sizes {
    single: usize,
    batched: usize,
    burn_down: usize,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let sizes = if quick {
        Sizes {
            single: 500,
            batched: 5_000,
            burn_down: 5_000,
        }
    } else {
        Sizes {
            single: 2_000,
            batched: 100_000,
            burn_down: 20_000,
        }
    };
    for sync in [SqliteSync::Full, SqliteSync::Normal] {
        println!("# SQLite file, WAL, synchronous={sync:?}");
        enqueue_one_at_a_time(sync, sizes.single, 1).await;
        enqueue_one_at_a_time(sync, sizes.single, 8).await;
        enqueue_in_batches(sync, sizes.batched, 1000).await;
        burn_down(sync, sizes.burn_down, 4, 100).await;
    }
}

/// A fresh backend on a new file, with an unlimited queue `bench`.
async fn fresh(sync: SqliteSync) -> (tempfile::TempDir, Arc<SqlBackend>) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut config = SqlConfig::new(format!(
        "sqlite://{}",
        dir.path().join("bench.db").display()
    ));
    config.sqlite_sync = sync;
    let backend = SqlBackend::open(config).await.expect("open");
    let admin = Actor::Admin("bench".into());
    backend
        .create_queue(&admin, "bench", QueueLimit::Unlimited)
        .await
        .expect("create the queue");
    (dir, Arc::new(backend))
}

fn job(i: usize) -> NewJob {
    NewJob::new("Noop", json!([i])).queue("bench")
}

fn report(what: &str, jobs: usize, elapsed: Duration) {
    let rate = jobs as f64 / elapsed.as_secs_f64();
    println!(
        "{what:<58} {jobs:>7} jobs {:>8.2} s {rate:>10.0} jobs/s",
        elapsed.as_secs_f64()
    );
}

async fn stored(backend: &SqlBackend) -> u64 {
    let info = backend
        .queue(&Actor::Admin("bench".into()), "bench")
        .await
        .expect("queue");
    info.counts.total()
}

async fn enqueue_one_at_a_time(sync: SqliteSync, jobs: usize, producers: usize) {
    let (_dir, backend) = fresh(sync).await;
    let start = Instant::now();
    let tasks = (0..producers).map(|p| {
        let backend = backend.clone();
        tokio::spawn(async move {
            let me = Actor::Producer(format!("p{p}"));
            for i in (p..jobs).step_by(producers) {
                backend.enqueue(&me, job(i)).await.expect("enqueue");
            }
        })
    });
    join_all(tasks)
        .await
        .into_iter()
        .for_each(|r| r.expect("producer"));
    let elapsed = start.elapsed();
    assert_eq!(stored(&backend).await, jobs as u64);
    report(
        &format!("enqueue one at a time, {producers} producer(s)"),
        jobs,
        elapsed,
    );
}

async fn enqueue_in_batches(sync: SqliteSync, jobs: usize, batch: usize) {
    let (_dir, backend) = fresh(sync).await;
    let me = Actor::Producer("bulk".into());
    let start = Instant::now();
    for chunk in (0..jobs).collect::<Vec<_>>().chunks(batch) {
        let ids = backend
            .enqueue_batch(&me, chunk.iter().map(|i| job(*i)).collect())
            .await;
        assert_eq!(ids.expect("enqueue a batch").len(), chunk.len());
    }
    let elapsed = start.elapsed();
    assert_eq!(stored(&backend).await, jobs as u64);
    report(&format!("enqueue in batches of {batch}"), jobs, elapsed);
}

async fn burn_down(sync: SqliteSync, jobs: usize, workers: usize, batch: u32) {
    let (_dir, backend) = fresh(sync).await;
    let me = Actor::Producer("bulk".into());
    for chunk in (0..jobs).collect::<Vec<_>>().chunks(1000) {
        backend
            .enqueue_batch(&me, chunk.iter().map(|i| job(*i)).collect())
            .await
            .expect("pre-insert");
    }
    let start = Instant::now();
    let tasks = (0..workers).map(|w| {
        let backend = backend.clone();
        tokio::spawn(async move {
            let me = WorkerInstance::new(format!("w{w}"), "bench");
            let mut done = 0usize;
            loop {
                let opts = ReserveOptions::up_to(batch).queues(["bench"]);
                let got = backend.reserve(&me, opts).await.expect("reserve");
                if got.is_empty() {
                    return done;
                }
                let leases: Vec<outsourced_core::Completion> =
                    got.iter().map(|r| r.lease.to_ref().into()).collect();
                let results = backend
                    .complete_batch(&me, &leases)
                    .await
                    .expect("complete");
                assert!(results.iter().all(Result::is_ok));
                done += got.len();
            }
        })
    });
    let done: usize = join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.expect("worker"))
        .sum();
    let elapsed = start.elapsed();
    assert_eq!(done, jobs);
    let info = backend
        .queue(&Actor::Admin("bench".into()), "bench")
        .await
        .expect("queue");
    assert_eq!(info.counts.get(JobState::Succeeded), jobs as u64);
    report(
        &format!("burn-down, {workers} workers, reserve and complete {batch} at a time"),
        jobs,
        elapsed,
    );
}
