//! Dependencies: a job that waits for others is pending until the last of them succeeded, and
//! is cancelled when one of them fails or is cancelled.

use serde_json::json;

use super::harness::{Harness, noop, ok};
use crate::{
    Backend, BackendExt, Completion, Error, JobId, JobState, NewJob, QueueLimit, Reason, Reserved,
    RetryPlan,
};

/// A success of `reserved` with `result`.
fn success(reserved: &Reserved, result: serde_json::Value) -> Completion {
    Completion {
        lease: reserved.lease.to_ref(),
        result: Some(result),
        follow_ups: Vec::new(),
    }
}

/// A job of `queue` that waits for `on`.
fn waiting_for(queue: &str, on: &[JobId]) -> NewJob {
    NewJob::new("Gather", json!([]))
        .queue(queue)
        .depends_on(on.iter().copied())
}

pub(crate) async fn a_job_runs_once_its_last_dependency_succeeded_with_their_results(h: &Harness) {
    let (pages, reports) = (h.queue().await, h.queue().await);
    let first = h.enqueue_in(&pages).await;
    let second = h.enqueue_in(&pages).await;
    let gather = h
        .enqueue(waiting_for(&reports, &[second.id, first.id]))
        .await;
    assert_eq!(gather.state, JobState::Pending);
    assert_eq!(gather.dependencies, [first.id, second.id]);
    assert_eq!(gather.dependencies_left, 2);
    // Pending is live (it holds its slot) but not runnable.
    assert_eq!(h.live(&reports).await, 1);
    h.w(0).reserve_none(&[&reports]).await;

    let (w, id) = (&h.w(0).backend, &h.w(0).id);
    let one = h.w(0).reserve_one(&[&pages]).await;
    ok(
        w.complete_one(id, success(&one, json!({"words": 3}))).await,
        "complete",
    );
    assert_eq!(h.job(gather.id).await.dependencies_left, 1);
    assert_eq!(h.state(gather.id).await, JobState::Pending);
    h.w(0).reserve_none(&[&reports]).await;
    // The other ends without a result: it counts all the same.
    let two = h.w(0).reserve_one(&[&pages]).await;
    ok(h.w(0).complete(&two).await, "complete");

    let ready = h.job(gather.id).await;
    assert_eq!(
        (ready.state, ready.dependencies_left),
        (JobState::Available, 0)
    );
    let history = h.history(gather.id).await;
    let steps: Vec<_> = history.iter().map(|e| (e.from, e.to, e.reason)).collect();
    assert_eq!(
        steps,
        [
            (None, JobState::Pending, Reason::Enqueued),
            (
                Some(JobState::Pending),
                JobState::Available,
                Reason::DependenciesSucceeded
            ),
        ]
    );
    // The dependant gets its dependencies' results with its lease.
    let reserved = h.w(1).reserve_one(&[&reports]).await;
    assert_eq!(reserved.job.id, gather.id);
    let results: Vec<_> = reserved.dependency_results.into_iter().collect();
    assert_eq!(results, [(one.job.id, json!({"words": 3}))]);
}

pub(crate) async fn a_failed_or_cancelled_dependency_cancels_its_dependants_in_turn(h: &Harness) {
    let queue = h.queue().await;
    let scan = h.enqueue_in(&queue).await;
    let ocr = h.enqueue(waiting_for(&queue, &[scan.id])).await;
    let report = h.enqueue(waiting_for(&queue, &[ocr.id])).await;
    let reserved = h.w(0).reserve_one(&[&queue]).await;
    assert_eq!(reserved.job.id, scan.id);
    let failed = h.w(0).fail(&reserved, "unreadable", RetryPlan::Never).await;
    assert_eq!(ok(failed, "fail"), JobState::Failed);

    for (job, cause) in [
        (
            ocr.id,
            format!("job {}, which it depends on, failed", scan.id),
        ),
        (
            report.id,
            format!("job {}, which it depends on, was cancelled", ocr.id),
        ),
    ] {
        let record = h.job(job).await;
        assert_eq!(record.state, JobState::Cancelled, "job {job}");
        assert_eq!(record.last_error.as_deref(), Some(cause.as_str()));
        let last = h.history(job).await.pop().expect("a history row");
        assert_eq!(
            (last.from, last.reason),
            (Some(JobState::Pending), Reason::DependencyEnded)
        );
        assert_eq!(last.error.map(|e| e.message), Some(cause));
    }
    assert_eq!(h.live(&queue).await, 0);

    // A retry never runs a job past its dependencies: the failed one is retried first, and
    // the dependant once that one has succeeded.
    let admin = (&h.admin.backend, &h.admin.actor);
    let early = admin.0.retry(admin.1, ocr.id).await;
    assert!(matches!(early, Err(Error::Conflict { .. })), "{early:?}");
    ok(admin.0.retry(admin.1, scan.id).await, "retry the scan");
    let early = admin.0.retry(admin.1, ocr.id).await;
    assert!(matches!(early, Err(Error::Conflict { .. })), "{early:?}");
    let again = h.w(0).reserve_one(&[&queue]).await;
    ok(h.w(0).complete(&again).await, "complete the scan");
    let retried = ok(admin.0.retry(admin.1, ocr.id).await, "retry the dependant");
    assert_eq!(retried.state, JobState::Available);
    ok(admin.0.cancel(admin.1, ocr.id).await, "cancel it again");

    // An admin's cancel of a dependency does the same.
    let first = h.enqueue_in(&queue).await;
    let waits = h.enqueue(waiting_for(&queue, &[first.id])).await;
    ok(
        h.admin.backend.cancel(&h.admin.actor, first.id).await,
        "cancel",
    );
    assert_eq!(h.state(waits.id).await, JobState::Cancelled);
}

pub(crate) async fn a_job_depends_only_on_jobs_that_can_still_succeed(h: &Harness) {
    let queue = h.queue().await;
    let refused = |result: crate::Result<crate::JobRecord>, what: &str| match result {
        Err(Error::InvalidInput { message }) => message,
        other => panic!("{what}: expected InvalidInput, got {other:?}"),
    };
    let missing = h
        .try_enqueue(waiting_for(&queue, &[JobId(i64::MAX - 7)]))
        .await;
    let message = refused(missing, "a missing dependency");
    assert!(message.contains("does not exist"), "{message}");

    let cancelled = h.enqueue_in(&queue).await;
    ok(
        h.admin.backend.cancel(&h.admin.actor, cancelled.id).await,
        "cancel",
    );
    let message = refused(
        h.try_enqueue(waiting_for(&queue, &[cancelled.id])).await,
        "a cancelled dependency",
    );
    assert!(message.contains("was cancelled"), "{message}");

    let every = noop()
        .queue(&queue)
        .repeat(crate::Repeat::Every(std::time::Duration::from_secs(60)));
    let repeating = h.enqueue(every).await;
    let message = refused(
        h.try_enqueue(waiting_for(&queue, &[repeating.id])).await,
        "a repeating dependency",
    );
    assert!(message.contains("repeats"), "{message}");
    // Nothing of the refused enqueues was stored: only the cancelled job and the repeat.
    assert_eq!(h.live(&queue).await, 1);

    // One that succeeded already counts as done: the job is runnable at once.
    let done = h.enqueue(noop().queue(&queue).priority(-1)).await;
    let reserved = h.w(0).reserve_one(&[&queue]).await;
    assert_eq!(reserved.job.id, done.id);
    ok(h.w(0).complete(&reserved).await, "complete");
    let after = h.enqueue(waiting_for(&queue, &[done.id])).await;
    assert_eq!(
        (after.state, after.dependencies_left),
        (JobState::Available, 0)
    );
    assert_eq!(after.dependencies, [done.id]);
}

pub(crate) async fn a_job_pending_on_dependencies_holds_its_slot_in_a_bounded_queue(h: &Harness) {
    let (work, bounded) = (h.queue().await, h.queue_with(QueueLimit::Max(1)).await);
    let first = h.enqueue_in(&work).await;
    let waits = h.enqueue(waiting_for(&bounded, &[first.id])).await;
    let full = h.try_enqueue(noop().queue(&bounded)).await;
    assert!(matches!(full, Err(Error::QueueFull { .. })), "{full:?}");
    ok(
        h.admin.backend.cancel(&h.admin.actor, waits.id).await,
        "cancel",
    );
    h.enqueue_in(&bounded).await;
    // A pending job cannot be retried past its dependencies.
    let again = h.enqueue(waiting_for(&work, &[first.id])).await;
    let retried = h.admin.backend.retry(&h.admin.actor, again.id).await;
    assert!(
        matches!(retried, Err(Error::Conflict { .. })),
        "{retried:?}"
    );
}

pub(crate) async fn the_last_dependencies_ending_at_once_release_the_dependant_once(h: &Harness) {
    let (pages, reports) = (h.queue().await, h.queue().await);
    // Several dependants, each waiting for the same two jobs, and the two ending in separate
    // calls at the same time.
    for _ in 0..4 {
        let a = h.enqueue_in(&pages).await;
        let b = h.enqueue_in(&pages).await;
        let gather = h.enqueue(waiting_for(&reports, &[a.id, b.id])).await;
        let one = h.w(0).reserve_one(&[&pages]).await;
        let two = h.w(1).reserve_one(&[&pages]).await;
        let (x, y) = tokio::join!(h.w(0).complete(&one), h.w(1).complete(&two));
        ok(x, "complete one");
        ok(y, "complete two");
        let released: Vec<_> = h
            .history(gather.id)
            .await
            .into_iter()
            .filter(|e| e.reason == Reason::DependenciesSucceeded)
            .collect();
        assert_eq!(released.len(), 1, "{released:?}");
        assert_eq!(h.state(gather.id).await, JobState::Available);
        let reserved = h.w(2).reserve_one(&[&reports]).await;
        ok(h.w(2).complete(&reserved).await, "complete the dependant");
    }
}
