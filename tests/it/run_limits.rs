//! Run limits under concurrency, on every database: eight reservers in two backends (two
//! processes, as far as the database knows) drain a queue with a limit on running jobs and one
//! per concurrency key, and a checker reads the history's reserve and end times back and
//! proves that no instant had more running than either limit.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::join_all;
use outsourced_backend_sql::sea_orm::{ConnectionTrait, Statement};
use outsourced_backend_sql::{SqlBackend, SqlConfig};
use outsourced_core::{
    Actor, Backend, Clock, NewJob, QueueLimit, QueueUpdate, ReserveOptions, WorkerInstance,
};
use serde_json::json;

use crate::support::on_every_database;

on_every_database!(
    eight_reservers_never_run_more_than_the_limits,
    eight_reservers_never_run_more_than_max_running_alone,
);

const JOBS: usize = 300;
const MAX_RUNNING: i64 = 3;
const KEYS: usize = 5;

/// A clock that moves one millisecond at every reading: no two readings are the same instant,
/// so the history's times order every start and end.
#[derive(Debug)]
struct Ticking(AtomicI64);

impl Clock for Ticking {
    fn now(&self) -> DateTime<Utc> {
        let ms = self.0.fetch_add(1, Ordering::SeqCst);
        DateTime::from_timestamp_millis(ms).expect("a time")
    }
}

/// A limit on running jobs and one per key: the reserves take turns on the limits row.
async fn eight_reservers_never_run_more_than_the_limits(config: SqlConfig) {
    race(config, Some(1)).await;
}

/// A limit on running jobs alone: the reserves claim places side by side.
async fn eight_reservers_never_run_more_than_max_running_alone(config: SqlConfig) {
    race(config, None).await;
}

async fn race(config: SqlConfig, per_key: Option<u32>) {
    let clock = Arc::new(Ticking(AtomicI64::new(1_800_000_000_000)));
    let open = || async {
        SqlBackend::open_with_clock(config.clone(), clock.clone())
            .await
            .expect("open the database")
    };
    let backends = [open().await, open().await];
    let admin = Actor::Admin("root".into());
    let created = backends[0]
        .create_queue(&admin, "narrow", QueueLimit::Unlimited)
        .await;
    created.expect("create the queue");
    let limits = QueueUpdate {
        max_running: Some(Some(MAX_RUNNING as u32)),
        max_running_per_key: Some(per_key),
        ..QueueUpdate::default()
    };
    let updated = backends[1].update_queue(&admin, "narrow", limits).await;
    updated.expect("set the limits");
    let jobs = (0..JOBS)
        .map(|i| {
            NewJob::new("Race", json!([i]))
                .queue("narrow")
                .concurrency_key(format!("k{}", i % KEYS))
        })
        .collect();
    let producer = Actor::Producer("shop".into());
    let stored = backends[0].enqueue_batch(&producer, jobs).await;
    assert_eq!(stored.expect("enqueue").len(), JOBS);
    let done = Arc::new(AtomicUsize::new(0));
    let reservers = (0..8).map(|n| {
        let me = WorkerInstance::new(format!("w{}", n % 3), format!("i{n}"));
        tokio::spawn(drain(backends[n % 2].clone(), me, done.clone()))
    });
    for reserver in join_all(reservers).await {
        reserver.expect("a reserver panicked");
    }
    assert_eq!(done.load(Ordering::SeqCst), JOBS);
    let (most, most_per_key) = most_at_once(&backends[0]).await;
    assert!(
        most <= MAX_RUNNING,
        "at one instant {most} ran (limit {MAX_RUNNING})"
    );
    if let Some(per_key) = per_key {
        assert!(
            most_per_key <= i64::from(per_key),
            "at one instant {most_per_key} of one key ran (limit {per_key})"
        );
    }
    assert!(most > 1, "the reservers overlapped ({most} at most)");
}

/// Reserves up to five and completes them, until every job has been completed by someone.
async fn drain(backend: SqlBackend, me: WorkerInstance, done: Arc<AtomicUsize>) {
    while done.load(Ordering::SeqCst) < JOBS {
        // Held back by a limit, a reserve waits for an end to wake it (at most a moment).
        let mut opts = ReserveOptions::up_to(5)
            .queues(["narrow"])
            .wait(Duration::from_millis(100));
        // Every clock reading is a millisecond: no lease may run out on its own.
        opts.lease = Some(Duration::from_secs(3600));
        let batch = backend.reserve(&me, opts).await.expect("reserve");
        let leases: Vec<outsourced_core::Completion> =
            batch.iter().map(|r| r.lease.to_ref().into()).collect();
        let results = backend
            .complete_batch(&me, &leases)
            .await
            .expect("complete");
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        done.fetch_add(batch.len(), Ordering::SeqCst);
    }
}

/// The most jobs that ran at one instant, in all and of one key, from the history: each
/// attempt runs from its `reserved` row to its `completed` row.
async fn most_at_once(backend: &SqlBackend) -> (i64, i64) {
    let db = backend.connection();
    let sql = "SELECT h.at AS at, h.reason AS reason, j.concurrency_key AS k \
               FROM outsourced_job_history h JOIN outsourced_jobs j ON j.id = h.job_id \
               WHERE j.queue = 'narrow' AND h.reason IN ('reserved', 'completed')";
    let rows = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect("read the history");
    assert_eq!(rows.len(), 2 * JOBS, "one start and one end per job");
    let mut changes: Vec<(i64, i64, String)> = rows
        .iter()
        .map(|row| {
            let at: i64 = row.try_get("", "at").expect("at");
            let reason: String = row.try_get("", "reason").expect("reason");
            let key: String = row.try_get("", "k").expect("key");
            (at, if reason == "reserved" { 1 } else { -1 }, key)
        })
        .collect();
    // Ends first where an end and a start share an instant (the clock makes that rare): a
    // start that waited for an end is dated after it.
    changes.sort_by_key(|(at, change, _)| (*at, *change));
    let (mut running, mut most) = (0, 0);
    let mut per_key = HashMap::<String, i64>::new();
    let mut most_per_key = 0;
    for (_, change, key) in changes {
        running += change;
        most = most.max(running);
        let of_key = per_key.entry(key).or_default();
        *of_key += change;
        most_per_key = most_per_key.max(*of_key);
    }
    (most, most_per_key)
}
