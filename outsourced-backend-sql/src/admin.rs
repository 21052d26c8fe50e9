//! An admin's (or producer's) changes to one job: cancel and retry.

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, Value};

use crate::backend::SqlBackend;
use crate::convert::{self, job_record, ms};
use crate::entity::job;
use crate::lease::load_existing;
use crate::observe::Events;
use crate::transition::{Step, Transition, until_applied};
use outsourced_core::{Actor, Event, JobId, JobRecord, JobState, Reason, Result};

/// Cancels a waiting job, or asks a running one to stop; returns the state afterwards.
pub(crate) async fn cancel(backend: &SqlBackend, by: &Actor, id: JobId) -> Result<JobState> {
    let now = backend.now();
    let (state, events) = backend
        .write(|txn| async move {
            let result = cancel_in(&txn, by, id, now).await;
            (txn, result)
        })
        .await?;
    backend.tell(events);
    Ok(state)
}

async fn cancel_in(
    db: &impl ConnectionTrait,
    by: &Actor,
    id: JobId,
    now: DateTime<Utc>,
) -> Result<(JobState, Events)> {
    until_applied(id, || async move {
        let row = load_existing(db, id).await?;
        let state = convert::state(&row)?;
        let unchanged = Some((state, Events::default()));
        let (event, reason, set) = match state {
            JobState::Cancelled => return Ok(unchanged),
            JobState::Running if row.cancel_requested => return Ok(unchanged),
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
            result: None,
        };
        let transition = Transition {
            row: &row,
            actor: by,
            steps: vec![step],
            set,
        };
        let Some(events) = transition.apply(db, now).await? else {
            return Ok(None);
        };
        let running = state == JobState::Running;
        let after = if running { state } else { JobState::Cancelled };
        Ok(Some((after, events)))
    })
    .await
}

/// Makes a job available now: finished ones with a fresh attempt budget (taking a queue slot),
/// waiting ones keeping their attempts.
pub(crate) async fn retry(backend: &SqlBackend, by: &Actor, id: JobId) -> Result<JobRecord> {
    let now = backend.now();
    let (job, events) = backend
        .write(|txn| async move {
            let result = retry_in(&txn, by, id, now).await;
            (txn, result)
        })
        .await?;
    backend.tell(events);
    backend.wake().await;
    Ok(job)
}

async fn retry_in(
    db: &impl ConnectionTrait,
    by: &Actor,
    id: JobId,
    now: DateTime<Utc>,
) -> Result<(JobRecord, Events)> {
    until_applied(id, || async move {
        let row = load_existing(db, id).await?;
        crate::dependencies::all_succeeded(db, &row).await?;
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
            result: None,
        };
        let transition = Transition {
            row: &row,
            actor: by,
            steps: vec![step],
            set,
        };
        let Some(events) = transition.apply(db, now).await? else {
            return Ok(None);
        };
        let job = job_record(&load_existing(db, id).await?)?;
        Ok(Some((job, events)))
    })
    .await
}
