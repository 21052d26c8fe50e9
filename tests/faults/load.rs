//! A load run: 200 workers long-polling through one server and producers at a steady rate for
//! 60 s, on SQLite and on PostgreSQL: no enqueue refused, the server's memory bounded, every
//! job run once.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use outsourced_core::{Actor, Backend, JobId, NewJob};
use serde_json::json;

use crate::bins::bin;
use crate::checker::check;
use crate::cluster::{Cluster, QUEUE, WorkerProcess, exclusive, say};

const POLLERS: usize = 200;
const RATE: u64 = 100;
const LENGTH: Duration = Duration::from_secs(60);
/// The server's peak resident memory must stay under this (the benchmarks issue's target).
const MAX_SERVER_MIB: u64 = 150;

/// A process's peak resident memory, in KiB.
fn peak_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let line = status.lines().find_map(|l| l.strip_prefix("VmHWM:"));
    let kib = line.map(|l| l.trim().trim_end_matches("kB").trim().parse().ok());
    kib.flatten().unwrap_or(0)
}

/// `outsourced-bench worker`: 200 workers in one process, each a client of its own, running
/// the bench's no-op job.
fn pollers(cluster: &Cluster) -> WorkerProcess {
    let created = cluster.scratch.json(&["worker", "create", "pollers"]);
    cluster.scratch.ok(&["queue", "hire", QUEUE, "pollers"]);
    let key = created["consumer_key"].as_str().expect("a key");
    let secret = created["consumer_secret"].as_str().expect("a secret");
    let child = Command::new(bin("outsourced-bench"))
        .args([
            "worker",
            "--worker",
            "pollers",
            "--url",
            &cluster.url,
            "--key",
            key,
            "--secret",
            secret,
        ])
        .args(["--queue", QUEUE, "--concurrency", "1", "--batch", "1"])
        .args(["--instances", &POLLERS.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the pollers");
    WorkerProcess::new("the pollers' process", child)
}

async fn steady_load(scenario: &str, cluster: Cluster) {
    let mut pollers = [pollers(&cluster)];
    let producer = cluster.producer();
    let by = Actor::Producer("p1".into());
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / RATE));
    let mut sent = Vec::new();
    let end = Instant::now() + LENGTH;
    while Instant::now() < end {
        tick.tick().await;
        pollers[0].assert_alive();
        let (producer, by) = (producer.clone(), by.clone());
        let job = NewJob::new("Bench::Noop", json!({})).queue(QUEUE);
        sent.push(tokio::spawn(
            async move { producer.enqueue(&by, job).await },
        ));
    }
    let mut acknowledged: Vec<JobId> = Vec::new();
    for enqueue in sent {
        let record = enqueue.await.expect("a producer panicked");
        acknowledged.push(record.expect("no enqueue refused under a steady load").id);
    }
    say(
        scenario,
        format!(
            "{} jobs at {RATE}/s for {} s, {POLLERS} workers long-polling",
            acknowledged.len(),
            LENGTH.as_secs()
        ),
    );
    cluster
        .wait_until_done(Duration::from_secs(60), &mut pollers)
        .await;
    let server = cluster.server_pid().map_or(0, peak_kib) / 1024;
    let [pollers] = pollers;
    let workers = peak_kib(pollers.pid()) / 1024;
    pollers.stop();
    let report = check(scenario, &cluster.sql, &acknowledged).await;
    assert_eq!(report.attempts, report.jobs, "every job ran once");
    assert_eq!(report.expired, 0, "no lease expired");
    say(
        scenario,
        format!(
            "peak resident memory: server {server} MiB, the {POLLERS} workers' process {workers} MiB"
        ),
    );
    assert!(
        server <= MAX_SERVER_MIB,
        "the server's memory stays bounded: {server} MiB"
    );
    cluster.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_long_pollers_and_a_steady_load_on_sqlite() {
    let _alone = exclusive().await;
    steady_load("load run (SQLite)", Cluster::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_long_pollers_and_a_steady_load_on_postgres() {
    let _alone = exclusive().await;
    let Some(cluster) = Cluster::postgres("faults_load").await else {
        return;
    };
    steady_load("load run (PostgreSQL)", cluster).await;
}
