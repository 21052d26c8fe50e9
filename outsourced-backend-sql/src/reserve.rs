//! Reserve: claim a batch of ready jobs atomically, or long-poll until one is enqueued.
//!
//! One write transaction selects the batch in hand-out order (`FOR UPDATE SKIP LOCKED` where
//! the database has it; on SQLite the transaction holds the write lock from `BEGIN IMMEDIATE`),
//! marks it running with a fresh token per job in one `UPDATE`, and writes one history row per
//! job. Reading the batch first keeps each job's previous state for its history row, and is
//! the same code on every database.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{
    Alias, Asterisk, CaseStatement, Expr, ExprTrait, LockBehavior, LockType, Order, Query,
    SelectStatement, UnionType,
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait,
};

use crate::backend::SqlBackend;
use crate::convert::{self, duration_ms, ms};
use crate::dialect::Flavor;
use crate::entity::{job, queue};
use crate::error::{backend_error, db_error};
use crate::lease::{new_token, reserved};
use crate::limits::InClaim;
use crate::observe::Events;
use crate::pg_batch::{self, Leased};
use crate::transition::{Step, history_row, insert_history};
use crate::{instances, key_claim, key_rates, limits, reclaim, release};
use outsourced_core::{
    Actor, Clock, Error, Event, JobState, LeaseRef, Reason, ReserveOptions, Reserved, Result,
    WorkerInstance,
};

/// Leases up to `opts.limit` jobs, waiting for one when `opts.wait` says so.
pub(crate) async fn reserve(
    backend: &SqlBackend,
    by: &WorkerInstance,
    opts: ReserveOptions,
) -> Result<Vec<Reserved>> {
    if opts.limit == 0 {
        return Err(Error::invalid("reserve needs a limit of at least 1"));
    }
    if opts.classes.as_ref().is_some_and(Vec::is_empty) {
        return Err(Error::invalid(
            "reserve needs at least one class, or none given for any class",
        ));
    }
    reclaim::now_and_then(backend).await?;
    let wait = opts.wait.unwrap_or_default();
    let deadline = tokio::time::Instant::now() + wait;
    let mut woken = false;
    loop {
        // Register before looking, so an enqueue that lands in between still wakes us.
        let bounded = opts.min_priority.is_some() || opts.max_priority.is_some();
        let mut waiter = backend
            .inner
            .wake
            .waiter(&opts.queues, opts.classes.as_deref(), bounded);
        let (jobs, next_start) = claim_detached(backend, by, &opts).await?;
        // Woken for new jobs and took all it asked for: the wake-up goes on to the next
        // reserver, as there may be more (a reserver with priority bounds wakes at every
        // change, and took no one's wake-up).
        if woken && !bounded && jobs.len() >= opts.limit as usize {
            backend
                .inner
                .wake
                .pass_on(&opts.queues, opts.classes.as_deref());
        }
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        if !jobs.is_empty() || left.is_zero() {
            return Ok(jobs);
        }
        let mut nap = next_due_in(backend, &opts)
            .await?
            .map_or(left, |due| due.min(left));
        // A queue held back by its rate may start a job then.
        if let Some(next) = next_start {
            let until = (convert::time(next) - backend.now())
                .to_std()
                .unwrap_or_default();
            nap = nap.min(until);
        }
        let mut nap = nap.min(backend.config().idle_recheck);
        // Woken for a job and found none: another claim may have held its row locked (rows
        // a claim reads but does not take, or, on MariaDB, rows its index scan passes) while
        // this one skipped it. That claim's commit wakes no one, so look once more soon.
        if std::mem::take(&mut woken) {
            nap = nap.min(RECHECK_AFTER_EMPTY_WAKE);
        }
        tracing::debug!(worker = %by, ?nap, "no job ready; waiting for a wake-up");
        tokio::select! {
            _ = waiter.woken() => {
                tracing::debug!(worker = %by, "woken up; looking again");
                woken = true;
            }
            _ = tokio::time::sleep(nap) => {}
        }
    }
}

/// Whether a job these options would take, run limits aside, is due
/// ([`Backend::any_due`](outsourced_core::Backend::any_due)).
pub(crate) async fn due(backend: &SqlBackend, opts: &ReserveOptions) -> Result<bool> {
    if opts.classes.as_ref().is_some_and(Vec::is_empty) {
        return Err(Error::invalid(
            "reserve needs at least one class, or none given for any class",
        ));
    }
    any_due(backend.reader(), opts, backend.now()).await
}

/// How soon a reserver woken for a job that it did not find looks once more.
const RECHECK_AFTER_EMPTY_WAKE: Duration = Duration::from_millis(50);

/// How long until the next scheduled job of these queues comes due, by the backend's clock.
async fn next_due_in(backend: &SqlBackend, opts: &ReserveOptions) -> Result<Option<Duration>> {
    let now = backend.now();
    let next: Option<Option<i64>> = filtered(job::Entity::find(), opts)
        .filter(waiting())
        .filter(job::Column::RunAt.gt(ms(now)))
        .select_only()
        .column_as(job::Column::RunAt.min(), "next")
        .into_tuple()
        .one(backend.reader())
        .await
        .map_err(db_error)?;
    Ok(next
        .flatten()
        .map(|next| (convert::time(next) - now).to_std().unwrap_or_default()))
}

/// Waiting jobs, as a literal rather than a bound parameter: PostgreSQL's reserve indexes hold
/// only waiting jobs (migration 13), and only a plan that sees the value can use them.
fn waiting() -> sea_orm::sea_query::SimpleExpr {
    Expr::cust("waiting = TRUE")
}

/// The queue, class and priority filters of a reserve.
fn filtered(
    select: sea_orm::Select<job::Entity>,
    opts: &ReserveOptions,
) -> sea_orm::Select<job::Entity> {
    let mut select = select;
    if !opts.queues.is_empty() {
        select = select.filter(job::Column::Queue.is_in(opts.queues.iter().map(String::as_str)));
    }
    of_classes(priorities(select, opts), opts)
}

/// The class filter of a reserve.
fn of_classes(
    select: sea_orm::Select<job::Entity>,
    opts: &ReserveOptions,
) -> sea_orm::Select<job::Entity> {
    match &opts.classes {
        Some(classes) => {
            select.filter(job::Column::Class.is_in(classes.iter().map(String::as_str)))
        }
        None => select,
    }
}

/// The priority bounds of a reserve.
fn priorities(
    select: sea_orm::Select<job::Entity>,
    opts: &ReserveOptions,
) -> sea_orm::Select<job::Entity> {
    let mut select = select;
    if let Some(min) = opts.min_priority {
        select = select.filter(job::Column::Priority.gte(min));
    }
    if let Some(max) = opts.max_priority {
        select = select.filter(job::Column::Priority.lte(max));
    }
    select
}

/// One claim, run to its end in a task of its own, so that a caller that goes away (a long
/// poll cut short, an HTTP client that hangs up) never cuts the transaction mid-flight. Jobs
/// it leased for a caller no longer there to take them are given back at once (released: no
/// attempt used), instead of waiting out their lease: by the task when the caller left before
/// the answer, by the [`Answer`] when it left with the answer unread.
async fn claim_detached(
    backend: &SqlBackend,
    by: &WorkerInstance,
    opts: &ReserveOptions,
) -> Result<Claimed> {
    let (handle, owner, opts) = (backend.clone(), by.clone(), opts.clone());
    let (answer, answered) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        // A caller that went away before the commit claims nothing: a worker that stopped
        // waiting (a shutdown) may be releasing what it holds right then, and a claim that
        // committed after that release would hold a job past the worker's exit.
        let gone = || answer.is_closed();
        let claimed = claim(&handle, &owner, &opts, &gone).await;
        if let Err(Ok((orphans, _))) = answer.send(claimed) {
            give_back(&handle, &owner, orphans).await;
        }
    });
    let mut answer = Answer {
        answered,
        backend: backend.clone(),
        by: by.clone(),
    };
    (&mut answer.answered)
        .await
        .map_err(|_| backend_error("a claim's task ended without an answer", true))?
}

/// A claim's answer on its way to the caller.
struct Answer {
    answered: tokio::sync::oneshot::Receiver<Result<Claimed>>,
    backend: SqlBackend,
    by: WorkerInstance,
}

impl Drop for Answer {
    /// An answer that arrived but was never read: its caller went away in between.
    fn drop(&mut self) {
        // Closed first: an answer sent between a look and the receiver's own drop would be
        // dropped unread, its jobs leased to no one until the lease ran out. After `close`
        // the claim's task either finds the door shut (and gives the jobs back itself) or
        // its answer is here to read.
        self.answered.close();
        let Ok(Ok((orphans, _))) = self.answered.try_recv() else {
            return;
        };
        let (backend, by) = (self.backend.clone(), self.by.clone());
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { give_back(&backend, &by, orphans).await });
        }
    }
}

/// Releases jobs leased for a caller that went away (no attempt used).
async fn give_back(backend: &SqlBackend, by: &WorkerInstance, orphans: Vec<Reserved>) {
    for reserved in orphans {
        let lease = LeaseRef {
            job_id: reserved.lease.job_id,
            token: reserved.lease.token,
        };
        if let Err(error) = release::release(backend, by, &lease).await {
            tracing::warn!(%error, job = %lease.job_id, "giving back a job leased for a caller that went away failed; it runs again when its lease expires");
        }
    }
}

/// What a claim leased, and the earliest time a queue held back by its rate may start a job
/// (epoch ms).
type Claimed = (Vec<Reserved>, Option<i64>);

/// One attempt at claiming a batch.
async fn claim(
    backend: &SqlBackend,
    by: &WorkerInstance,
    opts: &ReserveOptions,
    gone: &(dyn Fn() -> bool + Sync),
) -> Result<Claimed> {
    let now = backend.now();
    let limit = std::cmp::min(opts.limit, backend.config().max_reserve);
    let lease = backend.config().lease_for(opts.lease);
    let flavor = backend.flavor();
    let declaration = backend.inner.instances.due(by, opts, now);
    let declaration = &declaration;
    let abandoned = std::sync::atomic::AtomicBool::new(false);
    let abandoned = &abandoned;
    let grant = backend
        .write(|txn| async move {
            if let Some(declaration) = declaration
                && let Err(error) = instances::note(&txn, by, declaration, now).await
            {
                return (txn, Err(error));
            }
            let clock = backend.inner.clock.as_ref();
            let result = match claim_in(&txn, flavor, by, opts, limit, clock, lease).await {
                // Rolled back: nothing was claimed for no one.
                Ok(Claim {
                    leased: Some(_), ..
                }) if gone() => {
                    abandoned.store(true, std::sync::atomic::Ordering::Relaxed);
                    Err(backend_error("the reserve's caller went away", false))
                }
                Ok(mut claim) => match &mut claim.leased {
                    Some(leased) => with_dependency_results(&txn, &mut leased.reserved)
                        .await
                        .map(|()| claim),
                    None => Ok(claim),
                },
                other => other,
            };
            (txn, result)
        })
        .await;
    // The jobs it had locked are ready again, and a reserve woken for them may have found
    // them locked and taken less than it could (which ends a chain of wake-ups): wake them all.
    if abandoned.load(std::sync::atomic::Ordering::Relaxed) {
        backend.inner.wake.everyone();
    }
    let grant = grant?;
    backend.inner.limited.note(&grant.plan.limited);
    let mut told = grant.expired;
    for queue in grant.plan.held_back() {
        told.held_back(queue);
    }
    backend.tell(told);
    let next_start = grant.plan.next_start;
    match grant.leased {
        Some(leased) => {
            backend.tell(leased.events);
            Ok((leased.reserved, next_start))
        }
        None => Ok((Vec::new(), next_start)),
    }
}

/// Hands each reserved job that waited for others their results, in the claim's transaction
/// (one read for the batch; none for a batch of jobs that waited for nothing).
async fn with_dependency_results(
    db: &impl ConnectionTrait,
    reserved: &mut [Reserved],
) -> Result<()> {
    let wanted = reserved
        .iter()
        .flat_map(|r| r.job.dependencies.iter().copied());
    let results = crate::dependencies::results(db, wanted).await?;
    if results.is_empty() {
        return Ok(());
    }
    for one in reserved {
        one.dependency_results = one
            .job
            .dependencies
            .iter()
            .filter_map(|id| results.get(id).map(|value| (*id, value.clone())))
            .collect();
    }
    Ok(())
}

/// What a claim's transaction did: the batch it leased (if any), what the run limits left it,
/// and the expired leases it reclaimed on the way.
struct Claim {
    leased: Option<Leased>,
    plan: limits::Plan,
    expired: Events,
}

/// Selects and marks a batch in the caller's transaction, within the run limits.
async fn claim_in(
    db: &impl ConnectionTrait,
    flavor: Flavor,
    by: &WorkerInstance,
    opts: &ReserveOptions,
    limit: u32,
    clock: &dyn Clock,
    lease: Duration,
) -> Result<Claim> {
    let (plan, expired) = limits::plan(db, flavor, by, opts, limit, clock.now()).await?;
    // Read after the limits' locks: a start is never dated before the end it waited for.
    let now = clock.now();
    if flavor == Flavor::Postgres && plan.limited.is_empty() {
        let picked = picked(opts, Range::default(), limit, now);
        let leased = pg_batch::claim(db, picked, by, limit, now, lease).await?;
        return Ok(Claim {
            leased,
            plan,
            expired,
        });
    }
    if let Some((queue, how)) = plan.in_claim() {
        // A reserve of this queue alone: no other queue's jobs to read.
        let queue = queue.to_owned();
        let (mut plan, mut expired) = (plan, expired);
        let leased = match how {
            InClaim::Places => {
                let picked = picked(opts, Range::default(), limit, now);
                let claim =
                    || pg_batch::claim_in_places(db, picked.clone(), &queue, limit, by, now, lease);
                let mut leased = claim().await?;
                if leased.is_none() {
                    let (again, lapsed) = plan.claimed_none_in_places(db, flavor, by, now).await?;
                    expired.append(lapsed);
                    if again {
                        leased = claim().await?;
                    }
                }
                leased
            }
            InClaim::Keys(per_key) => {
                let shape = Range {
                    per_key: Some(per_key),
                    ..Range::default()
                };
                let picked = |n| picked(opts, shape, n, now);
                let keyed = key_claim::Keyed {
                    queue: &queue,
                    per_key,
                };
                let claimed = key_claim::claim(db, picked, keyed, limit, by, clock, lease).await?;
                expired.append(claimed.expired);
                if claimed.leased.is_none() && any_due(db, opts, now).await? {
                    plan.held_by_keys.push(queue);
                }
                claimed.leased
            }
        };
        return Ok(Claim {
            leased,
            plan,
            expired,
        });
    }
    let (mut plan, mut expired) = (plan, expired);
    let (rows, lapsed) = ready(db, by, opts, &mut plan, limit, now, flavor).await?;
    expired.append(lapsed);
    // The starts are dated after the counts of running jobs per key that let them (and the
    // keys' locks): every end a count saw was dated before it.
    let now = clock.now();
    if rows.is_empty() {
        return Ok(Claim {
            leased: None,
            plan,
            expired,
        });
    }
    let grant = Grant::new(by, rows, now, lease)?;
    limits::spend(db, flavor, &plan, &grant.rows, &grant.tokens, ms(now)).await?;
    if flavor == Flavor::Postgres {
        // The batch is chosen and locked; PostgreSQL leases it in one statement.
        let jobs: Vec<(i64, &str)> = grant
            .rows
            .iter()
            .map(|row| row.id)
            .zip(grant.tokens.iter().map(String::as_str))
            .collect();
        let leased = pg_batch::lease_locked(db, &jobs, by, now, lease).await?;
        return Ok(Claim {
            leased,
            plan,
            expired,
        });
    }
    grant.mark_running(db).await?;
    insert_history(db, grant.history()).await?;
    grant.deltas()?.write(db).await?;
    let events = grant.started();
    let reserved = grant.into_reserved()?;
    Ok(Claim {
        leased: Some(Leased { reserved, events }),
        plan,
        expired,
    })
}

/// The `id` and `state` (and, in a queue with a per-key limit, `concurrency_key`) of the first
/// `limit` ready jobs in hand-out order, each read shaped like `shape`, locked, skipping locked
/// rows: [`read`]'s query as one statement, for PostgreSQL's claim (each range's query, its
/// `LIMIT` and lock its own, then the first `limit` of them all).
fn picked(
    opts: &ReserveOptions,
    shape: Range<'_>,
    limit: u32,
    now: DateTime<Utc>,
) -> SelectStatement {
    let mut columns = vec![job::Column::Id, job::Column::State];
    if shape.per_key.is_some() {
        columns.push(job::Column::ConcurrencyKey);
    }
    let arm = |range: Range<'_>| {
        let range = Range {
            per_key: shape.per_key,
            ..range
        };
        claim_select(opts, range, limit, now, Some(Flavor::Postgres))
            .select_only()
            .columns(columns.iter().copied())
            .columns([job::Column::Priority, job::Column::RunAt])
            .into_query()
    };
    let ranges = ranges(opts);
    let Some((first, rest)) = ranges.split_first() else {
        return arm(Range::default());
    };
    if rest.is_empty() {
        return arm(*first);
    }
    let from = |range: Range<'_>, n: usize| {
        Query::select()
            .column(Asterisk)
            .from_subquery(arm(range), Alias::new(format!("r{n}")))
            .to_owned()
    };
    let mut all = from(*first, 0);
    for (n, &range) in rest.iter().enumerate() {
        all.union(UnionType::All, from(range, n + 1));
    }
    Query::select()
        .columns(columns.iter().copied())
        .from_subquery(all, Alias::new("ranges"))
        .order_by(job::Column::Priority, Order::Asc)
        .order_by(job::Column::RunAt, Order::Asc)
        .order_by(job::Column::Id, Order::Asc)
        .limit(u64::from(limit))
        .to_owned()
}

/// A reserve from at most this many queues reads each queue's own range of the queue reserve
/// index; one from more queues (or from every queue) walks the index of all waiting jobs. A
/// reserve of some classes reads each (queue, class) range of the class reserve index, as long
/// as there are at most this many ranges.
const PER_QUEUE: usize = 8;
const PER_RANGE: usize = 16;

/// Where one read of a claim looks: a queue, and in it one class; leaving out the limited
/// queues (read on their own) and, in a queue with a per-key limit, keys at their limit.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Range<'a> {
    pub(crate) queue: Option<&'a str>,
    pub(crate) class: Option<&'a str>,
    pub(crate) exclude: &'a [String],
    pub(crate) per_key: Option<u32>,
    pub(crate) key_rate: bool,
}

/// The ranges a claim reads, each through an index that holds it in hand-out order: each
/// (queue, class) pair, each queue, or (empty) one walk of every waiting job.
fn ranges(opts: &ReserveOptions) -> Vec<Range<'_>> {
    fn sorted(list: &[String]) -> Vec<&str> {
        let mut list: Vec<&str> = list.iter().map(String::as_str).collect();
        list.sort_unstable();
        list.dedup();
        list
    }
    let queues = sorted(&opts.queues);
    if queues.is_empty() || queues.len() > PER_QUEUE {
        return Vec::new();
    }
    let classes = opts.classes.as_deref().map(sorted).unwrap_or_default();
    if classes.is_empty() || queues.len() * classes.len() > PER_RANGE {
        return queues
            .into_iter()
            .map(|queue| Range {
                queue: Some(queue),
                ..Range::default()
            })
            .collect();
    }
    queues
        .iter()
        .flat_map(|&queue| {
            classes.iter().map(move |&class| Range {
                queue: Some(queue),
                class: Some(class),
                ..Range::default()
            })
        })
        .collect()
}

/// The first `limit` ready jobs in hand-out order, locked, within the run limits: those of the
/// queues without limits, and of each limited queue as many as its room allows; with the
/// events of the lapsed leases reclaimed on the way. Notes in `plan` the queues whose keys
/// held back every job read, and the earliest time a key held back by a rate per key may
/// start.
async fn ready(
    db: &impl ConnectionTrait,
    by: &WorkerInstance,
    opts: &ReserveOptions,
    plan: &mut limits::Plan,
    limit: u32,
    now: DateTime<Utc>,
    flavor: Flavor,
) -> Result<(Vec<job::Model>, Events)> {
    let mut expired = Events::default();
    if plan.limited.is_empty() {
        let rows = read(db, opts, Range::default(), limit, now, flavor).await?;
        return Ok((rows, expired));
    }
    let mut rows = Vec::new();
    if opts.queues.is_empty() {
        let others = Range {
            exclude: &plan.limited,
            ..Range::default()
        };
        rows = read(db, opts, others, limit, now, flavor).await?;
    } else {
        let mut others = opts.clone();
        others.queues.retain(|queue| !plan.limited.contains(queue));
        if !others.queues.is_empty() {
            rows = read(db, &others, Range::default(), limit, now, flavor).await?;
        }
    }
    let (mut held, mut key_starts) = (Vec::new(), Vec::new());
    for room in &plan.rooms {
        let one = ReserveOptions {
            queues: vec![room.queue.clone()],
            ..opts.clone()
        };
        let shape = Range {
            per_key: room.per_key,
            key_rate: room.key_rate.is_some(),
            ..Range::default()
        };
        let read_and_trim = async || {
            let read = read(db, &one, shape, room.read(), now, flavor).await?;
            limits::trim(db, room, read).await
        };
        let mut kept = read_and_trim().await?;
        // A key whose lease ran out gives its place back now, looked for only when the keys'
        // limits left the read short (an unlimited reserve makes no such look).
        if room.per_key.is_some() && kept.len() < room.take as usize {
            let lapsed =
                limits::expire_lapsed(db, flavor.locks_rows(), &room.queue, by, now).await?;
            if !lapsed.is_empty() {
                expired.append(lapsed);
                kept = read_and_trim().await?;
            }
        }
        if room.key_rate.is_some() && kept.len() < room.take as usize {
            // A long poll held back by a key's clock sleeps until the first one comes.
            key_starts.extend(key_rates::next_at(db, &room.queue, ms(now)).await?);
        }
        let keyed = room.per_key.is_some() || room.key_rate.is_some();
        if kept.is_empty() && keyed && any_due(db, &one, now).await? {
            held.push(room.queue.clone());
        }
        rows.extend(kept);
    }
    plan.held_by_keys = held;
    for next in key_starts {
        plan.may_start_at(next);
    }
    rows.sort_unstable_by_key(|row| (row.priority, row.run_at, row.id));
    rows.truncate(limit as usize);
    Ok((rows, expired))
}

/// Whether any job of `opts` is due, whatever its key: a queue whose reserve took none while
/// one is was held back by its keys' limits.
async fn any_due(
    db: &impl ConnectionTrait,
    opts: &ReserveOptions,
    now: DateTime<Utc>,
) -> Result<bool> {
    let select = claim_select(opts, Range::default(), 1, now, None);
    Ok(select.one(db).await.map_err(db_error)?.is_some())
}

/// The first `limit` ready jobs of `opts` in hand-out order, locked, each read shaped like
/// `shape` (what it leaves out). Taken range by range (as many from each, then the first
/// `limit` of them all), so that a backlog in another queue, or of a class this worker does
/// not run, is never in the way; the rows read but not taken stay locked only until the
/// commit.
async fn read(
    db: &impl ConnectionTrait,
    opts: &ReserveOptions,
    shape: Range<'_>,
    limit: u32,
    now: DateTime<Utc>,
    flavor: Flavor,
) -> Result<Vec<job::Model>> {
    let ranges = ranges(opts);
    if ranges.is_empty() {
        let select = claim_select(opts, shape, limit, now, Some(flavor));
        return select.all(db).await.map_err(db_error);
    }
    let mut rows = Vec::new();
    for &range in &ranges {
        let range = Range {
            exclude: shape.exclude,
            per_key: shape.per_key,
            key_rate: shape.key_rate,
            ..range
        };
        let select = claim_select(opts, range, limit, now, Some(flavor));
        rows.extend(select.all(db).await.map_err(db_error)?);
    }
    if ranges.len() > 1 {
        rows.sort_unstable_by_key(|row| (row.priority, row.run_at, row.id));
        rows.truncate(limit as usize);
    }
    Ok(rows)
}

/// The claim's query: the first `limit` ready jobs in hand-out order, of one range: a queue
/// and class through the class reserve index `(queue, waiting, class, priority, run_at, id)`,
/// a queue through the queue reserve index `(queue, waiting, priority, run_at, id)`, or the
/// options' queues and classes through the reserve index `(waiting, priority, run_at, id)`;
/// skipping rows other claims hold where `flavor`, the database read, locks rows (`None`: a
/// look that locks nothing).
pub(crate) fn claim_select(
    opts: &ReserveOptions,
    range: Range<'_>,
    limit: u32,
    now: DateTime<Utc>,
    flavor: Option<Flavor>,
) -> sea_orm::Select<job::Entity> {
    let paused = Query::select()
        .column(queue::Column::Name)
        .from(queue::Entity)
        .and_where(Expr::col(queue::Column::Paused).eq(true))
        .to_owned();
    let select = match range {
        Range {
            queue: Some(queue),
            class: Some(class),
            ..
        } => priorities(job::Entity::find(), opts)
            .filter(job::Column::Queue.eq(queue))
            .filter(job::Column::Class.eq(class)),
        Range {
            queue: Some(queue),
            class: None,
            ..
        } => of_classes(priorities(job::Entity::find(), opts), opts)
            .filter(job::Column::Queue.eq(queue)),
        Range { queue: None, .. } => filtered(job::Entity::find(), opts),
    };
    let mut select = select;
    if !range.exclude.is_empty() {
        select =
            select.filter(job::Column::Queue.is_not_in(range.exclude.iter().map(String::as_str)));
    }
    if let Some(per_key) = range.per_key {
        select = select.filter(limits::key_has_room(per_key, flavor));
    }
    if range.key_rate {
        select = select.filter(key_rates::due(ms(now)));
    }
    let select = select
        .filter(waiting())
        .filter(job::Column::RunAt.lte(ms(now)))
        .filter(Expr::col(job::Column::Queue).not_in_subquery(paused))
        .order_by_asc(job::Column::Priority)
        .order_by_asc(job::Column::RunAt)
        .order_by_asc(job::Column::Id)
        .limit(u64::from(limit));
    match flavor.is_some_and(Flavor::locks_rows) {
        true => select.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked),
        false => select,
    }
}

/// The state a claimed batch goes to, decided like every state by the transition function: a
/// reserve of each job's state, one answer for all (one `UPDATE` writes it).
fn next_state(rows: &[job::Model]) -> Result<JobState> {
    let mut next = None;
    for row in rows {
        let to = outsourced_core::transition(convert::state(row)?, Event::Reserve)
            .map_err(|e| backend_error(format!("job {}: {e}", row.id), false))?;
        if next.is_some_and(|next| next != to) {
            return Err(backend_error(
                "a claimed batch would go to two states",
                false,
            ));
        }
        next = Some(to);
    }
    // No rows: no state is written (an empty batch never reaches the `UPDATE`).
    Ok(next.unwrap_or(JobState::Running))
}

/// A batch being handed to one worker instance, on the generic path: the rows as read and a
/// token for each.
struct Grant<'a> {
    by: &'a WorkerInstance,
    rows: Vec<job::Model>,
    /// The state they go to, the transition function's answer for each.
    to: JobState,
    tokens: Vec<String>,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    lease: Duration,
}

impl<'a> Grant<'a> {
    fn new(
        by: &'a WorkerInstance,
        rows: Vec<job::Model>,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Self> {
        let to = next_state(&rows)?;
        let tokens = rows.iter().map(|_| new_token()).collect();
        let expires_at = now + chrono::Duration::milliseconds(duration_ms(lease));
        Ok(Grant {
            by,
            rows,
            to,
            tokens,
            now,
            expires_at,
            lease,
        })
    }

    /// One `UPDATE` for the whole batch; each job gets its own token through a `CASE`.
    async fn mark_running(&self, db: &impl ConnectionTrait) -> Result<()> {
        let mut tokens = CaseStatement::new();
        for (row, token) in self.rows.iter().zip(&self.tokens) {
            tokens = tokens.case(job::Column::Id.eq(row.id), token.as_str());
        }
        let ids: Vec<i64> = self.rows.iter().map(|row| row.id).collect();
        let running = self.to.as_str();
        let result = job::Entity::update_many()
            .col_expr(job::Column::State, Expr::value(running))
            .col_expr(job::Column::Waiting, Expr::value(false))
            .col_expr(
                job::Column::Attempts,
                Expr::col(job::Column::Attempts).add(1),
            )
            .col_expr(job::Column::Seq, Expr::col(job::Column::Seq).add(1))
            .col_expr(job::Column::LeaseToken, Into::<Expr>::into(tokens))
            .col_expr(
                job::Column::LeaseWorker,
                Expr::value(self.by.worker.as_str()),
            )
            .col_expr(
                job::Column::LeaseInstance,
                Expr::value(self.by.instance.as_str()),
            )
            .col_expr(
                job::Column::LeaseExpiresAt,
                Expr::value(ms(self.expires_at)),
            )
            .col_expr(job::Column::LeaseMs, Expr::value(duration_ms(self.lease)))
            .col_expr(job::Column::StartedAt, Expr::value(ms(self.now)))
            .col_expr(job::Column::UpdatedAt, Expr::value(ms(self.now)))
            // By id alone, as the rows are locked (see `BatchTransition`); the count checks.
            .filter(job::Column::Id.is_in(ids))
            .exec(db)
            .await
            .map_err(db_error)?;
        if result.rows_affected != self.rows.len() as u64 {
            // Cannot happen while the rows are locked (or the SQLite write lock is held); if it
            // does, the transaction is dropped and nothing is handed out.
            return Err(backend_error(
                "jobs changed while being reserved; try again",
                true,
            ));
        }
        Ok(())
    }

    /// One `reserved` history row per job.
    fn history(&self) -> Vec<crate::entity::history::ActiveModel> {
        let actor = Actor::Worker(self.by.clone());
        self.rows
            .iter()
            .zip(&self.tokens)
            .map(|(row, token)| {
                let step = Step {
                    event: Some(Event::Reserve),
                    reason: Reason::Reserved,
                    attempt: (row.attempts + 1) as u32,
                    error: None,
                    token: Some(token),
                    result: None,
                };
                let from = convert::state(row).ok();
                history_row(row.id, row.seq + 1, from, self.to, &step, self.now, &actor)
            })
            .collect()
    }

    /// The jobs per queue and state the batch moves.
    fn deltas(&self) -> Result<crate::counts::Deltas> {
        let mut deltas = crate::counts::Deltas::default();
        for row in &self.rows {
            deltas.moved(&row.queue, Some(convert::state(row)?), Some(self.to));
        }
        Ok(deltas)
    }

    /// The jobs as they are now, with their leases.
    /// The start of each attempt, for the observer: how long each job waited past its run time.
    fn started(&self) -> Events {
        let mut events = Events::default();
        for row in &self.rows {
            let waited = (self.now - convert::time(row.run_at)).to_std();
            events.started(row, waited.unwrap_or_default());
        }
        events
    }

    fn into_reserved(self) -> Result<Vec<Reserved>> {
        let Grant {
            by,
            rows,
            to,
            tokens,
            now,
            expires_at,
            lease,
        } = self;
        rows.into_iter()
            .zip(tokens)
            .map(|(mut row, token)| {
                row.state = to.as_str().to_owned();
                row.waiting = false;
                row.attempts += 1;
                row.seq += 1;
                row.updated_at = ms(now);
                row.lease_token = Some(token.clone());
                row.lease_worker = Some(by.worker.clone());
                row.lease_instance = Some(by.instance.clone());
                row.lease_expires_at = Some(ms(expires_at));
                row.lease_ms = Some(duration_ms(lease));
                reserved(&row, token, expires_at, by)
            })
            .collect()
    }
}
