//! Running one leased job: decode it, run it under its time limit in a task of its own (so a
//! panic is a failed attempt, not a dead worker), renew its lease while it runs, and report.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use outsourced_core::{
    Actor, AnyJob, Backend, Backoff, Completion, Error, ErrorInfo, Failure, JobContext, JobError,
    JobRecord, JobState, LeaseRef, Reserved, RetryPlan, invoke,
};
use tokio::task::JoinHandle;

use crate::report::Reporter;
use crate::worker::Inner;

/// How one job ended, from the worker's side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Completed.
    Succeeded,
    /// Failed (to be retried or for good).
    Failed,
    /// Given back: cancelled while running, or stopped by a shutdown.
    Released,
    /// The lease was lost (it expired and someone else has the job); nothing was reported.
    Lost,
}

/// How the run itself ended.
enum Ending {
    Done(Result<(), JobError>),
    TimedOut(Duration),
    Panicked(String),
    CancelRequested,
    LostLease,
    /// Stopped by the worker's shutdown.
    Stopped,
}

/// Runs a reserved job to its end and reports the outcome to the backend (successes through
/// the reporter, which batches them).
pub(crate) async fn execute(inner: Arc<Inner>, reporter: Reporter, reserved: Reserved) -> Outcome {
    let ctx = JobContext::of_reserved(&reserved);
    let Reserved { job, lease, .. } = reserved;
    let lease = lease.to_ref();
    let started = Instant::now();
    let holder = Actor::Worker(inner.id.clone());
    let ctx = ctx.with_backend(inner.backend.clone(), holder);
    let runnable = match inner.resolve(&job) {
        Ok(runnable) => runnable,
        Err(error) => {
            // An unknown class or undecodable arguments: permanent, never retried.
            let info = ErrorInfo::new(error.to_string());
            let (outcome, state) = report_failure(&inner, &lease, info, RetryPlan::Never).await;
            let said = Said {
                error: Some(error.to_string()),
                state,
                ..Said::default()
            };
            log_outcome(&job, outcome, started, &said);
            return outcome;
        }
    };
    log_start(&job);
    let limit = time_limit(&inner, &job, runnable.as_ref());
    let work = {
        let (runnable, ctx) = (runnable.clone(), ctx.clone());
        Work(tokio::spawn(async move {
            tokio::time::timeout(limit, invoke(runnable.as_ref(), &ctx)).await
        }))
    };
    let ending = supervise(&inner, &lease, &ctx, work, limit).await;
    // A stopped command handler's processes get their grace to end: the job is reported (and
    // may be leased again) only once nothing of this attempt runs.
    inner.children.settled(Some(job.id)).await;
    let ending = interrupted_by_shutdown(&inner, ending).await;
    let attempt = Attempt {
        lease: &lease,
        ctx: &ctx,
        backoff: &job.backoff,
    };
    let (outcome, said) = report(&inner, &reporter, attempt, runnable.as_ref(), ending).await;
    log_outcome(&job, outcome, started, &said);
    outcome
}

/// The task that runs a job's code, aborted when dropped: a worker that stops its job's
/// `execute` (a shutdown) stops the job's code too.
struct Work(JoinHandle<Result<Result<(), JobError>, tokio::time::error::Elapsed>>);

impl Drop for Work {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Work {
    /// Stops the work and returns once its code has been dropped (a command handler's
    /// processes are then being stopped, and counted until they are gone).
    async fn stop(&mut self) {
        self.0.abort();
        let _ = (&mut self.0).await;
    }
}

/// A job interrupted from outside (its command killed by a signal meant for the whole worker,
/// as systemd sends to every process of a service) while the worker shuts down is stopped by
/// the shutdown: given back, its attempt not used. The worker's own signal may arrive a moment
/// after the handler's end, so it is waited for briefly.
async fn interrupted_by_shutdown(inner: &Inner, ending: Ending) -> Ending {
    let Ending::Done(Err(error)) = &ending else {
        return ending;
    };
    if !error.is_interrupted() {
        return ending;
    }
    let mut stopping = inner.stopping.subscribe();
    let shutdown = stopping.wait_for(|stopping| *stopping);
    match tokio::time::timeout(Duration::from_secs(1), shutdown).await {
        Ok(Ok(_)) => Ending::Stopped,
        _ => ending,
    }
}

/// The attempt's time limit: the worker's, or the job's own when shorter.
fn time_limit(inner: &Inner, job: &JobRecord, runnable: &dyn AnyJob) -> Duration {
    [
        Some(inner.options.max_run_time),
        job.max_run_time,
        runnable.max_run_time(),
    ]
    .into_iter()
    .flatten()
    .min()
    .unwrap_or(inner.options.max_run_time)
}

/// Waits for the work to end, renewing the lease every third of it. A cancel request stops
/// the work; so does a lost lease, since someone else may run the job now.
async fn supervise(
    inner: &Inner,
    lease: &LeaseRef,
    ctx: &JobContext,
    mut work: Work,
    limit: Duration,
) -> Ending {
    let mut beat = tokio::time::interval(inner.options.heartbeat_every());
    beat.tick().await;
    loop {
        tokio::select! {
            result = &mut work.0 => {
                return match result {
                    Ok(Ok(done)) => Ending::Done(done),
                    Ok(Err(_)) => Ending::TimedOut(limit),
                    Err(join) => Ending::Panicked(panic_message(join)),
                };
            }
            _ = beat.tick() => match inner.backend.heartbeat(&inner.id, lease).await {
                Ok(beat) if beat.cancel_requested => {
                    ctx.request_cancel();
                    work.stop().await;
                    return Ending::CancelRequested;
                }
                Ok(_) => {}
                Err(Error::StaleLease { .. } | Error::NotFound { .. }) => {
                    work.stop().await;
                    return Ending::LostLease;
                }
                Err(error) => tracing::warn!(job = %lease.job_id, %error, "heartbeat failed; will retry"),
            },
        }
    }
}

fn panic_message(join: tokio::task::JoinError) -> String {
    match join.try_into_panic() {
        Ok(payload) => match payload.downcast::<String>() {
            Ok(text) => *text,
            Err(payload) => payload
                .downcast::<&'static str>()
                .map(|s| (*s).to_owned())
                .unwrap_or_else(|_| "a panic without a message".to_owned()),
        },
        Err(_) => "the job's task was cancelled".to_owned(),
    }
}

/// What became of an attempt, for its log line.
#[derive(Debug, Default)]
pub(crate) struct Said {
    /// The error, when it failed.
    error: Option<String>,
    /// The job's state after a failure: retrying, failed or cancelled.
    state: Option<JobState>,
    /// When a retry is due, as the worker reckons it.
    retry_in: Option<Duration>,
    /// Why it was given back.
    given_back: Option<&'static str>,
}

/// The attempt being reported.
struct Attempt<'a> {
    lease: &'a LeaseRef,
    ctx: &'a JobContext,
    backoff: &'a Backoff,
}

/// Reports the ending; returns the outcome and what to say of it.
async fn report(
    inner: &Inner,
    reporter: &Reporter,
    attempt: Attempt<'_>,
    runnable: &dyn AnyJob,
    ending: Ending,
) -> (Outcome, Said) {
    let Attempt {
        lease,
        ctx,
        backoff,
    } = attempt;
    let (info, plan) = match ending {
        Ending::Done(Ok(())) => {
            let done = Completion {
                lease: lease.clone(),
                result: ctx.take_result(),
                follow_ups: ctx.take_follow_ups(),
            };
            let lease_length = inner.options.lease;
            match retrying(lease_length, || reporter.complete(done.clone())).await {
                Err(refused) if handed_back(&refused) => refused_success(refused, &done),
                completed => return (settled(completed, Outcome::Succeeded), Said::default()),
            }
        }
        Ending::Done(Err(error)) => {
            let plan = retry_plan(&error, runnable, ctx.attempt);
            (error.into_info(), plan)
        }
        Ending::TimedOut(limit) => {
            let limit = humantime_like(limit);
            let message = format!("execution expired: max_run_time is only {limit}");
            (ErrorInfo::new(message), RetryPlan::Backoff)
        }
        Ending::Panicked(message) => (
            ErrorInfo::new(format!("the job panicked: {message}")),
            RetryPlan::Backoff,
        ),
        Ending::CancelRequested | Ending::Stopped => {
            let why = match ending {
                Ending::Stopped => "stopped by the shutdown",
                _ => "cancelled",
            };
            let released = retrying(inner.options.lease, || {
                inner.backend.release(&inner.id, lease)
            })
            .await;
            let said = Said {
                given_back: Some(why),
                ..Said::default()
            };
            return (settled(released, Outcome::Released), said);
        }
        Ending::LostLease => {
            let said = Said {
                given_back: Some("the lease was lost"),
                ..Said::default()
            };
            return (Outcome::Lost, said);
        }
    };
    let text = info.message.clone();
    let retry_in = match &plan {
        RetryPlan::After(wait) => Some(*wait),
        RetryPlan::Backoff => Some(backoff.delay(ctx.attempt)),
        RetryPlan::Never => None,
    };
    let (outcome, state) = report_failure(inner, lease, info, plan).await;
    if state == Some(JobState::Failed)
        && let Err(error) = runnable.failure(ctx).await
    {
        tracing::error!(job = %ctx.id, %error, "error when running the failure hook");
    }
    let said = Said {
        error: Some(text),
        state,
        retry_in,
        given_back: None,
    };
    (outcome, said)
}

/// Whether a refused success was refused for what the job handed back (its result or its
/// follow-ups) rather than for its lease: the job still runs, and fails with that error.
fn handed_back(error: &Error) -> bool {
    matches!(
        error,
        Error::InvalidInput { .. }
            | Error::UnknownQueue { .. }
            | Error::QueueFull { .. }
            | Error::Duplicate { .. }
    )
}

/// The failure that a refused success becomes. A result the backend will not keep, or a
/// follow-up it will never take, makes running the job again useless (the operator sees why);
/// a follow-up's full queue may have room later, so the job is tried again after its back-off.
fn refused_success(error: Error, done: &Completion) -> (ErrorInfo, RetryPlan) {
    let invalid = matches!(error, Error::InvalidInput { .. });
    let what = match (done.result.is_some(), done.follow_ups.is_empty()) {
        (_, true) => "the job's result was refused",
        (true, false) if invalid => "the job's result or one of its follow-up jobs was refused",
        _ => "a follow-up job was refused",
    };
    let plan = match error {
        Error::QueueFull { .. } => RetryPlan::Backoff,
        _ => RetryPlan::Never,
    };
    let message = match error {
        Error::InvalidInput { message } => message,
        // Through a server, a queue the job's producer may not enqueue into is unknown too.
        error @ Error::UnknownQueue { .. } => format!(
            "{error} (no such queue, or, through a server, not one the job's producer may \
             enqueue into)"
        ),
        other => other.to_string(),
    };
    (ErrorInfo::new(format!("{what}: {message}")), plan)
}

/// What to do after a job's own error: nothing more when it is permanent, its own wait when it
/// names one, the stored back-off otherwise.
fn retry_plan(error: &JobError, runnable: &dyn AnyJob, attempt: u32) -> RetryPlan {
    if error.is_permanent() {
        return RetryPlan::Never;
    }
    let now = Utc::now();
    match runnable.reschedule_at(now, attempt) {
        Some(at) => RetryPlan::After((at - now).to_std().unwrap_or_default()),
        None => RetryPlan::Backoff,
    }
}

async fn report_failure(
    inner: &Inner,
    lease: &LeaseRef,
    error: ErrorInfo,
    retry: RetryPlan,
) -> (Outcome, Option<JobState>) {
    let failure = Failure { error, retry };
    let fail = || inner.backend.fail(&inner.id, lease, failure.clone());
    let failed = retrying(inner.options.lease, fail).await;
    match failed {
        Ok(state) => (Outcome::Failed, Some(state)),
        Err(error) => (settled::<()>(Err(error), Outcome::Failed), None),
    }
}

/// The outcome of a report: a stale lease means someone else has the job now.
fn settled<T>(result: Result<T, Error>, outcome: Outcome) -> Outcome {
    match result {
        Ok(_) => outcome,
        Err(Error::StaleLease { .. }) => Outcome::Lost,
        Err(error) => {
            tracing::error!(%error, "could not report a job's outcome; its lease will expire");
            Outcome::Lost
        }
    }
}

/// Calls `f` until it succeeds, fails for a reason that retrying cannot fix, or `patience`
/// (the lease's length: by then the job is someone else's) has passed, waiting a little
/// longer each time, at most 2 s. A server restarting, or another behind the same address,
/// then still gets the report: five tries in three seconds lost jobs a restart would have
/// kept (they ran again once their leases ran out).
async fn retrying<T, F, Fut>(patience: Duration, mut f: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let until = tokio::time::Instant::now() + patience;
    let mut wait = Duration::from_millis(100);
    let mut said = false;
    loop {
        match f().await {
            Err(error) if error.is_retryable() && tokio::time::Instant::now() + wait < until => {
                // Said once: a restart of a few seconds is not a dozen lines per job.
                if !std::mem::replace(&mut said, true) {
                    tracing::warn!(%error, "reporting to the backend failed; trying again until the lease runs out");
                }
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(2));
            }
            other => return other,
        }
    }
}

fn humantime_like(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs < 1.0 {
        format!("{} ms", duration.as_millis())
    } else {
        format!("{secs} seconds")
    }
}

/// The line of a job's start, as delayed_job writes it: which job, where from, which attempt,
/// so that a job that runs long is seen running before it ends.
fn log_start(job: &JobRecord) {
    // Escaped, as in `log_outcome`.
    let name = job.class.escape_debug().to_string();
    let name = name.as_str();
    let (id, queue, attempt, of) = (job.id, job.queue.as_str(), job.attempts, job.max_attempts);
    tracing::info!(job = name, %id, queue, attempt, "Job {name} (id={id}) (queue={queue}) RUNNING (attempt {attempt} of {of})")
}

/// One log line per job's end, as delayed_job writes: class, id, queue, outcome, duration; for
/// a failure whether and when it is retried.
fn log_outcome(job: &JobRecord, outcome: Outcome, started: Instant, said: &Said) {
    let seconds = started.elapsed().as_secs_f64();
    // Escaped: a class is whatever its producer wrote (control characters would forge lines).
    let name = job.class.escape_debug().to_string();
    let name = name.as_str();
    let (id, queue, attempt) = (job.id, job.queue.as_str(), job.attempts);
    let of = job.max_attempts;
    match outcome {
        Outcome::Succeeded => {
            tracing::info!(job = name, %id, queue, attempt, seconds, "Job {name} (id={id}) (queue={queue}) COMPLETED after {seconds:.4} s")
        }
        Outcome::Failed => {
            let error = said.error.as_deref().unwrap_or_default();
            let what = match (said.state, said.retry_in) {
                (Some(JobState::Retrying), Some(wait)) => {
                    format!(
                        "FAILED (attempt {attempt} of {of}); retrying in {}",
                        humantime_like(wait)
                    )
                }
                (Some(JobState::Cancelled), _) => "FAILED and is cancelled".to_owned(),
                (Some(JobState::Failed), _) => {
                    format!("FAILED for good (attempt {attempt} of {of})")
                }
                _ => format!("FAILED (attempt {attempt} of {of})"),
            };
            tracing::error!(job = name, %id, queue, attempt, seconds, error, "Job {name} (id={id}) (queue={queue}) {what} after {seconds:.4} s: {error}")
        }
        Outcome::Released => {
            let why = said.given_back.unwrap_or("given back");
            let what = match why {
                "cancelled" => "CANCELLED".to_owned(),
                why => format!("RELEASED ({why})"),
            };
            tracing::warn!(job = name, %id, queue, attempt, seconds, "Job {name} (id={id}) (queue={queue}) {what} after {seconds:.4} s")
        }
        Outcome::Lost => {
            tracing::warn!(job = name, %id, queue, attempt, seconds, "Job {name} (id={id}) (queue={queue}) LOST its lease after {seconds:.4} s: someone else may run it now")
        }
    }
}
