//! A batch's page: how far it got, its callback, its first jobs; and cancelling it.

use askama::Template;
use axum::extract::State;
use outsourced_core::{Backend, BatchId, BatchInfo, JobFilter, JobRecord};

use super::actions::{Action, back};
use super::pages::chrome;
use super::view::{self, Chrome};
use super::{Admin, BatchPath, PageResult, page};
use crate::state::AppState;

/// The jobs of a batch its page lists at most.
const JOBS_SHOWN: u32 = 50;

#[derive(Template)]
#[template(path = "batch.html")]
struct BatchPage {
    chrome: Chrome,
    id: i64,
    description: String,
    state: &'static str,
    total: u64,
    succeeded: u64,
    failed: u64,
    cancelled: u64,
    not_ended: u64,
    /// Ended jobs, as a whole percentage (for the bar).
    percent: u64,
    callback: i64,
    callback_state: String,
    created_by: String,
    created: String,
    finished: String,
    jobs: Vec<JobRow>,
    more: bool,
}

struct JobRow {
    id: i64,
    class: String,
    queue: String,
    state: String,
}

/// `GET /dashboard/batches/{id}`.
pub(crate) async fn show(
    State(state): State<AppState>,
    admin: Admin,
    BatchPath(id): BatchPath,
) -> PageResult {
    let actor = admin.actor();
    let info = state.backend().batch(&actor, BatchId(id)).await?;
    let callback = state.backend().job(&actor, info.callback).await?;
    let filter = JobFilter {
        batch: Some(BatchId(id)),
        limit: JOBS_SHOWN + 1,
        ..JobFilter::default()
    };
    let mut jobs = state.backend().jobs(&actor, filter).await?;
    let more = jobs.len() > JOBS_SHOWN as usize;
    jobs.truncate(JOBS_SHOWN as usize);
    let detail = batch_page(chrome(&admin, "jobs"), &info, &callback, &jobs, more);
    Ok(page(view::render(&detail)))
}

fn batch_page(
    chrome: Chrome,
    info: &BatchInfo,
    callback: &JobRecord,
    jobs: &[JobRecord],
    more: bool,
) -> BatchPage {
    let counts = info.counts;
    let ended = counts.total - counts.live();
    let state = match (info.finished_at, info.closed) {
        (Some(_), _) => "ended",
        (None, true) => "closed",
        (None, false) => "open",
    };
    BatchPage {
        chrome,
        id: counts.id.0,
        description: info.description.clone().unwrap_or_default(),
        state,
        total: counts.total,
        succeeded: counts.succeeded,
        failed: counts.failed,
        cancelled: counts.cancelled,
        not_ended: counts.live(),
        percent: (ended * 100).checked_div(counts.total).unwrap_or(100),
        callback: info.callback.0,
        callback_state: callback.state.to_string(),
        created_by: info.created_by.to_string(),
        created: view::when(info.created_at),
        finished: info.finished_at.map(view::when).unwrap_or_default(),
        jobs: jobs
            .iter()
            .map(|job| JobRow {
                id: job.id.0,
                class: job.class.clone(),
                queue: job.queue.clone(),
                state: job.state.to_string(),
            })
            .collect(),
        more,
    }
}

/// `POST /dashboard/batches/{id}/cancel`.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    BatchPath(id): BatchPath,
    Action { admin, .. }: Action,
) -> PageResult {
    let n = state
        .backend()
        .cancel_batch(&admin.actor(), BatchId(id))
        .await?;
    let said = format!(
        "Batch {id} is closed and {n} of its jobs cancelled (running ones are asked to stop); its callback runs once they have ended."
    );
    back(&state, &admin, &format!("/batches/{id}"), &said)
}
