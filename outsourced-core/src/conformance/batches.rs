//! Batches: the callback is stored pending when the batch opens and becomes runnable once, when
//! the batch is closed and every job of it has ended, with the batch's counts.

use serde_json::json;

use super::harness::{Harness, noop, ok};
use crate::{
    Backend, BackendExt, BatchCounts, BatchId, BatchInfo, Completion, Error, JobState, NewBatch,
    NewJob, QueueLimit, Reason, RetryPlan,
};

/// Opens a batch whose callback (class `Report`, args `{"scan": 7}`) goes to `queue`.
async fn open(h: &Harness, queue: &str) -> BatchInfo {
    let callback = NewJob::new("Report", json!({"scan": 7})).queue(queue);
    let batch = NewBatch::new(callback).description("scan 7's pages");
    ok(
        h.producer
            .backend
            .open_batch(&h.producer.actor, batch)
            .await,
        "open a batch",
    )
}

async fn close(h: &Harness, id: BatchId) -> BatchInfo {
    ok(
        h.producer.backend.close_batch(&h.producer.actor, id).await,
        "close the batch",
    )
}

async fn info(h: &Harness, id: BatchId) -> BatchInfo {
    ok(
        h.admin.backend.batch(&h.admin.actor, id).await,
        "read the batch",
    )
}

/// The rows of `job`'s history that the end of its batch wrote.
async fn batch_ended_rows(h: &Harness, job: crate::JobId) -> usize {
    let history = h.history(job).await;
    history
        .iter()
        .filter(|e| e.reason == Reason::BatchEnded)
        .count()
}

pub(crate) async fn a_batch_runs_its_callback_once_its_jobs_ended_with_their_counts(h: &Harness) {
    let (pages, reports) = (h.queue().await, h.queue().await);
    let batch = open(h, &reports).await;
    let id = batch.counts.id;
    assert_eq!(batch.description.as_deref(), Some("scan 7's pages"));
    let callback = h.job(batch.callback).await;
    assert_eq!(callback.state, JobState::Pending);
    assert_eq!(callback.callback_of, Some(id));
    // The callback holds its slot from the start, and waits.
    assert_eq!(h.live(&reports).await, 1);
    h.w(0).reserve_none(&[&reports]).await;

    let mut jobs = Vec::new();
    for page in 0..3 {
        let job = NewJob::new("Ocr", json!({ "page": page })).queue(&pages);
        jobs.push(h.enqueue(job.batch(id)).await);
    }
    assert!(jobs.iter().all(|job| job.batch == Some(id)));
    assert_eq!(info(h, id).await.counts.total, 3);
    let closed = close(h, id).await;
    assert!(closed.closed && closed.finished_at.is_none(), "{closed:?}");

    let one = h.w(0).reserve_one(&[&pages]).await;
    ok(h.w(0).complete(&one).await, "complete");
    let two = h.w(0).reserve_one(&[&pages]).await;
    let failed = h.w(0).fail(&two, "unreadable", RetryPlan::Never).await;
    assert_eq!(ok(failed, "fail"), JobState::Failed);
    assert_eq!(h.state(batch.callback).await, JobState::Pending);
    ok(
        h.producer
            .backend
            .cancel(&h.producer.actor, jobs[2].id)
            .await,
        "cancel the last",
    );

    let ended = info(h, id).await;
    let counts = BatchCounts {
        id,
        total: 3,
        succeeded: 1,
        failed: 1,
        cancelled: 1,
    };
    assert_eq!(ended.counts, counts);
    assert!(ended.finished_at.is_some());
    let callback = h.job(batch.callback).await;
    assert_eq!(callback.state, JobState::Available);
    assert_eq!(
        callback.args,
        json!({"scan": 7, "batch": {"id": id.0, "total": 3, "succeeded": 1, "failed": 1, "cancelled": 1}})
    );
    let last = h.history(batch.callback).await.pop().expect("a row");
    assert_eq!(
        (last.from, last.to, last.reason),
        (
            Some(JobState::Pending),
            JobState::Available,
            Reason::BatchEnded
        )
    );
    let reserved = h.w(1).reserve_one(&[&reports]).await;
    assert_eq!(reserved.job.id, batch.callback);
}

pub(crate) async fn a_batch_ends_at_its_close_when_its_jobs_ended_and_takes_no_more(h: &Harness) {
    let queue = h.queue().await;
    // Closed with no job: it ends at once.
    let empty = open(h, &queue).await;
    let closed = close(h, empty.counts.id).await;
    assert!(closed.finished_at.is_some(), "{closed:?}");
    assert_eq!(h.state(empty.callback).await, JobState::Available);
    // Closing again changes nothing (and does not run the callback twice).
    close(h, empty.counts.id).await;
    assert_eq!(batch_ended_rows(h, empty.callback).await, 1);
    // An ended batch takes no job; an unknown one is unknown.
    let late = h
        .try_enqueue(noop().queue(&queue).batch(empty.counts.id))
        .await;
    assert!(matches!(late, Err(Error::InvalidInput { .. })), "{late:?}");
    let unknown = h
        .try_enqueue(noop().queue(&queue).batch(BatchId(i64::MAX - 3)))
        .await;
    assert!(matches!(unknown, Err(Error::Unknown { .. })), "{unknown:?}");
    assert_eq!(h.live(&queue).await, 1);

    // Jobs that ended before the close: the close ends it.
    let (pages, reports) = (h.queue().await, h.queue().await);
    let batch = open(h, &reports).await;
    let job = h.enqueue(noop().queue(&pages).batch(batch.counts.id)).await;
    let reserved = h.w(0).reserve_one(&[&pages]).await;
    assert_eq!(reserved.job.id, job.id);
    ok(h.w(0).complete(&reserved).await, "complete");
    assert_eq!(h.state(batch.callback).await, JobState::Pending);
    close(h, batch.counts.id).await;
    assert_eq!(h.state(batch.callback).await, JobState::Available);
}

pub(crate) async fn a_job_of_a_batch_adds_to_it_and_the_batch_waits_for_those(h: &Harness) {
    let (pages, reports) = (h.queue().await, h.queue().await);
    let batch = open(h, &reports).await;
    let id = batch.counts.id;
    h.enqueue(noop().queue(&pages).batch(id)).await;
    close(h, id).await;
    // Closed: no one else adds to it.
    let late = h.try_enqueue(noop().queue(&pages).batch(id)).await;
    assert!(matches!(late, Err(Error::InvalidInput { .. })), "{late:?}");
    // The split job, running in the closed batch, asks for a page of the same batch.
    let split = h.w(0).reserve_one(&[&pages]).await;
    let page = NewJob::new("Ocr", json!({"page": 1}))
        .queue(&pages)
        .batch(id);
    let done = Completion {
        lease: split.lease.to_ref(),
        result: None,
        follow_ups: vec![page],
    };
    ok(
        h.w(0).backend.complete_one(&h.w(0).id, done).await,
        "complete",
    );
    assert_eq!(info(h, id).await.counts.live(), 1);
    assert_eq!(h.state(batch.callback).await, JobState::Pending);
    let page = h.w(0).reserve_one(&[&pages]).await;
    ok(h.w(0).complete(&page).await, "complete the page");
    let ended = info(h, id).await;
    assert_eq!((ended.counts.total, ended.counts.succeeded), (2, 2));
    assert_eq!(h.state(batch.callback).await, JobState::Available);
}

pub(crate) async fn a_batch_is_cancelled_as_a_whole(h: &Harness) {
    let (pages, reports) = (h.queue().await, h.queue().await);
    let batch = open(h, &reports).await;
    let id = batch.counts.id;
    for _ in 0..3 {
        h.enqueue(noop().queue(&pages).batch(id)).await;
    }
    let running = h.w(0).reserve_one(&[&pages]).await;
    let cancelled = h.producer.backend.cancel_batch(&h.producer.actor, id).await;
    assert_eq!(ok(cancelled, "cancel the batch"), 3);
    // The running job was asked to stop; the batch ends when it does.
    assert_eq!(h.state(batch.callback).await, JobState::Pending);
    assert!(info(h, id).await.closed);
    let heartbeat = ok(h.w(0).heartbeat(&running).await, "heartbeat");
    assert!(heartbeat.cancel_requested);
    ok(h.w(0).release(&running).await, "stop");
    let ended = info(h, id).await;
    assert_eq!((ended.counts.cancelled, ended.counts.live()), (3, 0));
    assert_eq!(h.state(batch.callback).await, JobState::Available);
}

pub(crate) async fn an_ended_batch_is_pruned_once_its_callback_and_jobs_are(h: &Harness) {
    let queue = h.queue().await;
    let hour = std::time::Duration::from_secs(3600);
    let update = crate::QueueUpdate {
        retention: Some(crate::Retention::For(hour)),
        ..crate::QueueUpdate::default()
    };
    ok(
        h.admin
            .backend
            .update_queue(&h.admin.actor, &queue, update)
            .await,
        "keep finished jobs an hour",
    );
    let batch = open(h, &queue).await;
    let id = batch.counts.id;
    h.enqueue(noop().queue(&queue).batch(id)).await;
    close(h, id).await;
    for _ in 0..2 {
        let job = h.w(0).reserve_one(&[&queue]).await;
        ok(h.w(0).complete(&job).await, "complete");
    }
    let prune = crate::PruneOptions { limit: 100 };
    ok(h.admin.backend.prune(&h.admin.actor, prune).await, "prune");
    // Its jobs are kept for the hour, and so is the batch.
    assert!(info(h, id).await.finished_at.is_some());
    h.advance(hour * 2);
    let pruned = ok(h.admin.backend.prune(&h.admin.actor, prune).await, "prune");
    assert_eq!(pruned, 2);
    let gone = h.admin.backend.batch(&h.admin.actor, id).await;
    assert!(matches!(gone, Err(Error::Unknown { .. })), "{gone:?}");
}

pub(crate) async fn a_batch_whose_callback_has_no_room_is_refused(h: &Harness) {
    let full = h.queue_with(QueueLimit::Max(1)).await;
    h.enqueue_in(&full).await;
    let callback = NewJob::new("Report", json!({})).queue(&full);
    let refused = h
        .producer
        .backend
        .open_batch(&h.producer.actor, NewBatch::new(callback))
        .await;
    assert!(
        matches!(refused, Err(Error::QueueFull { .. })),
        "{refused:?}"
    );
    let not_object = NewBatch::new(NewJob::new("Report", json!([1])).queue(&full));
    let refused = h
        .producer
        .backend
        .open_batch(&h.producer.actor, not_object)
        .await;
    assert!(
        matches!(refused, Err(Error::InvalidInput { .. })),
        "{refused:?}"
    );
    assert_eq!(h.live(&full).await, 1);
}

pub(crate) async fn the_last_jobs_of_a_batch_ending_at_once_run_its_callback_once(h: &Harness) {
    let (pages, reports) = (h.queue().await, h.queue().await);
    for _ in 0..4 {
        let batch = open(h, &reports).await;
        let id = batch.counts.id;
        h.enqueue(noop().queue(&pages).batch(id)).await;
        h.enqueue(noop().queue(&pages).batch(id)).await;
        close(h, id).await;
        let one = h.w(0).reserve_one(&[&pages]).await;
        let two = h.w(1).reserve_one(&[&pages]).await;
        let (x, y) = tokio::join!(h.w(0).complete(&one), h.w(1).complete(&two));
        ok(x, "complete one");
        ok(y, "complete two");
        assert_eq!(batch_ended_rows(h, batch.callback).await, 1);
        assert_eq!(info(h, id).await.counts.succeeded, 2);
        let callback = h.w(2).reserve_one(&[&reports]).await;
        assert_eq!(callback.job.id, batch.callback);
        ok(h.w(2).complete(&callback).await, "complete the callback");
    }
}
