//! What a backend stores and returns: jobs, leases, history rows and error reports.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::error::Error;
use crate::state::JobState;
use crate::types::{Actor, AttachmentInfo, Backoff, BatchId, JobId, Owner, Repeat, WorkerInstance};

/// A stored job, as a backend returns it.
#[derive(Clone, Debug, PartialEq)]
pub struct JobRecord {
    /// The job's id.
    pub id: JobId,
    /// Its queue.
    pub queue: String,
    /// Its class.
    pub class: String,
    /// Its arguments.
    pub args: Value,
    /// Lower runs first.
    pub priority: i32,
    /// Its current state.
    pub state: JobState,
    /// Not before this time (the next attempt's time while it waits).
    pub run_at: DateTime<Utc>,
    /// Attempts made so far, counted when an attempt starts (at reserve).
    pub attempts: u32,
    /// Attempts at most.
    pub max_attempts: u32,
    /// The job's own time limit per attempt, if it set one.
    pub max_run_time: Option<Duration>,
    /// The wait between attempts.
    pub backoff: Backoff,
    /// Its repeat schedule, if any.
    pub repeat: Option<Repeat>,
    /// Its owner, if any.
    pub owner: Option<Owner>,
    /// Who enqueued it.
    pub enqueued_by: Actor,
    /// Whether a cancel was requested while it runs.
    pub cancel_requested: bool,
    /// The current lease's holder and expiry, while it runs (never the token).
    pub lease: Option<LeaseInfo>,
    /// The message of its latest failure, if any.
    pub last_error: Option<String>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it reached its terminal state, if it did.
    pub finished_at: Option<DateTime<Utc>>,
    /// Its attachment, if it has one.
    pub attachment: Option<AttachmentInfo>,
    /// The unique key it was stored with, if any.
    pub unique_key: Option<String>,
    /// The key its queue's per-key limit counts it under, if any.
    pub concurrency_key: Option<String>,
    /// The job whose success enqueued it, when it is a follow-up.
    pub parent: Option<JobId>,
    /// The jobs it waits (or waited) for, in id order; empty for most jobs.
    pub dependencies: Vec<JobId>,
    /// How many of them have not succeeded yet (0 once it may run).
    pub dependencies_left: u32,
    /// The batch it belongs to, if any.
    pub batch: Option<BatchId>,
    /// The batch whose callback it is, if it is one: it waits `pending` until the batch ends.
    pub callback_of: Option<BatchId>,
}

#[cfg(test)]
impl JobRecord {
    /// A job of `class` in `queue` as just enqueued (id 1, available, due at the epoch), for
    /// the crate's unit tests to change what they look at.
    pub(crate) fn example(queue: &str, class: &str) -> JobRecord {
        let epoch = DateTime::UNIX_EPOCH;
        JobRecord {
            id: JobId(1),
            queue: queue.into(),
            class: class.into(),
            args: Value::Null,
            priority: 0,
            state: crate::JobState::Available,
            run_at: epoch,
            attempts: 0,
            max_attempts: 25,
            max_run_time: None,
            backoff: crate::Backoff::Polynomial,
            repeat: None,
            owner: None,
            enqueued_by: crate::Actor::application(),
            cancel_requested: false,
            lease: None,
            last_error: None,
            created_at: epoch,
            updated_at: epoch,
            finished_at: None,
            attachment: None,
            unique_key: None,
            concurrency_key: None,
            parent: None,
            dependencies: Vec::new(),
            dependencies_left: 0,
            batch: None,
            callback_of: None,
        }
    }
}

impl JobRecord {
    /// The payload as stored and sent: `{"class": ..., "args": ...}`.
    pub fn payload(&self) -> Value {
        serde_json::json!({ "class": self.class, "args": self.args })
    }
}

/// The public part of a lease: who holds a running job and until when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseInfo {
    /// The worker instance that holds it.
    pub holder: WorkerInstance,
    /// When it runs out unless renewed.
    pub expires_at: DateTime<Utc>,
}

/// A lease granted by reserve: the right to report on one attempt of one job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lease {
    /// The leased job.
    pub job_id: JobId,
    /// The fencing token; every report on this attempt must present it.
    pub token: String,
    /// When it runs out unless renewed by a heartbeat.
    pub expires_at: DateTime<Utc>,
    /// The attempt this lease is for (1 for the first).
    pub attempt: u32,
    /// The worker instance that holds it.
    pub holder: WorkerInstance,
}

impl Lease {
    /// The part a worker presents when it reports.
    pub fn to_ref(&self) -> LeaseRef {
        LeaseRef {
            job_id: self.job_id,
            token: self.token.clone(),
        }
    }
}

/// A job id and lease token, as presented by the worker that holds the lease.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LeaseRef {
    /// The leased job.
    pub job_id: JobId,
    /// The lease's fencing token.
    pub token: String,
}

/// A job handed to a worker, with its lease.
#[derive(Clone, Debug, PartialEq)]
pub struct Reserved {
    /// The job as it is now (running).
    pub job: JobRecord,
    /// The lease to present when reporting.
    pub lease: Lease,
    /// The results of the jobs it depends on, by job (those that returned one).
    pub dependency_results: BTreeMap<JobId, Value>,
}

/// The answer to a heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    /// The lease's new expiry.
    pub expires_at: DateTime<Utc>,
    /// Whether a cancel was requested: the worker should stop the job and release it.
    pub cancel_requested: bool,
}

/// A full error report: what a failed attempt leaves in the history.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct ErrorInfo {
    /// The error's own message.
    pub message: String,
    /// The messages of its causes, outermost first.
    pub causes: Vec<String>,
    /// A backtrace, or a command's standard error, when there is one.
    pub backtrace: Option<String>,
}

impl ErrorInfo {
    /// A report with only a message.
    pub fn new(message: impl Into<String>) -> Self {
        ErrorInfo {
            message: message.into(),
            ..ErrorInfo::default()
        }
    }

    /// A report of an error and its chain of sources.
    pub fn from_error(error: &(dyn std::error::Error + 'static)) -> Self {
        let mut causes = Vec::new();
        let mut source = error.source();
        while let Some(cause) = source {
            causes.push(cause.to_string());
            source = cause.source();
        }
        ErrorInfo {
            message: error.to_string(),
            causes,
            backtrace: None,
        }
    }
}

impl fmt::Display for ErrorInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        for cause in &self.causes {
            write!(f, ": {cause}")?;
        }
        Ok(())
    }
}

/// How a worker wants a failed attempt followed up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryPlan {
    /// Wait as the job's stored back-off says.
    Backoff,
    /// Wait this long (the job's own `reschedule_at`).
    After(Duration),
    /// Do not retry: the failure is permanent (an unknown class, an undecodable payload).
    Never,
}

/// A failed attempt, as the worker reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The error.
    pub error: ErrorInfo,
    /// What to do next.
    pub retry: RetryPlan,
}

/// Why a history row was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The job was enqueued.
    Enqueued,
    /// A worker leased it.
    Reserved,
    /// The worker reported success.
    Completed,
    /// A repeating job was scheduled for its next run.
    Repeat,
    /// An attempt failed and another is scheduled.
    RetryScheduled,
    /// An attempt failed and none is left (or the failure is permanent).
    Failed,
    /// The lease ran out without an answer.
    LeaseExpired,
    /// The worker gave the lease back without using up an attempt.
    Released,
    /// The job was cancelled.
    Cancelled,
    /// A cancel was requested while the job runs (the state does not change).
    CancelRequested,
    /// An admin made the job available again.
    Retried,
    /// A duplicate enqueue replaced the waiting job's arguments and run time (debounce).
    Replaced,
    /// Every job it depends on succeeded: it may run (or waits for its run time).
    DependenciesSucceeded,
    /// A job it depends on failed or was cancelled, so it never runs (the row's error names
    /// that job).
    DependencyEnded,
    /// The batch whose callback it is ended: it may run, the batch's counts in its arguments.
    BatchEnded,
}

impl Reason {
    /// Every reason.
    pub const ALL: [Reason; 15] = [
        Reason::Enqueued,
        Reason::Reserved,
        Reason::Completed,
        Reason::Repeat,
        Reason::RetryScheduled,
        Reason::Failed,
        Reason::LeaseExpired,
        Reason::Released,
        Reason::Cancelled,
        Reason::CancelRequested,
        Reason::Retried,
        Reason::Replaced,
        Reason::DependenciesSucceeded,
        Reason::DependencyEnded,
        Reason::BatchEnded,
    ];

    /// The snake_case name used in storage and on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Enqueued => "enqueued",
            Reason::Reserved => "reserved",
            Reason::Completed => "completed",
            Reason::Repeat => "repeat",
            Reason::RetryScheduled => "retry_scheduled",
            Reason::Failed => "failed",
            Reason::LeaseExpired => "lease_expired",
            Reason::Released => "released",
            Reason::Cancelled => "cancelled",
            Reason::CancelRequested => "cancel_requested",
            Reason::Retried => "retried",
            Reason::Replaced => "replaced",
            Reason::DependenciesSucceeded => "dependencies_succeeded",
            Reason::DependencyEnded => "dependency_ended",
            Reason::BatchEnded => "batch_ended",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Reason {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Reason::ALL
            .into_iter()
            .find(|reason| reason.as_str() == s)
            .ok_or_else(|| Error::invalid(format!("{s:?} is not a history reason")))
    }
}

/// One row of a job's history: one transition (or a cancel request).
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryEntry {
    /// The job.
    pub job_id: JobId,
    /// 1 for the enqueue, then one more per row, without gaps.
    pub seq: u32,
    /// The state before (`None` for the enqueue).
    pub from: Option<JobState>,
    /// The state after.
    pub to: JobState,
    /// When it happened, by the backend's clock.
    pub at: DateTime<Utc>,
    /// Who caused it.
    pub actor: Actor,
    /// The attempt it belongs to (0 before the first).
    pub attempt: u32,
    /// Why it happened.
    pub reason: Reason,
    /// The lease it concerns, if any.
    pub lease_token: Option<String>,
    /// The error of a failed attempt.
    pub error: Option<ErrorInfo>,
    /// What the job produced, on the `completed` row of the attempt that produced it.
    pub result: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner")]
    struct Inner;

    #[test]
    fn error_info_keeps_the_cause_chain() {
        let info = ErrorInfo::from_error(&Outer(Inner));
        assert_eq!(info.message, "outer");
        assert_eq!(info.causes, ["inner"]);
        assert_eq!(info.to_string(), "outer: inner");
    }

    #[test]
    fn reasons_round_trip_through_text() {
        for reason in Reason::ALL {
            assert_eq!(reason.as_str().parse::<Reason>().ok(), Some(reason));
        }
    }
}
