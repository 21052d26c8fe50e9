//! Cancel and retry (reliability cases 19, 20 and 32).

use super::harness::{Harness, noop, ok};
use crate::{Backend, Error, JobId, JobState, Reason, Repeat, RetryPlan};

fn backend(h: &Harness) -> &dyn Backend {
    h.admin.backend.as_ref()
}

pub(crate) async fn cancel_ends_a_waiting_job(h: &Harness) {
    let queue = h.queue().await;
    let later = chrono::Duration::hours(1);
    for job in [
        noop().queue(&queue),
        noop().queue(&queue).run_at(h.now() + later),
    ] {
        let job = h.enqueue(job).await;
        let state = ok(backend(h).cancel(&h.admin.actor, job.id).await, "cancel");
        assert_eq!(state, JobState::Cancelled);
        let stored = h.job(job.id).await;
        assert_eq!(
            (stored.state, stored.finished_at),
            (JobState::Cancelled, Some(h.now()))
        );
        let row = h.history(job.id).await.pop().expect("a history row");
        assert_eq!(
            (row.reason, row.to, row.actor),
            (
                Reason::Cancelled,
                JobState::Cancelled,
                h.admin.actor.clone()
            )
        );
    }
    h.advance(std::time::Duration::from_secs(7200));
    h.w(0).reserve_none(&[&queue]).await;
    assert_eq!(h.live(&queue).await, 0);
}

pub(crate) async fn cancel_asks_a_running_job_to_stop(h: &Harness) {
    let queue = h.queue().await;
    let job = h.enqueue_in(&queue).await;
    let run = h.w(0).reserve_one(&[&queue]).await;
    let state = ok(backend(h).cancel(&h.admin.actor, job.id).await, "cancel");
    assert_eq!(state, JobState::Running);
    let stored = h.job(job.id).await;
    assert!(stored.cancel_requested);
    let row = h.history(job.id).await.pop().expect("a history row");
    assert_eq!(
        (row.reason, row.from, row.to),
        (
            Reason::CancelRequested,
            Some(JobState::Running),
            JobState::Running
        )
    );
    // The worker stops and gives the job back: it ends cancelled.
    ok(h.w(0).release(&run).await, "release");
    assert_eq!(h.state(job.id).await, JobState::Cancelled);
    // A job whose attempt fails after a cancel request ends cancelled too.
    let job = h.enqueue_in(&queue).await;
    let run = h.w(0).reserve_one(&[&queue]).await;
    ok(backend(h).cancel(&h.admin.actor, job.id).await, "cancel");
    let state = ok(
        h.w(0).fail(&run, "stopped", RetryPlan::Backoff).await,
        "fail",
    );
    assert_eq!(state, JobState::Cancelled);
}

pub(crate) async fn a_cancelled_run_that_succeeds_is_not_repeated(h: &Harness) {
    let queue = h.queue().await;
    let every = Repeat::Every(std::time::Duration::from_secs(60));
    let job = h.enqueue(noop().queue(&queue).repeat(every)).await;
    let run = h.w(0).reserve_one(&[&queue]).await;
    ok(backend(h).cancel(&h.admin.actor, job.id).await, "cancel");
    // The work was done, so the history says so; but it does not run again.
    ok(h.w(0).complete(&run).await, "complete");
    assert_eq!(h.state(job.id).await, JobState::Succeeded);
}

pub(crate) async fn cancel_of_finished_and_unknown_jobs(h: &Harness) {
    let queue = h.queue().await;
    let job = h.enqueue_in(&queue).await;
    ok(backend(h).cancel(&h.admin.actor, job.id).await, "cancel");
    let history = h.history(job.id).await;
    let again = ok(
        backend(h).cancel(&h.admin.actor, job.id).await,
        "cancel again",
    );
    assert_eq!(again, JobState::Cancelled);
    assert_eq!(
        h.history(job.id).await,
        history,
        "a second cancel writes nothing"
    );
    let done = h.enqueue_in(&queue).await;
    let run = h.w(0).reserve_one(&[&queue]).await;
    ok(h.w(0).complete(&run).await, "complete");
    let refused = backend(h).cancel(&h.admin.actor, done.id).await;
    assert_error!(
        refused,
        Error::InvalidTransition {
            from: JobState::Succeeded,
            ..
        }
    );
    let missing = backend(h).cancel(&h.admin.actor, JobId(987_654)).await;
    assert_error!(missing, Error::NotFound { .. });
}

pub(crate) async fn retry_revives_a_failed_job_with_fresh_attempts(h: &Harness) {
    // Reliability case 32: a dead job is redriven with a new attempt budget.
    let queue = h.queue().await;
    let job = h.enqueue(noop().queue(&queue).max_attempts(1)).await;
    let run = h.w(0).reserve_one(&[&queue]).await;
    ok(h.w(0).fail(&run, "boom", RetryPlan::Backoff).await, "fail");
    assert_eq!(h.state(job.id).await, JobState::Failed);
    let revived = ok(backend(h).retry(&h.admin.actor, job.id).await, "retry");
    assert_eq!((revived.state, revived.attempts), (JobState::Available, 0));
    assert_eq!((revived.run_at, revived.finished_at), (h.now(), None));
    let row = h.history(job.id).await.pop().expect("a history row");
    assert_eq!(
        (row.reason, row.from, row.to),
        (Reason::Retried, Some(JobState::Failed), JobState::Available)
    );
    assert_eq!(row.actor, h.admin.actor);
    let again = h.w(1).reserve_one(&[&queue]).await;
    assert_eq!(again.lease.attempt, 1);
    // A cancelled job can be retried too.
    let cancelled = h.enqueue_in(&queue).await;
    ok(
        backend(h).cancel(&h.admin.actor, cancelled.id).await,
        "cancel",
    );
    let revived = ok(
        backend(h).retry(&h.admin.actor, cancelled.id).await,
        "retry",
    );
    assert_eq!(revived.state, JobState::Available);
}

pub(crate) async fn retry_runs_a_waiting_job_now(h: &Harness) {
    let queue = h.queue().await;
    let later = h
        .enqueue(
            noop()
                .queue(&queue)
                .run_at(h.now() + chrono::Duration::hours(1)),
        )
        .await;
    let revived = ok(backend(h).retry(&h.admin.actor, later.id).await, "retry");
    assert_eq!(
        (revived.state, revived.run_at),
        (JobState::Available, h.now())
    );
    let run = h.w(0).reserve_one(&[&queue]).await;
    ok(h.w(0).fail(&run, "boom", RetryPlan::Backoff).await, "fail");
    let revived = ok(backend(h).retry(&h.admin.actor, later.id).await, "retry");
    assert_eq!(
        (revived.state, revived.attempts),
        (JobState::Available, 1),
        "attempts are kept"
    );
}

pub(crate) async fn retry_of_a_running_job_is_refused(h: &Harness) {
    // Reliability case 20: never a second runnable copy.
    let queue = h.queue().await;
    let job = h.enqueue_in(&queue).await;
    let refused = backend(h).retry(&h.admin.actor, job.id).await;
    assert_error!(
        refused,
        Error::InvalidTransition {
            from: JobState::Available,
            ..
        }
    );
    h.w(0).reserve_one(&[&queue]).await;
    let refused = backend(h).retry(&h.admin.actor, job.id).await;
    assert_error!(
        refused,
        Error::InvalidTransition {
            from: JobState::Running,
            ..
        }
    );
    h.w(1).reserve_none(&[&queue]).await;
    assert_eq!(h.live(&queue).await, 1);
    let missing = backend(h).retry(&h.admin.actor, JobId(987_654)).await;
    assert_error!(missing, Error::NotFound { .. });
}

pub(crate) async fn retry_into_a_deleted_queue_is_refused(h: &Harness) {
    let queue = h.queue().await;
    let job = h.enqueue_in(&queue).await;
    let run = h.w(0).reserve_one(&[&queue]).await;
    ok(h.w(0).fail(&run, "boom", RetryPlan::Never).await, "fail");
    ok(
        backend(h).delete_queue(&h.admin.actor, &queue).await,
        "delete the queue",
    );
    let refused = backend(h).retry(&h.admin.actor, job.id).await;
    assert_error!(refused, Error::UnknownQueue { .. });
    assert_eq!(h.state(job.id).await, JobState::Failed);
}
