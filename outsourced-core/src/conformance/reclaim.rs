//! Reclaiming expired leases (reliability cases 2, 3, 4, 19, 36).

use std::time::Duration;

use super::harness::{Harness, noop, ok};
use crate::{Actor, Backend, JobState, QueueLimit, Reason, ReclaimOptions, ReserveOptions};

async fn reclaim(h: &Harness, limit: u32) -> u64 {
    let backend: &dyn Backend = h.admin.backend.as_ref();
    ok(
        backend
            .reclaim_expired(&Actor::Reaper, ReclaimOptions { limit })
            .await,
        "reclaim",
    )
}

pub(crate) async fn an_expired_lease_is_a_failed_attempt(h: &Harness) {
    let queue = h.queue().await;
    let job = h.enqueue_in(&queue).await;
    let run = h.w(0).reserve_one(&[&queue]).await;
    h.advance(h.lease);
    // Another worker's reserve reclaims the lease on its way; the job then waits its back-off.
    h.w(1).reserve_none(&[&queue]).await;
    let stored = h.job(job.id).await;
    assert_eq!((stored.state, stored.attempts), (JobState::Retrying, 1));
    assert_eq!(stored.run_at, h.now() + chrono::Duration::seconds(6));
    assert_eq!(stored.lease, None);
    let row = h.history(job.id).await.pop().expect("a history row");
    assert_eq!(
        (row.from, row.to),
        (Some(JobState::Running), JobState::Retrying)
    );
    assert_eq!(
        (row.reason, row.actor, row.attempt),
        (Reason::LeaseExpired, Actor::Reaper, 1)
    );
    assert_eq!(row.lease_token.as_deref(), Some(run.lease.token.as_str()));
    let message = row.error.map(|e| e.message).unwrap_or_default();
    assert!(message.contains("lease expired"), "{message}");
    h.advance(Duration::from_secs(6));
    let again = h.w(1).reserve_one(&[&queue]).await;
    assert_eq!(again.lease.attempt, 2);
}

pub(crate) async fn only_expired_leases_are_reclaimed(h: &Harness) {
    // Reliability case 3: expiries in the past and exactly now are reclaimed; later ones not.
    let queue = h.queue().await;
    for _ in 0..3 {
        h.enqueue_in(&queue).await;
    }
    let opts = || ReserveOptions::up_to(1).queues([&queue]);
    let first = h.w(0).reserve(opts()).await.remove(0);
    h.advance(Duration::from_secs(15));
    let second = h.w(0).reserve(opts()).await.remove(0);
    h.advance(Duration::from_secs(10));
    let third = h.w(0).reserve(opts()).await.remove(0);
    // At the second lease's expiry: the first expired 15 s ago, the third expires in 10 s.
    h.clock.set(second.lease.expires_at);
    assert_eq!(reclaim(h, 100).await, 2);
    assert_eq!(h.state(first.job.id).await, JobState::Retrying);
    assert_eq!(h.state(second.job.id).await, JobState::Retrying);
    assert_eq!(h.state(third.job.id).await, JobState::Running);
    assert_eq!(reclaim(h, 100).await, 0, "nothing is reclaimed twice");
}

pub(crate) async fn an_expiry_with_no_attempt_left_fails_the_job(h: &Harness) {
    // Reliability case 4: a terminal state, not a loop.
    let queue = h.queue_with(QueueLimit::Max(1)).await;
    let job = h.enqueue(noop().queue(&queue).max_attempts(1)).await;
    h.w(0).reserve_one(&[&queue]).await;
    h.advance(h.lease);
    assert_eq!(reclaim(h, 10).await, 1);
    let stored = h.job(job.id).await;
    assert_eq!(stored.state, JobState::Failed);
    assert_eq!(stored.finished_at, Some(h.now()));
    let row = h.history(job.id).await.pop().expect("a history row");
    assert_eq!(
        (row.reason, row.to),
        (Reason::LeaseExpired, JobState::Failed)
    );
    h.enqueue_in(&queue).await;
}

pub(crate) async fn an_expiry_with_a_cancel_request_cancels(h: &Harness) {
    // Reliability case 19: a cancelled job whose worker vanished ends cancelled.
    let queue = h.queue().await;
    let job = h.enqueue_in(&queue).await;
    h.w(0).reserve_one(&[&queue]).await;
    ok(
        h.admin.backend.cancel(&h.admin.actor, job.id).await,
        "cancel",
    );
    h.advance(h.lease);
    assert_eq!(reclaim(h, 10).await, 1);
    assert_eq!(h.state(job.id).await, JobState::Cancelled);
}

pub(crate) async fn a_job_completed_before_the_reclaim_stays_completed(h: &Harness) {
    // Reliability case 36: an expired lease that nobody reclaimed yet may still complete,
    // and the reclaimer then leaves the job alone.
    let queue = h.queue().await;
    let job = h.enqueue_in(&queue).await;
    let run = h.w(0).reserve_one(&[&queue]).await;
    h.advance(h.lease + Duration::from_secs(1));
    ok(
        h.w(0).complete(&run).await,
        "complete after the expiry, before a reclaim",
    );
    assert_eq!(reclaim(h, 10).await, 0);
    assert_eq!(h.state(job.id).await, JobState::Succeeded);
    let history = h.history(job.id).await;
    assert!(
        history.iter().all(|r| r.reason != Reason::LeaseExpired),
        "{history:?}"
    );
}

pub(crate) async fn reclaim_is_bounded_by_its_limit(h: &Harness) {
    let queue = h.queue().await;
    for _ in 0..3 {
        h.enqueue_in(&queue).await;
    }
    h.w(0)
        .reserve(ReserveOptions::up_to(3).queues([&queue]))
        .await;
    h.advance(h.lease);
    assert_eq!(reclaim(h, 2).await, 2);
    assert_eq!(reclaim(h, 2).await, 1);
    assert_eq!(reclaim(h, 2).await, 0);
}
