//! A worker whose clock is ten minutes ahead (reliability case 121): the server refuses its
//! requests with an error that says why, the worker logs that clearly and stops (waiting does
//! not mend a clock), and the job waits for a worker whose clock is right.

use std::time::Duration;

use outsourced_core::JobState;

use crate::checker::check;
use crate::cluster::{Cluster, exclusive, say, wait_until};

const SCENARIO: &str = "a worker's clock 10 minutes ahead";

/// `faketime` (libfaketime), required under `CI=true` (`.ci/run` installs it).
fn faketime() -> bool {
    let found = std::process::Command::new("faketime")
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success());
    if !found && std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("CI needs faketime (apt-get install faketime)");
    }
    if !found {
        eprintln!("SKIPPED: the clock-skew scenario needs faketime (apt-get install faketime)");
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_with_a_skewed_clock_is_refused_and_says_why() {
    let _alone = exclusive().await;
    if !faketime() {
        return;
    }
    let cluster = Cluster::sqlite().await;
    let producer = cluster.producer();
    let job = Cluster::enqueue(&producer, 0.0, 0.0).await;
    let mut skewed = cluster.worker("skewed", "", &["faketime", "-f", "+10m"]);
    // Refused before it starts, once: no retry would set its clock right.
    let logged = skewed.wait_for_log("refused this config's credentials", Duration::from_secs(30));
    for why in [
        "timestamp",
        "ahead of the server's clock",
        "Check the client's clock",
    ] {
        assert!(logged.contains(why), "the log says why ({why}): {logged}");
    }
    say(SCENARIO, format!("the skewed worker logged: {logged}"));
    assert!(
        logged.contains("clock right") && !logged.contains("consumer_secret"),
        "it sends the user to the clock, not the secret: {logged}"
    );
    assert_eq!(cluster.count(JobState::Available).await, 1, "the job waits");
    skewed.stop();
    let right = cluster.worker("w1", "", &[]);
    wait_until(
        "a worker with the right time runs it",
        Duration::from_secs(30),
        || async {
            cluster
                .unless(cluster.count(JobState::Succeeded).await == 1)
                .await
        },
    )
    .await;
    right.stop();
    check(SCENARIO, &cluster.sql, &[job]).await;
    cluster.finish().await;
}
