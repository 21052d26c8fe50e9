//! Run limits, enforced inside reserve's transaction.
//!
//! A limited queue has a row in `outsourced_run_limits`. A reserve that may take from it locks
//! that row first (`FOR UPDATE`; on SQLite the transaction holds the write lock already), so
//! the reserves of one limited queue take turns, in every server process at once. Holding the
//! row, it counts the queue's running jobs (the index of running jobs, migration 16: a jobs'
//! end commits before it is no longer counted, so the count is never below the truth), takes
//! at most the room left, spaces starts by the rate, and skips jobs whose concurrency key is at
//! its limit or whose clock (a rate per key, `key_rates`) has not come. Two kinds of queue
//! need not take turns on the row: one whose one limit is `max_running` keeps places
//! (`places`), and, on PostgreSQL, one whose one limit is per key locks keys (`key_locks`).
//! On PostgreSQL a reserve of one such queue alone is kept within its limits by the claim's
//! own statements (`InClaim`), where the generic path reads, trims and then leases.
//! Queues without limits never touch the table beyond one read of it, and their reserves
//! never wait for each other.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, LockBehavior, LockType};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use crate::convert::{duration_ms, ms};
use crate::dialect::{Flavor, insert_if_absent};
use crate::entity::{job, run_limits};
use crate::error::db_error;
use crate::observe::Events;
use crate::places;
use crate::reclaim;
use crate::{key_locks, key_rates};
use outsourced_core::{
    Actor, QueueUpdate, Rate, ReserveOptions, Result, RunLimits, WorkerInstance,
};

/// A reserve reads this many candidates per job it may take from a queue with a per-key limit:
/// those of keys at their limit, beyond the first of each, are left. Keys that run are left out
/// by the read itself (`key_has_room`), so the spare candidates cover only keys repeated in
/// the read or locked by another reserve. Two, not four: every candidate is locked, and the
/// reserves beside it scan past each other's locked candidates (on PostgreSQL, 1,000 keys x 1:
/// 0.52 ms a read where four took 0.79 ms, docs/benchmarks.md).
pub(crate) const PER_KEY_READ: u32 = 2;

/// The limits a row holds (none without a row).
pub(crate) fn of(row: Option<&run_limits::Model>) -> RunLimits {
    let Some(row) = row else {
        return RunLimits::default();
    };
    let count = |n: Option<i32>| n.map(|n| n.max(1) as u32);
    let rate = |starts: Option<i32>, per: Option<i64>| match (starts, per) {
        (Some(starts), Some(per)) => Some(Rate {
            starts: starts.max(1) as u32,
            per: Duration::from_millis(per.max(1) as u64),
        }),
        _ => None,
    };
    RunLimits {
        max_running: count(row.max_running),
        rate: rate(row.rate_starts, row.rate_per_ms),
        max_running_per_key: count(row.max_running_per_key),
        rate_per_key: rate(row.key_rate_starts, row.key_rate_per_ms),
    }
}

/// Applies `update`'s limits to `queue` (checked by the caller): its row is written, or
/// deleted when no limit is left.
pub(crate) async fn write(
    db: &impl ConnectionTrait,
    flavor: Flavor,
    queue: &str,
    update: &QueueUpdate,
) -> Result<()> {
    if !update.changes_limits() {
        return Ok(());
    }
    // Locked: a reserve moving the rate's clock meanwhile would be undone by the write.
    let mut was = run_limits::Entity::find_by_id(queue);
    if flavor.locks_rows() {
        was = was.lock(LockType::Update);
    }
    let was = was.one(db).await.map_err(db_error)?;
    let old = of(was.as_ref());
    let limits = update.limits(old);
    // Made again, with the jobs that run then, by the next reserve (`plan`).
    places::delete(db, queue).await?;
    if limits.rate_per_key.is_none() {
        key_rates::forget(db, queue).await?;
    }
    if !limits.any() {
        return delete(db, queue).await;
    }
    let number = |n: Option<u32>| n.map(|n| n.min(i32::MAX as u32) as i32);
    let row = run_limits::ActiveModel {
        queue: Set(queue.to_owned()),
        max_running: Set(number(limits.max_running)),
        rate_starts: Set(number(limits.rate.map(|r| r.starts))),
        rate_per_ms: Set(limits.rate.map(|r| duration_ms(r.per))),
        rate_next_at: Set(0),
        max_running_per_key: Set(number(limits.max_running_per_key)),
        key_rate_starts: Set(number(limits.rate_per_key.map(|r| r.starts))),
        key_rate_per_ms: Set(limits.rate_per_key.map(|r| duration_ms(r.per))),
        places_kept: Set(false),
    };
    let insert = run_limits::Entity::insert(row.clone());
    if insert_if_absent(db, flavor, sea_orm::QueryTrait::into_query(insert)).await? {
        return Ok(());
    }
    // A changed rate counts from the last start (the next start less the old interval): no
    // window of the new period then holds more than its starts, across the change either.
    let mut row = row;
    row.rate_next_at = match (old.rate, limits.rate, was) {
        (Some(before), Some(after), Some(was)) if before != after && was.rate_next_at > 0 => {
            let interval = |rate: Rate| duration_ms(rate.interval()).max(1);
            Set(was.rate_next_at - interval(before) + interval(after))
        }
        _ => sea_orm::ActiveValue::NotSet,
    };
    run_limits::Entity::update(row)
        .exec(db)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Removes a queue's limits (the queue is being deleted, or has none left).
pub(crate) async fn delete(db: &impl ConnectionTrait, queue: &str) -> Result<()> {
    places::delete(db, queue).await?;
    key_rates::forget(db, queue).await?;
    run_limits::Entity::delete_by_id(queue)
        .exec(db)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// What the run limits leave a reserve: how many it may take from each limited queue it reads
/// (after locking the queue's row), and which queues its other reads must leave out.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    /// The limited queues with room, each read on its own.
    pub(crate) rooms: Vec<Room>,
    /// Every limited queue of the reserve's scope, with room or without.
    pub(crate) limited: Vec<String>,
    /// The earliest time a rate lets a queue held by it start its next job (epoch ms).
    pub(crate) next_start: Option<i64>,
    /// The queues with room whose every due job read was held back by its key's limits.
    pub(crate) held_by_keys: Vec<String>,
}

/// How many jobs one limited queue may start now.
#[derive(Debug)]
pub(crate) struct Room {
    pub(crate) queue: String,
    pub(crate) take: u32,
    pub(crate) per_key: Option<u32>,
    /// The rate per key's least time between two starts of one key (ms), if it has one.
    pub(crate) key_rate: Option<i64>,
    /// The rate's least time between starts (ms) and the earliest next start, if it has one.
    rate: Option<(i64, i64)>,
    /// The places claimed for the jobs it starts, when the queue keeps places.
    places: Vec<i32>,
    /// How the claim's own statements keep this queue within its limits, if they do
    /// (PostgreSQL, a reserve of this queue alone); `take` is then the most it may take.
    in_claim: Option<InClaim>,
    /// Whether its reserves take turns per key (`key_locks`) rather than on its row.
    lock_keys: bool,
}

/// How PostgreSQL's claim of a reserve of one limited queue keeps within its limits, where the
/// generic path would choose the batch first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InClaim {
    /// It claims the queue's free places and fills them (`pg_batch::claim_in_places`).
    Places,
    /// It locks its candidates' keys and takes those with room, at most this many running
    /// of a key (`key_claim`).
    Keys(u32),
}

impl Plan {
    /// The limited queues that had no room, or whose jobs were all held back by their keys.
    pub(crate) fn held_back(&self) -> impl Iterator<Item = &str> {
        self.limited
            .iter()
            .filter(|queue| !self.rooms.iter().any(|room| &room.queue == *queue))
            .chain(&self.held_by_keys)
            .map(String::as_str)
    }

    /// The queue whose limits the claim's own statements keep, and how, if any.
    pub(crate) fn in_claim(&self) -> Option<(&str, InClaim)> {
        self.rooms
            .iter()
            .find_map(|room| Some((room.queue.as_str(), room.in_claim?)))
    }

    /// Notes, after a claim in places that leased nothing, whether `queue` was held back by
    /// its places (none free); if it was, reclaims its lapsed leases, and answers whether any
    /// place came free that way (the claim is worth making again).
    pub(crate) async fn claimed_none_in_places(
        &mut self,
        db: &impl ConnectionTrait,
        flavor: Flavor,
        by: &WorkerInstance,
        now: DateTime<Utc>,
    ) -> Result<(bool, Events)> {
        let Some((queue, InClaim::Places)) = self.in_claim() else {
            return Ok((false, Events::default()));
        };
        let queue = queue.to_owned();
        if places::any_free(db, &queue, ms(now)).await? {
            return Ok((false, Events::default()));
        }
        let expired = expire_lapsed(db, flavor.locks_rows(), &queue, by, now).await?;
        if expired.is_empty() {
            self.rooms.retain(|room| room.queue != queue);
        }
        Ok((!expired.is_empty(), expired))
    }

    /// Notes that a rate lets a queue it holds back start a job at `next` (epoch ms).
    pub(crate) fn may_start_at(&mut self, next: i64) {
        self.next_start = Some(self.next_start.map_or(next, |n| std::cmp::min(n, next)));
    }
}

impl Room {
    /// The room of a queue whose limits the claim's statements keep, up to `limit`.
    fn in_claim(queue: &str, limit: u32, how: InClaim) -> Room {
        Room {
            queue: queue.to_owned(),
            take: limit,
            per_key: None,
            key_rate: None,
            rate: None,
            places: Vec::new(),
            in_claim: Some(how),
            lock_keys: false,
        }
    }

    /// How many candidates to read: more than it takes when some keys may be at their limit.
    pub(crate) fn read(&self) -> u32 {
        match self.per_key.is_some() || self.key_rate.is_some() {
            true => self.take.saturating_mul(PER_KEY_READ),
            false => self.take,
        }
    }
}

/// Locks the rows of the limited queues a reserve may take from, in name order (so that two
/// reserves never wait for each other in a circle), and says how many each has room for; with
/// the events of the expired leases it reclaimed on the way.
pub(crate) async fn plan(
    db: &impl ConnectionTrait,
    flavor: Flavor,
    by: &WorkerInstance,
    opts: &ReserveOptions,
    limit: u32,
    now: DateTime<Utc>,
) -> Result<(Plan, Events)> {
    let mut scope = run_limits::Entity::find().order_by_asc(run_limits::Column::Queue);
    if !opts.queues.is_empty() {
        scope =
            scope.filter(run_limits::Column::Queue.is_in(opts.queues.iter().map(String::as_str)));
    }
    let rows = scope.all(db).await.map_err(db_error)?;
    let mut plan = Plan::default();
    let mut events = Events::default();
    for row in rows {
        plan.limited.push(row.queue.clone());
        // PostgreSQL's claim keeps a reserve of this queue alone within its places, or its
        // keys' limits, itself.
        let alone = flavor == Flavor::Postgres && only(opts) == Some(row.queue.as_str());
        let limits = of(Some(&row));
        let lock_keys = flavor == Flavor::Postgres && key_locks::apply_to(&limits);
        let (room, expired) = if row.places_kept && alone {
            let room = Room::in_claim(&row.queue, limit, InClaim::Places);
            (room, Events::default())
        } else if let (true, true, Some(per_key)) = (lock_keys, alone, limits.max_running_per_key) {
            let room = Room::in_claim(&row.queue, limit, InClaim::Keys(per_key));
            (room, Events::default())
        } else if row.places_kept {
            in_places(db, flavor, &row, by, limit, now).await?
        } else if lock_keys {
            // Its reserves take turns per key (`trim`), not on the row.
            let (mut room, expired) = under_lock(db, flavor, &row, by, limit, now).await?;
            room.lock_keys = true;
            (room, expired)
        } else {
            let Some(row) = locked(db, flavor, row).await? else {
                continue;
            };
            // Places made (or settled by another reserve while this one waited) once the
            // jobs that run fit in them.
            let limits = of(Some(&row));
            let settled = places::kept_for(&limits)
                && (row.places_kept || places::settle(db, &row.queue, &limits).await?);
            match settled {
                true => in_places(db, flavor, &row, by, limit, now).await?,
                false => under_lock(db, flavor, &row, by, limit, now).await?,
            }
        };
        events.append(expired);
        if let Some((_, next)) = room.rate
            && next > ms(now)
        {
            plan.may_start_at(next);
        }
        if room.take > 0 {
            plan.rooms.push(room);
        }
    }
    Ok((plan, events))
}

/// The one queue a reserve names, if it names one (perhaps more than once).
fn only(opts: &ReserveOptions) -> Option<&str> {
    let (first, rest) = opts.queues.split_first()?;
    rest.iter()
        .all(|queue| queue == first)
        .then_some(first.as_str())
}

/// The limits row read again under its lock (the limits and the rate's clock as they are
/// now); as read where the database locks no rows (SQLite's writer lock is held already).
async fn locked(
    db: &impl ConnectionTrait,
    flavor: Flavor,
    row: run_limits::Model,
) -> Result<Option<run_limits::Model>> {
    if !flavor.locks_rows() {
        return Ok(Some(row));
    }
    run_limits::Entity::find_by_id(row.queue.as_str())
        .lock(LockType::Update)
        .one(db)
        .await
        .map_err(db_error)
}

/// The room a queue's limits row leaves (locked, unless its reserves lock keys instead), after
/// reclaiming the queue's lapsed leases when its limit on running jobs holds the reserve back:
/// a lease that ran out gives its place back now, not at the next reclaim. (A key's lapsed
/// leases are looked for when its read comes back short, `reserve::ready`.)
async fn under_lock(
    db: &impl ConnectionTrait,
    flavor: Flavor,
    row: &run_limits::Model,
    by: &WorkerInstance,
    limit: u32,
    now: DateTime<Utc>,
) -> Result<(Room, Events)> {
    let mut room = room(db, row, limit, ms(now)).await?;
    let full = row.max_running.is_some() && room.take == 0;
    if !full {
        return Ok((room, Events::default()));
    }
    let expired = expire_lapsed(db, flavor.locks_rows(), &row.queue, by, now).await?;
    if !expired.is_empty() {
        room = self::room(db, row, limit, ms(now)).await?;
    }
    Ok((room, expired))
}

/// The room of a queue that keeps places: the free places it claimed (after reclaiming its
/// lapsed leases when it found none), at most `limit`.
async fn in_places(
    db: &impl ConnectionTrait,
    flavor: Flavor,
    row: &run_limits::Model,
    by: &WorkerInstance,
    limit: u32,
    now: DateTime<Utc>,
) -> Result<(Room, Events)> {
    let claim = || places::claim(db, flavor, &row.queue, limit, ms(now));
    let mut claimed = claim().await?;
    let mut expired = Events::default();
    if claimed.is_empty() {
        expired = expire_lapsed(db, flavor.locks_rows(), &row.queue, by, now).await?;
        if !expired.is_empty() {
            claimed = claim().await?;
        }
    }
    let room = Room {
        queue: row.queue.clone(),
        take: claimed.len() as u32,
        per_key: None,
        key_rate: None,
        rate: None,
        places: claimed,
        in_claim: None,
        lock_keys: false,
    };
    Ok((room, expired))
}

/// Reclaims the queue's running jobs whose leases ran out (as the reclaimer does: a failed
/// attempt, or a cancel asked for), so that they hold no slot of the limits.
pub(crate) async fn expire_lapsed(
    db: &impl ConnectionTrait,
    lock_rows: bool,
    queue: &str,
    by: &WorkerInstance,
    now: DateTime<Utc>,
) -> Result<Events> {
    let mut select = job::Entity::find()
        .filter(job::Column::Queue.eq(queue))
        .filter(is_running())
        .filter(job::Column::LeaseExpiresAt.lte(ms(now)));
    if lock_rows {
        select = select.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    let mut events = Events::default();
    let actor = Actor::Worker(by.clone());
    for row in select.all(db).await.map_err(db_error)? {
        if let Some(expired) = reclaim::expire(db, &row, &actor, now).await? {
            events.append(expired);
        }
    }
    Ok(events)
}

/// The room a locked limits row leaves.
async fn room(
    db: &impl ConnectionTrait,
    row: &run_limits::Model,
    limit: u32,
    now: i64,
) -> Result<Room> {
    let limits = of(Some(row));
    let mut take = limit;
    if let Some(max) = limits.max_running {
        let running = running(db, &row.queue).await?;
        take = take.min(max.saturating_sub(running));
    }
    let rate = limits
        .rate
        .map(|rate| (duration_ms(rate.interval()).max(1), row.rate_next_at));
    if let Some((_, next)) = rate {
        // One start per interval: the time a quiet spell left unused is not saved up.
        take = take.min(u32::from(next <= now));
    }
    Ok(Room {
        queue: row.queue.clone(),
        take,
        per_key: limits.max_running_per_key,
        key_rate: limits
            .rate_per_key
            .map(|rate| duration_ms(rate.interval()).max(1)),
        rate,
        places: Vec::new(),
        in_claim: None,
        lock_keys: false,
    })
}

/// Running jobs, as a literal rather than a bound parameter: the index of running jobs holds
/// only those on PostgreSQL and SQLite, and only a plan that sees the value can use it.
pub(crate) fn is_running() -> sea_orm::sea_query::SimpleExpr {
    Expr::cust("state = 'running'")
}

/// How many of a queue's jobs run now.
async fn running(db: &impl ConnectionTrait, queue: &str) -> Result<u32> {
    let count: Option<i64> = job::Entity::find()
        .select_only()
        .column_as(job::Column::Id.count(), "running")
        .filter(job::Column::Queue.eq(queue))
        .filter(is_running())
        .into_tuple()
        .one(db)
        .await
        .map_err(db_error)?;
    Ok(count.unwrap_or(0).clamp(0, i64::from(u32::MAX)) as u32)
}

/// Leaves out candidates a reserve read but may not take: of keys at their limit (counting
/// the jobs of each key that run now and those taken before in this batch), beyond the first
/// of a key under a rate per key, then past the room. Hand-out order is kept.
pub(crate) async fn trim(
    db: &impl ConnectionTrait,
    room: &Room,
    rows: Vec<job::Model>,
) -> Result<Vec<job::Model>> {
    let mut rows = rows;
    if room.per_key.is_none() && room.key_rate.is_none() {
        rows.truncate(room.take as usize);
        return Ok(rows);
    }
    if room.lock_keys {
        // Counted below, after the keys' locks: a statement that sees every start before.
        rows = key_locks::lock(db, &room.queue, rows).await?;
    }
    let running = match room.per_key {
        Some(_) => {
            running_per_key(
                db,
                &room.queue,
                keys_of(&rows, |row| row.concurrency_key.as_deref()),
            )
            .await?
        }
        None => HashMap::new(),
    };
    let key_of = |row: &job::Model| row.concurrency_key.clone();
    let within = Within {
        running: &running,
        per_key: room.per_key,
        rated: room.key_rate.is_some(),
        take: room.take,
    };
    Ok(within.keep(rows, key_of))
}

/// The distinct keys of `rows`.
pub(crate) fn keys_of<T>(rows: &[T], key_of: impl Fn(&T) -> Option<&str>) -> HashSet<&str> {
    rows.iter().filter_map(key_of).collect()
}

/// What keeps a reserve's starts within the limits per key.
pub(crate) struct Within<'a> {
    /// How many jobs of each key run now.
    pub(crate) running: &'a HashMap<String, u32>,
    /// The most jobs of one key that may run, if the queue has that limit.
    pub(crate) per_key: Option<u32>,
    /// Whether a rate per key holds: one start of a key per reserve.
    pub(crate) rated: bool,
    /// The most it may start.
    pub(crate) take: u32,
}

impl Within<'_> {
    /// The first `take` of `rows` (in hand-out order) whose starts keep each key within its
    /// limits, counting the jobs of the key that run and those kept before them.
    pub(crate) fn keep<T>(&self, rows: Vec<T>, key_of: impl Fn(&T) -> Option<String>) -> Vec<T> {
        let mut taken: HashMap<String, u32> = HashMap::new();
        let mut kept = Vec::new();
        for row in rows {
            if kept.len() == self.take as usize {
                break;
            }
            if let Some(key) = key_of(&row) {
                let before = self.running.get(&key).copied().unwrap_or(0);
                let taken = taken.entry(key).or_default();
                let at_limit = self.per_key.is_some_and(|max| before + *taken >= max);
                // One start of a key per interval: this reserve's first of it is the one.
                let rated = self.rated && *taken > 0;
                if at_limit || rated {
                    continue;
                }
                *taken += 1;
            }
            kept.push(row);
        }
        kept
    }
}

/// How many jobs of each of `keys` run now in `queue`.
pub(crate) async fn running_per_key(
    db: &impl ConnectionTrait,
    queue: &str,
    keys: HashSet<&str>,
) -> Result<HashMap<String, u32>> {
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    let counted: Vec<(Option<String>, i64)> = job::Entity::find()
        .select_only()
        .column(job::Column::ConcurrencyKey)
        .column_as(job::Column::Id.count(), "running")
        .filter(job::Column::Queue.eq(queue))
        .filter(is_running())
        .filter(job::Column::ConcurrencyKey.is_in(keys))
        .group_by(job::Column::ConcurrencyKey)
        .into_tuple()
        .all(db)
        .await
        .map_err(db_error)?;
    Ok(counted
        .into_iter()
        .filter_map(|(key, n)| Some((key?, n.max(0) as u32)))
        .collect())
}

/// The condition that leaves out the jobs of keys at their limit, evaluated per candidate
/// through the index of running jobs. The limit is a number of ours, written in the text (a
/// bound value's placeholder differs between the databases). MariaDB and MySQL are told the
/// index: with statistics a burn-down had made stale, MariaDB counted through the index of
/// a state's jobs or of the queue's finished ones, thousands of rows per candidate (32 ms a
/// read, where the index of running jobs makes it 1 ms).
pub(crate) fn key_has_room(per_key: u32, flavor: Option<Flavor>) -> sea_orm::sea_query::SimpleExpr {
    let hint = match flavor {
        Some(Flavor::MariaDb | Flavor::MySql) => " FORCE INDEX (outsourced_jobs_running)",
        _ => "",
    };
    Expr::cust(format!(
        "(concurrency_key IS NULL OR (SELECT COUNT(*) FROM outsourced_jobs r{hint} \
         WHERE r.queue = outsourced_jobs.queue AND r.concurrency_key = outsourced_jobs.concurrency_key \
         AND r.state = 'running') < {per_key})"
    ))
}

/// Records the starts this reserve makes (`taken`, with their lease tokens): each in a place
/// of its queue, when it keeps places, and each rate-limited queue's clock moved on (its row
/// is locked).
pub(crate) async fn spend(
    db: &impl ConnectionTrait,
    flavor: Flavor,
    plan: &Plan,
    taken: &[job::Model],
    tokens: &[String],
    now: i64,
) -> Result<()> {
    for room in plan.rooms.iter().filter(|room| !room.places.is_empty()) {
        let started = taken
            .iter()
            .zip(tokens)
            .filter(|(row, _)| row.queue == room.queue);
        let held: Vec<(i32, i64, &str)> = room
            .places
            .iter()
            .zip(started)
            .map(|(&place, (row, token))| (place, row.id, token.as_str()))
            .collect();
        places::hold(db, flavor, &room.queue, &held).await?;
    }
    for room in &plan.rooms {
        if let Some(interval) = room.key_rate {
            let keys: Vec<&str> = taken
                .iter()
                .filter(|row| row.queue == room.queue)
                .filter_map(|row| row.concurrency_key.as_deref())
                .collect();
            if !keys.is_empty() {
                key_rates::started(db, &room.queue, &keys, interval, now).await?;
            }
        }
        let Some((interval, next)) = room.rate else {
            continue;
        };
        let starts = taken.iter().filter(|row| row.queue == room.queue).count() as i64;
        if starts == 0 {
            continue;
        }
        let next = next.max(now) + interval * starts;
        run_limits::Entity::update_many()
            .col_expr(run_limits::Column::RateNextAt, Expr::value(next))
            .filter(run_limits::Column::Queue.eq(room.queue.as_str()))
            .exec(db)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}

/// The limited queues this process has seen, so that the end of one of their jobs wakes the
/// reservers it may have held back (other processes hear it as every wake-up).
#[derive(Debug, Default)]
pub(crate) struct Limited(std::sync::RwLock<HashSet<String>>);

impl Limited {
    /// Remembers `queues` as limited.
    pub(crate) fn note(&self, queues: &[String]) {
        let known = |set: &HashSet<String>| queues.iter().all(|q| set.contains(q));
        if queues.is_empty() || self.0.read().is_ok_and(|set| known(&set)) {
            return;
        }
        if let Ok(mut set) = self.0.write() {
            set.extend(queues.iter().cloned());
        }
    }

    /// Whether `queue` is limited, as far as this process knows.
    pub(crate) fn contains(&self, queue: &str) -> bool {
        self.0.read().is_ok_and(|set| set.contains(queue))
    }
}
