//! A success that carries follow-up jobs: the success and its follow-ups in one transaction of
//! their own, so that a refused follow-up refuses that success alone and changes nothing, and a
//! retransmitted success stores nothing again.

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

use crate::backend::SqlBackend;
use crate::complete::{complete_one, read_locked};
use crate::error::corrupt;
use crate::insert::{Origin, Placed, insert_from, stored};
use crate::lease::{Check, check_row};
use crate::observe::Events;
use crate::pg_batch::Ran;
use crate::transition::Writes;
use outsourced_core::{Actor, Completion, Error, Reason, Result, WorkerInstance};

/// Completes `done` and stores its follow-ups, or neither.
pub(crate) async fn complete(
    backend: &SqlBackend,
    by: &WorkerInstance,
    done: &Completion,
) -> Result<()> {
    // Everything that can be refused on its face is, before any write.
    done.check()?;
    let max_args = backend.config().max_args_bytes;
    for job in &done.follow_ups {
        job.check(max_args)?;
    }
    let result = done.result.as_ref().map(|value| value.to_string());
    let (result, now) = (result.as_deref(), backend.now());
    let (placed, events) = backend
        .write(|txn| async move {
            let outcome = complete_in(&txn, backend, by, done, result, now).await;
            (txn, outcome)
        })
        .await?;
    backend.wake_for(&stored(&placed));
    backend.tell(events);
    backend.tell(Events::placed(placed.iter().map(Placed::event)));
    Ok(())
}

async fn complete_in(
    db: &impl ConnectionTrait,
    backend: &SqlBackend,
    by: &WorkerInstance,
    done: &Completion,
    result: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(Vec<Placed>, Events)> {
    let lease = &done.lease;
    let ran = Ran { lease, result };
    let mut rows = read_locked(db, backend.flavor().locks_rows(), &[ran]).await?;
    let row = rows
        .remove(&lease.job_id.0)
        .ok_or(Error::NotFound { id: lease.job_id })?;
    let row = match check_row(db, row, by, lease, &[Reason::Completed]).await? {
        Check::Held(row) => row,
        // The success was stored with its follow-ups by the first report.
        Check::Repeated(_) => return Ok((Vec::new(), Events::default())),
    };
    let owner: Actor = row
        .enqueued_by
        .parse()
        .map_err(|_| corrupt(format!("enqueued_by = {:?}", row.enqueued_by)))?;
    let (parent, parent_batch, mut writes) = (row.id, row.batch_id, Writes::default());
    let ran = Ran { lease, result };
    complete_one(db, by, ran, Some(row), now, &mut writes).await?;
    let origin = Origin {
        actor: &Actor::Worker(by.clone()),
        owner: &owner,
        parent: Some(parent),
        parent_batch,
        callback_of: None,
    };
    let placed = insert_from(db, backend, &origin, &done.follow_ups, now).await?;
    backend.notify_in(db).await?;
    let events = writes.flush(db).await?;
    Ok((placed, events))
}
