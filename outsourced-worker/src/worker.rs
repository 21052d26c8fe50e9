//! The worker loop: reserve in batches up to the free concurrency, run each job in a task,
//! long-poll when idle, back off when the backend fails, and drain on shutdown.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use outsourced_core::{
    AnyJob, Backend, Error, JobRecord, Registry, ReserveOptions, Reserved, Result, WorkerInstance,
};
use tokio::sync::watch;

use crate::assignment::Assignment;
use crate::command::{Children, CommandJob, CommandSpec};
use crate::execute::Outcome;
use crate::options::WorkerOptions;
use crate::run::{Run, pause_for};
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
    pub(crate) fn add(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Succeeded => self.succeeded += 1,
            Outcome::Failed => self.failed += 1,
            Outcome::Released | Outcome::Lost => self.abandoned += 1,
        }
    }
}

impl std::fmt::Display for WorkOff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} succeeded, {} failed, {} given back, cancelled or lost",
            self.succeeded, self.failed, self.abandoned
        )
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
    assignment: Option<Arc<dyn Assignment>>,
    /// The queues the assignment gave last, to say when they change.
    assigned: std::sync::Mutex<Option<Vec<String>>>,
    /// The command handlers' processes, so that nothing outlives its job.
    pub(crate) children: Children,
    /// Set once a shutdown has begun.
    pub(crate) stopping: watch::Sender<bool>,
}

impl Worker {
    /// A worker named `name` (its credentials' name: over HTTP the server refuses a reserve
    /// that names another worker than its keys') with an instance id of its own, with the
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
                assignment: None,
                assigned: std::sync::Mutex::default(),
                children: Children::default(),
                stopping: watch::Sender::new(false),
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
            assignment: old.assignment.clone(),
            assigned: std::sync::Mutex::default(),
            children: Children::default(),
            stopping: watch::Sender::new(false),
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

    /// Asks `assignment` which queues to work before each reserve (instead of the options'
    /// fixed list).
    pub fn assignment(self, assignment: Arc<dyn Assignment>) -> Self {
        self.edit(|inner| inner.assignment = Some(assignment))
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

    /// The classes it leases: those of its registry and its command handlers; `None` for a
    /// catch-all worker, which takes any class.
    pub fn classes(&self) -> Option<Vec<String>> {
        self.inner.classes()
    }

    /// Runs at most `n` jobs that are ready now, then returns what happened (delayed_job's
    /// `work_off`). Leaves nothing leased.
    pub async fn work_off(&self, n: usize) -> Result<WorkOff> {
        self.run_loop(Shutdown::never(), Some(n), true).await
    }

    /// Runs until `shutdown` (or, with `exit_on_complete`, until nothing is ready and nothing
    /// runs), then drains: running jobs may finish within the grace period, the rest are
    /// released so that others get them at once.
    ///
    /// Fails at once when the worker runs no class (and is no catch-all), and after
    /// `max_refusals` refusals of its credentials in a row.
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
        let classes = self.announce()?;
        let mut run = Run::new(self.inner.clone());
        let turn = Turn {
            limit,
            exit_when_idle,
            // `work_off` runs what is ready now; a run that stops once idle also waits for
            // what a run limit holds back.
            waits_for_held: exit_when_idle && limit.is_none(),
            classes: &classes,
        };
        let outcome = loop {
            if let Flow::Stop(outcome) = self.turn(&mut run, &mut shutdown, &turn).await {
                break outcome;
            }
        };
        self.inner.stopping.send_replace(true);
        let tally = self.drain(run, shutdown).await;
        tracing::info!(worker = %self.inner.id, "Worker stopped: {tally}");
        outcome.map(|()| tally)
    }

    /// Refuses to start a worker that runs no class; says what it works. Answers the classes
    /// it leases (`None`: any).
    fn announce(&self) -> Result<Option<Vec<String>>> {
        let classes = self.inner.classes();
        if classes.as_ref().is_some_and(Vec::is_empty) {
            return Err(Error::invalid(
                "this worker runs no job class: register a Job type, add command handlers, \
                 or make it a catch-all worker",
            ));
        }
        let options = &self.inner.options;
        let shown = classes.as_ref().map_or("any".to_owned(), |c| c.join(", "));
        let queues = match options.queues.is_empty() {
            true => "those it is hired for".to_owned(),
            false => options.queues.join(", "),
        };
        tracing::info!(worker = %self.inner.id, %queues, classes = %shown, "Starting job worker");
        Ok(classes)
    }

    /// One turn of the loop: wait for room, lease what fits, start it.
    async fn turn(&self, run: &mut Run, shutdown: &mut Shutdown, turn: &Turn<'_>) -> Flow {
        if shutdown.stage() != Stage::Running {
            return Flow::Stop(Ok(()));
        }
        run.collect();
        let wanted = run.wanted(turn.limit);
        if wanted == 0 {
            if run.tasks.is_empty() {
                return Flow::Stop(Ok(()));
            }
            run.wait_for_a_job(shutdown).await;
            return Flow::Again;
        }
        // A worker with room waits for work in a long poll, busy or not, so that a job
        // enqueued now starts now; the jobs it runs meanwhile report on their own.
        // One that stops once idle waits only for jobs a limit holds back, with none running
        // (the end of one of its own is its cue to reserve again).
        let wait = match turn.exit_when_idle {
            false => Some(self.inner.options.idle_wait),
            true => run.held.filter(|_| run.tasks.is_empty()),
        };
        // A shutdown ends a long poll at once; the backend gives back what a reserve cut
        // short had claimed, and the drain releases whatever this instance still holds.
        let reserving = tokio::select! {
            reserved = self.reserve(wanted, wait, turn.classes) => reserved,
            _ = shutdown.reached(Stage::Draining) => return Flow::Stop(Ok(())),
        };
        match reserving {
            Err(error) => Self::after_failure(run, shutdown, error, turn.exit_when_idle).await,
            Ok(None) if turn.exit_when_idle && run.tasks.is_empty() => Flow::Stop(Ok(())),
            Ok(None) => {
                run.reached();
                run.unassigned(shutdown).await;
                Flow::Again
            }
            Ok(Some(reserved)) => {
                run.reached();
                run.backlog = reserved.len() >= wanted;
                if reserved.is_empty() && turn.waits_for_held && run.tasks.is_empty() {
                    match self.held_back(run, turn.classes).await {
                        Ok(true) => return Flow::Again,
                        Ok(false) => {}
                        Err(error) => {
                            return Self::after_failure(run, shutdown, error, true).await;
                        }
                    }
                }
                if !reserved.is_empty() {
                    run.held = None;
                }
                Self::took(run, shutdown, reserved, turn.exit_when_idle).await
            }
        }
    }

    /// A call to the backend failed: waits before the next turn, or stops with the error.
    async fn after_failure(
        run: &mut Run,
        shutdown: &mut Shutdown,
        error: Error,
        gives_up: bool,
    ) -> Flow {
        match run.failed(error, gives_up) {
            Ok(pause) => {
                pause_for(pause, shutdown).await;
                Flow::Again
            }
            Err(fatal) => Flow::Stop(Err(fatal)),
        }
    }

    /// Starts what a reserve leased; an empty answer means polling again, or, when the worker
    /// stops once idle, waiting for a running job to end (or stopping if none runs).
    async fn took(
        run: &mut Run,
        shutdown: &mut Shutdown,
        reserved: Vec<Reserved>,
        exit_when_idle: bool,
    ) -> Flow {
        if !reserved.is_empty() {
            run.start(reserved);
            return Flow::Again;
        }
        if !exit_when_idle {
            return Flow::Again;
        }
        if run.tasks.is_empty() {
            return Flow::Stop(Ok(()));
        }
        run.wait_for_a_job(shutdown).await;
        Flow::Again
    }

    /// After a reserve that got nothing, by a worker that stops once idle: whether jobs are
    /// due that a run limit holds back (a rate spacing starts, a limit others' jobs fill), in
    /// which case its next reserves wait for them in a long poll rather than it stopping.
    async fn held_back(&self, run: &mut Run, classes: &Option<Vec<String>>) -> Result<bool> {
        let held = match self.reserve_options(1, None, classes).await? {
            Some(opts) => self.inner.backend.any_due(&self.inner.id, &opts).await?,
            None => false,
        };
        // Said once a run: a rate that spaces a backlog's starts holds back before each job.
        if held && !std::mem::replace(&mut run.said_held, true) {
            tracing::info!(
                "Jobs are due but held back by their queue's run limits; waiting for them"
            );
        }
        // Short polls first, then longer: the last held jobs are often taken by other workers,
        // and a long poll would keep this one from seeing that nothing is due (and stopping).
        let idle = self.inner.options.idle_wait;
        run.held = held.then(|| run.held.map_or(HELD_POLL, |wait| (wait * 2).min(idle)));
        Ok(held)
    }

    /// Reserves up to `limit` jobs from the queues the worker works now; `None` when it is
    /// assigned no queue at all.
    async fn reserve(
        &self,
        limit: usize,
        wait: Option<Duration>,
        classes: &Option<Vec<String>>,
    ) -> Result<Option<Vec<Reserved>>> {
        let Some(opts) = self.reserve_options(limit, wait, classes).await? else {
            return Ok(None);
        };
        self.inner
            .backend
            .reserve(&self.inner.id, opts)
            .await
            .map(Some)
    }

    /// What a reserve of up to `limit` jobs asks for; `None` when the worker is assigned no
    /// queue at all.
    async fn reserve_options(
        &self,
        limit: usize,
        wait: Option<Duration>,
        classes: &Option<Vec<String>>,
    ) -> Result<Option<ReserveOptions>> {
        let options = &self.inner.options;
        let queues = match &self.inner.assignment {
            Some(assignment) => {
                let queues = assignment.queues().await?;
                self.say_if_assigned_anew(&queues);
                if queues.is_empty() {
                    return Ok(None);
                }
                queues
            }
            None => options.queues.clone(),
        };
        Ok(Some(ReserveOptions {
            limit: u32::try_from(limit).unwrap_or(u32::MAX),
            queues,
            classes: classes.clone(),
            min_priority: options.min_priority,
            max_priority: options.max_priority,
            wait,
            lease: Some(options.lease),
        }))
    }

    /// Says which queues the worker works when they first come or change (a hire or a fire
    /// takes effect at the next reserve), so that a queue it was not hired for is plain to see.
    fn say_if_assigned_anew(&self, queues: &[String]) {
        let mut assigned = self
            .inner
            .assigned
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if assigned.as_deref() == Some(queues) {
            return;
        }
        *assigned = Some(queues.to_vec());
        // None at all is said once by `Run::unassigned`.
        if !queues.is_empty() {
            tracing::info!(queues = %queues.join(", "), "Working queues");
        }
    }

    /// Lets running jobs finish within the grace period (or until a second signal), stops the
    /// rest (and their handlers' processes), and releases everything this instance still
    /// holds.
    async fn drain(&self, mut run: Run, mut shutdown: Shutdown) -> WorkOff {
        // Jobs that ended since the last turn are not running: counted first, so that the
        // log below says how many still run.
        run.collect();
        let Run {
            mut tasks,
            mut tally,
            ..
        } = run;
        // Jobs still running when the drain ended, whose leases only the release gives back.
        let mut stopped = 0;
        if !tasks.is_empty() {
            let within = self.inner.options.shutdown_grace;
            tracing::info!(
                running = tasks.len(),
                grace = ?within,
                "Waiting for running jobs to finish; those still running after the grace period (shutdown_grace) or a second signal are stopped and given back, their attempt unused"
            );
            let grace = tokio::time::sleep(within);
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
                stopped += 1;
                tally.add(done.unwrap_or(Outcome::Released));
            }
        }
        // A job is released only once its handler is gone, or another worker could run it
        // while this one's still does.
        let settle = self.inner.options.kill_grace + Duration::from_secs(1);
        if tokio::time::timeout(settle, self.inner.children.settled(None))
            .await
            .is_err()
        {
            tracing::error!("command handlers did not stop after SIGKILL; releasing their jobs");
        }
        match self.inner.backend.release_all(&self.inner.id).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                released = n,
                "Gave back jobs that were still running (their attempt unused: they wait for a worker again)"
            ),
            // With no job stopped here, nothing is known to be held (a reserve cut short is
            // given back by the backend itself), and the backend may be the very thing that
            // refused the worker (locked, say): no alarm.
            Err(error) if stopped == 0 => tracing::debug!(%error, "release at exit failed"),
            Err(error) => {
                tracing::error!(%error, "Could not release this worker's jobs; their leases will expire")
            }
        }
        tally
    }
}

/// What every turn of a run knows: how many jobs in all, whether to stop once idle, and the
/// classes the worker leases.
struct Turn<'a> {
    limit: Option<usize>,
    exit_when_idle: bool,
    waits_for_held: bool,
    classes: &'a Option<Vec<String>>,
}

/// The first long poll of a worker that stops once idle, for jobs a run limit holds back; each
/// that ends empty doubles the next, up to `idle_wait`.
const HELD_POLL: Duration = Duration::from_millis(50);

/// After a turn: another, or the end of the run with its outcome.
enum Flow {
    Again,
    Stop(Result<()>),
}

impl Inner {
    /// The classes this worker leases; `None` for a catch-all.
    pub(crate) fn classes(&self) -> Option<Vec<String>> {
        if self.options.catch_all {
            return None;
        }
        let mut classes: Vec<String> = self.registry.classes().map(str::to_owned).collect();
        classes.extend(self.commands.keys().cloned());
        classes.sort();
        classes.dedup();
        Some(classes)
    }

    /// The code that runs a job: its Rust type, else its command, else a permanent error.
    pub(crate) fn resolve(&self, job: &JobRecord) -> Result<Arc<dyn AnyJob>> {
        if self.registry.contains(&job.class) {
            let decoded: Box<dyn AnyJob> = self.registry.decode(&job.class, &job.args)?;
            return Ok(Arc::from(decoded));
        }
        if let Some(spec) = self.commands.get(&job.class) {
            return Ok(Arc::new(CommandJob {
                class: job.class.clone(),
                spec: spec.clone(),
                args: job.args.clone(),
                children: self.children.clone(),
                kill_grace: self.options.kill_grace,
            }));
        }
        let known = self.classes().unwrap_or_default();
        Err(Error::BadPayload {
            message: format!(
                "unknown job class {:?} (this worker runs: {})",
                job.class,
                known.join(", ")
            ),
        })
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
    fn instance_ids_differ() {
        assert_ne!(instance_id(), instance_id());
    }
}
