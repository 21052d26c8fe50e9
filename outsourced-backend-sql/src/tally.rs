//! Tallies of what happened to jobs, per queue and minute and per queue since the start, kept
//! in the database (`outsourced_minutes`, `outsourced_totals`) so that every process (servers,
//! workers next to the database, the CLI, a host application) adds to the same figures and
//! they survive restarts.
//!
//! Each process counts in memory what its committed transactions did (the observer's events,
//! told after the commit) and adds it to the database about once a second, in one short
//! transaction of its own, never in the transactions of jobs: a counter row that every
//! completion updated would make the completions of a queue wait for each other's commits.
//! The price, said in docs/decisions.md: a process killed outright loses its last second of
//! tallies (never a job); a process that ends cleanly adds them first
//! ([`SqlBackend::flush_tallies`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use sea_orm::{ConnectionTrait, Value};

use crate::backend::{Inner, SqlBackend};
use crate::dialect::Flavor;
use crate::error::db_error;
use outsourced_core::{Outcome, Result};

/// The upper bounds of the buckets of how long a start waited past its run time, in
/// milliseconds; the last bucket holds the longer waits.
pub const WAIT_BOUNDS_MS: [u64; 11] = [5, 10, 25, 50, 100, 250, 500, 1_000, 5_000, 30_000, 300_000];

/// How many wait buckets a tally has.
pub const WAIT_BUCKETS: usize = WAIT_BOUNDS_MS.len() + 1;

/// What happened to the jobs of a queue in some time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Jobs stored.
    pub enqueued: u64,
    /// Attempts started.
    pub started: u64,
    /// Attempts that succeeded.
    pub succeeded: u64,
    /// Attempts that failed for good.
    pub failed: u64,
    /// Attempts that failed and will be retried.
    pub retried: u64,
    /// Attempts whose lease expired.
    pub reclaimed: u64,
    /// Attempts given back, or ended by a cancel.
    pub released: u64,
    /// Starts by how long they waited past their run time (see [`WAIT_BOUNDS_MS`]).
    pub waits: [u64; WAIT_BUCKETS],
}

/// The columns of a tally, in the order of [`Tally::counters`].
const COLUMNS: [&str; 7 + WAIT_BUCKETS] = [
    "enqueued",
    "started",
    "succeeded",
    "failed",
    "retried",
    "reclaimed",
    "released",
    "w0",
    "w1",
    "w2",
    "w3",
    "w4",
    "w5",
    "w6",
    "w7",
    "w8",
    "w9",
    "w10",
    "w11",
];

impl Tally {
    fn counters(&self) -> [u64; COLUMNS.len()] {
        let mut all = [0; COLUMNS.len()];
        let firsts = [
            self.enqueued,
            self.started,
            self.succeeded,
            self.failed,
            self.retried,
            self.reclaimed,
            self.released,
        ];
        all[..7].copy_from_slice(&firsts);
        all[7..].copy_from_slice(&self.waits);
        all
    }

    fn from_counters(all: [u64; COLUMNS.len()]) -> Tally {
        let mut waits = [0; WAIT_BUCKETS];
        waits.copy_from_slice(&all[7..]);
        Tally {
            enqueued: all[0],
            started: all[1],
            succeeded: all[2],
            failed: all[3],
            retried: all[4],
            reclaimed: all[5],
            released: all[6],
            waits,
        }
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &Tally) {
        let sum: Vec<u64> = (self.counters().iter())
            .zip(other.counters())
            .map(|(a, b)| a + b)
            .collect();
        *self = Tally::from_counters(sum.try_into().expect("as many counters"));
    }

    /// Counts a start that waited `waited`.
    pub(crate) fn start(&mut self, waited: Duration) {
        self.started += 1;
        let ms = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX);
        let bucket = WAIT_BOUNDS_MS.iter().position(|&bound| ms <= bound);
        self.waits[bucket.unwrap_or(WAIT_BUCKETS - 1)] += 1;
    }

    /// Counts the end of an attempt.
    pub(crate) fn end(&mut self, outcome: Outcome) {
        let counter = match outcome {
            Outcome::Completed => &mut self.succeeded,
            Outcome::Failed => &mut self.failed,
            Outcome::RetryScheduled => &mut self.retried,
            Outcome::Reclaimed => &mut self.reclaimed,
            Outcome::Released => &mut self.released,
        };
        *counter += 1;
    }

    /// The bucket bound under which at least `share` (0 to 1) of the starts waited, in
    /// milliseconds; `u64::MAX` when that is past the last bound, `None` without starts.
    pub fn wait_quantile(&self, share: f64) -> Option<u64> {
        let total: u64 = self.waits.iter().sum();
        if total == 0 {
            return None;
        }
        let wanted = (share * total as f64).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (bucket, count) in self.waits.iter().enumerate() {
            seen += count;
            if seen >= wanted {
                return Some(WAIT_BOUNDS_MS.get(bucket).copied().unwrap_or(u64::MAX));
            }
        }
        Some(u64::MAX)
    }
}

/// This process's tallies not yet added to the database, by queue and minute (epoch ms of its
/// start).
#[derive(Debug, Default)]
pub(crate) struct Pending(Mutex<BTreeMap<(String, i64), Tally>>);

impl Pending {
    /// Counting into the tallies of the minute of `at` (epoch ms).
    pub(crate) fn at(&self, at: i64) -> Counting<'_> {
        Counting {
            pending: self.0.lock().unwrap_or_else(|e| e.into_inner()),
            minute: at - at.rem_euclid(60_000),
        }
    }

    fn take(&self) -> BTreeMap<(String, i64), Tally> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Puts back tallies a failed flush took, to add them with the next.
    fn put_back(&self, taken: BTreeMap<(String, i64), Tally>) {
        let mut pending = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for (key, tally) in taken {
            pending.entry(key).or_default().add(&tally);
        }
    }
}

/// The tallies of one minute, locked while a transaction's events are counted.
pub(crate) struct Counting<'a> {
    pending: MutexGuard<'a, BTreeMap<(String, i64), Tally>>,
    minute: i64,
}

impl Counting<'_> {
    /// The tally of `queue`.
    pub(crate) fn of(&mut self, queue: &str) -> &mut Tally {
        let key = (queue.to_owned(), self.minute);
        self.pending.entry(key).or_default()
    }
}

/// How long the tallies of each minute are kept (the charts reach back a day).
pub const MINUTES_KEPT: chrono::Duration = chrono::Duration::days(2);

/// Deletes the tallies of the minutes that began before `before`.
pub(crate) async fn forget_minutes_before(
    backend: &SqlBackend,
    before: chrono::DateTime<chrono::Utc>,
) -> Result<()> {
    use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
    let delete = Query::delete()
        .from_table(Alias::new("outsourced_minutes"))
        .and_where(Expr::col(Alias::new("minute")).lt(crate::convert::ms(before)))
        .to_owned();
    let statement = backend.flavor().backend().build(&delete);
    backend
        .connection()
        .execute_raw(statement)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// How often each process adds its tallies to the database.
const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// Adds the tallies of the backend behind `inner` every [`FLUSH_EVERY`], and folds the
/// ledger of job counts (`counts.rs`), until the backend is dropped.
pub(crate) async fn flush_while_open(inner: Weak<Inner>) {
    let mut tick = tokio::time::interval(FLUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let backend = SqlBackend { inner };
        let flushed = backend.flush_tallies().await;
        // The ledger of counts by state, folded by every process that writes it.
        let folded = crate::counts::fold(&backend).await;
        // Dropped by everyone else while this ran: the process is closing, and its runtime
        // cancels the database's tasks under this one. Nothing to report or try again.
        if Arc::strong_count(&backend.inner) == 1 {
            return;
        }
        if let Err(error) = flushed {
            tracing::warn!(%error, "adding this process's job tallies to the database failed; trying again");
        }
        if let Err(error) = folded {
            tracing::warn!(%error, "folding the job counts' ledger failed; trying again");
        }
    }
}

impl SqlBackend {
    /// Adds what this process tallied (jobs enqueued, started and ended, per queue and minute)
    /// to the database's tallies, which the dashboard's charts and the metrics read. Done
    /// every second on its own; call it before a process that enqueued or ran jobs exits, so
    /// that its last second counts too. On failure the tallies are kept for the next try.
    pub async fn flush_tallies(&self) -> Result<()> {
        let taken = self.inner.tallies.take();
        if taken.is_empty() {
            return Ok(());
        }
        let mut totals = BTreeMap::<&str, Tally>::new();
        for ((queue, _), tally) in &taken {
            totals.entry(queue).or_default().add(tally);
        }
        let flavor = self.flavor();
        let written = self
            .write(|txn| {
                let (taken, totals) = (&taken, &totals);
                async move {
                    let result = add_all(&txn, flavor, taken, totals).await;
                    (txn, result)
                }
            })
            .await;
        if written.is_err() {
            self.inner.tallies.put_back(taken);
        }
        written
    }
}

async fn add_all(
    db: &impl ConnectionTrait,
    flavor: Flavor,
    minutes: &BTreeMap<(String, i64), Tally>,
    totals: &BTreeMap<&str, Tally>,
) -> Result<()> {
    for ((queue, minute), tally) in minutes {
        let key = [
            ("queue", Value::from(queue.as_str())),
            ("minute", (*minute).into()),
        ];
        add(db, flavor, "outsourced_minutes", &key, tally).await?;
    }
    for (queue, tally) in totals {
        let key = [("queue", Value::from(*queue))];
        add(db, flavor, "outsourced_totals", &key, tally).await?;
    }
    Ok(())
}

/// Adds `tally` to the row of `table` with `key`, creating it at zero first if need be.
async fn add(
    db: &impl ConnectionTrait,
    flavor: Flavor,
    table: &str,
    key: &[(&str, Value)],
    tally: &Tally,
) -> Result<()> {
    let counters: Vec<(&str, i64)> = (COLUMNS.iter().copied())
        .zip(
            tally
                .counters()
                .map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
        )
        .collect();
    crate::dialect::add_to_row(db, flavor, table, key, &counters).await
}

/// The tallies of every minute from `from` up to `to` (epoch ms), of `queue` or of every
/// queue together, minute by minute (minutes without a tally are left out).
pub(crate) async fn minutes(
    backend: &SqlBackend,
    queue: Option<&str>,
    from: i64,
    to: i64,
) -> Result<Vec<(i64, Tally)>> {
    use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
    let mut select = Query::select();
    select
        .column(Alias::new("minute"))
        .from(Alias::new("outsourced_minutes"))
        .and_where(Expr::col(Alias::new("minute")).gte(from))
        .and_where(Expr::col(Alias::new("minute")).lt(to))
        .group_by_col(Alias::new("minute"))
        .order_by(Alias::new("minute"), sea_orm::sea_query::Order::Asc);
    if let Some(queue) = queue {
        select.and_where(Expr::col(Alias::new("queue")).eq(queue));
    }
    summed(backend, select).await
}

/// Each queue's tallies since the start, by queue name.
pub(crate) async fn totals(backend: &SqlBackend) -> Result<Vec<(String, Tally)>> {
    use sea_orm::sea_query::{Alias, Query};
    let mut select = Query::select();
    select
        .column(Alias::new("queue"))
        .from(Alias::new("outsourced_totals"))
        .group_by_col(Alias::new("queue"))
        .order_by(Alias::new("queue"), sea_orm::sea_query::Order::Asc);
    summed(backend, select).await
}

/// Runs `select` (one key column, grouped) with the sum of every counter beside its key.
async fn summed<K: sea_orm::TryGetable>(
    backend: &SqlBackend,
    mut select: sea_orm::sea_query::SelectStatement,
) -> Result<Vec<(K, Tally)>> {
    use sea_orm::sea_query::Expr;
    for column in COLUMNS {
        // As a 64-bit integer everywhere (PostgreSQL's SUM of a bigint is a numeric).
        let sum = match backend.flavor() {
            Flavor::MySql | Flavor::MariaDb => format!("CAST(SUM({column}) AS SIGNED)"),
            _ => format!("CAST(SUM({column}) AS BIGINT)"),
        };
        select.expr(Expr::cust(sum));
    }
    let statement = backend.flavor().backend().build(&select);
    let rows = backend
        .reader()
        .query_all_raw(statement)
        .await
        .map_err(db_error)?;
    let mut read = Vec::with_capacity(rows.len());
    for row in rows {
        let key: K = row.try_get_by_index(0).map_err(db_error)?;
        let mut counters = [0u64; COLUMNS.len()];
        for (i, counter) in counters.iter_mut().enumerate() {
            let value: i64 = row.try_get_by_index(i + 1).map_err(db_error)?;
            *counter = u64::try_from(value).unwrap_or(0);
        }
        read.push((key, Tally::from_counters(counters)));
    }
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_fall_in_their_buckets_and_quantiles_read_them_back() {
        let mut tally = Tally::default();
        for ms in [1, 3, 7, 7, 40, 2_000, 600_000] {
            tally.start(Duration::from_millis(ms));
        }
        assert_eq!(tally.started, 7);
        assert_eq!(tally.waits[0], 2, "1 and 3 ms");
        assert_eq!(tally.waits[1], 2, "7 ms twice");
        assert_eq!(tally.waits[WAIT_BUCKETS - 1], 1, "ten minutes");
        assert_eq!(tally.wait_quantile(0.5), Some(10));
        assert_eq!(tally.wait_quantile(0.95), Some(u64::MAX));
        assert_eq!(Tally::default().wait_quantile(0.5), None);
    }

    #[test]
    fn tallies_add_up() {
        let mut a = Tally::default();
        a.end(Outcome::Completed);
        a.start(Duration::ZERO);
        let mut b = a;
        b.end(Outcome::Failed);
        b.add(&a);
        assert_eq!((b.succeeded, b.failed, b.started, b.waits[0]), (2, 1, 2, 2));
    }
}
