//! The [`Job`] trait for the user's own serde structs, the context a job runs with, and the
//! error a job returns.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::types::{
    Actor, AttachmentInfo, BatchId, Download, ErrorInfo, JobId, JobRecord, NewJob, Reserved,
    check_follow_ups, check_result,
};

/// A job: a serde struct with a class name and a `perform` method.
///
/// The struct is the job's arguments: it is stored as the JSON of `{"class": CLASS, "args":
/// <the struct>}` and decoded again by the worker's [`Registry`](crate::Registry). The optional
/// methods mirror delayed_job's; the hooks run in its order (see [`invoke`](crate::invoke)).
#[async_trait]
pub trait Job: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The class name the job is stored and registered under; keep it stable.
    const CLASS: &'static str;

    /// Does the work. An `Err` is a failed attempt, retried per the back-off unless it is
    /// [permanent](JobError::permanent) or the attempts are used up.
    async fn perform(&self, ctx: &JobContext) -> Result<(), JobError>;

    /// The name in logs; the class unless overridden.
    fn display_name(&self) -> String {
        Self::CLASS.to_owned()
    }

    /// Attempts at most; the backend's default (25) when `None`.
    fn max_attempts(&self) -> Option<u32> {
        None
    }

    /// The time limit per attempt; the worker's when `None`, and never more than it.
    fn max_run_time(&self) -> Option<Duration> {
        None
    }

    /// When to try again after the failure of attempt number `attempts`; the stored back-off
    /// when `None`.
    fn reschedule_at(&self, _now: DateTime<Utc>, _attempts: u32) -> Option<DateTime<Utc>> {
        None
    }

    /// The queue to enqueue into when the caller names none; `default` when `None`.
    fn queue(&self) -> Option<String> {
        None
    }

    /// The priority (lower runs first) when the caller sets none; 0 when `None`.
    fn priority(&self) -> Option<i32> {
        None
    }

    /// The job's unique key, if it has one: `Some(Unique::of_args(self))` makes a job type
    /// unique by its arguments (while such a job is live, enqueueing it again answers the job
    /// already there). None by default.
    fn unique(&self) -> Option<crate::Unique> {
        None
    }

    /// The key its queue's per-key limits count it under (its customer, say: with a queue's
    /// `max_running_per_key` of 1, each customer's jobs run one at a time; with a
    /// `rate_per_key` of 10 a minute, each customer's jobs start at most 10 a minute). None by
    /// default.
    fn concurrency_key(&self) -> Option<String> {
        None
    }

    /// Runs before `perform`; an error skips `perform` and takes the error path.
    async fn before(&self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }

    /// Runs after a successful `perform`; an error turns the attempt into a failure.
    async fn success(&self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }

    /// Runs when `before`, `perform` or `success` failed, with that error; an error it returns
    /// replaces the original.
    async fn error(&self, _ctx: &JobContext, _error: &JobError) -> Result<(), JobError> {
        Ok(())
    }

    /// Runs last, whatever happened; an error it returns replaces the outcome.
    async fn after(&self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }

    /// Runs once when the job has failed for good; its error is logged and ignored.
    async fn failure(&self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

/// Enqueueing for every [`Job`].
#[async_trait]
pub trait JobExt: Job {
    /// The job as a [`NewJob`], with the options the job sets for itself.
    fn to_new_job(&self) -> Result<NewJob> {
        let args = serde_json::to_value(self).map_err(|e| Error::BadPayload {
            message: format!("cannot serialize {}: {e}", Self::CLASS),
        })?;
        let mut job = NewJob::new(Self::CLASS, args);
        if let Some(queue) = self.queue() {
            job.queue = queue;
        }
        job.priority = self.priority().unwrap_or(0);
        job.max_attempts = self.max_attempts();
        job.max_run_time = self.max_run_time();
        job.unique = self.unique();
        job.concurrency_key = self.concurrency_key();
        Ok(job)
    }

    /// Enqueues the job as the application's producer.
    async fn enqueue(&self, backend: &dyn Backend) -> Result<JobRecord> {
        self.enqueue_as(backend, &Actor::application()).await
    }

    /// Enqueues the job on behalf of `by`.
    async fn enqueue_as(&self, backend: &dyn Backend, by: &Actor) -> Result<JobRecord> {
        backend.enqueue(by, self.to_new_job()?).await
    }
}

impl<J: Job> JobExt for J {}

/// What a running job knows about itself.
#[derive(Clone)]
pub struct JobContext {
    /// The job's id.
    pub id: JobId,
    /// Its queue.
    pub queue: String,
    /// Its class.
    pub class: String,
    /// This attempt's number (1 for the first).
    pub attempt: u32,
    /// Attempts at most.
    pub max_attempts: u32,
    /// What is known of its attachment, if it has one (read it with
    /// [`JobContext::attachment`]).
    pub attachment: Option<AttachmentInfo>,
    /// The results of the jobs it depends on, by job (those that returned one).
    pub dependency_results: BTreeMap<JobId, Value>,
    /// The batch it belongs to, if any: its follow-ups may join it
    /// ([`NewJob::batch`](crate::NewJob::batch)), and the batch then waits for them too.
    pub batch: Option<BatchId>,
    cancel: Arc<AtomicBool>,
    /// Where to read the attachment from, as whom.
    source: Option<(Arc<dyn Backend>, Actor)>,
    /// The result the job set, shared by the context's clones (the worker reads it after).
    result: Arc<Mutex<Option<Value>>>,
    /// The follow-up jobs asked for so far, stored only if this attempt succeeds.
    follow_ups: Arc<Mutex<Vec<NewJob>>>,
}

impl fmt::Debug for JobContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobContext")
            .field("id", &self.id)
            .field("class", &self.class)
            .field("attempt", &self.attempt)
            .field("attachment", &self.attachment)
            .finish_non_exhaustive()
    }
}

impl JobContext {
    /// The context of the current attempt of `job`.
    pub fn new(job: &JobRecord) -> Self {
        JobContext {
            id: job.id,
            queue: job.queue.clone(),
            class: job.class.clone(),
            attempt: job.attempts,
            max_attempts: job.max_attempts,
            attachment: job.attachment.clone(),
            dependency_results: BTreeMap::new(),
            batch: job.batch,
            cancel: Arc::new(AtomicBool::new(false)),
            source: None,
            result: Arc::default(),
            follow_ups: Arc::default(),
        }
    }

    /// The context of the attempt a reserve handed out, with its dependencies' results.
    pub fn of_reserved(reserved: &Reserved) -> Self {
        let mut context = Self::new(&reserved.job);
        context.dependency_results = reserved.dependency_results.clone();
        context
    }

    /// Lets the job read its attachment from `backend` as `by` (the worker holding its lease).
    pub fn with_backend(mut self, backend: Arc<dyn Backend>, by: Actor) -> Self {
        self.source = Some((backend, by));
        self
    }

    /// The job's attachment, its bytes streamed from the backend. `NoAttachment` when it has
    /// none, or when the context was made without a backend.
    pub async fn attachment(&self) -> Result<Download> {
        match (&self.attachment, &self.source) {
            (Some(_), Some((backend, by))) => backend.attachment(by, self.id).await,
            _ => Err(Error::NoAttachment { id: self.id }),
        }
    }

    /// Whether a cancel was requested; a long job should check it and stop early.
    pub fn is_cancel_requested(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    /// Marks a cancel request (the worker does this when a heartbeat reports one).
    pub fn request_cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// Sets the result this attempt hands back when it succeeds (the last one set counts). It
    /// is kept with the attempt's `completed` history row, readable by the job's producer and
    /// the admins. `Err` when it cannot be made JSON or takes more than
    /// [`MAX_RESULT_BYTES`](crate::MAX_RESULT_BYTES): keep files in attachments.
    pub fn set_result(&self, result: impl Serialize) -> Result<(), JobError> {
        let value = serde_json::to_value(result)
            .map_err(|e| JobError::msg(format!("the result cannot be made JSON: {e}")))?;
        check_result(&value).map_err(|e| JobError::msg(e.to_string()).permanent())?;
        *self.result.lock().unwrap_or_else(|e| e.into_inner()) = Some(value);
        Ok(())
    }

    /// Takes the result set by [`set_result`](JobContext::set_result), if any.
    pub fn take_result(&self) -> Option<Value> {
        self.result.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Asks for a job to be enqueued when this attempt succeeds: it is stored in the same
    /// transaction as the success (with this job as its parent, owned by this job's producer),
    /// and never if the attempt fails, times out or is released. A follow-up the backend
    /// refuses (an unknown or full queue) fails the attempt with that error.
    ///
    /// `Err` (permanent) when the job is invalid on its face (an empty class or queue,
    /// `max_attempts` 0) or this attempt already asked for
    /// [`MAX_FOLLOW_UPS`](crate::MAX_FOLLOW_UPS).
    pub fn follow_up(&self, job: NewJob) -> Result<(), JobError> {
        job.check(usize::MAX)
            .map_err(|e| JobError::msg(format!("follow-up refused: {e}")).permanent())?;
        let mut follow_ups = self.follow_ups.lock().unwrap_or_else(|e| e.into_inner());
        check_follow_ups(follow_ups.len() + 1)
            .map_err(|e| JobError::msg(e.to_string()).permanent())?;
        follow_ups.push(job);
        Ok(())
    }

    /// Takes the follow-ups asked for with [`follow_up`](JobContext::follow_up).
    pub fn take_follow_ups(&self) -> Vec<NewJob> {
        std::mem::take(&mut *self.follow_ups.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The error of a job: a full report (message, causes, backtrace) and whether it is permanent.
///
/// Any `std::error::Error` (and any string) converts into it with `?`, so `perform` can use
/// the errors of the libraries it calls.
pub struct JobError {
    info: ErrorInfo,
    permanent: bool,
    interrupted: bool,
}

impl JobError {
    /// An error with only a message.
    pub fn msg(message: impl Into<String>) -> Self {
        JobError {
            info: ErrorInfo::new(message),
            permanent: false,
            interrupted: false,
        }
    }

    /// An error from a full report.
    pub fn from_info(info: ErrorInfo) -> Self {
        JobError {
            info,
            permanent: false,
            interrupted: false,
        }
    }

    /// Marks the error as an interruption from outside the job (a command handler killed by
    /// a stop signal meant for the whole worker): a worker that is shutting down gives the
    /// job back without using up its attempt; at any other time it is an ordinary failure.
    pub fn interrupted(mut self) -> Self {
        self.interrupted = true;
        self
    }

    /// Whether the error is an interruption from outside the job.
    pub fn is_interrupted(&self) -> bool {
        self.interrupted
    }

    /// Marks the error permanent: the job fails for good without further attempts.
    pub fn permanent(mut self) -> Self {
        self.permanent = true;
        self
    }

    /// Whether the error is permanent.
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }

    /// The full report.
    pub fn info(&self) -> &ErrorInfo {
        &self.info
    }

    /// The report, consuming the error.
    pub fn into_info(self) -> ErrorInfo {
        self.info
    }
}

impl<E> From<E> for JobError
where
    E: Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
{
    fn from(error: E) -> Self {
        let error = error.into();
        let mut info = ErrorInfo::from_error(error.as_ref());
        let backtrace = std::backtrace::Backtrace::capture();
        if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
            info.backtrace = Some(backtrace.to_string());
        }
        JobError {
            info,
            permanent: false,
            interrupted: false,
        }
    }
}

impl fmt::Display for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.info.fmt(f)
    }
}

impl fmt::Debug for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobError")
            .field("info", &self.info)
            .field("permanent", &self.permanent)
            .field("interrupted", &self.interrupted)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_convert_with_their_message() {
        fn read() -> Result<(), JobError> {
            Err(std::io::Error::other("disk on fire"))?;
            Ok(())
        }
        let error = read().err().map(|e| e.into_info().message);
        assert_eq!(error.as_deref(), Some("disk on fire"));
    }

    #[test]
    fn permanence_is_opt_in() {
        let error = JobError::msg("nope");
        assert!(!error.is_permanent());
        assert!(error.permanent().is_permanent());
    }
}
