//! `outsourced-worker --config foo.yml`, through the real binary, with the file that
//! `outsourcer worker config` writes.

use std::process::{Command, Output, Stdio};

use serde_json::json;

use crate::bins::{Scratch, bin};

fn worker(s: &Scratch, config: &str, extra: &[&str]) -> Output {
    Command::new(bin("outsourced-worker"))
        .arg("--config")
        .arg(s.path(config))
        .args(extra)
        .env_remove("RUST_LOG")
        .output()
        .expect("run outsourced-worker")
}

/// A queue, a worker hired for it, its config file `w1.yml`, and a command handler for
/// class `Shell` added to it.
fn setup(s: &Scratch, handler: &str) {
    s.ok(&["queue", "create", "stuff_to_do"]);
    s.ok(&["queue", "create", "other"]);
    s.ok(&["worker", "create", "w1"]);
    s.ok(&["queue", "hire", "stuff_to_do", "w1"]);
    s.ok(&["worker", "config", "w1", "-o", "w1.yml"]);
    let script = s.path("handler.sh");
    std::fs::write(&script, format!("#!/bin/sh\n{handler}\n")).expect("write the handler");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    let mut config = std::fs::read_to_string(s.path("w1.yml")).expect("the config");
    config.push_str("\ncommands:\n  Shell:\n    program: ./handler.sh\n");
    std::fs::write(s.path("w1.yml"), config).expect("write the config");
}

#[test]
fn a_worker_from_a_written_config_works_its_queues_only() {
    let s = Scratch::new();
    setup(
        &s,
        "cat > \"$(dirname \"$0\")/seen-$OUTSOURCED_JOB_ID.json\"",
    );
    for i in 0..3 {
        let args = json!([i]).to_string();
        s.ok(&[
            "job",
            "enqueue",
            "Shell",
            "--queue",
            "stuff_to_do",
            "--args",
            &args,
        ]);
    }
    let elsewhere = s.json(&["job", "enqueue", "Shell", "--queue", "other"]);
    let out = worker(&s, "w1.yml", &["--exit-on-complete"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let counts = s.json(&["job", "count", "--queue", "stuff_to_do"]);
    assert_eq!(counts["succeeded"], 3);
    let mut seen: Vec<String> = std::fs::read_dir(s.dir.path())
        .expect("the scratch directory")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.to_string_lossy().contains("seen-"))
        .map(|path| std::fs::read_to_string(path).expect("the handler's input"))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        ["[0]", "[1]", "[2]"],
        "each job's arguments on its handler's stdin"
    );
    let id = elsewhere["id"].as_i64().expect("an id").to_string();
    assert_eq!(
        s.json(&["job", "show", &id])["state"],
        "available",
        "not hired for it"
    );
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(logs.contains("COMPLETED"), "one log line per job: {logs}");
}

#[test]
fn a_handlers_output_is_the_jobs_result_in_show_and_history() {
    let s = Scratch::new();
    setup(&s, "echo '{\"pages\": 3, \"note\": \"done\"}'");
    let job = s.json(&["job", "enqueue", "Shell", "--queue", "stuff_to_do"]);
    let out = worker(&s, "w1.yml", &["--exit-on-complete"]);
    assert!(out.status.success());
    let id = job["id"].as_i64().expect("an id").to_string();
    let shown = s.json(&["job", "show", &id]);
    assert_eq!(shown["result"], json!({"pages": 3, "note": "done"}));
    let text = s.ok(&["job", "show", &id]);
    assert!(
        text.contains(r#"result: {"note":"done","pages":3}"#),
        "{text}"
    );
    let history = s.json(&["job", "history", &id]);
    assert_eq!(history[2]["reason"], "completed");
    assert_eq!(history[2]["result"]["pages"], 3);
    let text = s.ok(&["job", "history", &id]);
    assert!(text.contains("seq 3 result: {"), "{text}");
}

#[test]
fn a_failing_handler_leaves_its_stderr_in_the_history() {
    let s = Scratch::new();
    setup(&s, "echo 'cannot reach the printer' >&2; exit 4");
    let job = s.json(&[
        "job",
        "enqueue",
        "Shell",
        "--queue",
        "stuff_to_do",
        "--max-attempts",
        "1",
    ]);
    let out = worker(&s, "w1.yml", &["--exit-on-complete"]);
    assert!(out.status.success());
    let id = job["id"].as_i64().expect("an id").to_string();
    assert_eq!(s.json(&["job", "show", &id])["state"], "failed");
    let history = s.json(&["job", "history", &id]);
    assert!(history[0]["since_previous_ms"].is_null());
    let ran = history[2]["since_previous_ms"].as_i64();
    assert!(ran.is_some_and(|ms| ms >= 0), "how long the attempt ran");
    let error = &history[2]["error"];
    let handler = s.path("handler.sh");
    let expected = format!(
        "{} exited with status 4: cannot reach the printer",
        handler.display()
    );
    assert_eq!(error["message"], expected);
    assert!(
        error["backtrace"]
            .as_str()
            .is_some_and(|e| e.contains("cannot reach the printer"))
    );
    let text = s.ok(&["job", "history", &id]);
    assert!(text.contains("cannot reach the printer"), "{text}");
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(
        logs.contains(&format!(
            "Job Shell (id={id}) (queue=stuff_to_do) FAILED for good (attempt 1 of 1)"
        )),
        "the log line names the class and says it is final: {logs}"
    );
}

#[test]
fn a_class_no_worker_runs_stays_waiting_and_is_named() {
    let s = Scratch::new();
    setup(&s, "cat > /dev/null");
    let unknown = s.json(&["job", "enqueue", "NoSuchClass", "--queue", "stuff_to_do"]);
    let id = unknown["id"].as_i64().expect("an id").to_string();
    s.ok(&["job", "enqueue", "Shell", "--queue", "stuff_to_do"]);
    let mut child = s.start_worker("w1.yml");
    let logs = crate::bins::log_lines(&mut child);
    // Its Shell job ran: the worker has reserved, and said which classes it runs.
    let line = crate::bins::wait_for_line(&logs, "COMPLETED");
    assert!(
        line.contains("Job Shell"),
        "the log names the class: {line}"
    );
    let waiting = s.json(&["job", "show", &id]);
    assert_eq!(
        (
            &waiting["state"],
            &waiting["attempts"],
            &waiting["no_worker"]
        ),
        (&json!("available"), &json!(0), &json!(true)),
        "never leased, never failed; and said to have no worker"
    );
    let text = s.ok(&["job", "show", &id]);
    assert!(
        text.contains("no live worker runs class NoSuchClass"),
        "{text}"
    );
    let worker = s.json(&["worker", "show", "w1"]);
    assert_eq!(worker["live_processes"], 1, "{worker}");
    let queue = s.json(&["queue", "show", "stuff_to_do"]);
    assert_eq!(queue["unserved"], json!(["NoSuchClass"]));
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(term.expect("kill").success());
    assert!(child.wait().expect("the worker exits").success());
}

#[test]
fn a_locked_worker_does_not_start_and_a_bad_config_names_its_key() {
    let s = Scratch::new();
    setup(&s, "exit 0");
    s.ok(&["worker", "lock", "w1"]);
    let out = worker(&s, "w1.yml", &["--exit-on-complete"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("locked out"));
    std::fs::write(
        s.path("bad.yml"),
        "worker: w1\nbackend:\n  sql:\n    url: x\nconcurency: 2\n",
    )
    .expect("write");
    let out = worker(&s, "bad.yml", &[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("concurency") && stderr.contains("bad.yml"),
        "{stderr}"
    );
}

#[cfg(unix)]
#[test]
fn sigterm_lets_the_running_job_finish_and_leaves_nothing_leased() {
    let s = Scratch::new();
    // The handler announces itself on one pipe and waits for a word on another.
    for fifo in ["started", "finish"] {
        let made = Command::new("mkfifo")
            .arg(s.path(fifo))
            .status()
            .expect("mkfifo");
        assert!(made.success());
    }
    setup(
        &s,
        "echo go > \"$(dirname \"$0\")/started\"; read word < \"$(dirname \"$0\")/finish\"",
    );
    let job = s.json(&["job", "enqueue", "Shell", "--queue", "stuff_to_do"]);
    let waiting = s.json(&[
        "job",
        "enqueue",
        "Other",
        "--queue",
        "stuff_to_do",
        "--run-at",
        "+1h",
    ]);
    let mut child = Command::new(bin("outsourced-worker"))
        .arg("--config")
        .arg(s.path("w1.yml"))
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the worker");
    // Blocks until the handler runs.
    let started = std::fs::read_to_string(s.path("started")).expect("the handler started");
    assert_eq!(started.trim(), "go");
    let term = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    assert!(term.expect("kill").success());
    std::fs::write(s.path("finish"), "done\n").expect("let the handler finish");
    let status = child.wait().expect("the worker exits");
    assert!(status.success(), "a clean exit after SIGTERM");
    let id = job["id"].as_i64().expect("an id").to_string();
    assert_eq!(s.json(&["job", "show", &id])["state"], "succeeded");
    let counts = s.json(&["job", "count", "--queue", "stuff_to_do"]);
    assert_eq!(counts["running"], 0, "nothing is left leased");
    let later = waiting["id"].as_i64().expect("an id").to_string();
    assert_eq!(s.json(&["job", "show", &later])["state"], "scheduled");
}

#[test]
fn the_command_handler_example_runs_as_documented() {
    let s = Scratch::new();
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/command-handlers/worker.yml");
    s.ok(&["queue", "create", "images"]);
    let good = s.json(&[
        "job",
        "enqueue",
        "Thumbnail",
        "--queue",
        "images",
        "--args",
        r#"{"image": "cat.png", "width": 120}"#,
    ]);
    let bad = s.json(&[
        "job",
        "enqueue",
        "Thumbnail",
        "--queue",
        "images",
        "--args",
        "[]",
        "--max-attempts",
        "1",
    ]);
    let out = Command::new(bin("outsourced-worker"))
        .arg("--config")
        .arg(&example)
        .arg("--exit-on-complete")
        .current_dir(s.dir.path())
        .env_remove("RUST_LOG")
        .output()
        .expect("run the example worker");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let good = good["id"].as_i64().expect("an id").to_string();
    assert_eq!(s.json(&["job", "show", &good])["state"], "succeeded");
    let bad = bad["id"].as_i64().expect("an id").to_string();
    let failed = s.json(&["job", "show", &bad]);
    assert_eq!(failed["state"], "failed");
    let history = s.json(&["job", "history", &bad]);
    let stderr = history[2]["error"]["backtrace"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(stderr.contains("no image in the arguments"), "{stderr}");
}

#[test]
fn a_worker_in_another_process_works_over_http_only_its_queues() {
    let s = Scratch::new();
    setup(&s, "cat > /dev/null");
    let hired: Vec<i64> = (0..3)
        .map(|_| {
            s.json(&["job", "enqueue", "Shell", "--queue", "stuff_to_do"])["id"]
                .as_i64()
                .expect("an id")
        })
        .collect();
    let other = s.json(&["job", "enqueue", "Shell", "--queue", "other"])["id"]
        .as_i64()
        .expect("an id");
    let server = s.serve(&[], "warn");
    let url = server.url.clone();
    assert!(
        url.starts_with("http://127.0.0.1:") && url.ends_with("/outsourced"),
        "{url}"
    );
    s.ok(&["worker", "config", "w1", "--url", &url, "-o", "remote.yml"]);
    let mut config = std::fs::read_to_string(s.path("remote.yml")).expect("the config");
    assert!(config.contains("consumer_secret"), "{config}");
    config.push_str("\ncommands:\n  Shell:\n    program: ./handler.sh\n");
    std::fs::write(s.path("remote.yml"), config).expect("write the config");
    let out = worker(&s, "remote.yml", &["--exit-on-complete"]);
    server.stop();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for id in hired {
        assert_eq!(
            s.json(&["job", "show", &id.to_string()])["state"],
            "succeeded"
        );
    }
    assert_eq!(
        s.json(&["job", "show", &other.to_string()])["state"],
        "available",
        "not hired for it"
    );
    let last_seen = &s.json(&["worker", "show", "w1"])["last_seen_at"];
    assert!(
        last_seen.is_string(),
        "the server noted the worker's contact"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_attachments_past_its_limit() {
    use outsourced_core::{Actor, Backend, Error, NewJob, Upload};
    let s = Scratch::new();
    s.ok(&["queue", "create", "files"]);
    let producer = s.json(&["producer", "create", "shop"]);
    s.ok(&["producer", "grant", "shop", "files"]);
    let server = s.serve(&["--max-attachment-mib", "1"], "warn");
    let key = producer["consumer_key"].as_str().expect("a key");
    let secret = producer["consumer_secret"].as_str().expect("a secret");
    let config = outsourced_backend_http::HttpConfig::new(&server.url, key, secret);
    let client = outsourced_backend_http::HttpBackend::new(config).expect("a client");
    let shop = Actor::Producer("shop".into());
    let job = || NewJob::new("Scan", json!([])).queue("files");
    let big = Upload::from_bytes(vec![0u8; (1 << 20) + 1]);
    let refused = client.enqueue_with_attachment(&shop, job(), big).await;
    assert!(
        matches!(refused, Err(Error::TooLarge { limit }) if limit == 1 << 20),
        "{refused:?}"
    );
    let fits = Upload::from_bytes(vec![0u8; 1 << 20]);
    let stored = client.enqueue_with_attachment(&shop, job(), fits).await;
    assert_eq!(
        stored.expect("within the limit").attachment.map(|a| a.size),
        Some(1 << 20)
    );
    server.stop();
}

/// A handler that, for arguments `[n]` with n > 0, asks for `[n - 1]` as its follow-up; for
/// `[-1]` asks for one and then fails; for `[-2]` writes a line that is no job.
const COUNTDOWN: &str = r#"n=$(tr -d '[] \n')
case "$n" in
  -1) echo '{"class": "Shell", "queue": "stuff_to_do", "args": [5]}' >> "$OUTSOURCED_FOLLOW_UPS"; exit 1 ;;
  -2) echo '{"class": "Shell", "queues": "typo"}' >> "$OUTSOURCED_FOLLOW_UPS" ;;
  0) ;;
  *) echo "{\"class\": \"Shell\", \"queue\": \"stuff_to_do\", \"args\": [$((n - 1))]}" >> "$OUTSOURCED_FOLLOW_UPS" ;;
esac"#;

#[test]
fn a_handlers_follow_ups_are_enqueued_when_it_succeeds_and_only_then() {
    let s = Scratch::new();
    setup(&s, COUNTDOWN);
    let enqueue = |args: &str| {
        let job = s.json(&[
            "job",
            "enqueue",
            "Shell",
            "--queue",
            "stuff_to_do",
            "--args",
            args,
            "--max-attempts",
            "1",
        ]);
        job["id"].as_i64().expect("an id").to_string()
    };
    let (first, failing, garbled) = (enqueue("[2]"), enqueue("[-1]"), enqueue("[-2]"));
    let out = worker(&s, "w1.yml", &["--exit-on-complete"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // [2] asked for [1], which asked for [0]: a chain of three, each the parent of the next.
    let shown = s.json(&["job", "show", &first]);
    let second = shown["follow_ups"][0]
        .as_i64()
        .expect("a follow-up")
        .to_string();
    let child = s.json(&["job", "show", &second]);
    assert_eq!(child["parent"].to_string(), first);
    assert_eq!(child["args"], json!([1]));
    assert_eq!(child["state"], "succeeded");
    let listed = s.json(&["job", "list", "--parent", &second]);
    assert_eq!(listed[0]["args"], json!([0]), "{listed}");
    assert_eq!(listed[0]["state"], "succeeded");
    let text = s.ok(&["job", "show", &second]);
    assert!(text.contains(&format!("parent: {first}")), "{text}");

    // A failed handler's follow-up is not stored; a line that is no job fails its job.
    assert_eq!(s.json(&["job", "show", &failing])["state"], "failed");
    let none = s.json(&["job", "list", "--parent", &failing]);
    assert_eq!(none, json!([]), "a failed job's follow-ups are not stored");
    let garbled = s.json(&["job", "show", &garbled]);
    assert_eq!(garbled["state"], "failed");
    let error = garbled["last_error"].as_str().unwrap_or_default();
    assert!(
        error.contains("follow-ups file: line 1") && error.contains("queues"),
        "{error}"
    );
    let counts = s.json(&["job", "count", "--queue", "stuff_to_do"]);
    assert_eq!(counts["succeeded"], 3, "{counts}");
}
