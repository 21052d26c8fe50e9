//! The harness: the backend as seen by a producer, by worker instances and by an admin, plus
//! the clock the backend reads. On the SQL backend they are one object; over HTTP each is a
//! client with its own credentials.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::json;

use crate::{
    Actor, Backend, BackendExt, ErrorInfo, Failure, Heartbeat, HistoryEntry, JobId, JobRecord,
    JobState, NewJob, QueueLimit, ReserveOptions, Reserved, Result, RetryPlan, TestClock,
    WorkerInstance,
};

/// Called after the harness creates a queue, with its name, so that a backend can wire up
/// access to it (over HTTP: hire the workers and grant the producer).
pub type QueueHook = Arc<dyn Fn(String) -> BoxFuture<'static, ()> + Send + Sync>;

/// A backend's own invariant, checked after each scenario that passed (a SQL backend's kept
/// counts agree with its jobs): `Err` says what does not hold, and fails the scenario.
pub type Invariant = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// A caller that is not a worker: the backend it calls and who it is.
#[derive(Clone)]
pub struct Client {
    /// The backend as this caller sees it.
    pub backend: Arc<dyn Backend>,
    /// Who it is.
    pub actor: Actor,
}

/// A worker instance: the backend it calls and its identity.
#[derive(Clone)]
pub struct WorkerClient {
    /// The backend as this worker sees it.
    pub backend: Arc<dyn Backend>,
    /// Its worker name and instance id.
    pub id: WorkerInstance,
}

/// Everything a scenario needs. Cheap to clone.
#[derive(Clone)]
pub struct Harness {
    /// A producer, allowed to enqueue into every queue the harness creates.
    pub producer: Client,
    /// At least three worker instances, hired for every queue the harness creates: the first
    /// two are different workers, the third is another instance of the first worker.
    pub workers: Vec<WorkerClient>,
    /// An admin.
    pub admin: Client,
    /// The clock the backend reads.
    pub clock: Arc<TestClock>,
    /// The lease a reserve grants when it asks for none.
    pub lease: Duration,
    /// Called after each queue the harness creates.
    pub on_queue: Option<QueueHook>,
    /// Checked after each scenario that passed.
    pub invariant: Option<Invariant>,
    next_queue: Arc<AtomicU32>,
    /// Whatever must live as long as the harness (a server, a temporary directory).
    kept: Vec<Arc<dyn std::any::Any + Send + Sync>>,
}

impl Harness {
    /// A harness over the given callers; `lease` is the backend's default lease.
    pub fn new(
        producer: Client,
        workers: Vec<WorkerClient>,
        admin: Client,
        clock: Arc<TestClock>,
        lease: Duration,
    ) -> Self {
        assert!(
            workers.len() >= 3,
            "the harness needs three worker instances"
        );
        Harness {
            producer,
            workers,
            admin,
            clock,
            lease,
            on_queue: None,
            invariant: None,
            next_queue: Arc::new(AtomicU32::new(0)),
            kept: Vec::new(),
        }
    }

    /// Keeps `thing` alive as long as the harness (and its clones) live.
    pub fn keep(mut self, thing: impl std::any::Any + Send + Sync) -> Self {
        self.kept.push(Arc::new(thing));
        self
    }

    /// Sets the backend's invariant, checked after each scenario that passed.
    pub fn with_invariant(mut self, invariant: Invariant) -> Self {
        self.invariant = Some(invariant);
        self
    }

    /// Sets the hook called after each queue the harness creates.
    pub fn with_queue_hook(mut self, hook: QueueHook) -> Self {
        self.on_queue = Some(hook);
        self
    }

    /// Worker instance `i`.
    pub fn w(&self, i: usize) -> &WorkerClient {
        &self.workers[i]
    }

    /// Creates a fresh queue with `limit` and returns its name.
    pub async fn queue_with(&self, limit: QueueLimit) -> String {
        let n = self.next_queue.fetch_add(1, Ordering::Relaxed);
        let name = format!("q{n}");
        let created = self
            .admin
            .backend
            .create_queue(&self.admin.actor, &name, limit)
            .await;
        ok(created, "create a queue");
        if let Some(hook) = &self.on_queue {
            hook(name.clone()).await;
        }
        name
    }

    /// Creates a fresh queue with the default limit.
    pub async fn queue(&self) -> String {
        self.queue_with(QueueLimit::default()).await
    }

    /// Enqueues `job` as the producer.
    pub async fn enqueue(&self, job: NewJob) -> JobRecord {
        ok(self.try_enqueue(job).await, "enqueue")
    }

    /// Enqueues `job` as the producer, returning the outcome.
    pub async fn try_enqueue(&self, job: NewJob) -> Result<JobRecord> {
        self.producer
            .backend
            .enqueue(&self.producer.actor, job)
            .await
    }

    /// Enqueues a job of class `Noop` with no arguments into `queue`.
    pub async fn enqueue_in(&self, queue: &str) -> JobRecord {
        self.enqueue(noop().queue(queue)).await
    }

    /// A job, as the admin sees it.
    pub async fn job(&self, id: JobId) -> JobRecord {
        ok(
            self.admin.backend.job(&self.admin.actor, id).await,
            "look up a job",
        )
    }

    /// A job's state.
    pub async fn state(&self, id: JobId) -> JobState {
        self.job(id).await.state
    }

    /// A job's history.
    pub async fn history(&self, id: JobId) -> Vec<HistoryEntry> {
        ok(
            self.admin.backend.history(&self.admin.actor, id).await,
            "read a history",
        )
    }

    /// Live jobs in a queue.
    pub async fn live(&self, queue: &str) -> u64 {
        let info = self.admin.backend.queue(&self.admin.actor, queue).await;
        ok(info, "look up a queue").counts.live()
    }

    /// Moves the backend's clock forward.
    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }

    /// The backend's current time.
    pub fn now(&self) -> chrono::DateTime<chrono::Utc> {
        use crate::Clock;
        self.clock.now()
    }
}

impl WorkerClient {
    /// Reserves with `opts`.
    pub async fn reserve(&self, opts: ReserveOptions) -> Vec<Reserved> {
        ok(self.backend.reserve(&self.id, opts).await, "reserve")
    }

    /// Reserves one job from `queues` (every queue when empty), which must be there.
    pub async fn reserve_one(&self, queues: &[&str]) -> Reserved {
        let mut jobs = self
            .reserve(ReserveOptions::up_to(1).queues(queues.iter().copied()))
            .await;
        assert_eq!(jobs.len(), 1, "expected one job to reserve from {queues:?}");
        jobs.remove(0)
    }

    /// Reserves from `queues` and expects nothing.
    pub async fn reserve_none(&self, queues: &[&str]) {
        let jobs = self
            .reserve(ReserveOptions::up_to(10).queues(queues.iter().copied()))
            .await;
        let ids: Vec<_> = jobs.iter().map(|r| r.job.id).collect();
        assert!(
            ids.is_empty(),
            "expected nothing to reserve from {queues:?}, got {ids:?}"
        );
    }

    /// Completes a reserved job.
    pub async fn complete(&self, job: &Reserved) -> Result<()> {
        self.backend.complete(&self.id, &job.lease.to_ref()).await
    }

    /// Fails a reserved job with `message` and `retry`.
    pub async fn fail(&self, job: &Reserved, message: &str, retry: RetryPlan) -> Result<JobState> {
        let failure = Failure {
            error: ErrorInfo {
                message: message.to_owned(),
                causes: vec!["the cause".to_owned()],
                backtrace: Some("at perform (job.rs:1)".to_owned()),
            },
            retry,
        };
        self.backend
            .fail(&self.id, &job.lease.to_ref(), failure)
            .await
    }

    /// Releases a reserved job.
    pub async fn release(&self, job: &Reserved) -> Result<()> {
        self.backend.release(&self.id, &job.lease.to_ref()).await
    }

    /// Renews a reserved job's lease.
    pub async fn heartbeat(&self, job: &Reserved) -> Result<Heartbeat> {
        self.backend.heartbeat(&self.id, &job.lease.to_ref()).await
    }
}

/// A job of class `Noop` with no arguments, in the default queue.
pub fn noop() -> NewJob {
    NewJob::new("Noop", json!([]))
}

/// The value of a successful call, or a panic that says which call failed and how.
pub fn ok<T, E: Debug>(result: std::result::Result<T, E>, what: &str) -> T {
    match result {
        Ok(value) => value,
        Err(error) => panic!("could not {what}: {error:?}"),
    }
}
