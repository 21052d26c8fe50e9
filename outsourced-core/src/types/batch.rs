//! Batches: jobs grouped so that one callback job runs once every one of them has ended.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::error::Error;
use crate::types::{Actor, JobId, NewJob};

/// A batch's id, assigned by the backend when it is opened.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BatchId(pub i64);

impl fmt::Display for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for BatchId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        s.parse()
            .map(BatchId)
            .map_err(|_| Error::invalid(format!("{s:?} is not a batch id")))
    }
}

/// A batch to open: the job to enqueue once every job of the batch has ended.
///
/// The callback is enqueued with its arguments (a JSON object, `{}` unless given) and one more
/// key, `"batch"`: the batch's [`BatchCounts`] as JSON (`{"id", "total", "succeeded",
/// "failed", "cancelled"}`), so that it knows how the batch went.
#[derive(Clone, Debug, PartialEq)]
pub struct NewBatch {
    /// What the batch is, for people (`"scan 42's pages"`).
    pub description: Option<String>,
    /// The job to enqueue when the batch has ended.
    pub callback: NewJob,
}

impl NewBatch {
    /// A batch whose callback is `callback`.
    pub fn new(callback: NewJob) -> Self {
        NewBatch {
            description: None,
            callback,
        }
    }

    /// Sets the description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(description.into());
        self
    }

    /// `InvalidInput` unless the callback is a valid job whose arguments are a JSON object
    /// (the batch's counts are added to them) and that neither repeats, waits for other jobs
    /// nor belongs to a batch; or when the description is over 1,000 bytes.
    pub fn check(&self, max_args_bytes: usize) -> Result<(), Error> {
        let callback = &self.callback;
        callback.check(max_args_bytes)?;
        if callback.args.get("batch").is_some() {
            return Err(Error::invalid(
                "a batch's callback cannot take an argument named \"batch\": the batch's counts go there",
            ));
        }
        if !callback.args.is_object() {
            return Err(Error::invalid(
                "a batch's callback takes its arguments as a JSON object (the batch's counts are added to it under \"batch\")",
            ));
        }
        if callback.repeat.is_some()
            || !callback.depends_on.is_empty()
            || callback.batch.is_some()
            || callback.unique.is_some()
        {
            return Err(Error::invalid(
                "a batch's callback cannot repeat, be unique, wait for other jobs or belong to a batch",
            ));
        }
        if self.description.as_ref().is_some_and(|d| d.len() > 1000) {
            return Err(Error::invalid(
                "a batch's description takes at most 1,000 bytes",
            ));
        }
        Ok(())
    }
}

/// How many jobs of a batch ended, and how.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchCounts {
    /// The batch.
    pub id: BatchId,
    /// Jobs added to it.
    pub total: u64,
    /// Of those, succeeded.
    pub succeeded: u64,
    /// Failed for good.
    pub failed: u64,
    /// Cancelled.
    pub cancelled: u64,
}

impl BatchCounts {
    /// The jobs that have not ended yet.
    pub fn live(&self) -> u64 {
        self.total
            .saturating_sub(self.succeeded + self.failed + self.cancelled)
    }

    /// The counts as the callback's arguments hold them under `"batch"`.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id.0,
            "total": self.total,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "cancelled": self.cancelled,
        })
    }
}

/// A batch as a backend returns it.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchInfo {
    /// Its counts (and id).
    pub counts: BatchCounts,
    /// What it is, for people.
    pub description: Option<String>,
    /// Who opened it (it owns the batch: only it and the admins add to, close or cancel it).
    pub created_by: Actor,
    /// When it was opened.
    pub created_at: DateTime<Utc>,
    /// Whether it was closed: no more jobs may be added, and the callback is enqueued once the
    /// last job has ended.
    pub closed: bool,
    /// The callback job: stored `pending` when the batch is opened (so that a full or unknown
    /// queue refuses the batch then, not its last job's end), made runnable when it ends.
    pub callback: JobId,
    /// When the batch ended (closed, and every job of it ended): its callback was made
    /// runnable then.
    pub finished_at: Option<DateTime<Utc>>,
}
