//! Retrying, cancelling or deleting every job a filter selects: a confirmation that says how
//! many it will touch, then the action, at most [`BULK`] jobs per request (the newest first;
//! do it again for the rest). A retry or a cancel changes each job in a transaction of its own
//! with a history row naming the admin, as the one-job actions do; a delete removes finished
//! jobs with their history in one transaction, and the server's log names the admin.

use axum::extract::{Query, State};
use outsourced_core::{Backend, JobFilter, JobRecord, JobState};
use serde::Deserialize;

use super::actions::{Action, back};
use super::pages::{chrome, job_filter};
use super::view::{self, ConfirmPage, JobsQuery};
use super::{Admin, Failure, PageResult, page};
use crate::state::AppState;

/// The most jobs one bulk action touches (the backend's largest page).
pub(crate) const BULK: u32 = 1000;

/// What a bulk action does to each job it may.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Bulk {
    /// Run it again: failed, cancelled, or waiting on a retry or its time.
    Retry,
    /// Cancel it (a running job is asked to stop).
    Cancel,
    /// Delete it, with its history: finished jobs only.
    Delete,
}

impl Bulk {
    /// Whether it applies to `job` as listed.
    fn applies(self, job: &JobRecord) -> bool {
        match self {
            Bulk::Retry => matches!(
                job.state,
                JobState::Failed | JobState::Cancelled | JobState::Scheduled | JobState::Retrying
            ),
            Bulk::Cancel => job.state.is_live() && !job.cancel_requested,
            Bulk::Delete => !job.state.is_live(),
        }
    }

    fn verb(self) -> &'static str {
        match self {
            Bulk::Retry => "retry",
            Bulk::Cancel => "cancel",
            Bulk::Delete => "delete",
        }
    }

    fn done(self) -> &'static str {
        match self {
            Bulk::Retry => "retried",
            Bulk::Cancel => "cancelled",
            Bulk::Delete => "deleted",
        }
    }
}

/// A bulk action's query (the confirmation) or form (the action): what to do, and the jobs
/// page's filter.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct BulkForm {
    #[serde(default)]
    pub(crate) action: String,
    #[serde(default)]
    pub(crate) state: String,
    #[serde(default)]
    pub(crate) queue: String,
    #[serde(default)]
    pub(crate) class: String,
    #[serde(default)]
    pub(crate) owner: String,
    #[serde(default)]
    pub(crate) key: String,
}

impl BulkForm {
    /// What to do and to which jobs; `None` without a known action.
    pub(crate) fn parse(self) -> Result<(Bulk, JobsQuery), Failure> {
        let action = match self.action.as_str() {
            "retry" => Bulk::Retry,
            "cancel" => Bulk::Cancel,
            "delete" => Bulk::Delete,
            other => {
                let refused = format!("{other:?} is no bulk action: retry, cancel or delete");
                return Err(Failure::new(axum::http::StatusCode::BAD_REQUEST, refused));
            }
        };
        let filter = JobsQuery {
            state: self.state,
            queue: self.queue,
            class: self.class,
            owner: self.owner,
            key: self.key,
            ..JobsQuery::default()
        };
        Ok((action, filter))
    }
}

/// The filter of a bulk action: the jobs page's, from its first page (no cursor), at most
/// [`BULK`] jobs.
fn bulk_filter(query: &JobsQuery) -> Result<JobFilter, Failure> {
    Ok(JobFilter {
        before: None,
        after: None,
        limit: BULK,
        ..job_filter(query)?
    })
}

/// `GET /dashboard/jobs/bulk?action=retry&state=failed...`: how many jobs the action would
/// touch, and a form to do it.
pub(crate) async fn confirm(
    State(state): State<AppState>,
    admin: Admin,
    Query(form): Query<BulkForm>,
) -> PageResult {
    let (action, filter) = form.parse()?;
    let selected = bulk_filter(&filter)?;
    let jobs = state
        .backend()
        .jobs(&admin.actor(), selected.clone())
        .await?;
    // A full batch: one more past it says whether more match than one request takes.
    let more = match jobs.last() {
        Some(last) if jobs.len() == BULK as usize => {
            let past = JobFilter {
                before: Some(last.id),
                limit: 1,
                ..selected
            };
            !state.backend().jobs(&admin.actor(), past).await?.is_empty()
        }
        _ => false,
    };
    let touched = jobs.iter().filter(|job| action.applies(job)).count();
    let (verb, done) = (action.verb(), action.done());
    if touched == 0 {
        let said = match jobs.len() {
            0 => "No job matches this filter.".to_owned(),
            1 => format!("The one job this filter selects cannot be {done}."),
            n => format!("None of the {n} jobs this filter selects can be {done}."),
        };
        let to = format!("/jobs?{}", filter_string(&filter));
        return back(&state, &admin, &to, &said);
    }
    let mut detail = match more {
        true => format!(
            "More than {BULK} jobs match; this acts on the newest {BULK} of them (do it again for the rest), of which {touched} can be {done}."
        ),
        false => format!(
            "{} {}, of which {touched} can be {done}.",
            count(jobs.len() as u64),
            if jobs.len() == 1 { "matches" } else { "match" }
        ),
    };
    detail += match action {
        Bulk::Delete => {
            " A deleted job is gone with its history and attachment; live jobs are left as they are."
        }
        _ => " Each change is written to the job's history with your name.",
    };
    let fields = filter_fields(&filter)
        .into_iter()
        .chain([("action".to_owned(), verb.to_owned())])
        .collect();
    let confirm = ConfirmPage {
        chrome: chrome(&admin, "jobs"),
        title: format!("{} {}?", capitalized(verb), count(touched as u64)),
        detail,
        action: "/jobs/bulk".into(),
        fields,
        button: format!("{} {}", capitalized(verb), count(touched as u64)),
        back: format!("/jobs?{}", filter_string(&filter)),
    };
    Ok(page(view::render(&confirm)))
}

/// `POST /dashboard/jobs/bulk`: does it, job by job, and says how many it changed.
pub(crate) async fn act(State(state): State<AppState>, action: Action) -> PageResult {
    let Action { admin, bulk, .. } = action;
    let (what, filter) = bulk.parse()?;
    let listed = (state.backend())
        .jobs(&admin.actor(), bulk_filter(&filter)?)
        .await?;
    let touched: Vec<&JobRecord> = listed.iter().filter(|job| what.applies(job)).collect();
    let done = match what {
        Bulk::Delete => {
            let ids: Vec<_> = touched.iter().map(|job| job.id).collect();
            let deleted = state.backend().delete_finished(&ids).await?;
            let by = &admin.session.admin;
            tracing::info!(admin = %by, deleted, "deleted finished jobs from the dashboard");
            deleted
        }
        _ => one_by_one(&state, &admin.actor(), what, &touched).await?,
    };
    let skipped = touched.len() as u64 - done;
    let mut said = format!("{} {}.", capitalized(what.done()), count(done));
    if skipped > 0 {
        said += &format!(" {skipped} changed meanwhile and were left as they are.");
    }
    back(
        &state,
        &admin,
        &format!("/jobs?{}", filter_string(&filter)),
        &said,
    )
}

/// Retries or cancels each of `jobs` in a transaction of its own; answers how many changed (a
/// job that changed since it was listed, a retry of a job that started, is refused and left).
async fn one_by_one(
    state: &AppState,
    actor: &outsourced_core::Actor,
    what: Bulk,
    jobs: &[&JobRecord],
) -> Result<u64, Failure> {
    let mut done = 0;
    for job in jobs {
        let changed = match what {
            Bulk::Cancel => state.backend().cancel(actor, job.id).await.map(drop),
            _ => state.backend().retry(actor, job.id).await.map(drop),
        };
        match changed {
            Ok(()) => done += 1,
            Err(error) if error.is_retryable() => return Err(error.into()),
            Err(_) => {}
        }
    }
    Ok(done)
}

/// The filter's fields, set ones only, as the confirmation's form carries them.
fn filter_fields(filter: &JobsQuery) -> Vec<(String, String)> {
    [
        ("state", &filter.state),
        ("queue", &filter.queue),
        ("class", &filter.class),
        ("owner", &filter.owner),
        ("key", &filter.key),
    ]
    .into_iter()
    .filter(|(_, value)| !value.is_empty())
    .map(|(name, value)| (name.to_owned(), value.clone()))
    .collect()
}

/// The filter as a query string (no cursor).
pub(crate) fn filter_string(filter: &JobsQuery) -> String {
    let mut encoded = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in filter_fields(filter) {
        encoded.append_pair(&name, &value);
    }
    encoded.finish()
}

/// "1 job", "3 jobs".
fn count(n: u64) -> String {
    match n {
        1 => "1 job".to_owned(),
        n => format!("{n} jobs"),
    }
}

fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}
