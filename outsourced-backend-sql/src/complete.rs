//! Complete: the job succeeded; a repeating one is scheduled for its next run.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, Value};

use crate::backend::SqlBackend;
use crate::convert::{self, ms};
use crate::entity::job;
use crate::error::{corrupt, db_error};
use crate::lease::{CAS_TRIES, Check, check, contended};
use crate::transition::{Step, Transition};
use outsourced_core::{Actor, Error, Event, LeaseRef, Reason, Repeat, Result, WorkerInstance};

/// Completes each lease in one transaction; each gets its own result.
pub(crate) async fn complete_batch(
    backend: &SqlBackend,
    by: &WorkerInstance,
    leases: &[LeaseRef],
) -> Result<Vec<Result<()>>> {
    let now = backend.now();
    let txn = backend.begin_write().await?;
    let mut results = Vec::with_capacity(leases.len());
    for lease in leases {
        let result = complete_one(&txn, by, lease, now).await;
        // A failure of the database itself fails the whole batch (the transaction may be
        // unusable); a stale or unknown lease is that lease's answer alone.
        if let Err(error @ Error::Backend { .. }) = result {
            return Err(error);
        }
        results.push(result);
    }
    txn.commit().await.map_err(db_error)?;
    backend.wake();
    Ok(results)
}

async fn complete_one(
    db: &impl ConnectionTrait,
    by: &WorkerInstance,
    lease: &LeaseRef,
    now: DateTime<Utc>,
) -> Result<()> {
    let actor = Actor::Worker(by.clone());
    for _ in 0..CAS_TRIES {
        let row = match check(db, by, lease, &[Reason::Completed]).await? {
            Check::Held(row) => row,
            Check::Repeated(_) => return Ok(()),
        };
        let attempt = row.attempts.max(0) as u32;
        let mut steps = vec![Step {
            event: Some(Event::Complete),
            reason: Reason::Completed,
            attempt,
            error: None,
            token: Some(&lease.token),
        }];
        let mut set = Vec::new();
        if let Some(repeat) = repeat_of(&row)?
            && !row.cancel_requested
        {
            let next = repeat.next_after(convert::time(row.run_at), now);
            steps.push(Step {
                event: Some(Event::Repeat),
                reason: Reason::Repeat,
                attempt,
                error: None,
                token: None,
            });
            set.push((job::Column::RunAt, Value::from(ms(next))));
            set.push((job::Column::Attempts, Value::from(0)));
        }
        let transition = Transition {
            row: &row,
            actor: &actor,
            steps,
            set,
        };
        if transition.apply(db, now).await? {
            return Ok(());
        }
    }
    Err(contended(lease.job_id))
}

fn repeat_of(row: &job::Model) -> Result<Option<Repeat>> {
    row.repeat
        .as_deref()
        .map(|r| r.parse().map_err(|_| corrupt(format!("repeat = {r:?}"))))
        .transpose()
}
