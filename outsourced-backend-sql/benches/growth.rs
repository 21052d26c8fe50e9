//! Does reserve stay fast as the table grows? The cost of reserve + complete (batches of 10)
//! on a nearly empty table, then with 1,000,000 finished and 100,000 waiting jobs in it, on a
//! SQLite file and, when their URLs are set, PostgreSQL (`OUTSOURCED_TEST_POSTGRES_URL`) and
//! MariaDB (`OUTSOURCED_TEST_MYSQL_URL`). It prints the figures and the database's plan of the
//! claim query on the grown table.
//!
//! `cargo bench -p outsourced-backend-sql --features testing --bench growth`
//! (`-- --quick` grows to 100,000 finished and 10,000 waiting instead).

#![recursion_limit = "256"]

use std::time::{Duration, Instant};

use outsourced_backend_sql::sea_orm::{ConnectionTrait, Database, DbBackend, Statement};
use outsourced_backend_sql::{Flavor, SqlBackend, SqlConfig, testing};
use outsourced_core::{
    Actor, Backend, BackendExt, JobFilter, JobState, NewJob, QueueLimit, ReserveOptions,
    WorkerInstance,
};
use serde_json::json;

/// Rounds of reserve + complete measured on each table.
const ROUNDS: usize = 300;
/// Rounds run before the timed ones (connections, statement caches).
const WARM_UP: usize = 30;
/// Jobs per round.
const BATCH: u32 = 10;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (finished, waiting) = if quick {
        (100_000, 10_000)
    } else {
        (1_000_000, 100_000)
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let sqlite = format!("sqlite://{}", dir.path().join("growth.db").display());
    compare(
        "SQLite file (WAL, synchronous=FULL)",
        SqlConfig::new(sqlite),
        finished,
        waiting,
    )
    .await;
    for (name, variable) in [
        ("PostgreSQL", "OUTSOURCED_TEST_POSTGRES_URL"),
        ("MariaDB", "OUTSOURCED_TEST_MYSQL_URL"),
    ] {
        match std::env::var(variable) {
            Ok(url) if !url.is_empty() => {
                let space = Namespace::create(&url).await;
                compare(name, space.config.clone(), finished, waiting).await;
                space.drop_now().await;
            }
            _ => println!("\n# {name}: skipped ({variable} is not set)"),
        }
    }
}

/// Measures on a nearly empty table, grows it, measures again, and prints the plan.
async fn compare(name: &str, config: SqlConfig, finished: usize, waiting: usize) {
    println!("\n# {name}");
    let backend = SqlBackend::open(config).await.expect("open");
    let admin = Actor::Admin("bench".into());
    let created = backend.create_queue(&admin, "bench", QueueLimit::Unlimited);
    created.await.expect("create the queue");
    enqueue(&backend, BATCH as usize * (ROUNDS + WARM_UP) + 1000).await;
    analyze(&backend).await;
    let empty = measure(&backend, "nearly empty table").await;
    let start = Instant::now();
    grow(&backend, finished).await;
    enqueue(&backend, waiting).await;
    analyze(&backend).await;
    println!("(grown in {:.0} s)", start.elapsed().as_secs_f64());
    let grown = measure(&backend, "grown table").await;
    println!(
        "grown / empty: {:.2}x per round",
        grown.as_secs_f64() / empty.as_secs_f64()
    );
    dashboard_reads(&backend).await;
    println!("plan of the claim query on the grown table:");
    let opts = ReserveOptions::up_to(BATCH).queues(["bench"]);
    for line in testing::reserve_plan(&backend, &opts).await.expect("plan") {
        println!("    {line}");
    }
}

/// Times the reads behind each dashboard page on the grown table (the median of 20 runs).
async fn dashboard_reads(backend: &SqlBackend) {
    let admin = Actor::Admin("bench".into());
    let failed = JobFilter {
        state: Some(JobState::Succeeded),
        queue: Some("bench".into()),
        limit: 50,
        ..JobFilter::default()
    };
    let some_job = backend.jobs(&admin, failed.clone()).await.expect("jobs")[0].id;
    let store = outsourced_backend_sql::Directory::new(backend.clone());
    println!("dashboard reads on the grown table (median of 20):");
    time("overview: queues() with exact counts (kept)", || async {
        backend.queues(&admin).await.expect("queues");
    })
    .await;
    time("overview: a day of tallies for the charts", || async {
        let now = chrono::Utc::now();
        let day = store.minutes(None, now - chrono::Duration::days(1), now);
        day.await.expect("minutes");
    })
    .await;
    time("overview: succeeded in the last minute", || async {
        let since = chrono::Utc::now() - chrono::Duration::minutes(1);
        let done = store.finished_since("bench", JobState::Succeeded, since, 10_000);
        done.await.expect("finished");
    })
    .await;
    time("for comparison: counting the table by state", || async {
        store
            .state_counts("bench", 100_000_000)
            .await
            .expect("counts");
    })
    .await;
    time("jobs: a page of 50 by queue and state", || async {
        backend.jobs(&admin, failed.clone()).await.expect("jobs");
    })
    .await;
    let failed_anywhere = JobFilter {
        state: Some(JobState::Failed),
        limit: 50,
        ..JobFilter::default()
    };
    time("jobs: a page of 50 failed, any queue", || async {
        backend
            .jobs(&admin, failed_anywhere.clone())
            .await
            .expect("jobs");
    })
    .await;
    time("job: the job and a page of its history", || async {
        backend.job(&admin, some_job).await.expect("job");
        let page = store.history_page(some_job, None, 101);
        page.await.expect("history");
    })
    .await;
    time("workers: leases by worker", || async {
        store.leases_by_worker().await.expect("leases");
    })
    .await;
}

async fn time<F: std::future::Future<Output = ()>>(what: &str, read: impl Fn() -> F) {
    let mut runs = Vec::with_capacity(20);
    for _ in 0..20 {
        let start = Instant::now();
        read().await;
        runs.push(start.elapsed());
    }
    runs.sort();
    println!("    {what:<42} {:>8.2} ms", runs[10].as_secs_f64() * 1000.0);
}

/// Enqueues `n` waiting jobs in batches of 1,000.
async fn enqueue(backend: &SqlBackend, n: usize) {
    let me = Actor::Producer("bench".into());
    let mut left = n;
    while left > 0 {
        let size = left.min(1000);
        let jobs = (0..size)
            .map(|i| NewJob::new("Noop", json!([i])).queue("bench"))
            .collect();
        backend.enqueue_batch(&me, jobs).await.expect("enqueue");
        left -= size;
    }
}

/// Reports the table's size, then times `ROUNDS` rounds of reserve + complete, each of
/// `BATCH` jobs, by one worker (after `WARM_UP` rounds that are not timed).
async fn measure(backend: &SqlBackend, what: &str) -> Duration {
    let info = backend.queue(&Actor::Admin("bench".into()), "bench").await;
    let counts = info.expect("the queue").counts;
    for _ in 0..WARM_UP {
        round(backend).await;
    }
    let start = Instant::now();
    for _ in 0..ROUNDS {
        round(backend).await;
    }
    let elapsed = start.elapsed();
    let per_round = elapsed.as_secs_f64() * 1000.0 / ROUNDS as f64;
    let rate = (ROUNDS * BATCH as usize) as f64 / elapsed.as_secs_f64();
    println!(
        "{what:<20} {:>9} finished {:>7} waiting: {per_round:>6.2} ms per reserve+complete of {BATCH}, {rate:>6.0} jobs/s",
        counts.get(JobState::Succeeded),
        counts.get(JobState::Available),
    );
    elapsed
}

/// One reserve of `BATCH` jobs and their completion.
async fn round(backend: &SqlBackend) {
    let me = WorkerInstance::new("bench", "one");
    let opts = ReserveOptions::up_to(BATCH).queues(["bench"]);
    let got = backend.reserve(&me, opts).await.expect("reserve");
    assert_eq!(got.len(), BATCH as usize, "enough waiting jobs");
    let leases: Vec<outsourced_core::Completion> =
        got.iter().map(|r| r.lease.to_ref().into()).collect();
    let results = backend
        .complete_batch(&me, &leases)
        .await
        .expect("complete");
    assert!(results.iter().all(Result::is_ok));
}

/// Doubles the finished jobs (with their history) by copying them under new ids, until there
/// are at least `target`. The first thousand are worked for real, so every copy is a row the
/// backend itself wrote.
async fn grow(backend: &SqlBackend, target: usize) {
    let me = WorkerInstance::new("bench", "grow");
    loop {
        let opts = ReserveOptions::up_to(100).queues(["bench"]);
        let got = backend.reserve(&me, opts).await.expect("reserve");
        if got.is_empty() {
            break;
        }
        let leases: Vec<outsourced_core::Completion> =
            got.iter().map(|r| r.lease.to_ref().into()).collect();
        backend
            .complete_batch(&me, &leases)
            .await
            .expect("complete");
    }
    let db = backend.connection();
    let kind = db.get_database_backend();
    loop {
        let done = scalar(backend, "SELECT COUNT(*) FROM outsourced_jobs").await;
        if done >= target as i64 {
            break;
        }
        let max = scalar(backend, "SELECT MAX(id) FROM outsourced_jobs").await;
        let (jobs, history) = (
            quoted(JOB_COLUMNS, backend.flavor()),
            quoted(HISTORY_COLUMNS, backend.flavor()),
        );
        let copy_jobs = format!(
            "INSERT INTO outsourced_jobs (id, {jobs}) SELECT id + {max}, {jobs} FROM outsourced_jobs"
        );
        let copy_history = format!(
            "INSERT INTO outsourced_job_history (job_id, {history}) \
             SELECT job_id + {max}, {history} FROM outsourced_job_history"
        );
        // The copies count as the backend counts every change: a row of the counts' ledger.
        let count_copies = format!(
            "INSERT INTO outsourced_state_deltas (queue, state, n) \
             SELECT queue, state, COUNT(*) FROM outsourced_jobs WHERE id > {max} \
             GROUP BY queue, state"
        );
        for sql in [copy_jobs, copy_history, count_copies] {
            db.execute_raw(Statement::from_string(kind, sql))
                .await
                .expect("copy rows");
        }
    }
    if backend.flavor() == Flavor::Postgres {
        let sql = "SELECT setval(pg_get_serial_sequence('outsourced_jobs', 'id'), \
                   (SELECT MAX(id) FROM outsourced_jobs))";
        db.execute_unprepared(sql)
            .await
            .expect("move the id sequence");
    }
}

const JOB_COLUMNS: &[&str] = &[
    "queue",
    "class",
    "args",
    "priority",
    "state",
    "waiting",
    "run_at",
    "attempts",
    "max_attempts",
    "max_run_time_ms",
    "backoff",
    "repeat",
    "owner_type",
    "owner_id",
    "enqueued_by",
    "cancel_requested",
    "lease_token",
    "lease_worker",
    "lease_instance",
    "lease_expires_at",
    "lease_ms",
    "seq",
    "last_error",
    "created_at",
    "updated_at",
    "finished_at",
];

const HISTORY_COLUMNS: &[&str] = &[
    "seq",
    "from_state",
    "to_state",
    "at",
    "actor",
    "attempt",
    "reason",
    "lease_token",
    "error_message",
    "error_causes",
    "error_backtrace",
];

/// The columns, quoted (`repeat` is a reserved word in MySQL).
fn quoted(columns: &[&str], flavor: Flavor) -> String {
    let quote = match flavor {
        Flavor::MariaDb | Flavor::MySql => '`',
        _ => '"',
    };
    let quoted: Vec<String> = columns
        .iter()
        .map(|c| format!("{quote}{c}{quote}"))
        .collect();
    quoted.join(", ")
}

async fn scalar(backend: &SqlBackend, sql: &str) -> i64 {
    let db = backend.connection();
    let statement = Statement::from_string(db.get_database_backend(), sql.to_owned());
    let row = db.query_one_raw(statement).await.expect("query");
    row.and_then(|row| row.try_get_by_index::<Option<i64>>(0).ok().flatten())
        .unwrap_or(0)
}

/// Fresh statistics, as the database's own maintenance would have them on a table this size.
async fn analyze(backend: &SqlBackend) {
    let sql = match backend.flavor() {
        Flavor::MariaDb | Flavor::MySql => "ANALYZE TABLE outsourced_jobs, outsourced_job_history",
        _ => "ANALYZE",
    };
    let db = backend.connection();
    let statement = Statement::from_string(db.get_database_backend(), sql.to_owned());
    db.query_all_raw(statement).await.expect("analyze");
}

/// A schema (PostgreSQL) or database (MariaDB) of the benchmark's own, dropped at the end.
struct Namespace {
    admin: outsourced_backend_sql::sea_orm::DatabaseConnection,
    drop: String,
    config: SqlConfig,
}

impl Namespace {
    async fn create(url: &str) -> Namespace {
        let admin = Database::connect(url).await.expect("reach the server");
        let name = format!("ots_bench_{}", std::process::id());
        let postgres = admin.get_database_backend() == DbBackend::Postgres;
        let (create, drop, config) = if postgres {
            let mut config = SqlConfig::new(url);
            config.schema = Some(name.clone());
            let drop = format!("DROP SCHEMA {name} CASCADE");
            (format!("CREATE SCHEMA {name}"), drop, config)
        } else {
            let base = url.rsplit_once('/').map_or(url, |(base, _)| base);
            let config = SqlConfig::new(format!("{base}/{name}"));
            let drop = format!("DROP DATABASE {name}");
            (format!("CREATE DATABASE {name}"), drop, config)
        };
        admin.execute_unprepared(&create).await.expect("create");
        Namespace {
            admin,
            drop,
            config,
        }
    }

    async fn drop_now(self) {
        self.admin
            .execute_unprepared(&self.drop)
            .await
            .expect("drop");
    }
}
