//! Queue administration: create, change, delete and list, with per-state counts.

use std::collections::BTreeMap;

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::backend::SqlBackend;
use crate::dialect::{Flavor, insert_if_absent};
use crate::entity::{access, queue, run_limits};
use crate::error::db_error;
use crate::limits;
use crate::read;
use crate::slots;
use outsourced_core::{
    CountFilter, Error, QueueInfo, QueueLimit, QueueUpdate, Result, Retention, RunLimits,
    StateCounts, check_queue_name,
};

/// Creates a queue; an existing name is `Conflict`.
pub(crate) async fn create(
    backend: &SqlBackend,
    name: &str,
    limit: QueueLimit,
) -> Result<QueueInfo> {
    check_queue_name(name)?;
    let row = slots::queue_row(name, limit.max().map(clamp), backend.now());
    let inserted = insert_if_absent(backend.connection(), backend.flavor(), row).await?;
    if !inserted {
        return Err(Error::conflict(format!("queue {name:?} already exists")));
    }
    info(backend, name).await
}

/// Changes a queue's limit or paused flag.
pub(crate) async fn update(
    backend: &SqlBackend,
    name: &str,
    update: QueueUpdate,
) -> Result<QueueInfo> {
    // The new values only: a limit of 0 is refused whatever the others are.
    update.limits(RunLimits::default()).check()?;
    let flavor = backend.flavor();
    backend
        .write(|txn| async move {
            let result = update_in(&txn, flavor, name, update).await;
            (txn, result)
        })
        .await?;
    let info = info(backend, name).await?;
    // Resumed, or limits loosened or lifted: jobs held back may start now.
    if update.paused == Some(false) || update.changes_limits() {
        backend.wake().await;
    }
    Ok(info)
}

/// Changes a queue's row and its run limits, in the caller's transaction.
async fn update_in(
    db: &impl sea_orm::ConnectionTrait,
    flavor: Flavor,
    name: &str,
    update: QueueUpdate,
) -> Result<()> {
    if queue::Entity::find_by_id(name)
        .one(db)
        .await
        .map_err(db_error)?
        .is_none()
    {
        return Err(Error::UnknownQueue {
            queue: name.to_owned(),
        });
    }
    let mut query = queue::Entity::update_many().filter(queue::Column::Name.eq(name));
    let mut changed = false;
    if let Some(limit) = update.limit {
        query = query.col_expr(queue::Column::MaxLive, Expr::value(limit.max().map(clamp)));
        changed = true;
    }
    if let Some(paused) = update.paused {
        query = query.col_expr(queue::Column::Paused, Expr::value(paused));
        changed = true;
    }
    if let Some(retention) = update.retention {
        let ms = retention.as_millis().map(clamp);
        query = query.col_expr(queue::Column::RetentionMs, Expr::value(ms));
        changed = true;
    }
    if changed {
        query.exec(db).await.map_err(db_error)?;
    }
    limits::write(db, flavor, name, &update).await
}

/// Deletes a queue without live jobs, and every hire and grant of it.
pub(crate) async fn delete(backend: &SqlBackend, name: &str) -> Result<()> {
    if backend
        .write(|txn| async move {
            let result = delete_in(&txn, name).await;
            (txn, result)
        })
        .await?
    {
        return Ok(());
    }
    let live = info(backend, name).await?.counts.live();
    let jobs = if live == 1 { "job" } else { "jobs" };
    Err(Error::conflict(format!(
        "queue {name:?} still holds {live} live {jobs}"
    )))
}

/// Deletes the queue if it has no live jobs, with its hires and grants; false otherwise.
async fn delete_in(db: &impl sea_orm::ConnectionTrait, name: &str) -> Result<bool> {
    // The count is exact only once the freed slots are folded in; a job whose end has not
    // committed yet still counts, and keeps the queue.
    crate::slots::fold(db, name).await?;
    let deleted = queue::Entity::delete_many()
        .filter(queue::Column::Name.eq(name))
        .filter(queue::Column::Live.eq(0))
        .exec(db)
        .await
        .map_err(db_error)?;
    if deleted.rows_affected == 1 {
        limits::delete(db, name).await?;
        access::Entity::delete_many()
            .filter(access::Column::Queue.eq(name))
            .exec(db)
            .await
            .map_err(db_error)?;
    }
    Ok(deleted.rows_affected == 1)
}

/// Every queue, by name, with its counts.
pub(crate) async fn list(backend: &SqlBackend) -> Result<Vec<QueueInfo>> {
    let rows = queue::Entity::find()
        .order_by_asc(queue::Column::Name)
        .all(backend.reader())
        .await
        .map_err(db_error)?;
    let mut limits: BTreeMap<String, run_limits::Model> = run_limits::Entity::find()
        .all(backend.reader())
        .await
        .map_err(db_error)?
        .into_iter()
        .map(|row| (row.queue.clone(), row))
        .collect();
    let mut counts = BTreeMap::<String, StateCounts>::new();
    for group in read::counts(backend, CountFilter::default()).await? {
        counts
            .entry(group.queue)
            .or_default()
            .add(group.state, group.count);
    }
    Ok(rows
        .into_iter()
        .map(|row| {
            let counts = counts.remove(&row.name).unwrap_or_default();
            let limits = limits.remove(&row.name);
            queue_info(row, limits.as_ref(), counts)
        })
        .collect())
}

/// One queue with its counts; `UnknownQueue` when missing.
pub(crate) async fn info(backend: &SqlBackend, name: &str) -> Result<QueueInfo> {
    let row = queue::Entity::find_by_id(name)
        .one(backend.connection())
        .await
        .map_err(db_error)?
        .ok_or_else(|| Error::UnknownQueue {
            queue: name.to_owned(),
        })?;
    let filter = CountFilter {
        queue: Some(name.to_owned()),
        ..CountFilter::default()
    };
    let counts = outsourced_core::by_state(&read::counts(backend, filter).await?);
    let limits = run_limits::Entity::find_by_id(name)
        .one(backend.connection())
        .await
        .map_err(db_error)?;
    Ok(queue_info(row, limits.as_ref(), counts))
}

/// A queue's row, its limits' row (if it has limits) and its counts, as the caller sees them.
fn queue_info(
    row: queue::Model,
    limits: Option<&run_limits::Model>,
    counts: StateCounts,
) -> QueueInfo {
    let run_limits = limits::of(limits);
    let next_start = match run_limits.rate {
        Some(_) => limits.map(|l| crate::convert::time(l.rate_next_at)),
        None => None,
    };
    QueueInfo {
        name: row.name,
        limit: QueueLimit::from_max(row.max_live.map(|n| n.max(0) as u64)),
        paused: row.paused,
        retention: Retention::from_millis(row.retention_ms.map(|ms| ms.max(0) as u64)),
        limits: run_limits,
        next_start,
        counts,
    }
}

fn clamp(limit: u64) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}
