//! The façade: `SqlBackend`'s implementation of the core's `Backend` trait, one operation
//! module per call, above the handle (`backend.rs`), which knows nothing of operations.
//!
//! Every call that writes runs to its end in a task of its own ([`detached`], an enqueue's
//! group commit, or a reserve's claim): a caller that goes away (a timeout, an HTTP client
//! that hangs up) stops waiting for the answer but never cuts the write mid-flight. Cut mid-query, a MySQL connection stays unusable until the pool
//! gives up on it, and a transaction cut between statements holds its locks until its
//! connection is next used. Reads are cheap to cut and run in the caller's task.

use async_trait::async_trait;
use sea_orm::{DatabaseTransaction, TransactionTrait};

use crate::backend::{SqlBackend, detached};
use crate::dialect::Flavor;
use crate::error::db_error;
use crate::wake;
use crate::{
    admin, attachments, complete, enqueue, fail, heartbeat, insert, queues, read, reclaim, release,
    reserve,
};
use outsourced_core::{
    Actor, AttachmentInfo, Backend, BatchId, BatchInfo, Completion, CountFilter, Download,
    Enqueued, Failure, Heartbeat, HistoryEntry, JobFilter, JobId, JobRecord, JobState, LeaseRef,
    NewBatch, NewJob, PruneOptions, QueueInfo, QueueLimit, QueueUpdate, ReclaimOptions,
    ReserveOptions, Reserved, Result, StateCount, Upload, WorkerInstance,
};

/// A write run to its end whatever its caller does: `$body` uses `backend` (a clone of the
/// handle) and the owned copies its caller made.
macro_rules! write_call {
    ($self:ident, |$backend:ident| $body:expr) => {{
        let $backend = $self.clone();
        detached(async move { $body.await }).await
    }};
}

/// The calls of the façade outside the trait: enqueueing in the host application's own
/// transaction.
impl SqlBackend {
    /// Enqueues jobs inside a transaction of the caller's own (best begun with
    /// [`SqlBackend::begin`]), so that they commit or roll back with the caller's other
    /// writes: committed means the jobs and their first history rows exist; rolled back means
    /// neither does. Limits and validation are as for `enqueue_batch`; a refusal (a full
    /// queue, say) leaves the transaction usable, with none of the jobs in it.
    ///
    /// On PostgreSQL, waiting workers are notified when the transaction commits; elsewhere,
    /// call [`SqlBackend::notify_enqueued`] after the commit so that this process's waiting
    /// workers look at once (other processes' find the jobs at their next look).
    pub async fn enqueue_in(
        &self,
        txn: &DatabaseTransaction,
        by: &Actor,
        jobs: Vec<NewJob>,
    ) -> Result<Vec<JobRecord>> {
        let each = self.enqueue_each_in(txn, by, jobs).await?;
        Ok(each.into_iter().map(|(job, _)| job).collect())
    }

    /// Enqueues jobs inside a transaction of the caller's own, as
    /// [`enqueue_in`](SqlBackend::enqueue_in) does, and says of each whether it was a
    /// duplicate of a unique key (then its record is the holder's).
    pub async fn enqueue_each_in(
        &self,
        txn: &DatabaseTransaction,
        by: &Actor,
        jobs: Vec<NewJob>,
    ) -> Result<Vec<(JobRecord, bool)>> {
        for job in &jobs {
            job.check(self.config().max_args_bytes)?;
        }
        // A savepoint, so that a refusal half-way (the second queue full) undoes the first
        // queue's slots, and an error on PostgreSQL does not abort the caller's transaction.
        let savepoint = txn.begin().await.map_err(db_error)?;
        let result = self.insert_and_notify(&savepoint, by, &jobs).await;
        let placed = self.finish(savepoint, result).await?;
        placed
            .iter()
            .map(|p| Ok((crate::convert::job_record(&p.row)?, p.duplicate)))
            .collect()
    }

    async fn insert_and_notify(
        &self,
        db: &DatabaseTransaction,
        by: &Actor,
        jobs: &[NewJob],
    ) -> Result<Vec<insert::Placed>> {
        let rows = insert::insert_in(db, self, by, jobs, self.now()).await?;
        if self.flavor() == Flavor::Postgres {
            let channel = wake::channel(self.inner.config.schema.as_deref());
            // From no one: this process's own listener wakes its reservers too, at the commit.
            wake::notify_others(db, &channel, "")
                .await
                .map_err(db_error)?;
        }
        Ok(rows)
    }
}

#[async_trait]
impl Backend for SqlBackend {
    // Not detached: an enqueue's write runs in its group commit's own task already, which a
    // caller that goes away cannot cut; another hop would only slow the hottest call.
    async fn enqueue(&self, by: &Actor, job: NewJob) -> Result<JobRecord> {
        enqueue::one(self, by, job, None).await
    }

    async fn enqueue_batch(&self, by: &Actor, jobs: Vec<NewJob>) -> Result<Vec<JobId>> {
        let each = enqueue::batch(self, by, jobs, None).await?;
        Ok(each.into_iter().map(|e| e.id).collect())
    }

    async fn enqueue_each(&self, by: &Actor, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>> {
        enqueue::batch(self, by, jobs, None).await
    }

    async fn enqueue_attached(
        &self,
        by: &Actor,
        job: NewJob,
        file: Upload,
    ) -> Result<(JobRecord, bool)> {
        // Not detached: the upload streams from the caller, and a caller that goes away ends
        // it; the upload is then discarded, and the job never written.
        enqueue::with_attachment(self, by, job, file).await
    }

    async fn attach(&self, _by: &Actor, id: JobId, file: Upload) -> Result<AttachmentInfo> {
        // As above: the bytes come from the caller. The link is one short transaction.
        attachments::attach(self, id, file).await
    }

    async fn attachment(&self, _by: &Actor, id: JobId) -> Result<Download> {
        attachments::download(self, id).await
    }

    async fn reserve(&self, by: &WorkerInstance, opts: ReserveOptions) -> Result<Vec<Reserved>> {
        // The claim itself is detached inside (a long poll must stay cancellable).
        reserve::reserve(self, by, opts).await
    }

    async fn any_due(&self, _by: &WorkerInstance, opts: &ReserveOptions) -> Result<bool> {
        reserve::due(self, opts).await
    }

    async fn heartbeat(&self, by: &WorkerInstance, lease: &LeaseRef) -> Result<Heartbeat> {
        let (by, lease, backend) = (by.clone(), lease.clone(), self.clone());
        detached(async move { heartbeat::heartbeat(&backend, &by, &lease).await }).await
    }

    async fn complete_batch(
        &self,
        by: &WorkerInstance,
        done: &[Completion],
    ) -> Result<Vec<Result<()>>> {
        let (by, done) = (by.clone(), done.to_vec());
        write_call!(self, |backend| complete::complete_batch(
            &backend, &by, &done
        ))
    }

    async fn fail(
        &self,
        by: &WorkerInstance,
        lease: &LeaseRef,
        failure: Failure,
    ) -> Result<JobState> {
        let (by, lease) = (by.clone(), lease.clone());
        write_call!(self, |backend| fail::fail(&backend, &by, &lease, failure))
    }

    async fn release(&self, by: &WorkerInstance, lease: &LeaseRef) -> Result<()> {
        let (by, lease) = (by.clone(), lease.clone());
        write_call!(self, |backend| release::release(&backend, &by, &lease))
    }

    async fn release_all(&self, by: &WorkerInstance) -> Result<u64> {
        let by = by.clone();
        write_call!(self, |backend| release::release_all(&backend, &by))
    }

    async fn reclaim_expired(&self, by: &Actor, opts: ReclaimOptions) -> Result<u64> {
        let by = by.clone();
        write_call!(self, |backend| reclaim::reclaim_expired(
            &backend, &by, opts
        ))
    }

    async fn job(&self, _by: &Actor, id: JobId) -> Result<JobRecord> {
        read::job(self, id).await
    }

    async fn history(&self, _by: &Actor, id: JobId) -> Result<Vec<HistoryEntry>> {
        read::history(self, id).await
    }

    async fn jobs(&self, _by: &Actor, filter: JobFilter) -> Result<Vec<JobRecord>> {
        read::jobs(self, filter).await
    }

    async fn counts(&self, _by: &Actor, filter: CountFilter) -> Result<Vec<StateCount>> {
        read::counts(self, filter).await
    }

    async fn cancel(&self, by: &Actor, id: JobId) -> Result<JobState> {
        let by = by.clone();
        write_call!(self, |backend| admin::cancel(&backend, &by, id))
    }

    async fn retry(&self, by: &Actor, id: JobId) -> Result<JobRecord> {
        let by = by.clone();
        write_call!(self, |backend| admin::retry(&backend, &by, id))
    }

    async fn create_queue(&self, _by: &Actor, name: &str, limit: QueueLimit) -> Result<QueueInfo> {
        let (name, backend) = (name.to_owned(), self.clone());
        detached(async move { queues::create(&backend, &name, limit).await }).await
    }

    async fn update_queue(
        &self,
        _by: &Actor,
        name: &str,
        update: QueueUpdate,
    ) -> Result<QueueInfo> {
        let (name, backend) = (name.to_owned(), self.clone());
        detached(async move { queues::update(&backend, &name, update).await }).await
    }

    async fn delete_queue(&self, _by: &Actor, name: &str) -> Result<()> {
        let (name, backend) = (name.to_owned(), self.clone());
        detached(async move { queues::delete(&backend, &name).await }).await
    }

    async fn queues(&self, _by: &Actor) -> Result<Vec<QueueInfo>> {
        queues::list(self).await
    }

    async fn prune(&self, _by: &Actor, opts: PruneOptions) -> Result<u64> {
        let backend = self.clone();
        detached(async move { crate::prune::prune(&backend, opts).await }).await
    }

    async fn open_batch(&self, by: &Actor, batch: NewBatch) -> Result<BatchInfo> {
        let by = by.clone();
        write_call!(self, |backend| crate::batches::open(&backend, &by, batch))
    }

    async fn close_batch(&self, by: &Actor, id: BatchId) -> Result<BatchInfo> {
        let by = by.clone();
        write_call!(self, |backend| crate::batches::close(&backend, &by, id))
    }

    async fn batch(&self, _by: &Actor, id: BatchId) -> Result<BatchInfo> {
        crate::batches::read(self, id).await
    }

    async fn cancel_batch(&self, by: &Actor, id: BatchId) -> Result<u64> {
        let by = by.clone();
        write_call!(self, |backend| crate::batches::cancel(&backend, &by, id))
    }
}
