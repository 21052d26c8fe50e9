//! The scenarios. Each checks its outcome before its figure counts: every job enqueued is
//! stored once, every job worked ran exactly once (one `reserved` history row each) and
//! succeeded.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use outsourced_backend_sql::sea_orm::{ConnectionTrait, Statement};
use outsourced_core::{
    Actor, Backend, BackendExt, Error, Job, JobContext, JobError, JobState, NewJob, Registry,
    Result,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::procs;
use super::rig::Rig;

/// A job that does nothing but, when it carries its enqueue time, note how long it waited.
#[derive(Serialize, Deserialize)]
struct Noop {
    /// When it was enqueued, in microseconds since the epoch (the latency scenario).
    t: Option<i64>,
}

/// The waits the latency scenario's jobs noted, in microseconds.
static WAITS: Mutex<Vec<i64>> = Mutex::new(Vec::new());

/// The waits noted so far (and forgets them).
pub(crate) fn take_waits() -> Vec<i64> {
    std::mem::take(&mut *WAITS.lock().unwrap_or_else(|p| p.into_inner()))
}

fn now_us() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

#[async_trait]
impl Job for Noop {
    const CLASS: &'static str = "Bench::Noop";

    async fn perform(&self, _ctx: &JobContext) -> Result<(), JobError> {
        if let Some(t) = self.t {
            let mut waits = WAITS.lock().unwrap_or_else(|p| p.into_inner());
            waits.push(now_us() - t);
        }
        Ok(())
    }
}

fn noop(queue: &str) -> NewJob {
    NewJob::new(Noop::CLASS, json!({})).queue(queue)
}

/// The registry of the bench's one job.
pub(crate) fn registry() -> Registry {
    let mut registry = Registry::new();
    registry.register::<Noop>();
    registry
}

fn broken(what: impl std::fmt::Display) -> Error {
    Error::invalid(format!("the bench's check failed: {what}"))
}

/// The queue holds exactly `n` jobs, all in `state`.
async fn expect_all(rig: &Rig, queue: &str, n: usize, state: JobState) -> Result<()> {
    let info = rig.sql.queue(&Actor::Admin("bench".into()), queue).await?;
    let (total, in_state) = (info.counts.total(), info.counts.get(state));
    if total != n as u64 || in_state != n as u64 {
        return Err(broken(format!(
            "{queue}: {in_state} of {total} jobs {state}, expected {n}"
        )));
    }
    Ok(())
}

/// Each of the queue's `n` jobs was reserved exactly once.
async fn expect_ran_once(rig: &Rig, queue: &str, n: usize) -> Result<()> {
    let db = rig.sql.connection();
    let sql = format!(
        "SELECT COUNT(*), COUNT(DISTINCT h.job_id) FROM outsourced_job_history h \
         JOIN outsourced_jobs j ON j.id = h.job_id \
         WHERE j.queue = '{queue}' AND h.reason = 'reserved'"
    );
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .map_err(broken)?
        .ok_or_else(|| broken("no count"))?;
    let rows: i64 = row.try_get_by_index(0).map_err(broken)?;
    let jobs: i64 = row.try_get_by_index(1).map_err(broken)?;
    if rows != n as i64 || jobs != n as i64 {
        return Err(broken(format!(
            "{queue}: {rows} reservations of {jobs} jobs, expected {n} of {n}"
        )));
    }
    Ok(())
}

/// `n` jobs enqueued one per call by `producers` concurrent producers.
pub(crate) async fn enqueue_single(rig: &Rig, n: usize, producers: usize) -> Result<Duration> {
    let queue = rig.queue("single").await?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..producers {
        let (backend, by, queue) = (rig.producer.clone(), rig.producer_actor(), queue.clone());
        let share = n / producers + usize::from(i < n % producers);
        tasks.push(tokio::spawn(async move {
            for _ in 0..share {
                backend.enqueue(&by, noop(&queue)).await?;
            }
            Ok::<(), Error>(())
        }));
    }
    for task in tasks {
        task.await.map_err(broken)??;
    }
    let elapsed = started.elapsed();
    expect_all(rig, &queue, n, JobState::Available).await?;
    Ok(elapsed)
}

/// `n` jobs enqueued in batches of `batch` by one producer.
pub(crate) async fn enqueue_batched(rig: &Rig, n: usize, batch: usize) -> Result<Duration> {
    let queue = rig.queue("batch").await?;
    let by = rig.producer_actor();
    let started = Instant::now();
    let mut left = n;
    while left > 0 {
        let size = left.min(batch);
        let jobs = (0..size).map(|_| noop(&queue)).collect();
        rig.producer.enqueue_batch(&by, jobs).await?;
        left -= size;
    }
    let elapsed = started.elapsed();
    expect_all(rig, &queue, n, JobState::Available).await?;
    Ok(elapsed)
}

/// How the workers of a scenario run.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Crew {
    pub(crate) concurrency: usize,
    pub(crate) batch: u32,
}

/// The run limits of a burn-down's queue, and how many concurrency keys its jobs are spread
/// over (round robin; none when 0).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Limited {
    pub(crate) max_running: Option<u32>,
    pub(crate) per_key: Option<u32>,
    pub(crate) keys: usize,
}

/// `n` jobs inserted beforehand (untimed), then drained by the rig's workers.
pub(crate) async fn burn_down(rig: &Rig, n: usize, crew: Crew) -> Result<Duration> {
    burn_down_limited(rig, n, crew, Limited::default()).await
}

/// A burn-down of a queue with run limits.
pub(crate) async fn burn_down_limited(
    rig: &Rig,
    n: usize,
    crew: Crew,
    limited: Limited,
) -> Result<Duration> {
    let queue = rig.queue("burn").await?;
    if limited.max_running.is_some() || limited.per_key.is_some() {
        let update = outsourced_core::QueueUpdate {
            max_running: Some(limited.max_running),
            max_running_per_key: Some(limited.per_key),
            ..Default::default()
        };
        let admin = Actor::Admin("bench".into());
        rig.sql.update_queue(&admin, &queue, update).await?;
    }
    let by = Actor::Producer("bench".into());
    for start in (0..n).step_by(5_000) {
        let jobs = (start..n.min(start + 5_000))
            .map(|i| match limited.keys {
                0 => noop(&queue),
                keys => noop(&queue).concurrency_key(format!("k{}", i % keys)),
            })
            .collect();
        rig.sql.enqueue_batch(&by, jobs).await?;
    }
    let started = Instant::now();
    rig.start(&queue, crew, true)?.finish().await?;
    let elapsed = started.elapsed();
    expect_all(rig, &queue, n, JobState::Succeeded).await?;
    expect_ran_once(rig, &queue, n).await?;
    Ok(elapsed)
}

/// What a steady load measured: the enqueue-to-start waits (microseconds, sorted) of the jobs
/// that started within a minute of the load's end, out of `sent`.
pub(crate) struct Steady {
    pub(crate) waits: Vec<i64>,
    /// How long each enqueue took to return (microseconds, sorted): the part of a wait that
    /// is the producer's call, before the job is the worker's to find.
    pub(crate) enqueues: Vec<i64>,
    pub(crate) sent: usize,
    /// Enqueues that failed (an overloaded server), and the first error.
    pub(crate) refused: usize,
    pub(crate) first_error: Option<String>,
    /// The largest peak resident memory of a worker process (KiB), on the HTTP rig.
    pub(crate) worker_peak: Option<u64>,
}

/// How many of the queue's jobs have succeeded.
async fn succeeded(rig: &Rig, queue: &str) -> Result<u64> {
    let info = rig.sql.queue(&Actor::Admin("bench".into()), queue).await?;
    Ok(info.counts.get(JobState::Succeeded))
}

/// Jobs enqueued one at a time at `rate` per second for `length`, with the rig's workers
/// waiting for them. A rate past what the rig sustains shows as jobs that had not started a
/// minute after the load ended (those are then left in their queue).
pub(crate) async fn steady(rig: &Rig, rate: u32, length: Duration, crew: Crew) -> Result<Steady> {
    let queue = rig.queue(&format!("steady{rate}")).await?;
    take_waits();
    let running = rig.start(&queue, crew, false)?;
    let (sent, refused, first_error, mut enqueues) = produce(rig, &queue, rate, length).await?;
    enqueues.sort_unstable();
    let deadline = Instant::now() + Duration::from_secs(60);
    while succeeded(rig, &queue).await? < sent as u64 && Instant::now() < deadline {
        // Polling the database, untimed: the figures are the jobs' own timestamps.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let worker_peak = running
        .pids()
        .iter()
        .filter_map(|&pid| procs::memory(pid))
        .map(|(_, peak)| peak)
        .max();
    let waits = running.stop().await?;
    if waits.len() == sent {
        expect_ran_once(rig, &queue, sent).await?;
    }
    let mut waits = waits;
    waits.sort_unstable();
    Ok(Steady {
        waits,
        enqueues,
        sent,
        refused,
        first_error,
        worker_peak,
    })
}

/// Enqueues one job at a time at `rate` per second for `length`, each in a task of its own so
/// that a slow enqueue does not delay the schedule. Returns how many were enqueued, how many
/// were refused, the first refusal, and how long each enqueue took (microseconds).
async fn produce(
    rig: &Rig,
    queue: &str,
    rate: u32,
    length: Duration,
) -> Result<(usize, usize, Option<String>, Vec<i64>)> {
    let tick = Duration::from_millis(10);
    let per_tick = f64::from(rate) / 100.0;
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let (mut owed, mut sent, mut tasks) = (0.0, 0usize, Vec::new());
    let end = Instant::now() + length;
    while Instant::now() < end {
        interval.tick().await;
        owed += per_tick;
        while owed >= 1.0 {
            owed -= 1.0;
            sent += 1;
            let (backend, by) = (rig.producer.clone(), rig.producer_actor());
            let job = NewJob::new(Noop::CLASS, json!({ "t": now_us() })).queue(queue);
            tasks.push(tokio::spawn(async move {
                let began = Instant::now();
                let done = backend.enqueue(&by, job).await;
                (done, began.elapsed().as_micros() as i64)
            }));
        }
    }
    let (mut refused, mut first_error, mut took) = (0, None, Vec::with_capacity(tasks.len()));
    for task in tasks {
        let (done, micros) = task.await.map_err(broken)?;
        took.push(micros);
        if let Err(error) = done {
            refused += 1;
            first_error.get_or_insert_with(|| error.to_string());
        }
    }
    Ok((sent - refused, refused, first_error, took))
}
