//! `Idempotency-Key` on enqueues: a request sent again gets its first answer and stores
//! nothing; the key belongs to its caller; one reused with another body is 422.

use outsourced_backend_sql::{Role, SqlBackend};
use outsourced_core::{Actor, Backend, CountFilter, QueueLimit, by_state};
use outsourced_server::ServerConfig;
use reqwest::Method;
use serde_json::{Value, json};

use crate::http::RunningServer;
use crate::signing::Signed;
use crate::support::test_config;

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
