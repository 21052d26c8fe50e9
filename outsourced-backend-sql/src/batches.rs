//! Batches: jobs grouped under one callback job, which becomes runnable once the batch is
//! closed and every job of it has ended (issue 22).
//!
//! The callback is stored `pending` when the batch is opened, so that its queue's slot is
//! taken (or refused) then, never at the end of the batch's last job. Every end of a job of
//! the batch counts on the batch's row, in that end's transaction (`Writes::flush`); the
//! `UPDATE` of the counts takes the row's lock, so of the last jobs ending at once exactly one
//! transaction reads every job ended, and it makes the callback runnable, its arguments given
//! the counts.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, QueryTrait, Value,
};

use crate::backend::SqlBackend;
use crate::convert::{self, ms, time};
use crate::dialect::insert_one;
use crate::entity::{batch, job};
use crate::error::{backend_error, corrupt, db_error};
use crate::insert::{Origin, Placed, insert_from};
use crate::lease::load;
use crate::observe::Events;
use crate::transition::{Step, Transition, Writes};
use outsourced_core::{
    Actor, BatchCounts, BatchId, BatchInfo, Error, Event, JobId, JobState, NewBatch, NewJob,
    Reason, Result,
};

/// The error for a batch that does not exist.
fn unknown(id: BatchId) -> Error {
    Error::Unknown {
        kind: "batch",
        name: id.to_string(),
    }
}

/// Opens a batch: its row and its callback, stored pending, in one transaction.
pub(crate) async fn open(backend: &SqlBackend, by: &Actor, new: NewBatch) -> Result<BatchInfo> {
    new.check(backend.config().max_args_bytes)?;
    let (new, now) = (&new, backend.now());
    let (info, placed) = backend
        .write(|txn| async move {
            let result = open_in(&txn, backend, by, new, now).await;
            (txn, result)
        })
        .await?;
    backend.tell(Events::placed(placed.iter().map(Placed::event)));
    Ok(info)
}

async fn open_in(
    db: &impl ConnectionTrait,
    backend: &SqlBackend,
    by: &Actor,
    new: &NewBatch,
    now: DateTime<Utc>,
) -> Result<(BatchInfo, Vec<Placed>)> {
    let row = batch::ActiveModel {
        id: NotSet,
        description: Set(new.description.clone()),
        created_by: Set(by.to_string()),
        created_at: Set(ms(now)),
        closed: Set(false),
        total: Set(0),
        succeeded: Set(0),
        failed: Set(0),
        cancelled: Set(0),
        callback_job_id: Set(0),
        finished_at: Set(None),
    };
    let insert = batch::Entity::insert(row).into_query();
    let id = insert_one(db, backend.flavor(), insert).await?;
    let origin = Origin {
        actor: by,
        owner: by,
        parent: None,
        parent_batch: None,
        callback_of: Some(id),
    };
    let placed = insert_from(
        db,
        backend,
        &origin,
        std::slice::from_ref(&new.callback),
        now,
    )
    .await?;
    let callback = placed
        .first()
        .ok_or_else(|| backend_error("the callback was not stored", false))?;
    batch::Entity::update_many()
        .col_expr(batch::Column::CallbackJobId, Expr::value(callback.row.id))
        .filter(batch::Column::Id.eq(id))
        .exec(db)
        .await
        .map_err(db_error)?;
    let info = read_in(db, BatchId(id)).await?;
    Ok((info, placed))
}

/// Adds new jobs to their batches (in the caller's transaction, before they are stored):
/// `InvalidInput` for a batch that was closed (unless the jobs are follow-ups of a job of that
/// batch, `from_batch`) or ended, `Unknown` for one that does not exist.
pub(crate) async fn join(
    db: &impl ConnectionTrait,
    jobs: &[&NewJob],
    from_batch: Option<i64>,
) -> Result<()> {
    let mut per_batch = BTreeMap::<i64, i64>::new();
    for id in jobs.iter().filter_map(|job| job.batch) {
        *per_batch.entry(id.0).or_default() += 1;
    }
    for (id, n) in per_batch {
        let mut join = batch::Entity::update_many()
            .col_expr(batch::Column::Total, Expr::col(batch::Column::Total).add(n))
            .filter(batch::Column::Id.eq(id))
            .filter(batch::Column::FinishedAt.is_null());
        if from_batch != Some(id) {
            join = join.filter(batch::Column::Closed.eq(false));
        }
        let joined = join.exec(db).await.map_err(db_error)?;
        if joined.rows_affected == 0 {
            let found = read_in(db, BatchId(id)).await?;
            let why = match found.finished_at {
                Some(_) => "has ended (its callback was made runnable)",
                None => "is closed (only its own jobs may add to it now)",
            };
            return Err(Error::invalid(format!(
                "batch {id} {why}: open another batch"
            )));
        }
    }
    Ok(())
}

/// A change of a job of a batch that ended it (+1 to its end's count) or, by an admin's
/// retry, made it live again (-1 to the count of the end it left).
#[derive(Clone, Debug)]
pub(crate) struct Counted {
    pub(crate) batch: i64,
    pub(crate) end: JobState,
    pub(crate) delta: i64,
    pub(crate) actor: Actor,
    pub(crate) at: DateTime<Utc>,
}

/// Counts the ends in their batches' rows, and ends each batch they complete (in the caller's
/// transaction; the callbacks' changes go into `writes`).
pub(crate) async fn settle(
    db: &impl ConnectionTrait,
    counted: Vec<Counted>,
    writes: &mut Writes,
) -> Result<()> {
    // Per batch, in id order (two transactions lock batch rows in the same order).
    let mut per_batch = BTreeMap::<i64, ([i64; 3], &Counted)>::new();
    for one in &counted {
        let (counts, last) = per_batch.entry(one.batch).or_insert(([0; 3], one));
        let slot = match one.end {
            JobState::Succeeded => 0,
            JobState::Failed => 1,
            _ => 2,
        };
        counts[slot] += one.delta;
        *last = one;
    }
    for (id, ([succeeded, failed, cancelled], last)) in per_batch {
        let add = |column: batch::Column, n: i64| Expr::col(column).add(n);
        batch::Entity::update_many()
            .col_expr(
                batch::Column::Succeeded,
                add(batch::Column::Succeeded, succeeded),
            )
            .col_expr(batch::Column::Failed, add(batch::Column::Failed, failed))
            .col_expr(
                batch::Column::Cancelled,
                add(batch::Column::Cancelled, cancelled),
            )
            .filter(batch::Column::Id.eq(id))
            .exec(db)
            .await
            .map_err(db_error)?;
        end_if_done(db, id, &last.actor, last.at, writes).await?;
    }
    Ok(())
}

/// Ends batch `id` if it is closed and every job of it ended: marks it finished and makes its
/// callback runnable with the counts. The caller holds the batch row's lock (it just updated
/// the row), so this reads it as it is.
async fn end_if_done(
    db: &impl ConnectionTrait,
    id: i64,
    actor: &Actor,
    at: DateTime<Utc>,
    writes: &mut Writes,
) -> Result<()> {
    let Some(row) = batch::Entity::find_by_id(id)
        .one(db)
        .await
        .map_err(db_error)?
    else {
        return Ok(());
    };
    let counts = counts(&row);
    if !row.closed || row.finished_at.is_some() || counts.live() > 0 {
        return Ok(());
    }
    let ended = batch::Entity::update_many()
        .col_expr(batch::Column::FinishedAt, Expr::value(ms(at)))
        .filter(batch::Column::Id.eq(id))
        .filter(batch::Column::FinishedAt.is_null())
        .exec(db)
        .await
        .map_err(db_error)?;
    if ended.rows_affected == 0 {
        return Ok(());
    }
    let Some(callback) = load(db, JobId(row.callback_job_id)).await? else {
        return Ok(()); // Deleted by an admin.
    };
    if callback.state != JobState::Pending.as_str() {
        return Ok(()); // Cancelled by an admin.
    }
    let mut args: serde_json::Value = serde_json::from_str(&callback.args)
        .map_err(|e| corrupt(format!("job {}: args: {e}", callback.id)))?;
    if let Some(object) = args.as_object_mut() {
        object.insert("batch".to_owned(), counts.to_json());
    }
    let step = Step {
        event: Some(Event::Unblock {
            scheduled: callback.run_at > ms(at),
        }),
        reason: Reason::BatchEnded,
        attempt: 0,
        error: None,
        token: None,
        result: None,
    };
    let transition = Transition {
        row: &callback,
        actor,
        steps: vec![step],
        set: vec![(job::Column::Args, Value::from(args.to_string()))],
    };
    if !transition.apply_deferred(db, at, writes).await? {
        return Err(backend_error(
            format!("batch {id}'s callback changed while it was made runnable; try again"),
            true,
        ));
    }
    Ok(())
}

/// Closes batch `id`, and ends it when every job of it has ended already.
pub(crate) async fn close(backend: &SqlBackend, by: &Actor, id: BatchId) -> Result<BatchInfo> {
    let now = backend.now();
    let (info, events) = backend
        .write(|txn| async move {
            let result = close_in(&txn, by, id, now).await;
            (txn, result)
        })
        .await?;
    backend.tell(events);
    Ok(info)
}

async fn close_in(
    db: &impl ConnectionTrait,
    by: &Actor,
    id: BatchId,
    now: DateTime<Utc>,
) -> Result<(BatchInfo, Events)> {
    let closed = batch::Entity::update_many()
        .col_expr(batch::Column::Closed, Expr::value(true))
        .filter(batch::Column::Id.eq(id.0))
        .exec(db)
        .await
        .map_err(db_error)?;
    if closed.rows_affected == 0 {
        // MySQL counts only rows it changed: a batch closed before is found below.
        read_in(db, id).await?;
    }
    let mut writes = Writes::default();
    end_if_done(db, id.0, by, now, &mut writes).await?;
    let events = writes.flush(db).await?;
    Ok((read_in(db, id).await?, events))
}

/// Closes batch `id` and cancels each job of it that has not ended (one transaction each, as
/// an admin's cancel); answers how many it cancelled or asked to stop.
pub(crate) async fn cancel(backend: &SqlBackend, by: &Actor, id: BatchId) -> Result<u64> {
    close(backend, by, id).await?;
    let live: Vec<i64> = job::Entity::find()
        .select_only()
        .column(job::Column::Id)
        .filter(job::Column::BatchId.eq(id.0))
        .filter(job::Column::FinishedAt.is_null())
        .into_tuple()
        .all(backend.reader())
        .await
        .map_err(db_error)?;
    let mut cancelled = 0;
    for job in live {
        match crate::admin::cancel(backend, by, JobId(job)).await {
            Ok(_) => cancelled += 1,
            // Ended meanwhile, or pruned: nothing to cancel.
            Err(Error::InvalidTransition { .. } | Error::NotFound { .. }) => {}
            Err(error) => return Err(error),
        }
    }
    Ok(cancelled)
}

/// Deletes the batches that ended and whose callback and jobs are all gone (pruned with their
/// queues' retention): nothing is left that names them.
pub(crate) async fn forget_ended(backend: &SqlBackend) -> Result<()> {
    // Correlated, so that each looks up one key (the primary key, the batch index) rather
    // than reading the jobs table whole.
    let callback = Query::select()
        .expr(Expr::val(1))
        .from(job::Entity)
        .and_where(
            Expr::col((job::Entity, job::Column::Id))
                .equals((batch::Entity, batch::Column::CallbackJobId)),
        )
        .to_owned();
    let members = Query::select()
        .expr(Expr::val(1))
        .from(job::Entity)
        .and_where(
            Expr::col((job::Entity, job::Column::BatchId))
                .equals((batch::Entity, batch::Column::Id)),
        )
        .to_owned();
    let forget = batch::Entity::delete_many()
        .filter(batch::Column::FinishedAt.is_not_null())
        .filter(Expr::exists(callback).not())
        .filter(Expr::exists(members).not());
    let forget = &forget;
    backend
        .write(|txn| async move {
            let result = forget
                .clone()
                .exec(&txn)
                .await
                .map(|_| ())
                .map_err(db_error);
            (txn, result)
        })
        .await
}

/// Batch `id` as it is now.
pub(crate) async fn read(backend: &SqlBackend, id: BatchId) -> Result<BatchInfo> {
    read_in(backend.reader(), id).await
}

async fn read_in(db: &impl ConnectionTrait, id: BatchId) -> Result<BatchInfo> {
    let row = batch::Entity::find_by_id(id.0)
        .one(db)
        .await
        .map_err(db_error)?
        .ok_or_else(|| unknown(id))?;
    info(&row)
}

fn counts(row: &batch::Model) -> BatchCounts {
    let n = |v: i64| u64::try_from(v).unwrap_or(0);
    BatchCounts {
        id: BatchId(row.id),
        total: n(row.total),
        succeeded: n(row.succeeded),
        failed: n(row.failed),
        cancelled: n(row.cancelled),
    }
}

fn info(row: &batch::Model) -> Result<BatchInfo> {
    Ok(BatchInfo {
        counts: counts(row),
        description: row.description.clone(),
        created_by: row
            .created_by
            .parse()
            .map_err(|_| corrupt(format!("batch {}: created_by", row.id)))?,
        created_at: time(row.created_at),
        closed: row.closed,
        callback: JobId(row.callback_job_id),
        finished_at: row.finished_at.map(convert::time),
    })
}
