//! The [`Backend`] trait: the contract every storage (SQL) and transport (HTTP) implements.
//!
//! Each bullet in a method's docs is a promise with a scenario in the conformance suite
//! (`docs/conformance.md` maps them).

mod ext;
mod options;

pub use ext::BackendExt;
pub use options::{CountFilter, JobFilter, PruneOptions, ReclaimOptions, ReserveOptions};

use async_trait::async_trait;

use crate::error::Result;
use crate::state::JobState;
use crate::types::{
    Actor, AttachmentInfo, BatchId, BatchInfo, Completion, Download, Enqueued, Failure, Heartbeat,
    HistoryEntry, JobId, JobRecord, LeaseRef, NewBatch, NewJob, QueueInfo, QueueLimit, QueueUpdate,
    Reserved, StateCount, Upload, WorkerInstance,
};

/// Where jobs live: enqueue, lease, report, inspect, administer.
///
/// Object safe; the worker and the HTTP server hold an `Arc<dyn Backend>`. Times are the
/// backend's own clock, never the caller's; they are kept to the millisecond.
///
/// `by` has one meaning in every call: who acts, for the record. The history rows a change
/// writes name it as their actor, and a report on a lease must come from the worker instance
/// that holds it. No backend authorizes by it and reads ignore it: deciding who may do what is
/// the HTTP server's, from the request's credentials and the role table (`docs/http-api.md`);
/// over HTTP the server records the authenticated principal, and the client's `by` only
/// carries the worker instance's id.
///
/// Conveniences built on these calls live in [`BackendExt`], which backends do not implement.
#[async_trait]
pub trait Backend: Send + Sync {
    /// Stores one new job.
    ///
    /// - Unset options take the defaults: queue `default`, priority 0, run time now, 25 attempts
    ///   at most, polynomial back-off; what the job sets is kept as given.
    /// - A run time in the future makes it `scheduled`, otherwise `available`. A cron job
    ///   given no run time first runs at its schedule's first point after now.
    /// - Writes its first history row: seq 1, from nothing to the initial state, reason
    ///   `enqueued`, the caller as actor, attempt 0.
    /// - An unknown queue is `UnknownQueue` unless the backend creates queues on first use
    ///   (with the default limit); a queue at its limit is `QueueFull`; a paused queue accepts.
    /// - An empty class or queue name, `max_attempts` 0, a `max_run_time` under 1 ms, or
    ///   arguments over the backend's size limit are `InvalidInput`. Whenever it fails,
    ///   nothing is stored.
    /// - Wakes reservers that long-poll.
    /// - A job with a [`Unique`](crate::Unique) key that another job holds (per the key's
    ///   rules) is a duplicate: nothing is stored, no queue slot is taken, and the answer is
    ///   the job that holds the key, or `Duplicate` naming it when the key asks for a refusal.
    ///   Exact under concurrency: of many enqueues of one free key at once, one is stored and
    ///   the others learn its id. A key is taken without a period while its job is live, with
    ///   one until the period after its enqueue has passed; a key whose job is pruned is free.
    ///   An admin's retry of a finished job does not take its key back. With
    ///   [`OnDuplicate::Replace`](crate::OnDuplicate::Replace), a holder that waits (scheduled
    ///   or available), of the same class and enqueued by the same caller (or replaced by an
    ///   admin) first takes the duplicate's arguments and run time, with a `replaced` history
    ///   row; any other holder is left as it is.
    async fn enqueue(&self, by: &Actor, job: NewJob) -> Result<JobRecord>;

    /// Stores several new jobs, all or none.
    ///
    /// - Each job is stored as [`enqueue`](Backend::enqueue) stores one; the ids come back in the
    ///   order of the jobs.
    /// - If any job is refused (invalid, unknown queue, or the batch would take a queue over its
    ///   limit), the error is that job's and nothing is stored.
    /// - An empty batch stores nothing and succeeds.
    /// - A duplicate's id is the id of the job that holds its key (an earlier job of the same
    ///   batch with the same key included); a refused duplicate refuses the batch.
    async fn enqueue_batch(&self, by: &Actor, jobs: Vec<NewJob>) -> Result<Vec<JobId>>;

    /// Stores several new jobs as [`enqueue_batch`](Backend::enqueue_batch) does, and says of
    /// each whether it was stored or was a duplicate of which job.
    async fn enqueue_each(&self, by: &Actor, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>>;

    /// Stores one new job with its attachment; the job exists only once every byte is stored.
    ///
    /// - As [`enqueue`](Backend::enqueue), and the job's record carries the attachment's size,
    ///   SHA-256 (computed as the bytes are stored), file name and media type.
    /// - Bytes beyond the backend's size limit are `TooLarge`; bytes whose SHA-256 is not the
    ///   upload's `sha256` are `InvalidInput`; a stream that fails fails the call. In every
    ///   case, as when the job itself is refused, nothing is kept: no job, no bytes.
    /// - A duplicate of a unique key keeps no bytes either: the answer is the job that holds
    ///   the key (with its own attachment, if any); [`enqueue_attached`](Backend::enqueue_attached)
    ///   says whether it was one.
    async fn enqueue_with_attachment(
        &self,
        by: &Actor,
        job: NewJob,
        file: Upload,
    ) -> Result<JobRecord> {
        Ok(self.enqueue_attached(by, job, file).await?.0)
    }

    /// Stores one new job with its attachment as
    /// [`enqueue_with_attachment`](Backend::enqueue_with_attachment) does, and says whether it
    /// was a duplicate of a unique key (then nothing was stored, and the job is the holder).
    async fn enqueue_attached(
        &self,
        by: &Actor,
        job: NewJob,
        file: Upload,
    ) -> Result<(JobRecord, bool)>;

    /// Attaches a file to a job no worker has leased yet (scheduled, available or retrying
    /// with no attempt made) that has none. Enqueue the job scheduled to be sure no worker
    /// takes it before its file is there.
    ///
    /// - Checks and limits as for [`enqueue_with_attachment`](Backend::enqueue_with_attachment);
    ///   nothing is kept when refused.
    /// - A job that was leased meanwhile, or that has an attachment, is `Conflict`; an unknown
    ///   job is `NotFound`.
    async fn attach(&self, by: &Actor, id: JobId, file: Upload) -> Result<AttachmentInfo>;

    /// A job's attachment: what is known of it, and its bytes as a stream.
    ///
    /// - The bytes are those stored, their SHA-256 the one in the info.
    /// - A job without one is `NoAttachment`; an unknown job is `NotFound`.
    async fn attachment(&self, by: &Actor, id: JobId) -> Result<Download>;

    /// Leases up to `limit` jobs to a worker instance.
    ///
    /// - Takes `scheduled`, `available` and `retrying` jobs whose run time has come; never a job
    ///   due later, a running one or a finished one.
    /// - Orders by priority (lowest first), then run time, then id; `min_priority` and
    ///   `max_priority` are inclusive bounds.
    /// - Takes only from the given queues, or from every queue when none are given; never from a
    ///   paused queue.
    /// - Takes only jobs of the given classes, when classes are given (a worker names those it
    ///   can run); a job of another class stays as it is, waiting for a worker that runs it.
    ///   An empty list of classes is `InvalidInput`.
    /// - Each job handed out is `running`: its attempt is counted, it gets a fresh lease token,
    ///   the caller as holder and an expiry of now plus the lease length (the asked length,
    ///   clamped to the backend's bounds); a `reserved` history row records the token.
    /// - A leased job is handed to no one else until its lease ends, even under concurrent calls.
    /// - Keeps each queue's run limits (see [`RunLimits`](crate::RunLimits)), counted across
    ///   every worker and every process on the same store, under concurrent calls too: no more
    ///   than `max_running` of a queue's jobs run at once, no more than `max_running_per_key`
    ///   of one concurrency key, starts are spaced by the rate (one per `per / starts`, none
    ///   saved up), and each key's starts by the rate per key (one per key per
    ///   `per / starts`, each key on its own clock, none saved up). A job that ends, is released, or whose lease ran out gives its place
    ///   back at once (a rate counts starts: an end gives none back); a job held back stays
    ///   as it is (no history row).
    /// - When nothing is ready and `wait` is set, waits until a job is enqueued (and returns it)
    ///   or the wait ends (and returns an empty list, not an error). Each new job wakes a
    ///   waiting reserve of its queue (or of every queue), so that several new jobs reach as
    ///   many waiting reserves; the end of a job of a limited queue wakes reserves it held
    ///   back.
    /// - A `limit` of 0 is `InvalidInput`.
    async fn reserve(&self, by: &WorkerInstance, opts: ReserveOptions) -> Result<Vec<Reserved>>;

    /// Whether a job that a reserve with `opts` would take, run limits aside, is due now: a
    /// worker that stops once idle asks after a reserve that got nothing, and waits (a long
    /// poll) instead of stopping while one is, since a rate that spaces a queue's starts, or
    /// a limit that other workers' jobs fill, holds back jobs that are ready to run.
    ///
    /// - Reads only: leases, counts and changes nothing.
    /// - Looks at the jobs `reserve` looks at (its states, queues, classes and priorities,
    ///   whose run time has come, of queues not paused); `limit`, `wait` and `lease` are not
    ///   read. A job held back by a run limit is due; one due later, running or finished is
    ///   not.
    /// - Over HTTP only the queues the worker is hired for are looked at.
    /// - The default answers `false` (a backend that cannot tell: such a worker stops).
    async fn any_due(&self, by: &WorkerInstance, opts: &ReserveOptions) -> Result<bool> {
        let _ = (by, opts);
        Ok(false)
    }

    /// Renews a lease.
    ///
    /// - Moves the expiry to now plus the lease's length and returns it, with whether a cancel
    ///   was requested (the worker should then stop the job and release it).
    /// - A token that is not the job's current lease held by the caller (expired and reclaimed,
    ///   released, finished, someone else's) is `StaleLease` and changes nothing.
    /// - An unknown job is `NotFound`.
    async fn heartbeat(&self, by: &WorkerInstance, lease: &LeaseRef) -> Result<Heartbeat>;

    /// Reports the success of leased jobs; each completion gets its own answer, in order.
    ///
    /// - The job becomes `succeeded` with a `completed` history row, and frees its queue slot.
    /// - The completion's result, if any, is kept on that `completed` row (and only there: each
    ///   run of a repeating job keeps its own). A result over [`crate::MAX_RESULT_BYTES`] as
    ///   JSON is `InvalidInput` for that completion and changes nothing.
    /// - A repeating job (an interval, or a cron schedule whose next point after now is its
    ///   next run) then goes back to `scheduled` at its next run time with its attempts
    ///   reset (a second, `repeat`, history row) and keeps its slot; not when a cancel was
    ///   requested.
    /// - The completion's follow-ups are stored in the success's own transaction, each as
    ///   [`enqueue_batch`](Backend::enqueue_batch) stores a job, with the completed job as
    ///   their `parent` and its `enqueued_by` as theirs (the producer on whose behalf the work
    ///   runs), and the worker instance as the actor of their first history row. A follow-up
    ///   that is refused (invalid, unknown queue, full queue, refused duplicate) refuses that
    ///   completion with its error and changes nothing: the job still runs under its lease.
    ///   More than [`crate::MAX_FOLLOW_UPS`] is `InvalidInput` and changes nothing.
    /// - The same success reported again with the same token succeeds and changes nothing
    ///   (its follow-ups are not stored again).
    /// - A stale token is `StaleLease` and changes nothing; an unknown job is `NotFound`.
    /// - The outer error is for a failure of the backend itself.
    async fn complete_batch(
        &self,
        by: &WorkerInstance,
        done: &[Completion],
    ) -> Result<Vec<Result<()>>>;

    /// Reports a failed attempt and returns the job's new state.
    ///
    /// - With an attempt left, the job is `retrying`, due after the job's stored back-off
    ///   (`RetryPlan::Backoff`) or the given wait (`RetryPlan::After`); history row
    ///   `retry_scheduled`.
    /// - When its attempts reach `max_attempts`, or the plan is `RetryPlan::Never`, it is
    ///   `failed` for good and frees its slot; history row `failed`.
    /// - When a cancel was requested, it is `cancelled` instead.
    /// - The history row keeps the full error (message, causes, backtrace); the job keeps the
    ///   message as its last error.
    /// - The same failure reported again with the same token returns the state and changes
    ///   nothing; a stale token is `StaleLease` and changes nothing, attempts included.
    async fn fail(
        &self,
        by: &WorkerInstance,
        lease: &LeaseRef,
        failure: Failure,
    ) -> Result<JobState>;

    /// Gives a lease back without using up an attempt.
    ///
    /// - The job is `available` again at once, its attempt count as before the reserve; history
    ///   row `released`. When a cancel was requested it is `cancelled` instead.
    /// - A stale token is `StaleLease` and changes nothing.
    async fn release(&self, by: &WorkerInstance, lease: &LeaseRef) -> Result<()>;

    /// Releases every lease the worker instance holds (at a clean exit) and returns how many.
    ///
    /// - Each job is released as by [`release`](Backend::release).
    /// - Leases of other instances, even of the same worker, are left alone.
    async fn release_all(&self, by: &WorkerInstance) -> Result<u64>;

    /// Reclaims running jobs whose lease has expired (expiry at or before now), at most
    /// `opts.limit` of them, and returns how many.
    ///
    /// - An expiry counts as a failed attempt: `retrying` after the job's stored back-off, or
    ///   `failed` when its attempts are used up; `cancelled` when a cancel was requested.
    /// - History row `lease_expired` with the caller as actor, the expired token and an error
    ///   that says so. The expired token is stale from then on.
    /// - Leases that have not expired, and jobs that finished meanwhile, are left alone.
    async fn reclaim_expired(&self, by: &Actor, opts: ReclaimOptions) -> Result<u64>;

    /// One job.
    ///
    /// - Shows the lease's holder and expiry while it runs, never its token.
    /// - An unknown job is `NotFound`.
    async fn job(&self, by: &Actor, id: JobId) -> Result<JobRecord>;

    /// A job's history, oldest first.
    ///
    /// - One row per transition (and per cancel request), numbered from 1 without gaps.
    /// - An unknown job is `NotFound`.
    async fn history(&self, by: &Actor, id: JobId) -> Result<Vec<HistoryEntry>>;

    /// Jobs matching a filter, newest first.
    ///
    /// - Filters by queue, state, class and owner, all optional and combined.
    /// - Filters by enqueue time: `created_since` inclusive, `created_until` exclusive.
    /// - Pages by cursor: `before` returns jobs older than that id; at most `limit` per page.
    ///   `after` pages back: the `limit` jobs just newer than that id (newest first, as always).
    async fn jobs(&self, by: &Actor, filter: JobFilter) -> Result<Vec<JobRecord>>;

    /// Counts jobs by queue and state.
    ///
    /// - One group per queue and state that has jobs; restricted to a queue or an owner when
    ///   the filter says so.
    async fn counts(&self, by: &Actor, filter: CountFilter) -> Result<Vec<StateCount>>;

    /// Cancels a job and returns its state afterwards.
    ///
    /// - A waiting job is `cancelled` at once and frees its slot (history row `cancelled`).
    /// - A running job stays `running` with a cancel request (history row `cancel_requested`),
    ///   which heartbeats report; the attempt then ends `cancelled` unless it succeeds.
    /// - Cancelling a cancelled job again changes nothing; a succeeded or failed job is
    ///   `InvalidTransition`; an unknown job is `NotFound`.
    async fn cancel(&self, by: &Actor, id: JobId) -> Result<JobState>;

    /// Makes a job run now (again) and returns it.
    ///
    /// - A `failed` or `cancelled` job becomes `available` with a fresh attempt budget and takes a
    ///   queue slot again: a full queue is `QueueFull`, a deleted one `UnknownQueue`, and then
    ///   nothing changes.
    /// - A `scheduled` or `retrying` job becomes `available` now, keeping its attempts.
    /// - History row `retried`. Any other state is `InvalidTransition`; a running job is never
    ///   copied.
    async fn retry(&self, by: &Actor, id: JobId) -> Result<JobRecord>;

    /// Creates a queue.
    ///
    /// - `QueueLimit::default()` is a finite limit; unlimited only when asked.
    /// - An existing name is `Conflict`; an empty or malformed name is `InvalidInput`.
    async fn create_queue(&self, by: &Actor, name: &str, limit: QueueLimit) -> Result<QueueInfo>;

    /// Changes a queue's limit, run limits or retention, or pauses or resumes it.
    ///
    /// - A paused queue accepts jobs but hands none out until resumed.
    /// - A run limit given as `Some(None)` is removed; a limit of 0 is `InvalidInput` and
    ///   nothing changes. Loosened or lifted limits hand held-back jobs out at once. A
    ///   changed rate counts from the queue's last start: its next start is the last one
    ///   plus the new interval.
    /// - An unknown queue is `UnknownQueue`.
    async fn update_queue(&self, by: &Actor, name: &str, update: QueueUpdate) -> Result<QueueInfo>;

    /// Deletes a queue that holds no live jobs (its finished jobs stay, with their history).
    ///
    /// - A queue with live jobs is `Conflict`; an unknown queue is `UnknownQueue`.
    async fn delete_queue(&self, by: &Actor, name: &str) -> Result<()>;

    /// Every queue with its settings and per-state counts, by name.
    async fn queues(&self, by: &Actor) -> Result<Vec<QueueInfo>>;

    /// Removes finished jobs that have outlived their queue's retention, at most `opts.limit`
    /// of them, oldest first, and returns how many.
    ///
    /// - A job goes once it has been succeeded, failed or cancelled for at least its queue's
    ///   `Retention::For` age; with it go its history and its attachment, in one transaction.
    /// - Live jobs (scheduled, available, retrying, running, repeating ones included) are never
    ///   touched, however old; nor are the jobs of queues kept `Retention::Forever` or of
    ///   deleted queues.
    /// - Afterwards the pruned jobs are `NotFound`, and the queue's counts leave them out.
    async fn prune(&self, by: &Actor, opts: PruneOptions) -> Result<u64>;

    /// Opens a batch: jobs enqueued with [`NewJob::batch`] join it until it ends; once it is
    /// closed and every job of it has ended, its callback runs, once.
    ///
    /// - The callback is stored at once, `pending` (live: it takes its queue's slot now), with
    ///   [`JobRecord::callback_of`] naming the batch. A full or unknown queue, or a callback
    ///   that is not valid ([`NewBatch::check`]), refuses the batch and stores nothing.
    /// - Every end of a job of the batch (succeeded, failed for good, cancelled) counts, in that
    ///   end's transaction; the end that finds the batch closed with every job ended makes the
    ///   callback runnable (history reason `batch_ended`), its arguments given the batch's
    ///   counts under `"batch"` ([`BatchCounts::to_json`](crate::BatchCounts::to_json)). So the
    ///   callback becomes runnable exactly once, however many jobs end at the same time.
    /// - A job of an ended batch cannot be added (`InvalidInput`); nor can one of a batch that
    ///   does not exist. A job retried by an admin after it ended no longer counts as ended.
    async fn open_batch(&self, by: &Actor, batch: NewBatch) -> Result<BatchInfo>;

    /// Closes a batch: its callback runs once every job of it has ended (at once when all
    /// have). From then on only jobs of the batch may add jobs to it (their follow-ups), until
    /// it ends (a job that adds is itself not ended); any other enqueue into it is
    /// `InvalidInput`. Closing it again changes nothing. `Unknown` (kind
    /// `"batch"`) for a batch that does not exist, here and below.
    async fn close_batch(&self, by: &Actor, id: BatchId) -> Result<BatchInfo>;

    /// A batch and its counts.
    async fn batch(&self, by: &Actor, id: BatchId) -> Result<BatchInfo>;

    /// Closes a batch and cancels every job of it that has not ended (a running one is asked
    /// to stop, as [`Backend::cancel`] does); returns how many it cancelled or asked to stop.
    /// The callback still runs once they have ended, with their counts.
    async fn cancel_batch(&self, by: &Actor, id: BatchId) -> Result<u64>;
}
