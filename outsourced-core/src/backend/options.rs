//! Options of backend calls, passed as structs so that a new field breaks no backend.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::state::JobState;
use crate::types::{Actor, JobId, Owner};

/// What [`Backend::reserve`](crate::Backend::reserve) may hand out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReserveOptions {
    /// The most jobs to lease at once (at least 1).
    pub limit: u32,
    /// Only these queues; empty means every queue.
    pub queues: Vec<String>,
    /// Only jobs of these classes (those the worker can run); `None` takes any class (a
    /// catch-all worker). An empty list is `InvalidInput`.
    pub classes: Option<Vec<String>>,
    /// Only priorities at or above this (inclusive).
    pub min_priority: Option<i32>,
    /// Only priorities at or below this (inclusive).
    pub max_priority: Option<i32>,
    /// Wait up to this long for a job when none is ready (long-poll); `None` returns at once.
    pub wait: Option<Duration>,
    /// The lease length to ask for; the backend's default when `None`, clamped to its bounds.
    pub lease: Option<Duration>,
}

impl Default for ReserveOptions {
    fn default() -> Self {
        ReserveOptions {
            limit: 1,
            queues: Vec::new(),
            classes: None,
            min_priority: None,
            max_priority: None,
            wait: None,
            lease: None,
        }
    }
}

impl ReserveOptions {
    /// Up to `limit` jobs from any queue.
    pub fn up_to(limit: u32) -> Self {
        ReserveOptions {
            limit,
            ..ReserveOptions::default()
        }
    }

    /// Restricts to `queues`.
    pub fn queues<I, S>(mut self, queues: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.queues = queues.into_iter().map(Into::into).collect();
        self
    }

    /// Restricts to jobs of `classes`.
    pub fn classes<I, S>(mut self, classes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.classes = Some(classes.into_iter().map(Into::into).collect());
        self
    }

    /// Waits up to `wait` for a job.
    pub fn wait(mut self, wait: Duration) -> Self {
        self.wait = Some(wait);
        self
    }
}

/// Which jobs [`Backend::counts`](crate::Backend::counts) counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CountFilter {
    /// Only this queue.
    pub queue: Option<String>,
    /// Only this owner's jobs.
    pub owner: Option<Owner>,
    /// Only jobs this caller enqueued (the HTTP server sets it for producers).
    pub enqueued_by: Option<Actor>,
}

/// Which jobs [`Backend::jobs`](crate::Backend::jobs) lists, newest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobFilter {
    /// Only this queue.
    pub queue: Option<String>,
    /// Only this state.
    pub state: Option<JobState>,
    /// Only this class.
    pub class: Option<String>,
    /// Only classes that begin with this (`Mail::` lists `Mail::Welcome` and `Mail::Reset`),
    /// taken literally: `%` and `_` are no wildcards.
    pub class_prefix: Option<String>,
    /// Only this owner's jobs.
    pub owner: Option<Owner>,
    /// Only jobs this caller enqueued (the HTTP server sets it for producers).
    pub enqueued_by: Option<Actor>,
    /// Only jobs stored with this unique key (in whatever queue and class).
    pub unique_key: Option<String>,
    /// Only jobs of this concurrency key.
    pub concurrency_key: Option<String>,
    /// Only the follow-ups of this job (those its success stored).
    pub parent: Option<JobId>,
    /// Only the jobs that wait (or waited) for this job.
    pub dependants_of: Option<JobId>,
    /// Only the jobs of this batch.
    pub batch: Option<crate::BatchId>,
    /// Only jobs enqueued at or after this time.
    pub created_since: Option<DateTime<Utc>>,
    /// Only jobs enqueued before this time.
    pub created_until: Option<DateTime<Utc>>,
    /// Only jobs older than this one (the cursor: the last id of the previous page).
    pub before: Option<JobId>,
    /// Only jobs newer than this one (the cursor back: the first id of the page after it):
    /// the `limit` jobs just newer, still listed newest first.
    pub after: Option<JobId>,
    /// The page size (the backend caps it).
    pub limit: u32,
}

impl Default for JobFilter {
    fn default() -> Self {
        JobFilter {
            queue: None,
            state: None,
            class: None,
            class_prefix: None,
            owner: None,
            enqueued_by: None,
            unique_key: None,
            concurrency_key: None,
            parent: None,
            dependants_of: None,
            batch: None,
            created_since: None,
            created_until: None,
            before: None,
            after: None,
            limit: 100,
        }
    }
}

/// How much one [`Backend::prune`](crate::Backend::prune) pass may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PruneOptions {
    /// The most jobs to remove in this pass (bounded, so one pass never holds a long write).
    pub limit: u32,
}

impl Default for PruneOptions {
    fn default() -> Self {
        PruneOptions { limit: 1000 }
    }
}

/// How much one [`Backend::reclaim_expired`](crate::Backend::reclaim_expired) pass may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReclaimOptions {
    /// The most jobs to reclaim in this pass (bounded, so one pass never holds a long write).
    pub limit: u32,
}

impl Default for ReclaimOptions {
    fn default() -> Self {
        ReclaimOptions { limit: 1000 }
    }
}
