//! The open server against clients that do not play fair (all on loopback, bounded in count
//! and time): unauthenticated requests never hold what signed ones need and none of their
//! bodies is read; connections are capped and must speak in time, whatever the protocol;
//! logins are throttled; nothing a client stores forges what the server reports.

use std::time::Duration;

use outsourced_backend_sql::{Directory, Role, ServerKey, SqlBackend};
use outsourced_core::{Actor, Backend, NewJob, QueueLimit, TestClock};
use outsourced_server::ServerConfig;
use reqwest::Method;
use reqwest::redirect::Policy;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::dashboard_forms::login_form;
use crate::http::RunningServer;
use crate::signing::{Signed, status_and_code};
use crate::support::test_config;

/// A server with a producer `shop` granted queue `mail`, and its credentials.
struct Setup {
    server: RunningServer,
    key: String,
    secret: String,
    clock: std::sync::Arc<TestClock>,
}

impl Setup {
    async fn new(config: ServerConfig) -> Setup {
        let clock = std::sync::Arc::new(TestClock::default());
        let sql = SqlBackend::open_with_clock(test_config("sqlite::memory:"), clock.clone())
            .await
            .expect("open");
        let server = RunningServer::start(sql, config).await;
        let (_, credentials) = server.client(Role::Producer, "shop").await;
        let admin = Actor::Admin("root".into());
        let queue = server
            .sql
            .create_queue(&admin, "mail", QueueLimit::Unlimited);
        queue.await.expect("a queue");
        let directory = server.directory();
        directory
            .grant(Role::Producer, "shop", "mail")
            .await
            .expect("grant");
        Setup {
            server,
            key: credentials.consumer_key,
            secret: credentials.consumer_secret,
            clock,
        }
    }

    fn addr(&self) -> String {
        let rest = self.server.url.trim_start_matches("http://");
        rest.split('/').next().unwrap_or_default().to_owned()
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v1/{path}", self.server.url)
    }

    /// A signed enqueue into `mail`, sent; its status.
    async fn enqueue(&self) -> u16 {
        let body = json!({"class": "Send", "args": [1], "queue": "mail"});
        let signed = Signed::new(Method::POST, &self.url("jobs"), &self.key, Some(body));
        status_and_code(signed.sign(&self.secret).send().await)
            .await
            .0
    }

    /// A connection that sent `head` (and nothing more).
    async fn raw(&self, head: &[u8]) -> TcpStream {
        let mut stream = TcpStream::connect(self.addr()).await.expect("connect");
        stream.write_all(head).await.expect("write");
        stream
    }
}

/// What the server sends back before closing, within 10 s (a bound for a failing test only).
async fn answer(stream: &mut TcpStream) -> String {
    let mut buf = vec![0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await;
    let n = read.expect("an answer in time").unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Whether the server closed the connection within `limit` (reading nothing more).
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 256];
    loop {
        match tokio::time::timeout(limit, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_requests_never_hold_what_signed_ones_need() {
    let s = Setup::new(ServerConfig {
        max_requests: 8,
        ..ServerConfig::default()
    })
    .await;
    // Five times the room for requests in flight: headers and one byte of a promised body,
    // unsigned and with a forged signature. Each is refused from its headers alone.
    let forged = "OAuth oauth_consumer_key=\"nobody\", oauth_signature_method=\"HMAC-SHA256\", \
                  oauth_timestamp=\"1\", oauth_nonce=\"n\", oauth_version=\"1.0\", oauth_signature=\"x\"";
    let mut held = Vec::new();
    for i in 0..40 {
        let authorization = match i % 2 {
            0 => String::new(),
            _ => format!("Authorization: {forged}\r\n"),
        };
        let head = format!(
            "POST /outsourced/v1/jobs HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
             {authorization}Content-Length: 1000\r\n\r\n{{",
            s.addr()
        );
        let mut stream = s.raw(head.as_bytes()).await;
        let refused = answer(&mut stream).await;
        assert!(
            refused.starts_with("HTTP/1.1 401") || refused.starts_with("HTTP/1.1 400"),
            "refused before its body came: {refused}"
        );
        held.push(stream);
    }
    // While all of them are still open, signed requests go through.
    for _ in 0..10 {
        assert_eq!(s.enqueue().await, 201);
    }
    // A length over the route's limit is refused at once, whatever is sent after it.
    let head = format!(
        "POST /outsourced/v1/jobs HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: 1000000000\r\n\r\n{{}}",
        s.addr()
    );
    let mut lying = s.raw(head.as_bytes()).await;
    let refused = answer(&mut lying).await;
    assert!(refused.starts_with("HTTP/1.1 413"), "{refused}");
    // An unsigned 30 MiB batch is refused from its headers: no byte of it was sent.
    let head = format!(
        "POST /outsourced/v1/jobs/batch HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        s.addr(),
        30 << 20
    );
    let mut batch = s.raw(head.as_bytes()).await;
    let refused = answer(&mut batch).await;
    assert!(refused.starts_with("HTTP/1.1 401"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_must_speak_in_time_and_are_capped() {
    let s = Setup::new(ServerConfig {
        first_request_timeout: Duration::from_millis(500),
        max_connections_per_peer: 6,
        ..ServerConfig::default()
    })
    .await;
    // Silent, and only the HTTP/2 preface: both closed after the first-request deadline.
    let mut silent = s.raw(b"").await;
    let mut preface = s.raw(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
    assert!(closed_within(&mut silent, Duration::from_secs(5)).await);
    assert!(closed_within(&mut preface, Duration::from_secs(5)).await);
    // Six from one address are let in; the seventh is closed at once.
    let mut six = Vec::new();
    for _ in 0..6 {
        six.push(s.raw(b"").await);
    }
    let mut seventh = s.raw(b"").await;
    assert!(closed_within(&mut seventh, Duration::from_millis(300)).await);
    assert!(
        !closed_within(&mut six[5], Duration::from_millis(100)).await,
        "the first six stay open until their deadline"
    );
    // Their places are given back when the server closes them.
    for stream in &mut six {
        assert!(closed_within(stream, Duration::from_secs(5)).await);
    }
    let mut again = s
        .raw(b"GET /outsourced/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    assert!(answer(&mut again).await.starts_with("HTTP/1.1 200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_are_throttled_per_name_and_address() {
    let s = Setup::new(ServerConfig::default()).await;
    let directory = s.server.directory();
    let key = ServerKey::generate();
    directory
        .create(&key, Role::Admin, "root")
        .await
        .expect("root");
    let password = "the right password";
    directory.set_password("root", password).await.expect("set");
    let base = format!("{}/dashboard", s.server.url);
    let client = reqwest::Client::builder().redirect(Policy::none()).build();
    let client = client.expect("a client");
    let try_login = |password: &'static str| {
        let (client, base) = (client.clone(), base.clone());
        async move {
            let (token, cookie) = login_form(&client, &base).await;
            let form = [("name", "root"), ("password", password), ("csrf", &token)];
            let sent = client
                .post(format!("{base}/login"))
                .header("cookie", cookie);
            let response = sent.form(&form).send().await.expect("an answer");
            let retry = response.headers().get("retry-after").cloned();
            (response.status().as_u16(), retry)
        }
    };
    for _ in 0..5 {
        assert_eq!(try_login("wrong").await.0, 401);
    }
    // The sixth refusal blocks; while blocked, even the right password is not tried.
    assert_eq!(try_login("wrong").await.0, 401);
    let (status, retry) = try_login(password).await;
    assert_eq!(status, 429);
    assert!(retry.is_some(), "Retry-After");
    // Another server process on the same database sees the block too.
    let other = Directory::new(s.server.sql.clone());
    let subjects = ["name:root".to_owned()];
    assert!(
        other
            .login_blocked(&subjects)
            .await
            .expect("read")
            .is_some()
    );
    // Once the block has passed, the right password works and clears the count.
    s.clock.advance(Duration::from_secs(2));
    assert_eq!(try_login(password).await.0, 303);
    assert!(
        other
            .login_blocked(&subjects)
            .await
            .expect("read")
            .is_none()
    );
    // A login form posted from elsewhere (no token of the login cookie) is refused.
    let forged = client.post(format!("{base}/login"));
    let forged = forged
        .form(&[("name", "root"), ("password", password)])
        .send();
    assert_eq!(forged.await.expect("an answer").status().as_u16(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_checks_run_a_few_at_a_time() {
    let s = Setup::new(ServerConfig {
        max_password_checks: 1,
        ..ServerConfig::default()
    })
    .await;
    let directory = s.server.directory();
    let key = ServerKey::generate();
    directory
        .create(&key, Role::Admin, "root")
        .await
        .expect("root");
    directory
        .set_password("root", "the right password")
        .await
        .expect("set");
    let base = format!("{}/dashboard", s.server.url);
    let client = reqwest::Client::builder().redirect(Policy::none()).build();
    let client = client.expect("a client");
    let (token, cookie) = login_form(&client, &base).await;
    let logins = (0..8).map(|i| {
        let form = [
            ("name", format!("nobody{i}")),
            ("password", "x".into()),
            ("csrf", token.clone()),
        ];
        let sent = client
            .post(format!("{base}/login"))
            .header("cookie", &cookie);
        async move {
            sent.form(&form)
                .send()
                .await
                .expect("an answer")
                .status()
                .as_u16()
        }
    });
    let statuses = futures::future::join_all(logins).await;
    assert!(
        statuses.iter().all(|s| [401, 503].contains(s)),
        "{statuses:?}"
    );
    assert!(
        statuses.contains(&503),
        "checked one at a time: {statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_stored_forges_what_the_server_reports() {
    let config = ServerConfig {
        metrics_token: Some("t".into()),
        ..ServerConfig::default()
    };
    let s = Setup::new(config).await;
    let body = json!({"class": "Evil\"} 1\nforged_series 2", "args": [], "queue": "mail"});
    let signed = Signed::new(Method::POST, &s.url("jobs"), &s.key, Some(body));
    let answer = status_and_code(signed.sign(&s.secret).send().await).await;
    assert_eq!(answer, (400, "invalid_input".to_owned()));
    let owner = json!({"class": "Ok", "args": [], "queue": "mail", "owner": "User/\u{1b}[31m1"});
    let signed = Signed::new(Method::POST, &s.url("jobs"), &s.key, Some(owner));
    let answer = status_and_code(signed.sign(&s.secret).send().await).await;
    assert_eq!(answer.0, 400);
    let metrics = reqwest::Client::new()
        .get(format!("{}/metrics", s.server.url))
        .bearer_auth("t")
        .send()
        .await
        .expect("metrics");
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap_or_default();
    assert!(
        !text.lines().any(|l| l.starts_with("forged_series")),
        "{text}"
    );
    // A queue or worker name with a control character is refused as well.
    let admin = Actor::Admin("root".into());
    let queue = s
        .server
        .sql
        .create_queue(&admin, "bad\nname", QueueLimit::default());
    assert!(queue.await.is_err());
    let (directory, key) = (s.server.directory(), ServerKey::generate());
    assert!(
        directory
            .create(&key, Role::Worker, "w\u{1b}")
            .await
            .is_err()
    );
    let stored = s
        .server
        .sql
        .enqueue(&admin, NewJob::new("Tab\tbed", json!([])));
    assert!(stored.await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_errors_and_files_carry_their_safety_headers() {
    let s = Setup::new(ServerConfig::default()).await;
    let client = reqwest::Client::builder().redirect(Policy::none()).build();
    let client = client.expect("a client");
    let login = client
        .get(format!("{}/dashboard/login", s.server.url))
        .send()
        .await;
    let login = login.expect("the login page");
    let headers = login.headers();
    assert_eq!(headers["x-content-type-options"], "nosniff");
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert_eq!(headers["cache-control"], "no-store");
    assert!(
        headers["content-security-policy"]
            .to_str()
            .unwrap_or_default()
            .contains("default-src 'self'")
    );
    // A login body far larger than any form is refused once 16 KiB of it have come. The
    // server answers and closes without reading the rest, so the client, still writing, may
    // see the connection cut before it reads the answer: it tries again (a few times at most).
    let mut tries = 0;
    let huge = loop {
        let sent = client
            .post(format!("{}/dashboard/login", s.server.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(vec![b'a'; 1 << 20])
            .send()
            .await;
        tries += 1;
        match sent {
            Ok(answer) => break answer,
            Err(error) if tries < 5 && error.is_request() => continue,
            Err(error) => panic!("no answer to a huge login body: {error}"),
        }
    };
    assert_eq!(huge.status().as_u16(), 413);
    assert!(huge.headers().contains_key("content-security-policy"));
    assert_eq!(
        huge.headers()["connection"],
        "close",
        "not a connection to reuse"
    );
    // Error pages that no handler wrote (a route that does not exist) carry a policy too.
    let missing = client
        .get(format!("{}/dashboard/nothing-here", s.server.url))
        .send()
        .await
        .expect("an answer");
    assert_eq!(missing.status().as_u16(), 404);
    assert_eq!(
        missing.headers()["content-security-policy"],
        "default-src 'none'; frame-ancestors 'none'"
    );
    let api_error = client.get(s.url("jobs/1")).send().await.expect("an answer");
    assert_eq!(api_error.status().as_u16(), 401);
    assert_eq!(api_error.headers()["x-content-type-options"], "nosniff");
    assert_eq!(api_error.headers()["cache-control"], "no-store");
    assert!(
        api_error
            .headers()
            .get("strict-transport-security")
            .is_none(),
        "plain HTTP"
    );
}

#[cfg(unix)]
#[test]
fn secret_files_are_owner_only_and_replaced_not_followed() {
    use std::os::unix::fs::PermissionsExt;
    let s = crate::bins::Scratch::new();
    s.ok(&["worker", "create", "w1"]);
    let mode = |name: &str| {
        let meta = std::fs::symlink_metadata(s.path(name)).expect("the file");
        meta.permissions().mode() & 0o777
    };
    for name in ["outsourced.db", "server.key"] {
        assert_eq!(mode(name), 0o600, "{name}");
    }
    // A world-readable file in the way is replaced by an owner-only one.
    std::fs::write(s.path("w1.yml"), "worker: old\n").expect("write");
    std::fs::set_permissions(s.path("w1.yml"), std::fs::Permissions::from_mode(0o644))
        .expect("chmod");
    s.ok(&["worker", "config", "w1", "-o", "w1.yml"]);
    assert_eq!(mode("w1.yml"), 0o600);
    // A symbolic link in the way is replaced itself; what it points at is left alone.
    std::fs::write(s.path("elsewhere"), "keep me").expect("write");
    std::os::unix::fs::symlink(s.path("elsewhere"), s.path("link.yml")).expect("symlink");
    s.ok(&["worker", "config", "w1", "-o", "link.yml"]);
    assert_eq!(
        std::fs::read_to_string(s.path("elsewhere")).ok().as_deref(),
        Some("keep me")
    );
    let meta = std::fs::symlink_metadata(s.path("link.yml")).expect("the config");
    assert!(meta.file_type().is_file(), "a file, no longer a link");
    assert_eq!(mode("link.yml"), 0o600);
    // A database path that links to a file not there yet: the file is made owner-only.
    std::os::unix::fs::symlink(s.path("real.db"), s.path("dangling.db")).expect("symlink");
    let url = format!("sqlite://{}", s.path("dangling.db").display());
    let out = std::process::Command::new(crate::bins::bin("outsourcer"))
        .args(["--database", &url, "migrate"])
        .env("OUTSOURCED_KEY_FILE", s.path("server.key"))
        .output()
        .expect("outsourcer migrate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(mode("real.db"), 0o600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_prints_control_characters_escaped() {
    use outsourced_backend_sql::sea_orm::ConnectionTrait;
    let s = crate::bins::Scratch::new();
    s.ok(&["migrate"]);
    s.ok(&["job", "enqueue", "Plain"]);
    // A row from before control characters were refused (or written around the API).
    let sql = SqlBackend::connect(&s.database()).await.expect("open");
    let forged =
        "UPDATE outsourced_jobs SET class = 'Evil' || char(27) || '[2J' || char(10) || 'line'";
    sql.connection()
        .execute_unprepared(forged)
        .await
        .expect("update");
    for args in [vec!["job", "list"], vec!["job", "show", "1"]] {
        let out = s.ok(&args);
        assert!(
            !out.contains('\u{1b}'),
            "{args:?} printed an escape: {out:?}"
        );
        assert!(out.contains("Evil\\u{1b}[2J\\u{a}line"), "{args:?}: {out}");
    }
}

#[test]
fn the_openapi_document_declares_every_path_parameter_and_validates() {
    let doc = serde_json::to_value(outsourced_server::openapi()).expect("JSON");
    let paths = doc["paths"].as_object().expect("paths");
    let mut checked = 0;
    for (path, item) in paths {
        let mut expected: Vec<&str> = path
            .split('{')
            .skip(1)
            .filter_map(|rest| rest.split('}').next())
            .collect();
        expected.sort_unstable();
        for (method, operation) in item.as_object().expect("an item") {
            let parameters = operation["parameters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let mut declared: Vec<String> = parameters
                .iter()
                .filter(|p| p["in"] == "path")
                .filter_map(|p| p["name"].as_str().map(str::to_owned))
                .collect();
            declared.sort_unstable();
            assert_eq!(declared, expected, "{method} {path}");
            checked += usize::from(!expected.is_empty());
        }
    }
    assert!(checked >= 12, "{checked} operations with path parameters");
    // What a client generated from it needs: the signature's header on every operation, and
    // the enqueue with an attachment as a multipart form.
    assert_eq!(doc["security"], serde_json::json!([{"oauth1": []}]));
    let scheme = &doc["components"]["securitySchemes"]["oauth1"];
    assert_eq!(
        (&scheme["in"], &scheme["name"]),
        (&"header".into(), &"Authorization".into())
    );
    let content = &doc["paths"]["/v1/jobs"]["post"]["requestBody"]["content"];
    let form = &content["multipart/form-data"]["schema"];
    assert!(form.to_string().contains("EnqueueForm"), "{content}");
    assert!(content["application/json"].is_object(), "{content}");
    // An OpenAPI validator (openapi-spec-validator, which CI installs) accepts the document.
    let dir = tempfile::tempdir().expect("a directory");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, doc.to_string()).expect("write");
    let script = "import sys, json\nfrom openapi_spec_validator import validate\nvalidate(json.load(open(sys.argv[1])))";
    let run = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&file)
        .output();
    let ci = std::env::var("CI").is_ok_and(|ci| ci == "true");
    match run {
        Ok(out) if out.status.success() => {}
        Ok(out) if !ci && String::from_utf8_lossy(&out.stderr).contains("No module named") => {
            eprintln!("SKIPPED: the OpenAPI validator (pip install openapi-spec-validator)");
        }
        Ok(out) => panic!(
            "the validator refused it: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(error) => assert!(!ci, "python3: {error}"),
    }
}
