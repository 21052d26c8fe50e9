//! Reports on a lease: heartbeat, complete, fail, release (reliability cases 6, 7, 12 to 17;
//! delayed_job SS-48, SS-49, SS-70 to SS-73, SS-81, SS-82).

use std::time::Duration;

use super::harness::{Harness, noop, ok};
use crate::{
    Actor, BackendExt, Error, JobId, JobState, LeaseRef, QueueLimit, Reason, ReclaimOptions,
    Repeat, Reserved, RetryPlan,
};

/// A queue with one job in it, reserved by worker 0.
async fn one_running(h: &Harness) -> (String, Reserved) {
    let queue = h.queue().await;
    h.enqueue_in(&queue).await;
    let reserved = h.w(0).reserve_one(&[&queue]).await;
    (queue, reserved)
}

/// Lets the lease of `job` run out, reclaims it, waits out the first back-off (6 s) and has
/// worker 1 reserve the job again.
async fn expire_and_re_lease(h: &Harness, queue: &str, job: &Reserved) -> Reserved {
    h.advance(h.lease);
    let reclaimed = h
        .admin
        .backend
        .reclaim_expired(&Actor::Reaper, ReclaimOptions::default());
    assert_eq!(ok(reclaimed.await, "reclaim"), 1);
    h.advance(Duration::from_secs(6));
    let again = h.w(1).reserve_one(&[queue]).await;
    assert_eq!(again.job.id, job.job.id);
    again
}

fn lease_of(h: &Harness) -> chrono::Duration {
    chrono::Duration::from_std(h.lease).unwrap_or_default()
}

pub(crate) async fn heartbeats_keep_a_lease_alive(h: &Harness) {
    let (queue, job) = one_running(h).await;
    let two_thirds = h.lease * 2 / 3;
    for _ in 0..4 {
        h.advance(two_thirds);
        let beat = ok(h.w(0).heartbeat(&job).await, "heartbeat");
        assert_eq!(beat.expires_at, h.now() + lease_of(h));
        assert!(!beat.cancel_requested);
        // Well past the first lease, nobody else gets the job and nothing is reclaimed.
        h.w(1).reserve_none(&[&queue]).await;
        let reclaimed = h
            .admin
            .backend
            .reclaim_expired(&Actor::Reaper, ReclaimOptions::default());
        assert_eq!(ok(reclaimed.await, "reclaim"), 0);
    }
    let info = h.job(job.job.id).await.lease.expect("still leased");
    assert_eq!(info.expires_at, h.now() + lease_of(h));
    ok(h.w(0).complete(&job).await, "complete after heartbeats");
}

pub(crate) async fn a_stale_heartbeat_changes_nothing(h: &Harness) {
    let (queue, job) = one_running(h).await;
    let again = expire_and_re_lease(h, &queue, &job).await;
    let expiry = h.job(job.job.id).await.lease.map(|l| l.expires_at);
    assert_error!(h.w(0).heartbeat(&job).await, Error::StaleLease { id } if id == job.job.id);
    assert_eq!(h.job(job.job.id).await.lease.map(|l| l.expires_at), expiry);
    ok(h.w(1).heartbeat(&again).await, "the new holder's heartbeat");
}

pub(crate) async fn heartbeats_report_a_cancel_request(h: &Harness) {
    let (_, job) = one_running(h).await;
    ok(
        h.admin.backend.cancel(&h.admin.actor, job.job.id).await,
        "cancel",
    );
    let beat = ok(h.w(0).heartbeat(&job).await, "heartbeat");
    assert!(beat.cancel_requested);
}

pub(crate) async fn another_instance_cannot_use_a_lease(h: &Harness) {
    // Worker 2 is another process of worker 0's worker: the token alone is not enough.
    let (_, job) = one_running(h).await;
    let other = h.w(2);
    let lease = job.lease.to_ref();
    assert_error!(
        other.backend.heartbeat(&other.id, &lease).await,
        Error::StaleLease { .. }
    );
    assert_error!(
        other.backend.complete(&other.id, &lease).await,
        Error::StaleLease { .. }
    );
    assert_error!(other.release(&job).await, Error::StaleLease { .. });
    assert_eq!(h.state(job.job.id).await, JobState::Running);
}

pub(crate) async fn reports_on_unknown_jobs_are_not_found(h: &Harness) {
    let lease = LeaseRef {
        job_id: JobId(987_654),
        token: "0123456789abcdef0123456789abcdef".into(),
    };
    let w = h.w(0);
    assert_error!(
        w.backend.heartbeat(&w.id, &lease).await,
        Error::NotFound { .. }
    );
    assert_error!(
        w.backend.complete(&w.id, &lease).await,
        Error::NotFound { .. }
    );
    assert_error!(
        w.backend.release(&w.id, &lease).await,
        Error::NotFound { .. }
    );
}

pub(crate) async fn complete_succeeds_once(h: &Harness) {
    let queue = h.queue_with(QueueLimit::Max(1)).await;
    h.enqueue_in(&queue).await;
    let job = h.w(0).reserve_one(&[&queue]).await;
    ok(h.w(0).complete(&job).await, "complete");
    let stored = h.job(job.job.id).await;
    assert_eq!(stored.state, JobState::Succeeded);
    assert_eq!(stored.finished_at, Some(h.now()));
    assert_eq!(stored.lease, None);
    let row = h.history(job.job.id).await.pop().expect("a history row");
    assert_eq!(
        (row.from, row.to),
        (Some(JobState::Running), JobState::Succeeded)
    );
    assert_eq!(row.reason, Reason::Completed);
    assert_eq!(row.actor, Actor::Worker(h.w(0).id.clone()));
    assert_eq!(row.attempt, 1);
    assert_eq!(row.lease_token.as_deref(), Some(job.lease.token.as_str()));
    h.enqueue_in(&queue).await;
}

pub(crate) async fn a_repeated_complete_changes_nothing(h: &Harness) {
    // Reliability case 13: a retransmitted success is answered as a success.
    let (_, job) = one_running(h).await;
    ok(h.w(0).complete(&job).await, "complete");
    let history = h.history(job.job.id).await;
    ok(h.w(0).complete(&job).await, "complete again");
    assert_eq!(h.history(job.job.id).await, history);
    assert_eq!(h.state(job.job.id).await, JobState::Succeeded);
}

pub(crate) async fn a_late_complete_after_expiry_is_refused(h: &Harness) {
    // Reliability case 15, the strict policy: once reclaimed, the old lease is stale.
    let (_, job) = one_running(h).await;
    h.advance(h.lease);
    let reclaimed = h
        .admin
        .backend
        .reclaim_expired(&Actor::Reaper, ReclaimOptions::default());
    assert_eq!(ok(reclaimed.await, "reclaim"), 1);
    assert_error!(h.w(0).complete(&job).await, Error::StaleLease { .. });
    assert_eq!(h.state(job.job.id).await, JobState::Retrying);
    let reasons: Vec<Reason> = h
        .history(job.job.id)
        .await
        .iter()
        .map(|r| r.reason)
        .collect();
    assert_eq!(
        reasons,
        [Reason::Enqueued, Reason::Reserved, Reason::LeaseExpired]
    );
}

pub(crate) async fn a_late_complete_after_a_new_lease_is_refused(h: &Harness) {
    // Reliability case 16, the fencing test.
    let (queue, job) = one_running(h).await;
    let again = expire_and_re_lease(h, &queue, &job).await;
    assert_eq!(again.lease.attempt, 2);
    assert_ne!(again.lease.token, job.lease.token);
    assert_error!(h.w(0).complete(&job).await, Error::StaleLease { .. });
    assert_eq!(h.state(job.job.id).await, JobState::Running);
    ok(h.w(1).complete(&again).await, "the new holder completes");
    let history = h.history(job.job.id).await;
    let completions: Vec<_> = history
        .iter()
        .filter(|r| r.reason == Reason::Completed)
        .collect();
    assert_eq!(completions.len(), 1, "{history:?}");
    assert_eq!(completions[0].actor, Actor::Worker(h.w(1).id.clone()));
    assert_eq!(completions[0].attempt, 2);
}

pub(crate) async fn batch_complete_answers_each_lease(h: &Harness) {
    let queue = h.queue().await;
    h.enqueue_in(&queue).await;
    h.enqueue_in(&queue).await;
    let jobs = h
        .w(0)
        .reserve(crate::ReserveOptions::up_to(2).queues([&queue]))
        .await;
    let stale = LeaseRef {
        job_id: jobs[1].job.id,
        token: "not-the-token".into(),
    };
    let unknown = LeaseRef {
        job_id: JobId(987_654),
        token: jobs[1].lease.token.clone(),
    };
    let leases = [
        jobs[0].lease.to_ref(),
        stale,
        unknown,
        jobs[1].lease.to_ref(),
    ]
    .map(crate::Completion::from);
    let results = ok(
        h.w(0).backend.complete_batch(&h.w(0).id, &leases).await,
        "complete",
    );
    assert_eq!(results.len(), 4);
    assert!(results[0].is_ok() && results[3].is_ok(), "{results:?}");
    assert_error!(&results[1], Error::StaleLease { .. });
    assert_error!(&results[2], Error::NotFound { .. });
    for job in &jobs {
        assert_eq!(h.state(job.job.id).await, JobState::Succeeded);
    }
}

pub(crate) async fn a_cron_job_runs_again_at_its_next_point(h: &Harness) {
    let queue = h.queue().await;
    let hourly = crate::CronSchedule::new("0 * * * *").expect("a schedule");
    // Run now, then at the schedule's points.
    let cron = noop().queue(&queue).repeat(Repeat::Cron(hourly.clone()));
    let job = h.enqueue(cron.run_at(h.now())).await;
    assert_eq!(h.job(job.id).await.repeat, Some(Repeat::Cron(hourly)));
    let reserved = h.w(0).reserve_one(&[&queue]).await;
    h.advance(Duration::from_secs(90));
    ok(h.w(0).complete(&reserved).await, "complete");
    let stored = h.job(job.id).await;
    let next_hour = |t: chrono::DateTime<chrono::Utc>| {
        let hour = t.timestamp().div_euclid(3600) + 1;
        chrono::DateTime::from_timestamp(hour * 3600, 0).expect("a time")
    };
    assert_eq!(stored.state, JobState::Scheduled);
    assert_eq!(
        stored.run_at,
        next_hour(h.now()),
        "the next full hour after now"
    );
    let reasons: Vec<Reason> = h.history(job.id).await.iter().map(|r| r.reason).collect();
    assert_eq!(reasons[2..], [Reason::Completed, Reason::Repeat]);
    h.advance((stored.run_at - h.now()).to_std().expect("in the future"));
    let again = h.w(0).reserve_one(&[&queue]).await;
    assert_eq!(again.job.id, job.id, "due at its point");
}

pub(crate) async fn a_repeating_job_is_scheduled_again(h: &Harness) {
    let queue = h.queue().await;
    let every = Repeat::Every(Duration::from_secs(60));
    let job = h.enqueue(noop().queue(&queue).repeat(every)).await;
    for run in 1..=2 {
        let reserved = h.w(0).reserve_one(&[&queue]).await;
        assert_eq!(
            (reserved.job.id, reserved.lease.attempt),
            (job.id, 1),
            "run {run}"
        );
        ok(h.w(0).complete(&reserved).await, "complete");
        let stored = h.job(job.id).await;
        assert_eq!(stored.state, JobState::Scheduled);
        assert_eq!(
            stored.attempts, 0,
            "each run starts with a fresh attempt budget"
        );
        assert_eq!(
            stored.run_at,
            job.run_at + chrono::Duration::seconds(60 * run)
        );
        assert_eq!(stored.finished_at, None);
        h.w(0).reserve_none(&[&queue]).await;
        h.advance(Duration::from_secs(60));
    }
    let history = h.history(job.id).await;
    let reasons: Vec<Reason> = history.iter().map(|r| r.reason).collect();
    let one_run = [Reason::Reserved, Reason::Completed, Reason::Repeat];
    assert_eq!(reasons[1..], [one_run, one_run].concat());
    let repeat = &history[3];
    assert_eq!(
        (repeat.from, repeat.to),
        (Some(JobState::Succeeded), JobState::Scheduled)
    );
}

pub(crate) async fn a_failure_is_retried_after_the_backoff(h: &Harness) {
    let (queue, job) = one_running(h).await;
    let state = ok(
        h.w(0).fail(&job, "did not work", RetryPlan::Backoff).await,
        "fail",
    );
    assert_eq!(state, JobState::Retrying);
    let stored = h.job(job.job.id).await;
    assert_eq!(stored.state, JobState::Retrying);
    // SS-72: the first retry waits 1⁴ + 5 = 6 s, the job is no longer leased.
    assert_eq!(stored.run_at, h.now() + chrono::Duration::seconds(6));
    assert_eq!(stored.attempts, 1);
    assert_eq!(stored.lease, None);
    assert_eq!(stored.last_error.as_deref(), Some("did not work"));
    let row = h.history(job.job.id).await.pop().expect("a history row");
    assert_eq!(
        (row.from, row.to, row.reason),
        (
            Some(JobState::Running),
            JobState::Retrying,
            Reason::RetryScheduled
        )
    );
    let error = row.error.expect("the error is kept");
    assert_eq!(error.message, "did not work");
    assert_eq!(error.causes, ["the cause"]);
    assert_eq!(error.backtrace.as_deref(), Some("at perform (job.rs:1)"));
    h.advance(Duration::from_millis(5999));
    h.w(1).reserve_none(&[&queue]).await;
    h.advance(Duration::from_millis(1));
    let again = h.w(1).reserve_one(&[&queue]).await;
    assert_eq!(again.lease.attempt, 2);
    ok(
        h.w(1).fail(&again, "still not", RetryPlan::Backoff).await,
        "fail again",
    );
    // The second retry waits 2⁴ + 5 = 21 s.
    assert_eq!(
        h.job(job.job.id).await.run_at,
        h.now() + chrono::Duration::seconds(21)
    );
}

pub(crate) async fn a_failure_may_name_its_own_wait(h: &Harness) {
    // SS-73: the job's own reschedule_at.
    let (_, job) = one_running(h).await;
    let wait = RetryPlan::After(Duration::from_secs(99 * 60));
    ok(h.w(0).fail(&job, "later", wait).await, "fail");
    assert_eq!(
        h.job(job.job.id).await.run_at,
        h.now() + chrono::Duration::minutes(99)
    );
}

pub(crate) async fn attempts_run_out_and_the_job_fails(h: &Harness) {
    // SS-81/82 with max_attempts 3: retrying after attempts 1 and 2, failed after 3.
    let queue = h.queue_with(QueueLimit::Max(1)).await;
    let job = h.enqueue(noop().queue(&queue).max_attempts(3)).await;
    let mut states = Vec::new();
    for _ in 0..3 {
        let run = h.w(0).reserve_one(&[&queue]).await;
        states.push(ok(
            h.w(0)
                .fail(&run, "boom", RetryPlan::After(Duration::ZERO))
                .await,
            "fail",
        ));
    }
    assert_eq!(
        states,
        [JobState::Retrying, JobState::Retrying, JobState::Failed]
    );
    let stored = h.job(job.id).await;
    assert_eq!((stored.state, stored.attempts), (JobState::Failed, 3));
    assert_eq!(stored.finished_at, Some(h.now()));
    h.w(0).reserve_none(&[&queue]).await;
    let row = h.history(job.id).await.pop().expect("a history row");
    assert_eq!((row.reason, row.attempt), (Reason::Failed, 3));
    assert!(row.error.is_some());
    h.enqueue_in(&queue).await;
}

pub(crate) async fn a_permanent_failure_is_not_retried(h: &Harness) {
    // SS-70: an undecodable payload fails at once, with attempts left.
    let (queue, job) = one_running(h).await;
    let state = ok(
        h.w(0)
            .fail(&job, "unknown job class", RetryPlan::Never)
            .await,
        "fail",
    );
    assert_eq!(state, JobState::Failed);
    assert_eq!(h.job(job.job.id).await.attempts, 1);
    h.advance(Duration::from_secs(3600));
    h.w(0).reserve_none(&[&queue]).await;
}

pub(crate) async fn a_stale_failure_changes_nothing(h: &Harness) {
    // Reliability case 17: the old holder's failure does not touch the new attempt.
    let (queue, job) = one_running(h).await;
    let again = expire_and_re_lease(h, &queue, &job).await;
    let before = h.job(job.job.id).await;
    let late = h.w(0).fail(&job, "late", RetryPlan::Backoff).await;
    assert_error!(late, Error::StaleLease { .. });
    assert_eq!(h.job(job.job.id).await, before);
    ok(h.w(1).complete(&again).await, "the new holder completes");
}

pub(crate) async fn a_repeated_failure_changes_nothing(h: &Harness) {
    let (_, job) = one_running(h).await;
    ok(h.w(0).fail(&job, "boom", RetryPlan::Backoff).await, "fail");
    let history = h.history(job.job.id).await;
    let again = ok(
        h.w(0).fail(&job, "boom", RetryPlan::Backoff).await,
        "fail again",
    );
    assert_eq!(again, JobState::Retrying);
    assert_eq!(h.history(job.job.id).await, history);
}

pub(crate) async fn release_gives_the_attempt_back(h: &Harness) {
    let (queue, job) = one_running(h).await;
    ok(h.w(0).release(&job).await, "release");
    let stored = h.job(job.job.id).await;
    assert_eq!(
        (stored.state, stored.attempts, stored.lease),
        (JobState::Available, 0, None)
    );
    let row = h.history(job.job.id).await.pop().expect("a history row");
    assert_eq!(
        (row.from, row.to, row.reason),
        (
            Some(JobState::Running),
            JobState::Available,
            Reason::Released
        )
    );
    let again = h.w(1).reserve_one(&[&queue]).await;
    assert_eq!(again.lease.attempt, 1, "the released attempt did not count");
}

pub(crate) async fn a_stale_release_changes_nothing(h: &Harness) {
    let (queue, job) = one_running(h).await;
    let again = expire_and_re_lease(h, &queue, &job).await;
    assert_error!(h.w(0).release(&job).await, Error::StaleLease { .. });
    assert_eq!(
        h.job(job.job.id).await.lease.map(|l| l.holder),
        Some(h.w(1).id.clone())
    );
    ok(h.w(1).release(&again).await, "release by the holder");
}

pub(crate) async fn release_all_releases_only_the_callers_instance(h: &Harness) {
    // SS-48/49 with instances: worker 0 and worker 2 are two processes of one worker.
    let queue = h.queue().await;
    for _ in 0..4 {
        h.enqueue_in(&queue).await;
    }
    let mine = h
        .w(0)
        .reserve(crate::ReserveOptions::up_to(2).queues([&queue]))
        .await;
    let sibling = h.w(2).reserve_one(&[&queue]).await;
    let other = h.w(1).reserve_one(&[&queue]).await;
    let released = ok(h.w(0).backend.release_all(&h.w(0).id).await, "release all");
    assert_eq!(released, 2);
    for job in &mine {
        assert_eq!(h.state(job.job.id).await, JobState::Available);
    }
    for job in [&sibling, &other] {
        assert_eq!(h.state(job.job.id).await, JobState::Running);
    }
    assert_eq!(ok(h.w(0).backend.release_all(&h.w(0).id).await, "again"), 0);
    let info = ok(h.admin.backend.queue(&h.admin.actor, &queue).await, "queue");
    assert_eq!(info.counts.get(JobState::Available), 2);
}
