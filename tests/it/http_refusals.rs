//! Every bad request is refused with its status and code, and changes nothing: bad or replayed
//! signatures, stale timestamps, tampered parts, malformed and oversized bodies, full queues.

use std::time::Duration;

use outsourced_backend_sql::{Role, SqlBackend};
use outsourced_core::{
    Actor, Backend, BackendExt, CountFilter, JobState, NewJob, QueueLimit, by_state,
};
use outsourced_server::ServerConfig;
use reqwest::Method;
use serde_json::{Value, json};

use crate::http::RunningServer;
use crate::signing::{Signed, status_and_code};
use crate::support::test_config;

struct Setup {
    server: RunningServer,
    key: String,
    secret: String,
}

impl Setup {
    async fn new(config: ServerConfig) -> Setup {
        let sql = SqlBackend::open(test_config("sqlite::memory:"))
            .await
            .expect("open");
        let server = RunningServer::start(sql, config).await;
        let (_, credentials) = server.client(Role::Producer, "shop").await;
        let admin = Actor::Admin("root".into());
        server
            .sql
            .create_queue(&admin, "mail", QueueLimit::Max(1))
            .await
            .expect("a queue");
        server
            .directory()
            .grant(Role::Producer, "shop", "mail")
            .await
            .expect("grant");
        Setup {
            server,
            key: credentials.consumer_key,
            secret: credentials.consumer_secret,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v1/{path}", self.server.url)
    }

    /// A signed enqueue of a job into `mail`.
    fn enqueue(&self) -> Signed {
        let body = json!({"class": "Send", "args": [1], "queue": "mail"});
        Signed::new(Method::POST, &self.url("jobs"), &self.key, Some(body)).sign(&self.secret)
    }

    async fn stored(&self) -> u64 {
        let groups = self
            .server
            .sql
            .counts(&Actor::Admin("root".into()), CountFilter::default())
            .await;
        by_state(&groups.expect("counts")).total()
    }

    /// Raises `mail`'s limit from one job to a hundred.
    async fn make_room(&self) {
        let room = outsourced_core::QueueUpdate {
            limit: Some(QueueLimit::Max(100)),
            ..outsourced_core::QueueUpdate::default()
        };
        let admin = Actor::Admin("root".into());
        let raised = self.server.sql.update_queue(&admin, "mail", room).await;
        raised.expect("room");
    }

    /// The credentials of worker w1, hired for `mail`.
    async fn hired_worker(&self) -> outsourced_backend_sql::Credentials {
        let (_, worker) = self.server.client(Role::Worker, "w1").await;
        let directory = self.server.directory();
        directory
            .grant(Role::Worker, "w1", "mail")
            .await
            .expect("hire");
        worker
    }

    /// A reserve with `body`, signed with `worker`'s credentials.
    fn reserve(&self, worker: &outsourced_backend_sql::Credentials, body: Value) -> Signed {
        let url = self.url("reserve");
        Signed::new(Method::POST, &url, &worker.consumer_key, Some(body))
            .sign(&worker.consumer_secret)
    }

    /// Sends `request`, expects `status` and `code`, and checks that nothing was stored.
    async fn refused(&self, request: &Signed, status: u16, code: &str) {
        let before = self.stored().await;
        let answer = status_and_code(request.send().await).await;
        assert_eq!(answer, (status, code.to_owned()), "{request:?}");
        assert_eq!(
            self.stored().await,
            before,
            "a refused request changed nothing"
        );
    }
}

#[tokio::test]
async fn bad_signatures_are_refused_before_anything_happens() {
    let s = Setup::new(ServerConfig::default()).await;
    // Unsigned.
    let unsigned = reqwest::Client::new()
        .post(s.url("jobs"))
        .json(&json!({"class": "X"}))
        .send()
        .await;
    let unsigned = unsigned.expect("an answer");
    let scheme = unsigned.headers().get("www-authenticate").cloned();
    assert_eq!(
        scheme.as_ref().and_then(|v| v.to_str().ok()),
        Some("OAuth realm=\"outsourced\""),
        "a 401 names the scheme it wants"
    );
    assert_eq!(status_and_code(unsigned).await, (401, "unsigned".into()));
    // A wrong secret, and an unknown key: the same answer.
    s.refused(
        &s.enqueue().sign("not the secret"),
        401,
        "invalid_signature",
    )
    .await;
    let mut stranger = s.enqueue();
    stranger.consumer_key = "nobody".into();
    s.refused(&stranger.sign("whatever"), 401, "invalid_signature")
        .await;
    // Each signed part tampered with after signing.
    let mut method = s.enqueue();
    method.method = Method::GET;
    s.refused(&method, 401, "invalid_signature").await;
    let mut path = s.enqueue();
    path.url = url::Url::parse(&s.url("jobs/batch")).expect("a URL");
    s.refused(&path, 401, "invalid_signature").await;
    let mut query = s.enqueue();
    query.url.set_query(Some("extra=1"));
    s.refused(&query, 401, "invalid_signature").await;
    let mut timestamp = s.enqueue();
    timestamp.timestamp -= 1;
    s.refused(&timestamp, 401, "invalid_signature").await;
    let mut nonce = s.enqueue();
    nonce.nonce.push('x');
    s.refused(&nonce, 401, "invalid_signature").await;
    let mut signature = s.enqueue();
    signature.signature = signature
        .signature
        .replace(|c: char| c.is_ascii_digit(), "A");
    s.refused(&signature, 401, "invalid_signature").await;
    let mut method_swapped = s.enqueue();
    method_swapped.signature_method = "HMAC-SHA256";
    s.refused(&method_swapped, 401, "invalid_signature").await;
    // PLAINTEXT is refused outright.
    let mut plaintext = s.enqueue();
    plaintext.signature_method = "PLAINTEXT";
    s.refused(&plaintext, 400, "invalid_oauth").await;
    // And the good request goes through.
    let ok = s.enqueue().send().await;
    assert_eq!(ok.status().as_u16(), 201);
}

#[tokio::test]
async fn replays_and_stale_timestamps_are_refused() {
    let s = Setup::new(ServerConfig::default()).await;
    let request = s.enqueue();
    assert_eq!(request.send().await.status().as_u16(), 201);
    // Byte for byte again: the nonce was used.
    let admin = Actor::Admin("root".into());
    s.server
        .sql
        .update_queue(
            &admin,
            "mail",
            outsourced_core::QueueUpdate {
                limit: Some(QueueLimit::Max(10)),
                ..outsourced_core::QueueUpdate::default()
            },
        )
        .await
        .expect("room");
    s.refused(&request, 401, "nonce_used").await;
    // The same nonce written differently (%61 is `a`) is the same nonce.
    let mut spelled = s.enqueue();
    spelled.nonce = "abc".into();
    let spelled = spelled.sign(&s.secret);
    assert_eq!(spelled.send().await.status().as_u16(), 201);
    let header = spelled
        .authorization()
        .replace("oauth_nonce=\"abc\"", "oauth_nonce=\"%61bc\"");
    let replay = reqwest::Client::new()
        .post(spelled.url.clone())
        .header("authorization", header)
        .header("content-type", "application/json")
        .body(spelled.body.clone().unwrap_or_default())
        .send()
        .await
        .expect("an answer");
    assert_eq!(status_and_code(replay).await, (401, "nonce_used".into()));
    // A bad signature does not burn the nonce it carries.
    let mut first = s.enqueue();
    first.nonce = "saved-for-later".into();
    let bad = first.clone().sign("wrong");
    s.refused(&bad, 401, "invalid_signature").await;
    assert_eq!(first.sign(&s.secret).send().await.status().as_u16(), 201);
    // Five minutes and a second away from the server's clock, either way.
    for skew in [-301, 301] {
        let mut old = s.enqueue();
        old.timestamp += skew;
        let old = old.sign(&s.secret);
        let response = old.send().await;
        assert!(
            response.headers().contains_key("date"),
            "the server's time, to correct skew"
        );
        assert_eq!(
            status_and_code(response).await,
            (401, "timestamp_refused".into())
        );
    }
    let mut within = s.enqueue();
    within.timestamp -= 299;
    assert_eq!(within.sign(&s.secret).send().await.status().as_u16(), 201);
}

/// An enqueue's nonce is recorded in the enqueue's own transaction, or after a refusal: a
/// request refused once (a full queue, a queue not granted yet, a bad job) is refused as a
/// replay when sent again, even once it would succeed, and no replay of a stored enqueue,
/// plain, keyed, unique or a batch, stores anything.
#[tokio::test]
async fn refused_enqueues_cannot_be_sent_again_once_they_would_succeed() {
    let s = Setup::new(ServerConfig::default()).await;
    let admin = Actor::Admin("root".into());
    assert_eq!(s.enqueue().send().await.status().as_u16(), 201);
    // Refused in the enqueue's transaction: the queue holds one job.
    let full = s.enqueue();
    s.refused(&full, 429, "queue_full").await;
    s.make_room().await;
    s.refused(&full, 401, "nonce_used").await;
    // Refused before it (a queue not granted): its nonce is recorded after the answer.
    let body = json!({"class": "Send", "args": [2], "queue": "news"});
    let news = Signed::new(Method::POST, &s.url("jobs"), &s.key, Some(body)).sign(&s.secret);
    s.refused(&news, 404, "unknown_queue").await;
    s.server
        .sql
        .create_queue(&admin, "news", QueueLimit::Max(100))
        .await
        .expect("a queue");
    s.server
        .directory()
        .grant(Role::Producer, "shop", "news")
        .await
        .expect("grant");
    s.refused(&news, 401, "nonce_used").await;
    // Stored, then sent again: a batch, a unique job (stored on its own), a keyed enqueue.
    let batch = json!([{"class": "A", "queue": "mail"}, {"class": "B", "queue": "mail"}]);
    let batch =
        Signed::new(Method::POST, &s.url("jobs/batch"), &s.key, Some(batch)).sign(&s.secret);
    let unique = json!({"class": "U", "queue": "mail", "unique": {"key": "u-1"}});
    let unique = Signed::new(Method::POST, &s.url("jobs"), &s.key, Some(unique)).sign(&s.secret);
    for stored in [&batch, &unique] {
        assert_eq!(stored.send().await.status().as_u16(), 201, "{stored:?}");
        s.refused(stored, 401, "nonce_used").await;
    }
    let keyed = |mut request: Signed| {
        request.idempotency_key = Some("k-1".into());
        request
    };
    let first = keyed(s.enqueue());
    assert_eq!(first.send().await.status().as_u16(), 201);
    s.refused(&first, 401, "nonce_used").await;
    // The same request signed afresh is the client's retry: the key answers it.
    let before = s.stored().await;
    assert_eq!(keyed(s.enqueue()).send().await.status().as_u16(), 201);
    assert_eq!(
        s.stored().await,
        before,
        "the key's first answer, nothing stored"
    );
}

/// A reserve's nonce is recorded before its handler runs: the same signed reserve sent again
/// is refused as a replay and leases nothing, with jobs ready for it; one that found nothing
/// is refused as well.
#[tokio::test]
async fn a_replayed_reserve_leases_nothing() {
    let s = Setup::new(ServerConfig::default()).await;
    let admin = Actor::Admin("root".into());
    let worker = s.hired_worker().await;
    let reserve = || s.reserve(&worker, json!({"instance": "i", "limit": 1}));
    let empty = reserve();
    assert_eq!(
        empty.send().await.status().as_u16(),
        200,
        "nothing to lease"
    );
    assert_eq!(
        status_and_code(empty.send().await).await,
        (401, "nonce_used".into())
    );
    assert_eq!(s.enqueue().send().await.status().as_u16(), 201);
    let first = reserve();
    let leased: serde_json::Value = first.send().await.json().await.expect("a list");
    assert_eq!(leased["jobs"].as_array().map(Vec::len), Some(1), "{leased}");
    s.make_room().await;
    assert_eq!(s.enqueue().send().await.status().as_u16(), 201);
    assert_eq!(
        status_and_code(first.send().await).await,
        (401, "nonce_used".into())
    );
    let counts = s.server.sql.counts(&admin, CountFilter::default()).await;
    let counts = by_state(&counts.expect("counts"));
    assert_eq!(
        (
            counts.get(JobState::Running),
            counts.get(JobState::Available)
        ),
        (1, 1),
        "the replay leased nothing"
    );
}

/// A reserve that names another worker than its credentials' (a config holding another
/// worker's keys) is refused with whose keys they are, and leases nothing; the same keys
/// naming their own worker, or none, lease as usual.
#[tokio::test]
async fn a_reserve_naming_another_worker_than_its_keys_leases_nothing() {
    let s = Setup::new(ServerConfig::default()).await;
    let admin = Actor::Admin("root".into());
    let worker = s.hired_worker().await;
    assert_eq!(s.enqueue().send().await.status().as_u16(), 201);
    let reserve = |body: serde_json::Value| s.reserve(&worker, body);
    let theirs = reserve(json!({"instance": "i", "limit": 1, "worker": "w2"}));
    let answer = theirs.send().await;
    assert_eq!(answer.status().as_u16(), 400);
    let body: serde_json::Value = answer.json().await.expect("an error");
    assert_eq!(body["code"], "invalid_input", "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("worker w1's") && message.contains("names worker \"w2\""),
        "{message}"
    );
    let counts = s.server.sql.counts(&admin, CountFilter::default()).await;
    let running = by_state(&counts.expect("counts")).get(JobState::Running);
    assert_eq!(running, 0, "the refused reserve leased nothing");
    s.make_room().await;
    assert_eq!(s.enqueue().send().await.status().as_u16(), 201);
    for body in [
        json!({"instance": "i", "limit": 1, "worker": "w1"}),
        json!({"instance": "i", "limit": 1}),
    ] {
        let leased: serde_json::Value = reserve(body).send().await.json().await.expect("a list");
        assert_eq!(leased["jobs"].as_array().map(Vec::len), Some(1), "{leased}");
    }
}

/// The body hash our client sends: SHA-256, base64url without padding.
fn sha256_b64(body: &[u8]) -> String {
    use base64::Engine;
    use sha2::Digest;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(body))
}

#[tokio::test]
async fn locked_clients_and_missing_body_hashes_are_refused() {
    let s = Setup::new(ServerConfig {
        require_body_hash: true,
        ..ServerConfig::default()
    })
    .await;
    // An ordinary OAuth client sends no body hash: refused when the server requires one.
    s.refused(&s.enqueue(), 401, "body_hash_required").await;
    // A body hash that does not match the body.
    let mut tampered = s.enqueue();
    tampered.url.set_query(Some("body_sha256=AAAA"));
    let tampered = tampered.sign(&s.secret);
    s.refused(&tampered, 401, "body_hash_mismatch").await;
    // A body changed by one byte after it was hashed and signed.
    let mut flipped = s.enqueue();
    let body = flipped.body.clone().unwrap_or_default();
    flipped
        .url
        .set_query(Some(&format!("body_sha256={}", sha256_b64(&body))));
    let mut flipped = flipped.sign(&s.secret);
    if let Some(body) = flipped.body.as_mut() {
        body[0] ^= 0x20;
    }
    s.refused(&flipped, 401, "body_hash_mismatch").await;
    s.server
        .directory()
        .set_locked(Role::Producer, "shop", true)
        .await
        .expect("lock");
    let mut locked = s.enqueue();
    let hash = sha256_b64(&locked.body.clone().unwrap_or_default());
    locked.url.set_query(Some(&format!("body_sha256={hash}")));
    s.refused(&locked.sign(&s.secret), 401, "locked").await;
}

#[tokio::test]
async fn malformed_and_oversized_bodies_are_refused() {
    let s = Setup::new(ServerConfig {
        body_limit: 64 * 1024,
        ..ServerConfig::default()
    })
    .await;
    let send = |body: Vec<u8>| {
        let mut request = Signed::new(Method::POST, &s.url("jobs"), &s.key, None);
        request.body = Some(body);
        request.sign(&s.secret)
    };
    s.refused(&send(b"{not json".to_vec()), 400, "invalid_input")
        .await;
    s.refused(
        &send(b"{\"class\": \"X\", \"surprise\": 1}".to_vec()),
        400,
        "invalid_input",
    )
    .await;
    let deep = format!(
        "{{\"class\": \"X\", \"args\": {}{}}}",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    s.refused(&send(deep.into_bytes()), 400, "invalid_input")
        .await;
    let huge = format!(
        "{{\"class\": \"X\", \"args\": \"{}\"}}",
        "a".repeat(100 * 1024)
    );
    s.refused(&send(huge.into_bytes()), 413, "too_large").await;
    let bad_backoff = json!({"class": "X", "queue": "mail", "backoff": "sometimes"}).to_string();
    s.refused(&send(bad_backoff.into_bytes()), 400, "invalid_input")
        .await;
    let bad_id = Signed::new(Method::GET, &s.url("jobs/abc"), &s.key, None).sign(&s.secret);
    s.refused(&bad_id, 400, "invalid_input").await;
    let header = r#"OAuth oauth_consumer_key="%zz", oauth_nonce="n", oauth_signature_method="HMAC-SHA1", oauth_timestamp="1", oauth_signature="x""#;
    let response = reqwest::Client::new()
        .get(s.url("queues"))
        .header("authorization", header)
        .send()
        .await;
    assert_eq!(
        status_and_code(response.expect("an answer")).await,
        (400, "invalid_oauth".into())
    );
}

#[tokio::test]
async fn a_full_queue_answers_429_with_retry_after() {
    let s = Setup::new(ServerConfig::default()).await;
    assert_eq!(s.enqueue().send().await.status().as_u16(), 201);
    let before = s.stored().await;
    let response = s.enqueue().send().await;
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    assert_eq!(status_and_code(response).await, (429, "queue_full".into()));
    assert_eq!(s.stored().await, before);
    // Through the client, the same refusal is the core's QueueFull.
    let producer = outsourced_backend_http::HttpBackend::new(
        outsourced_backend_http::HttpConfig::new(&s.server.url, &s.key, &s.secret),
    )
    .expect("a client");
    let refused = producer
        .enqueue(
            &Actor::Producer("shop".into()),
            NewJob::new("X", json!([])).queue("mail"),
        )
        .await;
    assert!(
        matches!(
            refused,
            Err(outsourced_core::Error::QueueFull { limit: 1, .. })
        ),
        "{refused:?}"
    );
    let queues = producer
        .queues(&Actor::Producer("shop".into()))
        .await
        .expect("queues");
    assert_eq!(
        queues.iter().map(|q| q.name.as_str()).collect::<Vec<_>>(),
        ["mail"],
        "only its own queues"
    );
    let _ = producer
        .queue(&Actor::Producer("shop".into()), "mail")
        .await
        .expect("its queue");
}

#[tokio::test]
async fn slow_clients_are_cut_off_after_the_header_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let config = ServerConfig {
        header_timeout: Duration::from_millis(500),
        ..ServerConfig::default()
    };
    let s = Setup::new(config).await;
    let addr = s
        .server
        .url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(b"GET /outsourced/v1/health HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    // Never finish the headers: the server must close the connection on its own. The outer
    // timeout only bounds a failing test.
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf)).await;
    assert!(
        read.is_ok(),
        "the server kept a slow client's connection open"
    );
}

#[tokio::test]
async fn the_openapi_document_is_served_without_a_signature() {
    let s = Setup::new(ServerConfig::default()).await;
    let response = reqwest::get(s.url("openapi.json"))
        .await
        .expect("an answer");
    assert_eq!(response.status().as_u16(), 200);
    let doc: serde_json::Value = response.json().await.expect("JSON");
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{doc}"
    );
    for path in [
        "/v1/jobs",
        "/v1/reserve",
        "/v1/jobs/{id}/heartbeat",
        "/v1/queues/{name}",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} is documented");
    }
    let description = doc["info"]["description"].as_str().unwrap_or_default();
    assert!(
        description
            .contains("| `POST /v1/reserve`, `POST /v1/reserve/due` | queues it is hired for |"),
        "the authorization table"
    );
    let unknown = reqwest::get(s.url("no/such/route"))
        .await
        .expect("an answer");
    assert_eq!(status_and_code(unknown).await, (404, "no_route".into()));
}
