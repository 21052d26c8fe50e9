//! Running jobs: hooks, work_off, queues, time limits, panics, permanent failures and the
//! failure hook.

use std::time::Duration;

use outsourced_core::conformance::{Harness, noop, ok};
use outsourced_core::{BackendExt, JobState, MAX_RESULT_BYTES, NewJob, Reason};
use serde_json::json;

use super::jobs::{Answer, Panicker, Recorder, Sleeper, recorded};
use super::{enqueue, last_error, only, unique_key, worker};
use crate::{WorkOff, WorkerOptions};

fn recorder(fail_in: &[&str]) -> Recorder {
    Recorder {
        key: unique_key(),
        fail_in: fail_in.iter().map(|h| (*h).to_owned()).collect(),
        ..Recorder::default()
    }
}

pub(crate) async fn hooks_run_in_delayed_jobs_order(h: &Harness) {
    // SS-24, SS-25, SS-26, through a real run.
    let queue = h.queue().await;
    let (good, broken, refused) = (recorder(&[]), recorder(&["perform"]), recorder(&["before"]));
    for job in [&good, &broken, &refused] {
        enqueue(h, &queue, job).await;
    }
    let done = ok(worker(h, only(&queue)).work_off(10).await, "work off");
    assert_eq!((done.succeeded, done.failed), (1, 2));
    assert_eq!(
        recorded(&good.key),
        ["before", "perform", "success", "after"]
    );
    assert_eq!(
        recorded(&broken.key),
        ["before", "perform", "error: perform did not work", "after"]
    );
    assert_eq!(
        recorded(&refused.key),
        ["before", "error: before did not work", "after"]
    );
}

pub(crate) async fn work_off_runs_at_most_n_jobs_and_counts_them(h: &Harness) {
    let queue = h.queue().await;
    enqueue(h, &queue, &recorder(&["perform"])).await;
    for _ in 0..4 {
        enqueue(h, &queue, &recorder(&[])).await;
    }
    let w = worker(h, only(&queue));
    let first = ok(w.work_off(3).await, "work off three");
    assert_eq!(first.succeeded + first.failed, 3, "{first:?}");
    let rest = ok(w.work_off(10).await, "work off the rest");
    assert_eq!(rest.succeeded + rest.failed, 2, "{rest:?}");
    assert_eq!(first.failed + rest.failed, 1);
    assert_eq!(ok(w.work_off(10).await, "nothing left"), WorkOff::default());
    let info = ok(
        outsourced_core::BackendExt::queue(h.admin.backend.as_ref(), &h.admin.actor, &queue).await,
        "queue",
    );
    assert_eq!(
        info.counts.get(JobState::Running),
        0,
        "nothing is left leased"
    );
}

pub(crate) async fn the_worker_takes_only_its_queues(h: &Harness) {
    // SS-52 to SS-54.
    let (large, small, medium) = (h.queue().await, h.queue().await, h.queue().await);
    for queue in [&large, &small, &medium] {
        enqueue(h, queue, &recorder(&[])).await;
    }
    let ran = |queues: Vec<String>| async move {
        let options = WorkerOptions {
            queues,
            ..WorkerOptions::default()
        };
        ok(worker(h, options).work_off(10).await, "work off").succeeded
    };
    assert_eq!(ran(vec![large.clone()]).await, 1);
    assert_eq!(ran(vec![small.clone(), medium.clone()]).await, 2);
    for queue in [&large, &small, &medium] {
        enqueue(h, queue, &recorder(&[])).await;
    }
    assert_eq!(ran(Vec::new()).await, 3, "no queues means every queue");
}

pub(crate) async fn a_timeout_is_an_ordinary_failure(h: &Harness) {
    // SS-69: the error names max_run_time; the attempt counts; the job will run again.
    let queue = h.queue().await;
    let job = enqueue(h, &queue, &Sleeper { millis: 60_000 }).await;
    let options = WorkerOptions {
        max_run_time: Duration::from_millis(100),
        ..only(&queue)
    };
    let done = ok(worker(h, options).work_off(1).await, "work off");
    assert_eq!(done.failed, 1);
    let stored = h.job(job.id).await;
    assert_eq!((stored.state, stored.attempts), (JobState::Retrying, 1));
    let error = last_error(h, job.id).await;
    assert!(error.contains("max_run_time is only 100 ms"), "{error}");
}

pub(crate) async fn the_workers_time_limit_caps_the_jobs(h: &Harness) {
    // SS-58, SS-60, SS-61: a job's own limit applies when shorter, the worker's caps a longer one.
    let queue = h.queue().await;
    let long_limit = NewJob::new("Sleeper", json!({"millis": 60_000}))
        .queue(&queue)
        .max_run_time(Duration::from_secs(3600));
    let capped = h.enqueue(long_limit).await;
    let options = WorkerOptions {
        max_run_time: Duration::from_millis(100),
        ..only(&queue)
    };
    ok(worker(h, options).work_off(1).await, "work off");
    assert!(last_error(h, capped.id).await.contains("100 ms"));
    let short_limit = NewJob::new("Sleeper", json!({"millis": 60_000}))
        .queue(&queue)
        .max_run_time(Duration::from_millis(150));
    let own = h.enqueue(short_limit).await;
    ok(worker(h, only(&queue)).work_off(1).await, "work off");
    assert!(last_error(h, own.id).await.contains("150 ms"));
}

pub(crate) async fn a_panic_is_a_failed_attempt(h: &Harness) {
    let queue = h.queue().await;
    let job = enqueue(h, &queue, &Panicker).await;
    let after = recorder(&[]);
    let w = worker(
        h,
        WorkerOptions {
            concurrency: 1,
            ..only(&queue)
        },
    );
    let first = ok(w.work_off(1).await, "work off the panicking job");
    assert_eq!(first.failed, 1);
    let error = last_error(h, job.id).await;
    assert!(
        error.contains("panicked") && error.contains("the job blew up"),
        "{error}"
    );
    assert_eq!(h.state(job.id).await, JobState::Retrying);
    enqueue(h, &queue, &after).await;
    let next = ok(w.work_off(1).await, "the worker goes on");
    assert_eq!(next.succeeded, 1);
}

pub(crate) async fn a_class_the_worker_does_not_run_stays_waiting(h: &Harness) {
    let queue = h.queue().await;
    let job = h.enqueue(noop().queue(&queue)).await;
    let done = ok(worker(h, only(&queue)).work_off(1).await, "work off");
    assert_eq!(done, WorkOff::default(), "it took nothing");
    let stored = h.job(job.id).await;
    assert_eq!((stored.state, stored.attempts), (JobState::Available, 0));
    assert_eq!(h.history(job.id).await.len(), 1, "not even leased");
}

pub(crate) async fn a_catch_all_worker_fails_an_unknown_class_at_once(h: &Harness) {
    // SS-70: no retries for a job nobody can run.
    let queue = h.queue().await;
    let job = h.enqueue(noop().queue(&queue)).await;
    let options = WorkerOptions {
        catch_all: true,
        ..only(&queue)
    };
    let done = ok(worker(h, options).work_off(1).await, "work off");
    assert_eq!(done.failed, 1);
    let stored = h.job(job.id).await;
    assert_eq!((stored.state, stored.attempts), (JobState::Failed, 1));
    let error = last_error(h, job.id).await;
    assert!(error.contains("unknown job class \"Noop\""), "{error}");
}

pub(crate) async fn undecodable_arguments_fail_at_once(h: &Harness) {
    // SS-27 to SS-30.
    let queue = h.queue().await;
    let job = h
        .enqueue(NewJob::new("Recorder", json!("not a recorder")).queue(&queue))
        .await;
    ok(worker(h, only(&queue)).work_off(1).await, "work off");
    assert_eq!(h.state(job.id).await, JobState::Failed);
    assert!(
        last_error(h, job.id)
            .await
            .contains("cannot decode the arguments of Recorder")
    );
}

pub(crate) async fn a_job_reschedules_itself(h: &Harness) {
    // SS-73: the job's own reschedule_at, 99 minutes on.
    let queue = h.queue().await;
    let job = Recorder {
        reschedule_secs: Some(99 * 60),
        ..recorder(&["perform"])
    };
    let stored = enqueue(h, &queue, &job).await;
    ok(worker(h, only(&queue)).work_off(1).await, "work off");
    let after = h.job(stored.id).await;
    assert_eq!(after.state, JobState::Retrying);
    assert_eq!(after.run_at, h.now() + chrono::Duration::minutes(99));
}

pub(crate) async fn attempts_run_out_and_the_failure_hook_runs_once(h: &Harness) {
    // SS-72, SS-75, SS-81/82: the error keeps its message; the failure hook runs at the end.
    let queue = h.queue().await;
    let job = recorder(&["perform"]);
    let new = ok(outsourced_core::JobExt::to_new_job(&job), "build")
        .queue(&queue)
        .max_attempts(2);
    let stored = h.enqueue(new).await;
    let w = worker(h, only(&queue));
    ok(w.work_off(1).await, "first attempt");
    assert_eq!(h.state(stored.id).await, JobState::Retrying);
    assert!(!recorded(&job.key).contains(&"failure".to_owned()));
    let history = h.history(stored.id).await;
    let error = history
        .last()
        .and_then(|r| r.error.clone())
        .expect("an error row");
    assert_eq!(error.message, "perform did not work");
    h.advance(Duration::from_secs(6));
    ok(w.work_off(1).await, "second attempt");
    assert_eq!(h.state(stored.id).await, JobState::Failed);
    let failures = recorded(&job.key)
        .iter()
        .filter(|e| *e == "failure")
        .count();
    assert_eq!(failures, 1);
    let last = h.history(stored.id).await.pop().expect("a row");
    assert_eq!((last.reason, last.attempt), (Reason::Failed, 2));
}

pub(crate) async fn a_failing_failure_hook_still_fails_the_job(h: &Harness) {
    // SS-76: the hook's error is logged and ignored.
    let queue = h.queue().await;
    let job = recorder(&["perform", "failure"]);
    let new = ok(outsourced_core::JobExt::to_new_job(&job), "build")
        .queue(&queue)
        .max_attempts(1);
    let stored = h.enqueue(new).await;
    let done = ok(worker(h, only(&queue)).work_off(1).await, "work off");
    assert_eq!(done.failed, 1);
    assert_eq!(h.state(stored.id).await, JobState::Failed);
    assert!(recorded(&job.key).contains(&"failure".to_owned()));
}

pub(crate) async fn a_permanent_error_skips_the_retries(h: &Harness) {
    let queue = h.queue().await;
    let job = Recorder {
        permanent: true,
        ..recorder(&["perform"])
    };
    let stored = enqueue(h, &queue, &job).await;
    ok(worker(h, only(&queue)).work_off(1).await, "work off");
    let after = h.job(stored.id).await;
    assert_eq!(
        (after.state, after.attempts, after.max_attempts),
        (JobState::Failed, 1, 25)
    );
    assert!(recorded(&job.key).contains(&"failure".to_owned()));
}

pub(crate) async fn a_jobs_result_is_kept_and_one_too_large_fails_it(h: &Harness) {
    let queue = h.queue().await;
    let fits = json!({"invoice": 42, "lines": ["a", "b"]});
    let good = enqueue(
        h,
        &queue,
        &Answer {
            value: fits.clone(),
        },
    )
    .await;
    let too_large = json!("x".repeat(MAX_RESULT_BYTES));
    let bad = enqueue(h, &queue, &Answer { value: too_large }).await;
    let done = ok(worker(h, only(&queue)).work_off(2).await, "work off");
    assert_eq!((done.succeeded, done.failed), (1, 1));
    let read = h.producer.backend.result(&h.producer.actor, good.id).await;
    assert_eq!(ok(read, "read the result"), Some(fits));
    // Work that cannot report its result fails for good, saying why, rather than running again.
    assert_eq!(h.state(bad.id).await, JobState::Failed);
    let error = last_error(h, bad.id).await;
    assert!(error.contains("the limit is 65536"), "{error}");
}
