//! Results: what a job hands back on success is kept with the attempt that produced it.

use std::time::Duration;

use serde_json::{Value, json};

use super::harness::{Harness, noop, ok};
use crate::{BackendExt, Completion, Error, JobState, MAX_RESULT_BYTES, Reason, Repeat};

pub(crate) async fn results_are_kept_with_their_attempt(h: &Harness) {
    let queue = h.queue().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(h.enqueue_in(&queue).await.id);
    }
    let jobs = h
        .w(0)
        .reserve(crate::ReserveOptions::up_to(3).queues([&queue]))
        .await;
    let with = |i: usize, result: Option<Value>| Completion {
        lease: jobs[i].lease.to_ref(),
        result,
        follow_ups: Vec::new(),
    };
    let too_large = Value::String("x".repeat(MAX_RESULT_BYTES));
    let done = [
        with(0, Some(json!({"pages": 3, "url": "s3://bucket/a.pdf"}))),
        with(1, Some(too_large)),
        with(2, None),
    ];
    let answers = ok(
        h.w(0).backend.complete_batch(&h.w(0).id, &done).await,
        "complete",
    );
    assert!(answers[0].is_ok() && answers[2].is_ok(), "{answers:?}");
    assert_error!(&answers[1], Error::InvalidInput { .. });

    let history = h.history(jobs[0].job.id).await;
    let last = history.last().expect("history rows");
    assert_eq!(last.reason, Reason::Completed);
    assert_eq!(
        last.result,
        Some(json!({"pages": 3, "url": "s3://bucket/a.pdf"}))
    );
    assert!(
        history[..history.len() - 1]
            .iter()
            .all(|r| r.result.is_none())
    );
    let read = h.producer.backend.result(&h.producer.actor, jobs[0].job.id);
    assert_eq!(
        ok(read.await, "read a result"),
        Some(json!({"pages": 3, "url": "s3://bucket/a.pdf"}))
    );
    let read = h.admin.backend.result(&h.admin.actor, jobs[2].job.id);
    assert_eq!(ok(read.await, "read a result"), None);

    // The refused completion changed nothing: the job still runs, and may still complete.
    assert_eq!(h.state(jobs[1].job.id).await, JobState::Running);
    let again = h
        .w(0)
        .backend
        .complete_one(&h.w(0).id, with(1, Some(json!(1))));
    ok(again.await, "complete with a result that fits");
    assert_eq!(h.state(jobs[1].job.id).await, JobState::Succeeded);
    let read = h.admin.backend.result(&h.admin.actor, jobs[1].job.id);
    assert_eq!(ok(read.await, "read a result"), Some(json!(1)));
}

pub(crate) async fn a_repeated_complete_keeps_the_first_result(h: &Harness) {
    let queue = h.queue().await;
    let job = h.enqueue_in(&queue).await;
    let reserved = h.w(0).reserve_one(&[&queue]).await;
    for result in [json!("first"), json!("second")] {
        let done = Completion {
            lease: reserved.lease.to_ref(),
            result: Some(result),
            follow_ups: Vec::new(),
        };
        ok(
            h.w(0).backend.complete_one(&h.w(0).id, done).await,
            "complete",
        );
    }
    let read = h.admin.backend.result(&h.admin.actor, job.id);
    assert_eq!(ok(read.await, "read a result"), Some(json!("first")));
    let completed = h.history(job.id).await;
    let completed = completed.iter().filter(|r| r.reason == Reason::Completed);
    assert_eq!(completed.count(), 1);
}

pub(crate) async fn each_run_of_a_repeating_job_keeps_its_result(h: &Harness) {
    let queue = h.queue().await;
    let every = Repeat::Every(Duration::from_secs(60));
    let job = h.enqueue(noop().queue(&queue).repeat(every)).await;
    for run in 1..=2 {
        let reserved = h.w(0).reserve_one(&[&queue]).await;
        let done = Completion {
            lease: reserved.lease.to_ref(),
            result: Some(json!({ "run": run })),
            follow_ups: Vec::new(),
        };
        ok(
            h.w(0).backend.complete_one(&h.w(0).id, done).await,
            "complete",
        );
        h.advance(Duration::from_secs(60));
    }
    let history = h.history(job.id).await;
    let results: Vec<_> = history
        .iter()
        .filter(|r| r.reason == Reason::Completed)
        .map(|r| r.result.clone())
        .collect();
    assert_eq!(results, [Some(json!({"run": 1})), Some(json!({"run": 2}))]);
    assert!(
        history
            .iter()
            .filter(|r| r.reason != Reason::Completed)
            .all(|r| r.result.is_none())
    );
    let read = h.admin.backend.result(&h.admin.actor, job.id);
    assert_eq!(ok(read.await, "read a result"), Some(json!({"run": 2})));
}
