//! Reserve: what it takes, in which order, how it leases (delayed_job SS-31 to SS-45, SS-52 to
//! SS-54; reliability cases 1 and 23). Long-polling is in `long_poll`.

use std::collections::HashSet;
use std::time::Duration;

use futures::future::join_all;
use serde_json::json;

use super::harness::{Harness, noop, ok};
use crate::{
    Actor, Error, JobId, JobState, NewJob, QueueUpdate, Reason, ReserveOptions, RetryPlan,
};

pub(crate) async fn reserve_takes_every_waiting_state_once_due(h: &Harness) {
    let queue = h.queue().await;
    let scheduled = h
        .enqueue(
            noop()
                .queue(&queue)
                .run_at(h.now() + chrono::Duration::seconds(10)),
        )
        .await;
    let failing = h.enqueue_in(&queue).await;
    let run = h.w(0).reserve_one(&[&queue]).await;
    assert_eq!(run.job.id, failing.id);
    ok(
        h.w(0)
            .fail(&run, "boom", RetryPlan::After(Duration::from_secs(10)))
            .await,
        "fail",
    );
    let available = h.enqueue_in(&queue).await;
    h.advance(Duration::from_secs(10));
    let states = [
        h.state(scheduled.id).await,
        h.state(failing.id).await,
        h.state(available.id).await,
    ];
    assert_eq!(
        states,
        [JobState::Scheduled, JobState::Retrying, JobState::Available]
    );
    let got = h
        .w(1)
        .reserve(ReserveOptions::up_to(10).queues([&queue]))
        .await;
    let ids: HashSet<JobId> = got.iter().map(|r| r.job.id).collect();
    assert_eq!(ids, HashSet::from([scheduled.id, failing.id, available.id]));
    for reserved in &got {
        let from = h
            .history(reserved.job.id)
            .await
            .last()
            .and_then(|row| row.from);
        let expected = states[[scheduled.id, failing.id, available.id]
            .iter()
            .position(|id| *id == reserved.job.id)
            .unwrap_or(0)];
        assert_eq!(
            from,
            Some(expected),
            "the history keeps the state it was reserved from"
        );
    }
}

pub(crate) async fn reserve_skips_future_running_and_finished_jobs(h: &Harness) {
    let queue = h.queue().await;
    let q = [queue.as_str()];
    // SS-32: due in a minute.
    h.enqueue(
        noop()
            .queue(&queue)
            .run_at(h.now() + chrono::Duration::minutes(1)),
    )
    .await;
    // SS-33: due a minute ago.
    let due = h
        .enqueue(
            noop()
                .queue(&queue)
                .run_at(h.now() - chrono::Duration::minutes(1)),
        )
        .await;
    let first = h.w(0).reserve_one(&q).await;
    assert_eq!(first.job.id, due.id);
    ok(h.w(0).complete(&first).await, "complete");
    // SS-31: a job that failed for good is never reserved.
    let failing = h.enqueue_in(&queue).await;
    let run = h.w(0).reserve_one(&q).await;
    assert_eq!(run.job.id, failing.id);
    ok(h.w(0).fail(&run, "boom", RetryPlan::Never).await, "fail");
    // A running job is not reserved again.
    h.enqueue_in(&queue).await;
    h.w(0).reserve_one(&q).await;
    h.w(1).reserve_none(&q).await;
}

pub(crate) async fn reserve_orders_by_priority_then_run_time_then_id(h: &Harness) {
    let queue = h.queue().await;
    let at = |secs| h.now() - chrono::Duration::seconds(secs);
    // Enqueued out of order on purpose.
    let specs = [
        (5, 10),
        (1, 5),
        (5, 30),
        (1, 20),
        (-3, 1),
        (5, 30),
        (9, 100),
    ];
    let mut jobs = Vec::new();
    for (priority, ago) in specs {
        let job = h
            .enqueue(noop().queue(&queue).priority(priority).run_at(at(ago)))
            .await;
        jobs.push((priority, job.run_at, job.id));
    }
    jobs.sort();
    let mut got = Vec::new();
    for _ in 0..jobs.len() {
        // One at a time, as SS-43 does, then the order of a single batch.
        got.push(h.w(0).reserve_one(&[&queue]).await.job.id);
    }
    let expected: Vec<JobId> = jobs.iter().map(|(_, _, id)| *id).collect();
    assert_eq!(got, expected);
    let queue = h.queue().await;
    let mut ids = Vec::new();
    for priority in [3, 1, 2] {
        ids.push((
            priority,
            h.enqueue(noop().queue(&queue).priority(priority)).await.id,
        ));
    }
    ids.sort();
    let batch = h
        .w(0)
        .reserve(ReserveOptions::up_to(3).queues([&queue]))
        .await;
    let got: Vec<JobId> = batch.iter().map(|r| r.job.id).collect();
    assert_eq!(got, ids.iter().map(|(_, id)| *id).collect::<Vec<_>>());
}

pub(crate) async fn priority_bounds_are_inclusive(h: &Harness) {
    let queue = h.queue().await;
    for priority in [4, 5, 6] {
        h.enqueue(noop().queue(&queue).priority(priority)).await;
    }
    let bounded = |min, max| ReserveOptions {
        min_priority: min,
        max_priority: max,
        ..ReserveOptions::up_to(10).queues([&queue])
    };
    let at_least_5 = h.w(0).reserve(bounded(Some(5), None)).await;
    let mut priorities: Vec<i32> = at_least_5.iter().map(|r| r.job.priority).collect();
    assert_eq!(priorities, [5, 6], "SS-44: min_priority is inclusive");
    let at_most_5 = h.w(0).reserve(bounded(None, Some(5))).await;
    priorities = at_most_5.iter().map(|r| r.job.priority).collect();
    assert_eq!(priorities, [4], "SS-45: max_priority is inclusive");
    let queue = h.queue().await;
    for priority in [4, 5, 6] {
        h.enqueue(noop().queue(&queue).priority(priority)).await;
    }
    let exactly_5 = ReserveOptions {
        min_priority: Some(5),
        max_priority: Some(5),
        ..ReserveOptions::up_to(10).queues([&queue])
    };
    let got = h.w(0).reserve(exactly_5).await;
    assert_eq!(got.iter().map(|r| r.job.priority).collect::<Vec<_>>(), [5]);
}

pub(crate) async fn queue_filters_and_no_filter_means_all(h: &Harness) {
    let (large, small, medium) = (h.queue().await, h.queue().await, h.queue().await);
    let queues = [&large, &small, &medium];
    let enqueue_all = || async {
        for queue in queues {
            h.enqueue_in(queue).await;
        }
    };
    let taken = |opts: ReserveOptions| async move {
        let got = h.w(0).reserve(opts).await;
        let mut queues: Vec<String> = got.iter().map(|r| r.job.queue.clone()).collect();
        queues.sort();
        queues
    };
    enqueue_all().await;
    // SS-52: one queue.
    let only_large = taken(ReserveOptions::up_to(10).queues([&large])).await;
    assert_eq!(only_large, std::slice::from_ref(&large));
    // SS-53: two of three.
    let mut two = vec![small.clone(), medium.clone()];
    two.sort();
    assert_eq!(
        taken(ReserveOptions::up_to(10).queues([&small, &medium])).await,
        two
    );
    // SS-54: none given means every queue, the default one included.
    enqueue_all().await;
    h.enqueue(noop()).await;
    assert_eq!(taken(ReserveOptions::up_to(10)).await.len(), 4);
}

pub(crate) async fn reserve_takes_only_the_classes_given(h: &Harness) {
    let queue = h.queue().await;
    let of = |class: &str| NewJob::new(class, json!([])).queue(&queue);
    let resize = h.enqueue(of("Resize")).await;
    let mail = h.enqueue(of("SendMail")).await;
    let crop = h.enqueue(of("Crop")).await;
    let got = h
        .w(0)
        .reserve(
            ReserveOptions::up_to(10)
                .queues([&queue])
                .classes(["Crop", "Resize"]),
        )
        .await;
    let mut ids: Vec<JobId> = got.iter().map(|r| r.job.id).collect();
    ids.sort();
    assert_eq!(ids, vec![resize.id, crop.id]);
    let waiting = h.job(mail.id).await;
    assert_eq!(
        (waiting.state, waiting.attempts),
        (JobState::Available, 0),
        "a job of a class the worker does not run stays as it was"
    );
    let none = h
        .w(1)
        .reserve(ReserveOptions::up_to(10).queues([&queue]).classes(["Crop"]))
        .await;
    assert!(none.is_empty(), "{none:?}");
    let refused = h
        .w(1)
        .backend
        .reserve(
            &h.w(1).id,
            ReserveOptions::up_to(1)
                .queues([&queue])
                .classes(Vec::<String>::new()),
        )
        .await;
    assert!(
        matches!(refused, Err(Error::InvalidInput { .. })),
        "{refused:?}"
    );
    // Any class when none are named (a catch-all worker).
    assert_eq!(h.w(1).reserve_one(&[&queue]).await.job.id, mail.id);
}

pub(crate) async fn paused_queues_hand_out_nothing(h: &Harness) {
    let queue = h.queue().await;
    let pause = |paused| QueueUpdate {
        paused: Some(paused),
        ..QueueUpdate::default()
    };
    ok(
        h.admin
            .backend
            .update_queue(&h.admin.actor, &queue, pause(true))
            .await,
        "pause",
    );
    let job = h.enqueue_in(&queue).await;
    h.w(0).reserve_none(&[&queue]).await;
    h.w(0).reserve_none(&[]).await;
    ok(
        h.admin
            .backend
            .update_queue(&h.admin.actor, &queue, pause(false))
            .await,
        "resume",
    );
    assert_eq!(h.w(0).reserve_one(&[&queue]).await.job.id, job.id);
}

pub(crate) async fn reserve_leases_the_job(h: &Harness) {
    let queue = h.queue().await;
    let job = h.enqueue_in(&queue).await;
    let reserved = h.w(0).reserve_one(&[&queue]).await;
    let lease = &reserved.lease;
    assert_eq!(reserved.job.id, job.id);
    assert_eq!(reserved.job.state, JobState::Running);
    assert_eq!(
        reserved.job.attempts, 1,
        "the attempt is counted at reserve"
    );
    assert_eq!(lease.job_id, job.id);
    assert_eq!(lease.attempt, 1);
    assert_eq!(lease.holder, h.w(0).id);
    assert_eq!(
        lease.expires_at,
        h.now() + chrono::Duration::from_std(h.lease).unwrap_or_default()
    );
    assert!(
        lease.token.len() >= 16,
        "a token long enough not to be guessed"
    );
    let stored = h.job(job.id).await;
    assert_eq!(stored.state, JobState::Running);
    let info = stored.lease.expect("a running job shows its lease");
    assert_eq!(
        (info.holder, info.expires_at),
        (h.w(0).id.clone(), lease.expires_at)
    );
    let row = h.history(job.id).await.pop().expect("a history row");
    assert_eq!(
        (row.seq, row.from, row.to),
        (2, Some(JobState::Available), JobState::Running)
    );
    assert_eq!(row.reason, Reason::Reserved);
    assert_eq!(row.actor, Actor::Worker(h.w(0).id.clone()));
    assert_eq!(row.attempt, 1);
    assert_eq!(row.lease_token.as_deref(), Some(lease.token.as_str()));
}

pub(crate) async fn a_leased_job_is_hidden_from_others(h: &Harness) {
    // Reliability case 1 and SS-35: another worker, or the same worker again, gets nothing.
    let queue = h.queue().await;
    h.enqueue_in(&queue).await;
    h.w(0).reserve_one(&[&queue]).await;
    h.w(1).reserve_none(&[&queue]).await;
    h.w(0).reserve_none(&[&queue]).await;
    h.w(2).reserve_none(&[]).await;
}

pub(crate) async fn reserve_hands_out_batches_up_to_the_limit(h: &Harness) {
    let queue = h.queue().await;
    for _ in 0..5 {
        h.enqueue_in(&queue).await;
    }
    let first = h
        .w(0)
        .reserve(ReserveOptions::up_to(3).queues([&queue]))
        .await;
    let second = h
        .w(1)
        .reserve(ReserveOptions::up_to(3).queues([&queue]))
        .await;
    assert_eq!((first.len(), second.len()), (3, 2));
    let tokens: HashSet<&str> = first
        .iter()
        .chain(&second)
        .map(|r| r.lease.token.as_str())
        .collect();
    assert_eq!(tokens.len(), 5, "every lease has its own token");
    h.w(0).reserve_none(&[&queue]).await;
}

pub(crate) async fn a_zero_limit_is_invalid(h: &Harness) {
    let result = h
        .w(0)
        .backend
        .reserve(&h.w(0).id, ReserveOptions::up_to(0))
        .await;
    assert_error!(result, Error::InvalidInput { .. });
}

pub(crate) async fn the_lease_length_is_clamped(h: &Harness) {
    let queue = h.queue().await;
    h.enqueue_in(&queue).await;
    h.enqueue_in(&queue).await;
    let ask = |lease| ReserveOptions {
        lease: Some(lease),
        ..ReserveOptions::up_to(1).queues([&queue])
    };
    let ten = h.w(0).reserve(ask(Duration::from_secs(10))).await;
    assert_eq!(
        ten[0].lease.expires_at,
        h.now() + chrono::Duration::seconds(10)
    );
    let zero = h.w(0).reserve(ask(Duration::ZERO)).await;
    assert!(
        zero[0].lease.expires_at > h.now(),
        "a lease never starts expired"
    );
}

pub(crate) async fn concurrent_reservers_never_share_a_job(h: &Harness) {
    // Reliability case 23: 8 reservers taking batches of 10 from 200 jobs.
    let queue = h.queue().await;
    let jobs: Vec<NewJob> = (0..200)
        .map(|i| NewJob::new("Many", json!([i])).queue(&queue))
        .collect();
    let enqueued = ok(
        h.producer
            .backend
            .enqueue_batch(&h.producer.actor, jobs)
            .await,
        "enqueue",
    );
    let reservers = (0..8).map(|i| {
        let worker = h.w(i % 3).clone();
        let queue = queue.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let batch = worker
                    .reserve(ReserveOptions::up_to(10).queues([&queue]))
                    .await;
                if batch.is_empty() {
                    return mine;
                }
                for job in &batch {
                    ok(worker.complete(job).await, "complete");
                }
                mine.extend(batch.into_iter().map(|r| r.job.id));
            }
        })
    });
    let all: Vec<JobId> = join_all(reservers)
        .await
        .into_iter()
        .flat_map(|r| ok(r, "join"))
        .collect();
    let unique: HashSet<JobId> = all.iter().copied().collect();
    assert_eq!(all.len(), unique.len(), "a job was handed out twice");
    assert_eq!(unique, enqueued.into_iter().collect::<HashSet<_>>());
}
