//! Proof under concurrency, on every database (a SQLite file, PostgreSQL, MariaDB): reservers
//! racing for one table lease each job once, producers racing into a bounded queue never take
//! it past its limit (and those sharing a group commit are refused one by one), reclaimers racing over the same expired leases reclaim each once, and a
//! reclaimer that lost a race to a completion changes nothing.
//!
//! Every race runs across two backends on one database, as two processes would: each has its
//! own connections (and, on SQLite, its own writer).

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use outsourced_backend_sql::sea_orm::{ConnectionTrait, Statement};
use outsourced_backend_sql::{SqlBackend, SqlConfig, testing};
use outsourced_core::{
    Actor, Backend, BackendExt, Error, JobId, JobState, NewJob, QueueLimit, Reason, ReclaimOptions,
    ReserveOptions, TestClock, WorkerInstance,
};
use serde_json::json;

use crate::support::on_every_database;

on_every_database!(
    eight_reservers_lease_and_complete_each_of_5000_jobs_once,
    thirty_two_producers_fill_a_queue_of_fifty_exactly,
    enqueues_sharing_a_commit_are_refused_one_by_one,
    two_reclaimers_reclaim_each_expired_lease_once,
    a_job_completed_after_a_reclaimer_read_it_stays_completed,
    four_backends_opened_at_once_on_an_empty_database_all_start,
);

/// Two backends on one database sharing `clock`: two processes, as far as the database knows.
async fn two_backends(config: &SqlConfig, clock: &Arc<TestClock>) -> [SqlBackend; 2] {
    let open = || async {
        SqlBackend::open_with_clock(config.clone(), clock.clone())
            .await
            .expect("open the database")
    };
    [open().await, open().await]
}

fn admin() -> Actor {
    Actor::Admin("root".into())
}

async fn create_queue(backend: &SqlBackend, name: &str, limit: QueueLimit) {
    let created = backend.create_queue(&admin(), name, limit).await;
    created.expect("create the queue");
}

fn producer() -> Actor {
    Actor::Producer("shop".into())
}

/// Enqueues `n` jobs on `queue` in batches; returns their ids.
async fn enqueue(backend: &SqlBackend, queue: &str, n: usize) -> Vec<JobId> {
    let mut ids = Vec::with_capacity(n);
    while ids.len() < n {
        let batch = (ids.len()..n.min(ids.len() + 500))
            .map(|i| NewJob::new("Race", json!([i])).queue(queue))
            .collect();
        ids.extend(
            backend
                .enqueue_batch(&producer(), batch)
                .await
                .expect("enqueue"),
        );
    }
    ids
}

/// How many history rows have `reason`, and for how many distinct jobs.
async fn history_rows(backend: &SqlBackend, reason: Reason) -> (i64, i64) {
    let db = backend.connection();
    let sql = format!(
        "SELECT COUNT(*) AS n, COUNT(DISTINCT job_id) AS jobs FROM outsourced_job_history \
         WHERE reason = '{reason}'"
    );
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .expect("count history rows")
        .expect("a row");
    let n: i64 = row.try_get("", "n").expect("n");
    let jobs: i64 = row.try_get("", "jobs").expect("jobs");
    (n, jobs)
}

/// Reserves batches of 10 and completes them until a reserve comes back empty; returns the
/// ids it completed.
async fn drain(backend: SqlBackend, me: WorkerInstance) -> Vec<JobId> {
    let mut done = Vec::new();
    loop {
        let opts = ReserveOptions::up_to(10).queues(["bulk"]);
        let batch = backend.reserve(&me, opts).await.expect("reserve");
        if batch.is_empty() {
            return done;
        }
        let leases: Vec<outsourced_core::Completion> =
            batch.iter().map(|r| r.lease.to_ref().into()).collect();
        let results = backend
            .complete_batch(&me, &leases)
            .await
            .expect("complete");
        assert!(results.iter().all(Result::is_ok), "{results:?}");
        done.extend(batch.iter().map(|r| r.job.id));
    }
}

async fn eight_reservers_lease_and_complete_each_of_5000_jobs_once(config: SqlConfig) {
    let clock = Arc::new(TestClock::new());
    let backends = two_backends(&config, &clock).await;
    // Full to the last slot, so that the slots the completions give back are counted too.
    create_queue(&backends[0], "bulk", QueueLimit::Max(5000)).await;
    let mut enqueued = enqueue(&backends[0], "bulk", 5000).await;
    let reservers = (0..8).map(|n| {
        let me = WorkerInstance::new(format!("w{}", n % 3), format!("i{n}"));
        tokio::spawn(drain(backends[n % 2].clone(), me))
    });
    let mut completed: Vec<JobId> = join_all(reservers)
        .await
        .into_iter()
        .flat_map(|r| r.expect("a reserver panicked"))
        .collect();
    completed.sort();
    enqueued.sort();
    assert_eq!(completed.len(), 5000, "completions reported");
    assert_eq!(
        completed, enqueued,
        "each job completed by exactly one reserver"
    );
    let info = backends[1]
        .queue(&admin(), "bulk")
        .await
        .expect("the queue");
    assert_eq!(
        (info.counts.get(JobState::Succeeded), info.counts.total()),
        (5000, 5000)
    );
    assert_eq!(
        history_rows(&backends[0], Reason::Reserved).await,
        (5000, 5000)
    );
    assert_eq!(
        history_rows(&backends[0], Reason::Completed).await,
        (5000, 5000)
    );
    // Every slot came back exactly once, from completions that ended concurrently: the queue
    // takes 5000 jobs again, and not one more.
    enqueue(&backends[1], "bulk", 5000).await;
    let over = NewJob::new("Race", json!([])).queue("bulk");
    let over = backends[0].enqueue(&producer(), over).await;
    assert!(
        matches!(&over, Err(Error::QueueFull { limit: 5000, .. })),
        "{over:?}"
    );
    let agree = outsourced_backend_sql::testing::counts_agree(&backends[1]).await;
    agree.expect("the kept counts are the jobs table's, after it all");
}

async fn thirty_two_producers_fill_a_queue_of_fifty_exactly(config: SqlConfig) {
    let clock = Arc::new(TestClock::new());
    let backends = two_backends(&config, &clock).await;
    create_queue(&backends[0], "narrow", QueueLimit::Max(50)).await;
    // Each producer tries four times: 128 attempts race for 50 slots.
    let producers = (0..32).map(|p| {
        let backend = backends[p % 2].clone();
        tokio::spawn(async move {
            let mut results = Vec::new();
            for i in 0..4 {
                let job = NewJob::new("Race", json!([p, i])).queue("narrow");
                results.push(
                    backend
                        .enqueue(&Actor::Producer(format!("p{p}")), job)
                        .await,
                );
            }
            results
        })
    });
    let results: Vec<_> = join_all(producers)
        .await
        .into_iter()
        .flat_map(|r| r.expect("a producer panicked"))
        .collect();
    let accepted = results.iter().filter(|r| r.is_ok()).count();
    let full = results
        .iter()
        .filter(|r| matches!(r, Err(Error::QueueFull { queue, limit: 50 }) if queue == "narrow"))
        .count();
    assert_eq!((accepted, full), (50, 78), "{results:?}");
    let info = backends[1]
        .queue(&admin(), "narrow")
        .await
        .expect("the queue");
    assert_eq!((info.counts.total(), info.counts.live()), (50, 50));
}

/// Concurrent enqueues are written together (a group commit); each is still all or none and
/// refused on its own: a full queue refuses some singles and the batches that need it, and a
/// refused batch leaves nothing in the other queue it named.
async fn enqueues_sharing_a_commit_are_refused_one_by_one(config: SqlConfig) {
    let clock = Arc::new(TestClock::new());
    let [backend, _] = two_backends(&config, &clock).await;
    create_queue(&backend, "tight", QueueLimit::Max(5)).await;
    // Room for every job the race sends it, and not one more. Its name comes first, so that a
    // batch takes its slot here before it is refused by the tight queue, and must give it back.
    create_queue(&backend, "roomy", QueueLimit::Max(40)).await;
    let start = Arc::new(tokio::sync::Barrier::new(60));
    let calls = (0..60).map(|i| {
        let (backend, start) = (backend.clone(), start.clone());
        tokio::spawn(async move {
            let job = |queue: &str| NewJob::new("Mixed", json!([i])).queue(queue);
            start.wait().await;
            match i % 3 {
                0 => backend.enqueue(&producer(), job("tight")).await.map(|_| 1),
                1 => backend.enqueue(&producer(), job("roomy")).await.map(|_| 1),
                _ => {
                    let batch = vec![job("roomy"), job("tight")];
                    backend
                        .enqueue_batch(&producer(), batch)
                        .await
                        .map(|ids| ids.len())
                }
            }
        })
    });
    let results: Vec<_> = join_all(calls)
        .await
        .into_iter()
        .map(|r| r.expect("a producer panicked"))
        .collect();
    let accepted = |kind: usize| {
        let of_kind = results.iter().enumerate().filter(|(i, _)| i % 3 == kind);
        of_kind.filter(|(_, r)| r.is_ok()).count() as u64
    };
    for (i, result) in results.iter().enumerate() {
        match result {
            Ok(n) => assert_eq!(*n, if i % 3 == 2 { 2 } else { 1 }),
            Err(Error::QueueFull { queue, limit: 5 }) => {
                assert!(i % 3 != 1 && queue == "tight", "{i}: {result:?}")
            }
            Err(other) => panic!("{i}: {other}"),
        }
    }
    let (singles, batches) = (accepted(0), accepted(2));
    assert_eq!(singles + batches, 5, "the tight queue filled exactly");
    assert_eq!(accepted(1), 20, "the roomy queue refuses nothing");
    let total = |queue: &'static str| {
        let backend = backend.clone();
        async move {
            backend
                .queue(&admin(), queue)
                .await
                .expect("the queue")
                .counts
                .total()
        }
    };
    assert_eq!(total("tight").await, 5);
    let roomy = total("roomy").await;
    assert_eq!(
        roomy,
        20 + batches,
        "a refused batch leaves no job elsewhere"
    );
    // Nor a slot: the rest of the roomy queue's room is there, to the last job.
    let room = (0..40 - roomy).map(|_| NewJob::new("Fill", json!([])).queue("roomy"));
    let filled = backend.enqueue_batch(&producer(), room.collect()).await;
    assert_eq!(
        filled.expect("the rest of the room").len() as u64,
        40 - roomy
    );
    let one_more = NewJob::new("Fill", json!([])).queue("roomy");
    let over = backend.enqueue(&producer(), one_more).await;
    assert!(matches!(over, Err(Error::QueueFull { .. })), "{over:?}");
}

async fn two_reclaimers_reclaim_each_expired_lease_once(config: SqlConfig) {
    let clock = Arc::new(TestClock::new());
    let backends = two_backends(&config, &clock).await;
    let lease = config.lease;
    create_queue(&backends[0], "bulk", QueueLimit::Unlimited).await;
    enqueue(&backends[0], "bulk", 300).await;
    let me = WorkerInstance::new("w1", "crashes");
    let mut leased = 0;
    while leased < 300 {
        let opts = ReserveOptions::up_to(100).queues(["bulk"]);
        let batch = backends[0].reserve(&me, opts).await.expect("reserve");
        assert!(!batch.is_empty(), "300 jobs to lease");
        leased += batch.len();
    }
    clock.advance(lease + Duration::from_secs(1));
    // Small passes, so that the two reclaimers interleave many times.
    let reclaimers = backends.iter().map(|backend| {
        let backend = backend.clone();
        tokio::spawn(async move {
            let mut reclaimed = 0;
            loop {
                let opts = ReclaimOptions { limit: 7 };
                match backend.reclaim_expired(&Actor::Reaper, opts).await {
                    Ok(0) => return reclaimed,
                    Ok(n) => reclaimed += n,
                    Err(error) => panic!("reclaim failed: {error}"),
                }
            }
        })
    });
    let reclaimed: u64 = join_all(reclaimers)
        .await
        .into_iter()
        .map(|r| r.expect("a reclaimer panicked"))
        .sum();
    assert_eq!(reclaimed, 300, "reported reclaims");
    assert_eq!(
        history_rows(&backends[0], Reason::LeaseExpired).await,
        (300, 300)
    );
    let info = backends[1]
        .queue(&admin(), "bulk")
        .await
        .expect("the queue");
    assert_eq!(
        (info.counts.get(JobState::Retrying), info.counts.total()),
        (300, 300)
    );
}

async fn a_job_completed_after_a_reclaimer_read_it_stays_completed(config: SqlConfig) {
    let clock = Arc::new(TestClock::new());
    let [backend, _] = two_backends(&config, &clock).await;
    let job = backend
        .enqueue(&producer(), NewJob::new("Race", json!([])))
        .await
        .expect("enqueue");
    let me = WorkerInstance::new("w1", "slow");
    let reserved = backend
        .reserve(&me, ReserveOptions::up_to(1))
        .await
        .expect("reserve");
    let lease = reserved.first().expect("the job").lease.to_ref();
    clock.advance(config.lease + Duration::from_secs(1));
    // The completion lands after the reclaimer read the expired job, before it writes.
    let completion = async {
        backend
            .complete(&me, &lease)
            .await
            .expect("a late but valid completion");
    };
    let applied = testing::reclaim_after(&backend, job.id, completion)
        .await
        .expect("the reclaim runs");
    assert!(!applied, "the stale reclaim must not apply");
    let after = backend.job(&admin(), job.id).await.expect("the job");
    assert_eq!(after.state, JobState::Succeeded);
    let history = backend.history(&admin(), job.id).await.expect("history");
    let reasons: Vec<Reason> = history.iter().map(|r| r.reason).collect();
    assert_eq!(
        reasons,
        [Reason::Enqueued, Reason::Reserved, Reason::Completed]
    );
    let info = backend
        .queue(&admin(), outsourced_core::DEFAULT_QUEUE)
        .await;
    assert_eq!(
        info.expect("the queue").counts.live(),
        0,
        "its slot freed once"
    );
}

/// Servers started at once on an empty database: each opens (and migrates) without error, and
/// the schema they share works.
async fn four_backends_opened_at_once_on_an_empty_database_all_start(config: SqlConfig) {
    let clock = Arc::new(TestClock::new());
    let opens = (0..4).map(|_| SqlBackend::open_with_clock(config.clone(), clock.clone()));
    let backends: Vec<SqlBackend> = join_all(opens)
        .await
        .into_iter()
        .map(|opened| opened.expect("every process starts"))
        .collect();
    let job = backends[0]
        .enqueue(&producer(), NewJob::new("Race", json!([])))
        .await
        .expect("enqueue");
    let seen = backends[3].job(&admin(), job.id).await.expect("the job");
    assert_eq!(seen.state, JobState::Available);
}
