//! `job enqueue --from FILE`: one job per line of a JSON-lines file, all or none.
//!
//! Every line is checked before anything is stored, and a refusal names the line it is about:
//! a line that is not a JSON object or not a job, a queue that does not exist (with the name
//! meant when it is a typo), a job to wait for or a batch that does not exist, so that a file
//! of thousands of lines is mended where it is wrong. What the enqueue itself refuses (a full
//! queue) is said without a line. What was stored is answered with its ids, in the file's
//! order.

use std::collections::HashSet;
use std::path::Path;

use outsourced_core::{Backend, Enqueued, Error, JobId, NewJob, Result};
use serde_json::json;

use crate::context::Ctx;
use crate::job::Line;
use crate::output::print_json;

/// Enqueues every line of a JSON-lines file, all or none: every line is checked first, and the
/// jobs go in one batch (one transaction).
pub(crate) async fn enqueue_file(ctx: &Ctx, path: &Path) -> Result<()> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::invalid(format!("cannot read {}: {e}", path.display())))?;
    let at = |n: usize, why: &dyn std::fmt::Display| {
        Error::invalid(format!("{} line {n}{why}", path.display()))
    };
    let max_args = ctx.backend.config().max_args_bytes;
    let mut jobs = Vec::new();
    let mut lines = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        if !line.trim_start().starts_with('{') {
            let shape = r#"one JSON object, such as {"class": "Mail", "args": [1]}"#;
            return Err(at(n + 1, &format!(": each line is {shape}{NOTHING}")));
        }
        let mut fields = serde_json::Deserializer::from_str(line);
        let parsed: Line = serde_path_to_error::deserialize(&mut fields)
            .map_err(|e| at(n + 1, &format!("{}{NOTHING}", parse_error(&e))))?;
        let job = parsed
            .into_job(crate::job::Names::Keys)
            .and_then(|job| job.check(max_args).map(|()| job))
            .map_err(|e| at(n + 1, &format!(": {}{NOTHING}", crate::message(&e))))?;
        jobs.push(job);
        lines.push(n + 1);
    }
    let refused = match unknown_queue(ctx, &jobs, &lines).await? {
        None => missing_link(ctx, &jobs, &lines).await?,
        refused => refused,
    };
    if let Some((n, why)) = refused {
        return Err(at(n, &format!(": {why}{NOTHING}")));
    }
    let unkeyed: Vec<String> = (jobs.iter().zip(&lines))
        .filter(|(job, _)| job.repeat.is_some() && job.unique.is_none())
        .map(|(_, n)| n.to_string())
        .collect();
    let each = ctx
        .backend
        .enqueue_each(&ctx.actor(), jobs)
        .await
        .map_err(|error| {
            Error::invalid(format!(
                "{}: {}{NOTHING}",
                path.display(),
                crate::message(&error)
            ))
        })?;
    answer(ctx, path, &each);
    // A file of schedules is enqueued again after an edit more often than not.
    if !unkeyed.is_empty() {
        eprintln!(
            "note: line{} {} repeat{} without a `unique_key`: enqueueing this file again adds a second copy of each (with a `unique_key`, enqueueing it again adds none)",
            if unkeyed.len() == 1 { "" } else { "s" },
            unkeyed.join(", "),
            if unkeyed.len() == 1 { "s" } else { "" },
        );
    }
    Ok(())
}

/// The end of every refusal of a file.
const NOTHING: &str = " (nothing was enqueued: a file is all or none)";

/// The first line that names a job to wait for, or a batch to join, that does not exist (or
/// that this actor may not see), and the refusal that names it: checked before the enqueue,
/// whose refusal could not say which line. Each job or batch is looked up once.
async fn missing_link(
    ctx: &Ctx,
    jobs: &[NewJob],
    lines: &[usize],
) -> Result<Option<(usize, String)>> {
    let by = ctx.actor();
    let (mut jobs_seen, mut batches_seen) = (HashSet::new(), HashSet::new());
    for (job, &n) in jobs.iter().zip(lines) {
        for &id in job.depends_on.iter().filter(|id| jobs_seen.insert(**id)) {
            match ctx.backend.job(&by, id).await {
                Ok(_) => {}
                Err(error @ Error::Backend { .. }) => return Err(error),
                Err(_) => {
                    let why = format!("job {id}, which this line depends on, does not exist");
                    return Ok(Some((n, why)));
                }
            }
        }
        let Some(batch) = job.batch.filter(|b| batches_seen.insert(*b)) else {
            continue;
        };
        match ctx.backend.batch(&by, batch).await {
            Ok(_) => {}
            Err(error @ Error::Backend { .. }) => return Err(error),
            Err(_) => return Ok(Some((n, format!("batch {batch} does not exist")))),
        }
    }
    Ok(None)
}

/// A line's JSON error, to follow its line number, naming the field at fault when there is one
/// (`priority`): serde's own position counts within the line (always "line 1"), so only its
/// column is kept.
fn parse_error(error: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let inner = error.inner();
    let text = inner.to_string();
    let message = text
        .rsplit_once(" at line ")
        .map_or(text.as_str(), |(message, _)| message);
    // A syntax error is of the line, not of the field it stopped in; an unknown field's
    // message names it already.
    let path = format!("`{}`", error.path());
    let field = match inner.classify() {
        serde_json::error::Category::Data if path != "`.`" && !message.contains(&path) => {
            format!(" {path}:")
        }
        _ => String::new(),
    };
    format!(", column {}:{field} {message}", inner.column())
}

/// The first line whose queue does not exist, and the refusal that names it (with the queue
/// meant, for a typo). Checked before the enqueue, whose refusal could not say which line.
async fn unknown_queue(
    ctx: &Ctx,
    jobs: &[NewJob],
    lines: &[usize],
) -> Result<Option<(usize, String)>> {
    let names: Vec<String> = match ctx.backend.queues(&ctx.actor()).await {
        Ok(queues) => queues.into_iter().map(|q| q.name).collect(),
        // The enqueue says what is wrong then, without the line.
        Err(_) => return Ok(None),
    };
    let known: HashSet<&str> = names.iter().map(String::as_str).collect();
    let first = jobs
        .iter()
        .zip(lines)
        .find(|(job, _)| !known.contains(job.queue.as_str()));
    Ok(first.map(|(job, &n)| (n, crate::not_found("queue", &job.queue, &names))))
}

/// What was stored, with each line's job: the new one, or the one that holds its unique key.
fn answer(ctx: &Ctx, path: &Path, each: &[Enqueued]) {
    let duplicates = each.iter().filter(|e| e.duplicate).count();
    let stored = each.len() - duplicates;
    if ctx.json {
        let ids: Vec<i64> = each.iter().map(|e| e.id.0).collect();
        print_json(&json!({ "enqueued": stored, "duplicates": duplicates, "ids": ids }));
        return;
    }
    let new: Vec<JobId> = each.iter().filter(|e| !e.duplicate).map(|e| e.id).collect();
    let jobs = match stored {
        0 => String::new(),
        _ => format!(": {}", spans(&new)),
    };
    let file = path.display();
    if duplicates == 0 {
        out!("enqueued {stored} {} from {file}{jobs}", plural(stored));
        return;
    }
    let mut holders: Vec<JobId> = each.iter().filter(|e| e.duplicate).map(|e| e.id).collect();
    holders.dedup();
    out!(
        "enqueued {stored} {} from {file}{jobs}; {duplicates} {} ({}), and stored nothing",
        plural(stored),
        match duplicates {
            1 => "line was a duplicate of a job that holds its unique key",
            _ => "lines were duplicates of jobs that hold their unique keys",
        },
        spans(&holders)
    );
}

fn plural(n: usize) -> &'static str {
    match n {
        1 => "job",
        _ => "jobs",
    }
}

/// Ids as runs of consecutive ones, in their order: "4-6, 9" (a file's jobs are stored in one
/// batch, so their ids are mostly one run).
fn spans(ids: &[JobId]) -> String {
    let mut runs: Vec<(i64, i64)> = Vec::new();
    for id in ids.iter().map(|id| id.0) {
        match runs.last_mut() {
            Some((_, last)) if *last + 1 == id => *last = id,
            _ => runs.push((id, id)),
        }
    }
    let runs: Vec<String> = runs
        .iter()
        .map(|&(first, last)| match first == last {
            true => first.to_string(),
            false => format!("{first}-{last}"),
        })
        .collect();
    format!("{} {}", plural(ids.len()), runs.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(ids: &[i64]) -> Vec<JobId> {
        ids.iter().copied().map(JobId).collect()
    }

    #[test]
    fn ids_are_shown_as_runs() {
        assert_eq!(spans(&ids(&[7])), "job 7");
        assert_eq!(spans(&ids(&[4, 5, 6, 9])), "jobs 4-6, 9");
        assert_eq!(spans(&ids(&[3, 1, 2])), "jobs 3, 1-2");
    }

    #[test]
    fn a_parse_error_says_the_column_once() {
        let mut fields = serde_json::Deserializer::from_str("{\"a\": }");
        let error =
            serde_path_to_error::deserialize::<_, serde_json::Value>(&mut fields).expect_err("bad");
        assert_eq!(parse_error(&error), ", column 7: expected value");
    }

    #[test]
    fn a_wrong_type_names_its_field() {
        let line = r#"{"class": "Mail", "priority": "high"}"#;
        let mut fields = serde_json::Deserializer::from_str(line);
        let error = serde_path_to_error::deserialize::<_, Line>(&mut fields).expect_err("bad");
        assert_eq!(
            parse_error(&error),
            ", column 36: `priority`: invalid type: string \"high\", expected i32"
        );
    }
}
