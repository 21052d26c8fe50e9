//! Command handlers: a job class run as a program, so that the stock worker is useful without
//! any Rust. The job's arguments arrive as JSON on standard input, its id, class, queue and
//! attempt in environment variables, its attachment (if any) as a file whose path is in
//! `OUTSOURCED_ATTACHMENT`; exit status 0 is success, anything else a failure whose error is
//! the status and the tail of standard error.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use outsourced_core::{AnyJob, ErrorInfo, JobContext, JobError};

/// How much of a command's standard error a failure keeps.
const STDERR_TAIL: usize = 8 * 1024;

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
    pub(crate) spec: Arc<CommandSpec>,
    pub(crate) args: Value,
}

#[async_trait]
impl AnyJob for CommandJob {
    fn display_name(&self) -> String {
        self.spec.program.display().to_string()
    }

    fn max_run_time(&self) -> Option<Duration> {
        self.spec.max_run_time
    }

    fn reschedule_at(&self, _now: DateTime<Utc>, _attempts: u32) -> Option<DateTime<Utc>> {
        None
    }

    async fn perform(&self, ctx: &JobContext) -> Result<(), JobError> {
        // Boxed: the buffers that read the program's output make a large future.
        Box::pin(run(&self.spec, &self.args, ctx)).await
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

async fn run(spec: &CommandSpec, args: &Value, ctx: &JobContext) -> Result<(), JobError> {
    let program = spec.program.display().to_string();
    let saved = save_attachment(ctx).await?;
    let mut child = Command::new(&spec.program)
        .args(&spec.args)
        .envs(&spec.env)
        .env("OUTSOURCED_JOB_ID", ctx.id.to_string())
        .env("OUTSOURCED_JOB_CLASS", &ctx.class)
        .env("OUTSOURCED_QUEUE", &ctx.queue)
        .env("OUTSOURCED_ATTEMPT", ctx.attempt.to_string())
        .envs(attachment_env(ctx, saved.as_ref().map(|(_, path)| path)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A timeout or a shutdown drops the future: the program must not outlive it.
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| JobError::msg(format!("cannot start command {program}: {e}")))?;
    let input = serde_json::to_vec(args).unwrap_or_default();
    let stdin = child.stdin.take();
    let feed = async move {
        if let Some(mut stdin) = stdin {
            // A program that does not read its input is fine.
            let _ = stdin.write_all(&input).await;
        }
    };
    let stdout = child.stdout.take().map(|out| tail(out, 0));
    let stderr = child.stderr.take().map(|err| tail(err, STDERR_TAIL));
    let (_, _, stderr, status) = tokio::join!(
        feed,
        async {
            if let Some(stdout) = stdout {
                stdout.await;
            }
        },
        async {
            match stderr {
                Some(stderr) => stderr.await,
                None => String::new(),
            }
        },
        child.wait()
    );
    let status = status.map_err(|e| JobError::msg(format!("command {program} failed: {e}")))?;
    if status.success() {
        return Ok(());
    }
    let how = match status.code() {
        Some(code) => format!("exited with status {code}"),
        None => "was killed by a signal".to_owned(),
    };
    Err(JobError::from_info(ErrorInfo {
        message: format!("command {program} {how}"),
        causes: Vec::new(),
        backtrace: (!stderr.is_empty()).then_some(stderr),
    }))
}

/// Reads a stream to its end, keeping its last `keep` bytes as text.
async fn tail(mut stream: impl AsyncRead + Unpin, keep: usize) -> String {
    let mut kept = Vec::new();
    let mut chunk = [0u8; 4096];
    while let Ok(n) = stream.read(&mut chunk).await {
        if n == 0 {
            break;
        }
        kept.extend_from_slice(&chunk[..n]);
        if kept.len() > keep {
            kept.drain(..kept.len() - keep);
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}
