//! PostgreSQL's claim of a queue whose one run limit is per key (`max_running_per_key`), for a
//! reserve of that queue alone: three statements where the generic path makes five.
//!
//! The first reads the candidates' ids and keys in hand-out order (`FOR UPDATE SKIP LOCKED`,
//! leaving out keys that run at their limit as far as its snapshot shows), all of them locked
//! before it tries the lock of each one's key (`key_locks`), and keeps those whose key it could
//! lock: a read that skipped candidates by their keys' locks would scan further for as many.
//! The second counts the running jobs of those keys, in a snapshot taken after the locks, so it
//! sees every start committed before; every start of a key is made under the key's lock, so
//! none commits between the count and this transaction's end. The clock is read after the count
//! (every end the count saw is dated before the starts), and the third statement leases, in
//! hand-out order, the candidates that keep each key within its limit. A claim that leases
//! fewer than it asked for reclaims the queue's lapsed leases (a lease that ran out gives its
//! place back at once) and, if it reclaimed any, claims once more.

use std::time::Duration;

use sea_orm::sea_query::{PostgresQueryBuilder, SelectStatement};
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::error::db_error;
use crate::observe::Events;
use crate::pg_batch::{self, Leased};
use crate::{key_locks, limits};
use outsourced_core::{Clock, Result, WorkerInstance};

/// A candidate of the first statement: its id and key, in hand-out order.
type Candidate = (i64, Option<String>);

/// What a claim within keys leased (if anything), with the events of the lapsed leases it
/// reclaimed on the way.
pub(crate) struct Claimed {
    pub(crate) leased: Option<Leased>,
    pub(crate) expired: Events,
}

/// The queue a claim takes from and its limit: at most `per_key` running jobs of one key.
pub(crate) struct Keyed<'a> {
    pub(crate) queue: &'a str,
    pub(crate) per_key: u32,
}

/// A reserve's claim from `keyed.queue` alone: at most `limit` jobs, read by `picked` (called
/// with how many to read), leased to `by` for `lease` and dated by `clock`.
pub(crate) async fn claim(
    db: &impl ConnectionTrait,
    picked: impl Fn(u32) -> SelectStatement,
    keyed: Keyed<'_>,
    limit: u32,
    by: &WorkerInstance,
    clock: &dyn Clock,
    lease: Duration,
) -> Result<Claimed> {
    let once = |limit: u32| {
        let picked = picked(limit.saturating_mul(limits::PER_KEY_READ));
        let keyed = &keyed;
        async move {
            let locked = lock(db, picked, keyed.queue).await?;
            let keys = limits::keys_of(&locked, |(_, key)| key.as_deref());
            let running = limits::running_per_key(db, keyed.queue, keys).await?;
            let within = limits::Within {
                running: &running,
                per_key: Some(keyed.per_key),
                rated: false,
                take: limit,
            };
            let chosen: Vec<i64> = within
                .keep(locked, |(_, key)| key.clone())
                .into_iter()
                .map(|(id, _)| id)
                .collect();
            if chosen.is_empty() {
                return Ok(None);
            }
            // Read after the count: every end it saw is dated before these starts.
            let now = clock.now();
            let tokens: Vec<String> = chosen.iter().map(|_| crate::lease::new_token()).collect();
            let jobs: Vec<(i64, &str)> = chosen
                .into_iter()
                .zip(tokens.iter().map(String::as_str))
                .collect();
            pg_batch::lease_locked(db, &jobs, by, now, lease).await
        }
    };
    let mut leased = once(limit).await?;
    let got = leased.as_ref().map_or(0, |l| l.reserved.len() as u32);
    if got >= limit {
        return Ok(Claimed {
            leased,
            expired: Events::default(),
        });
    }
    let expired = limits::expire_lapsed(db, true, keyed.queue, by, clock.now()).await?;
    if !expired.is_empty()
        && let Some(more) = once(limit - got).await?
    {
        leased = Some(merged(leased, more));
    }
    Ok(Claimed { leased, expired })
}

/// Two batches of one claim as one, in hand-out order.
fn merged(first: Option<Leased>, second: Leased) -> Leased {
    let Some(mut first) = first else {
        return second;
    };
    first.reserved.extend(second.reserved);
    first
        .reserved
        .sort_unstable_by_key(|r| (r.job.priority, r.job.run_at, r.job.id));
    first.events.append(second.events);
    first
}

/// The first statement: the candidates `picked` reads (locked), those without a key and those
/// whose key this transaction could lock, in hand-out order.
async fn lock(
    db: &impl ConnectionTrait,
    picked: SelectStatement,
    queue: &str,
) -> Result<Vec<Candidate>> {
    let (select, values) = picked.build(PostgresQueryBuilder);
    let mut values = values.0;
    values.push(queue.into());
    // Every candidate is locked first (`MATERIALIZED`), then the keys are tried in order.
    let sql = format!(
        "WITH c AS MATERIALIZED (SELECT id, concurrency_key, row_number() OVER () AS n \
           FROM ({select}) AS p) \
         SELECT id, concurrency_key FROM c \
         WHERE concurrency_key IS NULL OR {} ORDER BY n",
        key_locks::try_lock(&format!("${}", values.len()), "concurrency_key")
    );
    let statement = Statement::from_sql_and_values(DbBackend::Postgres, sql, values);
    let rows = db.query_all_raw(statement).await.map_err(db_error)?;
    rows.iter()
        .map(|row| {
            let id = row.try_get::<i64>("", "id").map_err(db_error)?;
            let key = row.try_get("", "concurrency_key").map_err(db_error)?;
            Ok((id, key))
        })
        .collect()
}
