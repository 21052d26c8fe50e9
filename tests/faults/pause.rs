//! SIGSTOP a worker past its lease, then SIGCONT (reliability case 118): its lease expires,
//! another worker runs the job, and the paused worker's late report is refused: the job
//! completes exactly once, by the other worker.

use std::time::Duration;

use outsourced_core::{Actor, JobState, Reason};

use crate::checker::check;
use crate::cluster::{Cluster, exclusive, say, wait_until};

const SCENARIO: &str = "SIGSTOP a worker";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_workers_late_report_is_refused() {
    let _alone = exclusive().await;
    let cluster = Cluster::sqlite().await;
    let producer = cluster.producer();
    // Its first attempt runs 3 s, longer than the lease; later ones at once.
    let job = Cluster::enqueue(&producer, 3.0, 0.0).await;
    let mut paused = cluster.worker("w1", "", &[]);
    wait_until("w1 runs the job", Duration::from_secs(30), || async {
        cluster
            .unless(!cluster.held_by("w1").await.is_empty())
            .await
    })
    .await;
    paused.signal("-STOP");
    say(
        SCENARIO,
        format!("w1 runs job {job}; stopped it with SIGSTOP"),
    );
    wait_until("the lease expires", Duration::from_secs(30), || async {
        cluster
            .unless(cluster.count(JobState::Running).await == 0)
            .await
    })
    .await;
    let other = cluster.worker("w2", "", &[]);
    wait_until("w2 completes the job", Duration::from_secs(30), || async {
        cluster
            .unless(cluster.count(JobState::Succeeded).await == 1)
            .await
    })
    .await;
    paused.signal("-CONT");
    let lost = paused.wait_for_log("LOST its lease", Duration::from_secs(30));
    say(
        SCENARIO,
        format!("w2 completed it; w1, resumed, logged: {lost}"),
    );
    other.stop();
    paused.stop();
    let report = check(SCENARIO, &cluster.sql, &[job]).await;
    let history = &report.histories[&job];
    let expired = history.iter().filter(|r| r.reason == Reason::LeaseExpired);
    assert_eq!(expired.count(), 1, "{history:?}");
    let completed = history.iter().find(|r| r.reason == Reason::Completed);
    let by = completed.map(|row| row.actor.clone());
    assert!(
        matches!(&by, Some(Actor::Worker(w)) if w.worker == "w2"),
        "completed by w2, not by the late w1: {by:?}"
    );
    say(
        SCENARIO,
        "w1's late report changed nothing: one completion, by w2",
    );
    cluster.finish().await;
}
