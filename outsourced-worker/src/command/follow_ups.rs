//! Follow-up jobs from a command: one JSON object per line in the file whose path is in
//! `OUTSOURCED_FOLLOW_UPS` (a file of the worker's own making, in a directory removed after
//! the job). They are read only when the command succeeds, and stored with its success or not
//! at all; a missing file means none.

use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;
use tokio::io::AsyncReadExt;

use outsourced_core::{JobContext, JobError, NewJob};

/// The most bytes the file may hold: a thousand follow-ups of a few KiB each.
pub(crate) const MAX_BYTES: u64 = 16 * 1024 * 1024;

/// One line of the file: a job, as `outsourcer job enqueue` takes one.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FollowUp {
    class: String,
    #[serde(default)]
    args: Value,
    queue: Option<String>,
    priority: Option<i32>,
    run_at: Option<DateTime<Utc>>,
    max_attempts: Option<u32>,
    concurrency_key: Option<String>,
}

impl From<FollowUp> for NewJob {
    fn from(asked: FollowUp) -> Self {
        let mut job = NewJob::new(asked.class, asked.args);
        if let Some(queue) = asked.queue {
            job = job.queue(queue);
        }
        job.priority = asked.priority.unwrap_or(0);
        job.run_at = asked.run_at;
        job.max_attempts = asked.max_attempts;
        job.concurrency_key = asked.concurrency_key;
        job
    }
}

/// Reads the follow-ups the command wrote to `path` into the job's context. A file that is too
/// large, a line that is not a job, or more than the context takes is a permanent failure of
/// the job: the same program would write the same again.
pub(crate) async fn read(path: &Path, ctx: &JobContext) -> Result<(), JobError> {
    let refused = |why: String| JobError::msg(format!("follow-ups file: {why}")).permanent();
    let file = match tokio::fs::File::open(path).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(refused(e.to_string())),
    };
    let mut text = String::new();
    let read = file.take(MAX_BYTES + 1).read_to_string(&mut text).await;
    read.map_err(|e| refused(e.to_string()))?;
    if text.len() as u64 > MAX_BYTES {
        return Err(refused(format!("more than {MAX_BYTES} bytes")));
    }
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let asked: FollowUp =
            serde_json::from_str(line).map_err(|e| refused(format!("line {}: {e}", n + 1)))?;
        ctx.follow_up(asked.into())?;
    }
    Ok(())
}
