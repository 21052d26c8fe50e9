//! The road a new user walks, through the real binaries: the README's admin flow as written,
//! a worker that the directory directs, mistakes (a wrong secret, a server that is down, a
//! URL without the mount, a mistyped database), and output piped into `head`.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::bins::{FreshDatabase, Scratch, Server, bin, log_lines, target_dir, wait_for_line};

/// The README's admin flow: the block between `<!-- admin-flow -->` markers.
fn readme_block() -> String {
    let readme = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md");
    let text = std::fs::read_to_string(readme).expect("the README");
    let block = text
        .split("<!-- admin-flow -->")
        .nth(1)
        .expect("the README marks its admin flow");
    let body = block.split("```sh\n").nth(1).expect("a sh block");
    body.split("\n```").next().expect("its end").to_owned()
}

/// A TCP port nobody listens on now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    listener.local_addr().expect("its address").port()
}

#[cfg(unix)]
#[test]
fn the_readme_admin_flow_runs_as_written_and_ends_with_the_job_succeeded() {
    use std::os::unix::process::CommandExt;
    let s = Scratch::new();
    // As written, but on a free port (8080 may be taken where the tests run).
    let block = readme_block().replace("8080", &free_port().to_string());
    // At its end the block's shell stops what it started in the background (the server), by
    // signalling its own group while it still exists: a group signalled after its leader was
    // reaped may by then be another program's (process ids are reused).
    let script = format!("trap 'trap \"\" TERM; kill 0' EXIT\n{block}");
    let path = format!(
        "{}:{}",
        target_dir().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    bin("outsourcer");
    let mut shell = Command::new("sh");
    shell
        .args(["-e", "-c", &script])
        .current_dir(s.dir.path())
        .env("PATH", path)
        .env("HOME", s.dir.path())
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("OUTSOURCED_DATABASE_URL")
        .env_remove("OUTSOURCED_KEY_FILE")
        .env_remove("OUTSOURCED_SERVER_KEY")
        .env_remove("RUST_LOG")
        // Files, not pipes: the server it starts in the background keeps its output open.
        .stdout(std::fs::File::create(s.path("flow.out")).expect("a file"))
        .stderr(std::fs::File::create(s.path("flow.err")).expect("a file"))
        // Its own group, so that the server it starts in the background is stopped with it.
        .process_group(0);
    let mut child = shell.spawn().expect("run the README's block");
    let status = child.wait().expect("the block ends");
    let stdout = std::fs::read_to_string(s.path("flow.out")).unwrap_or_default();
    let stderr = std::fs::read_to_string(s.path("flow.err")).unwrap_or_default();
    assert!(status.success(), "a step failed:\n{stdout}\n{stderr}");
    assert!(
        stdout.contains("completed"),
        "the history shows it: {stdout}"
    );
    let database = format!("sqlite://{}", s.path("outsourced.db").display());
    let show = Command::new(bin("outsourcer"))
        .args(["--database", &database, "--json", "job", "show", "1"])
        .env("OUTSOURCED_KEY_FILE", s.path("key"))
        .output()
        .expect("outsourcer job show");
    let job: serde_json::Value = serde_json::from_slice(&show.stdout).expect("JSON");
    assert_eq!(job["state"], "succeeded", "{stdout}\n{stderr}");
}

/// A worker next to the database whose handler says it started (a FIFO) and exits at once.
fn db_worker(s: &Scratch, name: &str, extra: &str) -> std::process::Child {
    let script = s.path("job.sh");
    std::fs::write(&script, "#!/bin/sh\ncat > /dev/null\n").expect("write the handler");
    make_executable(&script);
    s.ok(&["worker", "config", name, "-o", &format!("{name}.yml")]);
    let mut config = std::fs::read_to_string(s.path(&format!("{name}.yml"))).expect("config");
    config.push_str(&format!(
        "commands:\n  Job:\n    program: ./job.sh\n{extra}"
    ));
    std::fs::write(s.path(&format!("{name}.yml")), config).expect("write the config");
    s.start_worker(&format!("{name}.yml"))
}

/// Runs `outsourced-worker` in the scratch directory to its end (errors only in its log).
fn run_worker(s: &Scratch, args: &[&str]) -> std::process::Output {
    Command::new(bin("outsourced-worker"))
        .args(args)
        .current_dir(s.dir.path())
        .env("RUST_LOG", "error")
        .output()
        .expect("run the worker")
}

fn make_executable(path: &std::path::Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }
}

fn terminate(child: &mut std::process::Child) -> std::process::ExitStatus {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    child.wait().expect("the process exits")
}

#[test]
fn a_hire_reaches_a_running_worker_without_a_restart() {
    let s = Scratch::new();
    s.ok(&["queue", "create", "first"]);
    s.ok(&["queue", "create", "second"]);
    s.ok(&["worker", "create", "w1"]);
    s.ok(&["queue", "hire", "first", "w1"]);
    let mut worker = db_worker(&s, "w1", "idle_wait: 1s\n");
    let logs = log_lines(&mut worker);
    let job = s.json(&["job", "enqueue", "Job", "--queue", "second"]);
    let id = job["id"].as_i64().expect("an id");
    wait_for_line(&logs, "Starting job worker");
    s.ok(&["queue", "hire", "second", "w1"]);
    let line = wait_for_line(&logs, &format!("(id={id})"));
    assert!(
        line.contains("RUNNING (attempt 1 of"),
        "its start first: {line}"
    );
    wait_for_line(&logs, &format!("(id={id}) (queue=second) COMPLETED"));
    s.ok(&["queue", "fire", "second", "w1"]);
    assert!(terminate(&mut worker).success());
}

#[test]
fn a_worker_says_what_in_its_config_it_will_not_work() {
    let s = Scratch::new();
    s.ok(&["queue", "create", "mine"]);
    s.ok(&["queue", "create", "theirs"]);
    s.ok(&["worker", "create", "w1"]);
    s.ok(&["queue", "hire", "mine", "w1"]);
    let mut worker = db_worker(&s, "w1", "queues: [theirs, ghost, mien]\n");
    let logs = log_lines(&mut worker);
    // In the order the config names them.
    let theirs = wait_for_line(&logs, "not hired for");
    assert!(
        theirs.contains("theirs") && theirs.contains("queue hire"),
        "{theirs}"
    );
    let ghost = wait_for_line(&logs, "does not exist");
    assert!(ghost.contains("ghost"), "{ghost}");
    let typo = wait_for_line(&logs, "did you mean mine?");
    assert!(typo.contains("mien"), "{typo}");
    assert!(terminate(&mut worker).success());
    // Not in the directory at all: refused, unless the config names its queues.
    let config = std::fs::read_to_string(s.path("w1.yml")).expect("config");
    let stranger = config
        .replace("worker: w1", "worker: stranger")
        .replace("queues: [theirs, ghost, mien]\n", "");
    std::fs::write(s.path("stranger.yml"), &stranger).expect("write");
    let out = run_worker(&s, &["--config", "stranger.yml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("not in the directory") && stderr.contains("worker create stranger"),
        "{stderr}"
    );
    let named = format!("{stranger}queues: [mine]\n");
    std::fs::write(s.path("stranger.yml"), named).expect("write");
    let out = run_worker(&s, &["--config", "stranger.yml", "--exit-on-complete"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_config_that_runs_nothing_is_refused_naming_what_to_fix() {
    let s = Scratch::new();
    s.ok(&["worker", "create", "w1"]);
    s.ok(&["worker", "config", "w1", "-o", "w1.yml"]);
    let out = run_worker(&s, &["--config", "w1.yml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.contains("runs no job class") && stderr.contains("`commands:`"),
        "{stderr}"
    );
    let mut config = std::fs::read_to_string(s.path("w1.yml")).expect("config");
    config.push_str("commands:\n  Thumbnail:\n    program: ./thumbnail.sh\n");
    std::fs::write(s.path("w1.yml"), config).expect("write");
    let out = run_worker(&s, &["--config", "w1.yml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("`commands.Thumbnail.program`") && stderr.contains("does not exist"),
        "{stderr}"
    );
}

#[test]
fn a_worker_whose_credentials_are_refused_stops_and_says_why() {
    let s = Scratch::new();
    s.ok(&["queue", "create", "q"]);
    s.ok(&["worker", "create", "w1"]);
    s.ok(&["queue", "hire", "q", "w1"]);
    let server = s.serve(&[], "warn");
    s.ok(&[
        "worker",
        "config",
        "w1",
        "--url",
        &server.url,
        "-o",
        "w1.yml",
    ]);
    let config = std::fs::read_to_string(s.path("w1.yml")).expect("config");
    let wrong = config.replace("consumer_secret: ", "consumer_secret: x");
    std::fs::write(s.path("w1.yml"), format!("{wrong}\ncatch_all: true\n")).expect("write");
    // A wrong secret: refused before the worker starts, once.
    let out = run_worker(&s, &["--config", "w1.yml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let last = stderr.trim().lines().last().unwrap_or_default();
    assert!(
        last.contains("refused this config's credentials")
            && last.contains("invalid_signature")
            && last.contains("consumer_secret")
            && last.contains("outsourcer worker config w1 --url"),
        "{last}"
    );
    assert!(!stderr.contains("refusals="), "said once: {stderr}");
    // An https:// URL to a server that speaks plain HTTP: no wait mends it.
    let tls = config.replace("url: http://", "url: https://");
    assert_ne!(tls, config, "the config names its URL: {config}");
    std::fs::write(s.path("w1.yml"), format!("{tls}\ncatch_all: true\n")).expect("write");
    let out = run_worker(&s, &["--config", "w1.yml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot talk to the server") && stderr.contains("TLS failed"),
        "{stderr}"
    );
    // A scheme mistyped is the config's mistake, said before anything is sent.
    let typo = config.replace("url: http://", "url: htp://");
    std::fs::write(s.path("w1.yml"), format!("{typo}\ncatch_all: true\n")).expect("write");
    let out = run_worker(&s, &["--config", "w1.yml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`backend.http.url`"), "{stderr}");
    // Worker w1's keys under another worker's name: the server says whose they are.
    let renamed = config.replacen("worker: w1", "worker: w2", 1);
    assert_ne!(renamed, config, "the config names its worker: {config}");
    std::fs::write(s.path("w1.yml"), format!("{renamed}\ncatch_all: true\n")).expect("write");
    let out = run_worker(&s, &["--config", "w1.yml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("these credentials are worker w1's")
            && stderr.contains("names worker \"w2\""),
        "{stderr}"
    );
    assert!(!stderr.contains("refusals="), "said once: {stderr}");
    // A producer's credentials in a worker's config: refused at once, as not a worker's.
    let made = s.json(&["producer", "create", "shop"]);
    let (key, secret) = (&made["consumer_key"], &made["consumer_secret"]);
    let theirs: String = config
        .lines()
        .map(|line| match line.trim_start() {
            l if l.starts_with("consumer_key:") => {
                format!("    consumer_key: {}", key.as_str().unwrap_or_default())
            }
            l if l.starts_with("consumer_secret:") => format!(
                "    consumer_secret: {}",
                secret.as_str().unwrap_or_default()
            ),
            _ => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(s.path("w1.yml"), format!("{theirs}\ncatch_all: true\n")).expect("write");
    let out = run_worker(&s, &["--config", "w1.yml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("are not a worker's") && stderr.contains("a producer may not"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("refusals="),
        "said once, not tried again: {stderr}"
    );
}

/// `outsourcer serve`'s mount, with or without a trailing slash, leads to the dashboard.
#[test]
fn the_mount_leads_to_the_dashboard() {
    let s = Scratch::new();
    let server = s.serve(&[], "warn");
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    for path in ["", "/", "/dashboard/"] {
        let url = format!("{}{path}", server.url);
        let answer = runtime
            .block_on(client.get(&url).send())
            .expect("an answer");
        assert_eq!(answer.status(), reqwest::StatusCode::SEE_OTHER, "{url}");
        assert_eq!(
            answer.headers()["location"],
            "/outsourced/dashboard",
            "{url}"
        );
    }
}

#[test]
fn errors_keep_their_cause() {
    use outsourced_backend_http::{HttpBackend, HttpConfig};
    use outsourced_core::{Actor, Backend};
    let s = Scratch::new();
    let server = s.serve(&[], "warn");
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let ask = |url: &str| {
        let backend = HttpBackend::new(HttpConfig::new(url, "k", "s")).expect("a client");
        let asked = runtime.block_on(backend.queues(&Actor::Admin("a".into())));
        asked.err().map(|e| e.to_string()).unwrap_or_default()
    };
    let down = ask(&format!("http://127.0.0.1:{}/outsourced", free_port()));
    assert!(down.to_lowercase().contains("connection refused"), "{down}");
    let no_mount = ask(server.url.trim_end_matches("/outsourced"));
    assert!(
        no_mount.contains("must end with the server's mount"),
        "{no_mount}"
    );
    // Past the mount, the API's own 404 (`no_route`) says the same.
    let past = ask(&format!("{}/api", server.url));
    assert!(past.contains("must end with the server's mount"), "{past}");
    // A database server that refuses connections: said at once, with the cause.
    let started = Instant::now();
    let dead = format!("postgres://postgres@127.0.0.1:{}/test", free_port());
    let out = Command::new(bin("outsourcer"))
        .args(["--database", &dead, "queue", "list"])
        .output()
        .expect("run outsourcer");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.to_lowercase().contains("connection refused"),
        "{stderr}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn only_commands_that_set_up_create_a_database() {
    let s = Scratch::new();
    let missing = s.path("typo.db");
    let url = format!("sqlite://{}", missing.display());
    for args in [
        vec!["job", "list"],
        vec!["job", "show", "1"],
        vec!["queue", "list"],
        vec!["worker", "list"],
        vec!["job", "enqueue", "Typo"],
    ] {
        let out = Command::new(bin("outsourcer"))
            .arg("--database")
            .arg(&url)
            .args(&args)
            .output()
            .expect("run outsourcer");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("typo.db") && stderr.contains("outsourcer migrate"),
            "{stderr}"
        );
        assert!(!missing.exists(), "{args:?} created the database");
    }
    // The demo keeps its files in a directory of its own.
    s.ok(&["demo", "--jobs", "20"]);
    let left: Vec<_> = std::fs::read_dir(s.dir.path())
        .expect("the directory")
        .filter_map(Result::ok)
        .map(|entry| entry.file_name())
        .collect();
    assert!(left.is_empty(), "the demo left {left:?}");
}

#[test]
fn output_piped_into_a_reader_that_stops_ends_quietly() {
    let s = Scratch::new();
    let lines: String = (0..1500)
        .map(|i| format!("{{\"class\": \"C{i}\"}}\n"))
        .collect();
    std::fs::write(s.path("jobs.jsonl"), lines).expect("write");
    s.ok(&["migrate"]);
    s.ok(&["job", "enqueue", "--from", "jobs.jsonl"]);
    let mut child = Command::new(bin("outsourcer"))
        .args(["job", "list", "--limit", "1000"])
        .env("OUTSOURCED_DATABASE_URL", s.database())
        .env("OUTSOURCED_KEY_FILE", s.path("server.key"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run outsourcer");
    let mut first = String::new();
    let stdout = child.stdout.take().expect("its output");
    std::io::BufReader::new(stdout)
        .read_line(&mut first)
        .expect("a line");
    // The reader goes, as `head -1` does.
    let out = child.wait_with_output().expect("it exits");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{:?}: {stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn help_says_the_defaults_and_the_states() {
    let s = Scratch::new();
    let create = s.ok(&["queue", "create", "--help"]);
    assert!(create.contains("10000"), "{create}");
    let list = s.ok(&["job", "list", "--help"]);
    assert!(
        list.contains("scheduled") && list.contains("cancelled"),
        "{list}"
    );
    let enqueue = s.ok(&["job", "enqueue", "--help"]);
    assert!(enqueue.contains("All or none"), "{enqueue}");
}

#[test]
fn a_file_of_jobs_is_all_or_none() {
    let s = Scratch::new();
    s.ok(&["queue", "create", "small", "--limit", "1200"]);
    let lines: String = (0..1500)
        .map(|i| json!({"class": "C", "args": [i], "queue": "small"}).to_string() + "\n")
        .collect();
    std::fs::write(s.path("jobs.jsonl"), lines).expect("write");
    let refused = s.fails(&["job", "enqueue", "--from", "jobs.jsonl"]);
    assert!(refused.contains("nothing was enqueued"), "{refused}");
    assert_eq!(
        s.json(&["job", "count", "--queue", "small"])["available"],
        0
    );
}

/// Starts a worker next to `database` that long-polls one queue, enqueues one job from the
/// CLI, and returns the time from the enqueue's history row to the reserve's.
fn enqueue_to_start(database: &str) -> Duration {
    let s = Scratch::on(database);
    let (queue, name) = (
        format!("wake{}", std::process::id()),
        format!("waker{}", std::process::id()),
    );
    s.ok(&["queue", "create", &queue]);
    s.ok(&["worker", "create", &name]);
    s.ok(&["queue", "hire", &queue, &name]);
    // A long idle wait: only a wake-up starts the job soon.
    let mut worker = db_worker(&s, &name, "idle_wait: 30s\n");
    let logs = log_lines(&mut worker);
    wait_for_line(&logs, "Starting job worker");
    let job = s.json(&["job", "enqueue", "Job", "--queue", &queue]);
    let id = job["id"].as_i64().expect("an id").to_string();
    wait_for_line(&logs, &format!("(id={id})"));
    assert!(terminate(&mut worker).success());
    let history = s.json(&["job", "history", &id]);
    let at = |i: usize| {
        let text = history[i]["at"].as_str().unwrap_or_default().to_owned();
        chrono::DateTime::parse_from_rfc3339(&text).expect("a time")
    };
    (at(1) - at(0)).to_std().unwrap_or_default()
}

#[test]
fn an_enqueue_from_another_process_wakes_a_waiting_worker_on_sqlite() {
    let s = Scratch::new();
    let took = enqueue_to_start(&s.database());
    eprintln!("SQLite, CLI enqueue to start in another process: {took:?}");
    // The idle recheck is 5 s and the worker's poll 30 s: well under either is a wake-up.
    assert!(took < Duration::from_secs(2), "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueue_from_another_process_wakes_a_waiting_worker_on_postgres() {
    let Some(url) = Server::Postgres.url() else {
        return;
    };
    // A database of its own: the CLI refuses a server key that opens none of the secrets it
    // finds, and a shared one holds other runs' principals under other keys.
    let database = FreshDatabase::create(&url, "wake").await;
    let fresh = database.url.clone();
    let took = tokio::task::spawn_blocking(move || enqueue_to_start(&fresh))
        .await
        .expect("the scenario");
    eprintln!("PostgreSQL, CLI enqueue to start in another process: {took:?}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    database.drop_now().await;
}

#[test]
fn serve_logs_json_lines_with_json() {
    let s = Scratch::new();
    let server = s.serve(&["--json"], "info");
    let line = server.wait_for_log("migrations");
    let parsed: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
    assert!(parsed["level"].is_string(), "{parsed}");
}

/// A worker started before its server says once that it waits for it, then that it reached
/// it, instead of an error per retry.
/// Worker w1, hired for queue q, with its config in w1.yml for a server on `port` of
/// 127.0.0.1 (none runs there yet), running a Shell command.
fn hired_for_a_server_on(s: &Scratch, port: u16) {
    s.ok(&["queue", "create", "q"]);
    s.ok(&["worker", "create", "w1"]);
    s.ok(&["queue", "hire", "q", "w1"]);
    let url = format!("http://127.0.0.1:{port}/outsourced");
    s.ok(&["worker", "config", "w1", "--url", &url, "-o", "w1.yml"]);
    let mut config = std::fs::read_to_string(s.path("w1.yml")).expect("the config");
    config.push_str("\ncommands:\n  Shell:\n    program: /bin/true\n");
    std::fs::write(s.path("w1.yml"), config).expect("write the config");
}

#[test]
fn a_worker_started_before_its_server_waits_for_it_and_says_when_it_is_back() {
    let s = Scratch::new();
    let port = free_port();
    hired_for_a_server_on(&s, port);
    let mut worker = s.start_worker("w1.yml");
    let logs = log_lines(&mut worker);
    let waiting = wait_for_line(&logs, "Cannot reach the backend");
    assert!(waiting.contains("WARN"), "{waiting}");
    let server = s.serve_on(&format!("127.0.0.1:{port}"), &[], "warn");
    wait_for_line(&logs, "Reached the backend; working");
    let _ = worker.kill();
    let _ = worker.wait();
    server.stop();
    let errors: Vec<String> = logs.try_iter().filter(|l| l.contains("ERROR")).collect();
    assert!(errors.is_empty(), "{errors:?}");
}

/// A worker started before its server, with a wrong secret: once the server is up, its first
/// refusal stops it (a config waiting does not mend), where it was refused five times.
#[test]
fn a_worker_started_before_its_server_stops_at_its_first_refusal() {
    let s = Scratch::new();
    let port = free_port();
    hired_for_a_server_on(&s, port);
    let config = std::fs::read_to_string(s.path("w1.yml")).expect("the config");
    let wrong = config.replace("consumer_secret: ", "consumer_secret: x");
    std::fs::write(s.path("w1.yml"), wrong).expect("write the config");
    let mut worker = s.start_worker("w1.yml");
    let logs = log_lines(&mut worker);
    wait_for_line(&logs, "Cannot reach the backend");
    let server = s.serve_on(&format!("127.0.0.1:{port}"), &[], "warn");
    let mut seen = Vec::new();
    let last = loop {
        let line = logs
            .recv_timeout(Duration::from_secs(60))
            .expect("its last line");
        seen.push(line.clone());
        if line.contains("outsourced-worker: stopping:") {
            break line;
        }
    };
    let status = worker.wait().expect("the worker's exit");
    server.stop();
    assert_eq!(status.code(), Some(1), "{last}");
    assert!(
        last.contains("refused worker w1's requests")
            && last.contains("invalid_signature")
            && last.contains("consumer_secret"),
        "{last}"
    );
    let retried = seen.iter().any(|l| l.contains("refusals="));
    assert!(!retried, "stopped at the first: {seen:?}");
}

/// A worker that exits on complete, started while its server is down, gives up after its
/// tries (about 50 s of real time: the pauses between them are what is tested) and says why.
#[test]
fn a_worker_that_exits_on_complete_gives_up_on_a_server_that_is_down() {
    let s = Scratch::new();
    hired_for_a_server_on(&s, free_port());
    let out = Command::new(bin("outsourced-worker"))
        .arg("--config")
        .arg(s.path("w1.yml"))
        .arg("--exit-on-complete")
        .env("RUST_LOG", "info")
        .output()
        .expect("run the worker");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("this worker stops after 12 tries in a row"),
        "says so at the first failure: {stderr}"
    );
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("outsourced-worker: stopping: could not reach the backend in 12 tries"),
        "{stderr}"
    );
}

/// A bare path where a database URL belongs is refused, saying how to write it, and creates
/// nothing.
#[test]
fn a_bare_path_for_the_database_says_how_to_write_it() {
    let s = Scratch::new();
    let out = Command::new(bin("outsourcer"))
        .args(["--database", "nope.db", "queue", "create", "q"])
        .current_dir(s.path(""))
        .output()
        .expect("run outsourcer");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("sqlite://nope.db"), "{stderr}");
    assert!(!s.path("nope.db").exists(), "nothing created");
}

/// A refused request is logged with the peer's address and the consumer key it claims, so
/// that an operator can tell who sends a wrong secret.
#[test]
fn a_refused_request_is_logged_with_its_peer_and_the_key_it_claims() {
    use std::io::{Read, Write};
    let s = Scratch::new();
    let server = s.serve(&["--json"], "info");
    let rest = server.url.trim_start_matches("http://");
    let (address, mount) = rest.split_once('/').expect("a mount");
    let now = chrono::Utc::now().timestamp();
    let request = format!(
        "GET /{mount}/v1/queues HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\
         Authorization: OAuth oauth_consumer_key=\"nosuchkey\", \
         oauth_signature_method=\"HMAC-SHA1\", oauth_timestamp=\"{now}\", \
         oauth_nonce=\"n1\", oauth_version=\"1.0\", oauth_signature=\"AAAA\"\r\n\r\n"
    );
    let mut stream = std::net::TcpStream::connect(address).expect("connect");
    stream.write_all(request.as_bytes()).expect("send");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("the answer");
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    let line = server.wait_for_log("refused a request");
    let parsed: serde_json::Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
    let fields = &parsed["fields"];
    assert_eq!(fields["key"], "nosuchkey", "{parsed}");
    let peer = fields["peer"].as_str().unwrap_or_default();
    assert!(peer.starts_with("127.0.0.1:"), "{parsed}");
}
