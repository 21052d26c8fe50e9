//! The pages' templates (in `templates/`) and the rows they show, formatted for reading.

use askama::Template;
use axum::response::Html;
use chrono::{DateTime, Utc};
use outsourced_core::{HistoryEntry, JobRecord, JobState};

/// Renders a template; a template that fails to render says so instead of a blank page.
pub(crate) fn render(template: &impl Template) -> Html<String> {
    Html(template.render().unwrap_or_else(|error| {
        tracing::error!(%error, "a dashboard template failed");
        format!("<p>this page could not be rendered: {error}</p>")
    }))
}

/// A time as the pages show it (UTC, to the second).
pub(crate) fn when(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// A duration in milliseconds, readably.
pub(crate) fn span(ms: i64) -> String {
    match ms {
        ms if ms < 1_000 => format!("{ms} ms"),
        ms if ms < 60_000 => format!("{:.1} s", ms as f64 / 1e3),
        ms if ms < 3_600_000 => format!("{:.1} min", ms as f64 / 6e4),
        ms => format!("{:.1} h", ms as f64 / 3.6e6),
    }
}

/// The parts every page shares.
pub(crate) struct Chrome {
    /// The dashboard's URL prefix.
    pub(crate) base: String,
    /// The admin who is logged in.
    pub(crate) admin: String,
    /// The session's CSRF token, for each form.
    pub(crate) csrf: String,
    /// Which tab is open.
    pub(crate) tab: &'static str,
    /// What the last action said, shown once; empty when nothing.
    pub(crate) notice: String,
}

#[derive(Template)]
#[template(path = "login.html")]
pub(crate) struct LoginPage {
    pub(crate) base: String,
    pub(crate) error: Option<String>,
    pub(crate) name: String,
    /// The form's token, also in the login cookie (a login form posted from elsewhere lacks
    /// one or the other).
    pub(crate) csrf: String,
}

#[derive(Template)]
#[template(path = "error.html")]
pub(crate) struct ErrorPage {
    pub(crate) status: u16,
    pub(crate) message: String,
}

/// One queue on the overview.
pub(crate) struct QueueRow {
    pub(crate) name: String,
    /// Its run limits in a few words, empty when it has none.
    pub(crate) run_limits: String,
    /// With a limit per key: the busiest keys now, in words (else empty).
    pub(crate) per_key: String,
    pub(crate) paused: bool,
    /// How full it is against its limit: an SVG bar with its words ("12 of 10000 live").
    pub(crate) fill: Fill,
    /// Per state, in lifecycle order (as `OverviewPage::states`), exact.
    pub(crate) counts: Vec<String>,
    /// Succeeded and failed for good in the last minute.
    pub(crate) succeeded_last_minute: String,
    pub(crate) failed_last_minute: String,
    /// Classes of its waiting jobs that no live worker runs, comma-separated.
    pub(crate) unserved: String,
}

#[derive(Template)]
#[template(path = "overview.html")]
pub(crate) struct OverviewPage {
    pub(crate) chrome: Chrome,
    pub(crate) states: Vec<&'static str>,
    pub(crate) queues: Vec<QueueRow>,
    /// Workers (credentials) the directory has.
    pub(crate) workers: usize,
    /// Worker processes heard of in the last two minutes (`LIVE_FOR`).
    pub(crate) instances: usize,
    pub(crate) leased: u64,
    pub(crate) charts: Charts,
}

/// The busiest concurrency keys of a queue with a limit of `limit` per key, in words.
pub(crate) fn per_key(limit: u32, keys: &[(String, u64)]) -> String {
    if keys.is_empty() {
        return "no key runs a job now".to_owned();
    }
    let at_limit = keys.iter().filter(|(_, n)| *n >= u64::from(limit)).count();
    let listed: Vec<String> = keys.iter().map(|(key, n)| format!("{key} {n}")).collect();
    format!(
        "busiest keys: {} ({at_limit} at the limit)",
        listed.join(", ")
    )
}

/// How full a queue is: its live jobs against its limit.
pub(crate) struct Fill {
    /// The share of the limit in use, in percent (0 when unlimited).
    pub(crate) percent: u64,
    /// "12 of 10000 live", or "12 live" when unlimited.
    pub(crate) words: String,
    /// Whether it is nearly full (90% or more).
    pub(crate) high: bool,
}

/// A queue with `live` live jobs against `limit` (`None`: unlimited).
pub(crate) fn fill(live: u64, limit: Option<u64>) -> Fill {
    match limit {
        Some(limit) => {
            let percent = (live.saturating_mul(100) / limit.max(1)).min(100);
            Fill {
                percent,
                words: format!("{live} of {limit} live"),
                high: percent >= 90,
            }
        }
        None => Fill {
            percent: 0,
            words: format!("{live} live"),
            high: false,
        },
    }
}

/// The overview's charts, as SVG markup made from numbers only (`chart.rs`).
pub(crate) struct Charts {
    /// The queue they are of; empty: every queue together.
    pub(crate) of: String,
    pub(crate) hour: String,
    pub(crate) hour_waits: String,
    pub(crate) day: String,
    /// What the last hour and day add up to, in words.
    pub(crate) hour_summary: String,
    pub(crate) day_summary: String,
}

/// A period's tallies in words: "120 enqueued, 118 succeeded, 2 failed; p50 wait ≤ 10 ms".
pub(crate) fn summary(tally: &outsourced_backend_sql::tally::Tally) -> String {
    let mut words = format!(
        "{} enqueued, {} started, {} succeeded, {} failed, {} to retry",
        tally.enqueued, tally.started, tally.succeeded, tally.failed, tally.retried
    );
    let bound = |ms: u64| match ms {
        u64::MAX => "more than 5 min".to_owned(),
        ms if ms >= 1000 => format!("at most {} s", ms / 1000),
        ms => format!("at most {ms} ms"),
    };
    if let (Some(p50), Some(p95)) = (tally.wait_quantile(0.5), tally.wait_quantile(0.95)) {
        words += &format!("; waits p50 {}, p95 {}", bound(p50), bound(p95));
    }
    words
}

/// One job in a listing.
pub(crate) struct JobRow {
    pub(crate) id: i64,
    pub(crate) class: String,
    pub(crate) queue: String,
    pub(crate) state: &'static str,
    pub(crate) attempts: String,
    pub(crate) owner: String,
    pub(crate) created: String,
    pub(crate) run_at: String,
    /// The decisive line of its last error (see [`decisive`]), empty when none or when it
    /// succeeded after all.
    pub(crate) error: String,
}

/// The line of an error that says what went wrong: the last line that is not blank (a
/// command's stderr ends with its exception; a Rust error's text is one line).
pub(crate) fn decisive(error: &str) -> &str {
    error
        .lines()
        .rev()
        .map(str::trim)
        .find(|line| !line.is_empty())
        .unwrap_or_default()
}

impl From<&JobRecord> for JobRow {
    fn from(job: &JobRecord) -> Self {
        JobRow {
            id: job.id.0,
            class: job.class.clone(),
            queue: job.queue.clone(),
            state: job.state.as_str(),
            attempts: format!("{}/{}", job.attempts, job.max_attempts),
            owner: job
                .owner
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            created: when(job.created_at),
            run_at: when(job.run_at),
            // A job that succeeded in the end lists no error (its page keeps the earlier one).
            error: job
                .last_error
                .as_deref()
                .filter(|_| job.state != JobState::Succeeded)
                .map(decisive)
                .unwrap_or_default()
                .to_owned(),
        }
    }
}

/// The jobs page's filter, as the form sends it back.
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub(crate) struct JobsQuery {
    #[serde(default)]
    pub(crate) state: String,
    #[serde(default)]
    pub(crate) queue: String,
    #[serde(default)]
    pub(crate) class: String,
    #[serde(default)]
    pub(crate) owner: String,
    /// A unique key.
    #[serde(default)]
    pub(crate) key: String,
    pub(crate) before: Option<i64>,
    /// The cursor back: the jobs just newer than this id.
    pub(crate) after: Option<i64>,
    /// A job id to go to (the page's "go to job" box).
    #[serde(default)]
    pub(crate) id: String,
}

#[derive(Template)]
#[template(path = "jobs.html")]
pub(crate) struct JobsPage {
    pub(crate) chrome: Chrome,
    pub(crate) states: Vec<&'static str>,
    pub(crate) queues: Vec<String>,
    pub(crate) filter: JobsQuery,
    pub(crate) jobs: Vec<JobRow>,
    /// The query string of the next (older) page, when there may be one.
    pub(crate) older: Option<String>,
    /// The query string of the page before (newer), when this is not the first.
    pub(crate) newer: Option<String>,
    /// The filter as a query string, for the bulk actions' links.
    pub(crate) selected: String,
    /// The filter's queue when no queue has that name (else empty).
    pub(crate) unknown_queue: String,
}

/// A JSON value as the pages show it: a string as its text, anything else indented.
pub(crate) fn pretty(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(text) => text.clone(),
        other => serde_json::to_string_pretty(other).unwrap_or_default(),
    }
}

/// One transition on a job's page.
pub(crate) struct HistoryRow {
    pub(crate) seq: u32,
    pub(crate) from: &'static str,
    pub(crate) to: &'static str,
    pub(crate) at: String,
    pub(crate) after: String,
    pub(crate) actor: String,
    pub(crate) attempt: u32,
    pub(crate) reason: String,
    pub(crate) error: String,
    pub(crate) backtrace: String,
    /// The result of a succeeded attempt, as indented JSON; empty when there is none.
    pub(crate) result: String,
}

impl HistoryRow {
    pub(crate) fn new(entry: &HistoryEntry, previous: Option<DateTime<Utc>>) -> Self {
        let error = entry.error.as_ref();
        HistoryRow {
            seq: entry.seq,
            from: entry.from.map_or("", JobState::as_str),
            to: entry.to.as_str(),
            at: when(entry.at),
            after: previous.map_or_else(String::new, |p| span((entry.at - p).num_milliseconds())),
            actor: entry.actor.to_string(),
            attempt: entry.attempt,
            reason: entry.reason.to_string(),
            error: error.map(|e| e.to_string()).unwrap_or_default(),
            backtrace: error.and_then(|e| e.backtrace.clone()).unwrap_or_default(),
            result: entry.result.as_ref().map(pretty).unwrap_or_default(),
        }
    }
}

/// A job's attachment, as its page shows it.
pub(crate) struct AttachmentRow {
    pub(crate) name: String,
    pub(crate) content_type: String,
    pub(crate) size: u64,
    pub(crate) sha256: String,
}

#[derive(Template)]
#[template(path = "job.html")]
pub(crate) struct JobPage {
    pub(crate) chrome: Chrome,
    pub(crate) job: JobRow,
    /// Whether it may still change (the page then refreshes itself).
    pub(crate) live: bool,
    pub(crate) retryable: bool,
    pub(crate) cancellable: bool,
    pub(crate) priority: i32,
    pub(crate) enqueued_by: String,
    pub(crate) finished: String,
    pub(crate) leased_by: String,
    /// Set when it waits and no live worker runs its class from its queue.
    pub(crate) no_worker: bool,
    /// Why its queue's run limits may hold it back although it is due; empty when nothing does.
    pub(crate) held_back: String,
    /// When it last changed (epoch ms): what its page's refresh says it shows.
    pub(crate) version: i64,
    /// The history row of its last error (what its fold is keyed by), 0 when none.
    pub(crate) last_error_seq: u32,
    pub(crate) last_error: String,
    /// The decisive line of `last_error`, shown whole above it.
    pub(crate) last_error_line: String,
    pub(crate) args: String,
    /// Whether the arguments are long enough to be folded away at first.
    pub(crate) args_folded: bool,
    /// The latest success's result, as indented JSON; empty when there is none.
    pub(crate) result: String,
    /// The unique key it was stored with; empty when none.
    pub(crate) unique_key: String,
    pub(crate) concurrency_key: String,
    /// The job whose success enqueued it, when it is a follow-up.
    pub(crate) parent: Option<i64>,
    /// The first of its follow-ups, oldest first, and whether it has more.
    pub(crate) follow_ups: Vec<i64>,
    pub(crate) more_follow_ups: bool,
    /// The jobs it waits (or waited) for, and how many have not succeeded yet.
    pub(crate) dependencies: Vec<i64>,
    pub(crate) dependencies_left: u32,
    /// The first jobs that wait for it, and whether there are more.
    pub(crate) dependants: Vec<i64>,
    pub(crate) more_dependants: bool,
    /// The batch it belongs to, and the batch whose callback it is.
    pub(crate) batch: Option<i64>,
    pub(crate) callback_of: Option<i64>,
    pub(crate) attachment: Option<AttachmentRow>,
    pub(crate) history: Vec<HistoryRow>,
    /// The page of earlier steps (`?steps_before=`), when there are earlier steps.
    pub(crate) earlier: Option<u32>,
    /// The page of later steps, when this page is not the latest.
    pub(crate) later: Option<u32>,
    /// The page shown, when not the latest (the refresh keeps it).
    pub(crate) steps_before: Option<u32>,
}

/// A job in an instance's hands, on the workers page.
pub(crate) struct HeldRow {
    pub(crate) id: i64,
    pub(crate) class: String,
    pub(crate) queue: String,
    /// How long its attempt has run.
    pub(crate) ran: String,
}

/// One process of a worker, on the workers page.
pub(crate) struct InstanceRow {
    pub(crate) instance: String,
    /// Whether it was heard of within the last two minutes.
    pub(crate) online: bool,
    /// Its last contact, how long ago; empty when it holds jobs but is not live.
    pub(crate) last_contact: String,
    pub(crate) held: Vec<HeldRow>,
}

/// One worker on the workers page.
pub(crate) struct WorkerRow {
    pub(crate) name: String,
    pub(crate) instances: Vec<InstanceRow>,
    pub(crate) queues: Vec<String>,
    /// Queues it could still be hired for.
    pub(crate) hireable: Vec<String>,
    pub(crate) last_contact: String,
    pub(crate) in_hand: u64,
    pub(crate) locked: bool,
}

#[derive(Template)]
#[template(path = "workers.html")]
pub(crate) struct WorkersPage {
    pub(crate) chrome: Chrome,
    pub(crate) workers: Vec<WorkerRow>,
}

/// A question before an action that cannot be taken back by a click.
#[derive(Template)]
#[template(path = "confirm.html")]
pub(crate) struct ConfirmPage {
    pub(crate) chrome: Chrome,
    pub(crate) title: String,
    /// What the action does, in a sentence.
    pub(crate) detail: String,
    /// Where the form posts, below the dashboard's base.
    pub(crate) action: String,
    /// The form's fields besides the CSRF token.
    pub(crate) fields: Vec<(String, String)>,
    pub(crate) button: String,
    /// Where "keep" goes back to, below the dashboard's base.
    pub(crate) back: String,
}

/// A worker's new secret, shown once after a rotation.
#[derive(Template)]
#[template(path = "secret.html")]
pub(crate) struct SecretPage {
    pub(crate) chrome: Chrome,
    pub(crate) worker: String,
    pub(crate) consumer_key: String,
    pub(crate) consumer_secret: String,
}
