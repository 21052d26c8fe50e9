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

use std::collections::HashMap;
use std::time::Duration;

use sea_orm::sea_query::{PostgresQueryBuilder, SelectStatement};
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::error::db_error;
use crate::key_locks;
use crate::observe::Events;
use crate::pg_batch::{self, Leased};
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
        let picked = picked(limit.saturating_mul(crate::limits::PER_KEY_READ));
        let keyed = &keyed;
        async move {
            let locked = lock(db, picked, keyed.queue).await?;
            let running = running(db, keyed.queue, &locked).await?;
            let chosen = fitting(locked, &running, keyed.per_key, limit);
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
    let expired = crate::limits::expire_lapsed(db, true, keyed.queue, by, clock.now()).await?;
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

/// The second statement: how many jobs of each of the candidates' keys run in `queue` now.
async fn running(
    db: &impl ConnectionTrait,
    queue: &str,
    locked: &[Candidate],
) -> Result<HashMap<String, u32>> {
    let keys: Vec<&str> = locked
        .iter()
        .filter_map(|(_, key)| key.as_deref())
        .collect();
    if keys.is_empty() {
        return Ok(HashMap::new());
    }
    // The state a literal, so that the plan reads the index of running jobs.
    let sql = "SELECT concurrency_key AS key, count(*) AS n FROM outsourced_jobs \
         WHERE queue = $1 AND state = 'running' \
           AND concurrency_key = ANY (ARRAY(SELECT json_array_elements_text($2::json))) \
         GROUP BY concurrency_key";
    let values = [queue.into(), serde_json::json!(keys).to_string().into()];
    let statement = Statement::from_sql_and_values(DbBackend::Postgres, sql, values);
    let rows = db.query_all_raw(statement).await.map_err(db_error)?;
    rows.iter()
        .map(|row| {
            let key = row.try_get::<String>("", "key").map_err(db_error)?;
            let n = row.try_get::<i64>("", "n").map_err(db_error)?;
            Ok((key, n.clamp(0, i64::from(u32::MAX)) as u32))
        })
        .collect()
}

/// The first `limit` candidates, in hand-out order, that keep each key within `per_key`
/// running jobs, counting those that run now and those taken before them.
fn fitting(
    locked: Vec<Candidate>,
    running: &HashMap<String, u32>,
    per_key: u32,
    limit: u32,
) -> Vec<i64> {
    let mut taken: HashMap<String, u32> = HashMap::new();
    let mut chosen = Vec::new();
    for (id, key) in locked {
        if chosen.len() == limit as usize {
            break;
        }
        if let Some(key) = key {
            let before = running.get(&key).copied().unwrap_or(0);
            let taken = taken.entry(key).or_default();
            if before + *taken >= per_key {
                continue;
            }
            *taken += 1;
        }
        chosen.push(id);
    }
    chosen
}
