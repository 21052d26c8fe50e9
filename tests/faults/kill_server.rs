//! kill -9 the server under load, on SQLite and on PostgreSQL (reliability cases 57, 116), and
//! restart PostgreSQL under load (case 120): every enqueue the server acknowledged survives,
//! server and workers recover on their own, and every job ends exactly once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use outsourced_core::JobId;

use crate::checker::check;
use crate::cluster::{Cluster, exclusive, say, wait_until};

/// Producers enqueueing one job at a time until told to stop; the ids acknowledged so far.
struct Load {
    acknowledged: Arc<Mutex<Vec<JobId>>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(cluster: &Cluster, producers: usize) -> Load {
        let acknowledged = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..producers)
            .map(|_| {
                let (producer, acked, stop) =
                    (cluster.producer(), acknowledged.clone(), stop.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::SeqCst) {
                        let id = Cluster::enqueue(&producer, 0.05, 0.05).await;
                        acked.lock().unwrap_or_else(|e| e.into_inner()).push(id);
                    }
                })
            })
            .collect();
        Load {
            acknowledged,
            stop,
            tasks,
        }
    }

    fn count(&self) -> usize {
        self.acknowledged
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    async fn until(&self, n: usize) {
        wait_until(
            "enough enqueues are acknowledged",
            Duration::from_secs(120),
            || async {
                let acknowledged = self.count();
                match acknowledged >= n {
                    true => Ok(()),
                    false => Err(format!("{acknowledged} of {n} acknowledged")),
                }
            },
        )
        .await;
    }

    async fn stop(self) -> Vec<JobId> {
        self.stop.store(true, Ordering::SeqCst);
        for task in self.tasks {
            task.await.expect("a producer panicked");
        }
        let acked = self.acknowledged.lock().unwrap_or_else(|e| e.into_inner());
        acked.clone()
    }
}

/// Under load, `fault` three times; then every acknowledged job must have run once.
async fn survives(scenario: &str, mut cluster: Cluster, fault: impl AsyncFn(&mut Cluster)) {
    let mut workers: Vec<_> = (1..=2)
        .map(|i| cluster.worker(&format!("w{i}"), "", &[]))
        .collect();
    let load = Load::start(&cluster, 4);
    for round in 1..=3 {
        load.until(round * 60).await;
        fault(&mut cluster).await;
        say(
            scenario,
            format!("fault {round} after {} acknowledged enqueues", load.count()),
        );
    }
    load.until(240).await;
    let acknowledged = load.stop().await;
    cluster
        .wait_until_done(Duration::from_secs(60), &mut workers)
        .await;
    for worker in workers {
        worker.stop();
    }
    check(scenario, &cluster.sql, &acknowledged).await;
    cluster.finish().await;
}

async fn kill_and_restart(cluster: &mut Cluster) {
    cluster.kill_server();
    cluster.restart_server();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_loses_no_acknowledged_enqueue_on_sqlite() {
    let _alone = exclusive().await;
    let scenario = "kill -9 the server (SQLite)";
    survives(scenario, Cluster::sqlite().await, kill_and_restart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_loses_no_acknowledged_enqueue_on_postgres() {
    let _alone = exclusive().await;
    let Some(cluster) = Cluster::postgres("faults_kill").await else {
        return;
    };
    survives("kill -9 the server (PostgreSQL)", cluster, kill_and_restart).await;
}

/// The command that restarts PostgreSQL, from `OUTSOURCED_TEST_POSTGRES_RESTART` (required
/// under `CI=true`; `.ci/run` sets it).
fn restart_command() -> Option<String> {
    const VARIABLE: &str = "OUTSOURCED_TEST_POSTGRES_RESTART";
    match std::env::var(VARIABLE) {
        Ok(command) if !command.is_empty() => Some(command),
        _ if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
            panic!("{VARIABLE} must be set under CI=true")
        }
        _ => {
            eprintln!("SKIPPED: restarting PostgreSQL needs {VARIABLE} (see CONTRIBUTING.md)");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_under_load_loses_nothing() {
    let _alone = exclusive().await;
    let Some(command) = restart_command() else {
        return;
    };
    let Some(cluster) = Cluster::postgres("faults_restart").await else {
        return;
    };
    let restart = async |_: &mut Cluster| {
        let status = tokio::process::Command::new("sh")
            .args(["-c", &command])
            .status()
            .await
            .expect("run the restart command");
        assert!(status.success(), "{command} failed");
    };
    survives("restart PostgreSQL", cluster, restart).await;
}
