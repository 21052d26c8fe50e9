//! Queue administration (F5).

use super::harness::{Harness, noop, ok};
use crate::{
    Backend, BackendExt, DEFAULT_QUEUE, DEFAULT_QUEUE_LIMIT, Error, JobState, QueueLimit,
    QueueUpdate, Retention, RetryPlan,
};

fn backend(h: &Harness) -> &dyn Backend {
    h.admin.backend.as_ref()
}

pub(crate) async fn create_queue_has_a_finite_default_limit(h: &Harness) {
    let admin = &h.admin.actor;
    let info = ok(
        backend(h)
            .create_queue(admin, "mail", QueueLimit::default())
            .await,
        "create",
    );
    assert_eq!(info.limit, QueueLimit::Max(DEFAULT_QUEUE_LIMIT));
    assert_eq!(
        (info.name.as_str(), info.paused, info.counts.total()),
        ("mail", false, 0)
    );
    let open = ok(
        backend(h)
            .create_queue(admin, "firehose", QueueLimit::Unlimited)
            .await,
        "create",
    );
    assert_eq!(open.limit, QueueLimit::Unlimited);
    let again = backend(h)
        .create_queue(admin, "mail", QueueLimit::Max(5))
        .await;
    assert_error!(again, Error::Conflict { .. });
    for bad in ["", "has space", "slash/ed"] {
        let refused = backend(h)
            .create_queue(admin, bad, QueueLimit::default())
            .await;
        assert_error!(refused, Error::InvalidInput { .. });
    }
    let default = ok(
        backend(h).queue(admin, DEFAULT_QUEUE).await,
        "the default queue exists",
    );
    assert_eq!(default.limit, QueueLimit::Max(DEFAULT_QUEUE_LIMIT));
}

pub(crate) async fn update_queue_changes_limit_and_pause(h: &Harness) {
    let queue = h.queue_with(QueueLimit::Max(1)).await;
    let admin = &h.admin.actor;
    h.enqueue_in(&queue).await;
    let info = ok(backend(h).queue(admin, &queue).await, "look up the queue");
    assert_eq!(
        info.retention,
        Retention::Forever,
        "kept forever by default"
    );
    let hour = Retention::For(std::time::Duration::from_secs(3600));
    let raise = QueueUpdate {
        limit: Some(QueueLimit::Max(2)),
        paused: None,
        retention: Some(hour),
        ..QueueUpdate::default()
    };
    let info = ok(
        backend(h).update_queue(admin, &queue, raise).await,
        "raise the limit",
    );
    assert_eq!(
        (info.limit, info.paused, info.retention),
        (QueueLimit::Max(2), false, hour)
    );
    h.enqueue_in(&queue).await;
    let lower = QueueUpdate {
        limit: Some(QueueLimit::Max(1)),
        paused: Some(true),
        retention: None,
        ..QueueUpdate::default()
    };
    let info = ok(
        backend(h).update_queue(admin, &queue, lower).await,
        "lower and pause",
    );
    assert_eq!(
        (info.limit, info.paused, info.counts.live(), info.retention),
        (QueueLimit::Max(1), true, 2, hour)
    );
    assert_error!(
        h.try_enqueue(noop().queue(&queue)).await,
        Error::QueueFull { .. }
    );
    let unknown = backend(h)
        .update_queue(admin, "nope", QueueUpdate::default())
        .await;
    assert_error!(unknown, Error::UnknownQueue { .. });
}

pub(crate) async fn delete_queue_only_without_live_jobs(h: &Harness) {
    let queue = h.queue().await;
    let admin = &h.admin.actor;
    let job = h.enqueue_in(&queue).await;
    assert_error!(
        backend(h).delete_queue(admin, &queue).await,
        Error::Conflict { .. }
    );
    let run = h.w(0).reserve_one(&[&queue]).await;
    assert_error!(
        backend(h).delete_queue(admin, &queue).await,
        Error::Conflict { .. }
    );
    ok(h.w(0).fail(&run, "boom", RetryPlan::Never).await, "fail");
    ok(backend(h).delete_queue(admin, &queue).await, "delete");
    assert_error!(
        backend(h).queue(admin, &queue).await,
        Error::UnknownQueue { .. }
    );
    assert_error!(
        backend(h).delete_queue(admin, &queue).await,
        Error::UnknownQueue { .. }
    );
    // Its finished jobs stay, with their history.
    assert_eq!(h.state(job.id).await, JobState::Failed);
    assert_eq!(h.history(job.id).await.len(), 3);
    assert_error!(
        h.try_enqueue(noop().queue(&queue)).await,
        Error::UnknownQueue { .. }
    );
}

pub(crate) async fn queues_list_their_counts(h: &Harness) {
    let (a, b) = (h.queue().await, h.queue().await);
    h.enqueue_in(&a).await;
    h.enqueue_in(&a).await;
    h.enqueue(
        noop()
            .queue(&b)
            .run_at(h.now() + chrono::Duration::hours(1)),
    )
    .await;
    let run = h.w(0).reserve_one(&[&a]).await;
    ok(h.w(0).complete(&run).await, "complete");
    let queues = ok(backend(h).queues(&h.admin.actor).await, "list queues");
    let names: Vec<&str> = queues.iter().map(|q| q.name.as_str()).collect();
    assert!(
        names.windows(2).all(|w| w[0] < w[1]),
        "sorted by name: {names:?}"
    );
    let find = |name: &str| queues.iter().find(|q| q.name == name).expect("listed");
    let (qa, qb) = (find(&a), find(&b));
    assert_eq!(
        (
            qa.counts.get(JobState::Available),
            qa.counts.get(JobState::Succeeded)
        ),
        (1, 1)
    );
    assert_eq!((qa.counts.live(), qa.counts.total()), (1, 2));
    assert_eq!(
        (qb.counts.get(JobState::Scheduled), qb.counts.total()),
        (1, 1)
    );
    assert!(names.contains(&DEFAULT_QUEUE));
}
