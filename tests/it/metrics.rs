//! `<mount>/metrics` after a known run: every counter says what happened.

use std::sync::Arc;

use outsourced_backend_http::HttpBackend;
use outsourced_backend_sql::{Role, SqlBackend};
use outsourced_core::{
    Actor, Backend, BackendExt, ErrorInfo, Failure, NewJob, QueueLimit, ReserveOptions, Reserved,
    RetryPlan, WorkerInstance,
};
use outsourced_server::ServerConfig;
use reqwest::Method;
use serde_json::json;

use crate::http::RunningServer;
use crate::signing::Signed;
use crate::support::test_config;

/// The value of the sample `name{labels}` in `text` (labels in any order), or 0 when absent.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let wanted: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .filter(|(series, _)| {
            let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
            let found: Vec<&str> = rest.trim_end_matches('}').split(',').collect();
            metric == name && wanted.iter().all(|w| found.contains(&w.as_str()))
        })
        .map(|(_, value)| value.parse::<f64>().expect("a number"))
        .sum()
}

/// The metrics token of the servers these tests scrape.
const TOKEN: &str = "s3cret";

/// A server's config with the metrics on (behind [`TOKEN`]).
fn tokened() -> ServerConfig {
    ServerConfig {
        metrics_token: Some(TOKEN.into()),
        ..ServerConfig::default()
    }
}

async fn scrape(server: &RunningServer, token: Option<&str>) -> (u16, String) {
    let url = server.url.clone() + "/metrics";
    let mut request = reqwest::Client::new().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("an answer");
    (
        response.status().as_u16(),
        response.text().await.unwrap_or_default(),
    )
}

async fn fail(w: &HttpBackend, me: &WorkerInstance, job: &Reserved, retry: RetryPlan) {
    let failure = Failure {
        error: ErrorInfo::new("no"),
        retry,
    };
    w.fail(me, &job.lease.to_ref(), failure)
        .await
        .expect("fail");
}

/// A scrape reads the database: a server given no token keeps its metrics off rather than
/// open to whoever reaches it, and says how to turn them on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_without_a_metrics_token_keeps_its_metrics_off() {
    let sql = SqlBackend::open(test_config("sqlite::memory:"))
        .await
        .expect("open");
    let server = RunningServer::start(sql, ServerConfig::default()).await;
    for token in [None, Some("anything")] {
        let (status, body) = scrape(&server, token).await;
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("\"metrics_token\""), "{body}");
        assert!(body.contains("--metrics-token"), "{body}");
        assert!(!body.contains("outsourced_jobs"), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_happened() {
    let sql = SqlBackend::open(test_config("sqlite::memory:"))
        .await
        .expect("open");
    let config = ServerConfig {
        metrics_token: Some("s3cret".into()),
        ..ServerConfig::default()
    };
    let server = RunningServer::start(sql, config).await;
    let admin = Actor::Admin("root".into());
    let queue = server.sql.create_queue(&admin, "m", QueueLimit::default());
    queue.await.expect("a queue");
    let (shop, shop_credentials) = server.client(Role::Producer, "shop").await;
    let (worker, _) = server.client(Role::Worker, "w1").await;
    server.client(Role::Worker, "w2").await;
    let (root, _) = server.client(Role::Admin, "root").await;
    RunningServer::open_queue(&server.directory(), "m").await;
    let by = Actor::Producer("shop".into());
    for class in ["A", "A", "A", "A", "A", "B", "B"] {
        let job = NewJob::new(class, json!([])).queue("m");
        shop.enqueue(&by, job).await.expect("enqueue");
    }
    let me = WorkerInstance::new("w1", "i");
    let jobs = worker
        .reserve(&me, ReserveOptions::up_to(10).queues(["m"]))
        .await;
    let jobs = jobs.expect("reserve");
    assert_eq!(jobs.len(), 7);
    let leases: Vec<outsourced_core::Completion> =
        jobs[..4].iter().map(|r| r.lease.to_ref().into()).collect();
    worker.complete_batch(&me, &leases).await.expect("complete");
    fail(&worker, &me, &jobs[4], RetryPlan::Backoff).await;
    fail(&worker, &me, &jobs[5], RetryPlan::Never).await;
    worker
        .release(&me, &jobs[6].lease.to_ref())
        .await
        .expect("release");
    Arc::clone(&root)
        .retry(&admin, jobs[5].job.id)
        .await
        .expect("retry");
    // A request with a wrong signature.
    let url = format!("{}/v1/jobs", server.url);
    let bad = Signed::new(Method::GET, &url, &shop_credentials.consumer_key, None).sign("wrong");
    assert_eq!(bad.send().await.status(), 401);

    assert_eq!(scrape(&server, None).await.0, 401, "the token is required");
    let refused = reqwest::get(server.url.clone() + "/metrics")
        .await
        .expect("an answer");
    let scheme = refused.headers().get("www-authenticate").cloned();
    let scheme = scheme.as_ref().and_then(|v| v.to_str().ok());
    assert_eq!(scheme, Some("Bearer realm=\"outsourced metrics\""));
    assert_eq!(scrape(&server, Some("nope")).await.0, 401);
    let (status, text) = scrape(&server, Some("s3cret")).await;
    assert_eq!(status, 200);
    let (a, b) = (
        [("queue", "m"), ("class", "A")],
        [("queue", "m"), ("class", "B")],
    );
    assert_eq!(sample(&text, "outsourced_jobs_enqueued_total", &a), 5.0);
    assert_eq!(sample(&text, "outsourced_jobs_enqueued_total", &b), 2.0);
    assert_eq!(
        sample(&text, "outsourced_jobs_started_total", &[("queue", "m")]),
        7.0
    );
    let ended = |class, outcome| {
        let labels = [("queue", "m"), ("class", class), ("outcome", outcome)];
        sample(&text, "outsourced_jobs_ended_total", &labels)
    };
    assert_eq!(ended("A", "completed"), 4.0);
    assert_eq!(ended("A", "retry_scheduled"), 1.0);
    assert_eq!(ended("B", "failed"), 1.0);
    assert_eq!(ended("B", "released"), 1.0);
    assert_eq!(sample(&text, "outsourced_jobs_retried_total", &b), 1.0);
    assert_eq!(sample(&text, "outsourced_job_run_seconds_count", &a), 5.0);
    assert_eq!(
        sample(
            &text,
            "outsourced_job_wait_seconds_count",
            &[("queue", "m")]
        ),
        7.0
    );
    let depth = |state| {
        sample(
            &text,
            "outsourced_queue_jobs",
            &[("queue", "m"), ("state", state)],
        )
    };
    assert_eq!(
        (depth("succeeded"), depth("retrying"), depth("available")),
        (4.0, 1.0, 2.0)
    );
    let reserves = [
        ("route", "/outsourced/v1/reserve"),
        ("method", "POST"),
        ("status", "200"),
    ];
    assert_eq!(
        sample(&text, "outsourced_http_requests_total", &reserves),
        1.0
    );
    let refused = [("reason", "invalid_signature")];
    assert_eq!(
        sample(&text, "outsourced_auth_failures_total", &refused),
        1.0
    );
    // The three scrapes above without the right token.
    let scrapes = [("reason", "metrics_token")];
    assert_eq!(
        sample(&text, "outsourced_auth_failures_total", &scrapes),
        3.0
    );
}

/// A limited queue's limits are gauges, and a reserve that found it full is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_limits_are_gauges_and_held_back_reserves_are_counted() {
    let sql = SqlBackend::open(test_config("sqlite::memory:"))
        .await
        .expect("open");
    let server = RunningServer::start(sql, tokened()).await;
    let admin = Actor::Admin("root".into());
    for name in ["slow", "keyed"] {
        let queue = server.sql.create_queue(&admin, name, QueueLimit::default());
        queue.await.expect("a queue");
    }
    let limits = outsourced_core::QueueUpdate {
        max_running: Some(Some(1)),
        rate: Some(Some("60/1m".parse().expect("a rate"))),
        ..Default::default()
    };
    let set = server.sql.update_queue(&admin, "slow", limits).await;
    set.expect("set the limits");
    let per_key = outsourced_core::QueueUpdate {
        rate_per_key: Some(Some("1/1m".parse().expect("a rate"))),
        ..Default::default()
    };
    let set = server.sql.update_queue(&admin, "keyed", per_key).await;
    set.expect("set the rate per key");
    let (worker, _) = server.client(Role::Worker, "w1").await;
    server.client(Role::Worker, "w2").await;
    server.client(Role::Producer, "shop").await;
    RunningServer::open_queue(&server.directory(), "slow").await;
    RunningServer::open_queue(&server.directory(), "keyed").await;
    let by = Actor::Producer("shop".into());
    for queue in ["slow", "keyed"] {
        for _ in 0..2 {
            let job = NewJob::new("Call", json!([]))
                .queue(queue)
                .concurrency_key("acme");
            server.sql.enqueue(&by, job).await.expect("enqueue");
        }
    }
    let me = WorkerInstance::new("w1", "i");
    for queue in ["slow", "keyed"] {
        for expected in [1, 0, 0] {
            let got = worker.reserve(&me, ReserveOptions::up_to(10).queues([queue]));
            assert_eq!(got.await.expect("reserve").len(), expected, "{queue}");
        }
    }
    let (status, text) = scrape(&server, Some(TOKEN)).await;
    assert_eq!(status, 200);
    let limit = |name| {
        let labels = [("queue", "slow"), ("limit", name)];
        sample(&text, "outsourced_queue_run_limit", &labels)
    };
    assert_eq!(
        (limit("max_running"), limit("rate_interval_ms")),
        (1.0, 1000.0)
    );
    let labels = [("queue", "keyed"), ("limit", "key_rate_interval_ms")];
    let key_rate = sample(&text, "outsourced_queue_run_limit", &labels);
    assert_eq!(key_rate, 60_000.0);
    for queue in ["slow", "keyed"] {
        let labels = [("queue", queue)];
        let held = sample(&text, "outsourced_reserves_held_back_total", &labels);
        assert_eq!(held, 2.0, "{queue}: {text}");
    }
}

/// What a recording observer heard: (kind, class, outcome) per event.
#[derive(Debug, Default)]
struct Heard(std::sync::Mutex<Vec<String>>);

impl outsourced_core::Observer for Heard {
    fn observe(&self, event: outsourced_core::JobEvent<'_>) {
        use outsourced_core::JobEvent;
        let said = match event {
            JobEvent::Enqueued { class, .. } => format!("enqueued {class}"),
            JobEvent::Started { class, .. } => format!("started {class}"),
            JobEvent::Ended { class, outcome, .. } => format!("ended {class} {outcome:?}"),
            JobEvent::Retried { class, .. } => format!("retried {class}"),
            JobEvent::Duplicate { class, .. } => format!("duplicate {class}"),
            JobEvent::HeldBack { queue } => format!("held back {queue}"),
        };
        self.0.lock().expect("not poisoned").push(said);
    }
}

impl Heard {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().expect("not poisoned"))
    }
}

/// The backend tells its observer of what committed, once each, and of nothing refused or
/// rolled back: a refused enqueue, a repeated idempotent enqueue, a stale report; a duplicate
/// of a unique key is told as such.
#[tokio::test]
async fn the_observer_hears_what_committed_and_nothing_else() {
    use outsourced_backend_sql::idempotency::{Answer, Request};
    let clock = Arc::new(outsourced_core::TestClock::new());
    let sql = SqlBackend::open_with_clock(test_config("sqlite::memory:"), clock.clone());
    let sql = sql.await.expect("open");
    let heard = Arc::new(Heard::default());
    sql.set_observer(heard.clone());
    let admin = Actor::Admin("root".into());
    let queue = sql.create_queue(&admin, "one", QueueLimit::Max(1));
    queue.await.expect("a queue");
    let job = |class: &str| NewJob::new(class, json!([])).queue("one");
    sql.enqueue(&admin, job("A")).await.expect("stored");
    let full = sql.enqueue_batch(&admin, vec![job("B")]).await;
    assert!(full.is_err(), "the queue holds one job");
    assert_eq!(
        heard.take(),
        ["enqueued A"],
        "a refused enqueue tells nothing"
    );

    let me = WorkerInstance::new("w", "i");
    let reserved = sql.reserve(&me, ReserveOptions::up_to(5)).await;
    let reserved = reserved.expect("reserve");
    assert_eq!(heard.take(), ["started A"]);
    clock.advance(std::time::Duration::from_secs(24 * 3600));
    let opts = outsourced_core::ReclaimOptions::default();
    assert_eq!(sql.reclaim_expired(&admin, opts).await.expect("reclaim"), 1);
    assert_eq!(heard.take(), ["ended A Reclaimed"]);
    let stale = sql.release(&me, &reserved[0].lease.to_ref()).await;
    assert!(stale.is_err(), "the lease was reclaimed");
    assert!(heard.take().is_empty(), "a stale report tells nothing");

    let id = reserved[0].job.id;
    sql.cancel(&admin, id).await.expect("cancel");
    let enqueue_once = || {
        let request = Request {
            principal: "root",
            key: "k1",
            fingerprint: "f",
        };
        let answer = |_: &[(outsourced_core::JobRecord, bool)]| Answer {
            status: 201,
            body: String::new(),
        };
        sql.enqueue_idempotent(&admin, request, vec![job("C")], answer, None)
    };
    enqueue_once().await.expect("first");
    enqueue_once().await.expect("the same answer again");
    assert_eq!(
        heard.take(),
        ["enqueued C"],
        "a repeated request tells nothing"
    );

    let unique = || {
        let job = NewJob::new("D", json!([])).queue("two");
        job.unique(outsourced_core::Unique::key("d-1"))
    };
    let two = sql.create_queue(&admin, "two", QueueLimit::Unlimited);
    two.await.expect("a queue");
    let first = sql.enqueue(&admin, unique()).await.expect("stored");
    let again = sql.enqueue(&admin, unique()).await.expect("the holder");
    assert_eq!(first.id, again.id);
    assert_eq!(heard.take(), ["enqueued D", "duplicate D"]);
}

/// What another process did (a CLI's enqueues, a worker next to the database) reaches the
/// server's metrics through the database's tallies once that process flushed them; states
/// without jobs read 0; each queue's limit and the live workers that reserve from it are
/// gauges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_every_process_did() {
    let dir = tempfile::tempdir().expect("a directory");
    let url = format!("sqlite://{}", dir.path().join("jobs.db").display());
    let served = SqlBackend::open(test_config(&url)).await.expect("open");
    let server = RunningServer::start(served, tokened()).await;
    // Another process on the same database: the CLI, or a worker next to it.
    let other = SqlBackend::open(test_config(&url)).await.expect("open");
    let admin = Actor::Admin("root".into());
    let created = other.create_queue(&admin, "q", QueueLimit::Max(50)).await;
    created.expect("a queue");
    let by = Actor::Producer("cli".into());
    for i in 0..3 {
        let job = NewJob::new("Work", json!([i])).queue("q").max_attempts(1);
        other.enqueue(&by, job).await.expect("enqueue");
    }
    let me = WorkerInstance::new("w1", "next-to-the-db");
    let leased = other.reserve(&me, ReserveOptions::up_to(3).queues(["q"]));
    let leased = leased.await.expect("reserve");
    assert_eq!(leased.len(), 3);
    for job in &leased[..2] {
        let done = other.complete(&me, &job.lease.to_ref()).await;
        done.expect("complete");
    }
    let failure = Failure {
        error: ErrorInfo::new("no"),
        retry: RetryPlan::Never,
    };
    let failed = other.fail(&me, &leased[2].lease.to_ref(), failure).await;
    assert_eq!(failed.expect("fail"), outsourced_core::JobState::Failed);
    other.flush_tallies().await.expect("add the tallies");

    let (status, text) = scrape(&server, Some(TOKEN)).await;
    assert_eq!(status, 200);
    let q = [("queue", "q")];
    let global = |name: &str| sample(&text, name, &q);
    assert_eq!(global("outsourced_queue_enqueued_total"), 3.0, "{text}");
    assert_eq!(global("outsourced_queue_started_total"), 3.0);
    let ended = |outcome| {
        let labels = [("queue", "q"), ("outcome", outcome)];
        sample(&text, "outsourced_queue_ended_total", &labels)
    };
    assert_eq!((ended("succeeded"), ended("failed")), (2.0, 1.0));
    // The server's own counters heard of none of it: it happened in another process.
    assert_eq!(global("outsourced_jobs_enqueued_total"), 0.0);
    assert_eq!(global("outsourced_queue_limit"), 50.0);
    assert_eq!(
        global("outsourced_queue_workers"),
        1.0,
        "w1 reserved from q"
    );
    assert!(
        text.contains(r#"outsourced_queue_jobs{queue="q",state="cancelled"} 0"#),
        "states without jobs read 0: {text}"
    );
    let state = |name| {
        let labels = [("queue", "q"), ("state", name)];
        sample(&text, "outsourced_queue_jobs", &labels)
    };
    assert_eq!((state("succeeded"), state("failed")), (2.0, 1.0));
    // A second scrape after more work counts on from where it was.
    let job = NewJob::new("Work", json!([9])).queue("q");
    other.enqueue(&by, job).await.expect("enqueue");
    other.flush_tallies().await.expect("add the tallies");
    let (_, text) = scrape(&server, Some(TOKEN)).await;
    assert_eq!(sample(&text, "outsourced_queue_enqueued_total", &q), 4.0);
}
