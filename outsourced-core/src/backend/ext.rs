//! Conveniences over [`Backend`], and the trait's implementations for `Arc` and `Box`.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;

use super::{Backend, CountFilter, JobFilter, PruneOptions, ReclaimOptions, ReserveOptions};
use crate::error::{Error, Result};
use crate::state::JobState;
use crate::types::{
    Actor, AttachmentInfo, Completion, Download, Enqueued, Failure, Heartbeat, HistoryEntry, JobId,
    JobRecord, LeaseRef, NewJob, Owner, QueueInfo, QueueLimit, QueueUpdate, Reason, Reserved,
    StateCount, StateCounts, Upload, WorkerInstance, by_state,
};

/// Calls built on the [`Backend`] trait, for every backend alike.
///
/// Implemented for every `Backend`; backends MUST NOT implement it themselves, so that these
/// calls mean the same everywhere.
#[async_trait]
pub trait BackendExt: Backend {
    /// Reports the success of one leased job, without a result (see
    /// [`Backend::complete_batch`]).
    async fn complete(&self, by: &WorkerInstance, lease: &LeaseRef) -> Result<()> {
        self.complete_one(by, Completion::from(lease.clone())).await
    }

    /// Reports the success of one leased job with its result, if any (see
    /// [`Backend::complete_batch`]).
    async fn complete_one(&self, by: &WorkerInstance, done: Completion) -> Result<()> {
        let mut results = self.complete_batch(by, std::slice::from_ref(&done)).await?;
        results.pop().unwrap_or_else(|| {
            Err(Error::Backend {
                backend: "core",
                message: "complete_batch returned no answer for one completion".into(),
                retryable: false,
                source: None,
            })
        })
    }

    /// The result of the job's latest success (`None` when it has not succeeded or returned
    /// nothing); read from its history, so with the history's access rules.
    async fn result(&self, by: &Actor, id: JobId) -> Result<Option<Value>> {
        let history = self.history(by, id).await?;
        Ok(history
            .into_iter()
            .rev()
            .find(|entry| entry.reason == Reason::Completed)
            .and_then(|entry| entry.result))
    }

    /// Why `job` may not start although it is due ([`QueueInfo::held_back_counting`]), its
    /// queue as it stands now and, when the queue limits running jobs per key, its key's
    /// running jobs counted.
    async fn why_held_back(
        &self,
        by: &Actor,
        job: &JobRecord,
        now: DateTime<Utc>,
    ) -> Result<Option<String>> {
        let queue = self.queue(by, &job.queue).await?;
        let key_running = match (&job.concurrency_key, queue.limits.max_running_per_key) {
            (Some(key), Some(max)) if job.state.is_waiting() => {
                let filter = JobFilter {
                    queue: Some(job.queue.clone()),
                    state: Some(JobState::Running),
                    concurrency_key: Some(key.clone()),
                    limit: max.saturating_add(1),
                    ..JobFilter::default()
                };
                Some(self.jobs(by, filter).await?.len() as u64)
            }
            _ => None,
        };
        Ok(queue.held_back_counting(job, now, key_running))
    }

    /// One queue by name; `UnknownQueue` when there is none.
    async fn queue(&self, by: &Actor, name: &str) -> Result<QueueInfo> {
        let queues = self.queues(by).await?;
        queues
            .into_iter()
            .find(|q| q.name == name)
            .ok_or_else(|| Error::UnknownQueue {
                queue: name.to_owned(),
            })
    }

    /// How many jobs an owner has in each state, over all queues.
    async fn owner_counts(&self, by: &Actor, owner: &Owner) -> Result<StateCounts> {
        let filter = CountFilter {
            owner: Some(owner.clone()),
            ..CountFilter::default()
        };
        Ok(by_state(&self.counts(by, filter).await?))
    }
}

impl<T: Backend + ?Sized> BackendExt for T {}

/// Implements [`Backend`] for a smart pointer by forwarding every call to the pointee.
macro_rules! forward_backend {
    ($wrapper:ident) => {
        #[async_trait]
        #[deny(clippy::missing_trait_methods)]
        impl<T: Backend + ?Sized> Backend for $wrapper<T> {
            async fn enqueue(&self, by: &Actor, job: NewJob) -> Result<JobRecord> {
                (**self).enqueue(by, job).await
            }
            async fn enqueue_batch(&self, by: &Actor, jobs: Vec<NewJob>) -> Result<Vec<JobId>> {
                (**self).enqueue_batch(by, jobs).await
            }
            async fn enqueue_each(&self, by: &Actor, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>> {
                (**self).enqueue_each(by, jobs).await
            }
            async fn enqueue_with_attachment(
                &self,
                by: &Actor,
                job: NewJob,
                file: Upload,
            ) -> Result<JobRecord> {
                (**self).enqueue_with_attachment(by, job, file).await
            }
            async fn enqueue_attached(
                &self,
                by: &Actor,
                job: NewJob,
                file: Upload,
            ) -> Result<(JobRecord, bool)> {
                (**self).enqueue_attached(by, job, file).await
            }
            async fn attach(&self, by: &Actor, id: JobId, file: Upload) -> Result<AttachmentInfo> {
                (**self).attach(by, id, file).await
            }
            async fn attachment(&self, by: &Actor, id: JobId) -> Result<Download> {
                (**self).attachment(by, id).await
            }
            async fn reserve(
                &self,
                by: &WorkerInstance,
                opts: ReserveOptions,
            ) -> Result<Vec<Reserved>> {
                (**self).reserve(by, opts).await
            }
            async fn any_due(&self, by: &WorkerInstance, opts: &ReserveOptions) -> Result<bool> {
                (**self).any_due(by, opts).await
            }
            async fn heartbeat(&self, by: &WorkerInstance, lease: &LeaseRef) -> Result<Heartbeat> {
                (**self).heartbeat(by, lease).await
            }
            async fn complete_batch(
                &self,
                by: &WorkerInstance,
                done: &[Completion],
            ) -> Result<Vec<Result<()>>> {
                (**self).complete_batch(by, done).await
            }
            async fn fail(
                &self,
                by: &WorkerInstance,
                lease: &LeaseRef,
                failure: Failure,
            ) -> Result<JobState> {
                (**self).fail(by, lease, failure).await
            }
            async fn release(&self, by: &WorkerInstance, lease: &LeaseRef) -> Result<()> {
                (**self).release(by, lease).await
            }
            async fn release_all(&self, by: &WorkerInstance) -> Result<u64> {
                (**self).release_all(by).await
            }
            async fn reclaim_expired(&self, by: &Actor, opts: ReclaimOptions) -> Result<u64> {
                (**self).reclaim_expired(by, opts).await
            }
            async fn job(&self, by: &Actor, id: JobId) -> Result<JobRecord> {
                (**self).job(by, id).await
            }
            async fn history(&self, by: &Actor, id: JobId) -> Result<Vec<HistoryEntry>> {
                (**self).history(by, id).await
            }
            async fn jobs(&self, by: &Actor, filter: JobFilter) -> Result<Vec<JobRecord>> {
                (**self).jobs(by, filter).await
            }
            async fn counts(&self, by: &Actor, filter: CountFilter) -> Result<Vec<StateCount>> {
                (**self).counts(by, filter).await
            }
            async fn cancel(&self, by: &Actor, id: JobId) -> Result<JobState> {
                (**self).cancel(by, id).await
            }
            async fn retry(&self, by: &Actor, id: JobId) -> Result<JobRecord> {
                (**self).retry(by, id).await
            }
            async fn create_queue(
                &self,
                by: &Actor,
                name: &str,
                limit: QueueLimit,
            ) -> Result<QueueInfo> {
                (**self).create_queue(by, name, limit).await
            }
            async fn update_queue(
                &self,
                by: &Actor,
                name: &str,
                update: QueueUpdate,
            ) -> Result<QueueInfo> {
                (**self).update_queue(by, name, update).await
            }
            async fn delete_queue(&self, by: &Actor, name: &str) -> Result<()> {
                (**self).delete_queue(by, name).await
            }
            async fn prune(&self, by: &Actor, opts: PruneOptions) -> Result<u64> {
                (**self).prune(by, opts).await
            }
            async fn queues(&self, by: &Actor) -> Result<Vec<QueueInfo>> {
                (**self).queues(by).await
            }
            async fn open_batch(
                &self,
                by: &Actor,
                batch: $crate::NewBatch,
            ) -> Result<$crate::BatchInfo> {
                (**self).open_batch(by, batch).await
            }
            async fn close_batch(
                &self,
                by: &Actor,
                id: $crate::BatchId,
            ) -> Result<$crate::BatchInfo> {
                (**self).close_batch(by, id).await
            }
            async fn batch(&self, by: &Actor, id: $crate::BatchId) -> Result<$crate::BatchInfo> {
                (**self).batch(by, id).await
            }
            async fn cancel_batch(&self, by: &Actor, id: $crate::BatchId) -> Result<u64> {
                (**self).cancel_batch(by, id).await
            }
        }
    };
}

forward_backend!(Arc);
forward_backend!(Box);
