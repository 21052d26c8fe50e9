//! What happened to jobs, as it happens: a hook for metrics. A backend calls its observer after
//! each change commits; the observer must be quick (count, not do IO).

use std::time::Duration;

/// One thing that happened to one job.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobEvent<'a> {
    /// It was stored.
    Enqueued {
        /// Its queue.
        queue: &'a str,
        /// Its class.
        class: &'a str,
    },
    /// A worker leased it, `waited` after it came due.
    Started {
        /// Its queue.
        queue: &'a str,
        /// Its class.
        class: &'a str,
        /// From its run time to the lease.
        waited: Duration,
    },
    /// An attempt ended: `outcome` says how, after running `ran`.
    Ended {
        /// Its queue.
        queue: &'a str,
        /// Its class.
        class: &'a str,
        /// How.
        outcome: Outcome,
        /// From the lease to the report.
        ran: Duration,
    },
    /// An enqueue found its unique key held and stored nothing: the job that holds the key
    /// is in this queue and class.
    Duplicate {
        /// The holder's queue.
        queue: &'a str,
        /// The holder's class.
        class: &'a str,
    },
    /// An admin ran a failed, cancelled or waiting job again.
    Retried {
        /// Its queue.
        queue: &'a str,
        /// Its class.
        class: &'a str,
    },
    /// A reserve found the queue at one of its run limits (running jobs or rate) and took
    /// nothing from it.
    HeldBack {
        /// The queue.
        queue: &'a str,
    },
}

/// How an attempt ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// It succeeded.
    Completed,
    /// It failed and will be retried.
    RetryScheduled,
    /// It failed for good.
    Failed,
    /// Its lease expired and was reclaimed (a failed attempt).
    Reclaimed,
    /// It was given back, or ended cancelled.
    Released,
}

impl Outcome {
    /// Its name in metrics: `completed`, `retry_scheduled`, `failed`, `reclaimed`, `released`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::RetryScheduled => "retry_scheduled",
            Outcome::Failed => "failed",
            Outcome::Reclaimed => "reclaimed",
            Outcome::Released => "released",
        }
    }
}

/// Receives [`JobEvent`]s.
pub trait Observer: Send + Sync + std::fmt::Debug {
    /// Called once per event, after the change committed.
    fn observe(&self, event: JobEvent<'_>);
}
