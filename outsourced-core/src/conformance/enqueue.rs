//! Enqueue: defaults, options, validation, batches (delayed_job SS-01 to SS-10, SS-51).

use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::harness::{Harness, noop, ok};
use crate::{
    Backend, Backoff, CountFilter, DEFAULT_MAX_ATTEMPTS, DEFAULT_QUEUE, Error, Job, JobContext,
    JobError, JobExt, JobState, NewJob, Owner, QueueUpdate, Reason, Repeat, by_state,
};

/// Counts every job the admin can see.
async fn total_jobs(h: &Harness) -> u64 {
    let counts = h
        .admin
        .backend
        .counts(&h.admin.actor, CountFilter::default())
        .await;
    by_state(&ok(counts, "count jobs")).total()
}

pub(crate) async fn enqueue_fills_in_the_defaults(h: &Harness) {
    let job = h.enqueue(noop()).await;
    assert_eq!(job.queue, DEFAULT_QUEUE);
    assert_eq!(job.priority, 0);
    assert_eq!(job.run_at, h.now(), "the run time defaults to now");
    assert_eq!(job.max_attempts, DEFAULT_MAX_ATTEMPTS);
    assert_eq!(job.backoff, Backoff::Polynomial);
    assert_eq!(job.max_run_time, None);
    assert_eq!(job.repeat, None);
    assert_eq!(job.owner, None);
    assert_eq!(job.attempts, 0);
    assert_eq!(job.state, JobState::Available);
    assert_eq!(job.created_at, h.now());
    assert_eq!(
        h.job(job.id).await,
        job,
        "the stored job is the one returned"
    );
}

pub(crate) async fn enqueue_keeps_the_options_it_is_given(h: &Harness) {
    let queue = h.queue().await;
    // A time with milliseconds: backends keep them.
    let run_at = h.now() + chrono::Duration::milliseconds(5 * 60_000 + 123);
    let new = NewJob::new("Report", json!({"user": 42, "tags": ["a", "b"]}))
        .queue(&queue)
        .priority(5)
        .run_at(run_at)
        .max_attempts(3)
        .max_run_time(Duration::from_secs(90))
        .backoff(Backoff::Constant(Duration::from_millis(1500)))
        .repeat(Repeat::Every(Duration::from_secs(60)))
        .owner(Owner::new("User", "42"));
    let job = h.enqueue(new.clone()).await;
    let stored = h.job(job.id).await;
    assert_eq!(stored.class, "Report");
    assert_eq!(stored.args, new.args);
    assert_eq!(stored.payload(), new.payload());
    assert_eq!(stored.queue, queue);
    assert_eq!(stored.priority, 5);
    assert_eq!(stored.run_at, run_at);
    assert_eq!(stored.max_attempts, 3);
    assert_eq!(stored.max_run_time, Some(Duration::from_secs(90)));
    assert_eq!(stored.backoff, new.backoff);
    assert_eq!(stored.repeat, new.repeat);
    assert_eq!(stored.owner, Some(Owner::new("User", "42")));
}

pub(crate) async fn a_future_run_time_makes_a_job_scheduled(h: &Harness) {
    let later = h
        .enqueue(noop().run_at(h.now() + chrono::Duration::seconds(1)))
        .await;
    let earlier = h
        .enqueue(noop().run_at(h.now() - chrono::Duration::seconds(1)))
        .await;
    let now = h.enqueue(noop().run_at(h.now())).await;
    assert_eq!(later.state, JobState::Scheduled);
    assert_eq!(earlier.state, JobState::Available);
    assert_eq!(now.state, JobState::Available);
}

pub(crate) async fn a_cron_job_first_runs_at_its_schedules_first_point(h: &Harness) {
    let hourly = ok(crate::CronSchedule::new("0 * * * *"), "an hourly schedule");
    let first = hourly.next_after(h.now());
    let job = h
        .enqueue(noop().repeat(crate::Repeat::Cron(hourly.clone())))
        .await;
    assert_eq!((job.state, Some(job.run_at)), (JobState::Scheduled, first));
    let now = h.now();
    let given = h
        .enqueue(noop().repeat(crate::Repeat::Cron(hourly)).run_at(now))
        .await;
    assert_eq!(
        (given.state, given.run_at),
        (JobState::Available, now),
        "a run time given is kept"
    );
}

pub(crate) async fn enqueue_writes_the_first_history_row(h: &Harness) {
    let job = h.enqueue(noop()).await;
    let history = h.history(job.id).await;
    assert_eq!(history.len(), 1, "{history:?}");
    let row = &history[0];
    assert_eq!(row.job_id, job.id);
    assert_eq!(row.seq, 1);
    assert_eq!(row.from, None);
    assert_eq!(row.to, JobState::Available);
    assert_eq!(row.reason, Reason::Enqueued);
    assert_eq!(row.actor, h.producer.actor);
    assert_eq!(row.attempt, 0);
    assert_eq!(row.at, h.now());
    assert_eq!(row.lease_token, None);
    assert_eq!(row.error, None);
}

pub(crate) async fn an_unknown_queue_is_refused_and_nothing_is_stored(h: &Harness) {
    let before = total_jobs(h).await;
    let result = h.try_enqueue(noop().queue("no-such-queue")).await;
    assert_error!(result, Error::UnknownQueue { queue } if queue == "no-such-queue");
    assert_eq!(total_jobs(h).await, before);
}

pub(crate) async fn invalid_jobs_are_refused_and_nothing_is_stored(h: &Harness) {
    let invalid = [
        NewJob::new("", json!([])),
        noop().max_attempts(0),
        noop().max_run_time(Duration::ZERO),
        noop().max_run_time(Duration::from_micros(900)),
        noop().queue(""),
        noop().queue("bad queue/name"),
        noop().owner(Owner::new("User", "")),
        // Control characters would forge lines wherever the name is printed.
        NewJob::new("Evil\"}\nforged 1", json!([])),
        NewJob::new("Bell\u{7}", json!([])),
        noop().owner(Owner::new("User", "42\u{1b}[31m")),
        // As would a bidirectional override (it reorders what follows) or a line separator.
        NewJob::new("Report\u{202e}fdp.exe", json!([])),
        NewJob::new("Line\u{2028}break", json!([])),
    ];
    for job in invalid {
        let result = h.try_enqueue(job.clone()).await;
        assert_error!(result, Error::InvalidInput { .. });
    }
    assert_eq!(total_jobs(h).await, 0);
}

pub(crate) async fn large_arguments_round_trip(h: &Harness) {
    // delayed_job's SS-51: a handler of about 28 KB is stored and gets an id.
    let text = "Lorem ipsum dolor sit amet. ".repeat(1000);
    let job = h.enqueue(NewJob::new("Big", json!([text]))).await;
    assert_eq!(h.job(job.id).await.args, json!([text]));
}

pub(crate) async fn a_paused_queue_accepts_jobs(h: &Harness) {
    let queue = h.queue().await;
    let paused = QueueUpdate {
        paused: Some(true),
        ..QueueUpdate::default()
    };
    let updated = h
        .admin
        .backend
        .update_queue(&h.admin.actor, &queue, paused)
        .await;
    ok(updated, "pause a queue");
    let job = h.enqueue_in(&queue).await;
    assert_eq!(job.state, JobState::Available);
}

/// A job type whose own options feed the enqueue (delayed_job's `NamedQueueJob`).
#[derive(Serialize, Deserialize)]
struct NamedQueueJob {
    text: String,
}

#[async_trait]
impl Job for NamedQueueJob {
    const CLASS: &'static str = "NamedQueueJob";

    async fn perform(&self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }

    fn queue(&self) -> Option<String> {
        Some(DEFAULT_QUEUE.to_owned())
    }

    fn priority(&self) -> Option<i32> {
        Some(7)
    }

    fn max_attempts(&self) -> Option<u32> {
        Some(99)
    }

    fn max_run_time(&self) -> Option<Duration> {
        Some(Duration::from_secs(30 * 60))
    }
}

pub(crate) async fn a_typed_job_enqueues_with_its_own_options(h: &Harness) {
    let typed = NamedQueueJob { text: "hi".into() };
    let backend: &dyn Backend = h.producer.backend.as_ref();
    let job = ok(
        typed.enqueue_as(backend, &h.producer.actor).await,
        "enqueue a typed job",
    );
    assert_eq!(job.class, "NamedQueueJob");
    assert_eq!(job.args, json!({"text": "hi"}));
    assert_eq!(job.queue, DEFAULT_QUEUE, "the job's own queue (SS-10)");
    assert_eq!((job.priority, job.max_attempts), (7, 99), "SS-56");
    assert_eq!(job.max_run_time, Some(Duration::from_secs(1800)), "SS-59");
    // An explicit queue wins over the job's own (SS-08).
    let queue = h.queue().await;
    let new = ok(typed.to_new_job(), "build the job").queue(&queue);
    assert_eq!(h.enqueue(new).await.queue, queue);
    // Without options of its own, the defaults apply (SS-55, SS-57).
    let plain = h.enqueue(noop()).await;
    assert_eq!(
        (plain.max_attempts, plain.max_run_time),
        (DEFAULT_MAX_ATTEMPTS, None)
    );
}

pub(crate) async fn a_batch_returns_ids_in_order(h: &Harness) {
    let queue = h.queue().await;
    let jobs: Vec<NewJob> = (0..5)
        .map(|i| NewJob::new("Numbered", json!([i])).queue(&queue))
        .collect();
    let ids = ok(
        h.producer
            .backend
            .enqueue_batch(&h.producer.actor, jobs)
            .await,
        "enqueue a batch",
    );
    assert_eq!(ids.len(), 5);
    for (i, id) in ids.iter().enumerate() {
        let job = h.job(*id).await;
        assert_eq!(job.args, json!([i]));
        assert_eq!(h.history(*id).await[0].reason, Reason::Enqueued);
    }
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids grow with enqueue order"
    );
}

pub(crate) async fn a_batch_with_one_bad_job_stores_nothing(h: &Harness) {
    let queue = h.queue().await;
    let batches = [
        vec![
            noop().queue(&queue),
            noop().queue("no-such-queue"),
            noop().queue(&queue),
        ],
        vec![noop().queue(&queue), noop().max_attempts(0)],
    ];
    let producer = &h.producer;
    let unknown = producer
        .backend
        .enqueue_batch(&producer.actor, batches[0].clone())
        .await;
    assert_error!(unknown, Error::UnknownQueue { .. });
    let invalid = producer
        .backend
        .enqueue_batch(&producer.actor, batches[1].clone())
        .await;
    assert_error!(invalid, Error::InvalidInput { .. });
    assert_eq!(total_jobs(h).await, 0);
}

pub(crate) async fn an_empty_batch_stores_nothing(h: &Harness) {
    let ids = h
        .producer
        .backend
        .enqueue_batch(&h.producer.actor, Vec::new())
        .await;
    assert!(ok(ids, "enqueue an empty batch").is_empty());
    assert_eq!(total_jobs(h).await, 0);
}
