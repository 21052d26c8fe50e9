//! How a worker runs: concurrency, batches, limits, leases, idling and shutdown.

use std::time::Duration;

/// A worker's settings. Every field has a default.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerOptions {
    /// Only these queues; empty means every queue the backend lets this worker see (over
    /// HTTP: every queue the server hired it for).
    pub queues: Vec<String>,
    /// Take jobs of any class, failing those it cannot run for good (delayed_job's way);
    /// otherwise (the default) it leases only the classes it runs: those of its registry and
    /// its command handlers.
    pub catch_all: bool,
    /// Jobs run at once (4).
    pub concurrency: usize,
    /// The most jobs one reserve asks for (the free concurrency, at most this; 10).
    pub batch: u32,
    /// The longest an attempt may run (4 h, delayed_job's default); a job's own limit is
    /// capped by it. Heartbeats keep the lease alive up to this, never longer.
    pub max_run_time: Duration,
    /// The lease to ask for (30 s); heartbeats renew it every third of it.
    pub lease: Duration,
    /// How long an idle reserve long-polls before asking again (5 s).
    pub idle_wait: Duration,
    /// Inclusive priority bounds.
    pub min_priority: Option<i32>,
    /// Inclusive priority bounds.
    pub max_priority: Option<i32>,
    /// How long running jobs may finish after a shutdown signal before they are stopped and
    /// released (25 s, under the usual 30 s of a container's stop).
    pub shutdown_grace: Duration,
    /// Stop once nothing is ready and nothing runs (delayed_job's `exit_on_complete`); such a
    /// worker also stops, with the error, when the backend cannot be reached 12 times in a
    /// row (about 50 s).
    pub exit_on_complete: bool,
    /// How long a command handler being stopped (its time limit, a cancel, a shutdown) gets
    /// between SIGTERM and SIGKILL to its process group (5 s).
    pub kill_grace: Duration,
    /// Stop, with an error, after the backend refused this worker's credentials this many
    /// times in a row (5): a secret rotated or a worker locked while it runs is not fixed by
    /// waiting. (`connect` refuses credentials the server refuses before the worker starts.)
    pub max_refusals: u32,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            queues: Vec::new(),
            catch_all: false,
            concurrency: 4,
            batch: 10,
            max_run_time: Duration::from_secs(4 * 3600),
            lease: Duration::from_secs(30),
            idle_wait: Duration::from_secs(5),
            min_priority: None,
            max_priority: None,
            shutdown_grace: Duration::from_secs(25),
            exit_on_complete: false,
            kill_grace: Duration::from_secs(5),
            max_refusals: 5,
        }
    }
}

impl WorkerOptions {
    /// How often a running job's lease is renewed: a third of the lease, so that two renewals
    /// can fail before it runs out.
    pub fn heartbeat_every(&self) -> Duration {
        (self.lease / 3).max(Duration::from_millis(100))
    }
}
