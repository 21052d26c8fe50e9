//! The worker loop: reserve in batches up to the free concurrency, run each job in a task,
//! long-poll when idle, back off when the backend fails, and drain on shutdown.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use outsourced_core::{
    AnyJob, Backend, Error, JobRecord, Registry, ReserveOptions, Reserved, Result, WorkerInstance,
};
use tokio::task::JoinSet;

use crate::command::{CommandJob, CommandSpec};
use crate::execute::{Outcome, execute};
use crate::options::WorkerOptions;
use crate::report::Reporter;
use crate::shutdown::{Shutdown, Stage};

/// What a run did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkOff {
    /// Jobs that completed.
    pub succeeded: usize,
    /// Jobs that failed (retried later or for good), timeouts and panics included.
    pub failed: usize,
    /// Jobs given back (cancelled while running, stopped by a shutdown) or whose lease was lost.
    pub abandoned: usize,
}

impl WorkOff {
    fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Succeeded => self.succeeded += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::Released | Outcome::Lost => self.abandoned += 1,
        }
    }
}

/// A worker process: its identity, its backend, the jobs it knows how to run, and its options.
#[derive(Clone)]
pub struct Worker {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) backend: Arc<dyn Backend>,
    pub(crate) id: WorkerInstance,
    pub(crate) registry: Registry,
    pub(crate) commands: BTreeMap<String, Arc<CommandSpec>>,
    pub(crate) options: WorkerOptions,
}

impl Worker {
    /// A worker named `name` (its credentials' name) with an instance id of its own, with the
    /// default options and no job types yet.
    pub fn new(backend: Arc<dyn Backend>, name: impl Into<String>) -> Self {
        let id = WorkerInstance::new(name, instance_id());
        Worker {
            inner: Arc::new(Inner {
                backend,
                id,
                registry: Registry::new(),
                commands: BTreeMap::new(),
                options: WorkerOptions::default(),
            }),
        }
    }

    fn edit(mut self, f: impl FnOnce(&mut Inner)) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            f(inner);
            return self;
        }
        let old = &self.inner;
        let mut inner = Inner {
            backend: old.backend.clone(),
            id: old.id.clone(),
            registry: old.registry.clone(),
            commands: old.commands.clone(),
            options: old.options.clone(),
        };
        f(&mut inner);
        Worker {
            inner: Arc::new(inner),
        }
    }

    /// Sets the options.
    pub fn options(self, options: WorkerOptions) -> Self {
        self.edit(|inner| inner.options = options)
    }

    /// Sets the Rust job types it runs.
    pub fn registry(self, registry: Registry) -> Self {
        self.edit(|inner| inner.registry = registry)
    }

    /// Sets the command handlers, by class; a class in the registry takes precedence.
    pub fn commands(self, commands: BTreeMap<String, CommandSpec>) -> Self {
        let commands = commands
            .into_iter()
            .map(|(k, v)| (k, Arc::new(v)))
            .collect();
        self.edit(|inner| inner.commands = commands)
    }

    /// Sets the instance id (by default the host name, the process id and a random suffix).
    pub fn instance(self, instance: impl Into<String>) -> Self {
        let instance = instance.into();
        self.edit(|inner| inner.id.instance = instance)
    }

    /// Who this worker is.
    pub fn id(&self) -> &WorkerInstance {
        &self.inner.id
    }

    /// Runs at most `n` jobs that are ready now, then returns what happened (delayed_job's
    /// `work_off`). Leaves nothing leased.
    pub async fn work_off(&self, n: usize) -> Result<WorkOff> {
        self.run_loop(Shutdown::never(), Some(n), true).await
    }

    /// Runs until `shutdown` (or, with `exit_on_complete`, until nothing is ready and nothing
    /// runs), then drains: running jobs may finish within the grace period, the rest are
    /// released so that others get them at once.
    pub async fn run(&self, shutdown: Shutdown) -> Result<WorkOff> {
        let exit = self.inner.options.exit_on_complete;
        self.run_loop(shutdown, None, exit).await
    }

    async fn run_loop(
        &self,
        mut shutdown: Shutdown,
        limit: Option<usize>,
        exit_when_idle: bool,
    ) -> Result<WorkOff> {
        let options = &self.inner.options;
        tracing::info!(worker = %self.inner.id, queues = ?options.queues, "Starting job worker");
        let mut tasks = JoinSet::new();
        let reporter = Reporter::start(self.inner.backend.clone(), self.inner.id.clone());
        let mut tally = WorkOff::default();
        let mut started = 0usize;
        let mut pause = Pause::new();
        while shutdown.stage() == Stage::Running {
            while let Some(done) = tasks.try_join_next() {
                tally.add(done.unwrap_or(Outcome::Lost));
            }
            let left = limit.map_or(usize::MAX, |n| n - started.min(n));
            let room = options.concurrency.saturating_sub(tasks.len());
            let wanted = room.min(options.batch as usize).min(left);
            // While jobs run, wait until a useful batch fits rather than reserving one job
            // per finished job: fewer, larger claims.
            let worth_it = (options.concurrency / 2)
                .clamp(1, options.batch as usize)
                .min(left);
            if wanted == 0 || (!tasks.is_empty() && wanted < worth_it) {
                if tasks.is_empty() {
                    break;
                }
                tokio::select! {
                    Some(done) = tasks.join_next() => tally.add(done.unwrap_or(Outcome::Lost)),
                    _ = shutdown.reached(Stage::Draining) => {}
                }
                continue;
            }
            // A worker with room waits for work in a long poll, busy or not, so that a job
            // enqueued now starts now; the jobs it runs meanwhile report on their own.
            let wait = (!exit_when_idle).then_some(options.idle_wait);
            // A shutdown ends a long poll at once. Should the reserve have claimed jobs just
            // before it was dropped, the drain's release of everything this instance holds
            // gives them back.
            let reserving = tokio::select! {
                reserved = self.reserve(wanted, wait) => reserved,
                _ = shutdown.reached(Stage::Draining) => break,
            };
            let reserved = match reserving {
                Ok(reserved) => reserved,
                Err(error) => {
                    let wait = pause.next();
                    tracing::error!(%error, retry_in = ?wait, "Error while reserving jobs");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.reached(Stage::Draining) => {}
                    }
                    continue;
                }
            };
            pause.reset();
            if reserved.is_empty() {
                if !exit_when_idle {
                    // The long poll ended empty: poll again.
                    continue;
                }
                if tasks.is_empty() {
                    break;
                }
                // Nothing ready and no waiting: look again when a job ends.
                tokio::select! {
                    Some(done) = tasks.join_next() => tally.add(done.unwrap_or(Outcome::Lost)),
                    _ = shutdown.reached(Stage::Draining) => {}
                }
                continue;
            }
            started += reserved.len();
            for job in reserved {
                tasks.spawn(execute(self.inner.clone(), reporter.clone(), job));
            }
        }
        self.drain(tasks, shutdown, &mut tally).await;
        tracing::info!(worker = %self.inner.id, ?tally, "Worker stopped");
        Ok(tally)
    }

    async fn reserve(&self, limit: usize, wait: Option<Duration>) -> Result<Vec<Reserved>> {
        let options = &self.inner.options;
        let opts = ReserveOptions {
            limit: u32::try_from(limit).unwrap_or(u32::MAX),
            queues: options.queues.clone(),
            min_priority: options.min_priority,
            max_priority: options.max_priority,
            wait,
            lease: Some(options.lease),
        };
        self.inner.backend.reserve(&self.inner.id, opts).await
    }

    /// Lets running jobs finish within the grace period (or until a second signal), stops the
    /// rest, and releases everything this instance still holds.
    async fn drain(
        &self,
        mut tasks: JoinSet<Outcome>,
        mut shutdown: Shutdown,
        tally: &mut WorkOff,
    ) {
        if !tasks.is_empty() {
            tracing::info!(running = tasks.len(), "Waiting for running jobs to finish");
            let grace = tokio::time::sleep(self.inner.options.shutdown_grace);
            tokio::pin!(grace);
            loop {
                tokio::select! {
                    done = tasks.join_next() => match done {
                        Some(done) => tally.add(done.unwrap_or(Outcome::Lost)),
                        None => break,
                    },
                    _ = &mut grace => break,
                    _ = shutdown.reached(Stage::Now) => break,
                }
            }
            tasks.abort_all();
            while let Some(done) = tasks.join_next().await {
                tally.add(done.unwrap_or(Outcome::Released));
            }
        }
        match self.inner.backend.release_all(&self.inner.id).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(released = n, "Released jobs that were still running"),
            Err(error) => {
                tracing::error!(%error, "Could not release this worker's jobs; their leases will expire")
            }
        }
    }
}

impl Inner {
    /// The code that runs a job: its Rust type, else its command, else a permanent error.
    pub(crate) fn resolve(&self, job: &JobRecord) -> Result<Arc<dyn AnyJob>> {
        if self.registry.contains(&job.class) {
            let decoded: Box<dyn AnyJob> = self.registry.decode(&job.class, &job.args)?;
            return Ok(Arc::from(decoded));
        }
        if let Some(spec) = self.commands.get(&job.class) {
            return Ok(Arc::new(CommandJob {
                spec: spec.clone(),
                args: job.args.clone(),
            }));
        }
        let mut known: Vec<String> = self.registry.classes().map(str::to_owned).collect();
        known.extend(self.commands.keys().cloned());
        Err(Error::BadPayload {
            message: format!(
                "unknown job class {:?} (this worker runs: {})",
                job.class,
                known.join(", ")
            ),
        })
    }
}

/// Capped exponential back-off after backend errors: 100 ms, doubling, at most 30 s.
struct Pause(Duration);

impl Pause {
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(30);

    fn new() -> Self {
        Pause(Self::FIRST)
    }

    fn next(&mut self) -> Duration {
        let wait = self.0;
        self.0 = (self.0 * 2).min(Self::MAX);
        wait
    }

    fn reset(&mut self) {
        self.0 = Self::FIRST;
    }
}

/// This process's instance id: host, process id and a random suffix.
fn instance_id() -> String {
    let host = hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "host".to_owned());
    let suffix: u32 = rand::random();
    format!("{host}-{}-{:06x}", std::process::id(), suffix & 0xff_ffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backend_error_pause_doubles_up_to_a_cap() {
        let mut pause = Pause::new();
        let waits: Vec<u128> = (0..12).map(|_| pause.next().as_millis()).collect();
        assert_eq!(waits[..4], [100, 200, 400, 800]);
        assert_eq!(waits[11], 30_000);
        pause.reset();
        assert_eq!(pause.next(), Duration::from_millis(100));
    }

    #[test]
    fn instance_ids_differ() {
        assert_ne!(instance_id(), instance_id());
    }
}
