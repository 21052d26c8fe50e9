//! The real binaries, built once per test run, and a scratch environment to run them in.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use serde_json::Value;

/// The directory cargo puts this test binary's sibling binaries in (`target/debug`).
fn target_dir() -> PathBuf {
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
            "--bins",
        ]);
        if dir.file_name().is_some_and(|n| n == "release") {
            cargo.arg("--release");
        }
        let status = cargo.status().expect("run cargo build");
        assert!(status.success(), "building the binaries failed");
    });
    target_dir().join(name)
}

/// A scratch directory with its own database and server key.
pub(crate) struct Scratch {
    pub(crate) dir: tempfile::TempDir,
}

impl Scratch {
    pub(crate) fn new() -> Self {
        Scratch {
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub(crate) fn database(&self) -> String {
        format!("sqlite://{}", self.path("outsourced.db").display())
    }

    /// `outsourcer ARGS` in this scratch environment.
    pub(crate) fn outsourcer(&self, args: &[&str]) -> Output {
        Command::new(bin("outsourcer"))
            .args(args)
            .current_dir(self.dir.path())
            .env("OUTSOURCED_DATABASE_URL", self.database())
            .env("OUTSOURCED_KEY_FILE", self.path("server.key"))
            .env_remove("OUTSOURCED_SERVER_KEY")
            .env_remove("RUST_LOG")
            .output()
            .expect("run outsourcer")
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
