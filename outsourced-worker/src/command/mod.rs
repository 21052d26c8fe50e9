//! Command handlers: a job class run as a program, so that the stock worker is useful without
//! any Rust. The job's arguments arrive as JSON on standard input, its id, class, queue and
//! attempt in environment variables, its attachment (if any) as a file whose path is in
//! `OUTSOURCED_ATTACHMENT`; exit status 0 is success, whose standard output is the job's result
//! (its JSON value when it is one, else its text) and the jobs it wrote, one JSON object per
//! line, to the file named in `OUTSOURCED_FOLLOW_UPS` its follow-ups (a job that waited for
//! others finds their results, a JSON object by job id, in the file named in
//! `OUTSOURCED_DEPENDENCY_RESULTS`); anything else is a failure whose message is
//! the status and the last line of standard error, and whose detail keeps the head and tail
//! of standard error and the tail of standard output. Each handler runs in a process group of
//! its own (see `process`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use outsourced_core::{AnyJob, ErrorInfo, JobContext, JobError, MAX_RESULT_BYTES};

mod follow_ups;
mod output;
pub(crate) mod process;

use output::Output;
pub(crate) use process::Children;
use process::Group;

/// How much of a failed command's standard error is kept: its first and its last bytes (a
/// usage message comes first, an exception last).
const STDERR_HEAD: usize = 4 * 1024;
const STDERR_TAIL: usize = 12 * 1024;
/// How much of a command's standard output is kept: its first 16 KiB and last 40 KiB, which
/// leaves room within a result's bound for the marker between them and for JSON's escapes
/// (a newline is two bytes), so that a long text keeps its head as well as its end.
const STDOUT_HEAD: usize = MAX_RESULT_BYTES / 4;
const STDOUT_TAIL: usize = MAX_RESULT_BYTES / 8 * 5;
/// How much of a failed command's standard output its failure's detail shows: its last bytes.
const STDOUT_IN_FAILURE: usize = 4 * 1024;

/// A program that handles one job class.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CommandSpec {
    /// The program; a relative path with a `/` is taken from the config file's directory.
    pub program: PathBuf,
    /// Arguments to pass before nothing else (the job's arguments come on standard input).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Extra environment variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// A time limit for this class, capped by the worker's.
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_run_time: Option<Duration>,
}

/// One job to run through its command.
pub(crate) struct CommandJob {
    pub(crate) class: String,
    pub(crate) spec: Arc<CommandSpec>,
    pub(crate) args: Value,
    /// Where the worker counts its handlers.
    pub(crate) children: Children,
    /// How long a handler being stopped gets between SIGTERM and SIGKILL.
    pub(crate) kill_grace: Duration,
}

#[async_trait]
impl AnyJob for CommandJob {
    fn display_name(&self) -> String {
        self.class.clone()
    }

    fn max_run_time(&self) -> Option<Duration> {
        self.spec.max_run_time
    }

    fn reschedule_at(&self, _now: DateTime<Utc>, _attempts: u32) -> Option<DateTime<Utc>> {
        None
    }

    async fn perform(&self, ctx: &JobContext) -> Result<(), JobError> {
        // Boxed: the buffers that read the program's output make a large future.
        Box::pin(run(self, ctx)).await
    }

    async fn before(&self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }

    async fn success(&self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }

    async fn error(&self, _ctx: &JobContext, _error: &JobError) -> Result<(), JobError> {
        Ok(())
    }

    async fn after(&self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }

    async fn failure(&self, _ctx: &JobContext) -> Result<(), JobError> {
        Ok(())
    }
}

/// The job's attachment in a file of the worker's own making (never a path built from the
/// producer's file name), in a directory removed when the returned guard drops.
async fn save_attachment(
    ctx: &JobContext,
) -> Result<Option<(tempfile::TempDir, PathBuf)>, JobError> {
    if ctx.attachment.is_none() {
        return Ok(None);
    }
    let failed =
        |e: &dyn std::fmt::Display| JobError::msg(format!("cannot fetch the attachment: {e}"));
    let mut download = ctx.attachment().await.map_err(|e| failed(&e))?;
    let dir = tempfile::Builder::new()
        .prefix("outsourced-job-")
        .tempdir()
        .map_err(|e| failed(&e))?;
    let path = dir.path().join("attachment");
    let mut file = tokio::fs::File::create(&path)
        .await
        .map_err(|e| failed(&e))?;
    while let Some(chunk) = download.body.next().await {
        let chunk = chunk.map_err(|e| failed(&e))?;
        file.write_all(&chunk).await.map_err(|e| failed(&e))?;
    }
    file.flush().await.map_err(|e| failed(&e))?;
    Ok(Some((dir, path)))
}

/// Where the command may write its follow-up jobs: a path in a directory of the worker's own
/// making, removed when the returned guard drops.
fn follow_ups_file() -> Result<(tempfile::TempDir, PathBuf), JobError> {
    let dir = tempfile::Builder::new()
        .prefix("outsourced-job-")
        .tempdir()
        .map_err(|e| JobError::msg(format!("cannot make the follow-ups directory: {e}")))?;
    let path = dir.path().join("follow-ups.jsonl");
    Ok((dir, path))
}

/// The results of the jobs this one waited for, as a JSON object by job id, in a file of `dir`
/// (none when there are none).
fn dependency_results_file(
    ctx: &JobContext,
    dir: &tempfile::TempDir,
) -> Result<Option<PathBuf>, JobError> {
    if ctx.dependency_results.is_empty() {
        return Ok(None);
    }
    let results: serde_json::Map<String, Value> = ctx
        .dependency_results
        .iter()
        .map(|(id, result)| (id.to_string(), result.clone()))
        .collect();
    let path = dir.path().join("dependency-results.json");
    std::fs::write(&path, Value::Object(results).to_string())
        .map_err(|e| JobError::msg(format!("cannot write the dependencies' results: {e}")))?;
    Ok(Some(path))
}

/// The attachment's environment variables: its path, and what the producer said of it.
fn attachment_env(ctx: &JobContext, path: Option<&PathBuf>) -> Vec<(&'static str, String)> {
    let (Some(info), Some(path)) = (&ctx.attachment, path) else {
        return Vec::new();
    };
    let mut env = vec![
        ("OUTSOURCED_ATTACHMENT", path.display().to_string()),
        ("OUTSOURCED_ATTACHMENT_TYPE", info.content_type.clone()),
        ("OUTSOURCED_ATTACHMENT_SHA256", info.sha256.clone()),
    ];
    if let Some(name) = &info.file_name {
        env.push(("OUTSOURCED_ATTACHMENT_NAME", name.clone()));
    }
    env
}

/// Ties the command to the worker's life: when the worker dies without a word (SIGKILL, the
/// OOM killer), Linux kills the command at once, instead of leaving it running while its job's
/// lease runs out and another worker starts the same job. (Only the command itself: what it
/// starts lives on unless it `exec`s or passes the signal on; a worker that stops cleanly
/// stops the whole group.) The kernel sends the signal when the thread that started the
/// command ends; jobs run on the runtime's worker threads, which live as long as the worker.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn die_with_the_worker(command: &mut Command) {
    use rustix::process::{Signal, getpid, getppid, set_parent_process_death_signal};
    let worker = getpid();
    // SAFETY: the closure runs in the child between fork and exec, where only
    // async-signal-safe calls are allowed: it makes two system calls (prctl, getppid) and
    // allocates nothing, takes no lock and touches no memory of the parent's.
    unsafe {
        command.pre_exec(move || {
            set_parent_process_death_signal(Some(Signal::KILL))?;
            // A worker that died before the call above sends no signal: do not start at all.
            if getppid() != Some(worker) {
                return Err(rustix::io::Errno::SRCH.into());
            }
            Ok(())
        });
    }
}

async fn run(job: &CommandJob, ctx: &JobContext) -> Result<(), JobError> {
    let spec = &job.spec;
    let program = spec.program.display().to_string();
    let saved = save_attachment(ctx).await?;
    let asked = follow_ups_file()?;
    let inputs = dependency_results_file(ctx, &asked.0)?;
    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .envs(&spec.env)
        .env("OUTSOURCED_JOB_ID", ctx.id.to_string())
        .env("OUTSOURCED_JOB_CLASS", &ctx.class)
        .env("OUTSOURCED_QUEUE", &ctx.queue)
        .env("OUTSOURCED_ATTEMPT", ctx.attempt.to_string())
        .envs(attachment_env(ctx, saved.as_ref().map(|(_, path)| path)))
        .env("OUTSOURCED_FOLLOW_UPS", &asked.1)
        .envs(inputs.map(|path| ("OUTSOURCED_DEPENDENCY_RESULTS", path)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // A group of its own: signals meant for the worker's group (Ctrl-C, `timeout`) do not
    // reach it, and stopping it stops everything it started.
    #[cfg(unix)]
    command.process_group(0);
    #[cfg(target_os = "linux")]
    die_with_the_worker(&mut command);
    let mut child = command
        .spawn()
        .map_err(|e| JobError::msg(format!("cannot start command {program}: {e}")))?;
    let input = serde_json::to_vec(&job.args).unwrap_or_default();
    let stdin = child.stdin.take();
    let stdout = Output::new(STDOUT_HEAD, STDOUT_TAIL);
    let stderr = Output::new(STDERR_HEAD, STDERR_TAIL);
    let reading = {
        let (out, err) = (child.stdout.take(), child.stderr.take());
        let (stdout, stderr) = (stdout.clone(), stderr.clone());
        async move {
            tokio::join!(
                feed(stdin, input),
                stdout.read_all(out),
                stderr.read_all(err)
            )
        }
    };
    let group = Group::new(child, job.kill_grace, job.children.enter(ctx.id));
    let ended = group.finish();
    let status = until_ended(ended, reading, job.kill_grace).await;
    let status = status.map_err(|e| JobError::msg(format!("command {program} failed: {e}")))?;
    if status.success() {
        if let Some(result) = stdout.as_result() {
            ctx.set_result(result)?;
        }
        return follow_ups::read(&asked.1, ctx).await;
    }
    Err(failure(&program, status, &stderr, &stdout))
}

/// Waits for the program's end, reading its output meanwhile; once it has ended (and its group
/// is stopped), the output gets `grace` more to reach its end (a process that escaped the
/// group may still hold it open).
async fn until_ended<T>(
    ended: impl Future<Output = T>,
    reading: impl Future<Output = ((), (), ())>,
    grace: Duration,
) -> T {
    tokio::pin!(ended, reading);
    let mut read = false;
    let result = loop {
        tokio::select! {
            _ = &mut reading, if !read => read = true,
            result = &mut ended => break result,
        }
    };
    if !read {
        let _ = tokio::time::timeout(grace, reading).await;
    }
    result
}

async fn feed(stdin: Option<tokio::process::ChildStdin>, input: Vec<u8>) {
    if let Some(mut stdin) = stdin {
        // A program that does not read its input is fine.
        let _ = stdin.write_all(&input).await;
    }
}

/// The failure of a program that exited with `status`: its last line of standard error as the
/// message, and its output (standard error's head and tail, standard output's tail) as the
/// report's detail.
fn failure(program: &str, status: ExitStatus, stderr: &Output, stdout: &Output) -> JobError {
    let how = match (status.code(), signal_of(status)) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}{}", signal_name(signal)),
        (None, None) => "ended abnormally".to_owned(),
    };
    let message = match stderr.last_line() {
        Some(line) => format!("{program} {how}: {line}"),
        None => format!("{program} {how} (nothing on standard error)"),
    };
    let reports = [
        stderr.report("standard error"),
        stdout.tail_report("standard output", STDOUT_IN_FAILURE),
    ];
    let detail = reports
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("\n\n");
    let error = JobError::from_info(ErrorInfo {
        message,
        causes: Vec::new(),
        backtrace: (!detail.is_empty()).then_some(detail),
    });
    // Killed by a stop signal the worker did not send: most likely one meant for the whole
    // worker (systemd stops every process of a service).
    match signal_of(status) {
        Some(SIGHUP | SIGINT | SIGTERM) => error.interrupted(),
        _ => error,
    }
}

const SIGHUP: i32 = 1;
const SIGINT: i32 = 2;
const SIGKILL: i32 = 9;
const SIGTERM: i32 = 15;

#[cfg(unix)]
fn signal_of(status: ExitStatus) -> Option<i32> {
    std::os::unix::process::ExitStatusExt::signal(&status)
}

#[cfg(not(unix))]
fn signal_of(_status: ExitStatus) -> Option<i32> {
    None
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        SIGHUP => " (SIGHUP)",
        SIGINT => " (SIGINT)",
        SIGKILL => " (SIGKILL)",
        SIGTERM => " (SIGTERM)",
        _ => "",
    }
}
