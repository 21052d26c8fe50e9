//! Unique jobs: a key held by one job makes another enqueue with it a duplicate that stores
//! nothing, exactly, under concurrency too.

use std::time::Duration;

use futures::future::join_all;

use super::harness::{Harness, noop, ok};
use crate::{Enqueued, Error, JobFilter, QueueLimit, Unique};

/// How many jobs the queue holds, whatever their state.
async fn stored(h: &Harness, queue: &str) -> usize {
    let filter = JobFilter {
        queue: Some(queue.to_owned()),
        ..JobFilter::default()
    };
    ok(
        h.admin.backend.jobs(&h.admin.actor, filter).await,
        "list jobs",
    )
    .len()
}

pub(crate) async fn a_duplicate_stores_nothing_and_answers_the_holder(h: &Harness) {
    let queue = h.queue_with(QueueLimit::Max(1)).await;
    let first = h
        .enqueue(noop().queue(&queue).unique(Unique::key("order-42")))
        .await;
    assert_eq!(first.unique_key.as_deref(), Some("order-42"));
    // The queue is full, yet a duplicate takes no slot: it is answered, not refused.
    let again = h
        .enqueue(noop().queue(&queue).unique(Unique::key("order-42")))
        .await;
    assert_eq!(again.id, first.id);
    assert_eq!((h.live(&queue).await, stored(h, &queue).await), (1, 1));
    let each = h.producer.backend.enqueue_each(
        &h.producer.actor,
        vec![noop().queue(&queue).unique(Unique::key("order-42"))],
    );
    let each = ok(each.await, "enqueue");
    assert_eq!(
        each,
        [Enqueued {
            id: first.id,
            duplicate: true
        }]
    );
    // Another class has a key of its own, unless the key is unique across the queue.
    let other = noop().queue(&queue).unique(Unique::key("order-42"));
    let other = crate::NewJob {
        class: "Other".into(),
        ..other
    };
    let refused = h.try_enqueue(other.clone()).await;
    assert_error!(refused, Error::QueueFull { .. });
    // Across the queue, a key is one for every class (and a scope apart from per-class keys).
    let queue = h.queue().await;
    let across = || {
        noop()
            .queue(&queue)
            .unique(Unique::key("order-42").across_queue())
    };
    let first = h.enqueue(across()).await;
    let other = crate::NewJob {
        class: "Other".into(),
        ..across()
    };
    assert_eq!(h.enqueue(other).await.id, first.id);
}

pub(crate) async fn a_key_is_free_once_its_job_has_finished(h: &Harness) {
    let queue = h.queue().await;
    let key = || noop().queue(&queue).unique(Unique::key("nightly"));
    let first = h.enqueue(key()).await;
    let running = h.w(0).reserve_one(&[&queue]).await;
    assert_eq!(
        h.enqueue(key()).await.id,
        first.id,
        "a running job holds its key"
    );
    ok(h.w(0).complete(&running).await, "complete");
    let second = h.enqueue(key()).await;
    assert_ne!(second.id, first.id);
    assert_eq!(h.enqueue(key()).await.id, second.id);
}

pub(crate) async fn a_key_with_a_period_outlives_its_job(h: &Harness) {
    let queue = h.queue().await;
    let minute = Unique::key("digest").period(Duration::from_secs(60));
    let key = || noop().queue(&queue).unique(minute.clone());
    let first = h.enqueue(key()).await;
    let running = h.w(0).reserve_one(&[&queue]).await;
    ok(h.w(0).complete(&running).await, "complete");
    h.advance(Duration::from_secs(59));
    assert_eq!(
        h.enqueue(key()).await.id,
        first.id,
        "still within its period"
    );
    h.advance(Duration::from_secs(1));
    let second = h.enqueue(key()).await;
    assert_ne!(second.id, first.id);
    assert_eq!(stored(h, &queue).await, 2);
}

pub(crate) async fn a_refused_duplicate_names_the_holder_and_refuses_its_batch(h: &Harness) {
    let queue = h.queue().await;
    let first = h
        .enqueue(noop().queue(&queue).unique(Unique::key("k")))
        .await;
    let refuse = || {
        noop()
            .queue(&queue)
            .unique(Unique::key("k").refuse_duplicates())
    };
    let refused = h.try_enqueue(refuse()).await;
    assert_error!(refused, Error::Duplicate { ref key, existing } if key == "k" && existing == first.id);
    let batch = vec![noop().queue(&queue), refuse()];
    let refused = h
        .producer
        .backend
        .enqueue_batch(&h.producer.actor, batch)
        .await;
    assert_error!(refused, Error::Duplicate { .. });
    assert_eq!((h.live(&queue).await, stored(h, &queue).await), (1, 1));
}

pub(crate) async fn a_batch_says_which_jobs_were_duplicates(h: &Harness) {
    let queue = h.queue().await;
    let held = h
        .enqueue(noop().queue(&queue).unique(Unique::key("held")))
        .await;
    let keyed = |k: &str| noop().queue(&queue).unique(Unique::key(k));
    let batch = vec![
        keyed("new"),
        keyed("new"),
        noop().queue(&queue),
        keyed("held"),
    ];
    let each = ok(
        h.producer
            .backend
            .enqueue_each(&h.producer.actor, batch)
            .await,
        "enqueue a batch",
    );
    let duplicates: Vec<bool> = each.iter().map(|e| e.duplicate).collect();
    assert_eq!(duplicates, [false, true, false, true]);
    assert_eq!(
        each[1].id, each[0].id,
        "the same key twice: the first is stored"
    );
    assert_eq!(each[3].id, held.id);
    assert_eq!((h.live(&queue).await, stored(h, &queue).await), (3, 3));
}

pub(crate) async fn concurrent_enqueues_of_one_key_store_one_job(h: &Harness) {
    let queue = h.queue().await;
    let enqueues = (0..32).map(|_| {
        let (h, queue) = (h.clone(), queue.clone());
        async move {
            h.enqueue(noop().queue(&queue).unique(Unique::key("once")))
                .await
                .id
        }
    });
    let ids = join_all(enqueues).await;
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!((h.live(&queue).await, stored(h, &queue).await), (1, 1));
}

/// A job type unique by its arguments (`Job::unique` with `Unique::of_args`).
#[derive(serde::Serialize, serde::Deserialize)]
struct Digest {
    user: u64,
}

#[async_trait::async_trait]
impl crate::Job for Digest {
    const CLASS: &'static str = "Digest";

    async fn perform(&self, _ctx: &crate::JobContext) -> Result<(), crate::JobError> {
        Ok(())
    }

    fn unique(&self) -> Option<Unique> {
        Some(Unique::of_args(self))
    }
}

pub(crate) async fn a_job_type_can_be_unique_by_its_arguments(h: &Harness) {
    use crate::JobExt;
    let queue = h.queue().await;
    let enqueue = |user| {
        let job = ok(Digest { user }.to_new_job(), "build the job").queue(&queue);
        h.enqueue(job)
    };
    let first = enqueue(42).await;
    assert!(
        first
            .unique_key
            .as_deref()
            .is_some_and(|k| k.starts_with("args:")),
        "{:?}",
        first.unique_key
    );
    assert_eq!(
        enqueue(42).await.id,
        first.id,
        "the same arguments: the same job"
    );
    assert_ne!(
        enqueue(7).await.id,
        first.id,
        "other arguments: another job"
    );
    assert_eq!(stored(h, &queue).await, 2);
}

/// Debounce: a duplicate that asks for it gives the waiting holder its arguments and run time
/// (a `replaced` row in the holder's history) and stores nothing; a holder that has started, or
/// of another class, is left as it is.
pub(crate) async fn a_duplicate_can_replace_a_waiting_holder(h: &Harness) {
    let queue = h.queue_with(QueueLimit::Max(1)).await;
    let edit = |n: u32| {
        let job = noop()
            .queue(&queue)
            .unique(Unique::key("reindex").replace_duplicates());
        crate::NewJob {
            args: serde_json::json!([n]),
            ..job
        }
    };
    let later = h.now() + chrono::Duration::hours(1);
    let first = h.enqueue(edit(1).run_at(later)).await;
    assert_eq!(first.state, crate::JobState::Scheduled);
    let soon = h.now() + chrono::Duration::seconds(5);
    let second = h.enqueue(edit(2).run_at(soon)).await;
    assert_eq!(second.id, first.id, "the holder answers");
    assert_eq!(
        (&second.args, second.run_at, second.state),
        (&serde_json::json!([2]), soon, crate::JobState::Scheduled)
    );
    // Due now: the holder becomes available, and a full queue does not refuse (no slot taken).
    let third = h.enqueue(edit(3)).await;
    assert_eq!(
        (third.id, third.state),
        (first.id, crate::JobState::Available)
    );
    assert_eq!(stored(h, &queue).await, 1);
    let history = h.history(first.id).await;
    let replaced: Vec<_> = history
        .iter()
        .filter(|row| row.reason == crate::Reason::Replaced)
        .map(|row| (row.from, row.to))
        .collect();
    use crate::JobState::{Available, Scheduled};
    assert_eq!(
        replaced,
        [(Some(Scheduled), Scheduled), (Some(Scheduled), Available)]
    );
    // Started: left as it is, the duplicate answered with it.
    let running = h.w(0).reserve_one(&[&queue]).await;
    assert_eq!(running.job.args, serde_json::json!([3]));
    let late = h.enqueue(edit(4)).await;
    assert_eq!(late.id, first.id);
    assert_eq!(
        (late.args, late.state),
        (serde_json::json!([3]), crate::JobState::Running)
    );
    assert_eq!(h.history(first.id).await.len(), history.len() + 1);
    // Across the queue, a holder of another class keeps its arguments.
    let queue = h.queue().await;
    let across = |class: &str, n: u32| crate::NewJob {
        class: class.into(),
        args: serde_json::json!([n]),
        ..noop()
            .queue(&queue)
            .unique(Unique::key("k").across_queue().replace_duplicates())
    };
    let holder = h.enqueue(across("Reindex", 1)).await;
    let other = h.enqueue(across("Other", 2)).await;
    assert_eq!((other.id, other.args), (holder.id, serde_json::json!([1])));
}

/// Jobs can be listed by their unique key, in whatever queue and class, newest first.
pub(crate) async fn jobs_can_be_listed_by_their_key(h: &Harness) {
    let (one, two) = (h.queue().await, h.queue().await);
    let keyed = |queue: &str, key: &str| noop().queue(queue).unique(Unique::key(key));
    let first = h.enqueue(keyed(&one, "k-listed")).await;
    let second = h.enqueue(keyed(&two, "k-listed")).await;
    h.enqueue(keyed(&one, "k-other")).await;
    h.enqueue(noop().queue(&one)).await;
    let filter = JobFilter {
        unique_key: Some("k-listed".into()),
        ..JobFilter::default()
    };
    let listed = h.admin.backend.jobs(&h.admin.actor, filter).await;
    let ids: Vec<_> = ok(listed, "list by key").iter().map(|j| j.id).collect();
    assert_eq!(ids, [second.id, first.id]);
}
