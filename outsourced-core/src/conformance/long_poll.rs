//! Long-polling reserves: woken by enqueues, one per new job of their own queue, and ending
//! empty when the wait runs out (reliability case 25).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::harness::{Harness, WorkerClient, noop, ok};
use crate::{JobId, NewJob, ReserveOptions, Reserved};

/// Wraps a future and signals once it has returned `Pending` (it is then waiting on something).
struct SignalWhenPending<F> {
    inner: Pin<Box<F>>,
    signal: std::sync::Arc<Notify>,
}

impl<F: Future> Future for SignalWhenPending<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let poll = self.inner.as_mut().poll(cx);
        if poll.is_pending() {
            self.signal.notify_one();
        }
        poll
    }
}

pub(crate) async fn a_long_poll_is_woken_by_an_enqueue(h: &Harness) {
    // Reliability case 25. The poll may wait 25 s and nothing else is due in the queue; the
    // test gives up after 10 s, so only the enqueue's wake-up can end the poll in time.
    let queue = h.queue().await;
    let task = long_poll(h.w(0), &[&queue]).await;
    // A call of another worker, queued behind the waiting reserve's own query, makes it likely
    // that the reserve is waiting, not still querying, when the job arrives.
    h.w(1).reserve_none(&[&queue]).await;
    let job = h.enqueue_in(&queue).await;
    assert_eq!(
        woken(task, "wake the long poll by the enqueue").await,
        job.id
    );
}

pub(crate) async fn a_long_poll_that_times_out_returns_nothing(h: &Harness) {
    let queue = h.queue().await;
    let opts = ReserveOptions::up_to(5)
        .queues([&queue])
        .wait(Duration::from_millis(50));
    assert!(h.w(0).reserve(opts).await.is_empty());
}

/// A worker that runs one class long-polls beside one that runs another: a job of the first
/// class wakes its reserver, never only the other (which could not take it).
pub(crate) async fn a_new_job_wakes_a_long_poll_that_runs_its_class(h: &Harness) {
    let queue = h.queue().await;
    let other = long_poll_for(h.w(1), &[&queue], Some(&["Other"])).await;
    let mine = long_poll_for(h.w(0), &[&queue], Some(&["Noop"])).await;
    h.w(2).reserve_none(&[&queue]).await;
    let job = h.enqueue_in(&queue).await;
    assert_eq!(woken(mine, "the reserver that runs Noop").await, job.id);
    let theirs = h
        .enqueue(NewJob::new("Other", serde_json::json!([])).queue(&queue))
        .await;
    assert_eq!(
        woken(other, "the reserver that runs Other").await,
        theirs.id
    );
}

/// Starts a long poll (25 s) of `worker` for one job of `queues` (every queue when empty) and
/// returns once it has started waiting.
pub(super) async fn long_poll(worker: &WorkerClient, queues: &[&str]) -> JoinHandle<Vec<Reserved>> {
    long_poll_for(worker, queues, None).await
}

/// A long poll as above, for jobs of `classes` only (any when `None`).
async fn long_poll_for(
    worker: &WorkerClient,
    queues: &[&str],
    classes: Option<&[&str]>,
) -> JoinHandle<Vec<Reserved>> {
    let waiting = Arc::new(Notify::new());
    let worker = worker.clone();
    let mut opts = ReserveOptions::up_to(1)
        .queues(queues.iter().copied())
        .wait(Duration::from_secs(25));
    if let Some(classes) = classes {
        opts = opts.classes(classes.iter().copied());
    }
    let poll = SignalWhenPending {
        inner: Box::pin(async move { worker.reserve(opts).await }),
        signal: waiting.clone(),
    };
    let task = tokio::spawn(poll);
    waiting.notified().await;
    task
}

/// The job a long poll got, within 10 s (the harness's backends look again on their own only
/// after minutes, so only a wake-up ends the poll in time).
pub(super) async fn woken(task: JoinHandle<Vec<Reserved>>, what: &str) -> JobId {
    let got = tokio::time::timeout(Duration::from_secs(10), task).await;
    let got = ok(ok(got, what), "join the long poll");
    assert_eq!(got.len(), 1, "{what}: {got:?}");
    got[0].job.id
}

/// Several reservers long-poll one queue, another waits on a second queue and a third on every
/// queue: new jobs of the first queue wake as many of its reservers (and the one of every
/// queue), each gets a job of its own, and the second queue's reserver only wakes for its own.
pub(crate) async fn each_new_job_wakes_a_long_poll_of_its_queue(h: &Harness) {
    let (busy, quiet) = (h.queue().await, h.queue().await);
    let first = long_poll(h.w(0), &[&busy]).await;
    let second = long_poll(h.w(1), &[&busy]).await;
    let elsewhere = long_poll(h.w(2), &[&quiet]).await;
    let anywhere = long_poll(h.w(0), &[]).await;
    // Queued behind the polls' own first looks, as in the scenario above.
    h.w(1).reserve_none(&[&busy]).await;
    let batch = (0..3).map(|_| noop().queue(&busy)).collect();
    let enqueued = h.producer.backend.enqueue_batch(&h.producer.actor, batch);
    let mut jobs = ok(enqueued.await, "enqueue three jobs");
    jobs.sort();
    let mut got = vec![
        woken(first, "the first reserver of the queue").await,
        woken(second, "the second reserver of the queue").await,
        woken(anywhere, "the reserver of every queue").await,
    ];
    got.sort();
    assert_eq!(got, jobs, "each got one of the new jobs, none twice");
    let own = h.enqueue_in(&quiet).await;
    assert_eq!(woken(elsewhere, "the other queue's reserver").await, own.id);
}
