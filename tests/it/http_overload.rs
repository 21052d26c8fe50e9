//! An overloaded server turns requests away before doing anything (503 `overloaded` with
//! `Retry-After`): a signed request it turned away was not even checked, so the very same
//! request is accepted once there is room, and long polls have room of their own.

use std::time::{Duration, Instant};

use outsourced_backend_sql::{Role, SqlBackend};
use outsourced_core::{Actor, Backend, NewJob, QueueLimit};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overloaded_server_turns_requests_away_before_doing_anything() {
    let config = ServerConfig {
        max_requests: 1,
        max_reserves: 1,
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
    let url = |path: &str| format!("{}/v1/{path}", server.url);
    // An upload whose bytes have not all come holds the one place for requests.
    let upload = || {
        let (more, body) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(1);
        more.try_send(Ok(b"the first bytes".to_vec()))
            .expect("room for a chunk");
        let put = Signed::new(
            Method::PUT,
            &url(&format!("jobs/{}/attachment", job.id)),
            &shop.consumer_key,
            None,
        )
        .sign(&shop.consumer_secret);
        let stream = futures::stream::unfold(body, |mut body| async {
            body.recv().await.map(|c| (c, body))
        });
        let upload = reqwest::Client::new()
            .put(put.url.clone())
            .header(reqwest::header::AUTHORIZATION, put.authorization())
            .body(reqwest::Body::wrap_stream(stream));
        (more, tokio::spawn(upload.send()))
    };
    let list = || {
        Signed::new(Method::GET, &url("queues"), &shop.consumer_key, None)
            .sign(&shop.consumer_secret)
    };
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
