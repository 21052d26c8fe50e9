//! Reads: one job, its history, listings and counts. They go to the reader pool.

use std::collections::HashMap;

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::backend::SqlBackend;
use crate::convert::{history_entry, job_record, ms};
use crate::entity::{dependency, history, job};
use crate::error::{corrupt, db_error};
use crate::lease::load_existing;
use outsourced_core::{
    CountFilter, HistoryEntry, JobFilter, JobId, JobRecord, JobState, Owner, Result, StateCount,
};

/// `state = 'failed'` with the state as a literal, not a parameter: the states are few and
/// very unequal (a million succeeded, a handful failed), and a cached generic plan for
/// `state = $1` walks the whole table for a rare one (PostgreSQL: 315 ms instead of 0.06 ms
/// for a page of failed jobs among a million). The text comes from `JobState`, never a caller.
pub(crate) fn state_is(state: JobState) -> sea_orm::sea_query::Expr {
    use sea_orm::sea_query::{Expr, ExprTrait};
    let literal = Expr::cust(format!("'{}'", state.as_str()));
    ExprTrait::eq(Expr::col(job::Column::State), literal)
}

/// The most jobs one listing returns.
const MAX_PAGE: u32 = 1000;

/// One job.
pub(crate) async fn job(backend: &SqlBackend, id: JobId) -> Result<JobRecord> {
    job_record(&load_existing(backend.reader(), id).await?)
}

/// A job's history, oldest first.
pub(crate) async fn history(backend: &SqlBackend, id: JobId) -> Result<Vec<HistoryEntry>> {
    load_existing(backend.reader(), id).await?;
    history::Entity::find()
        .filter(history::Column::JobId.eq(id.0))
        .order_by_asc(history::Column::Seq)
        .all(backend.reader())
        .await
        .map_err(db_error)?
        .into_iter()
        .map(history_entry)
        .collect()
}

/// Jobs matching the filter, newest first.
pub(crate) async fn jobs(backend: &SqlBackend, filter: JobFilter) -> Result<Vec<JobRecord>> {
    let mut select = job::Entity::find();
    if let Some(queue) = &filter.queue {
        select = select.filter(job::Column::Queue.eq(queue.as_str()));
    }
    if let Some(state) = filter.state {
        select = select.filter(state_is(state));
    }
    if let Some(class) = &filter.class {
        select = select.filter(job::Column::Class.eq(class.as_str()));
    }
    if let Some(prefix) = &filter.class_prefix {
        select = select.filter(class_begins_with(prefix));
    }
    if let Some(owner) = &filter.owner {
        select = owned_by(select, owner);
    }
    if let Some(by) = &filter.enqueued_by {
        select = select.filter(job::Column::EnqueuedBy.eq(by.to_string()));
    }
    if let Some(key) = &filter.unique_key {
        select = select.filter(job::Column::UniqueKey.eq(key.as_str()));
    }
    if let Some(key) = &filter.concurrency_key {
        select = select.filter(job::Column::ConcurrencyKey.eq(key.as_str()));
    }
    if let Some(parent) = filter.parent {
        select = select.filter(job::Column::ParentId.eq(parent.0));
    }
    if let Some(dependency) = filter.dependants_of {
        let dependants = sea_orm::sea_query::Query::select()
            .column(dependency::Column::DependantId)
            .from(dependency::Entity)
            .and_where(dependency::Column::DependencyId.eq(dependency.0))
            .to_owned();
        select = select.filter(job::Column::Id.in_subquery(dependants));
    }
    if let Some(batch) = filter.batch {
        select = select.filter(job::Column::BatchId.eq(batch.0));
    }
    if let Some(since) = filter.created_since {
        select = select.filter(job::Column::CreatedAt.gte(ms(since)));
    }
    if let Some(until) = filter.created_until {
        select = select.filter(job::Column::CreatedAt.lt(ms(until)));
    }
    if let Some(before) = filter.before {
        select = select.filter(job::Column::Id.lt(before.0));
    }
    // Paging back reads the jobs just newer than the cursor, oldest first, then turns them
    // round: the page still lists newest first.
    let select = match filter.after {
        Some(after) => select
            .filter(job::Column::Id.gt(after.0))
            .order_by_asc(job::Column::Id),
        None => select.order_by_desc(job::Column::Id),
    };
    let mut rows = select
        .limit(u64::from(filter.limit.clamp(1, MAX_PAGE)))
        .all(backend.reader())
        .await
        .map_err(db_error)?;
    if filter.after.is_some() {
        rows.reverse();
    }
    rows.iter().map(job_record).collect()
}

/// The jobs whose class begins with `prefix`, compared as the class filter compares (no
/// wildcards, and the database's own sense of case, unlike `LIKE`, which ignores ASCII case on
/// SQLite).
fn class_begins_with(prefix: &str) -> sea_orm::sea_query::SimpleExpr {
    use sea_orm::sea_query::{Alias, Expr, ExprTrait, Func};
    // An `integer` on PostgreSQL, whose `substr` takes no `bigint`.
    let chars = i32::try_from(prefix.chars().count()).unwrap_or(i32::MAX);
    let head = Func::cust(Alias::new("SUBSTR"))
        .arg(Expr::col(job::Column::Class))
        .arg(1)
        .arg(chars);
    Expr::expr(head).eq(prefix)
}

/// Job counts by queue and state: kept ones (`counts.rs`) unless only some owner's or
/// producer's jobs are counted.
pub(crate) async fn counts(backend: &SqlBackend, filter: CountFilter) -> Result<Vec<StateCount>> {
    if filter.owner.is_none() && filter.enqueued_by.is_none() {
        return crate::counts::read(backend, filter.queue.as_deref()).await;
    }
    counted(backend, filter).await
}

/// Job counts by queue and state, counted in the jobs table.
pub(crate) async fn counted(backend: &SqlBackend, filter: CountFilter) -> Result<Vec<StateCount>> {
    let mut select = job::Entity::find();
    if let Some(queue) = &filter.queue {
        select = select.filter(job::Column::Queue.eq(queue.as_str()));
    }
    if let Some(owner) = &filter.owner {
        select = owned_by(select, owner);
    }
    if let Some(by) = &filter.enqueued_by {
        select = select.filter(job::Column::EnqueuedBy.eq(by.to_string()));
    }
    let groups: Vec<(String, String, i64)> = select
        .select_only()
        .column(job::Column::Queue)
        .column(job::Column::State)
        .column_as(job::Column::Id.count(), "count")
        .group_by(job::Column::Queue)
        .group_by(job::Column::State)
        .order_by_asc(job::Column::Queue)
        .into_tuple()
        .all(backend.reader())
        .await
        .map_err(db_error)?;
    groups
        .into_iter()
        .map(|(queue, state, count)| {
            let state: JobState = state
                .parse()
                .map_err(|_| corrupt(format!("state = {state:?}")))?;
            Ok(StateCount {
                queue,
                state,
                count: count.max(0) as u64,
            })
        })
        .collect()
}

fn owned_by(select: sea_orm::Select<job::Entity>, owner: &Owner) -> sea_orm::Select<job::Entity> {
    select
        .filter(job::Column::OwnerType.eq(owner.kind.as_str()))
        .filter(job::Column::OwnerId.eq(owner.id.as_str()))
}

/// Ids per read of [`SqlBackend::queues_of`], well under every database's limit on bound
/// parameters.
const IDS_PER_READ: usize = 1000;

impl SqlBackend {
    /// The queue of each of `ids` that exists, in one read per thousand: what the server
    /// checks a worker's batch of reports against (one job read per lease was a round trip
    /// per job).
    pub async fn queues_of(&self, ids: &[JobId]) -> Result<HashMap<JobId, String>> {
        let mut queues = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(IDS_PER_READ) {
            let rows: Vec<(i64, String)> = job::Entity::find()
                .select_only()
                .column(job::Column::Id)
                .column(job::Column::Queue)
                .filter(job::Column::Id.is_in(chunk.iter().map(|id| id.0)))
                .into_tuple()
                .all(self.reader())
                .await
                .map_err(db_error)?;
            queues.extend(rows.into_iter().map(|(id, queue)| (JobId(id), queue)));
        }
        Ok(queues)
    }
}
