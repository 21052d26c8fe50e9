//! Two `outsourcer serve` processes on one PostgreSQL database behave as one server: they
//! never lease a job twice, a nonce used on one is refused by the other, and an enqueue on
//! one wakes a worker long-polling on the other (LISTEN/NOTIFY).

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use outsourced_backend_http::{HttpBackend, HttpConfig};
use outsourced_core::{Actor, Backend, JobId, NewJob, ReserveOptions, WorkerInstance};
use reqwest::Method;
use serde_json::{Value, json};

use crate::bins::{FreshDatabase, Scratch, Served};
use crate::signing::{Signed, status_and_code};
use crate::support::Server;

/// A client of `server` with the credentials `created` printed.
fn client(server: &Served, created: &Value) -> Arc<HttpBackend> {
    let key = created["consumer_key"].as_str().expect("a key");
    let secret = created["consumer_secret"].as_str().expect("a secret");
    let config = HttpConfig::new(&server.url, key, secret);
    Arc::new(HttpBackend::new(config).expect("a client"))
}

/// Reserves batches of 10 from `bulk` and completes them until none is left.
async fn drain(backend: Arc<HttpBackend>, me: WorkerInstance) -> Vec<JobId> {
    let mut done = Vec::new();
    loop {
        let opts = ReserveOptions::up_to(10).queues(["bulk"]);
        let batch = backend.reserve(&me, opts).await.expect("reserve");
        if batch.is_empty() {
            return done;
        }
        let leases: Vec<outsourced_core::Completion> =
            batch.iter().map(|r| r.lease.to_ref().into()).collect();
        let results = backend.complete_batch(&me, &leases).await;
        assert!(results.expect("complete").iter().all(Result::is_ok));
        done.extend(batch.iter().map(|r| r.job.id));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_server_processes_on_one_postgres_database_act_as_one() {
    let Some(url) = Server::Postgres.url() else {
        return;
    };
    let database = FreshDatabase::create(&url, "multi").await;
    let s = Scratch::on(&database.url);
    s.ok(&["queue", "create", "bulk", "--unlimited"]);
    let worker = s.json(&["worker", "create", "w1"]);
    s.ok(&["queue", "hire", "bulk", "w1"]);
    let producer = s.json(&["producer", "create", "shop"]);
    s.ok(&["producer", "grant", "shop", "bulk"]);
    let admin = s.json(&["admin", "create", "root"]);
    // No periodic re-check while long-polling: only a wake-up ends one early.
    let args = ["--idle-recheck", "1h"];
    let log = "warn,outsourced_backend_sql::reserve=debug";
    let servers = [s.serve(&args, log), s.serve(&args, log)];

    // Disjoint leases: four workers, two on each server, drain 300 jobs.
    let shop = client(&servers[0], &producer);
    let jobs = (0..300).map(|i| NewJob::new("Split", json!([i])).queue("bulk"));
    let shop_actor = Actor::Producer("shop".into());
    let mut enqueued = shop.enqueue_batch(&shop_actor, jobs.collect()).await;
    let enqueued = enqueued.as_mut().expect("enqueue");
    let drains = (0..4).map(|n| {
        let backend = client(&servers[n % 2], &worker);
        tokio::spawn(drain(backend, WorkerInstance::new("w1", format!("i{n}"))))
    });
    let mut completed: Vec<JobId> = join_all(drains)
        .await
        .into_iter()
        .flat_map(|r| r.expect("a worker panicked"))
        .collect();
    completed.sort();
    enqueued.sort();
    assert_eq!(&completed, enqueued, "each job leased once, by one server");

    // One nonce store: a request accepted by the first server is a replay to the second.
    let key = admin["consumer_key"].as_str().expect("a key");
    let secret = admin["consumer_secret"].as_str().expect("a secret");
    let queues = format!("{}/v1/queues", servers[0].url);
    let signed = Signed::new(Method::GET, &queues, key, None).sign(secret);
    assert_eq!(signed.send().await.status(), 200);
    let replayed = status_and_code(signed.send_via(&servers[1].url).await).await;
    assert_eq!(replayed, (401, "nonce_used".to_owned()));
    let fresh = Signed::new(Method::GET, &queues, key, None).sign(secret);
    let fresh = fresh.send_via(&servers[1].url).await;
    assert_eq!(
        fresh.status(),
        200,
        "the second server takes a fresh request"
    );
    // A worker's nonce, committed without waiting for the disk, is used once all the same.
    let key = worker["consumer_key"].as_str().expect("a key");
    let secret = worker["consumer_secret"].as_str().expect("a secret");
    let signed = Signed::new(Method::GET, &queues, key, None).sign(secret);
    assert_eq!(signed.send().await.status(), 200);
    for server in &servers {
        let replayed = status_and_code(signed.send_via(&server.url).await).await;
        assert_eq!(
            replayed,
            (401, "nonce_used".to_owned()),
            "a worker's replay"
        );
    }

    // One wake-up: an enqueue through the first wakes a long-poll parked on the second.
    let remote = client(&servers[1], &worker);
    let me = WorkerInstance::new("w1", "waiting");
    let waiting = tokio::spawn(async move {
        let mut opts = ReserveOptions::up_to(1).queues(["bulk"]);
        opts.wait = Some(Duration::from_secs(25));
        remote.reserve(&me, opts).await
    });
    let parked = "no job ready; waiting for a wake-up";
    tokio::task::block_in_place(|| servers[1].wait_for_log(parked));
    let job = shop
        .enqueue(&shop_actor, NewJob::new("Late", json!([])).queue("bulk"))
        .await
        .expect("enqueue");
    // Woken, not merely finding the job when its wait runs out.
    tokio::task::block_in_place(|| servers[1].wait_for_log("woken up; looking again"));
    let reserved = waiting.await.expect("the long-poll").expect("reserve");
    let ids: Vec<JobId> = reserved.iter().map(|r| r.job.id).collect();
    assert_eq!(ids, [job.id]);

    for server in servers {
        server.stop();
    }
    database.drop_now().await;
}
