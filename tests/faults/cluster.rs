//! A cluster of real processes on one database: `outsourcer serve` (restartable on its port),
//! `outsourced-worker` processes from the config files `outsourcer worker config` writes, a
//! producer in this process, and the database itself for the checker.

use std::future::Future;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use outsourced_backend_http::{HttpBackend, HttpConfig};
use outsourced_backend_sql::SqlBackend;
use outsourced_core::{Actor, Backend, BackendExt, JobId, JobState, NewJob, Unique};
use serde_json::{Value, json};

use crate::bins::{FreshDatabase, Scratch, Served, Server, bin, log_lines};

/// The queue every scenario works.
pub(crate) const QUEUE: &str = "faults";

/// The job every worker runs: sleeps `args[0]` seconds on its first attempt and `args[1]` (or
/// `args[0]`) on later ones, so that a scenario can make the first attempt outlast a fault.
const JOB: &str = r#"#!/bin/sh
read -r args
set -- $(echo "$args" | tr '[],' '   ')
if [ "$OUTSOURCED_ATTEMPT" = "1" ]; then sleep "$1"; else sleep "${2:-$1}"; fi
"#;

/// Scenarios run one at a time: they kill and restart what they share. (An async mutex: each
/// test has a runtime of its own, and holds it across its awaits.)
pub(crate) async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    ONE_AT_A_TIME.lock().await
}

/// Prints one line of what a scenario did or checked.
pub(crate) fn say(scenario: &str, what: impl std::fmt::Display) {
    eprintln!("[{scenario}] {what}");
}

/// Waits, polling every 50 ms, until `ready` answers `Ok`. The wait follows progress: until
/// then `ready` answers what it sees (`Err`), and the wait fails only once that has not changed
/// for `stall`, saying what it saw last.
pub(crate) async fn wait_until<F, Fut>(what: &str, stall: Duration, mut ready: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let (mut last, mut since) = (None, Instant::now());
    while let Err(seen) = ready().await {
        if last.as_ref() != Some(&seen) {
            (last, since) = (Some(seen), Instant::now());
        }
        assert!(
            since.elapsed() < stall,
            "gave up waiting until {what}: nothing changed for {} s; last seen: {}",
            stall.as_secs(),
            last.unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The processes of one scenario and its database.
pub(crate) struct Cluster {
    pub(crate) scratch: Scratch,
    server: Option<Served>,
    /// Where the server listens; a restart binds the same address.
    bind: String,
    /// The API's URL, mount included.
    pub(crate) url: String,
    producer: Value,
    /// The database, as the checker sees it.
    pub(crate) sql: SqlBackend,
    fresh: Option<FreshDatabase>,
}

impl Cluster {
    /// On a SQLite file of its own.
    pub(crate) async fn sqlite() -> Cluster {
        Cluster::on(Scratch::new(), None).await
    }

    /// On a fresh PostgreSQL database; `None` (said loudly) when none is configured.
    pub(crate) async fn postgres(what: &str) -> Option<Cluster> {
        let url = Server::Postgres.url()?;
        let fresh = FreshDatabase::create(&url, what).await;
        Some(Cluster::on(Scratch::on(&fresh.url), Some(fresh)).await)
    }

    async fn on(scratch: Scratch, fresh: Option<FreshDatabase>) -> Cluster {
        scratch.ok(&["queue", "create", QUEUE, "--unlimited"]);
        let producer = scratch.json(&["producer", "create", "p1"]);
        scratch.ok(&["producer", "grant", "p1", QUEUE]);
        std::fs::write(scratch.path("job.sh"), JOB).expect("write the job");
        make_executable(&scratch.path("job.sh"));
        let server = scratch.serve(&[], "warn");
        let url = server.url.clone();
        let bind = url
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let mut config = outsourced_backend_sql::SqlConfig::new(scratch.database());
        config.idle_recheck = Duration::from_secs(600);
        let sql = SqlBackend::open(config).await.expect("open the database");
        Cluster {
            scratch,
            server: Some(server),
            bind,
            url,
            producer,
            sql,
            fresh,
        }
    }

    /// The producer, a client of the server signing as `p1`.
    pub(crate) fn producer(&self) -> Arc<HttpBackend> {
        let key = self.producer["consumer_key"].as_str().unwrap_or_default();
        let secret = self.producer["consumer_secret"]
            .as_str()
            .unwrap_or_default();
        let mut config = HttpConfig::new(&self.url, key, secret);
        config.timeout = Duration::from_secs(10);
        Arc::new(HttpBackend::new(config).expect("a client"))
    }

    /// Enqueues a job that sleeps `first` seconds on its first attempt and `later` on the
    /// others; tries again (signed afresh) until the server acknowledges it, and returns its
    /// id. The job has a unique key of its own, so that a try whose answer was lost (stored,
    /// unacknowledged) is found by the next try instead of stored again.
    pub(crate) async fn enqueue(producer: &HttpBackend, first: f64, later: f64) -> JobId {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let key = format!("fault-{}-{n}", std::process::id());
        let once = Unique::key(key).period(Duration::from_secs(3600));
        let job = NewJob::new("Sleep", json!([first, later]))
            .queue(QUEUE)
            .unique(once);
        let by = Actor::Producer("p1".into());
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            match producer.enqueue(&by, job.clone()).await {
                Ok(record) => return record.id,
                Err(error) if Instant::now() < deadline && error.is_retryable() => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => panic!("an enqueue failed for good: {error}"),
            }
        }
    }

    /// Starts worker `name` (created and hired on first use) with 2 s leases and `extra`
    /// lines of config; `wrapper` runs it under another program (`faketime`, say).
    pub(crate) fn worker(&self, name: &str, extra: &str, wrapper: &[&str]) -> WorkerProcess {
        let file = format!("{name}.yml");
        if !self.scratch.path(&file).exists() {
            self.scratch.ok(&["worker", "create", name]);
            self.scratch.ok(&["queue", "hire", QUEUE, name]);
            let url = self.url.as_str();
            self.scratch
                .ok(&["worker", "config", name, "--url", url, "-o", &file]);
            let mut config = std::fs::read_to_string(self.scratch.path(&file)).expect("config");
            config.push_str("\nlease: 2s\nidle_wait: 2s\nconcurrency: 4\nshutdown_grace: 1s\n");
            config.push_str(extra);
            config.push_str("\ncommands:\n  Sleep:\n    program: ./job.sh\n");
            std::fs::write(self.scratch.path(&file), config).expect("write the config");
        }
        let (program, args): (String, Vec<String>) = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut args: Vec<String> = rest.iter().map(|s| s.to_string()).collect();
                args.push(bin("outsourced-worker").display().to_string());
                (first.to_string(), args)
            }
            None => (bin("outsourced-worker").display().to_string(), Vec::new()),
        };
        let child = Command::new(program)
            .args(args)
            .arg("--config")
            .arg(self.scratch.path(&file))
            .current_dir(self.scratch.dir.path())
            .env("RUST_LOG", "info")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start a worker");
        WorkerProcess::new(name, child)
    }

    /// Kills the server with SIGKILL: no drain, whatever was in flight is cut off.
    pub(crate) fn kill_server(&mut self) {
        if let Some(server) = self.server.take() {
            server.kill();
        }
    }

    /// Starts the server again on the same address.
    pub(crate) fn restart_server(&mut self) {
        assert!(self.server.is_none(), "the server still runs");
        self.server = Some(self.scratch.serve_on(&self.bind, &[], "warn"));
    }

    /// The server's process id.
    pub(crate) fn server_pid(&self) -> Option<u32> {
        self.server.as_ref().map(Served::pid)
    }

    /// How many of the queue's jobs are in `state`.
    pub(crate) async fn count(&self, state: JobState) -> u64 {
        let info = self.sql.queue(&admin(), QUEUE).await.expect("the queue");
        info.counts.get(state)
    }

    /// `Ok` when `done`, else what the queue holds now (its jobs by state, and who runs which),
    /// for [`wait_until`] to follow and to report.
    pub(crate) async fn unless(&self, done: bool) -> Result<(), String> {
        if done {
            return Ok(());
        }
        let counts = match self.sql.queue(&admin(), QUEUE).await {
            Ok(info) => format!("{:?}", info.counts),
            Err(error) => format!("(the queue could not be read: {error})"),
        };
        let filter = outsourced_core::JobFilter {
            queue: Some(QUEUE.into()),
            state: Some(JobState::Running),
            limit: 1000,
            ..Default::default()
        };
        let running: Vec<String> = (self.sql.jobs(&admin(), filter).await)
            .unwrap_or_default()
            .iter()
            .filter_map(|job| Some(format!("{} by {}", job.id, job.lease.as_ref()?.holder)))
            .collect();
        Err(format!("jobs {counts}; running: [{}]", running.join(", ")))
    }

    /// The jobs running under worker `name` now, with their attempt.
    pub(crate) async fn held_by(&self, name: &str) -> Vec<(JobId, u32)> {
        let filter = outsourced_core::JobFilter {
            queue: Some(QUEUE.into()),
            state: Some(JobState::Running),
            limit: 1000,
            ..Default::default()
        };
        let running = self.sql.jobs(&admin(), filter).await.expect("list jobs");
        running
            .into_iter()
            .filter(|job| job.lease.as_ref().is_some_and(|l| l.holder.worker == name))
            .map(|job| (job.id, job.attempts))
            .collect()
    }

    /// Waits until no job of the queue is live (every one has ended). The wait follows
    /// progress: it fails only after `stall` with no job ending, saying how many jobs were
    /// left in which state; a helper of `helpers` that exits fails it at once, with its exit
    /// status and its log.
    pub(crate) async fn wait_until_done(&self, stall: Duration, helpers: &mut [WorkerProcess]) {
        let mut fewest = u64::MAX;
        let mut progress = Instant::now();
        loop {
            helpers.iter_mut().for_each(WorkerProcess::assert_alive);
            // A database that restarts fails some reads; they are tried again.
            if let Ok(info) = self.sql.queue(&admin(), QUEUE).await {
                let live = info.counts.live();
                if live == 0 {
                    return;
                }
                if live < fewest {
                    (fewest, progress) = (live, Instant::now());
                }
                assert!(
                    progress.elapsed() < stall,
                    "no job ended for {} s; left: {:?}",
                    stall.as_secs(),
                    info.counts
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the server and drops a fresh database (the scenario passed).
    pub(crate) async fn finish(mut self) {
        if let Some(server) = self.server.take() {
            server.stop();
        }
        if let Some(fresh) = self.fresh.take() {
            fresh.drop_now().await;
        }
    }
}

/// Who the checker and the waits read as.
pub(crate) fn admin() -> Actor {
    Actor::Admin("faults".into())
}

fn make_executable(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// A worker process and its log lines (standard error), as they come.
pub(crate) struct WorkerProcess {
    pub(crate) name: String,
    child: Child,
    logs: Receiver<String>,
    seen: Vec<String>,
}

impl WorkerProcess {
    /// Watches `child`, whose standard error is piped.
    pub(crate) fn new(name: &str, mut child: Child) -> Self {
        let logs = log_lines(&mut child);
        WorkerProcess {
            name: name.to_owned(),
            child,
            logs,
            seen: Vec::new(),
        }
    }

    /// Its process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`-KILL`, `-STOP`, `-CONT`, `-TERM`) to the process.
    pub(crate) fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args([signal, &pid]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill {signal} {pid}");
    }

    /// Fails at once, with its exit status and its log, when the process has exited: a
    /// scenario must never wait for what a dead helper would have done.
    pub(crate) fn assert_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            self.seen.extend(self.logs.try_iter());
            panic!(
                "{} exited ({status}) while the scenario needed it; its log:\n{}",
                self.name,
                self.seen.join("\n")
            );
        }
    }

    /// Kills it with SIGKILL and reaps it.
    pub(crate) fn kill(mut self) {
        self.signal("-KILL");
        let _ = self.child.wait();
    }

    /// Stops it with SIGTERM and waits for it to exit; returns every log line it wrote.
    pub(crate) fn stop(mut self) -> Vec<String> {
        self.signal("-TERM");
        let _ = self.child.wait();
        let mut seen = std::mem::take(&mut self.seen);
        seen.extend(self.logs.try_iter());
        seen
    }

    /// Waits (up to `limit`) for a log line containing `text` and returns it.
    pub(crate) fn wait_for_log(&mut self, text: &str, limit: Duration) -> String {
        if let Some(line) = self.seen.iter().find(|l| l.contains(text)) {
            return line.clone();
        }
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.logs.recv_timeout(left) {
                Ok(line) if line.contains(text) => return line,
                Ok(line) => self.seen.push(line),
                Err(_) => panic!(
                    "{}: no log line with {text:?} in {:?}",
                    self.name, self.seen
                ),
            }
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
