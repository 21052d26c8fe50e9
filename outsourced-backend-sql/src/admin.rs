//! An admin's (or producer's) changes to one job: cancel and retry.

use sea_orm::Value;

use crate::backend::SqlBackend;
use crate::convert::{self, job_record, ms};
use crate::entity::job;
use crate::error::db_error;
use crate::lease::{CAS_TRIES, contended, load_existing};
use crate::transition::{Step, Transition};
use outsourced_core::{Actor, Event, JobId, JobRecord, JobState, Reason, Result};

/// Cancels a waiting job, or asks a running one to stop; returns the state afterwards.
pub(crate) async fn cancel(backend: &SqlBackend, by: &Actor, id: JobId) -> Result<JobState> {
    let now = backend.now();
    let txn = backend.begin_write().await?;
    for _ in 0..CAS_TRIES {
        let row = load_existing(&txn, id).await?;
        let state = convert::state(&row)?;
        let (event, reason, set) = match state {
            JobState::Cancelled => return Ok(state),
            JobState::Running if row.cancel_requested => return Ok(state),
            JobState::Running => (
                None,
                Reason::CancelRequested,
                vec![(job::Column::CancelRequested, Value::from(true))],
            ),
            _ => (Some(Event::Cancel), Reason::Cancelled, Vec::new()),
        };
        let step = Step {
            event,
            reason,
            attempt: row.attempts.max(0) as u32,
            error: None,
            token: row.lease_token.as_deref(),
        };
        let transition = Transition {
            row: &row,
            actor: by,
            steps: vec![step],
            set,
        };
        if transition.apply(&txn, now).await? {
            txn.commit().await.map_err(db_error)?;
            return Ok(if state == JobState::Running {
                state
            } else {
                JobState::Cancelled
            });
        }
    }
    Err(contended(id))
}

/// Makes a job available now: finished ones with a fresh attempt budget (taking a queue slot),
/// waiting ones keeping their attempts.
pub(crate) async fn retry(backend: &SqlBackend, by: &Actor, id: JobId) -> Result<JobRecord> {
    let now = backend.now();
    let txn = backend.begin_write().await?;
    for _ in 0..CAS_TRIES {
        let row = load_existing(&txn, id).await?;
        let mut set = vec![(job::Column::RunAt, Value::from(ms(now)))];
        if convert::state(&row)?.is_terminal() {
            set.push((job::Column::Attempts, Value::from(0)));
            set.push((job::Column::CancelRequested, Value::from(false)));
        }
        let step = Step {
            event: Some(Event::Retry),
            reason: Reason::Retried,
            attempt: row.attempts.max(0) as u32,
            error: None,
            token: None,
        };
        let transition = Transition {
            row: &row,
            actor: by,
            steps: vec![step],
            set,
        };
        if transition.apply(&txn, now).await? {
            let row = load_existing(&txn, id).await?;
            txn.commit().await.map_err(db_error)?;
            backend.wake();
            return job_record(&row);
        }
    }
    Err(contended(id))
}
