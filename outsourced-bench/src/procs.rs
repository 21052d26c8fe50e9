//! The processes of the bench's HTTP rig: `outsourcer serve` on the bench's database and
//! `outsourced-bench worker` processes that talk to it over loopback, as in production; their
//! memory, read from `/proc`.

use std::path::Path;
use std::process::Stdio;

use outsourced_core::{Error, Result};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};

use super::scenarios::Crew;

fn failed(what: &str, error: impl std::fmt::Display) -> Error {
    Error::invalid(format!("the bench could not {what}: {error}"))
}

/// `outsourcer` from beside this binary (cargo builds both into one target directory), or
/// this binary itself.
fn sibling(name: Option<&str>) -> Result<Command> {
    let exe = std::env::current_exe().map_err(|e| failed("find its own binary", e))?;
    let exe = match name {
        Some(name) => exe.with_file_name(name),
        None => exe,
    };
    if !exe.exists() {
        return Err(failed(
            "find outsourcer beside it",
            format!(
                "no {}: `cargo build --release -p outsourcer -p outsourced-bench`",
                exe.display()
            ),
        ));
    }
    let mut command = Command::new(exe);
    command.kill_on_drop(true).env("RUST_LOG", "error");
    Ok(command)
}

fn outsourcer() -> Result<Command> {
    sibling(Some("outsourcer"))
}

/// `outsourcer serve` on `database`, with the server key in `key_file`; returns the process
/// and the API's URL, once it listens.
pub(crate) async fn serve(database: &str, key_file: &Path) -> Result<(Child, String)> {
    let mut command = outsourcer()?;
    command
        .args(["--database", database, "--key-file"])
        .arg(key_file)
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stdout(Stdio::piped());
    let mut child = command.spawn().map_err(|e| failed("start the server", e))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| failed("read the server", "no stdout"))?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .await
        .map_err(|e| failed("read the server's address", e))?;
    // "serving http://127.0.0.1:PORT/outsourced (database ...)"
    let url = line
        .split_whitespace()
        .nth(1)
        .filter(|url| url.starts_with("http"))
        .ok_or_else(|| failed("start the server", format!("it said {line:?}")))?;
    Ok((child, url.to_owned()))
}

/// Who a bench worker process signs as.
pub(crate) struct Signer<'a> {
    pub(crate) url: &'a str,
    pub(crate) key: &'a str,
    pub(crate) secret: &'a str,
}

/// A bench worker process with `instances` workers of `crew`'s shape on `queue`.
pub(crate) fn worker(
    signer: &Signer<'_>,
    queue: &str,
    crew: Crew,
    instances: usize,
    exit_when_done: bool,
) -> Result<Child> {
    let mut command = sibling(None)?;
    command
        .args(["worker", "--url", signer.url, "--key", signer.key])
        .args(["--secret", signer.secret, "--queue", queue])
        .args(["--concurrency", &crew.concurrency.to_string()])
        .args(["--batch", &crew.batch.to_string()])
        .args(["--instances", &instances.to_string()])
        .stdout(Stdio::piped());
    if exit_when_done {
        command.arg("--exit-when-done");
    }
    command.spawn().map_err(|e| failed("start a worker", e))
}

/// Asks a process to stop as an operator would (SIGTERM): a worker drains and exits.
pub(crate) async fn terminate(child: &Child) -> Result<()> {
    let pid = child
        .id()
        .ok_or_else(|| failed("stop a worker", "it has exited"))?;
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await
        .map_err(|e| failed("signal a worker", e))?;
    match status.success() {
        true => Ok(()),
        false => Err(failed("signal a worker", status)),
    }
}

/// Waits for a bench worker process to exit and returns the waits it printed.
pub(crate) async fn waits_of(mut child: Child) -> Result<Vec<i64>> {
    let mut out = String::new();
    if let Some(mut stdout) = child.stdout.take() {
        stdout
            .read_to_string(&mut out)
            .await
            .map_err(|e| failed("read a worker", e))?;
    }
    let status = child
        .wait()
        .await
        .map_err(|e| failed("wait for a worker", e))?;
    if !status.success() {
        return Err(failed("run a worker", status));
    }
    let line: serde_json::Value =
        serde_json::from_str(out.trim()).map_err(|e| failed("read a worker's figures", e))?;
    let waits = line["waits_us"].as_array().cloned().unwrap_or_default();
    Ok(waits.iter().filter_map(serde_json::Value::as_i64).collect())
}

/// A process's resident memory now and at its peak, in KiB.
pub(crate) fn memory(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find_map(|l| l.strip_prefix(name))?;
        line.trim().trim_end_matches("kB").trim().parse().ok()
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}
