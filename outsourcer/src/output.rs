//! Printing: human-readable tables by default, JSON with `--json`.

use chrono::{DateTime, SecondsFormat, Utc};
use comfy_table::{ContentArrangement, Table, presets::UTF8_BORDERS_ONLY};
use outsourced_backend_sql::Principal;
use outsourced_core::{
    HistoryEntry, JobRecord, JobState, QueueInfo, Repeat, Retention, StateCounts,
};
use serde_json::{Value, json};

/// Writes one line of output; a reader that has gone (a pipe into `head`) ends the command
/// quietly, as it does for `ls`, instead of a panic.
pub(crate) fn line(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_fmt(args)
        .and_then(|()| stdout.write_all(b"\n"));
    match written {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        Err(error) => {
            eprintln!("outsourcer: cannot write the output: {error}");
            std::process::exit(1);
        }
    }
}

/// Text from the database made safe for a terminal: each control character (an escape
/// sequence, a carriage return, a newline) or bidirectional override shown as `\u{..}`
/// instead of acting on the screen.
pub(crate) fn clean(text: &str) -> String {
    use outsourced_core::is_unprintable;
    if !text.chars().any(is_unprintable) {
        return text.to_owned();
    }
    text.chars()
        .map(|c| match is_unprintable(c) {
            true => c.escape_unicode().to_string(),
            false => c.to_string(),
        })
        .collect()
}

/// A table with a header row.
pub(crate) fn table(header: &[&str]) -> Table {
    let mut table = Table::new();
    table
        .load_preset(UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    table
}

/// Prints JSON, pretty.
pub(crate) fn print_json(value: &Value) {
    out!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

pub(crate) fn time(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn opt_time(at: Option<DateTime<Utc>>) -> Value {
    at.map_or(Value::Null, |t| json!(time(t)))
}

pub(crate) fn counts_json(counts: &StateCounts) -> Value {
    let map: serde_json::Map<String, Value> = JobState::ALL
        .iter()
        .map(|s| (s.as_str().to_owned(), json!(counts.get(*s))))
        .collect();
    Value::Object(map)
}

pub(crate) fn queue_json(queue: &QueueInfo) -> Value {
    json!({
        "name": queue.name,
        "limit": queue.limit.max(),
        "paused": queue.paused,
        "retention": retention_text(queue.retention),
        "live": queue.counts.live(),
        "limits": {
            "max_running": queue.limits.max_running,
            "rate": queue.limits.rate.map(|r| r.to_string()),
            "max_running_per_key": queue.limits.max_running_per_key,
            "rate_per_key": queue.limits.rate_per_key.map(|r| r.to_string()),
        },
        "next_start": queue.next_start,
        "counts": counts_json(&queue.counts),
    })
}

/// `forever`, or the age as `--retention` takes it (`30d`).
pub(crate) fn retention_text(retention: Retention) -> String {
    match retention {
        Retention::Forever => "forever".into(),
        Retention::For(age) => outsourced_core::duration_text(age),
    }
}

/// Queues with their settings and counts, and `unserved[i]`, the classes waiting in queue `i`
/// that no live worker runs.
pub(crate) fn queues_table(queues: &[QueueInfo], unserved: &[Vec<String>]) -> Table {
    let mut header = vec![
        "queue",
        "limit",
        "run limits",
        "paused",
        "retention",
        "live",
    ];
    header.extend(JobState::ALL.iter().map(|s| s.as_str()));
    header.push("waiting with no worker");
    let mut t = table(&header);
    for (i, q) in queues.iter().enumerate() {
        let mut row = vec![
            clean(&q.name),
            q.limit.to_string(),
            q.run_limits_text().unwrap_or_else(|| "-".to_owned()),
            if q.paused { "yes".into() } else { "no".into() },
            retention_text(q.retention),
            q.counts.live().to_string(),
        ];
        row.extend(JobState::ALL.iter().map(|s| q.counts.get(*s).to_string()));
        row.push(
            unserved
                .get(i)
                .map(|c| clean(&c.join(", ")))
                .unwrap_or_default(),
        );
        t.add_row(row);
    }
    t
}

pub(crate) fn job_json(job: &JobRecord) -> Value {
    json!({
        "id": job.id.0,
        "queue": job.queue,
        "class": job.class,
        "args": job.args,
        "priority": job.priority,
        "state": job.state.as_str(),
        "run_at": time(job.run_at),
        "attempts": job.attempts,
        "max_attempts": job.max_attempts,
        "max_run_time_ms": job.max_run_time.map(|d| d.as_millis() as u64),
        "backoff": job.backoff.to_string(),
        "repeat": job.repeat.as_ref().map(|r| r.to_string()),
        "owner": job.owner.as_ref().map(|o| o.to_string()),
        "unique_key": job.unique_key,
        "concurrency_key": job.concurrency_key,
        "enqueued_by": job.enqueued_by.to_string(),
        "parent": job.parent.map(|p| p.0),
        "dependencies": job.dependencies.iter().map(|id| id.0).collect::<Vec<_>>(),
        "dependencies_left": job.dependencies_left,
        "batch": job.batch.map(|b| b.0),
        "callback_of": job.callback_of.map(|b| b.0),
        "cancel_requested": job.cancel_requested,
        "lease": job.lease.as_ref().map(|l| json!({
            "holder": l.holder.to_string(),
            "expires_at": time(l.expires_at),
        })),
        "last_error": job.last_error,
        "created_at": time(job.created_at),
        "updated_at": time(job.updated_at),
        "finished_at": opt_time(job.finished_at),
        "attachment": job.attachment.as_ref().map(|a| json!({
            "file_name": a.file_name,
            "content_type": a.content_type,
            "size": a.size,
            "sha256": a.sha256,
            "created_at": time(a.created_at),
        })),
    })
}

/// A listing of jobs; the concurrency key's column only when one of them has a key.
pub(crate) fn jobs_table(jobs: &[JobRecord]) -> Table {
    let keyed = jobs.iter().any(|job| job.concurrency_key.is_some());
    let mut head = vec![
        "id", "queue", "class", "state", "attempts", "run at", "owner",
    ];
    if keyed {
        head.push("concurrency key");
    }
    let mut t = table(&head);
    for job in jobs {
        let mut row = vec![
            job.id.to_string(),
            job.queue.clone(),
            clean(&job.class),
            job.state.to_string(),
            format!("{}/{}", job.attempts, job.max_attempts),
            time(job.run_at),
            job.owner
                .as_ref()
                .map(|o| clean(&o.to_string()))
                .unwrap_or_default(),
        ];
        if keyed {
            row.push(
                job.concurrency_key
                    .as_deref()
                    .map(clean)
                    .unwrap_or_default(),
            );
        }
        t.add_row(row);
    }
    t
}

/// The order `job_text` shows a job's fields in: who and where it is first.
const JOB_FIELDS: [&str; 28] = [
    "id",
    "class",
    "queue",
    "state",
    "attempts",
    "max_attempts",
    "run_at",
    "priority",
    "owner",
    "unique_key",
    "concurrency_key",
    "lease",
    "cancel_requested",
    "last_error",
    "args",
    "attachment",
    "repeat",
    "max_run_time_ms",
    "backoff",
    "enqueued_by",
    "parent",
    "dependencies",
    "batch",
    "callback_of",
    "created_at",
    "updated_at",
    "finished_at",
    "no_worker",
];

/// A repeat as people read it: the stored form says milliseconds (`every:1000`); people read
/// "every 1s", and "cron 0 3 * * *".
pub(crate) fn repeat_text(repeat: &Repeat) -> String {
    match repeat {
        Repeat::Every(every) => format!("every {}", outsourced_core::duration_text(*every)),
        Repeat::Cron(schedule) => format!("cron {}", schedule.as_str()),
    }
}

/// `3, 4 (waiting for 1 of them to succeed)`: the jobs a job waits (or waited) for.
fn dependencies_text(job: &JobRecord) -> String {
    let ids: Vec<String> = job.dependencies.iter().map(ToString::to_string).collect();
    let ids = ids.join(", ");
    match (job.state, job.dependencies_left) {
        (JobState::Pending, left) => format!("{ids} (waiting for {left} of them to succeed)"),
        _ => ids,
    }
}

/// One job as "key: value" lines.
pub(crate) fn job_text(job: &JobRecord) -> String {
    let fields = job_json(job);
    let mut lines = Vec::new();
    for key in JOB_FIELDS {
        let text = match (key, &job.repeat) {
            ("repeat", Some(repeat)) => repeat_text(repeat),
            ("dependencies", _) if job.dependencies.is_empty() => continue,
            ("dependencies", _) => dependencies_text(job),
            ("batch", _) if let Some(batch) = job.batch => {
                format!("{batch} (outsourcer batch show {batch})")
            }
            ("callback_of", _) if let Some(batch) = job.callback_of => {
                format!("batch {batch} (it runs once the batch has ended)")
            }
            ("lease", _) if let Some(lease) = &job.lease => format!(
                "held by {} until {}",
                clean(&lease.holder.to_string()),
                time(lease.expires_at)
            ),
            // A job that failed and then succeeded keeps the failure's error.
            ("last_error", _)
                if let Some(error) = &job.last_error
                    && job.state == JobState::Succeeded =>
            {
                format!("{} (of an earlier attempt)", clean(error))
            }
            _ => match &fields[key] {
                Value::Null => continue,
                Value::String(s) => clean(s),
                other => other.to_string(),
            },
        };
        lines.push(format!("{key:>16}: {text}"));
    }
    lines.join("\n")
}

pub(crate) fn history_json(rows: &[HistoryEntry]) -> Value {
    Value::Array(
        rows.iter()
            .zip(since_previous(rows))
            .map(|(r, since)| {
                json!({
                    "seq": r.seq,
                    "from": r.from.map(|s| s.as_str()),
                    "to": r.to.as_str(),
                    "at": time(r.at),
                    "since_previous_ms": since.map(|d| d.num_milliseconds()),
                    "actor": r.actor.to_string(),
                    "attempt": r.attempt,
                    "reason": r.reason.as_str(),
                    "lease_token": r.lease_token,
                    "error": r.error.as_ref().map(|e| json!({
                        "message": e.message,
                        "causes": e.causes,
                        "backtrace": e.backtrace,
                    })),
                    "result": r.result,
                })
            })
            .collect(),
    )
}

/// The time from each history row to the one before it (none for the first): how long the
/// job waited before a reserve, and how long an attempt ran before it ended.
fn since_previous(rows: &[HistoryEntry]) -> Vec<Option<chrono::Duration>> {
    let previous = std::iter::once(None).chain(rows.iter().map(|r| Some(r.at)));
    rows.iter()
        .zip(previous)
        .map(|(r, before)| before.map(|before| r.at - before))
        .collect()
}

/// A duration as people read it: `1.234s`, `2m 3s`.
fn elapsed(duration: chrono::Duration) -> String {
    let ms = duration.num_milliseconds().max(0) as u64;
    if ms < 60_000 {
        return format!("{}.{:03}s", ms / 1000, ms % 1000);
    }
    humantime::format_duration(std::time::Duration::from_secs(ms / 1000)).to_string()
}

/// How many lines of a backtrace or a command's output a history shows: the first and the
/// last ones (an exception's message comes last).
const TRACE_HEAD: usize = 6;
const TRACE_TAIL: usize = 14;

/// The most characters of a result a text shows; `--json` shows all of it.
const RESULT_CHARS: usize = 500;

/// A job's result on one line: a string as its text, anything else as JSON, cleaned of
/// control characters and cut short after [`RESULT_CHARS`].
pub(crate) fn result_text(result: &Value) -> String {
    let text = match result {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    };
    let text = clean(&text.replace('\n', " / "));
    match text.char_indices().nth(RESULT_CHARS) {
        Some((end, _)) => format!("{}... (--json shows it all)", &text[..end]),
        None => text,
    }
}

/// A history as a table, each error's message, causes and backtrace under its row.
pub(crate) fn history_text(rows: &[HistoryEntry]) -> String {
    let mut t = table(&[
        "seq", "at", "after", "from", "to", "reason", "attempt", "actor",
    ]);
    for (r, since) in rows.iter().zip(since_previous(rows)) {
        t.add_row(vec![
            r.seq.to_string(),
            time(r.at),
            since.map_or_else(|| "-".into(), elapsed),
            r.from.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
            r.to.to_string(),
            r.reason.to_string(),
            r.attempt.to_string(),
            r.actor.to_string(),
        ]);
    }
    let mut text = t.to_string();
    // The row that showed each backtrace first: a job that fails the same way at every
    // attempt shows it once.
    let mut shown: Vec<(&str, u32)> = Vec::new();
    for r in rows {
        if let Some(result) = &r.result {
            text.push_str(&format!(
                "\n\nseq {} result: {}",
                r.seq,
                result_text(result)
            ));
        }
        if let Some(error) = &r.error {
            let message = clean(&error.message);
            text.push_str(&format!("\n\nseq {} {}: {message}", r.seq, r.reason));
            for cause in &error.causes {
                text.push_str(&format!("\n  caused by: {}", clean(cause)));
            }
            if let Some(trace) = &error.backtrace {
                match shown.iter().find(|(seen, _)| seen == trace) {
                    Some((_, seq)) => text.push_str(&format!("\n  | (the same as at seq {seq})")),
                    None => {
                        text.push_str(&trace_text(trace));
                        shown.push((trace, r.seq));
                    }
                }
            }
        }
    }
    text
}

/// A backtrace (or a command's standard error) under its row: its first and last lines.
fn trace_text(trace: &str) -> String {
    let lines: Vec<&str> = trace.lines().collect();
    // One line left out would take as much room as its mention.
    let skipped = match lines.len().saturating_sub(TRACE_HEAD + TRACE_TAIL) {
        1 => 0,
        n => n,
    };
    let mut text = String::new();
    for (i, line) in lines.iter().enumerate() {
        if skipped > 0 && i == TRACE_HEAD {
            text.push_str(&format!(
                "\n  | ... {skipped} lines (--json shows them all) ..."
            ));
        }
        if skipped == 0 || i < TRACE_HEAD || i >= TRACE_HEAD + skipped {
            text.push_str(&format!("\n  | {}", clean(line)));
        }
    }
    text
}

pub(crate) fn principal_json(p: &Principal) -> Value {
    json!({
        "role": p.role.as_str(),
        "name": p.name,
        "consumer_key": p.consumer_key,
        "locked": p.locked,
        "queues": p.queues,
        "created_at": time(p.created_at),
        "last_seen_at": opt_time(p.last_seen_at),
    })
}

/// Principals as a table; a worker's with its live processes (`live[i]`, `None` for others).
pub(crate) fn principals_table(principals: &[Principal], live: &[Option<usize>]) -> Table {
    let workers = live.iter().any(Option::is_some);
    let mut head = vec!["name", "consumer key", "locked", "queues", "last seen"];
    if workers {
        head.push("live processes");
    }
    let mut t = table(&head);
    for (p, live) in principals.iter().zip(live) {
        let mut row = vec![
            p.name.clone(),
            p.consumer_key.clone(),
            if p.locked { "yes".into() } else { "no".into() },
            p.queues.join(", "),
            p.last_seen_at.map(time).unwrap_or_else(|| "never".into()),
        ];
        row.extend(live.map(|n| n.to_string()));
        t.add_row(row);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use outsourced_core::{Actor, ErrorInfo, JobId, JobState, Reason};

    fn failed(seq: u32, backtrace: &str) -> HistoryEntry {
        HistoryEntry {
            job_id: JobId(1),
            seq,
            from: Some(JobState::Running),
            to: JobState::Retrying,
            at: chrono::DateTime::from_timestamp_millis(0).expect("a time"),
            actor: Actor::Admin("test".into()),
            attempt: seq / 2,
            reason: Reason::RetryScheduled,
            lease_token: None,
            error: Some(ErrorInfo {
                message: "gone".into(),
                causes: Vec::new(),
                backtrace: Some(backtrace.into()),
            }),
            result: None,
        }
    }

    #[test]
    fn a_backtrace_shown_once_is_named_at_its_repeats() {
        let long: String = (0..30).map(|i| format!("{i}: frame\n")).collect();
        let text = history_text(&[failed(3, &long), failed(5, "other"), failed(7, &long)]);
        assert_eq!(text.matches("| 0: frame").count(), 1, "{text}");
        assert!(
            text.contains("... 10 lines (--json shows them all) ..."),
            "{text}"
        );
        assert!(
            text.contains("seq 5 retry_scheduled: gone\n  | other"),
            "{text}"
        );
        assert!(
            text.contains("seq 7 retry_scheduled: gone\n  | (the same as at seq 3)"),
            "{text}"
        );
        let one_over: String = (0..21).map(|i| format!("{i}: frame\n")).collect();
        let text = history_text(&[failed(3, &one_over)]);
        assert!(text.contains("6: frame") && !text.contains("..."), "{text}");
    }
}
