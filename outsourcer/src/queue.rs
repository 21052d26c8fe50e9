//! `outsourcer queue ...`

use outsourced_backend_sql::Role;
use outsourced_core::{
    Backend, BackendExt, Error, JobState, PruneOptions, QueueInfo, QueueLimit, QueueUpdate, Rate,
    Result, Retention,
};

use crate::args::{LimitArgs, QueueCommand, RunLimitArgs};
use crate::context::Ctx;
use crate::output::{principal_json, print_json, queue_json, queues_table};

/// The run limits given, as a change: `none` removes one.
fn run_limits(args: &RunLimitArgs, mut update: QueueUpdate) -> Result<QueueUpdate> {
    fn count(flag: &str, text: &str) -> Result<Option<u32>> {
        match text.trim() {
            none if none.eq_ignore_ascii_case("none") => Ok(None),
            n => match n.parse::<u32>() {
                Ok(0) => Err(Error::invalid(format!(
                    "{flag} 0: give 1 or more, or none to remove the limit{}",
                    if flag == "--max-running" {
                        " (pause the queue to run nothing)"
                    } else {
                        ""
                    }
                ))),
                Ok(n) => Ok(Some(n)),
                Err(_) => Err(Error::invalid(format!(
                    "{flag} {text:?} is not a count: give a whole number from 1 to {}, or none to remove the limit",
                    u32::MAX
                ))),
            },
        }
    }
    if let Some(text) = &args.max_running {
        update.max_running = Some(count("--max-running", text)?);
    }
    if let Some(text) = &args.max_running_per_key {
        update.max_running_per_key = Some(count("--max-running-per-key", text)?);
    }
    fn rate(flag: &str, text: &str) -> Result<Option<Rate>> {
        match text.trim() {
            none if none.eq_ignore_ascii_case("none") => Ok(None),
            rate => rate.parse::<Rate>().map(Some).map_err(|error| match error {
                Error::InvalidInput { message } => Error::invalid(format!("{flag}: {message}")),
                other => other,
            }),
        }
    }
    if let Some(text) = &args.rate {
        update.rate = Some(rate("--rate", text)?);
    }
    if let Some(text) = &args.rate_per_key {
        update.rate_per_key = Some(rate("--rate-per-key", text)?);
    }
    Ok(update)
}

fn limit(args: &LimitArgs) -> Result<Option<QueueLimit>> {
    match (args.unlimited, args.limit) {
        (true, _) => Ok(Some(QueueLimit::Unlimited)),
        // Like --max-running 0: a queue that refuses every enqueue is a mistake more often
        // than a wish, and pausing is the way to stop handing jobs out.
        (false, Some(0)) => Err(Error::invalid(
            "--limit 0 would refuse every enqueue: give 1 or more, --unlimited, or pause the \
             queue (queue pause NAME) to hand out nothing",
        )),
        (false, max) => Ok(max.map(QueueLimit::Max)),
    }
}

/// A note when a queue now holds more live jobs than its new limit lets in.
fn over_limit_note(info: &QueueInfo) -> Option<String> {
    let max = info.limit.max()?;
    let live = info.counts.live();
    (live > max).then(|| {
        format!(
            "note: queue {} holds {live} live jobs, more than its new limit of {max}: they \
             stay and run, and enqueues are refused until it holds fewer than {max}",
            info.name
        )
    })
}

/// A note when more of a queue's jobs run than its new `max_running`.
fn over_running_note(info: &QueueInfo) -> Option<String> {
    let max = info.limits.max_running?;
    let running = info.counts.get(JobState::Running);
    (running > u64::from(max)).then(|| {
        format!(
            "note: {running} of queue {}'s jobs run now, more than its new max_running of {max}: \
             they run to their end, and no job starts until fewer than {max} run",
            info.name
        )
    })
}

/// A note when a limit per key can never hold a job back, the queue's own being as strict: at
/// most as many run per key as in all, no key starts sooner than the queue's rate allows.
fn idle_limits_note(info: &QueueInfo) -> Option<String> {
    let (limits, name) = (&info.limits, &info.name);
    let mut notes = Vec::new();
    if let (Some(all), Some(per_key)) = (limits.max_running, limits.max_running_per_key)
        && per_key >= all
    {
        notes.push(format!(
            "note: queue {name}'s max_running_per_key {per_key} never holds a job back: no more \
             than {all} run at once in all"
        ));
    }
    if let (Some(all), Some(per_key)) = (limits.rate, limits.rate_per_key)
        && per_key.interval() <= all.interval()
    {
        notes.push(format!(
            "note: queue {name}'s rate_per_key {per_key} never holds a job back: its rate {all} \
             spaces every start at least as far"
        ));
    }
    (!notes.is_empty()).then(|| notes.join("\n"))
}

/// `forever`, or an age such as `30days`.
fn retention(text: &str) -> Result<Retention> {
    if text == "forever" {
        return Ok(Retention::Forever);
    }
    let age = outsourced_core::parse_period(text).map_err(|why| {
        let why = match why.strip_suffix(" is not a duration") {
            Some(what) => format!("{what} is not an age: give one such as 30d, 12h or 90m"),
            None => why,
        };
        Error::invalid(format!("--retention: {why}; or forever"))
    })?;
    // A slip more often than a wish: every finished job gone, history and all, at the next
    // prune. One who wants that writes 1s.
    if age.is_zero() {
        return Err(Error::invalid(format!(
            "--retention {text:?} would remove every finished job, history and all, at the next prune: give an age such as 7d (1s keeps next to nothing), or forever"
        )));
    }
    Ok(Retention::For(age))
}

/// `outsourcer prune`: passes of `batch` until nothing is left.
pub(crate) async fn prune(ctx: &Ctx, batch: u32) -> Result<()> {
    let opts = PruneOptions {
        limit: batch.max(1),
    };
    let mut pruned = 0;
    loop {
        match ctx.backend.prune(&ctx.actor(), opts).await? {
            0 => break,
            n => pruned += n,
        }
    }
    if ctx.json {
        print_json(&serde_json::json!({ "pruned": pruned }));
    } else {
        out!("pruned {pruned} finished jobs past their queue's retention");
    }
    Ok(())
}

pub(crate) async fn run(ctx: &Ctx, command: QueueCommand) -> Result<()> {
    let (backend, by) = (&ctx.backend, ctx.actor());
    let info = match command {
        QueueCommand::Create {
            name,
            limit: l,
            run,
            retention: r,
        } => {
            // Checked before the queue exists: a typo creates nothing.
            let update = QueueUpdate {
                retention: r.as_deref().map(retention).transpose()?,
                ..run_limits(&run, QueueUpdate::default())?
            };
            update.limits(Default::default()).check()?;
            let mut created = backend
                .create_queue(&by, &name, limit(&l)?.unwrap_or_default())
                .await
                .map_err(|error| match error {
                    Error::Conflict { message } => Error::Conflict {
                        message: format!("{message} (queue update {name} changes it)"),
                    },
                    other => other,
                })?;
            if update != QueueUpdate::default() {
                created = backend.update_queue(&by, &name, update).await?;
            }
            let limits = created
                .run_limits_text()
                .map(|text| format!("; run limits: {text}"))
                .unwrap_or_default();
            println_unless_json(
                ctx,
                format!("created queue {name} (limit {}{limits})", created.limit),
            );
            if let Some(note) = idle_limits_note(&created) {
                eprintln!("{note}");
            }
            created
        }
        QueueCommand::List => {
            let queues = backend.queues(&by).await?;
            return show_queues(ctx, &queues, false).await;
        }
        QueueCommand::Show { name } => {
            let queue = backend.queue(&by, &name).await?;
            return show_queues(ctx, std::slice::from_ref(&queue), true).await;
        }
        QueueCommand::Update {
            name,
            limit: l,
            run,
            retention: r,
            pause,
            resume,
        } => {
            let paused = if pause {
                Some(true)
            } else if resume {
                Some(false)
            } else {
                None
            };
            let update = QueueUpdate {
                limit: limit(&l)?,
                paused,
                retention: r.as_deref().map(retention).transpose()?,
                ..QueueUpdate::default()
            };
            let update = run_limits(&run, update)?;
            if update == QueueUpdate::default() {
                return Err(Error::invalid(
                    "nothing to change: give --limit or --unlimited, --pause or --resume, --retention, --max-running, --rate, --max-running-per-key or --rate-per-key",
                ));
            }
            updated(ctx, &name, update).await?
        }
        QueueCommand::Pause { name } => paused(ctx, &name, true).await?,
        QueueCommand::Resume { name } => paused(ctx, &name, false).await?,
        QueueCommand::Delete { name } => {
            backend.delete_queue(&by, &name).await?;
            println_unless_json(ctx, format!("deleted queue {name}"));
            if ctx.json {
                print_json(&serde_json::json!({ "deleted": name }));
            }
            return Ok(());
        }
        QueueCommand::Hire { queue, worker } => {
            let hired = ctx.directory().grant(Role::Worker, &worker, &queue).await?;
            return report_access(
                ctx,
                &hired,
                format!("hired worker {worker} for queue {queue}"),
            );
        }
        QueueCommand::Fire { queue, worker } => {
            let fired = ctx
                .directory()
                .revoke(Role::Worker, &worker, &queue)
                .await?;
            return report_access(
                ctx,
                &fired,
                format!("fired worker {worker} from queue {queue}"),
            );
        }
    };
    show_queues(ctx, std::slice::from_ref(&info), true).await
}

/// Pauses or resumes queue `name`, saying so (or that it was already).
async fn paused(ctx: &Ctx, name: &str, paused: bool) -> Result<QueueInfo> {
    let update = QueueUpdate {
        paused: Some(paused),
        ..QueueUpdate::default()
    };
    updated(ctx, name, update).await
}

/// Applies `update` to queue `name`: says what changed, and notes what the new settings mean
/// for the jobs there now.
async fn updated(ctx: &Ctx, name: &str, update: QueueUpdate) -> Result<QueueInfo> {
    let (backend, by) = (&ctx.backend, ctx.actor());
    let before = backend.queue(&by, name).await?;
    let after = backend.update_queue(&by, name, update).await?;
    println_unless_json(ctx, changes_text(&before, &after));
    let notes = [
        over_limit_note(&after),
        over_running_note(&after),
        idle_limits_note(&after),
    ];
    for note in notes.into_iter().flatten() {
        eprintln!("{note}");
    }
    Ok(after)
}

/// What an update changed, in one line: `updated queue mail: max_running 2 -> none, rate
/// 600/1m -> none`, or that it changed nothing.
fn changes_text(before: &QueueInfo, after: &QueueInfo) -> String {
    fn or_none<T: ToString>(value: Option<T>) -> String {
        value.map_or_else(|| "none".to_owned(), |v| v.to_string())
    }
    let (was, now) = (before.limits, after.limits);
    let settings = [
        ("limit", before.limit.to_string(), after.limit.to_string()),
        (
            "retention",
            crate::output::retention_text(before.retention),
            crate::output::retention_text(after.retention),
        ),
        (
            "max_running",
            or_none(was.max_running),
            or_none(now.max_running),
        ),
        ("rate", or_none(was.rate), or_none(now.rate)),
        (
            "max_running_per_key",
            or_none(was.max_running_per_key),
            or_none(now.max_running_per_key),
        ),
        (
            "rate_per_key",
            or_none(was.rate_per_key),
            or_none(now.rate_per_key),
        ),
    ];
    let mut changed: Vec<String> = settings
        .into_iter()
        .filter(|(_, was, now)| was != now)
        .map(|(name, was, now)| format!("{name} {was} -> {now}"))
        .collect();
    match (before.paused, after.paused) {
        (false, true) => changed.insert(0, "paused".to_owned()),
        (true, false) => changed.insert(0, "resumed".to_owned()),
        _ => {}
    }
    match changed.is_empty() {
        true => format!(
            "queue {} unchanged: it had these settings already",
            after.name
        ),
        false => format!("updated queue {}: {}", after.name, changed.join(", ")),
    }
}

/// How many of the busiest keys `queue show` lists.
const KEYS_SHOWN: u64 = 10;

/// Queues as a table (or JSON: an object for `one`, else a list), each with the classes of
/// its waiting jobs that no live worker runs.
async fn show_queues(ctx: &Ctx, queues: &[QueueInfo], one: bool) -> Result<()> {
    let mut unserved = Vec::with_capacity(queues.len());
    for queue in queues {
        unserved.push(ctx.backend.unserved(&queue.name).await?);
    }
    // One queue with a limit per key: which keys run how many jobs now.
    let per_key = match (one, queues.first()) {
        (true, Some(queue)) => match queue.limits.max_running_per_key {
            Some(limit) => {
                let directory = ctx.directory();
                let keys = directory.running_per_key(&queue.name, KEYS_SHOWN).await?;
                Some((limit, keys))
            }
            None => None,
        },
        _ => None,
    };
    if ctx.json {
        let mut all: Vec<serde_json::Value> = queues
            .iter()
            .zip(&unserved)
            .map(|(queue, classes)| {
                let mut json = queue_json(queue);
                json["unserved"] = serde_json::json!(classes);
                json
            })
            .collect();
        match (one, all.pop()) {
            (true, Some(mut only)) => {
                if let Some((_, keys)) = &per_key {
                    let keys: Vec<_> = keys
                        .iter()
                        .map(|(key, running)| serde_json::json!({"key": key, "running": running}))
                        .collect();
                    only["running_per_key"] = serde_json::json!(keys);
                }
                print_json(&only)
            }
            (_, last) => {
                all.extend(last);
                print_json(&serde_json::Value::Array(all));
            }
        }
    } else {
        out!("{}", queues_table(queues, &unserved));
        if let Some(next) = queues.first().filter(|_| one).and_then(next_start_text) {
            out!("{next}");
        }
        if let Some((limit, keys)) = per_key {
            out!("{}", per_key_text(limit, &keys));
        }
    }
    Ok(())
}

/// When a queue's rate lets its next job start, if that is still to come.
fn next_start_text(queue: &QueueInfo) -> Option<String> {
    let (rate, now) = (queue.limits.rate?, chrono::Utc::now());
    let next = queue.next_start.filter(|next| *next > now)?;
    let wait = (next - now).num_milliseconds() as f64 / 1000.0;
    Some(format!(
        "rate ({}): the next start at {} (in {wait:.1} s)",
        rate.in_words(),
        next.format("%H:%M:%S%.3f UTC")
    ))
}

/// The busiest keys of a queue with a limit per key, in words.
fn per_key_text(limit: u32, keys: &[(String, u64)]) -> String {
    if keys.is_empty() {
        return format!("running per key (at most {limit} each): no key runs a job now");
    }
    let limit_n = u64::from(limit);
    let at_limit = keys.iter().filter(|(_, n)| *n >= limit_n).count();
    let over = keys.iter().filter(|(_, n)| *n > limit_n).count();
    let listed: Vec<String> = keys
        .iter()
        .map(|(key, n)| format!("{} {n}", crate::output::clean(key)))
        .collect();
    let shown = match keys.len() as u64 {
        KEYS_SHOWN => format!("the busiest {KEYS_SHOWN} keys shown"),
        1 => "1 key runs jobs".to_owned(),
        n => format!("{n} keys run jobs"),
    };
    // Over the limit only when it was lowered while they ran: they finish, none start.
    let full = match (at_limit, over) {
        (0, _) => "none at the limit".to_owned(),
        (n, 0) => format!("{n} at the limit"),
        (n, over) => format!("{n} at or over it, {over} over since it was lowered"),
    };
    format!(
        "running per key (at most {limit} each): {} ({shown}; {full})",
        listed.join(", ")
    )
}

fn report_access(
    ctx: &Ctx,
    principal: &outsourced_backend_sql::Principal,
    text: String,
) -> Result<()> {
    if ctx.json {
        print_json(&principal_json(principal));
    } else {
        out!("{text}; it works: {}", principal.queues.join(", "));
    }
    Ok(())
}

pub(crate) fn println_unless_json(ctx: &Ctx, text: String) {
    if !ctx.json {
        out!("{text}");
    }
}
