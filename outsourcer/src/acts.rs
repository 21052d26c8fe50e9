//! `outsourcer job cancel|retry|delete`: an action on one job or several, each in a
//! transaction of its own.

use outsourced_core::{Backend, Error, JobId, JobState, Result};
use serde_json::{Value, json};

use crate::context::Ctx;
use crate::output::print_json;

/// Does `act` to each of `ids` in turn; `act` answers what to print (a line, or with `--json`
/// an object). One id is the command's whole answer, its error the command's. Of several, each
/// is printed as it is done (with `--json`, a list of them at the end), a failure is said on
/// standard error (in the list, as `{"id", "error"}`) and the rest are still done; the
/// command fails if any did.
pub(crate) async fn each(
    ctx: &Ctx,
    ids: &[i64],
    done: &str,
    act: impl AsyncFn(JobId) -> Result<(String, Value)>,
) -> Result<()> {
    // An id given twice is acted on once.
    let mut seen = std::collections::HashSet::new();
    let ids: Vec<i64> = ids.iter().copied().filter(|id| seen.insert(*id)).collect();
    if let [id] = ids[..] {
        let (text, json) = act(JobId(id)).await?;
        match ctx.json {
            true => print_json(&json),
            false => out!("{text}"),
        }
        return Ok(());
    }
    let (mut listed, mut failed) = (Vec::with_capacity(ids.len()), 0);
    for &id in &ids {
        match act(JobId(id)).await {
            Ok((_, json)) if ctx.json => listed.push(json),
            Ok((text, _)) => out!("{text}"),
            // The database is gone or busy: the rest would fail alike (what was done is said).
            Err(error) if error.is_retryable() => {
                if ctx.json {
                    print_json(&Value::Array(listed));
                }
                return Err(error);
            }
            Err(error) => {
                failed += 1;
                let said = crate::message(&error);
                if ctx.json {
                    listed.push(json!({ "id": id, "error": crate::error_body(&error, said) }));
                } else if names_job(&said, id) {
                    eprintln!("outsourcer: {said}");
                } else {
                    eprintln!("outsourcer: job {id}: {said}");
                }
            }
        }
    }
    if ctx.json {
        print_json(&Value::Array(listed));
    }
    match failed {
        0 => Ok(()),
        n => Err(Error::invalid(format!(
            "{n} of {} jobs were not {done} (each said why)",
            ids.len()
        ))),
    }
}

/// Deletes finished job `id` with its history and attachment; refuses a live one.
pub(crate) async fn delete(ctx: &Ctx, id: JobId) -> Result<(String, Value)> {
    let job = ctx.backend.job(&ctx.actor(), id).await?;
    let refused = |state: JobState| {
        Error::conflict(format!(
            "job {id} is {state}: only a finished job is deleted (cancel it first: outsourcer job cancel {id})"
        ))
    };
    if job.state.is_live() {
        return Err(refused(job.state));
    }
    if ctx.backend.delete_finished(&[id]).await? == 0 {
        // Retried between the read and the delete.
        let now = ctx.backend.job(&ctx.actor(), id).await?;
        return Err(refused(now.state));
    }
    let text = match job.attachment {
        Some(_) => format!("deleted job {id}, with its history and attachment"),
        None => format!("deleted job {id} and its history"),
    };
    Ok((text, json!({ "id": id.0, "deleted": true })))
}

/// Whether a refusal's sentence names job `id` already ("job 7 not found", "cannot cancel job
/// 7: ..."), so that it is not named twice.
fn names_job(said: &str, id: i64) -> bool {
    let name = format!("job {id}");
    said.match_indices(&name).any(|(at, _)| {
        let after = said[at + name.len()..].chars().next();
        !after.is_some_and(|c| c.is_ascii_digit())
    })
}

#[cfg(test)]
mod tests {
    use super::names_job;

    #[test]
    fn a_refusal_that_names_its_job_is_not_prefixed_again() {
        assert!(names_job("cannot cancel job 1: its state is succeeded", 1));
        assert!(names_job("job 999 not found", 999));
        assert!(!names_job(
            "cannot cancel job 12: its state is succeeded",
            1
        ));
        assert!(!names_job("the database is gone", 1));
    }
}
