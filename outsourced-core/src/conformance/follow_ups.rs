//! Follow-ups: the jobs a success asks for are stored with it, in its transaction, or not at
//! all.

use serde_json::json;

use super::harness::{Harness, noop, ok};
use crate::{
    Actor, Backend, BackendExt, Completion, Error, JobFilter, JobId, JobRecord, JobState,
    MAX_FOLLOW_UPS, NewJob, QueueLimit, Reason, Reserved,
};

/// A success of `reserved` that asks for `follow_ups`.
fn success(reserved: &Reserved, follow_ups: Vec<NewJob>) -> Completion {
    Completion {
        lease: reserved.lease.to_ref(),
        result: None,
        follow_ups,
    }
}

/// The follow-ups of `parent`, oldest first, as the admin lists them.
async fn follow_ups_of(h: &Harness, parent: JobId) -> Vec<JobRecord> {
    let filter = JobFilter {
        parent: Some(parent),
        ..JobFilter::default()
    };
    let mut jobs = ok(h.admin.backend.jobs(&h.admin.actor, filter).await, "list");
    jobs.reverse();
    jobs
}

pub(crate) async fn follow_ups_are_stored_with_the_success(h: &Harness) {
    let (scans, pages) = (h.queue().await, h.queue().await);
    let parent = h.enqueue_in(&scans).await;
    let reserved = h.w(0).reserve_one(&[&scans]).await;
    let asked = vec![
        NewJob::new("Ocr", json!({"page": 1})).queue(&pages),
        NewJob::new("Ocr", json!({"page": 2}))
            .queue(&pages)
            .priority(-1),
    ];
    let done = success(&reserved, asked);
    ok(
        h.w(0).backend.complete_one(&h.w(0).id, done).await,
        "complete",
    );

    assert_eq!(h.state(parent.id).await, JobState::Succeeded);
    let stored = follow_ups_of(h, parent.id).await;
    let args: Vec<_> = stored.iter().map(|job| job.args.clone()).collect();
    assert_eq!(args, [json!({"page": 1}), json!({"page": 2})]);
    assert_eq!(stored[1].priority, -1);
    assert_eq!(h.live(&pages).await, 2);
    for job in &stored {
        assert_eq!(job.parent, Some(parent.id));
        assert_eq!(job.state, JobState::Available);
        // Owned by the producer on whose behalf the work runs: it reads them as its own.
        assert_eq!(job.enqueued_by, parent.enqueued_by);
        let read = h.producer.backend.job(&h.producer.actor, job.id).await;
        assert_eq!(ok(read, "the producer reads a follow-up").id, job.id);
        // Stored by the worker: the first history row names it.
        let first = h.history(job.id).await.remove(0);
        assert_eq!(first.reason, Reason::Enqueued);
        assert_eq!(first.actor, Actor::Worker(h.w(0).id.clone()));
    }
    // A follow-up is a job like any other: it runs.
    let next = h.w(1).reserve_one(&[&pages]).await;
    assert_eq!(next.job.args, json!({"page": 2}));
}

pub(crate) async fn a_refused_follow_up_refuses_the_success_and_changes_nothing(h: &Harness) {
    let (scans, pages) = (h.queue().await, h.queue().await);
    let full = h.queue_with(QueueLimit::Max(1)).await;
    h.enqueue_in(&full).await;
    let parent = h.enqueue_in(&scans).await;
    let reserved = h.w(0).reserve_one(&[&scans]).await;
    let ocr = || NewJob::new("Ocr", json!([])).queue(&pages);
    let (w, id) = (&h.w(0).backend, &h.w(0).id);

    let unknown = success(&reserved, vec![ocr(), ocr().queue("no-such-queue")]);
    assert_error!(
        w.complete_one(id, unknown).await,
        Error::UnknownQueue { .. }
    );
    let too_full = success(&reserved, vec![ocr(), ocr().queue(&full)]);
    assert_error!(w.complete_one(id, too_full).await, Error::QueueFull { .. });
    let invalid = success(&reserved, vec![ocr(), noop().queue(&pages).max_attempts(0)]);
    assert_error!(
        w.complete_one(id, invalid).await,
        Error::InvalidInput { .. }
    );
    let too_many = success(&reserved, vec![ocr(); MAX_FOLLOW_UPS + 1]);
    assert_error!(
        w.complete_one(id, too_many).await,
        Error::InvalidInput { .. }
    );

    // Nothing changed: the job still runs under its lease, and no follow-up was stored.
    assert_eq!(h.state(parent.id).await, JobState::Running);
    assert_eq!(h.live(&pages).await, 0);
    assert_eq!(h.live(&full).await, 1);
    assert!(follow_ups_of(h, parent.id).await.is_empty());
    ok(h.w(0).heartbeat(&reserved).await, "the lease still holds");
    ok(h.w(0).complete(&reserved).await, "complete without them");
    assert_eq!(h.live(&pages).await, 0);
}

pub(crate) async fn a_refused_follow_up_refuses_its_success_alone_in_a_batch(h: &Harness) {
    let (scans, pages) = (h.queue().await, h.queue().await);
    for _ in 0..3 {
        h.enqueue_in(&scans).await;
    }
    let jobs = h
        .w(0)
        .reserve(crate::ReserveOptions::up_to(3).queues([&scans]))
        .await;
    let ocr = NewJob::new("Ocr", json!([])).queue(&pages);
    let done = [
        success(&jobs[0], vec![ocr.clone()]),
        success(&jobs[1], vec![ocr.clone().queue("no-such-queue")]),
        success(&jobs[2], Vec::new()),
    ];
    let answers = h.w(0).backend.complete_batch(&h.w(0).id, &done).await;
    let answers = ok(answers, "complete a batch");
    assert!(answers[0].is_ok() && answers[2].is_ok(), "{answers:?}");
    assert_error!(&answers[1], Error::UnknownQueue { .. });
    let states = [
        h.state(jobs[0].job.id).await,
        h.state(jobs[1].job.id).await,
        h.state(jobs[2].job.id).await,
    ];
    use JobState::{Running, Succeeded};
    assert_eq!(states, [Succeeded, Running, Succeeded]);
    assert_eq!(follow_ups_of(h, jobs[0].job.id).await.len(), 1);
    assert_eq!(h.live(&pages).await, 1);
}

pub(crate) async fn a_repeated_success_stores_its_follow_ups_once(h: &Harness) {
    let (scans, pages) = (h.queue().await, h.queue().await);
    let parent = h.enqueue_in(&scans).await;
    let reserved = h.w(0).reserve_one(&[&scans]).await;
    let asked = vec![NewJob::new("Report", json!([])).queue(&pages)];
    for _ in 0..2 {
        let done = success(&reserved, asked.clone());
        ok(
            h.w(0).backend.complete_one(&h.w(0).id, done).await,
            "complete",
        );
    }
    assert_eq!(follow_ups_of(h, parent.id).await.len(), 1);
    assert_eq!(h.live(&pages).await, 1);
    // Another worker's report of the same lease is stale and stores nothing.
    let stolen = success(&reserved, asked);
    let stale = h.w(1).backend.complete_one(&h.w(1).id, stolen).await;
    assert_error!(stale, Error::StaleLease { .. } | Error::NotFound { .. });
    assert_eq!(h.live(&pages).await, 1);
}
