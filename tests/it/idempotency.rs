//! `Idempotency-Key` on enqueues: a request sent again gets its first answer and stores
//! nothing; the key belongs to its caller; one reused with another body is 422; keyed
//! requests that share a group commit are each stored once.

use outsourced_backend_sql::idempotency::{Answer, Idempotent, Request};
use outsourced_backend_sql::{Role, SqlBackend, SqlConfig};
use outsourced_core::{
    Actor, Backend, BackendExt, CountFilter, Error, JobRecord, NewJob, QueueLimit, ReserveOptions,
    WorkerInstance, by_state,
};
use outsourced_server::ServerConfig;
use reqwest::Method;
use serde_json::{Value, json};

use crate::http::RunningServer;
use crate::signing::Signed;
use crate::support::{on_every_database, test_config};

/// A producer's credentials.
struct Producer {
    key: String,
    secret: String,
}

async fn producer(server: &RunningServer, name: &str) -> Producer {
    let (_, credentials) = server.client(Role::Producer, name).await;
    server
        .directory()
        .grant(Role::Producer, name, "mail")
        .await
        .expect("grant");
    Producer {
        key: credentials.consumer_key,
        secret: credentials.consumer_secret,
    }
}

/// Sends `body` to `path` signed as `who`, with `key`; answers the status and the body.
async fn send(
    server: &RunningServer,
    who: &Producer,
    path: &str,
    body: Value,
    key: &str,
) -> (u16, Value) {
    let url = format!("{}/v1/{path}", server.url);
    let mut request = Signed::new(Method::POST, &url, &who.key, Some(body)).sign(&who.secret);
    request.idempotency_key = Some(key.to_owned());
    let response = request.send().await;
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

async fn stored(server: &RunningServer) -> u64 {
    let admin = Actor::Admin("root".into());
    let counts = server.sql.counts(&admin, CountFilter::default()).await;
    by_state(&counts.expect("counts")).total()
}

#[tokio::test]
async fn an_enqueue_sent_again_with_its_key_is_answered_once_and_stored_once() {
    let sql = SqlBackend::open(test_config("sqlite::memory:"))
        .await
        .expect("open");
    let server = RunningServer::start(sql, ServerConfig::default()).await;
    let admin = Actor::Admin("root".into());
    let queue = server
        .sql
        .create_queue(&admin, "mail", QueueLimit::Max(100));
    queue.await.expect("a queue");
    let (shop, other) = (
        producer(&server, "shop").await,
        producer(&server, "other").await,
    );
    let job = json!({"class": "Send", "args": [1], "queue": "mail"});

    let first = send(&server, &shop, "jobs", job.clone(), "k-1").await;
    assert_eq!(first.0, 201, "{first:?}");
    let again = send(&server, &shop, "jobs", job.clone(), "k-1").await;
    assert_eq!(again, first, "the first answer, again");
    assert_eq!(stored(&server).await, 1);

    let changed = json!({"class": "Send", "args": [2], "queue": "mail"});
    let reused = send(&server, &shop, "jobs", changed, "k-1").await;
    assert_eq!(
        (reused.0, reused.1["code"].clone()),
        (422, json!("idempotency_key_reused"))
    );
    // Another caller's key of the same name is its own.
    let theirs = send(&server, &other, "jobs", job.clone(), "k-1").await;
    assert_eq!(theirs.0, 201);
    assert_ne!(theirs.1["id"], first.1["id"]);
    assert_eq!(stored(&server).await, 2);

    let batch = json!([job.clone(), job]);
    let first = send(&server, &shop, "jobs/batch", batch.clone(), "b-1").await;
    assert_eq!(first.0, 201);
    assert_eq!(
        send(&server, &shop, "jobs/batch", batch, "b-1").await,
        first
    );
    assert_eq!(stored(&server).await, 4);

    let bad = send(
        &server,
        &shop,
        "jobs",
        json!({"class": "Send", "queue": "mail"}),
        &"k".repeat(256),
    )
    .await;
    assert_eq!(
        (bad.0, bad.1["code"].clone()),
        (400, json!("invalid_input"))
    );
}

on_every_database!(keyed_enqueues_sharing_a_group_commit_store_each_request_once);

/// Keyed enqueues ride the group commit: 32 sends of one request at once, through two
/// backends on one database (two server processes, each with its group commit), store it once
/// and all get the first answer; another body under that key is a mismatch; a request refused
/// by its full queue keeps no key (sent again once there is room, it is stored); plain
/// enqueues in the same groups are untouched.
async fn keyed_enqueues_sharing_a_group_commit_store_each_request_once(config: SqlConfig) {
    let sql = SqlBackend::open(config.clone()).await.expect("open");
    let beside = SqlBackend::open(config)
        .await
        .expect("open a second backend");
    let admin = Actor::Admin("root".into());
    let queue = sql.create_queue(&admin, "mail", QueueLimit::Max(3));
    queue.await.expect("a queue");
    let shop = Actor::Producer("shop".into());
    let send_through = |sql: &SqlBackend, key: &'static str, fingerprint: &'static str| {
        let (sql, shop) = (sql.clone(), shop.clone());
        tokio::spawn(async move {
            let request = Request {
                principal: "shop",
                key,
                fingerprint,
            };
            let job = NewJob::new("Send", json!([fingerprint])).queue("mail");
            let answer = |placed: &[(JobRecord, bool)]| Answer {
                status: 201,
                body: placed[0].0.id.0.to_string(),
            };
            sql.enqueue_idempotent(&shop, request, vec![job], answer, None)
                .await
        })
    };
    let send = |key, fingerprint| send_through(&sql, key, fingerprint);
    let plain = |n: i64| {
        let (sql, shop) = (sql.clone(), shop.clone());
        tokio::spawn(async move {
            let job = NewJob::new("Plain", json!([n])).queue("mail");
            sql.enqueue(&shop, job).await.map(|job| job.id)
        })
    };
    let sends: Vec<_> = (0..32)
        .map(|i| send_through([&sql, &beside][i % 2], "k-1", "a"))
        .collect();
    let plain_one = plain(1);
    let mut answers = Vec::new();
    for sent in sends {
        answers.push(sent.await.expect("join").expect("an answer"));
    }
    plain_one
        .await
        .expect("join")
        .expect("a plain enqueue beside them");
    let other = send("k-1", "other body").await.expect("join");
    assert_eq!(other.expect("an answer"), Idempotent::Mismatch);
    let first = answers[0].clone();
    assert!(
        matches!(&first, Idempotent::Answer(a) if a.status == 201),
        "{first:?}"
    );
    assert!(answers.iter().all(|a| *a == first), "{answers:?}");
    assert_eq!(
        jobs(&sql, &admin).await,
        2,
        "the keyed request once, the plain one"
    );

    // The queue holds three: one more fits, the next keyed request is refused and keeps no key.
    plain(2).await.expect("join").expect("the third job");
    let refused = send("k-2", "b").await.expect("join");
    assert!(
        matches!(refused, Err(Error::QueueFull { .. })),
        "{refused:?}"
    );
    let me = WorkerInstance::new("w", "i");
    let running = sql.reserve(&me, ReserveOptions::up_to(1)).await;
    let lease = running.expect("reserve")[0].lease.to_ref();
    sql.complete(&me, &lease).await.expect("complete");
    let again = send("k-2", "b").await.expect("join").expect("stored now");
    assert!(
        matches!(&again, Idempotent::Answer(a) if a.status == 201),
        "{again:?}"
    );
    assert_eq!(jobs(&sql, &admin).await, 4);
}

/// Every job stored, whatever its state.
async fn jobs(sql: &SqlBackend, admin: &Actor) -> u64 {
    let counts = sql.counts(admin, CountFilter::default()).await;
    by_state(&counts.expect("counts")).total()
}
