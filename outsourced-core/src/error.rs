//! The one error type every [`Backend`](crate::Backend) returns.

use std::sync::Arc;

use crate::state::{Event, JobState};
use crate::types::JobId;

/// A shareable underlying cause (kept behind an `Arc` so that [`Error`] stays `Clone`, which
/// per-item results of batch calls need).
pub type Source = Arc<dyn std::error::Error + Send + Sync>;

/// What went wrong in a backend call. Each variant says what the caller can do about it; see
/// [`Error::is_retryable`].
#[non_exhaustive]
#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    /// The queue already holds as many live jobs as its limit allows; nothing was stored.
    #[error(
        "queue {queue:?} is full: it has no room for more jobs within its limit of {limit} live {}",
        if *limit == 1 { "job" } else { "jobs" }
    )]
    QueueFull {
        /// The queue that is full.
        queue: String,
        /// Its limit on live jobs.
        limit: u64,
    },
    /// No queue of that name exists (and the backend does not create queues on first use).
    #[error("unknown queue {queue:?}")]
    UnknownQueue {
        /// The name that was asked for.
        queue: String,
    },
    /// No job with that id exists (or the caller may not see it).
    #[error("job {id} not found")]
    NotFound {
        /// The id that was asked for.
        id: JobId,
    },
    /// No worker, producer or admin of that name exists.
    #[error("{}", unknown(kind, name))]
    Unknown {
        /// What was looked for ("worker", "producer", "admin").
        kind: &'static str,
        /// The name that was asked for.
        name: String,
    },
    /// The lease presented is not the job's current lease: it expired and was reclaimed, was
    /// released, or belongs to another worker. Nothing was changed.
    #[error("the lease on job {id} is stale: it expired, was released, or is held by someone else")]
    StaleLease {
        /// The job whose lease was presented.
        id: JobId,
    },
    /// The job's state does not allow the operation.
    #[error("cannot {event} job {id}: its state is {from}")]
    InvalidTransition {
        /// The job.
        id: JobId,
        /// The state it is in.
        from: JobState,
        /// The refused event.
        event: Event,
    },
    /// A job's payload names an unknown class or cannot be decoded into its type.
    #[error("bad payload: {message}")]
    BadPayload {
        /// What is wrong with it.
        message: String,
    },
    /// An attachment is larger than the backend accepts; nothing of it was kept.
    #[error("the attachment is larger than the limit of {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// The job has no attachment (or none the caller may see).
    #[error("job {id} has no attachment")]
    NoAttachment {
        /// The job.
        id: JobId,
    },
    /// The request itself is malformed (an empty class, an oversized payload, a bad name ...).
    #[error("invalid input: {message}")]
    InvalidInput {
        /// What is wrong with it.
        message: String,
    },
    /// A job's unique key is taken by another job, and the job asked for a refusal of
    /// duplicates; nothing was stored.
    #[error("unique key {key:?} is taken by job {existing}")]
    Duplicate {
        /// The key.
        key: String,
        /// The job that holds it.
        existing: JobId,
    },
    /// The operation conflicts with what is stored (a queue that already exists, a queue that
    /// still holds live jobs ...).
    #[error("conflict: {message}")]
    Conflict {
        /// What conflicts.
        message: String,
    },
    /// The request's credentials were refused (a bad or replayed signature, a clock too far
    /// off, a locked client); `code` says which.
    #[error("not authenticated ({code}): {message}")]
    Unauthorized {
        /// The machine-readable reason.
        code: String,
        /// What to do about it.
        message: String,
    },
    /// The caller's role may not do this.
    #[error("forbidden: {message}")]
    Forbidden {
        /// What was refused.
        message: String,
    },
    /// The storage or the network failed. `retryable` is true for transient faults (a lost
    /// connection, a busy database, a timeout).
    #[error("{backend} backend failed: {message}")]
    Backend {
        /// Which backend ("sql", "http").
        backend: &'static str,
        /// A one-line description.
        message: String,
        /// Whether trying again later may succeed.
        retryable: bool,
        /// The underlying error, if any.
        #[source]
        source: Option<Source>,
    },
}

impl Error {
    /// Whether the same call may succeed later without any change by the caller: a full queue
    /// may drain, a transient backend fault may pass. Everything else needs a different request.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::QueueFull { .. } => true,
            Error::Backend { retryable, .. } => *retryable,
            _ => false,
        }
    }

    /// Shorthand for [`Error::InvalidInput`].
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::InvalidInput {
            message: message.into(),
        }
    }

    /// Shorthand for [`Error::Conflict`].
    pub fn conflict(message: impl Into<String>) -> Self {
        Error::Conflict {
            message: message.into(),
        }
    }
}

/// The result type of backend calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An unknown name as an error says it: quoted and escaped (it may come from anyone), except
/// an id, said as a job's is (`batch 42 not found`).
fn unknown(kind: &str, name: &str) -> String {
    match !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
        true => format!("{kind} {name} not found"),
        false => format!("unknown {kind} {name:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryability_is_explicit() {
        let full = Error::QueueFull {
            queue: "q".into(),
            limit: 1,
        };
        assert!(full.is_retryable());
        assert!(!Error::StaleLease { id: JobId(1) }.is_retryable());
        assert!(!Error::invalid("x").is_retryable());
        let transient = Error::Backend {
            backend: "sql",
            message: "database is busy".into(),
            retryable: true,
            source: None,
        };
        assert!(transient.is_retryable());
    }
}

/// The codes of [`Error::Unauthorized`] that the directory of workers decides wherever it is
/// read: by the server for a worker over HTTP, by a worker next to the database for itself.
/// Both say them alike (the wire's `Code` holds the same text, and a test keeps it so).
pub mod refusal {
    /// The principal is locked out.
    pub const LOCKED: &str = "locked";
    /// The worker is not (or no longer) in the directory.
    pub const UNKNOWN_WORKER: &str = "unknown_worker";
}
