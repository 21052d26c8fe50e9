//! The dashboard's pages. Each reads through indexed queries only: queue counts, a page of
//! jobs by id, one job's history by its key, recent finishes by (queue, finished_at), leases
//! by their expiry.

use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use chrono::Duration;
use outsourced_backend_sql::store::LeasedJob;
use outsourced_backend_sql::{InstanceInfo, Role};
use outsourced_core::{Backend, BackendExt, JobFilter, JobId, JobState, Owner, Reason};

use super::view::{
    self, AttachmentRow, Chrome, ConfirmPage, HeldRow, HistoryRow, InstanceRow, JobPage, JobRow,
    JobsPage, JobsQuery, OverviewPage, QueueRow, WorkerRow, WorkersPage, pretty,
};
use super::{Admin, Failure, PageResult, chart, page};
use crate::state::AppState;

/// Jobs per page of the jobs list.
const PAGE: u32 = 50;

pub(crate) fn chrome(admin: &Admin, tab: &'static str) -> Chrome {
    Chrome {
        base: admin.base.clone(),
        admin: admin.session.admin.clone(),
        csrf: admin.session.csrf.clone(),
        tab,
        notice: admin.notice.clone(),
    }
}

fn state_names() -> Vec<&'static str> {
    JobState::ALL.iter().map(|s| s.as_str()).collect()
}

/// Most jobs counted for "succeeded/failed in the last minute" (an index range each).
const COUNT_CAP: u64 = 10_000;

/// The overview's query: the queue whose charts it draws (every queue's when absent).
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct ChartQuery {
    #[serde(default)]
    queue: String,
}

/// `GET /dashboard`: every queue with its limit and how full it is, exact per-state counts and
/// recent throughput; charts of the last hour and day from the database's tallies.
pub(crate) async fn overview(
    State(state): State<AppState>,
    admin: Admin,
    super::Link(asked): super::Link<ChartQuery>,
) -> PageResult {
    let (backend, store) = (state.backend(), state.directory());
    let now = chrono::Utc::now();
    let minute_ago = now - Duration::minutes(1);
    let mut queues = Vec::new();
    for queue in backend.queues(&admin.actor()).await? {
        let finished = |state| store.finished_since(&queue.name, state, minute_ago, COUNT_CAP);
        let live = queue.counts.live();
        let per_key = match queue.limits.max_running_per_key {
            Some(limit) => view::per_key(limit, &store.running_per_key(&queue.name, 5).await?),
            None => String::new(),
        };
        queues.push(QueueRow {
            per_key,
            counts: JobState::ALL
                .iter()
                .map(|s| queue.counts.get(*s).to_string())
                .collect(),
            fill: view::fill(live, queue.limit.max()),
            run_limits: queue.run_limits_text().unwrap_or_default(),
            paused: queue.paused,
            succeeded_last_minute: finished(JobState::Succeeded).await?.to_string(),
            failed_last_minute: finished(JobState::Failed).await?.to_string(),
            unserved: backend.unserved(&queue.name).await?.join(", "),
            name: queue.name,
        });
    }
    let leases = store.leases_by_worker().await?;
    let workers = state.directory().list(Role::Worker).await?.len();
    let instances = backend.live_instances().await?.len();
    let overview = OverviewPage {
        chrome: chrome(&admin, "overview"),
        states: state_names(),
        queues,
        workers,
        instances,
        leased: leases.values().sum(),
        charts: charts(store, now, blank_to_none(&asked.queue)).await?,
    };
    Ok(page(view::render(&overview)))
}

/// The overview's charts, of `queue` or every queue together: the last hour by minute, the
/// last day by quarter hour.
async fn charts(
    store: &outsourced_backend_sql::Directory,
    now: chrono::DateTime<chrono::Utc>,
    queue: Option<String>,
) -> Result<view::Charts, Failure> {
    let day = store.minutes(queue.as_deref(), now - Duration::days(1), now);
    let day = day.await?;
    let (minute, quarter) = (Duration::minutes(1), Duration::minutes(15));
    let (hour_start, hour) = chart::periods(&day, now, minute, 60);
    let (day_start, quarters) = chart::periods(&day, now, quarter, 96);
    let total = |tallies: &[outsourced_backend_sql::tally::Tally]| {
        let mut sum = outsourced_backend_sql::tally::Tally::default();
        tallies.iter().for_each(|t| sum.add(t));
        sum
    };
    let (last_hour, last_day) = (total(&hour), total(&quarters));
    Ok(view::Charts {
        of: queue.unwrap_or_default(),
        hour: chart::throughput(hour_start, minute, &hour),
        hour_waits: chart::waits(hour_start, minute, &hour),
        day: chart::throughput(day_start, quarter, &quarters),
        hour_summary: view::summary(&last_hour),
        day_summary: view::summary(&last_day),
    })
}

fn blank_to_none(text: &str) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

pub(crate) fn job_filter(query: &JobsQuery) -> Result<JobFilter, Failure> {
    let bad = |e: outsourced_core::Error| Failure::from(e);
    let state = blank_to_none(&query.state)
        .map(|s| s.parse::<JobState>())
        .transpose()
        .map_err(|_| {
            let states = state_names().join(", ");
            let said = format!("{:?} is no state: one of {states}", query.state.trim());
            bad(outsourced_core::Error::invalid(said))
        })?;
    let owner = blank_to_none(&query.owner)
        .map(|o| o.parse::<Owner>())
        .transpose()
        .map_err(bad)?;
    let class = blank_to_none(&query.class);
    Ok(JobFilter {
        state,
        owner,
        queue: blank_to_none(&query.queue),
        // `Mailer::*`: every class that begins with `Mailer::`.
        class_prefix: class
            .as_deref()
            .and_then(|c| c.strip_suffix('*'))
            .map(str::to_owned),
        class: class.filter(|c| !c.ends_with('*')),
        unique_key: blank_to_none(&query.key),
        before: query.before.map(JobId),
        after: query.after.map(JobId),
        // One more than a page, to know whether there is another in that direction.
        limit: PAGE + 1,
        ..JobFilter::default()
    })
}

/// The query strings of the pages older and newer than `jobs`, keeping the filter. `more`:
/// the backend had more than a page in the direction this page was read.
fn neighbours(query: &JobsQuery, jobs: &[JobRow], more: bool) -> (Option<String>, Option<String>) {
    let back = query.after.is_some();
    // Paging back came from an older page; paging on (or from the top) came from a newer one.
    let older = more || back;
    let newer = (more && back) || query.before.is_some();
    (
        jobs.last()
            .filter(|_| older)
            .map(|last| paged(query, "before", last.id)),
        jobs.first()
            .filter(|_| newer)
            .map(|first| paged(query, "after", first.id)),
    )
}

/// The filter's query string with a cursor.
fn paged(query: &JobsQuery, cursor: &str, id: i64) -> String {
    let pairs = [
        ("state", query.state.as_str()),
        ("queue", query.queue.as_str()),
        ("class", query.class.as_str()),
        ("owner", query.owner.as_str()),
        ("key", query.key.as_str()),
    ];
    let mut encoded = url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        encoded.append_pair(name, value);
    }
    encoded.append_pair(cursor, &id.to_string());
    encoded.finish()
}

/// `GET /dashboard/jobs`: newest first, filtered by state, queue, class, owner and unique key.
pub(crate) async fn jobs(
    State(state): State<AppState>,
    admin: Admin,
    super::Link(query): super::Link<JobsQuery>,
) -> PageResult {
    if let Some(id) = blank_to_none(&query.id) {
        let id: u64 = id.trim_start_matches('#').parse().map_err(|_| {
            Failure::new(
                axum::http::StatusCode::BAD_REQUEST,
                format!("{id:?} is not a job id: job ids are numbers, like 42"),
            )
        })?;
        let to = format!("{}/jobs/{id}", admin.base);
        return Ok(axum::response::Redirect::to(&to).into_response());
    }
    let actor = admin.actor();
    let filter = job_filter(&query)?;
    let mut jobs: Vec<JobRow> = (state.backend().jobs(&actor, filter).await?)
        .iter()
        .map(JobRow::from)
        .collect();
    let more = jobs.len() > PAGE as usize;
    if more {
        // The one past the page: the newest when paging back, else the oldest.
        match query.after.is_some() {
            true => drop(jobs.remove(0)),
            false => drop(jobs.pop()),
        }
    }
    let (older, newer) = neighbours(&query, &jobs, more);
    let queues = state.backend().queues(&actor).await?;
    let asked = query.queue.trim();
    let unknown_queue = match asked.is_empty() || queues.iter().any(|q| q.name == asked) {
        true => String::new(),
        false => asked.to_owned(),
    };
    let listing = JobsPage {
        unknown_queue,
        chrome: chrome(&admin, "jobs"),
        states: state_names(),
        queues: queues.into_iter().map(|q| q.name).collect(),
        older,
        newer,
        selected: super::bulk::filter_string(&query),
        filter: query,
        jobs,
    };
    Ok(page(view::render(&listing)))
}

/// What a job page's refresh says it shows: the job as of its last change (epoch ms).
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct Seen {
    at: Option<i64>,
    /// The page of the history to show: the steps before this one (the latest when absent).
    steps_before: Option<u32>,
}

/// History steps per page of a job's page.
const STEPS: u64 = 100;

/// `GET /dashboard/jobs/{id}`: everything about one job, with its full history. A live job's
/// page asks again every 2 s with the version it shows (`?at=`), and is answered 204 (htmx
/// swaps nothing) until the job changes; when it does, what the operator opened stays open
/// (`hx-preserve` on each fold, keyed by what it holds).
pub(crate) async fn job(
    State(state): State<AppState>,
    admin: Admin,
    super::JobPath(id): super::JobPath,
    super::Link(seen): super::Link<Seen>,
) -> PageResult {
    let actor = admin.actor();
    let job = state.backend().job(&actor, JobId(id)).await?;
    let version = job.updated_at.timestamp_millis();
    if seen.at == Some(version) {
        // The page's own refresh, and nothing changed: nothing to swap, nothing closed.
        return Ok(axum::http::StatusCode::NO_CONTENT.into_response());
    }
    // One step more than a page, to know whether earlier ones are left.
    let mut entries = (state.directory())
        .history_page(JobId(id), seen.steps_before, STEPS + 1)
        .await?;
    let earlier = (entries.len() as u64 > STEPS).then(|| entries.remove(0).seq + 1);
    let later = match (seen.steps_before, entries.last()) {
        (Some(_), Some(last)) => {
            let latest = (state.directory().history_page(JobId(id), None, 1).await?)
                .pop()
                .map_or(0, |step| step.seq);
            (last.seq < latest).then_some(last.seq + 1 + STEPS as u32)
        }
        _ => None,
    };
    let last_error_seq = entries
        .iter()
        .rev()
        .find(|entry| entry.error.is_some())
        .map_or(0, |entry| entry.seq);
    let mut previous = None;
    let history = entries
        .iter()
        .map(|entry| {
            let row = HistoryRow::new(entry, previous);
            previous = Some(entry.at);
            row
        })
        .collect();
    let of_parent = JobFilter {
        parent: Some(job.id),
        ..JobFilter::default()
    };
    let follow_ups = first_related(&state, &actor, job.id, of_parent).await?;
    let of_dependency = JobFilter {
        dependants_of: Some(job.id),
        ..JobFilter::default()
    };
    let dependants = first_related(&state, &actor, job.id, of_dependency).await?;
    let args = serde_json::to_string_pretty(&job.args).unwrap_or_default();
    let args_folded = args.len() > FOLD_BYTES || args.lines().count() > FOLD_LINES;
    // The result of the latest success (each run of a repeating job keeps its own in the
    // history below).
    let result = entries
        .iter()
        .rev()
        .find(|entry| entry.reason == Reason::Completed)
        .and_then(|entry| entry.result.as_ref())
        .map(pretty)
        .unwrap_or_default();
    let attachment = job.attachment.as_ref().map(|a| AttachmentRow {
        name: a.file_name.clone().unwrap_or_else(|| "(no name)".into()),
        content_type: a.content_type.clone(),
        size: a.size,
        sha256: a.sha256.clone(),
    });
    let retryable = matches!(
        job.state,
        JobState::Failed | JobState::Cancelled | JobState::Scheduled | JobState::Retrying
    );
    let held_back = match job.state.is_waiting() {
        true => (state.backend())
            .why_held_back(&actor, &job, chrono::Utc::now())
            .await?
            .unwrap_or_default(),
        false => String::new(),
    };
    let no_worker = job.state.is_waiting()
        && state
            .backend()
            .unserved(&job.queue)
            .await?
            .contains(&job.class);
    let detail = JobPage {
        chrome: chrome(&admin, "jobs"),
        job: JobRow::from(&job),
        live: job.state.is_live(),
        retryable,
        cancellable: job.state.is_live() && !job.cancel_requested,
        priority: job.priority,
        enqueued_by: job.enqueued_by.to_string(),
        finished: job.finished_at.map(view::when).unwrap_or_default(),
        leased_by: job
            .lease
            .as_ref()
            .map(|l| l.holder.to_string())
            .unwrap_or_default(),
        no_worker,
        held_back,
        version,
        last_error_seq,
        last_error: job.last_error.clone().unwrap_or_default(),
        last_error_line: job
            .last_error
            .as_deref()
            .map(view::decisive)
            .unwrap_or_default()
            .to_owned(),
        args,
        args_folded,
        result,
        unique_key: job.unique_key.clone().unwrap_or_default(),
        concurrency_key: job.concurrency_key.clone().unwrap_or_default(),
        parent: job.parent.map(|p| p.0),
        more_follow_ups: follow_ups.len() > FOLLOW_UPS_SHOWN,
        follow_ups: follow_ups.into_iter().take(FOLLOW_UPS_SHOWN).collect(),
        dependencies: job.dependencies.iter().map(|id| id.0).collect(),
        dependencies_left: job.dependencies_left,
        more_dependants: dependants.len() > FOLLOW_UPS_SHOWN,
        dependants: dependants.into_iter().take(FOLLOW_UPS_SHOWN).collect(),
        batch: job.batch.map(|b| b.0),
        callback_of: job.callback_of.map(|b| b.0),
        attachment,
        history,
        earlier,
        later,
        steps_before: seen.steps_before,
    };
    Ok(page(view::render(&detail)))
}

/// The follow-ups (or dependants) a job's page links to at most.
const FOLLOW_UPS_SHOWN: usize = 20;

/// The ids of the first jobs of `filter` (job `id`'s follow-ups or dependants), oldest first,
/// and one more if there are more.
async fn first_related(
    state: &AppState,
    actor: &outsourced_core::Actor,
    id: JobId,
    filter: JobFilter,
) -> Result<Vec<i64>, outsourced_core::Error> {
    // Stored after job `id`, so the page just after it holds the oldest of them.
    let filter = JobFilter {
        after: Some(id),
        limit: FOLLOW_UPS_SHOWN as u32 + 1,
        ..filter
    };
    let jobs = state.backend().jobs(actor, filter).await?;
    Ok(jobs.iter().rev().map(|job| job.id.0).collect())
}

/// Arguments past this many bytes or lines are folded away on a job's page at first.
const FOLD_BYTES: usize = 2_000;
const FOLD_LINES: usize = 30;

/// `GET /dashboard/jobs/{id}/attachment`: the file, streamed.
pub(crate) async fn attachment(
    State(state): State<AppState>,
    admin: Admin,
    super::JobPath(id): super::JobPath,
) -> PageResult {
    let download = state
        .backend()
        .attachment(&admin.actor(), JobId(id))
        .await?;
    Ok(crate::routes::download_response(download).into_response())
}

/// Leased jobs the workers page lists at most (the leases that run out first).
const HELD_SHOWN: u64 = 500;

/// `GET /dashboard/workers`: each worker's queues, last contact, lock, and its live instances
/// (processes) with the jobs each holds.
pub(crate) async fn workers(State(state): State<AppState>, admin: Admin) -> PageResult {
    let leases = state.directory().leases_by_worker().await?;
    let live = state.backend().live_instances().await?;
    let held = state.directory().leased_jobs(HELD_SHOWN).await?;
    let queues: Vec<String> = (state.backend().queues(&admin.actor()).await?)
        .into_iter()
        .map(|q| q.name)
        .collect();
    let rows = (state.directory().list(Role::Worker).await?)
        .into_iter()
        .map(|w| WorkerRow {
            hireable: queues
                .iter()
                .filter(|q| !w.queues.contains(q))
                .cloned()
                .collect(),
            last_contact: w
                .last_seen_at
                .map(view::when)
                .unwrap_or_else(|| "never".into()),
            in_hand: leases.get(&w.name).copied().unwrap_or(0),
            instances: instances_of(&w.name, &live, &held),
            locked: w.locked,
            queues: w.queues,
            name: w.name,
        })
        .collect();
    let listing = WorkersPage {
        chrome: chrome(&admin, "workers"),
        workers: rows,
    };
    Ok(page(view::render(&listing)))
}

/// A worker's instances: those heard of lately, and any other that still holds a job.
fn instances_of(worker: &str, live: &[InstanceInfo], held: &[LeasedJob]) -> Vec<InstanceRow> {
    let now = chrono::Utc::now();
    let mut rows: Vec<InstanceRow> = live
        .iter()
        .filter(|i| i.worker == worker)
        .map(|i| InstanceRow {
            instance: i.instance.clone(),
            online: true,
            last_contact: ago(now - i.last_seen_at),
            held: Vec::new(),
        })
        .collect();
    for job in held.iter().filter(|j| j.worker == worker) {
        let at = match rows.iter().position(|r| r.instance == job.instance) {
            Some(at) => at,
            None => {
                rows.push(InstanceRow {
                    instance: job.instance.clone(),
                    online: false,
                    last_contact: String::new(),
                    held: Vec::new(),
                });
                rows.len() - 1
            }
        };
        rows[at].held.push(HeldRow {
            id: job.id,
            class: job.class.clone(),
            queue: job.queue.clone(),
            ran: job.started_at.map(|s| ago(now - s)).unwrap_or_default(),
        });
    }
    rows
}

/// A time span as "4.2 s", for how long ago or how long for.
fn ago(span: chrono::Duration) -> String {
    view::span(span.num_milliseconds().max(0))
}

/// What the fire form sends to its confirmation.
#[derive(Debug, Default, serde::Deserialize)]
pub(crate) struct FireQuery {
    #[serde(default)]
    queue: String,
}

/// `GET /dashboard/workers/{name}/lock`: asks before locking a worker out.
pub(crate) async fn confirm_lock(
    State(state): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
) -> PageResult {
    state.directory().get(Role::Worker, &name).await?;
    let confirm = ConfirmPage {
        chrome: chrome(&admin, "workers"),
        title: format!("Lock {name} out?"),
        detail: format!(
            "Every request signed with {name}'s key is then refused, from every one of its processes; the jobs it holds run again once their leases expire. Unlocking it undoes this."
        ),
        action: format!("/workers/{}/lock", urlencoded(&name)),
        fields: Vec::new(),
        button: "Lock".into(),
        back: "/workers".into(),
    };
    Ok(page(view::render(&confirm)))
}

/// `GET /dashboard/workers/{name}/rotate`: asks before giving a worker a new secret.
pub(crate) async fn confirm_rotate(
    State(state): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
) -> PageResult {
    state.directory().get(Role::Worker, &name).await?;
    let confirm = ConfirmPage {
        chrome: chrome(&admin, "workers"),
        title: format!("Give {name} a new secret?"),
        detail: format!(
            "Its current secret stops working at once: every process of {name} is refused until its config has the new one (the next page shows it once; `outsourcer worker config {name} -o FILE` writes a config with it). Use this when a secret may have leaked."
        ),
        action: format!("/workers/{}/rotate", urlencoded(&name)),
        fields: Vec::new(),
        button: "Rotate the secret".into(),
        back: "/workers".into(),
    };
    Ok(page(view::render(&confirm)))
}

/// `GET /dashboard/workers/{name}/fire?queue=Q`: asks before firing a worker from a queue.
pub(crate) async fn confirm_fire(
    State(state): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
    Query(query): Query<FireQuery>,
) -> PageResult {
    let worker = state.directory().get(Role::Worker, &name).await?;
    if !worker.queues.contains(&query.queue) {
        let message = format!("worker {name} is not hired for queue {:?}", query.queue);
        return Err(Failure::new(axum::http::StatusCode::NOT_FOUND, message));
    }
    let confirm = ConfirmPage {
        chrome: chrome(&admin, "workers"),
        title: format!("Fire {name} from {}?", query.queue),
        detail: format!(
            "Worker {name} then takes no new jobs from queue {}; hiring it again undoes this.",
            query.queue
        ),
        action: format!("/workers/{}/fire", urlencoded(&name)),
        fields: vec![("queue".into(), query.queue)],
        button: "Fire".into(),
        back: "/workers".into(),
    };
    Ok(page(view::render(&confirm)))
}

/// `text` as one path segment.
fn urlencoded(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
