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
    /// RFC 3339; parsed here, so that a bad one is named.
    run_at: Option<String>,
    max_attempts: Option<u32>,
    concurrency_key: Option<String>,
    /// Ids of jobs it waits for.
    #[serde(default)]
    depends_on: Vec<i64>,
}

impl TryFrom<FollowUp> for NewJob {
    type Error = String;

    fn try_from(asked: FollowUp) -> Result<Self, String> {
        let mut job = NewJob::new(asked.class, asked.args);
        if let Some(queue) = asked.queue {
            job = job.queue(queue);
        }
        job.priority = asked.priority.unwrap_or(0);
        job.run_at = match asked.run_at {
            Some(at) => Some(
                DateTime::parse_from_rfc3339(&at)
                    .map_err(|_| format!("run_at {at:?} is not an RFC 3339 time"))?
                    .with_timezone(&Utc),
            ),
            None => None,
        };
        job.max_attempts = asked.max_attempts;
        job.concurrency_key = asked.concurrency_key;
        Ok(job.depends_on(asked.depends_on.into_iter().map(outsourced_core::JobId)))
    }
}

/// One line as a job, or why not (serde_json's position is within the line: only its column
/// is said).
fn parse(line: &str) -> Result<NewJob, String> {
    let value: Value = serde_json::from_str(line).map_err(|e| {
        let message = e.to_string();
        let message = message.split(" at line ").next().unwrap_or_default();
        format!("column {}: {message}", e.column())
    })?;
    if !value.is_object() {
        return Err("each line is one job, a JSON object such as {\"class\": \"Ocr\"}".into());
    }
    let asked: FollowUp = serde_json::from_value(value).map_err(|e| e.to_string())?;
    NewJob::try_from(asked)
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
        let line_error = |why: &dyn std::fmt::Display| refused(format!("line {}: {why}", n + 1));
        let job = parse(line).map_err(|why| line_error(&why))?;
        ctx.follow_up(job)
            .map_err(|e| line_error(&e.info().message))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn a_line_is_a_job_or_a_message_that_names_what_is_wrong() {
        let job = parse(r#"{"class": "Ocr", "queue": "pages", "args": {"page": 1}}"#);
        let job = job.expect("a job");
        assert_eq!((job.class.as_str(), job.queue.as_str()), ("Ocr", "pages"));
        let at = parse(r#"{"class": "Ocr", "run_at": "2026-12-06T10:00:00Z"}"#);
        assert!(at.expect("a job").run_at.is_some());

        let cut = parse(r#"{"class": "Ocr""#).expect_err("cut short");
        assert!(cut.starts_with("column 15: EOF"), "{cut}");
        assert!(!cut.contains("line"), "the caller names the line: {cut}");
        let array = parse(r#"[{"class": "Ocr"}]"#).expect_err("an array");
        assert!(array.contains("a JSON object"), "{array}");
        let when = parse(r#"{"class": "Ocr", "run_at": "tomorrow"}"#).expect_err("a bad time");
        assert!(when.contains("run_at \"tomorrow\""), "{when}");
        let typo = parse(r#"{"class": "Ocr", "queues": "pages"}"#).expect_err("a typo");
        assert!(typo.contains("unknown field `queues`"), "{typo}");
    }
}
