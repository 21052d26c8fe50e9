//! apalis's burn-down, the workload of `outsourced-bench --scenarios burn-down`: N no-op jobs
//! inserted first, then timed from the workers' start until every one is recorded done in the
//! database, each checked to have run exactly once. Usage:
//!
//!     apalis-burn-down <postgres-url> <jobs> <default|fast> [workers]
//!
//! `default` is apalis-postgres's `Config::default()` (fetches of 10); `fast` fetches 100 at a
//! time, the batch size its own examples use for throughput. Its schema is dropped and
//! created afresh for every run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use apalis::prelude::*;
use apalis_postgres::{Config, PostgresStorage};
use futures::stream;
use sqlx::postgres::PgPoolOptions;

/// Which job ran how often, and how many runs in all.
struct Seen {
    runs: Vec<AtomicU8>,
    ran: AtomicUsize,
}

async fn noop(n: u32, seen: Data<Arc<Seen>>) -> Result<(), BoxDynError> {
    seen.runs[n as usize].fetch_add(1, Ordering::Relaxed);
    seen.ran.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Returns once the database says every job is done: a job whose handler returned but whose
/// result is not stored yet is not done.
async fn all_done(pool: &sqlx::PgPool, jobs: u32) -> Result<(), sqlx::Error> {
    loop {
        let (done,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM apalis.jobs WHERE status = 'Done'")
                .fetch_one(pool)
                .await?;
        if done >= i64::from(jobs) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::main]
async fn main() -> Result<(), BoxDynError> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: apalis-burn-down <postgres-url> <jobs> <default|fast> [workers]";
    let (Some(url), Some(jobs), Some(mode)) = (args.first(), args.get(1), args.get(2)) else {
        return Err(usage.into());
    };
    let jobs: u32 = jobs.parse().map_err(|_| usage)?;
    let workers: usize = args
        .get(3)
        .map_or(Ok(4), |w| w.parse())
        .map_err(|_| usage)?;
    let batch = match mode.as_str() {
        "default" => Config::default().batch_size,
        "fast" => 100,
        _ => return Err(usage.into()),
    };
    let pool = PgPoolOptions::new()
        .max_connections(10)
        .connect(url)
        .await?;
    sqlx::query("DROP SCHEMA IF EXISTS apalis CASCADE")
        .execute(&pool)
        .await?;
    PostgresStorage::setup(&pool).await?;
    let config = Config::default().queue("bench").batch_size(batch);
    let mut backend = PostgresStorage::new(&pool).with_config(config.clone());
    let mut items = stream::iter((0..jobs).map(|n| TaskBuilder::new(n).build()));
    backend.push_all(&mut items).await?;

    let seen = Arc::new(Seen {
        runs: (0..jobs).map(|_| AtomicU8::new(0)).collect(),
        ran: AtomicUsize::new(0),
    });
    let started = Instant::now();
    let crew = (0..workers).map(|i| {
        WorkerBuilder::new(format!("burn-down-{i}"))
            .backend(PostgresStorage::new(&pool).with_config(config.clone()))
            .data(seen.clone())
            .parallelize(tokio::spawn)
            .build(noop)
            .run()
    });
    // The workers run in this task until every job is done (or one of them stops).
    tokio::select! {
        stopped = futures::future::join_all(crew) => {
            return Err(format!("the workers stopped: {stopped:?}").into());
        }
        done = all_done(&pool, jobs) => done?,
    }
    let seconds = started.elapsed().as_secs_f64();
    let twice = seen
        .runs
        .iter()
        .filter(|r| r.load(Ordering::Relaxed) > 1)
        .count();
    let missing = seen
        .runs
        .iter()
        .filter(|r| r.load(Ordering::Relaxed) == 0)
        .count();
    if twice > 0 || missing > 0 {
        eprintln!("FAILED: {twice} ran twice, {missing} never ran");
        std::process::exit(1);
    }
    println!(
        "apalis {mode}, {workers} workers, fetches of {batch}: {jobs} jobs in {seconds:.2} s = {:.0} jobs/s",
        f64::from(jobs) / seconds
    );
    // The workers run until the process ends.
    std::process::exit(0);
}
