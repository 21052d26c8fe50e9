//! How the worker treats its backend: an idle worker waits in long polls instead of asking
//! again and again, and a failing backend is retried with a growing pause, not in a spin.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use outsourced_backend_sql::SqlBackend;
use outsourced_core::{
    Actor, AttachmentInfo, Backend, BackendExt, BatchId, BatchInfo, CountFilter, Download, Error,
    Failure, Heartbeat, HistoryEntry, JobFilter, JobId, JobRecord, JobState, LeaseRef, NewBatch,
    NewJob, PruneOptions, QueueInfo, QueueLimit, QueueUpdate, ReclaimOptions, ReserveOptions,
    Reserved, Result, RunLimits, StateCount, Upload, WorkerInstance,
};
use outsourced_core::{Job, JobContext, JobError, Registry};
use outsourced_worker::{Shutdown, Stage, Worker, WorkerOptions};

use crate::support::test_config;

/// A backend that counts reserve calls and can be told to fail them.
struct Counting {
    inner: Arc<dyn Backend>,
    reserves: AtomicUsize,
    failing: bool,
    /// Notified when a worker asks whether jobs are due and some are.
    due: tokio::sync::Notify,
}

fn down() -> Error {
    Error::Backend {
        backend: "test",
        message: "the database is down".into(),
        retryable: true,
        source: None,
    }
}

#[async_trait]
impl Backend for Counting {
    async fn enqueue(&self, by: &Actor, job: NewJob) -> Result<JobRecord> {
        self.inner.enqueue(by, job).await
    }
    async fn enqueue_batch(&self, by: &Actor, jobs: Vec<NewJob>) -> Result<Vec<JobId>> {
        self.inner.enqueue_batch(by, jobs).await
    }
    async fn enqueue_each(
        &self,
        by: &Actor,
        jobs: Vec<NewJob>,
    ) -> Result<Vec<outsourced_core::Enqueued>> {
        self.inner.enqueue_each(by, jobs).await
    }
    async fn reserve(&self, by: &WorkerInstance, opts: ReserveOptions) -> Result<Vec<Reserved>> {
        self.reserves.fetch_add(1, Ordering::SeqCst);
        if self.failing {
            return Err(down());
        }
        self.inner.reserve(by, opts).await
    }
    async fn any_due(&self, by: &WorkerInstance, opts: &ReserveOptions) -> Result<bool> {
        let due = self.inner.any_due(by, opts).await?;
        if due {
            self.due.notify_one();
        }
        Ok(due)
    }
    async fn heartbeat(&self, by: &WorkerInstance, lease: &LeaseRef) -> Result<Heartbeat> {
        self.inner.heartbeat(by, lease).await
    }
    async fn complete_batch(
        &self,
        by: &WorkerInstance,
        done: &[outsourced_core::Completion],
    ) -> Result<Vec<Result<()>>> {
        self.inner.complete_batch(by, done).await
    }
    async fn fail(&self, by: &WorkerInstance, lease: &LeaseRef, f: Failure) -> Result<JobState> {
        self.inner.fail(by, lease, f).await
    }
    async fn release(&self, by: &WorkerInstance, lease: &LeaseRef) -> Result<()> {
        self.inner.release(by, lease).await
    }
    async fn release_all(&self, by: &WorkerInstance) -> Result<u64> {
        self.inner.release_all(by).await
    }
    async fn reclaim_expired(&self, by: &Actor, opts: ReclaimOptions) -> Result<u64> {
        self.inner.reclaim_expired(by, opts).await
    }
    async fn job(&self, by: &Actor, id: JobId) -> Result<JobRecord> {
        self.inner.job(by, id).await
    }
    async fn history(&self, by: &Actor, id: JobId) -> Result<Vec<HistoryEntry>> {
        self.inner.history(by, id).await
    }
    async fn jobs(&self, by: &Actor, filter: JobFilter) -> Result<Vec<JobRecord>> {
        self.inner.jobs(by, filter).await
    }
    async fn counts(&self, by: &Actor, filter: CountFilter) -> Result<Vec<StateCount>> {
        self.inner.counts(by, filter).await
    }
    async fn cancel(&self, by: &Actor, id: JobId) -> Result<JobState> {
        self.inner.cancel(by, id).await
    }
    async fn retry(&self, by: &Actor, id: JobId) -> Result<JobRecord> {
        self.inner.retry(by, id).await
    }
    async fn create_queue(&self, by: &Actor, name: &str, limit: QueueLimit) -> Result<QueueInfo> {
        self.inner.create_queue(by, name, limit).await
    }
    async fn update_queue(&self, by: &Actor, name: &str, u: QueueUpdate) -> Result<QueueInfo> {
        self.inner.update_queue(by, name, u).await
    }
    async fn delete_queue(&self, by: &Actor, name: &str) -> Result<()> {
        self.inner.delete_queue(by, name).await
    }
    async fn queues(&self, by: &Actor) -> Result<Vec<QueueInfo>> {
        self.inner.queues(by).await
    }
    async fn prune(&self, by: &Actor, opts: PruneOptions) -> Result<u64> {
        self.inner.prune(by, opts).await
    }
    async fn open_batch(&self, by: &Actor, batch: NewBatch) -> Result<BatchInfo> {
        self.inner.open_batch(by, batch).await
    }
    async fn close_batch(&self, by: &Actor, id: BatchId) -> Result<BatchInfo> {
        self.inner.close_batch(by, id).await
    }
    async fn batch(&self, by: &Actor, id: BatchId) -> Result<BatchInfo> {
        self.inner.batch(by, id).await
    }
    async fn cancel_batch(&self, by: &Actor, id: BatchId) -> Result<u64> {
        self.inner.cancel_batch(by, id).await
    }
    async fn enqueue_attached(
        &self,
        by: &Actor,
        job: NewJob,
        file: Upload,
    ) -> Result<(JobRecord, bool)> {
        self.inner.enqueue_attached(by, job, file).await
    }
    async fn attach(&self, by: &Actor, id: JobId, file: Upload) -> Result<AttachmentInfo> {
        self.inner.attach(by, id, file).await
    }
    async fn attachment(&self, by: &Actor, id: JobId) -> Result<Download> {
        self.inner.attachment(by, id).await
    }
}

async fn counting(failing: bool) -> Arc<Counting> {
    let sql = SqlBackend::open(test_config("sqlite::memory:"))
        .await
        .expect("open");
    Arc::new(Counting {
        inner: Arc::new(sql),
        reserves: AtomicUsize::new(0),
        failing,
        due: tokio::sync::Notify::new(),
    })
}

/// Runs a worker for `window` of real time and returns how many reserves it made. The window
/// is the measurement itself: a rate needs time.
async fn reserves_in(backend: Arc<Counting>, window: Duration) -> usize {
    let options = WorkerOptions {
        idle_wait: Duration::from_secs(2),
        catch_all: true,
        ..WorkerOptions::default()
    };
    let worker = Worker::new(backend.clone(), "idle").options(options);
    let (trigger, shutdown) = Shutdown::manual();
    let run = tokio::spawn(async move { worker.run(shutdown).await });
    tokio::time::sleep(window).await;
    trigger.advance(Stage::Now);
    run.await.expect("join").expect("the worker stops cleanly");
    backend.reserves.load(Ordering::SeqCst)
}

#[tokio::test]
async fn an_idle_worker_long_polls_instead_of_spinning() {
    let backend = counting(false).await;
    let calls = reserves_in(backend, Duration::from_secs(3)).await;
    // One long poll of 2 s, then a second one: a couple of calls, not hundreds.
    assert!((1..=3).contains(&calls), "{calls} reserve calls in 3 s");
}

#[tokio::test]
async fn a_failing_backend_is_retried_with_a_growing_pause() {
    let backend = counting(true).await;
    let calls = reserves_in(backend, Duration::from_secs(3)).await;
    // Pauses of 0.1, 0.2, 0.4, 0.8 and 1.6 s: about six calls in 3 s, not a spin.
    assert!((4..=8).contains(&calls), "{calls} reserve calls in 3 s");
}

/// Takes about 50 s of real time: the worker's pauses between tries are the behaviour tested.
#[tokio::test]
async fn a_worker_that_stops_when_idle_gives_up_on_a_backend_it_cannot_reach() {
    let backend = counting(true).await;
    let options = WorkerOptions {
        exit_on_complete: true,
        catch_all: true,
        ..WorkerOptions::default()
    };
    let worker = Worker::new(backend.clone(), "idle").options(options);
    let run = worker.run(Shutdown::never());
    let error = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the worker gave up within 120 s")
        .expect_err("a worker that stops when idle stops when the backend stays down");
    assert!(
        error.to_string().contains("the database is down"),
        "{error}"
    );
    assert_eq!(
        backend.reserves.load(Ordering::SeqCst),
        12,
        "GIVE_UP_AFTER tries"
    );
}

/// The jobs of the test below: each says it has started, then waits to be let go.
#[derive(serde::Serialize, serde::Deserialize)]
struct Held;

/// How many `Held` jobs have started; each start notifies `START`; `GO` lets them end.
static STARTED: AtomicUsize = AtomicUsize::new(0);
static START: tokio::sync::Notify = tokio::sync::Notify::const_new();
static GO: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(0);

#[async_trait]
impl Job for Held {
    const CLASS: &'static str = "Test::Held";

    async fn perform(&self, _ctx: &JobContext) -> std::result::Result<(), JobError> {
        STARTED.fetch_add(1, Ordering::SeqCst);
        START.notify_one();
        GO.acquire().await.expect("the gate stays open").forget();
        Ok(())
    }
}

/// Waits until `n` `Held` jobs have started (a signal, not a sleep), for at most 10 s.
async fn started(n: usize) -> bool {
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        while STARTED.load(Ordering::SeqCst) < n {
            START.notified().await;
        }
    });
    waited.await.is_ok()
}

#[tokio::test]
async fn a_worker_fills_every_place_when_jobs_come_one_at_a_time() {
    let sql = SqlBackend::open(test_config("sqlite::memory:"))
        .await
        .expect("open");
    let admin = Actor::Admin("test".into());
    let queue = sql.create_queue(&admin, "trickle", QueueLimit::default());
    queue.await.expect("a queue");
    let mut registry = Registry::new();
    registry.register::<Held>();
    let options = WorkerOptions {
        concurrency: 4,
        queues: vec!["trickle".into()],
        ..WorkerOptions::default()
    };
    let backend: Arc<dyn Backend> = Arc::new(sql);
    let worker = Worker::new(backend.clone(), "trickle").registry(registry);
    let worker = worker.options(options);
    let (trigger, shutdown) = Shutdown::manual();
    let run = tokio::spawn(async move { worker.run(shutdown).await });
    // One job at a time, each enqueued once the one before has started, as a trickle of
    // enqueues or a rate's spaced starts hand them out: every place fills.
    for n in 1..=4 {
        let job = NewJob::new("Test::Held", serde_json::json!(null)).queue("trickle");
        backend.enqueue(&admin, job).await.expect("enqueued");
        assert!(
            started(n).await,
            "job {n} of 4 did not start beside the others"
        );
    }
    GO.add_permits(4);
    trigger.advance(Stage::Draining);
    let done = run.await.expect("join").expect("the worker stops cleanly");
    assert_eq!(done.succeeded, 4, "{done}");
}

/// A job that succeeds at once.
#[derive(serde::Serialize, serde::Deserialize)]
struct Quick;

#[async_trait]
impl Job for Quick {
    const CLASS: &'static str = "Test::Quick";

    async fn perform(&self, _ctx: &JobContext) -> std::result::Result<(), JobError> {
        Ok(())
    }
}

#[tokio::test]
async fn a_worker_that_stops_when_idle_waits_for_jobs_a_limit_holds_back() {
    let backend = counting(false).await;
    let admin = Actor::Admin("test".into());
    let partner = backend.create_queue(&admin, "partner", QueueLimit::default());
    partner.await.expect("a queue");
    let one_at_a_time = QueueUpdate::setting(RunLimits {
        max_running: Some(1),
        ..RunLimits::default()
    });
    let limited = backend.update_queue(&admin, "partner", one_at_a_time);
    limited.await.expect("a limit");
    for _ in 0..2 {
        let job = NewJob::new("Test::Quick", serde_json::json!(null)).queue("partner");
        backend.enqueue(&admin, job).await.expect("enqueued");
    }
    // Another worker runs one: the queue is at its limit, the other job held back.
    let other = WorkerInstance::new("other", "other-1");
    let mut held = backend
        .reserve(&other, ReserveOptions::up_to(1).queues(["partner"]))
        .await
        .expect("a reserve");
    let held = held.pop().expect("one job");
    let mut registry = Registry::new();
    registry.register::<Quick>();
    let options = WorkerOptions {
        exit_on_complete: true,
        queues: vec!["partner".into()],
        idle_wait: Duration::from_secs(60),
        ..WorkerOptions::default()
    };
    let worker = Worker::new(backend.clone(), "batch").registry(registry);
    let worker = worker.options(options);
    let mut run = tokio::spawn(async move { worker.run(Shutdown::never()).await });
    tokio::select! {
        () = backend.due.notified() => {}
        stopped = &mut run => panic!("the worker stopped while a job was held back: {stopped:?}"),
    }
    // The other worker's end makes room: the waiting worker runs the job, then stops.
    let lease = held.lease.to_ref();
    backend.complete(&other, &lease).await.expect("completed");
    let done = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("the worker stopped once nothing was due")
        .expect("join")
        .expect("the worker stops cleanly");
    assert_eq!(done.succeeded, 1, "{done}");
    let counts = backend.counts(&admin, CountFilter::default()).await;
    let counts = counts.expect("counts");
    let succeeded = counts.iter().filter(|c| c.state == JobState::Succeeded);
    assert_eq!(succeeded.map(|c| c.count).sum::<u64>(), 2);
}
