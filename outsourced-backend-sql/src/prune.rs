//! Retention: removing finished jobs that outlived their queue's retention, with their history
//! and attachment, in bounded passes that never touch a live job; and uploads abandoned
//! unlinked for a day.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{LockBehavior, LockType};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::backend::SqlBackend;
use crate::convert::ms;
use crate::entity::{history, job, queue};
use crate::error::db_error;
use outsourced_core::{JobState, PruneOptions, Result};

/// Ids per `DELETE ... WHERE id IN (...)`, well under every database's parameter limit.
const CHUNK: usize = 500;

/// Removes up to `opts.limit` expired finished jobs, oldest first within each queue, and
/// returns how many it removed; and the tallies of minutes past the charts' reach.
pub(crate) async fn prune(backend: &SqlBackend, opts: PruneOptions) -> Result<u64> {
    let queues = queue::Entity::find()
        .filter(queue::Column::RetentionMs.is_not_null())
        .order_by_asc(queue::Column::Name)
        .all(backend.reader())
        .await
        .map_err(db_error)?;
    crate::attachments::prune_abandoned(backend, u64::from(opts.limit)).await?;
    let now = backend.now();
    crate::tally::forget_minutes_before(backend, now - crate::tally::MINUTES_KEPT).await?;
    let mut pruned = 0;
    for queue in queues {
        let left = u64::from(opts.limit).saturating_sub(pruned);
        if left == 0 {
            break;
        }
        let age = chrono::Duration::milliseconds(queue.retention_ms.unwrap_or(i64::MAX));
        let cutoff = now
            .checked_sub_signed(age)
            .unwrap_or(DateTime::<Utc>::MIN_UTC);
        let name = queue.name.as_str();
        pruned += backend
            .write(|txn| async move {
                let result = prune_queue(&txn, backend, name, cutoff, left).await;
                (txn, result)
            })
            .await?;
    }
    Ok(pruned)
}

/// In the caller's transaction: locks up to `limit` jobs of `queue` finished at or before
/// `cutoff`, then deletes their history and them. The lock (where the database has row locks;
/// SQLite's write transaction excludes everyone) keeps an admin's retry from reviving a job
/// half-deleted.
async fn prune_queue(
    db: &impl ConnectionTrait,
    backend: &SqlBackend,
    queue: &str,
    cutoff: DateTime<Utc>,
    limit: u64,
) -> Result<u64> {
    let finished = [JobState::Succeeded, JobState::Failed, JobState::Cancelled];
    let mut select = job::Entity::find()
        .select_only()
        .column(job::Column::Id)
        .filter(job::Column::Queue.eq(queue))
        .filter(job::Column::FinishedAt.lte(ms(cutoff)))
        .filter(job::Column::State.is_in(finished.map(|s| s.as_str())))
        .order_by_asc(job::Column::FinishedAt)
        .limit(limit);
    if backend.flavor().locks_rows() {
        select = select.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    let ids: Vec<i64> = select.into_tuple().all(db).await.map_err(db_error)?;
    for chunk in ids.chunks(CHUNK) {
        crate::attachments::delete_for(db, chunk).await?;
        crate::unique::forget(db, chunk).await?;
        history::Entity::delete_many()
            .filter(history::Column::JobId.is_in(chunk.iter().copied()))
            .exec(db)
            .await
            .map_err(db_error)?;
        job::Entity::delete_many()
            .filter(job::Column::Id.is_in(chunk.iter().copied()))
            .exec(db)
            .await
            .map_err(db_error)?;
    }
    Ok(ids.len() as u64)
}
