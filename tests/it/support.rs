//! Building harnesses over the SQL backend.

use std::sync::Arc;
use std::time::Duration;

use outsourced_backend_sql::{SqlBackend, SqlConfig};
use outsourced_core::conformance::{Client, Harness, WorkerClient};
use outsourced_core::{Actor, Backend, TestClock, WorkerInstance};

/// The SQL settings the suite runs with: no periodic re-check while long-polling, so that only
/// a real wake-up can end a long poll early.
pub(crate) fn test_config(url: &str) -> SqlConfig {
    let mut config = SqlConfig::new(url);
    config.idle_recheck = Duration::from_secs(600);
    config
}

/// A harness where the producer, the workers and the admin all call one SQL backend.
pub(crate) async fn sql_harness(url: &str) -> Harness {
    let clock = Arc::new(TestClock::new());
    let config = test_config(url);
    let lease = config.lease;
    let backend = SqlBackend::open_with_clock(config, clock.clone())
        .await
        .unwrap_or_else(|e| panic!("cannot open {url}: {e}"));
    let backend: Arc<dyn Backend> = Arc::new(backend);
    let client = |actor| Client {
        backend: backend.clone(),
        actor,
    };
    let worker = |name: &str, instance: &str| WorkerClient {
        backend: backend.clone(),
        id: WorkerInstance::new(name, instance),
    };
    let workers = vec![worker("w1", "a"), worker("w2", "b"), worker("w1", "c")];
    let producer = client(Actor::Producer("shop".into()));
    let admin = client(Actor::Admin("root".into()));
    Harness::new(producer, workers, admin, clock, lease)
}
