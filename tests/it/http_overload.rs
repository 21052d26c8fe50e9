//! An overloaded server turns requests away before doing anything (503 `overloaded` with
//! `Retry-After`): a signed request it turned away was not even checked, so the very same
//! request is accepted once there is room, and long polls have room of their own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use outsourced_backend_http::HttpBackend;
use outsourced_backend_sql::{Credentials, Role, SqlBackend};
use outsourced_core::{Actor, Backend, JobRecord, NewJob, QueueLimit};
use outsourced_server::ServerConfig;
use reqwest::Method;
use serde_json::json;

use crate::http::RunningServer;
use crate::signing::{Signed, status_and_code};
use crate::support::test_config;

/// A request kept in flight to fill the server's places.
type Holder = tokio::task::JoinHandle<reqwest::Result<reqwest::Response>>;

/// Starts a holder with `start`, then sends fresh signings of `probe()` one after another until
/// one is turned away, and returns it, unsent again. A holder that came while a probe was in
/// flight was itself turned away (the probes and the holder race for the one place): it is
/// started again, so the outcome does not depend on which came first.
async fn until_turned_away<T>(
    start: impl Fn() -> (T, Holder),
    probe: impl Fn() -> Signed,
) -> (T, Holder, Signed) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut kept, mut holder) = start();
    loop {
        let signed = probe();
        let answer = signed.send().await;
        if answer.status() == 503 {
            let retry = answer.headers().get("retry-after").cloned();
            assert_eq!(retry.as_ref().map(|v| v.as_bytes()), Some(&b"1"[..]));
            assert_eq!(status_and_code(answer).await.1, "overloaded");
            return (kept, holder, signed);
        }
        if holder.is_finished() {
            let early = holder.await.expect("the holder's task").expect("an answer");
            assert_eq!(
                early.status(),
                503,
                "the holder ended early, not turned away"
            );
            (kept, holder) = start();
        }
        assert!(Instant::now() < deadline, "never turned away");
        tokio::task::yield_now().await;
    }
}

/// A server with one place for requests and one for reserves, a queue `mail` that worker `w1`
/// is hired for and producer `shop` may fill, and a job in it an hour from now.
struct Crowded {
    server: RunningServer,
    producer: Arc<HttpBackend>,
    shop: Credentials,
    worker: Credentials,
    job: JobRecord,
}

async fn crowded() -> Crowded {
    let config = ServerConfig {
        max_requests: 1,
        max_reserves: 1,
        metrics_token: Some("t".into()),
        ..ServerConfig::default()
    };
    let sql = SqlBackend::open(test_config("sqlite::memory:"))
        .await
        .expect("open");
    let server = RunningServer::start(sql, config).await;
    let (producer, shop) = server.client(Role::Producer, "shop").await;
    let (_, worker) = server.client(Role::Worker, "w1").await;
    let admin = Actor::Admin("root".into());
    server
        .sql
        .create_queue(&admin, "mail", QueueLimit::default())
        .await
        .expect("a queue");
    let directory = server.directory();
    directory
        .grant(Role::Worker, "w1", "mail")
        .await
        .expect("hire");
    directory
        .grant(Role::Producer, "shop", "mail")
        .await
        .expect("grant");
    let in_an_hour = chrono::Utc::now() + chrono::Duration::hours(1);
    let job = NewJob::new("Send", json!([]))
        .queue("mail")
        .run_at(in_an_hour);
    let job = producer
        .enqueue(&Actor::Producer("shop".into()), job)
        .await
        .expect("a job");
    Crowded {
        server,
        producer,
        shop,
        worker,
        job,
    }
}

impl Crowded {
    fn url(&self, path: &str) -> String {
        format!("{}/v1/{path}", self.server.url)
    }

    /// An upload whose bytes have not all come: it holds the one place for requests until the
    /// sender is dropped.
    fn upload(
        &self,
    ) -> (
        tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
        Holder,
    ) {
        let (more, body) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
        more.try_send(Ok(b"the first bytes".to_vec()))
            .expect("room for a chunk");
        let path = format!("jobs/{}/attachment", self.job.id);
        let put = Signed::new(Method::PUT, &self.url(&path), &self.shop.consumer_key, None)
            .sign(&self.shop.consumer_secret);
        let stream = futures::stream::unfold(body, |mut body| async {
            body.recv().await.map(|c| (c, body))
        });
        let upload = reqwest::Client::new()
            .put(put.url.clone())
            .header(reqwest::header::AUTHORIZATION, put.authorization())
            .body(reqwest::Body::wrap_stream(stream));
        (more, tokio::spawn(upload.send()))
    }

    /// A signed listing of the queues, as the producer.
    fn list(&self) -> Signed {
        Signed::new(
            Method::GET,
            &self.url("queues"),
            &self.shop.consumer_key,
            None,
        )
        .sign(&self.shop.consumer_secret)
    }

    /// How many requests the server has answered 503 so far, by its metrics.
    async fn turned_away(&self) -> f64 {
        let url = self.server.url.clone() + "/metrics";
        let scrape = reqwest::Client::new().get(url).bearer_auth("t").send();
        let answer = scrape.await.expect("metrics");
        assert_eq!(answer.status(), 200, "the metrics");
        let text = answer.text().await;
        let text = text.expect("metrics' text");
        text.lines()
            .filter(|line| line.starts_with("outsourced_http_requests_total{"))
            .filter(|line| line.contains("status=\"503\""))
            .filter_map(|line| line.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_server_turns_requests_away_before_doing_anything() {
    let crowded = crowded().await;
    let Crowded {
        producer, worker, ..
    } = &crowded;
    let url = |path: &str| crowded.url(path);
    let upload = || crowded.upload();
    let list = || crowded.list();
    let (more, upload, turned_away) = until_turned_away(upload, list).await;
    drop(more);
    let uploaded = upload.await.expect("the upload's task").expect("an answer");
    assert_eq!(uploaded.status(), 201);
    // Turned away before its signature was checked: its nonce was never used.
    assert_eq!(
        turned_away.send().await.status(),
        200,
        "the same request, now let in"
    );
    // A long poll holds the one place for reserves, and leaves requests alone.
    let reserve = |wait: u64| {
        let body = json!({"limit": 1, "queues": ["mail"], "wait_ms": wait, "instance": "i1"});
        Signed::new(
            Method::POST,
            &url("reserve"),
            &worker.consumer_key,
            Some(body),
        )
        .sign(&worker.consumer_secret)
    };
    let poll = || {
        let poll = reserve(20_000);
        ((), tokio::spawn(async move { Ok(poll.send().await) }))
    };
    let ((), polling, _) = until_turned_away(poll, || reserve(0)).await;
    assert_eq!(
        list().send().await.status(),
        200,
        "requests have room of their own"
    );
    producer
        .enqueue(
            &Actor::Producer("shop".into()),
            NewJob::new("Send", json!([])).queue("mail"),
        )
        .await
        .expect("a job for the long poll");
    let polled = polling.await.expect("the poll's task").expect("an answer");
    assert_eq!(polled.status(), 200);
}

/// A client turned away keeps trying for seconds, not for five turns: a producer's enqueue
/// that meets a crowded server waits for room rather than failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_turned_away_tries_again_until_there_is_room() {
    let crowded = crowded().await;
    let (more, upload, _) = until_turned_away(|| crowded.upload(), || crowded.list()).await;
    let before = crowded.turned_away().await;
    let producer = crowded.producer.clone();
    let enqueue = tokio::spawn(async move {
        let job = NewJob::new("Send", json!([])).queue("mail");
        producer.enqueue(&Actor::Producer("shop".into()), job).await
    });
    // Turned away more often than a client that gave up after five tries would have been.
    let deadline = Instant::now() + Duration::from_secs(30);
    while crowded.turned_away().await < before + 6.0 {
        assert!(
            !enqueue.is_finished(),
            "the enqueue gave up while turned away"
        );
        assert!(
            Instant::now() < deadline,
            "the enqueue was never turned away"
        );
        tokio::task::yield_now().await;
    }
    drop(more);
    let uploaded = upload.await.expect("the upload's task").expect("an answer");
    assert_eq!(uploaded.status(), 201);
    let job = enqueue.await.expect("the enqueue's task");
    let job = job.expect("the enqueue waited for room");
    let shop = Actor::Producer("shop".into());
    let listed = crowded.producer.job(&shop, job.id).await;
    let listed = listed.expect("the job is kept");
    assert_eq!(listed.queue, "mail");
}

/// A stopping server ends its long polls with no job: a job leased as it exits could not be
/// reported to it, and would wait out its lease before running again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_server_ends_its_long_polls_empty() {
    let crowded = crowded().await;
    let Crowded {
        producer, worker, ..
    } = &crowded;
    let reserve = |wait: u64| {
        let body = json!({"limit": 1, "queues": ["mail"], "wait_ms": wait, "instance": "i1"});
        let url = crowded.url("reserve");
        Signed::new(Method::POST, &url, &worker.consumer_key, Some(body))
            .sign(&worker.consumer_secret)
    };
    let poll = || {
        let poll = reserve(20_000);
        ((), tokio::spawn(async move { Ok(poll.send().await) }))
    };
    // Turned away: the long poll holds the one place for reserves, so it is under way.
    let ((), polling, _) = until_turned_away(poll, || reserve(0)).await;
    crowded.server.state.drain();
    let job = NewJob::new("Send", json!([])).queue("mail");
    let shop = Actor::Producer("shop".into());
    let due = producer.enqueue(&shop, job).await.expect("a job due now");
    let polled = polling.await.expect("the poll's task").expect("an answer");
    assert_eq!(polled.status(), 200);
    let answer: serde_json::Value = polled.json().await.expect("a JSON answer");
    assert_eq!(
        answer["jobs"],
        json!([]),
        "nothing handed out while stopping"
    );
    let state = crowded
        .server
        .sql
        .job(&shop, due.id)
        .await
        .expect("the job");
    assert_eq!(state.state, outsourced_core::JobState::Available);
}
