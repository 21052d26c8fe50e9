//! kill -9 a worker in the middle of its jobs, twenty times over a run (reliability case 115):
//! each interrupted attempt ends by its lease expiring, the job runs again, and nothing else
//! is lost or run twice.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::time::Duration;

use outsourced_core::{JobId, Reason};

use crate::checker::check;
use crate::cluster::{Cluster, WorkerProcess, exclusive, say, wait_until};

const SCENARIO: &str = "kill -9 workers";
const KILLS: usize = 20;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_workers_jobs_run_again_after_their_lease() {
    let _alone = exclusive().await;
    let cluster = Cluster::sqlite().await;
    let producer = cluster.producer();
    let mut acknowledged = Vec::new();
    for _ in 0..240 {
        acknowledged.push(Cluster::enqueue(&producer, 0.5, 0.5).await);
    }
    let mut workers: Vec<WorkerProcess> = (1..=3)
        .map(|i| cluster.worker(&format!("w{i}"), "", &[]))
        .collect();
    // The attempts a killed worker held (some still within their lease at a later kill of
    // the same worker's next process).
    let mut interrupted: BTreeSet<(JobId, u32)> = BTreeSet::new();
    for kill in 0..KILLS {
        let i = kill % workers.len();
        let name = workers[i].name.clone();
        // What it held when first seen holding a job (the wait's closure keeps it).
        let held = RefCell::new(Vec::new());
        let process = RefCell::new(&mut workers[i]);
        wait_until(
            &format!("{name} holds a job"),
            Duration::from_secs(60),
            || async {
                process.borrow_mut().assert_alive();
                let now = cluster.held_by(&name).await;
                let holds = !now.is_empty();
                *held.borrow_mut() = now;
                cluster.unless(holds).await
            },
        )
        .await;
        let held = held.into_inner();
        workers.remove(i).kill();
        interrupted.extend(held);
        workers.insert(i, cluster.worker(&name, "", &[]));
    }
    say(
        SCENARIO,
        format!("killed a worker with SIGKILL {KILLS} times, each while it ran jobs"),
    );
    cluster
        .wait_until_done(Duration::from_secs(60), &mut workers)
        .await;
    for worker in workers {
        worker.stop();
    }
    let report = check(SCENARIO, &cluster.sql, &acknowledged).await;
    let (mut expired, mut just_finished, mut never_delivered) = (0, 0, 0);
    for (id, attempt) in &interrupted {
        let history = &report.histories[id];
        let ended = history
            .iter()
            .find(|row| row.attempt == *attempt && row.reason != Reason::Reserved)
            .map(|row| row.reason);
        match ended {
            Some(Reason::LeaseExpired) => expired += 1,
            // Its success was on the wire when the worker died.
            Some(Reason::Completed) => just_finished += 1,
            // Claimed for a long poll whose worker died before the answer: the server gave
            // it back at once (no attempt used) instead of waiting out the lease.
            Some(Reason::Released) => never_delivered += 1,
            other => panic!("job {id}, attempt {attempt}, interrupted, ended {other:?}"),
        }
    }
    // A job may end between the read of what a worker holds and the kill (more often on a
    // busy machine); most kills must still have cut an attempt short.
    assert!(
        expired >= KILLS / 2,
        "most kills cut an attempt that then expired: {expired} of {KILLS} kills"
    );
    say(
        SCENARIO,
        format!(
            "{} attempts were held at a kill: {expired} ended by their lease expiring and \
             ran again, {just_finished} had reported success just before, {never_delivered} \
             were claimed for a worker that died before the answer and were given back",
            interrupted.len()
        ),
    );
    cluster.finish().await;
}
