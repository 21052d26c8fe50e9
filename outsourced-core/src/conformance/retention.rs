//! Retention (F6): finished jobs pruned after their queue's age, live ones never.

use std::time::Duration;

use super::harness::{Harness, noop, ok};
use crate::{
    Backend, BackendExt, Error, JobId, JobState, PruneOptions, QueueUpdate, Repeat, Retention,
    RetryPlan,
};

fn backend(h: &Harness) -> &dyn Backend {
    h.admin.backend.as_ref()
}

const MINUTE: Duration = Duration::from_secs(60);

/// A queue whose finished jobs are kept for `age`.
async fn queue_keeping(h: &Harness, age: Duration) -> String {
    let queue = h.queue().await;
    let update = QueueUpdate {
        retention: Some(Retention::For(age)),
        ..QueueUpdate::default()
    };
    let updated = backend(h)
        .update_queue(&h.admin.actor, &queue, update)
        .await;
    assert_eq!(
        ok(updated, "set a retention").retention,
        Retention::For(age)
    );
    queue
}

/// Enqueues a job into `queue` and works it to success; returns its id.
async fn succeeded(h: &Harness, queue: &str) -> JobId {
    h.enqueue(noop().queue(queue)).await;
    let run = h.w(0).reserve_one(&[queue]).await;
    ok(h.w(0).complete(&run).await, "complete");
    run.job.id
}

async fn prune(h: &Harness, limit: u32) -> u64 {
    let pruned = backend(h)
        .prune(&h.admin.actor, PruneOptions { limit })
        .await;
    ok(pruned, "prune")
}

async fn gone(h: &Harness, id: JobId) -> bool {
    let job = backend(h).job(&h.admin.actor, id).await;
    let history = backend(h).history(&h.admin.actor, id).await;
    match (job, history) {
        (Err(Error::NotFound { .. }), Err(Error::NotFound { .. })) => true,
        (Ok(_), Ok(_)) => false,
        other => panic!("job {id}: half there: {other:?}"),
    }
}

pub(crate) async fn prune_removes_only_finished_jobs_past_their_retention(h: &Harness) {
    let queue = queue_keeping(h, Duration::from_secs(3600)).await;
    let forever = h.queue().await;
    let done = succeeded(h, &queue).await;
    let failed = h.enqueue(noop().queue(&queue).max_attempts(1)).await.id;
    let run = h.w(0).reserve_one(&[&queue]).await;
    ok(h.w(0).fail(&run, "boom", RetryPlan::Never).await, "fail");
    let cancelled = h.enqueue(noop().queue(&queue)).await.id;
    ok(backend(h).cancel(&h.admin.actor, cancelled).await, "cancel");
    let kept_forever = succeeded(h, &forever).await;
    let file = crate::Upload::from_bytes(vec![7u8; 5000]);
    let attached =
        h.admin
            .backend
            .enqueue_with_attachment(&h.admin.actor, noop().queue(&queue), file);
    let attached = ok(attached.await, "enqueue with an attachment").id;
    let run = h.w(0).reserve_one(&[&queue]).await;
    assert_eq!(run.job.id, attached);
    ok(h.w(0).complete(&run).await, "complete");
    // Live jobs, old by the end; behind the others in hand-out order (priority 100).
    let waiting = h.enqueue(noop().queue(&queue).priority(100)).await.id;
    let later = h.now() + chrono::Duration::days(30);
    let scheduled = h.enqueue(noop().queue(&queue).run_at(later)).await.id;
    let every = Repeat::Every(MINUTE);
    let repeating = h
        .enqueue(noop().queue(&queue).priority(100).repeat(every))
        .await;
    h.advance(30 * MINUTE);
    assert_eq!(prune(h, 100).await, 0, "nothing is an hour old yet");
    let young = succeeded(h, &queue).await;
    h.advance(31 * MINUTE);
    assert_eq!(prune(h, 100).await, 4);
    for id in [done, failed, cancelled, attached] {
        assert!(gone(h, id).await, "job {id} outlived its retention");
    }
    let attachment = backend(h).attachment(&h.admin.actor, attached).await;
    assert_error!(attachment, Error::NotFound { .. });
    for id in [kept_forever, waiting, scheduled, repeating.id, young] {
        assert!(!gone(h, id).await, "job {id} must stay");
    }
    assert_eq!(h.state(waiting).await, JobState::Available);
    let info = ok(backend(h).queue(&h.admin.actor, &queue).await, "the queue");
    assert_eq!(
        info.counts.get(JobState::Succeeded),
        1,
        "only the young one"
    );
    assert_eq!(prune(h, 100).await, 0, "pruning again finds nothing");
}

pub(crate) async fn prune_is_bounded_and_takes_the_oldest_first(h: &Harness) {
    let queue = queue_keeping(h, MINUTE).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        if i > 0 {
            h.advance(MINUTE);
        }
        ids.push(succeeded(h, &queue).await);
    }
    // Finished 4, 3, 2, 1 and 0 minutes ago; a minute's retention has passed for four.
    assert_eq!(prune(h, 2).await, 2);
    assert!(gone(h, ids[0]).await && gone(h, ids[1]).await);
    assert!(!gone(h, ids[2]).await);
    assert_eq!(prune(h, 100).await, 2, "the rest of the four");
    assert!(!gone(h, ids[4]).await, "finished just now");
}

pub(crate) async fn a_retried_job_is_live_again_and_kept(h: &Harness) {
    let queue = queue_keeping(h, MINUTE).await;
    let job = h.enqueue(noop().queue(&queue).max_attempts(1)).await.id;
    let run = h.w(0).reserve_one(&[&queue]).await;
    ok(h.w(0).fail(&run, "boom", RetryPlan::Never).await, "fail");
    h.advance(2 * MINUTE);
    ok(backend(h).retry(&h.admin.actor, job).await, "retry");
    h.advance(2 * MINUTE);
    assert_eq!(prune(h, 100).await, 0);
    assert_eq!(h.state(job).await, JobState::Available);
}
