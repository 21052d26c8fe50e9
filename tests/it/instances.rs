//! Worker instances as reserve hears of them, and the hires that change which queues they run:
//! what `queue show` and `job show` say about jobs no live worker runs.

use std::sync::Arc;

use outsourced_backend_sql::{Directory, Role, ServerKey, SqlBackend};
use outsourced_core::{Actor, Backend, NewJob, QueueLimit, ReserveOptions, WorkerInstance};
use serde_json::json;

use crate::support::test_config;

fn admin() -> Actor {
    Actor::Admin("root".into())
}

/// A worker hired for a queue runs its jobs from then on: its live instances that reserve from
/// every queue it is hired for are not said to leave them waiting until their next reserve;
/// one that asked for some of its queues is left as it declared; a fired worker no longer runs
/// them.
#[tokio::test]
async fn a_hire_is_followed_by_the_workers_live_instances() {
    let backend = Arc::new(
        SqlBackend::open(test_config("sqlite::memory:"))
            .await
            .expect("open"),
    );
    for queue in ["a", "b", "c"] {
        let limit = QueueLimit::default();
        let made = backend.create_queue(&admin(), queue, limit).await;
        made.expect("a queue");
    }
    let directory = Directory::new(backend.as_ref().clone());
    let key = ServerKey::generate();
    directory.create(&key, Role::Worker, "w").await.expect("w");
    for queue in ["a", "c"] {
        directory
            .grant(Role::Worker, "w", queue)
            .await
            .expect("hire");
    }
    // As the server reserves for them: every hire, and one asked for.
    let reserve = |instance: &'static str, queues: &'static [&'static str]| {
        let backend = backend.clone();
        async move {
            let by = WorkerInstance::new("w", instance);
            let opts = ReserveOptions::up_to(1).queues(queues.iter().copied());
            backend.reserve(&by, opts).await.expect("reserve");
        }
    };
    reserve("every", &["a", "c"]).await;
    reserve("some", &["a"]).await;
    let job = NewJob::new("Work", json!([])).queue("b");
    backend.enqueue(&admin(), job).await.expect("a job");
    assert_eq!(backend.unserved("b").await.expect("unserved"), ["Work"]);
    directory.grant(Role::Worker, "w", "b").await.expect("hire");
    assert!(backend.unserved("b").await.expect("unserved").is_empty());
    let live = backend.live_instances().await.expect("live");
    let queues = |instance: &str| {
        let found = live.iter().find(|i| i.instance == instance).expect("live");
        let mut queues = found.queues.clone();
        queues.sort();
        queues.join(",")
    };
    assert_eq!(
        (queues("every"), queues("some")),
        ("a,b,c".to_owned(), "a".to_owned())
    );
    directory
        .revoke(Role::Worker, "w", "b")
        .await
        .expect("fire");
    assert_eq!(backend.unserved("b").await.expect("unserved"), ["Work"]);
}

/// A worker next to the database signs no request: `worker list` hears of it by its instances'
/// reserves while it runs, and keeps its last contact once it has left.
#[tokio::test]
async fn a_worker_next_to_the_database_is_last_seen_by_its_reserves() {
    let backend = SqlBackend::open(test_config("sqlite::memory:"))
        .await
        .expect("open");
    let limit = QueueLimit::default();
    let made = backend.create_queue(&admin(), "a", limit).await;
    made.expect("a queue");
    let directory = Directory::new(backend.clone());
    directory
        .create(&ServerKey::generate(), Role::Worker, "w")
        .await
        .expect("w");
    directory.grant(Role::Worker, "w", "a").await.expect("hire");
    let seen = || async {
        directory
            .get(Role::Worker, "w")
            .await
            .expect("w")
            .last_seen_at
    };
    assert_eq!(seen().await, None, "never heard of yet");
    let by = WorkerInstance::new("w", "one");
    let opts = ReserveOptions::up_to(1).queues(["a"]);
    backend.reserve(&by, opts).await.expect("reserve");
    let running = seen().await.expect("heard of by its reserve");
    let listed = directory.list(Role::Worker).await.expect("list");
    assert_eq!(listed[0].last_seen_at, Some(running), "list says the same");
    backend.release_all(&by).await.expect("leave");
    assert!(backend.live_instances().await.expect("live").is_empty());
    let left = seen().await.expect("still heard of once it left");
    assert!(left >= running, "{left} before {running}");
}
