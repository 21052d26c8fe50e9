//! Attachments over HTTP with hand-made requests: what a download's headers say, a plain
//! multipart client, and every refusal (too large, tampered, malformed) keeping nothing, down
//! to the upload and chunk rows.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use outsourced_backend_sql::sea_orm::{ConnectionTrait, Statement};
use outsourced_backend_sql::{Role, SqlBackend};
use outsourced_core::{Actor, Backend, JobId, NewJob, QueueLimit};
use outsourced_server::ServerConfig;
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::http::RunningServer;
use crate::signing::{Signed, status_and_code};
use crate::support::test_config;

/// The attachment limit of these servers.
const LIMIT: u64 = 1 << 20;

struct Setup {
    server: RunningServer,
    key: String,
    secret: String,
}

impl Setup {
    async fn new() -> Setup {
        Setup::serving(ServerConfig::default()).await
    }

    async fn serving(server_config: ServerConfig) -> Setup {
        let mut config = test_config("sqlite::memory:");
        config.max_attachment_bytes = LIMIT;
        let sql = SqlBackend::open(config).await.expect("open");
        let server = RunningServer::start(sql, server_config).await;
        let (_, credentials) = server.client(Role::Producer, "shop").await;
        let admin = Actor::Admin("root".into());
        let queue = server
            .sql
            .create_queue(&admin, "files", QueueLimit::default());
        queue.await.expect("a queue");
        let directory = server.directory();
        let granted = directory.grant(Role::Producer, "shop", "files");
        granted.await.expect("grant");
        Setup {
            server,
            key: credentials.consumer_key,
            secret: credentials.consumer_secret,
        }
    }

    /// A job of the producer's, scheduled an hour out, so that files may be attached to it.
    async fn job(&self) -> JobId {
        let later = chrono::Utc::now() + chrono::Duration::hours(1);
        let job = NewJob::new("Scan", json!([])).queue("files").run_at(later);
        let shop = Actor::Producer("shop".into());
        self.server.sql.enqueue(&shop, job).await.expect("a job").id
    }

    /// A request to `path` (with `query`), signed by the producer.
    fn request(&self, method: Method, path_and_query: &str) -> reqwest::RequestBuilder {
        let url = format!("{}/v1/{path_and_query}", self.server.url);
        let signed = Signed::new(method.clone(), &url, &self.key, None).sign(&self.secret);
        reqwest::Client::new()
            .request(method, url)
            .header(AUTHORIZATION, signed.authorization())
    }

    async fn rows(&self, table: &str) -> i64 {
        let db = self.server.sql.connection();
        let sql = format!("SELECT COUNT(*) FROM {table}");
        let row = db
            .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
            .await
            .expect("count")
            .expect("a row");
        row.try_get_by_index(0).expect("a count")
    }

    /// Nothing of any upload is stored, and job `id` (if any) has no attachment.
    async fn nothing_kept(&self, id: Option<JobId>) {
        assert_eq!(
            self.rows("outsourced_upload_chunks").await,
            0,
            "no chunk kept"
        );
        assert_eq!(self.rows("outsourced_uploads").await, 0, "no upload kept");
        if let Some(id) = id {
            let job = self.server.sql.job(&Actor::Admin("root".into()), id).await;
            assert_eq!(job.expect("the job").attachment, None);
        }
    }
}

fn body_hash(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

#[tokio::test]
async fn a_download_says_what_it_is() {
    let s = Setup::new().await;
    let id = s.job().await;
    let bytes: Vec<u8> = (0..300_000u32).map(|i| (i % 7) as u8).collect();
    let path = format!(
        "jobs/{id}/attachment?name=r%C3%A9sum%C3%A9%20%22final%22.pdf&body_sha256={}",
        body_hash(&bytes)
    );
    let put = s
        .request(Method::PUT, &path)
        .header(CONTENT_TYPE, "application/pdf");
    let put = put.body(bytes.clone()).send().await.expect("an answer");
    assert_eq!(put.status(), 201);
    let info: Value = put.json().await.expect("JSON");
    assert_eq!(info["sha256"], hex(&bytes));
    assert_eq!(info["file_name"], "résumé \"final\".pdf");
    let get = s.request(Method::GET, &format!("jobs/{id}/attachment"));
    let got = get.send().await.expect("an answer");
    assert_eq!(got.status(), 200);
    let header = |name: &str| {
        let value = got.headers().get(name).map(|v| v.to_str().unwrap_or("?"));
        value.unwrap_or_default().to_owned()
    };
    assert_eq!(header("content-type"), "application/pdf");
    assert_eq!(header("content-length"), bytes.len().to_string());
    let digest = format!("sha-256=:{}:", STANDARD.encode(Sha256::digest(&bytes)));
    assert_eq!(header("repr-digest"), digest);
    assert_eq!(
        header("content-disposition"),
        "attachment; filename*=UTF-8''r%C3%A9sum%C3%A9%20%22final%22.pdf"
    );
    assert!(got.bytes().await.expect("the body") == bytes);
}

#[tokio::test]
async fn a_plain_multipart_client_enqueues_a_job_with_its_file() {
    let s = Setup::new().await;
    let job = json!({"class": "Scan", "queue": "files", "args": {"pages": 2}});
    let form = reqwest::multipart::Form::new()
        .part("job", reqwest::multipart::Part::text(job.to_string()))
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"%PDF-1.7 ...".to_vec())
                .file_name("scan.pdf")
                .mime_str("application/pdf")
                .expect("a media type"),
        );
    let answer = s.request(Method::POST, "jobs").multipart(form).send().await;
    let answer = answer.expect("an answer");
    let status = answer.status();
    let job: Value = answer.json().await.expect("JSON");
    assert_eq!(status, 201, "{job}");
    assert_eq!(job["attachment"]["file_name"], "scan.pdf");
    assert_eq!(job["attachment"]["size"], 12);
    assert_eq!(job["attachment"]["sha256"], hex(b"%PDF-1.7 ..."));
}

#[tokio::test]
async fn a_job_part_over_the_body_limit_is_refused_and_nothing_is_kept() {
    let s = Setup::new().await;
    // Valid JSON, two MiB of it: over the 1 MiB body limit a job part is held to.
    let padding = "x".repeat(2 << 20);
    let job = json!({"class": "Scan", "queue": "files", "args": {"padding": padding}});
    let form = reqwest::multipart::Form::new()
        .part("job", reqwest::multipart::Part::text(job.to_string()))
        .part("file", reqwest::multipart::Part::bytes(b"%PDF".to_vec()));
    let answer = s.request(Method::POST, "jobs").multipart(form).send().await;
    let answer = answer.expect("an answer");
    assert_eq!(answer.status(), 413);
    let body: Value = answer.json().await.expect("JSON");
    assert_eq!(body["code"], "too_large");
    s.nothing_kept(None).await;
    assert_eq!(s.rows("outsourced_jobs").await, 0, "no job kept");
}

#[tokio::test]
async fn a_server_that_requires_hashes_requires_the_files_too() {
    let s = Setup::serving(ServerConfig {
        require_body_hash: true,
        ..ServerConfig::default()
    })
    .await;
    let job = json!({"class": "Scan", "queue": "files", "args": []}).to_string();
    let job_hash = URL_SAFE_NO_PAD.encode(Sha256::digest(job.as_bytes()));
    let form = || {
        reqwest::multipart::Form::new()
            .part("job", reqwest::multipart::Part::text(job.clone()))
            .part(
                "file",
                reqwest::multipart::Part::bytes(b"unsigned".to_vec()),
            )
    };
    let path = format!("jobs?body_sha256={job_hash}");
    let answer = s
        .request(Method::POST, &path)
        .multipart(form())
        .send()
        .await;
    let answer = status_and_code(answer.expect("an answer")).await;
    assert_eq!(answer, (401, "body_hash_required".to_owned()));
    s.nothing_kept(None).await;
    let file_hash = hex(b"unsigned");
    let path = format!("jobs?body_sha256={job_hash}&attachment_sha256={file_hash}");
    let answer = s
        .request(Method::POST, &path)
        .multipart(form())
        .send()
        .await;
    assert_eq!(
        answer.expect("an answer").status(),
        201,
        "with both hashes signed"
    );
}

#[tokio::test]
async fn an_oversized_upload_is_refused_and_nothing_is_kept() {
    let s = Setup::new().await;
    let id = s.job().await;
    let big = vec![0u8; LIMIT as usize + 1];
    let path = format!("jobs/{id}/attachment");
    // With a Content-Length, refused before a byte is read.
    let answer = s.request(Method::PUT, &path).body(big.clone()).send().await;
    let answer = status_and_code(answer.expect("an answer")).await;
    assert_eq!(answer, (413, "too_large".to_owned()));
    s.nothing_kept(Some(id)).await;
    // Streamed without a length, refused at the byte past the limit.
    let pieces = big
        .chunks(64 * 1024)
        .map(|c| Ok::<_, std::io::Error>(c.to_vec()));
    let stream = reqwest::Body::wrap_stream(futures::stream::iter(pieces.collect::<Vec<_>>()));
    let answer = s.request(Method::PUT, &path).body(stream).send().await;
    let answer = status_and_code(answer.expect("an answer")).await;
    assert_eq!(answer, (413, "too_large".to_owned()));
    s.nothing_kept(Some(id)).await;
    // At the limit, it fits.
    let fits = s
        .request(Method::PUT, &path)
        .body(vec![1u8; LIMIT as usize]);
    assert_eq!(fits.send().await.expect("an answer").status(), 201);
}

#[tokio::test]
async fn a_tampered_upload_is_refused_and_nothing_is_kept() {
    let s = Setup::new().await;
    let id = s.job().await;
    let (sent, signed_for) = (
        b"the bytes that arrived".to_vec(),
        b"the bytes signed".to_vec(),
    );
    let path = format!(
        "jobs/{id}/attachment?body_sha256={}",
        body_hash(&signed_for)
    );
    let answer = s.request(Method::PUT, &path).body(sent).send().await;
    let (status, code) = status_and_code(answer.expect("an answer")).await;
    assert_eq!((status, code.as_str()), (400, "invalid_input"));
    s.nothing_kept(Some(id)).await;
    // A multipart enqueue whose job part was changed after signing.
    let job = json!({"class": "Scan", "queue": "files"}).to_string();
    let file = b"a file".to_vec();
    let form = |job: String, file: Vec<u8>| {
        reqwest::multipart::Form::new()
            .part("job", reqwest::multipart::Part::text(job))
            .part("file", reqwest::multipart::Part::bytes(file))
    };
    let query = format!(
        "jobs?body_sha256={}&attachment_sha256={}",
        body_hash(b"{\"class\": \"Other\"}"),
        hex(&file)
    );
    let answer = s
        .request(Method::POST, &query)
        .multipart(form(job.clone(), file.clone()));
    let answer = status_and_code(answer.send().await.expect("an answer")).await;
    assert_eq!(answer, (401, "body_hash_mismatch".to_owned()));
    // ... and one whose file was.
    let query = format!(
        "jobs?body_sha256={}&attachment_sha256={}",
        body_hash(job.as_bytes()),
        hex(b"another file")
    );
    let answer = s.request(Method::POST, &query).multipart(form(job, file));
    let (status, _) = status_and_code(answer.send().await.expect("an answer")).await;
    assert_eq!(status, 400);
    s.nothing_kept(None).await;
    let root = Actor::Admin("root".into());
    let stored = s.server.sql.jobs(&root, Default::default()).await;
    assert_eq!(stored.expect("jobs").len(), 1, "only the first job");
}

#[tokio::test]
async fn file_names_that_are_paths_are_refused_and_nothing_is_kept() {
    let s = Setup::new().await;
    let id = s.job().await;
    let tricks = [
        "../../etc/passwd",
        "..",
        ".",
        "a/b",
        "..\\windows\\system.ini",
        "/etc/shadow",
        "name\nwith a newline",
        "nul\0byte",
    ];
    for name in tricks {
        let encoded: String = url::form_urlencoded::byte_serialize(name.as_bytes()).collect();
        let path = format!("jobs/{id}/attachment?name={encoded}");
        let answer = s.request(Method::PUT, &path).body(b"bytes".to_vec()).send();
        let answer = status_and_code(answer.await.expect("an answer")).await;
        assert_eq!(answer, (400, "invalid_input".to_owned()), "{name:?}");
        s.nothing_kept(Some(id)).await;
    }
    let fine = s.request(
        Method::PUT,
        &format!("jobs/{id}/attachment?name=..scan.pdf"),
    );
    let fine = fine
        .body(b"bytes".to_vec())
        .send()
        .await
        .expect("an answer");
    assert_eq!(fine.status(), 201, "dots in a name are fine");
}

#[tokio::test]
async fn malformed_multipart_bodies_are_refused() {
    let s = Setup::new().await;
    let file_first = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(b"x".to_vec()))
        .part("job", reqwest::multipart::Part::text("{}"));
    let answer = s.request(Method::POST, "jobs").multipart(file_first);
    let (status, code) = status_and_code(answer.send().await.expect("an answer")).await;
    assert_eq!((status, code.as_str()), (400, "invalid_input"));
    let bad_json = reqwest::multipart::Form::new()
        .part("job", reqwest::multipart::Part::text("{oops"))
        .part("file", reqwest::multipart::Part::bytes(b"x".to_vec()));
    let answer = s.request(Method::POST, "jobs").multipart(bad_json);
    let (status, _) = status_and_code(answer.send().await.expect("an answer")).await;
    assert_eq!(status, 400);
    s.nothing_kept(None).await;
}
