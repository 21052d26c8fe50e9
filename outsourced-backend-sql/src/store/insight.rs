//! Figures the dashboard shows beside the `Backend` reads. Each is an indexed query that stops
//! after a cap, so that a page costs the same with a thousand jobs or ten million: per-state
//! counts by `(queue, state)`, recent finishes by `(queue, finished_at)`, and the leases each
//! worker holds by `lease_expires_at` (only leased jobs have one).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, Query, SelectStatement};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, QueryTrait,
};

use super::Directory;
use crate::convert::ms;
use crate::entity::{history, job};
use crate::error::db_error;
use crate::read::state_is;
use crate::tally::Tally;
use outsourced_core::{HistoryEntry, JobId, JobState, Result};

/// A count that stopped at a cap: `more` when there are more than `count`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Capped {
    /// The rows counted (at most the cap).
    pub count: u64,
    /// Whether there are more than the cap.
    pub more: bool,
}

impl std::fmt::Display for Capped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}", self.count, if self.more { "+" } else { "" })
    }
}

impl Directory {
    /// Counts the rows `select` finds, reading at most `cap + 1` of them.
    async fn count_capped(&self, select: SelectStatement, cap: u64) -> Result<Capped> {
        let mut limited = select;
        limited.limit(cap + 1);
        let count = Query::select()
            .expr(Expr::cust("COUNT(*)"))
            .from_subquery(limited, Alias::new("capped"))
            .to_owned();
        let statement = self.backend().flavor().backend().build(&count);
        let row = self.backend().reader().query_one_raw(statement).await;
        let found: i64 = row
            .map_err(db_error)?
            .and_then(|row| row.try_get_by_index(0).ok())
            .unwrap_or(0);
        let found = u64::try_from(found).unwrap_or(0);
        Ok(Capped {
            count: found.min(cap),
            more: found > cap,
        })
    }

    /// The jobs of `queue` in each state, each count stopping at `cap`.
    pub async fn state_counts(&self, queue: &str, cap: u64) -> Result<BTreeMap<JobState, Capped>> {
        let mut counts = BTreeMap::new();
        for state in JobState::ALL {
            let select = job::Entity::find()
                .select_only()
                .column(job::Column::Id)
                .filter(job::Column::Queue.eq(queue))
                .filter(state_is(state))
                .into_query();
            counts.insert(state, self.count_capped(select, cap).await?);
        }
        Ok(counts)
    }

    /// The jobs of `queue` that ended in `state` (succeeded or failed) at or after `since`,
    /// stopping at `cap`.
    pub async fn finished_since(
        &self,
        queue: &str,
        state: JobState,
        since: DateTime<Utc>,
        cap: u64,
    ) -> Result<Capped> {
        let select = job::Entity::find()
            .select_only()
            .column(job::Column::Id)
            .filter(job::Column::Queue.eq(queue))
            .filter(job::Column::FinishedAt.gte(ms(since)))
            .filter(state_is(state))
            .into_query();
        self.count_capped(select, cap).await
    }

    /// The job tallies of every minute from `from` up to `to`, of `queue` or of every queue
    /// together, minute by minute (epoch ms of each minute's start; minutes with nothing to
    /// tell are left out). As of each process's last flush: see [`crate::tally`].
    pub async fn minutes(
        &self,
        queue: Option<&str>,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(i64, Tally)>> {
        crate::tally::minutes(self.backend(), queue, ms(from), ms(to)).await
    }

    /// The last `limit` steps of job `id`'s history before step `before` (all when `None`),
    /// in order, through the history's key: a page of a long history (a repeating job's)
    /// costs the same as a short one's.
    pub async fn history_page(
        &self,
        id: JobId,
        before: Option<u32>,
        limit: u64,
    ) -> Result<Vec<HistoryEntry>> {
        let mut select = history::Entity::find().filter(history::Column::JobId.eq(id.0));
        if let Some(before) = before {
            select = select.filter(history::Column::Seq.lt(i64::from(before)));
        }
        let mut rows = select
            .order_by_desc(history::Column::Seq)
            .limit(limit)
            .all(self.backend().reader())
            .await
            .map_err(db_error)?;
        rows.reverse();
        rows.into_iter()
            .map(crate::convert::history_entry)
            .collect()
    }

    /// The concurrency keys of `queue` with running jobs, the most running first, at most
    /// `limit` of them, with how many run under each (through the index of running jobs by
    /// key: as many rows as run now).
    pub async fn running_per_key(&self, queue: &str, limit: u64) -> Result<Vec<(String, u64)>> {
        let groups: Vec<(Option<String>, i64)> = job::Entity::find()
            .filter(job::Column::Queue.eq(queue))
            .filter(state_is(JobState::Running))
            .filter(job::Column::ConcurrencyKey.is_not_null())
            .select_only()
            .column(job::Column::ConcurrencyKey)
            .column_as(job::Column::Id.count(), "running")
            .group_by(job::Column::ConcurrencyKey)
            .into_tuple()
            .all(self.backend().reader())
            .await
            .map_err(db_error)?;
        let mut keys: Vec<(String, u64)> = groups
            .into_iter()
            .filter_map(|(key, n)| Some((key?, u64::try_from(n).unwrap_or(0))))
            .collect();
        keys.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        keys.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(keys)
    }

    /// Each queue's job tallies since the start.
    pub async fn totals(&self) -> Result<Vec<(String, Tally)>> {
        crate::tally::totals(self.backend()).await
    }

    /// How many leases each worker (by name) holds now.
    pub async fn leases_by_worker(&self) -> Result<BTreeMap<String, u64>> {
        let groups: Vec<(Option<String>, i64)> = job::Entity::find()
            .filter(job::Column::LeaseExpiresAt.is_not_null())
            .select_only()
            .column(job::Column::LeaseWorker)
            .column_as(job::Column::Id.count(), "count")
            .group_by(job::Column::LeaseWorker)
            .into_tuple()
            .all(self.backend().reader())
            .await
            .map_err(db_error)?;
        Ok(groups
            .into_iter()
            .filter_map(|(worker, n)| Some((worker?, u64::try_from(n).unwrap_or(0))))
            .collect())
    }

    /// The jobs leased now, the lease that runs out first first, at most `limit` of them
    /// (through the index of lease expiries: only leased jobs have one).
    pub async fn leased_jobs(&self, limit: u64) -> Result<Vec<LeasedJob>> {
        let rows: Vec<LeasedRow> = job::Entity::find()
            .filter(job::Column::LeaseExpiresAt.is_not_null())
            .select_only()
            .columns([
                job::Column::Id,
                job::Column::Class,
                job::Column::Queue,
                job::Column::LeaseWorker,
                job::Column::LeaseInstance,
                job::Column::StartedAt,
            ])
            .order_by_asc(job::Column::LeaseExpiresAt)
            .limit(limit)
            .into_tuple()
            .all(self.backend().reader())
            .await
            .map_err(db_error)?;
        Ok(rows
            .into_iter()
            .map(|(id, class, queue, worker, instance, started)| LeasedJob {
                id,
                class,
                queue,
                worker: worker.unwrap_or_default(),
                instance: instance.unwrap_or_default(),
                started_at: started.map(crate::convert::time),
            })
            .collect())
    }
}

/// A leased job's columns, as read.
type LeasedRow = (
    i64,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<i64>,
);

/// A job in a worker instance's hands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeasedJob {
    /// The job's id.
    pub id: i64,
    /// Its class.
    pub class: String,
    /// Its queue.
    pub queue: String,
    /// The worker that holds it.
    pub worker: String,
    /// The worker's instance (process) that holds it.
    pub instance: String,
    /// When its attempt started.
    pub started_at: Option<DateTime<Utc>>,
}
