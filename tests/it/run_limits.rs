//! Run limits under concurrency, on every database: eight reservers in two backends (two
//! processes, as far as the database knows) drain a queue with a limit on running jobs and one
//! per concurrency key, or with a rate per key, and a checker reads the history's reserve and
//! end times back and proves that no instant had more running than either limit, and that no
//! key started twice within its rate's interval. And a reserve held back in one of two
//! processes is woken by an end in the other.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::join_all;
use outsourced_backend_sql::sea_orm::{ConnectionTrait, Statement};
use outsourced_backend_sql::{SqlBackend, SqlConfig};
use outsourced_core::{
    Actor, Backend, BackendExt, Clock, JobEvent, NewJob, Observer, QueueLimit, QueueUpdate, Rate,
    ReserveOptions, WorkerInstance,
};
use serde_json::json;

use crate::support::on_every_database;

on_every_database!(
    eight_reservers_never_run_more_than_the_limits,
    eight_reservers_never_run_more_than_max_running_alone,
    eight_reservers_never_run_more_than_max_running_per_key_alone,
    eight_reservers_never_start_a_key_sooner_than_its_rate,
    a_reserve_held_back_in_another_process_is_woken_by_an_end,
);

const JOBS: usize = 300;
const MAX_RUNNING: i64 = 3;
const KEYS: usize = 5;
/// The least time between two starts of one key, under the rate per key.
const KEY_INTERVAL_MS: i64 = 20;

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
    let limits = QueueUpdate {
        max_running: Some(Some(MAX_RUNNING as u32)),
        max_running_per_key: Some(Some(1)),
        ..QueueUpdate::default()
    };
    let backend = race(config, limits).await;
    let (most, most_per_key) = most_at_once(&backend).await;
    assert!(
        most <= MAX_RUNNING,
        "at one instant {most} ran (limit {MAX_RUNNING})"
    );
    assert!(
        most_per_key <= 1,
        "at one instant {most_per_key} of one key ran (limit 1)"
    );
    assert!(most > 1, "the reservers overlapped ({most} at most)");
}

/// A limit on running jobs alone: the reserves claim places side by side.
async fn eight_reservers_never_run_more_than_max_running_alone(config: SqlConfig) {
    let limits = QueueUpdate {
        max_running: Some(Some(MAX_RUNNING as u32)),
        ..QueueUpdate::default()
    };
    let backend = race(config, limits).await;
    let (most, _) = most_at_once(&backend).await;
    assert!(
        most <= MAX_RUNNING,
        "at one instant {most} ran (limit {MAX_RUNNING})"
    );
    assert!(most > 1, "the reservers overlapped ({most} at most)");
}

/// A limit per key alone: on PostgreSQL the reserves take turns per key, not on the row.
async fn eight_reservers_never_run_more_than_max_running_per_key_alone(config: SqlConfig) {
    let limits = QueueUpdate {
        max_running_per_key: Some(Some(1)),
        ..QueueUpdate::default()
    };
    let backend = race(config, limits).await;
    let (most, most_per_key) = most_at_once(&backend).await;
    assert!(
        most_per_key <= 1,
        "at one instant {most_per_key} of one key ran (limit 1)"
    );
    assert!(most > 1, "keys ran side by side ({most} at most)");
}

/// A rate per key alone: each key's clock is read and moved under the limits row's lock.
async fn eight_reservers_never_start_a_key_sooner_than_its_rate(config: SqlConfig) {
    let rate = Rate {
        starts: 1,
        per: Duration::from_millis(KEY_INTERVAL_MS as u64),
    };
    let limits = QueueUpdate {
        rate_per_key: Some(Some(rate)),
        ..QueueUpdate::default()
    };
    let backend = race(config, limits).await;
    let closest = closest_starts_of_a_key(&backend).await;
    assert!(
        closest >= KEY_INTERVAL_MS,
        "a key started twice {closest} ms apart (its rate: one per {KEY_INTERVAL_MS} ms)"
    );
    let (most, _) = most_at_once(&backend).await;
    assert!(most > 1, "keys ran side by side ({most} at most)");
}

/// Signals each reserve a limit held back.
#[derive(Debug, Default)]
struct HeldBack(tokio::sync::Notify);

impl Observer for HeldBack {
    fn observe(&self, event: JobEvent<'_>) {
        if let JobEvent::HeldBack { .. } = event {
            self.0.notify_one();
        }
    }
}

/// A job ends in one process while a reserve of its queue, held back by the queue's limit,
/// long-polls in another: the end wakes it (on PostgreSQL by `NOTIFY`, which ends send through
/// a relay; on a SQLite file by the file's commit counter). MariaDB has no wake-up between
/// processes: there the reserve looks again every `idle_recheck`, as documented.
async fn a_reserve_held_back_in_another_process_is_woken_by_an_end(config: SqlConfig) {
    let mut config = config;
    if config.url.starts_with("mysql") {
        config.idle_recheck = Duration::from_millis(200);
    }
    let open = || async {
        SqlBackend::open(config.clone())
            .await
            .expect("open the database")
    };
    let (here, there) = (open().await, open().await);
    let admin = Actor::Admin("root".into());
    let created = here.create_queue(&admin, "narrow", QueueLimit::Unlimited);
    created.await.expect("create the queue");
    let limit = QueueUpdate {
        max_running: Some(Some(1)),
        ..QueueUpdate::default()
    };
    let limited = here.update_queue(&admin, "narrow", limit);
    limited.await.expect("limit the queue");
    let producer = Actor::Producer("shop".into());
    for i in 0..2 {
        let job = NewJob::new("Narrow", json!([i])).queue("narrow");
        here.enqueue(&producer, job).await.expect("enqueue");
    }
    let me = WorkerInstance::new("w1", "here");
    let first = ReserveOptions::up_to(1).queues(["narrow"]);
    let running = here.reserve(&me, first).await.expect("reserve");
    assert_eq!(running.len(), 1);
    let held = Arc::new(HeldBack::default());
    there.set_observer(held.clone());
    let poll = tokio::spawn(async move {
        let other = WorkerInstance::new("w1", "there");
        let opts = ReserveOptions::up_to(1)
            .queues(["narrow"])
            .wait(Duration::from_secs(60));
        there.reserve(&other, opts).await
    });
    // Held back: its look is done and it waits (registered before the look).
    held.0.notified().await;
    let done = here.complete(&me, &running[0].lease.to_ref()).await;
    done.expect("complete");
    // The wait is a minute; only a wake-up (or MariaDB's recheck) ends it within 20 s.
    let woken = tokio::time::timeout(Duration::from_secs(20), poll).await;
    let got = woken
        .expect("woken by the end")
        .expect("the poll")
        .expect("reserve");
    assert_eq!(got.len(), 1, "the second job, once the first ended");
    assert_ne!(got[0].job.id, running[0].job.id);
}

/// Eight reservers drain `JOBS` jobs of `KEYS` keys from a queue with `limits`.
async fn race(config: SqlConfig, limits: QueueUpdate) -> SqlBackend {
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
    let [backend, _] = backends;
    backend
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

/// Every start (+1) and end (-1) of the queue's jobs, from the history: each attempt runs from
/// its `reserved` row to its `completed` row; with its time and its job's key.
async fn starts_and_ends(backend: &SqlBackend) -> Vec<(i64, i64, String)> {
    let db = backend.connection();
    let sql = "SELECT h.at AS at, h.reason AS reason, j.concurrency_key AS k \
               FROM outsourced_job_history h JOIN outsourced_jobs j ON j.id = h.job_id \
               WHERE j.queue = 'narrow' AND h.reason IN ('reserved', 'completed')";
    let rows = db
        .query_all_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect("read the history");
    assert_eq!(rows.len(), 2 * JOBS, "one start and one end per job");
    rows.iter()
        .map(|row| {
            let at: i64 = row.try_get("", "at").expect("at");
            let reason: String = row.try_get("", "reason").expect("reason");
            let key: String = row.try_get("", "k").expect("key");
            (at, if reason == "reserved" { 1 } else { -1 }, key)
        })
        .collect()
}

/// The least time between two starts of one key (ms).
async fn closest_starts_of_a_key(backend: &SqlBackend) -> i64 {
    let mut starts = HashMap::<String, Vec<i64>>::new();
    for (at, change, key) in starts_and_ends(backend).await {
        if change == 1 {
            starts.entry(key).or_default().push(at);
        }
    }
    let mut closest = i64::MAX;
    for times in starts.values_mut() {
        times.sort_unstable();
        for pair in times.windows(2) {
            closest = closest.min(pair[1] - pair[0]);
        }
    }
    closest
}

/// The most jobs that ran at one instant, in all and of one key, from the history.
async fn most_at_once(backend: &SqlBackend) -> (i64, i64) {
    let mut changes = starts_and_ends(backend).await;
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
