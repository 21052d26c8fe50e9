//! The worker's life: cancel requests, graceful shutdown, a second signal, exit on complete.

use std::time::Duration;

use outsourced_core::conformance::{Harness, ok};
use outsourced_core::{JobState, Reason};

use super::jobs::{Blocker, gates};
use super::{enqueue, only, unique_key, worker};
use crate::{Shutdown, Stage, WorkOff, WorkerOptions};

pub(crate) async fn a_cancel_stops_a_running_job(h: &Harness) {
    let queue = h.queue().await;
    let key = unique_key();
    let job = enqueue(h, &queue, &Blocker { key: key.clone() }).await;
    let options = WorkerOptions {
        // A short lease, so that heartbeats (every third of it) come soon.
        lease: Duration::from_secs(1),
        exit_on_complete: true,
        ..only(&queue)
    };
    let w = worker(h, options);
    let run = tokio::spawn(async move { w.run(Shutdown::never()).await });
    let (started, _finish) = gates(&key);
    started.notified().await;
    let state = ok(
        h.admin.backend.cancel(&h.admin.actor, job.id).await,
        "cancel",
    );
    assert_eq!(state, JobState::Running);
    // The next heartbeat reports the request; the worker stops the job, gives it back, and,
    // with nothing else to do, exits.
    let done = ok(ok(run.await, "join the worker"), "run");
    assert_eq!(done.abandoned, 1);
    assert_eq!(h.state(job.id).await, JobState::Cancelled);
}

pub(crate) async fn shutdown_lets_running_jobs_finish(h: &Harness) {
    let queue = h.queue().await;
    let key = unique_key();
    let running = enqueue(h, &queue, &Blocker { key: key.clone() }).await;
    let options = WorkerOptions {
        concurrency: 1,
        ..only(&queue)
    };
    let w = worker(h, options);
    let (trigger, shutdown) = Shutdown::manual();
    let run = tokio::spawn(async move { w.run(shutdown).await });
    let (started, finish) = gates(&key);
    started.notified().await;
    let waiting = enqueue(h, &queue, &Blocker { key: unique_key() }).await;
    trigger.advance(Stage::Draining);
    // Draining: the running job may finish; nothing new is reserved.
    finish.notify_one();
    let done = ok(ok(run.await, "join the worker"), "run");
    assert_eq!(
        done,
        WorkOff {
            succeeded: 1,
            failed: 0,
            abandoned: 0
        }
    );
    assert_eq!(h.state(running.id).await, JobState::Succeeded);
    assert_eq!(h.state(waiting.id).await, JobState::Available);
}

pub(crate) async fn shutdown_releases_what_cannot_finish(h: &Harness) {
    let queue = h.queue().await;
    let key = unique_key();
    let job = enqueue(h, &queue, &Blocker { key: key.clone() }).await;
    let options = WorkerOptions {
        shutdown_grace: Duration::from_millis(100),
        ..only(&queue)
    };
    let w = worker(h, options);
    let (trigger, shutdown) = Shutdown::manual();
    let run = tokio::spawn(async move { w.run(shutdown).await });
    gates(&key).0.notified().await;
    trigger.advance(Stage::Draining);
    // The job never finishes: after the grace period it is stopped and released, its attempt
    // given back, so another worker can take it at once.
    let done = ok(ok(run.await, "join the worker"), "run");
    assert_eq!(done.abandoned, 1);
    let stored = h.job(job.id).await;
    assert_eq!(
        (stored.state, stored.attempts, stored.lease),
        (JobState::Available, 0, None)
    );
    let last = h.history(job.id).await.pop().expect("a history row");
    assert_eq!(last.reason, Reason::Released);
}

pub(crate) async fn a_second_signal_stops_at_once(h: &Harness) {
    let queue = h.queue().await;
    let key = unique_key();
    let job = enqueue(h, &queue, &Blocker { key: key.clone() }).await;
    let options = WorkerOptions {
        shutdown_grace: Duration::from_secs(3600),
        ..only(&queue)
    };
    let w = worker(h, options);
    let (trigger, shutdown) = Shutdown::manual();
    let run = tokio::spawn(async move { w.run(shutdown).await });
    gates(&key).0.notified().await;
    trigger.advance(Stage::Draining);
    trigger.advance(Stage::Now);
    let done = ok(ok(run.await, "join the worker"), "run");
    assert_eq!(done.abandoned, 1);
    assert_eq!(h.state(job.id).await, JobState::Available);
}

pub(crate) async fn exit_on_complete_returns_when_idle(h: &Harness) {
    // W-4: with nothing to do, the worker returns instead of waiting.
    let queue = h.queue().await;
    let options = WorkerOptions {
        exit_on_complete: true,
        idle_wait: Duration::from_secs(3600),
        ..only(&queue)
    };
    let done = ok(worker(h, options).run(Shutdown::never()).await, "run");
    assert_eq!(done, WorkOff::default());
}
