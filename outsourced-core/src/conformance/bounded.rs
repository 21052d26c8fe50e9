//! Bounded queues: a full queue refuses, all or none, and stays exact under concurrency
//! (reliability cases 27 and 28).

use std::time::Duration;

use futures::future::join_all;

use super::harness::{Harness, noop, ok};
use crate::{
    BackendExt, CountFilter, Error, JobState, NewJob, QueueLimit, Repeat, ReserveOptions,
    RetryPlan, by_state,
};

pub(crate) async fn a_full_queue_refuses_and_stores_nothing(h: &Harness) {
    let queue = h.queue_with(QueueLimit::Max(2)).await;
    h.enqueue_in(&queue).await;
    h.enqueue_in(&queue).await;
    let refused = h.try_enqueue(noop().queue(&queue)).await;
    assert_error!(&refused, Error::QueueFull { queue: q, limit: 2 } if *q == queue);
    assert!(
        refused.err().is_some_and(|e| e.is_retryable()),
        "a full queue may drain"
    );
    assert_eq!(h.live(&queue).await, 2);
    let counts = h
        .admin
        .backend
        .counts(&h.admin.actor, CountFilter::default())
        .await;
    assert_eq!(
        by_state(&ok(counts, "count")).total(),
        2,
        "nothing was stored"
    );
}

pub(crate) async fn a_batch_over_the_limit_stores_nothing(h: &Harness) {
    let queue = h.queue_with(QueueLimit::Max(3)).await;
    let batch = |n| (0..n).map(|_| noop().queue(&queue)).collect::<Vec<_>>();
    let producer = &h.producer;
    let over = producer
        .backend
        .enqueue_batch(&producer.actor, batch(4))
        .await;
    assert_error!(over, Error::QueueFull { limit: 3, .. });
    assert_eq!(h.live(&queue).await, 0);
    let fits = producer
        .backend
        .enqueue_batch(&producer.actor, batch(3))
        .await;
    assert_eq!(ok(fits, "enqueue a batch that fits").len(), 3);
    let one_more = producer
        .backend
        .enqueue_batch(&producer.actor, batch(1))
        .await;
    assert_error!(one_more, Error::QueueFull { .. });
    assert_eq!(h.live(&queue).await, 3);
}

pub(crate) async fn only_live_jobs_hold_slots(h: &Harness) {
    let queue = h.queue_with(QueueLimit::Max(3)).await;
    let q = [queue.as_str()];
    // Scheduled, available and running jobs hold slots.
    h.enqueue(
        noop()
            .queue(&queue)
            .run_at(h.now() + chrono::Duration::hours(1)),
    )
    .await;
    h.enqueue(noop().queue(&queue).max_attempts(2)).await;
    let running = h.w(0).reserve_one(&q).await;
    h.enqueue_in(&queue).await;
    assert_error!(
        h.try_enqueue(noop().queue(&queue)).await,
        Error::QueueFull { .. }
    );
    // A retrying job still holds its slot.
    ok(
        h.w(0).fail(&running, "boom", RetryPlan::Backoff).await,
        "fail",
    );
    assert_eq!(h.state(running.job.id).await, JobState::Retrying);
    assert_error!(
        h.try_enqueue(noop().queue(&queue)).await,
        Error::QueueFull { .. }
    );
    // Succeeded, failed and cancelled jobs do not.
    let available = h.w(0).reserve_one(&q).await;
    ok(h.w(0).complete(&available).await, "complete");
    h.enqueue_in(&queue).await;
    assert_error!(
        h.try_enqueue(noop().queue(&queue)).await,
        Error::QueueFull { .. }
    );
    h.advance(Duration::from_secs(6));
    let reserved = h.w(0).reserve(ReserveOptions::up_to(10).queues(q)).await;
    let retried = reserved.iter().find(|r| r.job.id == running.job.id);
    let retried = retried.expect("the retrying job is due again");
    let state = ok(
        h.w(0).fail(retried, "boom again", RetryPlan::Backoff).await,
        "fail",
    );
    assert_eq!(state, JobState::Failed);
    let scheduled = h.enqueue_in(&queue).await;
    let cancelled = ok(
        h.admin.backend.cancel(&h.admin.actor, scheduled.id).await,
        "cancel",
    );
    assert_eq!(cancelled, JobState::Cancelled);
    h.enqueue_in(&queue).await;
    assert_eq!(h.live(&queue).await, 3);
}

pub(crate) async fn a_repeating_job_keeps_its_slot(h: &Harness) {
    let queue = h.queue_with(QueueLimit::Max(1)).await;
    let every = Repeat::Every(Duration::from_secs(60));
    h.enqueue(noop().queue(&queue).repeat(every)).await;
    let run = h.w(0).reserve_one(&[&queue]).await;
    ok(h.w(0).complete(&run).await, "complete");
    assert_eq!(h.state(run.job.id).await, JobState::Scheduled);
    assert_error!(
        h.try_enqueue(noop().queue(&queue)).await,
        Error::QueueFull { .. }
    );
}

pub(crate) async fn retrying_into_a_full_queue_is_refused(h: &Harness) {
    let queue = h.queue_with(QueueLimit::Max(1)).await;
    h.enqueue(noop().queue(&queue)).await;
    let run = h.w(0).reserve_one(&[&queue]).await;
    ok(h.w(0).fail(&run, "boom", RetryPlan::Never).await, "fail");
    h.enqueue_in(&queue).await;
    let retry = h.admin.backend.retry(&h.admin.actor, run.job.id).await;
    assert_error!(retry, Error::QueueFull { .. });
    assert_eq!(
        h.state(run.job.id).await,
        JobState::Failed,
        "nothing changed"
    );
    assert_eq!(
        h.history(run.job.id).await.len(),
        3,
        "no history row was added"
    );
}

pub(crate) async fn concurrent_producers_never_exceed_the_limit(h: &Harness) {
    let queue = h.queue_with(QueueLimit::Max(5)).await;
    let attempts = (0..16).map(|i| {
        let producer = h.producer.clone();
        let job = NewJob::new("Race", serde_json::json!([i])).queue(&queue);
        tokio::spawn(async move { producer.backend.enqueue(&producer.actor, job).await })
    });
    let results: Vec<_> = join_all(attempts)
        .await
        .into_iter()
        .map(|r| ok(r, "join"))
        .collect();
    let accepted = results.iter().filter(|r| r.is_ok()).count();
    let full = results
        .iter()
        .filter(|r| matches!(r, Err(Error::QueueFull { .. })))
        .count();
    assert_eq!((accepted, full), (5, 11), "{results:?}");
    let info = ok(h.admin.backend.queue(&h.admin.actor, &queue).await, "queue");
    assert_eq!(info.counts.get(JobState::Available), 5);
}
