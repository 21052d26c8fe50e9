//! kill -9 the worker running a batch's last job (issue 22): the job's lease expires, it runs
//! again, and only its success ends the batch: the callback becomes runnable once, with every
//! job counted once.

use std::cell::RefCell;
use std::time::Duration;

use outsourced_core::{
    Actor, Backend, BatchId, JobFilter, JobId, JobState, NewBatch, NewJob, Reason,
};
use serde_json::json;

use crate::checker::check;
use crate::cluster::{Cluster, QUEUE, admin, exclusive, say, wait_until};

const SCENARIO: &str = "kill -9 the worker of a batch's last job";
const JOBS: usize = 12;
const CALLBACKS: &str = "callbacks";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_last_job_of_a_batch_ends_it_once_when_it_runs_again() {
    let _alone = exclusive().await;
    let cluster = Cluster::sqlite().await;
    cluster.scratch.ok(&["queue", "create", CALLBACKS]);
    cluster.scratch.ok(&["producer", "grant", "p1", CALLBACKS]);
    let producer = cluster.producer();
    let by = Actor::Producer("p1".into());
    let callback = NewJob::new("Report", json!({})).queue(CALLBACKS);
    let batch = producer.open_batch(&by, NewBatch::new(callback)).await;
    let batch = batch.expect("open a batch");
    let id = batch.counts.id;
    // The last job sleeps on its first attempt (long enough to be the one running when the
    // others have ended; not much longer: its orphaned `sleep` holds the killed worker's
    // output open until it ends).
    let mut acknowledged = Vec::new();
    for n in 0..JOBS {
        let first = if n + 1 == JOBS { 5.0 } else { 0.2 };
        let job = NewJob::new("Sleep", json!([first, 0.2]))
            .queue(QUEUE)
            .batch(id);
        acknowledged.push(producer.enqueue(&by, job).await.expect("enqueue").id);
    }
    producer
        .close_batch(&by, id)
        .await
        .expect("close the batch");
    let last = *acknowledged.last().expect("a last job");

    let mut worker = cluster.worker("w1", "", &[]);
    let holder = RefCell::new(&mut worker);
    wait_until(
        "every job of the batch but the last ended, the last running",
        Duration::from_secs(60),
        || async {
            holder.borrow_mut().assert_alive();
            let info = cluster.sql.batch(&admin(), id).await.expect("the batch");
            let running = cluster
                .held_by("w1")
                .await
                .iter()
                .any(|(job, _)| *job == last);
            cluster.unless(info.counts.live() == 1 && running).await
        },
    )
    .await;
    worker.kill();
    say(
        SCENARIO,
        format!("killed the worker with SIGKILL while it ran job {last}, the batch's last"),
    );
    assert_eq!(
        callback_state(&cluster, batch.callback).await,
        JobState::Pending
    );

    let mut workers = vec![cluster.worker("w2", "", &[])];
    cluster
        .wait_until_done(Duration::from_secs(60), &mut workers)
        .await;
    for worker in workers {
        worker.stop();
    }
    let report = check(SCENARIO, &cluster.sql, &acknowledged).await;
    let reasons: Vec<Reason> = report.histories[&last].iter().map(|e| e.reason).collect();
    assert!(reasons.contains(&Reason::LeaseExpired), "{reasons:?}");
    ended_once(&cluster, id, batch.callback).await;
    cluster.finish().await;
}

async fn callback_state(cluster: &Cluster, callback: JobId) -> JobState {
    cluster
        .sql
        .job(&admin(), callback)
        .await
        .expect("the callback")
        .state
}

/// The batch counted every job once, and its callback was made runnable once, with the counts.
async fn ended_once(cluster: &Cluster, id: BatchId, callback: JobId) {
    let info = cluster.sql.batch(&admin(), id).await.expect("the batch");
    let counts = info.counts;
    assert_eq!(
        (counts.total, counts.succeeded, counts.live()),
        (JOBS as u64, JOBS as u64, 0)
    );
    let job = cluster
        .sql
        .job(&admin(), callback)
        .await
        .expect("the callback");
    assert_eq!(job.state, JobState::Available);
    assert_eq!(job.args["batch"]["succeeded"], json!(JOBS));
    let history = cluster
        .sql
        .history(&admin(), callback)
        .await
        .expect("a history");
    let ended = history
        .iter()
        .filter(|e| e.reason == Reason::BatchEnded)
        .count();
    assert_eq!(ended, 1, "{history:?}");
    let filter = JobFilter {
        batch: Some(id),
        limit: 100,
        ..JobFilter::default()
    };
    let members = cluster
        .sql
        .jobs(&admin(), filter)
        .await
        .expect("the batch's jobs");
    assert_eq!(members.len(), JOBS);
    say(
        SCENARIO,
        format!(
            "the batch counted its {JOBS} jobs once each ({} succeeded) and made its callback, \
             job {callback}, runnable once, with the counts",
            counts.succeeded
        ),
    );
}
