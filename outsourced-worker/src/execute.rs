//! Running one leased job: decode it, run it under its time limit in a task of its own (so a
//! panic is a failed attempt, not a dead worker), renew its lease while it runs, and report.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use outsourced_core::{
    Actor, AnyJob, Backend, Error, ErrorInfo, Failure, JobContext, JobError, JobRecord, JobState,
    LeaseRef, Reserved, RetryPlan, invoke,
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
}

/// Runs a reserved job to its end and reports the outcome to the backend (successes through
/// the reporter, which batches them).
pub(crate) async fn execute(inner: Arc<Inner>, reporter: Reporter, reserved: Reserved) -> Outcome {
    let Reserved { job, lease } = reserved;
    let lease = lease.to_ref();
    let started = Instant::now();
    let holder = Actor::Worker(inner.id.clone());
    let ctx = JobContext::new(&job).with_backend(inner.backend.clone(), holder);
    let runnable = match inner.resolve(&job) {
        Ok(runnable) => runnable,
        Err(error) => {
            // An unknown class or undecodable arguments: permanent, never retried.
            let info = ErrorInfo::new(error.to_string());
            let (outcome, _) = report_failure(&inner, &lease, info, RetryPlan::Never).await;
            log_outcome(&job, &job.class, outcome, started, Some(&error.to_string()));
            return outcome;
        }
    };
    let limit = time_limit(&inner, &job, runnable.as_ref());
    let name = runnable.display_name();
    let work = {
        let (runnable, ctx) = (runnable.clone(), ctx.clone());
        tokio::spawn(
            async move { tokio::time::timeout(limit, invoke(runnable.as_ref(), &ctx)).await },
        )
    };
    let ending = supervise(&inner, &lease, &ctx, work, limit).await;
    let (outcome, error) = report(&inner, &reporter, &lease, &ctx, runnable.as_ref(), ending).await;
    log_outcome(&job, &name, outcome, started, error.as_deref());
    outcome
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
    mut work: JoinHandle<Result<Result<(), JobError>, tokio::time::error::Elapsed>>,
    limit: Duration,
) -> Ending {
    let mut beat = tokio::time::interval(inner.options.heartbeat_every());
    beat.tick().await;
    loop {
        tokio::select! {
            result = &mut work => {
                return match result {
                    Ok(Ok(done)) => Ending::Done(done),
                    Ok(Err(_)) => Ending::TimedOut(limit),
                    Err(join) => Ending::Panicked(panic_message(join)),
                };
            }
            _ = beat.tick() => match inner.backend.heartbeat(&inner.id, lease).await {
                Ok(beat) if beat.cancel_requested => {
                    ctx.request_cancel();
                    work.abort();
                    return Ending::CancelRequested;
                }
                Ok(_) => {}
                Err(Error::StaleLease { .. } | Error::NotFound { .. }) => {
                    work.abort();
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

/// Reports the ending; returns the outcome and the error text, if any.
async fn report(
    inner: &Inner,
    reporter: &Reporter,
    lease: &LeaseRef,
    ctx: &JobContext,
    runnable: &dyn AnyJob,
    ending: Ending,
) -> (Outcome, Option<String>) {
    let (info, plan) = match ending {
        Ending::Done(Ok(())) => {
            let completed = retrying(|| reporter.complete(lease.clone())).await;
            return (settled(completed, Outcome::Succeeded), None);
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
        Ending::CancelRequested => {
            let released = retrying(|| inner.backend.release(&inner.id, lease)).await;
            return (
                settled(released, Outcome::Released),
                Some("cancelled".into()),
            );
        }
        Ending::LostLease => return (Outcome::Lost, Some("the lease was lost".into())),
    };
    let text = info.to_string();
    let (outcome, state) = report_failure(inner, lease, info, plan).await;
    if state == Some(JobState::Failed)
        && let Err(error) = runnable.failure(ctx).await
    {
        tracing::error!(job = %ctx.id, %error, "error when running the failure hook");
    }
    (outcome, Some(text))
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
    let failed = retrying(|| inner.backend.fail(&inner.id, lease, failure.clone())).await;
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

/// Calls `f` until it succeeds or fails for a reason that retrying cannot fix, waiting a
/// little longer each time (five tries within about three seconds).
async fn retrying<T, F, Fut>(mut f: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let mut wait = Duration::from_millis(100);
    for _ in 0..4 {
        match f().await {
            Err(error) if error.is_retryable() => {
                tracing::warn!(%error, "reporting to the backend failed; trying again");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            other => return other,
        }
    }
    f().await
}

fn humantime_like(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs < 1.0 {
        format!("{} ms", duration.as_millis())
    } else {
        format!("{secs} seconds")
    }
}

/// One log line per job, as delayed_job writes: name, id, queue, outcome, duration.
fn log_outcome(
    job: &JobRecord,
    name: &str,
    outcome: Outcome,
    started: Instant,
    error: Option<&str>,
) {
    let seconds = started.elapsed().as_secs_f64();
    let (id, queue, attempt) = (job.id, job.queue.as_str(), job.attempts);
    match outcome {
        Outcome::Succeeded => {
            tracing::info!(job = name, %id, queue, attempt, seconds, "Job {name} (id={id}) (queue={queue}) COMPLETED after {seconds:.4}")
        }
        Outcome::Failed => {
            let error = error.unwrap_or_default();
            tracing::error!(job = name, %id, queue, attempt, seconds, error, "Job {name} (id={id}) (queue={queue}) FAILED ({} prior attempts) with {error}", attempt.saturating_sub(1))
        }
        Outcome::Released => {
            tracing::warn!(job = name, %id, queue, attempt, seconds, "Job {name} (id={id}) (queue={queue}) RELEASED after {seconds:.4}")
        }
        Outcome::Lost => {
            tracing::warn!(job = name, %id, queue, attempt, seconds, "Job {name} (id={id}) (queue={queue}) LOST its lease after {seconds:.4}")
        }
    }
}
