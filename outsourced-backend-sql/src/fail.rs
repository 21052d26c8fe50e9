//! Fail: a failed attempt is retried after a back-off, or fails the job for good.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, Value};

use crate::backend::SqlBackend;
use crate::convert::{self, ms};
use crate::entity::job;
use crate::error::corrupt;
use crate::lease::{Check, check, contended};
use crate::observe::Events;
use crate::transition::{Step, Transition, until_applied};
use outsourced_core::{
    Actor, Backoff, Event, Failure, JobState, LeaseRef, Reason, Result, RetryPlan, WorkerInstance,
};

/// Records a failed attempt and returns the job's new state.
pub(crate) async fn fail(
    backend: &SqlBackend,
    by: &WorkerInstance,
    lease: &LeaseRef,
    failure: Failure,
) -> Result<JobState> {
    let now = backend.now();
    let failure = &failure;
    let (state, events) = backend
        .write(|txn| async move {
            let result = fail_in(&txn, by, lease, failure, now).await;
            (txn, result)
        })
        .await?;
    backend.tell(events);
    Ok(state)
}

async fn fail_in(
    db: &impl ConnectionTrait,
    by: &WorkerInstance,
    lease: &LeaseRef,
    failure: &Failure,
    now: DateTime<Utc>,
) -> Result<(JobState, Events)> {
    let actor = &Actor::Worker(by.clone());
    let ended_by = &[Reason::RetryScheduled, Reason::Failed, Reason::Cancelled];
    until_applied(lease.job_id, || async move {
        let row = match check(db, by, lease, ended_by).await? {
            Check::Held(row) => row,
            Check::Repeated(row) => {
                return convert::state(&row).map(|state| Some((state, Events::default())));
            }
        };
        let (event, reason, wait) = decide(&row, failure.retry)?;
        let mut set = vec![(
            job::Column::LastError,
            Value::from(failure.error.message.clone()),
        )];
        if let Some(wait) = wait {
            let due = now + chrono::Duration::from_std(wait).unwrap_or_default();
            set.push((job::Column::RunAt, Value::from(ms(due))));
        }
        let step = Step {
            event: Some(event),
            reason,
            attempt: row.attempts.max(0) as u32,
            error: Some(&failure.error),
            token: Some(&lease.token),
            result: None,
        };
        let transition = Transition {
            row: &row,
            actor,
            steps: vec![step],
            set,
        };
        let Some(events) = transition.apply(db, now).await? else {
            return Ok(None);
        };
        outsourced_core::transition(JobState::Running, event)
            .map(|state| Some((state, events)))
            .map_err(|_| contended(lease.job_id))
    })
    .await
}

/// What a failure leads to: cancelled (a cancel was requested), failed for good (a permanent
/// error or no attempt left), or another attempt after a wait.
fn decide(row: &job::Model, plan: RetryPlan) -> Result<(Event, Reason, Option<Duration>)> {
    let attempts = row.attempts.max(0) as u32;
    if row.cancel_requested {
        return Ok((Event::Cancel, Reason::Cancelled, None));
    }
    if plan == RetryPlan::Never || attempts >= row.max_attempts.max(0) as u32 {
        return Ok((Event::Fail { retry: false }, Reason::Failed, None));
    }
    let wait = match plan {
        RetryPlan::After(wait) => wait,
        _ => {
            let backoff: Backoff = row
                .backoff
                .parse()
                .map_err(|_| corrupt(format!("backoff = {:?}", row.backoff)))?;
            backoff.delay(attempts)
        }
    };
    Ok((
        Event::Fail { retry: true },
        Reason::RetryScheduled,
        Some(wait),
    ))
}
