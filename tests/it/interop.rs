//! Clients in other languages and setups: a worker written in Python with an ordinary OAuth
//! 1.0a library, our Python client (`clients/python`), and our Rust client over TLS with a
//! certificate authority of its own.

use std::process::Command;

use outsourced_backend_http::{HttpBackend, HttpConfig};
use outsourced_backend_sql::{Role, SqlBackend};
use outsourced_core::{Actor, Backend, BackendExt, JobState, NewJob};
use outsourced_server::ServerConfig;
use serde_json::json;

use crate::http::RunningServer;
use crate::support::test_config;

/// Whether Python with requests-oauthlib is here; under CI it must be (`.ci/run` installs it).
fn python_ready() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import requests_oauthlib, oauthlib"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("CI").is_err(),
            "CI needs python3 with requests-oauthlib (pip install requests-oauthlib)"
        );
        eprintln!("SKIPPED: python3 with requests-oauthlib is not installed");
    }
    ok
}

#[tokio::test]
async fn a_python_worker_with_an_ordinary_oauth_library_works_jobs() {
    if !python_ready() {
        return;
    }
    let sql = SqlBackend::open(test_config("sqlite::memory:"))
        .await
        .expect("open");
    let server = RunningServer::start(sql, ServerConfig::default()).await;
    let (_, credentials) = server.client(Role::Worker, "py").await;
    server
        .directory()
        .grant(Role::Worker, "py", "default")
        .await
        .expect("hire");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/interop/worker.py");
    for method in ["HMAC-SHA1", "HMAC-SHA256"] {
        let job = server
            .sql
            .enqueue(&Actor::application(), NewJob::new("Py", json!([method])))
            .await
            .expect("enqueue");
        let out = tokio::process::Command::new("python3")
            .args([
                script,
                &server.url,
                &credentials.consumer_key,
                &credentials.consumer_secret,
                method,
            ])
            .output()
            .await
            .expect("run python");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{method}: {stderr}");
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "1");
        let stored = server
            .sql
            .job(&Actor::Admin("t".into()), job.id)
            .await
            .expect("the job");
        assert_eq!(stored.state, JobState::Succeeded, "{method}");
    }
}

#[tokio::test]
async fn our_client_talks_tls_to_a_server_with_its_own_certificate() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let key_pair = rcgen::KeyPair::generate().expect("a key");
    let params = rcgen::CertificateParams::new(vec!["localhost".into()]).expect("params");
    let cert = params.self_signed(&key_pair).expect("a certificate");
    let (cert_file, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_file, cert.pem()).expect("write the certificate");
    std::fs::write(&key_file, key_pair.serialize_pem()).expect("write the key");
    let tls = outsourced_server::tls_acceptor(&cert_file, &key_file).expect("TLS");
    let sql = SqlBackend::open(test_config("sqlite::memory:"))
        .await
        .expect("open");
    let server = RunningServer::start_with_tls(sql, ServerConfig::default(), Some(tls)).await;
    let (_, credentials) = server.client(Role::Admin, "root").await;
    let mut config = HttpConfig::new(
        &server.url,
        &credentials.consumer_key,
        &credentials.consumer_secret,
    );
    config.ca_file = Some(cert_file.clone());
    let admin = HttpBackend::new(config).expect("a client");
    let queue = admin
        .queue(&Actor::Admin("root".into()), "default")
        .await
        .expect("over TLS");
    assert_eq!(queue.name, "default");
    // Without the certificate authority, the client refuses the server.
    let untrusting = HttpBackend::new(HttpConfig::new(
        &server.url,
        &credentials.consumer_key,
        &credentials.consumer_secret,
    ))
    .expect("a client");
    let refused = untrusting.queues(&Actor::Admin("root".into())).await;
    let refused = refused.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        refused.contains("certificate") && refused.contains("UnknownIssuer"),
        "a self-signed certificate is not trusted by default, and the error says why: {refused}"
    );
    // Over TLS every answer asks browsers to keep to HTTPS.
    let pem = std::fs::read(&cert_file).expect("the certificate");
    let ca = reqwest::Certificate::from_pem(&pem).expect("a certificate");
    let client = reqwest::Client::builder().add_root_certificate(ca).build();
    let health = client
        .expect("a client")
        .get(format!("{}/v1/health", server.url));
    let health = health.send().await.expect("an answer");
    assert!(health.headers().contains_key("strict-transport-security"));
}

/// The Python client (`clients/python`) against a live server: its own tests enqueue, run
/// workers, follow batches and read refusals as a producer and a worker would; here, that they
/// pass and that the database agrees with them.
#[tokio::test]
async fn the_python_client_enqueues_and_works_jobs() {
    if !python_ready() {
        return;
    }
    let sql = SqlBackend::open(test_config("sqlite::memory:"))
        .await
        .expect("open");
    // Bodies without their signed SHA-256 refused: the client covers every one.
    let config = ServerConfig {
        require_body_hash: true,
        ..ServerConfig::default()
    };
    let server = RunningServer::start(sql, config).await;
    let (_, producer) = server.client(Role::Producer, "py-producer").await;
    let (_, worker) = server.client(Role::Worker, "py-worker").await;
    let directory = server.directory();
    directory
        .grant(Role::Producer, "py-producer", "default")
        .await
        .expect("grant");
    directory
        .grant(Role::Worker, "py-worker", "default")
        .await
        .expect("hire");
    let both = |c: &outsourced_backend_sql::Credentials| {
        format!("{}:{}", c.consumer_key, c.consumer_secret)
    };
    let tests = concat!(env!("CARGO_MANIFEST_DIR"), "/../clients/python/tests");
    let out = tokio::process::Command::new("python3")
        .args(["-m", "unittest", "discover", "-v", "-s", tests])
        .env("OUTSOURCED_URL", &server.url)
        .env("OUTSOURCED_PRODUCER", both(&producer))
        .env("OUTSOURCED_WORKER", both(&worker))
        .output()
        .await
        .expect("run python");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(!said.contains("skipped"), "every test ran: {said}");
    let admin = Actor::Admin("t".into());
    let queue = server
        .sql
        .queue(&admin, "default")
        .await
        .expect("the queue");
    let counts = &queue.counts;
    assert!(counts.get(JobState::Succeeded) >= 11, "{counts:?}");
    assert_eq!(
        counts.get(JobState::Running),
        0,
        "no lease left: {counts:?}"
    );
}
