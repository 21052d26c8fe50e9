//! The real binaries, built once per test run, and a scratch environment to run them in.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use outsourced_backend_sql::sea_orm::{ConnectionTrait, Database, DatabaseConnection};
use serde_json::Value;

/// The directory cargo puts this test binary's sibling binaries in (`target/debug`).
pub(crate) fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/<profile>/deps/it-<hash>
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .expect("the target directory")
}

/// The path of a workspace binary, built (or found up to date) on first use.
pub(crate) fn bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = target_dir();
        let mut cargo = Command::new(env!("CARGO"));
        cargo.args([
            "build",
            "--quiet",
            "-p",
            "outsourcer",
            "-p",
            "outsourced-worker",
            "-p",
            "outsourced-bench",
            "--bins",
        ]);
        if dir.file_name().is_some_and(|n| n == "release") {
            cargo.arg("--release");
        }
        // Without what cargo set for this test's own run: a build script that reads one of
        // them (ring's reads CARGO_MANIFEST_DIR) would see it changed, and ring and all that
        // depends on it would be built again here and again by the next `cargo test`, minutes
        // each time.
        for (name, _) in std::env::vars_os() {
            if name.to_str().is_some_and(set_for_the_test) {
                cargo.env_remove(&name);
            }
        }
        let status = cargo.status().expect("run cargo build");
        assert!(status.success(), "building the binaries failed");
    });
    target_dir().join(name)
}

/// Whether `name` is a variable cargo sets for the crate it runs (a test), not configuration.
fn set_for_the_test(name: &str) -> bool {
    const PREFIXES: [&str; 3] = ["CARGO_PKG_", "CARGO_BIN_EXE_", "CARGO_MANIFEST_"];
    const NAMES: [&str; 5] = [
        "CARGO_CRATE_NAME",
        "CARGO_PRIMARY_PACKAGE",
        "CARGO_TARGET_TMPDIR",
        "CARGO_RUSTC_CURRENT_DIR",
        "OUT_DIR",
    ];
    PREFIXES.iter().any(|p| name.starts_with(p)) || NAMES.contains(&name)
}

/// A scratch directory with its own database (a SQLite file in it, unless told otherwise) and
/// server key.
pub(crate) struct Scratch {
    pub(crate) dir: tempfile::TempDir,
    database: Option<String>,
}

impl Scratch {
    pub(crate) fn new() -> Self {
        Scratch {
            dir: tempfile::tempdir().expect("a temporary directory"),
            database: None,
        }
    }

    /// The same, on the database at `url`.
    pub(crate) fn on(url: &str) -> Self {
        Scratch {
            database: Some(url.to_owned()),
            ..Scratch::new()
        }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub(crate) fn database(&self) -> String {
        match &self.database {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.path("outsourced.db").display()),
        }
    }

    /// `outsourcer ARGS` in this scratch environment.
    pub(crate) fn outsourcer(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run outsourcer")
    }

    /// `outsourcer ARGS` in the scratch directory, on its database and key, to be run.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(bin("outsourcer"));
        command
            .args(args)
            .current_dir(self.dir.path())
            .env("OUTSOURCED_DATABASE_URL", self.database())
            .env("OUTSOURCED_KEY_FILE", self.path("server.key"))
            .env_remove("OUTSOURCED_SERVER_KEY")
            .env_remove("RUST_LOG");
        command
    }

    /// `outsourcer ARGS` with `input` on its standard input.
    pub(crate) fn with_input(&self, args: &[&str], input: &str) -> Output {
        use std::io::Write;
        let mut child = self
            .command(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run outsourcer");
        let mut stdin = child.stdin.take().expect("its standard input");
        // A command refused before it reads (a usage error) may be gone already: its answer
        // is in its status, not in a broken pipe here.
        if let Err(error) = stdin.write_all(input.as_bytes()) {
            assert_eq!(
                error.kind(),
                std::io::ErrorKind::BrokenPipe,
                "write the input: {error}"
            );
        }
        drop(stdin);
        child.wait_with_output().expect("outsourcer's output")
    }

    /// Runs `outsourcer ARGS`, which must succeed, and returns its standard output.
    pub(crate) fn ok(&self, args: &[&str]) -> String {
        let out = self.outsourcer(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "outsourcer {args:?} failed: {stderr}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `outsourcer --json ARGS` and parses its output.
    pub(crate) fn json(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.ok(&all);
        serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("{args:?} printed no JSON ({e}): {out}"))
    }

    /// Runs `outsourcer ARGS`, which must fail with exit status 1 and one line on standard
    /// error; returns that line.
    pub(crate) fn fails(&self, args: &[&str]) -> String {
        let out = self.outsourcer(args);
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        assert_eq!(
            out.status.code(),
            Some(1),
            "outsourcer {args:?} should fail: {stderr}"
        );
        assert!(stderr.starts_with("outsourcer: "), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "one clear sentence: {stderr}");
        stderr
    }
}

/// A running `outsourcer serve`; dropping it stops it.
pub(crate) struct Served {
    child: std::process::Child,
    /// The API's URL.
    pub(crate) url: String,
    /// Its log lines (standard error), as they come.
    pub(crate) logs: std::sync::mpsc::Receiver<String>,
}

impl Scratch {
    /// `outsourcer serve ARGS` on a free port of 127.0.0.1, logging at `log` (a `RUST_LOG`).
    pub(crate) fn serve(&self, args: &[&str], log: &str) -> Served {
        self.serve_on("127.0.0.1:0", args, log)
    }

    /// `outsourcer serve ARGS` on `bind`, logging at `log` (a `RUST_LOG`).
    pub(crate) fn serve_on(&self, bind: &str, args: &[&str], log: &str) -> Served {
        use std::io::BufRead;
        let mut child = Command::new(bin("outsourcer"))
            .args(["serve", "--bind", bind])
            .args(args)
            .current_dir(self.dir.path())
            .env("OUTSOURCED_DATABASE_URL", self.database())
            .env("OUTSOURCED_KEY_FILE", self.path("server.key"))
            .env("RUST_LOG", log)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start the server");
        let stdout = child.stdout.take().expect("its output");
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the server says where it listens");
        let url = line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        assert!(url.starts_with("http://"), "not serving: {line}");
        let logs = log_lines(&mut child);
        Served { child, url, logs }
    }
}

impl Served {
    /// Waits (up to a minute, then fails) for a log line containing `text`.
    pub(crate) fn wait_for_log(&self, text: &str) -> String {
        wait_for_line(&self.logs, text)
    }

    /// Stops it with SIGTERM, as an operator would, and waits for it to exit.
    pub(crate) fn stop(mut self) {
        self.terminate();
    }

    /// Kills it with SIGKILL, as a crash would: no shutdown, no drain.
    #[allow(dead_code)] // the fault suite's
    pub(crate) fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Its process id.
    #[allow(dead_code)] // the fault suite's
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    fn terminate(&mut self) {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let _ = self.child.wait();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.terminate();
        }
    }
}

/// A database server the tests may use, from its environment variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Server {
    Postgres,
    MariaDb,
}

impl Server {
    fn variable(self) -> &'static str {
        match self {
            Server::Postgres => "OUTSOURCED_TEST_POSTGRES_URL",
            Server::MariaDb => "OUTSOURCED_TEST_MYSQL_URL",
        }
    }

    /// The server's URL; `None` (and a loud note) when it is not configured, except under
    /// `CI=true`, where a missing server fails the test.
    pub(crate) fn url(self) -> Option<String> {
        match std::env::var(self.variable()) {
            Ok(url) if !url.is_empty() => Some(url),
            _ if std::env::var("CI").is_ok_and(|ci| ci == "true") => {
                panic!("{} must be set under CI=true", self.variable())
            }
            _ => {
                eprintln!(
                    "SKIPPED: {:?} tests need {} (see CONTRIBUTING.md)",
                    self,
                    self.variable()
                );
                None
            }
        }
    }
}

/// A fresh PostgreSQL database (not a schema: the CLI takes a URL), dropped by `drop_now`.
pub(crate) struct FreshDatabase {
    admin: DatabaseConnection,
    name: String,
    /// Its URL.
    pub(crate) url: String,
}

impl FreshDatabase {
    /// A database named `ots_{what}_PID` next to the one `url` names.
    pub(crate) async fn create(url: &str, what: &str) -> FreshDatabase {
        let admin = Database::connect(url).await.expect("reach PostgreSQL");
        let name = format!("ots_{what}_{}", std::process::id());
        let drop = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        admin.execute_unprepared(&drop).await.expect("drop");
        let create = format!("CREATE DATABASE {name}");
        admin.execute_unprepared(&create).await.expect("create");
        let base = url.rsplit_once('/').map_or(url, |(base, _)| base);
        let url = format!("{base}/{name}");
        FreshDatabase { admin, name, url }
    }

    /// Drops it (the test passed; a failed one leaves it to look at).
    pub(crate) async fn drop_now(self) {
        let drop = format!("DROP DATABASE {} WITH (FORCE)", self.name);
        self.admin.execute_unprepared(&drop).await.expect("drop");
    }
}

/// Waits (up to a minute, then fails) for a line containing `text`; the lines before it are
/// passed over.
pub(crate) fn wait_for_line(lines: &std::sync::mpsc::Receiver<String>, text: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(text) => return line,
            Ok(_) => {}
            Err(error) => panic!("no line with {text:?}: {error}"),
        }
    }
}

impl Scratch {
    /// `outsourced-worker --config CONFIG` (a file of the scratch directory) in the background,
    /// logging at info to a piped standard error (see [`log_lines`]).
    pub(crate) fn start_worker(&self, config: &str) -> std::process::Child {
        Command::new(bin("outsourced-worker"))
            .arg("--config")
            .arg(self.path(config))
            .env("RUST_LOG", "info")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start the worker")
    }
}

/// The lines a child writes to its stderr (piped), as they come, read by a thread of its own
/// so that the child never blocks on a full pipe.
pub(crate) fn log_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (send, logs) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().expect("its logs");
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if send.send(line).is_err() {
                return;
            }
        }
    });
    logs
}
