//! The API's paths under `/v1`, written once for both sides: the server routes these
//! templates, the client fills them in and sends them relative to its base URL.

use std::fmt::Display;

/// A path of the API: a template with at most one parameter (`{id}` or `{name}`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Path(&'static str);

impl Path {
    /// The template as the server routes it (`/jobs/{id}`).
    pub const fn template(self) -> &'static str {
        self.0
    }

    /// The path relative to `/v1/`, for a route without a parameter (`reserve`).
    pub fn plain(self) -> &'static str {
        debug_assert!(!self.0.contains('{'), "{} takes a parameter", self.0);
        self.0.trim_start_matches('/')
    }

    /// The path relative to `/v1/` with its parameter filled in, percent-encoded (a queue
    /// name may hold characters a path may not).
    pub fn of(self, value: impl Display) -> String {
        let encoded = crate::oauth::encode(&value.to_string());
        let (head, rest) = self.0.split_once('{').expect("a template with a parameter");
        let (_, tail) = rest.split_once('}').expect("a closed parameter");
        format!("{}{encoded}{tail}", head.trim_start_matches('/'))
    }
}

/// `POST`: open a batch.
pub const BATCHES: Path = Path("/batches");
/// `GET`: a batch and its counts.
pub const BATCH_INFO: Path = Path("/batches/{id}");
/// `POST`: close a batch.
pub const BATCH_CLOSE: Path = Path("/batches/{id}/close");
/// `POST`: cancel a batch's jobs.
pub const BATCH_CANCEL: Path = Path("/batches/{id}/cancel");

/// `POST` enqueues one job, `GET` lists jobs.
pub const JOBS: Path = Path("/jobs");
/// `POST`: enqueue many.
pub const BATCH: Path = Path("/jobs/batch");
/// `GET`: one job.
pub const JOB: Path = Path("/jobs/{id}");
/// `GET`: a job's history.
pub const HISTORY: Path = Path("/jobs/{id}/history");
/// `GET` and `PUT`: a job's attachment.
pub const ATTACHMENT: Path = Path("/jobs/{id}/attachment");
/// `POST`: cancel a job.
pub const CANCEL: Path = Path("/jobs/{id}/cancel");
/// `POST`: retry a job.
pub const RETRY: Path = Path("/jobs/{id}/retry");
/// `POST`: renew a lease.
pub const HEARTBEAT: Path = Path("/jobs/{id}/heartbeat");
/// `POST`: complete a leased job.
pub const COMPLETE: Path = Path("/jobs/{id}/complete");
/// `POST`: fail a leased job.
pub const FAIL: Path = Path("/jobs/{id}/fail");
/// `POST`: give a leased job back.
pub const RELEASE: Path = Path("/jobs/{id}/release");
/// `POST`: lease jobs.
pub const RESERVE: Path = Path("/reserve");
/// `POST`: whether a job a reserve would take, run limits aside, is due.
pub const RESERVE_DUE: Path = Path("/reserve/due");
/// `POST`: complete many leased jobs.
pub const COMPLETE_BATCH: Path = Path("/complete");
/// `POST`: give back every lease of a worker instance.
pub const RELEASE_ALL: Path = Path("/release-all");
/// `POST`: reclaim expired leases.
pub const RECLAIM: Path = Path("/reclaim");
/// `POST`: prune finished jobs.
pub const PRUNE: Path = Path("/prune");
/// `GET`: job counts by queue and state.
pub const COUNTS: Path = Path("/counts");
/// `GET` lists queues, `POST` creates one.
pub const QUEUES: Path = Path("/queues");
/// `PATCH` updates a queue, `DELETE` deletes it.
pub const QUEUE: Path = Path("/queues/{name}");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_filled_in_and_encoded() {
        assert_eq!(HEARTBEAT.of(42), "jobs/42/heartbeat");
        assert_eq!(QUEUE.of("a b/c"), "queues/a%20b%2Fc");
        assert_eq!(RESERVE.plain(), "reserve");
        assert_eq!(JOB.template(), "/jobs/{id}");
    }
}
