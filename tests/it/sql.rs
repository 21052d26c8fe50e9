//! The conformance suite (the backend's scenarios and the worker's) on SQLite: a file
//! database and an in-memory one.

use std::sync::atomic::{AtomicU32, Ordering};

use outsourced_core::conformance;

use crate::support::sql_harness;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_a_sqlite_file() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let n = AtomicU32::new(0);
    let make = || {
        let file = dir
            .path()
            .join(format!("s{}.db", n.fetch_add(1, Ordering::Relaxed)));
        async move { sql_harness(&format!("sqlite://{}", file.display())).await }
    };
    conformance::run("sqlite file", make).await;
    outsourced_worker::conformance::run("sqlite file, worker", make).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_sqlite_in_memory() {
    let make = || sql_harness("sqlite::memory:");
    conformance::run("sqlite memory", make).await;
    outsourced_worker::conformance::run("sqlite memory, worker", make).await;
}
