//! Retention: removing finished jobs that outlived their queue's retention, with their history
//! and attachment, in bounded passes that never touch a live job; and uploads abandoned
//! unlinked for a day.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{LockBehavior, LockType};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use crate::backend::SqlBackend;
use crate::convert::ms;
use crate::entity::{dependency, history, job, queue};
use crate::error::db_error;
use outsourced_core::{JobId, JobState, PruneOptions, Result};

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
    crate::batches::forget_ended(backend).await?;
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
    delete_ids(db, &ids).await
}

/// The finished jobs `ids` leave the counts (`counts.rs`): read by id, locked by the caller.
async fn uncount(db: &impl ConnectionTrait, ids: &[i64]) -> Result<()> {
    let mut deltas = crate::counts::Deltas::default();
    for chunk in ids.chunks(CHUNK) {
        let rows: Vec<(String, String)> = job::Entity::find()
            .select_only()
            .column(job::Column::Queue)
            .column(job::Column::State)
            .filter(job::Column::Id.is_in(chunk.iter().copied()))
            .into_tuple()
            .all(db)
            .await
            .map_err(db_error)?;
        for (queue, state) in rows {
            let state = state.parse::<JobState>().ok();
            deltas.moved(&queue, state, None);
        }
    }
    deltas.write(db).await
}

/// Deletes the jobs `ids` (locked by the caller's transaction) with their history, attachments
/// and unique keys.
async fn delete_ids(db: &impl ConnectionTrait, ids: &[i64]) -> Result<u64> {
    uncount(db, ids).await?;
    for chunk in ids.chunks(CHUNK) {
        crate::attachments::delete_for(db, chunk).await?;
        crate::unique::forget(db, chunk).await?;
        // The edges from them: a finished job settled its dependants when it ended. (Edges to
        // a deleted dependant go with its dependencies; settling skips a job that is gone.)
        dependency::Entity::delete_many()
            .filter(dependency::Column::DependencyId.is_in(chunk.iter().copied()))
            .exec(db)
            .await
            .map_err(db_error)?;
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

impl SqlBackend {
    /// Deletes those of `ids` that have finished (succeeded, failed or cancelled), with their
    /// history and attachments, at once rather than at their queue's retention (the
    /// dashboard's bulk delete); live jobs are left as they are (cancel them first). Answers
    /// how many it deleted. A deleted job has no history left to record it in: the caller
    /// logs who did it. Runs to its end in a task of its own, as every write does.
    pub async fn delete_finished(&self, ids: &[JobId]) -> Result<u64> {
        let (this, ids) = (self.clone(), ids.to_vec());
        crate::backend::detached(async move { this.delete_finished_here(&ids).await }).await
    }

    async fn delete_finished_here(&self, ids: &[JobId]) -> Result<u64> {
        let finished = [JobState::Succeeded, JobState::Failed, JobState::Cancelled];
        let ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
        let locks = self.flavor().locks_rows();
        self.write(|txn| {
            let ids = &ids;
            async move {
                let result = async {
                    let mut found = Vec::with_capacity(ids.len());
                    for chunk in ids.chunks(CHUNK) {
                        let mut select = job::Entity::find()
                            .select_only()
                            .column(job::Column::Id)
                            .filter(job::Column::Id.is_in(chunk.iter().copied()))
                            .filter(job::Column::State.is_in(finished.map(|s| s.as_str())));
                        if locks {
                            select = select.lock(LockType::Update);
                        }
                        let chunk: Vec<i64> =
                            select.into_tuple().all(&txn).await.map_err(db_error)?;
                        found.extend(chunk);
                    }
                    delete_ids(&txn, &found).await
                }
                .await;
                (txn, result)
            }
        })
        .await
    }
}
