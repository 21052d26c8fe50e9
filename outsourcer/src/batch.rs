//! `outsourcer batch ...`

use outsourced_core::{Backend, BatchId, BatchInfo, Error, JobState, NewBatch, NewJob, Result};
use serde_json::{Value, json};

use crate::args::BatchCommand;
use crate::context::Ctx;
use crate::output::{clean, print_json, time};

pub(crate) async fn run(ctx: &Ctx, command: BatchCommand) -> Result<()> {
    let (backend, by) = (&ctx.backend, ctx.actor());
    match command {
        BatchCommand::Open {
            callback,
            callback_queue,
            callback_args,
            description,
        } => {
            let args: Value = serde_json::from_str(&callback_args)
                .map_err(|e| Error::invalid(format!("--callback-args is not valid JSON: {e}")))?;
            let callback = NewJob::new(callback, args).queue(callback_queue);
            let batch = NewBatch {
                description,
                callback,
            };
            let info = backend.open_batch(&by, batch).await.map_err(|e| match e {
                Error::UnknownQueue { queue } => Error::invalid(format!(
                    "the callback's queue {queue:?} does not exist (outsourcer queue list shows the queues)"
                )),
                other => other,
            })?;
            let id = info.counts.id;
            show(ctx, &info, || {
                format!(
                    "opened batch {id} (its callback is job {}, pending until the batch ends)\n\
                     add jobs with: outsourcer job enqueue --batch {id} ...\n\
                     then close it: outsourcer batch close {id}",
                    info.callback
                )
            })
        }
        BatchCommand::Close { id } => {
            let info = backend.close_batch(&by, BatchId(id)).await?;
            show(ctx, &info, || {
                let live = info.counts.live();
                match info.finished_at {
                    Some(_) => format!(
                        "batch {id} is closed and has ended: its callback, job {}, may run",
                        info.callback
                    ),
                    None => format!(
                        "batch {id} is closed: its callback, job {}, runs once {}",
                        info.callback,
                        match live {
                            1 => "its last job has ended".to_owned(),
                            n => format!("its {n} remaining jobs have ended"),
                        }
                    ),
                }
            })
        }
        BatchCommand::Show { id } => {
            let info = backend.batch(&by, BatchId(id)).await?;
            let callback = backend.job(&by, info.callback).await.ok();
            let callback_state = callback.map(|job| job.state);
            if ctx.json {
                let mut json = batch_json(&info);
                json["callback_state"] = json!(callback_state.map(|s| s.as_str()));
                print_json(&json);
                return Ok(());
            }
            show(ctx, &info, || batch_text(&info, callback_state))
        }
        BatchCommand::Cancel { id } => {
            let before = backend.batch(&by, BatchId(id)).await?;
            if before.finished_at.is_some() && !ctx.json {
                out!(
                    "batch {id} had ended already (its callback, job {}, was made runnable): nothing to cancel",
                    before.callback
                );
                return Ok(());
            }
            let cancelled = backend.cancel_batch(&by, BatchId(id)).await?;
            if ctx.json {
                print_json(&json!({ "id": id, "cancelled": cancelled }));
            } else {
                out!(
                    "batch {id} is closed; cancelled (or asked to stop) {cancelled} job{}; its callback runs once they have ended",
                    if cancelled == 1 { "" } else { "s" }
                );
            }
            Ok(())
        }
    }
}

/// Prints the batch as JSON, or `text`.
fn show(ctx: &Ctx, info: &BatchInfo, text: impl FnOnce() -> String) -> Result<()> {
    if ctx.json {
        print_json(&batch_json(info));
    } else {
        out!("{}", text());
    }
    Ok(())
}

pub(crate) fn batch_json(info: &BatchInfo) -> Value {
    let counts = &info.counts;
    json!({
        "id": counts.id.0,
        "description": info.description,
        "created_by": info.created_by.to_string(),
        "created_at": time(info.created_at),
        "closed": info.closed,
        "total": counts.total,
        "succeeded": counts.succeeded,
        "failed": counts.failed,
        "cancelled": counts.cancelled,
        "live": counts.live(),
        "callback": info.callback.0,
        "finished_at": info.finished_at.map(time),
    })
}

/// What the callback's state means for the batch.
fn callback_text(info: &BatchInfo, state: Option<JobState>) -> String {
    match state {
        Some(JobState::Pending) if !info.closed => {
            "pending: it runs once the batch is closed and its jobs have ended".to_owned()
        }
        Some(JobState::Pending) => "pending: it runs once the batch's jobs have ended".to_owned(),
        Some(JobState::Cancelled) if info.finished_at.is_none() => {
            "cancelled: it will not run when the batch ends".to_owned()
        }
        Some(state) => state.to_string(),
        None => "gone".to_owned(),
    }
}

/// A batch as "key: value" lines, with its callback's state when it could be read.
fn batch_text(info: &BatchInfo, callback_state: Option<JobState>) -> String {
    let counts = &info.counts;
    let state = match (info.closed, info.finished_at) {
        (_, Some(at)) => format!("ended {}", time(at)),
        (true, None) => "closed: ends once its jobs have".to_owned(),
        (false, None) => "open: jobs may join it (close it when they have)".to_owned(),
    };
    let mut lines = vec![
        format!("{:>12}: {}", "id", counts.id),
        format!("{:>12}: {state}", "state"),
    ];
    if let Some(description) = &info.description {
        lines.push(format!("{:>12}: {}", "description", clean(description)));
    }
    lines.extend([
        format!(
            "{:>12}: {} ({} succeeded, {} failed, {} cancelled, {} not ended)",
            "jobs",
            counts.total,
            counts.succeeded,
            counts.failed,
            counts.cancelled,
            counts.live()
        ),
        format!(
            "{:>12}: job {}, {} (outsourcer job show {})",
            "callback",
            info.callback,
            callback_text(info, callback_state),
            info.callback
        ),
        format!(
            "{:>12}: {}",
            "opened by",
            clean(&info.created_by.to_string())
        ),
        format!("{:>12}: {}", "opened", time(info.created_at)),
        format!(
            "{:>12}: outsourcer job list --batch {}",
            "its jobs", counts.id
        ),
    ]);
    lines.join("\n")
}
