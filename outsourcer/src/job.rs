//! `outsourcer job ...`

use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};
use outsourced_core::{
    Backend, BackendExt, BatchId, CountFilter, CronSchedule, Error, JobFilter, JobId, JobRecord,
    JobState, NewJob, Owner, Repeat, Result, Unique, by_state,
};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::acts;
use crate::args::{EnqueueArgs, JobCommand, ListArgs};
use crate::attachment;
use crate::context::Ctx;
use crate::jsonl;
use crate::output::{
    clean, counts_json, history_json, history_text, job_json, job_text, jobs_table, print_json,
    repeat_text, result_text, table,
};

pub(crate) async fn run(ctx: &Ctx, command: JobCommand) -> Result<()> {
    let (backend, by) = (&ctx.backend, ctx.actor());
    match command {
        JobCommand::Enqueue(args) => match &args.from {
            Some(file) => jsonl::enqueue_file(ctx, file).await,
            None => enqueue_one(ctx, &args).await,
        },
        JobCommand::List(args) => {
            let jobs = backend.jobs(&by, filter(&args)?).await?;
            // A typo in `--queue` is the usual reason for an empty list.
            if let Some(queue) = &args.queue
                && jobs.is_empty()
                && let Err(Error::UnknownQueue { .. }) = backend.queue(&by, queue).await
            {
                return Err(Error::UnknownQueue {
                    queue: queue.clone(),
                });
            }
            if ctx.json {
                print_json(&jobs.iter().map(job_json).collect());
            } else if jobs.is_empty() {
                out!("no jobs match");
            } else {
                out!("{}", jobs_table(&jobs));
            }
            Ok(())
        }
        JobCommand::Show { id } => {
            let job = backend.job(&by, JobId(id)).await?;
            let unserved = job.state.is_waiting()
                && ctx.backend.unserved(&job.queue).await?.contains(&job.class);
            let result = backend.result(&by, job.id).await?;
            let held = held_by(ctx, &job).await;
            let of_parent = JobFilter {
                parent: Some(job.id),
                ..JobFilter::default()
            };
            let follow_ups = first_related(ctx, job.id, of_parent).await?;
            let of_dependency = JobFilter {
                dependants_of: Some(job.id),
                ..JobFilter::default()
            };
            let dependants = first_related(ctx, job.id, of_dependency).await?;
            if ctx.json {
                let mut json = job_json(&job);
                json["no_worker"] = json!(unserved);
                json["held_by_limit"] = json!(held);
                json["result"] = result.unwrap_or_default();
                json["follow_ups"] = shown_json(&follow_ups);
                json["more_follow_ups"] = json!(follow_ups.len() > FOLLOW_UPS_SHOWN);
                json["dependants"] = shown_json(&dependants);
                json["more_dependants"] = json!(dependants.len() > FOLLOW_UPS_SHOWN);
                print_json(&json);
            } else {
                out!("{}", job_text(&job));
                if let Some(result) = &result {
                    out!("{:>16}: {}", "result", result_text(result));
                }
                if !follow_ups.is_empty() {
                    let text = related_text(job.id, &follow_ups, "--parent");
                    out!("{:>16}: {text}", "follow_ups");
                }
                if !dependants.is_empty() {
                    let text = related_text(job.id, &dependants, "--dependants-of");
                    out!("{:>16}: {text}", "dependants");
                }
                if let Some(held) = &held {
                    out!("{:>16}: {held}", "waiting");
                }
                if unserved {
                    out!(
                        "{:>16}: no live worker runs class {} from queue {} (start a worker that runs it, or give a worker's config a command for it and hire that worker for the queue)",
                        "waiting",
                        clean(&job.class),
                        job.queue
                    );
                }
            }
            Ok(())
        }
        JobCommand::Attach {
            id,
            file,
            content_type,
        } => attachment::attach(ctx, JobId(id), &file, content_type).await,
        JobCommand::Attachment { id, file, output } => {
            let output = file.or(output).unwrap_or_else(|| "-".into());
            attachment::save(ctx, JobId(id), &output).await
        }
        JobCommand::History { id } => {
            let rows = backend.history(&by, JobId(id)).await?;
            if ctx.json {
                print_json(&history_json(&rows));
            } else {
                out!("{}", history_text(&rows));
            }
            Ok(())
        }
        JobCommand::Retry { ids } => {
            acts::each(ctx, &ids, "retried", async |id| {
                let job = backend.retry(&by, id).await?;
                let text = format!("job {id} is {} again", job.state);
                Ok((text, job_json(&job)))
            })
            .await
        }
        JobCommand::Cancel { ids } => {
            acts::each(ctx, &ids, "cancelled", async |id| {
                let state = backend.cancel(&by, id).await?;
                let text = match state {
                    JobState::Running => format!(
                        "job {id} is running: asked its worker to stop it (heard at the worker's next heartbeat, every third of its lease: 10 s by default; a job that ends first keeps its end)"
                    ),
                    _ => format!("job {id} is cancelled"),
                };
                Ok((text, json!({ "id": id.0, "state": state.as_str() })))
            })
            .await
        }
        JobCommand::Delete { ids } => {
            acts::each(ctx, &ids, "deleted", async |id| acts::delete(ctx, id).await).await
        }
        JobCommand::Count { owner, queue } => {
            let owner = owner.as_deref().map(str::parse::<Owner>).transpose()?;
            let groups = backend
                .counts(
                    &by,
                    CountFilter {
                        queue,
                        owner,
                        ..CountFilter::default()
                    },
                )
                .await?;
            let counts = by_state(&groups);
            if ctx.json {
                print_json(&counts_json(&counts));
            } else {
                let mut t = table(&["state", "jobs"]);
                for state in JobState::ALL {
                    t.add_row(vec![state.to_string(), counts.get(state).to_string()]);
                }
                t.add_row(vec!["total".to_owned(), counts.total().to_string()]);
                out!("{t}");
            }
            Ok(())
        }
    }
}

/// Why a job that is due may not start yet: its queue's pause or run limits, as they stand now.
async fn held_by(ctx: &Ctx, job: &JobRecord) -> Option<String> {
    let actor = ctx.actor();
    let why = ctx.backend.why_held_back(&actor, job, Utc::now()).await;
    why.ok().flatten().map(|why| clean(&why))
}

/// The most follow-ups (or dependants) `job show` names; `job list --parent` (or
/// `--dependants-of`) lists them all.
const FOLLOW_UPS_SHOWN: usize = 20;

/// The first jobs of `filter` (the follow-ups or the dependants of job `id`), oldest first,
/// and one more if there are more.
async fn first_related(ctx: &Ctx, id: JobId, filter: JobFilter) -> Result<Vec<JobId>> {
    // Stored after job `id` (its success stores follow-ups; a dependant's enqueue needs it
    // stored), so their ids are above its: the page just after it is the oldest of them.
    let filter = JobFilter {
        after: Some(id),
        limit: FOLLOW_UPS_SHOWN as u32 + 1,
        ..filter
    };
    let mut jobs = ctx.backend.jobs(&ctx.actor(), filter).await?;
    jobs.reverse();
    Ok(jobs.into_iter().map(|job| job.id).collect())
}

/// `12, 13, 14`, or the first of them and where to see the rest (`job list FLAG ID`).
fn related_text(id: JobId, related: &[JobId], flag: &str) -> String {
    let shown: Vec<String> = related
        .iter()
        .take(FOLLOW_UPS_SHOWN)
        .map(|id| id.0.to_string())
        .collect();
    let mut text = shown.join(", ");
    if related.len() > FOLLOW_UPS_SHOWN {
        text.push_str(&format!(", ... (all of them: job list {flag} {id})"));
    }
    text
}

/// The ids as JSON, the first [`FOLLOW_UPS_SHOWN`] of them.
fn shown_json(related: &[JobId]) -> Value {
    json!(
        related
            .iter()
            .take(FOLLOW_UPS_SHOWN)
            .map(|id| id.0)
            .collect::<Vec<_>>()
    )
}

fn filter(args: &ListArgs) -> Result<JobFilter> {
    Ok(JobFilter {
        queue: args.queue.clone(),
        state: args
            .state
            .as_deref()
            .map(|s| {
                s.parse::<JobState>()
                    .map_err(|e| Error::invalid(e.to_string()))
            })
            .transpose()?,
        class: args.class.clone(),
        class_prefix: args.class_prefix.clone(),
        owner: args.owner.as_deref().map(str::parse).transpose()?,
        enqueued_by: None,
        unique_key: args.unique_key.clone(),
        concurrency_key: args.concurrency_key.clone(),
        parent: args.parent.map(JobId),
        dependants_of: args.dependants_of.map(JobId),
        batch: args.batch.map(BatchId),
        created_since: args
            .since
            .as_deref()
            .map(|t| time("--since", t))
            .transpose()?,
        created_until: args
            .until
            .as_deref()
            .map(|t| time("--until", t))
            .transpose()?,
        before: args.before.map(JobId),
        after: args.after.map(JobId),
        limit: args.limit,
    })
}

/// `+5m` from now, `-1h` before now, or an RFC 3339 time; `flag` names it in errors.
fn time(flag: &str, text: &str) -> Result<DateTime<Utc>> {
    let relative = |sign: i32, duration: &str| {
        let duration = humantime::parse_duration(duration)
            .map_err(|e| Error::invalid(format!("{flag} {text:?}: {e}")))?;
        let duration = chrono::Duration::from_std(duration).unwrap_or_default();
        Ok(Utc::now() + duration * sign)
    };
    if let Some(after) = text.strip_prefix('+') {
        return relative(1, after);
    }
    if let Some(ago) = text.strip_prefix('-') {
        return relative(-1, ago);
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            // A duration without its sign: say the one meant.
            let hint = match humantime::parse_duration(text) {
                Ok(_) => format!(" (+{text} from now, or -{text} ago?)"),
                Err(_) => String::new(),
            };
            Error::invalid(format!(
                "{flag} {text:?} is neither +DURATION (+5m), -DURATION nor an RFC 3339 time (2026-12-08T09:00:00Z){hint}"
            ))
        })
}

async fn enqueue_one(ctx: &Ctx, args: &EnqueueArgs) -> Result<()> {
    // `job enqueue '{"to": "ann"}'`: the class forgotten, the arguments taken for it.
    if let Some(class) = &args.class
        && (class.trim_start().starts_with('{') || class.trim_start().starts_with('['))
    {
        return Err(Error::invalid(format!(
            "'{}' looks like the job's arguments, not its class: give the class first \
             (outsourcer job enqueue Mail::Send '{{\"to\": \"ann\"}}')",
            clean(class.trim())
        )));
    }
    let (text, named) = match &args.arguments {
        Some(json) => (json, "the arguments after the class are"),
        None => (&args.args, "--args is"),
    };
    let job_args: Value = serde_json::from_str(text)
        .map_err(|e| Error::invalid(format!("{named} not valid JSON: {e}")))?;
    let line = Line {
        class: args.class.clone().unwrap_or_default(),
        args: job_args,
        queue: Some(args.queue.clone()),
        priority: args.priority,
        run_at: args.run_at.clone(),
        owner: args.owner.clone(),
        max_attempts: args.max_attempts,
        every: args.every.clone(),
        cron: args.cron.clone(),
        unique_key: args.unique_key.clone(),
        unique_across: args.unique_across.clone(),
        unique_for: args.unique_for.clone(),
        on_duplicate: args.on_duplicate.clone(),
        concurrency_key: args.concurrency_key.clone(),
        depends_on: args.depends_on.clone(),
        batch: args.batch,
    };
    let job = line.into_job(Names::Flags)?;
    let sent = job.args.clone();
    let by = ctx.actor();
    let (job, duplicate) = match &args.attach {
        Some(path) => {
            let file = attachment::upload(path, args.attach_type.clone()).await?;
            ctx.backend.enqueue_attached(&by, job, file).await?
        }
        None if job.unique.is_some() => {
            let each = ctx.backend.enqueue_each(&by, vec![job]).await?;
            let enqueued = each
                .first()
                .copied()
                .ok_or_else(|| Error::conflict("the backend answered an enqueue with no job"))?;
            (ctx.backend.job(&by, enqueued.id).await?, enqueued.duplicate)
        }
        None => (ctx.backend.enqueue(&by, job).await?, false),
    };
    if ctx.json {
        let mut json = job_json(&job);
        json["duplicate"] = json!(duplicate);
        print_json(&json);
    } else if duplicate {
        let replace = args.on_duplicate.as_deref() == Some("replace");
        let file = if args.attach.is_some() {
            "; the file was not kept"
        } else {
            ""
        };
        out!(
            "job {} holds unique key {}: {}{file} ({} in queue {}, {})",
            job.id,
            clean(job.unique_key.as_deref().unwrap_or_default()),
            duplicate_outcome(ctx, &job, replace, &sent, args.class.as_deref()),
            clean(&job.class),
            job.queue,
            job.state
        );
    } else {
        let repeats = job.repeat.as_ref().map(repeat_text);
        let repeats = repeats.map_or_else(String::new, |r| format!(", repeats {r}"));
        out!(
            "enqueued job {} ({} in queue {}, {}{repeats})",
            job.id,
            clean(&job.class),
            job.queue,
            job.state
        );
    }
    key_note(ctx, &job).await
}

/// A note when a job's concurrency key counts for nothing (its queue limits no key), or when
/// a job of a queue that limits keys has none (only the queue's own limits hold it).
async fn key_note(ctx: &Ctx, job: &JobRecord) -> Result<()> {
    let limits = ctx.backend.queue(&ctx.actor(), &job.queue).await?.limits;
    let limits_keys = limits.max_running_per_key.is_some() || limits.rate_per_key.is_some();
    match (&job.concurrency_key, limits_keys) {
        (Some(key), false) => eprintln!(
            "note: queue {} limits no concurrency key, so key {} holds nothing back (queue update {} --max-running-per-key N)",
            job.queue,
            clean(key),
            job.queue
        ),
        (None, true) => eprintln!(
            "note: queue {} limits each concurrency key, and this job has none: no key's limit holds it (job enqueue --concurrency-key KEY)",
            job.queue
        ),
        _ => {}
    }
    Ok(())
}

/// What a duplicate did, and with `--on-duplicate replace` why the holder kept its arguments
/// when it did (the rules of `OnDuplicate::Replace`).
fn duplicate_outcome(
    ctx: &Ctx,
    holder: &JobRecord,
    replace: bool,
    sent: &Value,
    class: Option<&str>,
) -> String {
    if !replace {
        return "nothing enqueued".to_owned();
    }
    if holder.args == *sent {
        return "nothing enqueued; it has these arguments and this run time now".to_owned();
    }
    let why = if !matches!(holder.state, JobState::Scheduled | JobState::Available) {
        format!("it is {}", holder.state)
    } else if class.is_some_and(|c| c != holder.class) {
        "it is of another class".to_owned()
    } else if holder.enqueued_by != ctx.actor() {
        format!(
            "it was enqueued by {}",
            clean(&holder.enqueued_by.to_string())
        )
    } else {
        "it changed meanwhile".to_owned()
    };
    format!("nothing enqueued; {why}, so it keeps its arguments")
}

/// One line of a `--from` file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Line {
    class: String,
    #[serde(default = "empty_args")]
    args: Value,
    queue: Option<String>,
    priority: Option<i32>,
    run_at: Option<String>,
    owner: Option<String>,
    max_attempts: Option<u32>,
    /// Run again this long after each run (`5m`).
    every: Option<String>,
    /// Run again at the next point of this cron schedule after each run.
    cron: Option<String>,
    /// A key that makes the job unique, and its rules.
    #[serde(default)]
    unique_key: Option<String>,
    #[serde(default)]
    unique_across: Option<String>,
    #[serde(default)]
    unique_for: Option<String>,
    #[serde(default)]
    on_duplicate: Option<String>,
    /// The key the queue's per-key limit counts it under.
    #[serde(default)]
    concurrency_key: Option<String>,
    /// Jobs that must succeed first.
    #[serde(default)]
    depends_on: Vec<i64>,
    /// The batch it joins.
    #[serde(default)]
    batch: Option<i64>,
}

fn empty_args() -> Value {
    json!([])
}

/// How a refusal names a job's field: as the flag that gave it, or as a `--from` line's key.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Names {
    /// `--run-at`.
    Flags,
    /// `run_at`.
    Keys,
}

impl Names {
    fn of(self, field: &str) -> String {
        match self {
            Names::Flags => format!("--{}", field.replace('_', "-")),
            Names::Keys => format!("`{field}`"),
        }
    }
}

impl Line {
    /// The job this line asks for, or why it is not one (naming its fields as `names` does).
    pub(crate) fn into_job(self, names: Names) -> Result<NewJob> {
        let mut job = NewJob::new(self.class, self.args);
        if let Some(queue) = self.queue {
            job = job.queue(queue);
        }
        if let Some(priority) = self.priority {
            job = job.priority(priority);
        }
        if let Some(at) = self.run_at {
            job = job.run_at(time(&names.of("run_at"), &at)?);
        }
        if let Some(owner) = self.owner {
            job = job.owner(owner.parse()?);
        }
        if let Some(max) = self.max_attempts {
            job = job.max_attempts(max);
        }
        if let Some(key) = self.concurrency_key {
            job = job.concurrency_key(key);
        }
        job = job.depends_on(self.depends_on.into_iter().map(JobId));
        job.batch = self.batch.map(BatchId);
        let repeat = match (self.every, self.cron) {
            (Some(_), Some(_)) => {
                let (every, cron) = (names.of("every"), names.of("cron"));
                return Err(Error::invalid(format!("give {every} or {cron}, not both")));
            }
            (Some(every), None) => Some(Repeat::Every(every_period(&every, names)?)),
            (None, Some(cron)) => Some(Repeat::Cron(CronSchedule::new(&cron)?)),
            (None, None) => None,
        };
        if let Some(repeat) = repeat {
            job = job.repeat(repeat);
        }
        if let Some(key) = self.unique_key {
            let mut unique = Unique::key(key);
            if let Some(across) = self.unique_across {
                unique.across = across.parse()?;
            }
            if let Some(period) = self.unique_for {
                unique.period = Some(
                    outsourced_core::parse_period(&period).map_err(|why| {
                        let flag = names.of("unique_for");
                        Error::invalid(format!(
                            "{flag}: {why}; give a duration such as 30m, 1h or 7days (without {flag} the key is held while the job is live)"
                        ))
                    })?,
                );
            }
            if let Some(on_duplicate) = self.on_duplicate {
                unique.on_duplicate = on_duplicate.parse()?;
            }
            job = job.unique(unique);
        } else if self.unique_across.is_some()
            || self.unique_for.is_some()
            || self.on_duplicate.is_some()
        {
            let [across, period, duplicate, key] =
                ["unique_across", "unique_for", "on_duplicate", "unique_key"].map(|f| names.of(f));
            return Err(Error::invalid(format!(
                "{across}, {period} and {duplicate} need {key}"
            )));
        }
        Ok(job)
    }
}

/// `--every`'s period, at least a millisecond (what a repeat stores); a cron schedule given
/// there is pointed to `--cron`.
fn every_period(every: &str, names: Names) -> Result<std::time::Duration> {
    let flag = names.of("every");
    let period = outsourced_core::parse_period(every).map_err(|why| {
        let cron = every.contains('*') || every.split_whitespace().count() >= 5;
        let hint = match cron {
            true => format!(" (a cron schedule goes in {})", names.of("cron")),
            false => String::new(),
        };
        Error::invalid(format!("{flag}: {why}{hint}"))
    })?;
    if period.as_millis() == 0 {
        return Err(Error::invalid(format!(
            "{flag}: {every:?} repeats at once; give at least 1ms, such as 30s"
        )));
    }
    Ok(period)
}

/// A progress bar on standard error, hidden with `--json` or when it is not a terminal.
pub(crate) fn progress(json: bool, len: u64, what: &str) -> ProgressBar {
    let bar = if json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(len)
    };
    let style = ProgressStyle::with_template("{msg:>12} [{bar:40}] {pos}/{len} ({per_sec}, {eta})")
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(what.to_owned());
    bar
}
