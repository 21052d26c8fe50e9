//! Run limits: a queue's limits on running jobs, on its rate of starts and on running jobs per
//! concurrency key, kept by reserve for every worker.

use std::time::Duration;

use futures::future::join_all;

use super::harness::{Harness, noop, ok};
use super::long_poll::{long_poll, woken};
use crate::{
    Actor, BackendExt, Error, JobFilter, JobId, JobState, QueueLimit, QueueUpdate, Rate,
    ReclaimOptions, Repeat, ReserveOptions, Reserved, RetryPlan, RunLimits,
};

/// A fresh queue with `limits`, which the queue then reports.
async fn limited(h: &Harness, limits: RunLimits) -> String {
    let queue = h.queue_with(QueueLimit::Unlimited).await;
    let update = QueueUpdate::setting(limits);
    let info = h
        .admin
        .backend
        .update_queue(&h.admin.actor, &queue, update)
        .await;
    assert_eq!(ok(info, "set run limits").limits, limits);
    queue
}

fn at_most(n: u32) -> RunLimits {
    RunLimits {
        max_running: Some(n),
        ..RunLimits::default()
    }
}

/// Everything worker `i` gets from `queues` (every queue when empty) in one reserve of up to 10.
async fn take(h: &Harness, i: usize, queues: &[&str]) -> Vec<Reserved> {
    let opts = ReserveOptions::up_to(10).queues(queues.iter().copied());
    h.w(i).reserve(opts).await
}

fn ids(jobs: &[Reserved]) -> Vec<JobId> {
    jobs.iter().map(|r| r.job.id).collect()
}

pub(crate) async fn max_running_caps_what_runs_at_once(h: &Harness) {
    let queue = limited(h, at_most(2)).await;
    for _ in 0..5 {
        h.enqueue_in(&queue).await;
    }
    let first = take(h, 0, &[&queue]).await;
    assert_eq!(first.len(), 2, "two at once, in one reserve");
    h.w(1).reserve_none(&[&queue]).await;
    // A job that ends, one way or another, gives its place back at once.
    ok(h.w(0).complete(&first[0]).await, "complete");
    let second = take(h, 1, &[&queue]).await;
    assert_eq!(second.len(), 1);
    ok(h.w(0).release(&first[1]).await, "release");
    assert_eq!(take(h, 1, &[&queue]).await.len(), 1);
    h.w(0).reserve_none(&[&queue]).await;
    let info = ok(
        h.admin.backend.queue(&h.admin.actor, &queue).await,
        "look up the queue",
    );
    assert_eq!(info.counts.get(JobState::Running), 2);
}

pub(crate) async fn a_reserve_of_every_queue_keeps_the_limits(h: &Harness) {
    let queue = limited(h, at_most(1)).await;
    let free = h.queue().await;
    for _ in 0..3 {
        h.enqueue_in(&queue).await;
        h.enqueue_in(&free).await;
    }
    let got = take(h, 0, &[]).await;
    let from = |q: &str| got.iter().filter(|r| r.job.queue == q).count();
    assert_eq!((from(&queue), from(&free)), (1, 3), "{got:?}");
    let named = take(h, 1, &[&queue, &free]).await;
    assert!(named.is_empty(), "{named:?}");
}

pub(crate) async fn an_expired_lease_gives_its_place_back_at_once(h: &Harness) {
    let queue = limited(h, at_most(1)).await;
    let first = h.enqueue(noop().queue(&queue).max_attempts(1)).await;
    let second = h.enqueue_in(&queue).await;
    let held = h.w(0).reserve_one(&[&queue]).await;
    assert_eq!(held.job.id, first.id);
    h.w(1).reserve_none(&[&queue]).await;
    h.advance(h.lease + Duration::from_secs(1));
    let next = h.w(1).reserve_one(&[&queue]).await;
    assert_eq!(next.job.id, second.id);
    assert_eq!(
        h.state(first.id).await,
        JobState::Failed,
        "its lease ran out"
    );
}

/// The ways a running job stops.
#[derive(Clone, Copy, Debug)]
enum End {
    Completed,
    CompletedInABatch,
    FailedForGood,
    FailedToRetryLater,
    Released,
    ReleasedAtACleanExit,
    Reclaimed,
}

const ENDS: [End; 7] = [
    End::Completed,
    End::CompletedInABatch,
    End::FailedForGood,
    End::FailedToRetryLater,
    End::Released,
    End::ReleasedAtACleanExit,
    End::Reclaimed,
];

/// Stops `job`, run by worker 0, the way `how` says.
async fn stop(h: &Harness, how: End, job: &Reserved) {
    let w = h.w(0);
    let what = format!("{how:?}");
    let fail = |retry| w.fail(job, "boom", retry);
    match how {
        End::Completed => ok(w.complete(job).await, &what),
        End::CompletedInABatch => {
            let done = [crate::Completion::from(job.lease.to_ref())];
            let results = ok(w.backend.complete_batch(&w.id, &done).await, &what);
            assert!(results.iter().all(Result::is_ok), "{results:?}");
        }
        End::FailedForGood => {
            assert_eq!(ok(fail(RetryPlan::Never).await, &what), JobState::Failed);
        }
        End::FailedToRetryLater => {
            let later = RetryPlan::After(Duration::from_secs(3600));
            assert_eq!(ok(fail(later).await, &what), JobState::Retrying);
        }
        End::Released => ok(w.release(job).await, &what),
        End::ReleasedAtACleanExit => {
            assert_eq!(ok(w.backend.release_all(&w.id).await, &what), 1);
        }
        End::Reclaimed => {
            h.advance(h.lease + Duration::from_secs(1));
            let reclaim = h
                .admin
                .backend
                .reclaim_expired(&Actor::Reaper, ReclaimOptions::default());
            assert_eq!(ok(reclaim.await, &what), 1);
        }
    }
}

/// Every way a running job stops gives its place back in the same change: a worker's answer
/// (one or a batch; the first job repeats, whose completion schedules its next run), a
/// failure with or without a retry, a release, a worker's clean exit, the reclaimer. Under a
/// limit of 1, after each the next job starts at once, and never two run at a time.
pub(crate) async fn every_end_of_a_running_job_gives_its_place_back(h: &Harness) {
    let queue = limited(h, at_most(1)).await;
    let every = Repeat::Every(Duration::from_secs(3600));
    let repeating = h.enqueue(noop().queue(&queue).repeat(every)).await;
    for _ in 0..ENDS.len() {
        h.enqueue_in(&queue).await;
    }
    for how in ENDS {
        let job = h.w(0).reserve_one(&[&queue]).await;
        h.w(1).reserve_none(&[&queue]).await;
        stop(h, how, &job).await;
        let info = ok(h.admin.backend.queue(&h.admin.actor, &queue).await, "queue");
        assert_eq!(info.counts.get(JobState::Running), 0, "{how:?}");
    }
    assert_eq!(
        h.state(repeating.id).await,
        JobState::Scheduled,
        "its next run"
    );
    let next = take(h, 1, &[&queue]).await;
    assert_eq!(next.len(), 1, "a place for the next job after the last end");
}

pub(crate) async fn a_rate_spaces_starts_evenly(h: &Harness) {
    let rate = Rate {
        starts: 2,
        per: Duration::from_secs(10),
    };
    let queue = limited(
        h,
        RunLimits {
            rate: Some(rate),
            ..RunLimits::default()
        },
    )
    .await;
    let mut waiting = Vec::new();
    for _ in 0..4 {
        waiting.push(h.enqueue_in(&queue).await);
    }
    let info = h.admin.backend.queue(&h.admin.actor, &queue).await;
    let started_at = h.now();
    assert!(
        ok(info, "look up the queue").next_start <= Some(started_at),
        "a rate that has started nothing holds nothing back"
    );
    assert_eq!(take(h, 0, &[&queue]).await.len(), 1, "one start");
    h.w(1).reserve_none(&[&queue]).await;
    let info = ok(
        h.admin.backend.queue(&h.admin.actor, &queue).await,
        "look up the queue",
    );
    let next = (started_at + chrono::Duration::seconds(5)).timestamp_millis();
    let known = info.next_start.map(|at| at.timestamp_millis());
    assert_eq!(known, Some(next), "the next start is known");
    let held = info.held_back(&waiting[3], h.now()).unwrap_or_default();
    assert!(held.contains("rate") && held.contains("in 5.0 s"), "{held}");
    h.advance(Duration::from_millis(4_999));
    h.w(1).reserve_none(&[&queue]).await;
    h.advance(Duration::from_millis(1));
    assert_eq!(take(h, 1, &[&queue]).await.len(), 1, "the next, 5 s later");
    // A quiet spell saves nothing up: one start, then the interval again.
    h.advance(Duration::from_secs(60));
    assert_eq!(take(h, 0, &[&queue]).await.len(), 1);
    h.w(0).reserve_none(&[&queue]).await;
}

/// Whether worker 1 sees a job due that `opts` would take.
async fn due(h: &Harness, opts: ReserveOptions) -> bool {
    ok(h.w(1).backend.any_due(&h.w(1).id, &opts).await, "ask")
}

pub(crate) async fn jobs_held_back_by_a_limit_are_due(h: &Harness) {
    let rate = Rate {
        starts: 1,
        per: Duration::from_secs(3_600),
    };
    let queue = limited(
        h,
        RunLimits {
            rate: Some(rate),
            ..RunLimits::default()
        },
    )
    .await;
    let of = |queue: &str| ReserveOptions::up_to(1).queues([queue]);
    assert!(!due(h, of(&queue)).await, "an empty queue has none due");
    h.enqueue_in(&queue).await;
    h.enqueue_in(&queue).await;
    assert_eq!(take(h, 0, &[&queue]).await.len(), 1, "one start");
    h.w(1).reserve_none(&[&queue]).await;
    assert!(due(h, of(&queue)).await, "the job the rate holds back");
    assert!(due(h, ReserveOptions::up_to(1)).await, "of every queue");
    assert!(
        !due(h, of(&queue).classes(["Other"])).await,
        "only the classes asked for"
    );
    let later = h.queue().await;
    h.enqueue(
        noop()
            .queue(&later)
            .run_at(h.now() + chrono::Duration::hours(1)),
    )
    .await;
    assert!(!due(h, of(&later)).await, "a job due later is not");
    let paused = QueueUpdate {
        paused: Some(true),
        ..QueueUpdate::default()
    };
    let info = h.admin.backend.update_queue(&h.admin.actor, &queue, paused);
    ok(info.await, "pause the queue");
    assert!(!due(h, of(&queue)).await, "nor one of a paused queue");
    h.advance(Duration::from_secs(3_600));
    assert!(due(h, of(&later)).await, "until its time comes");
}

pub(crate) async fn a_changed_rate_counts_from_the_last_start(h: &Harness) {
    let every = |seconds: u64| RunLimits {
        rate: Some(Rate {
            starts: 1,
            per: Duration::from_secs(seconds),
        }),
        ..RunLimits::default()
    };
    let queue = limited(h, every(5)).await;
    for _ in 0..3 {
        h.enqueue_in(&queue).await;
    }
    assert_eq!(take(h, 0, &[&queue]).await.len(), 1, "one start");
    let slower = QueueUpdate::setting(every(60));
    let info = h.admin.backend.update_queue(&h.admin.actor, &queue, slower);
    ok(info.await, "slow the rate down");
    h.advance(Duration::from_secs(5));
    h.w(1).reserve_none(&[&queue]).await;
    h.advance(Duration::from_secs(55));
    assert_eq!(
        take(h, 1, &[&queue]).await.len(),
        1,
        "a minute after the last"
    );
    let faster = QueueUpdate::setting(every(1));
    let info = h.admin.backend.update_queue(&h.admin.actor, &queue, faster);
    ok(info.await, "speed the rate up");
    h.advance(Duration::from_secs(1));
    assert_eq!(
        take(h, 0, &[&queue]).await.len(),
        1,
        "a second after the last"
    );
}

pub(crate) async fn a_per_key_limit_runs_each_keys_jobs_in_turn(h: &Harness) {
    let queue = limited(
        h,
        RunLimits {
            max_running_per_key: Some(1),
            ..RunLimits::default()
        },
    )
    .await;
    let keyed = |key: &str| noop().queue(&queue).concurrency_key(key);
    let a1 = h.enqueue(keyed("a")).await;
    let a2 = h.enqueue(keyed("a")).await;
    let b1 = h.enqueue(keyed("b")).await;
    let plain = h.enqueue_in(&queue).await;
    assert_eq!(h.job(a1.id).await.concurrency_key.as_deref(), Some("a"));
    let first = take(h, 0, &[&queue]).await;
    assert_eq!(ids(&first), vec![a1.id, b1.id, plain.id], "one of each key");
    h.w(1).reserve_none(&[&queue]).await;
    ok(h.w(0).complete(&first[0]).await, "complete a1");
    assert_eq!(ids(&take(h, 1, &[&queue]).await), vec![a2.id]);
    // A key's jobs are listed by it, newest first.
    let filter = JobFilter {
        concurrency_key: Some("a".into()),
        ..JobFilter::default()
    };
    let listed = h.admin.backend.jobs(&h.admin.actor, filter).await;
    let listed: Vec<JobId> = ok(listed, "list by key").iter().map(|j| j.id).collect();
    assert_eq!(listed, vec![a2.id, a1.id]);
}

pub(crate) async fn an_expired_lease_gives_its_keys_place_back_at_once(h: &Harness) {
    let limits = RunLimits {
        max_running_per_key: Some(1),
        ..RunLimits::default()
    };
    let queue = limited(h, limits).await;
    let keyed = |key: &str| noop().queue(&queue).concurrency_key(key).max_attempts(1);
    let a1 = h.enqueue(keyed("a")).await;
    let b1 = h.enqueue(keyed("b")).await;
    let a2 = h.enqueue(keyed("a")).await;
    h.enqueue(keyed("b")).await;
    assert_eq!(h.w(0).reserve_one(&[&queue]).await.job.id, a1.id);
    h.advance(h.lease / 2);
    assert_eq!(h.w(1).reserve_one(&[&queue]).await.job.id, b1.id);
    // a1's lease has run out, b1's has not: a's place is free at once, b's is not.
    h.advance(h.lease / 2 + Duration::from_secs(1));
    assert_eq!(ids(&take(h, 1, &[&queue]).await), vec![a2.id]);
    assert_eq!(h.state(a1.id).await, JobState::Failed, "its lease ran out");
    assert_eq!(h.state(b1.id).await, JobState::Running);
    h.w(0).reserve_none(&[&queue]).await;
}

pub(crate) async fn a_rate_per_key_spaces_each_keys_starts(h: &Harness) {
    let rate = Rate {
        starts: 1,
        per: Duration::from_secs(10),
    };
    let limits = RunLimits {
        rate_per_key: Some(rate),
        ..RunLimits::default()
    };
    let queue = limited(h, limits).await;
    let keyed = |key: &str| noop().queue(&queue).concurrency_key(key);
    let a1 = h.enqueue(keyed("a")).await;
    let a2 = h.enqueue(keyed("a")).await;
    let b1 = h.enqueue(keyed("b")).await;
    let b2 = h.enqueue(keyed("b")).await;
    let plain = h.enqueue_in(&queue).await;
    let first = take(h, 0, &[&queue]).await;
    assert_eq!(
        ids(&first),
        vec![a1.id, b1.id, plain.id],
        "one start of each key"
    );
    // Ending a job gives no start back: a rate counts starts, not running jobs.
    ok(h.w(0).complete(&first[0]).await, "complete a1");
    h.w(1).reserve_none(&[&queue]).await;
    h.advance(Duration::from_millis(9_999));
    h.w(1).reserve_none(&[&queue]).await;
    h.advance(Duration::from_millis(1));
    let second = take(h, 1, &[&queue]).await;
    assert_eq!(
        ids(&second),
        vec![a2.id, b2.id],
        "each key's next, 10 s later"
    );
    // A key that started nothing for a while saves nothing up.
    h.advance(Duration::from_secs(60));
    let a3 = h.enqueue(keyed("a")).await;
    let a4 = h.enqueue(keyed("a")).await;
    assert_eq!(ids(&take(h, 0, &[&queue]).await), vec![a3.id]);
    h.w(0).reserve_none(&[&queue]).await;
    // Lifting the rate lets the rest start at once.
    let lift = QueueUpdate {
        rate_per_key: Some(None),
        ..QueueUpdate::default()
    };
    let info = h.admin.backend.update_queue(&h.admin.actor, &queue, lift);
    assert_eq!(ok(info.await, "lift the rate").limits, RunLimits::default());
    assert_eq!(ids(&take(h, 1, &[&queue]).await), vec![a4.id]);
}

pub(crate) async fn a_long_poll_held_back_is_woken_when_room_appears(h: &Harness) {
    let queue = limited(h, at_most(1)).await;
    h.enqueue_in(&queue).await;
    let second = h.enqueue_in(&queue).await;
    let running = h.w(0).reserve_one(&[&queue]).await;
    let poll = long_poll(h.w(1), &[&queue]).await;
    h.w(2).reserve_none(&[&queue]).await;
    ok(h.w(0).complete(&running).await, "complete");
    assert_eq!(woken(poll, "wake the held-back poll").await, second.id);
}

pub(crate) async fn a_limit_set_or_changed_while_jobs_run_counts_them(h: &Harness) {
    let admin = &h.admin;
    let update = |update: QueueUpdate, queue: String| async move {
        let info = admin.backend.update_queue(&admin.actor, &queue, update);
        ok(info.await, "change the limits");
    };
    // Set on a queue whose jobs run already.
    let queue = h.queue_with(QueueLimit::Unlimited).await;
    for _ in 0..5 {
        h.enqueue_in(&queue).await;
    }
    let running = take(h, 0, &[&queue]).await;
    assert_eq!(running.len(), 5);
    let at_most_two = QueueUpdate {
        max_running: Some(Some(2)),
        ..QueueUpdate::default()
    };
    update(at_most_two, queue.clone()).await;
    h.enqueue_in(&queue).await;
    for job in running.iter().take(3) {
        // 5, then 4, then 3 run: more than the new limit, so nothing starts.
        h.w(1).reserve_none(&[&queue]).await;
        ok(h.w(0).complete(job).await, "complete");
    }
    assert_eq!(take(h, 1, &[&queue]).await.len(), 0, "2 run, at most 2");
    ok(h.w(0).complete(&running[3]).await, "complete");
    assert_eq!(take(h, 1, &[&queue]).await.len(), 1, "room for one");
    // A rate lifted from a queue at its limit on running jobs.
    let rate = Rate {
        starts: 10,
        per: Duration::from_secs(1),
    };
    let both = RunLimits {
        max_running: Some(2),
        rate: Some(rate),
        ..RunLimits::default()
    };
    let queue = limited(h, both).await;
    for _ in 0..4 {
        h.enqueue_in(&queue).await;
    }
    assert_eq!(take(h, 0, &[&queue]).await.len(), 1);
    h.advance(Duration::from_millis(100));
    assert_eq!(take(h, 0, &[&queue]).await.len(), 1);
    let lift = QueueUpdate {
        rate: Some(None),
        ..QueueUpdate::default()
    };
    update(lift, queue.clone()).await;
    h.w(1).reserve_none(&[&queue]).await;
}

pub(crate) async fn limits_can_be_changed_and_lifted(h: &Harness) {
    let queue = limited(h, at_most(1)).await;
    for _ in 0..3 {
        h.enqueue_in(&queue).await;
    }
    assert_eq!(take(h, 0, &[&queue]).await.len(), 1);
    let admin = &h.admin;
    let zero = QueueUpdate {
        max_running: Some(Some(0)),
        ..QueueUpdate::default()
    };
    assert_error!(
        admin.backend.update_queue(&admin.actor, &queue, zero).await,
        Error::InvalidInput { .. }
    );
    let lift = QueueUpdate {
        max_running: Some(None),
        ..QueueUpdate::default()
    };
    let info = ok(
        admin.backend.update_queue(&admin.actor, &queue, lift).await,
        "lift the limit",
    );
    assert_eq!(info.limits, RunLimits::default());
    assert_eq!(take(h, 1, &[&queue]).await.len(), 2, "the rest at once");
    let unknown = admin
        .backend
        .update_queue(&admin.actor, "no-such-queue", lift)
        .await;
    assert_error!(unknown, Error::UnknownQueue { .. });
}

/// Many reservers at once, each one job at a time, against a limit of 3: the queue's running
/// count, read after every reserve, never goes past it, and every job runs once.
pub(crate) async fn concurrent_reservers_never_exceed_max_running(h: &Harness) {
    let queue = limited(h, at_most(3)).await;
    let jobs = 24;
    for _ in 0..jobs {
        h.enqueue_in(&queue).await;
    }
    let mut done = Vec::new();
    while done.len() < jobs {
        let queues = [queue.as_str()];
        let rounds = (0..h.workers.len()).map(|i| take(h, i, &queues));
        let got: Vec<Vec<Reserved>> = join_all(rounds).await;
        let running: usize = got.iter().map(Vec::len).sum();
        assert!(running <= 3, "{running} running at once");
        assert!(running > 0, "room was there");
        for (i, jobs) in got.iter().enumerate() {
            for job in jobs {
                ok(h.w(i).complete(job).await, "complete");
            }
            done.extend(ids(jobs));
        }
    }
    done.sort();
    done.dedup();
    assert_eq!(done.len(), jobs, "each job ran once");
}
