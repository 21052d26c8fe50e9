//! Release: give a lease back without using up its attempt.

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Value};

use crate::backend::SqlBackend;
use crate::entity::job;
use crate::error::db_error;
use crate::lease::{Check, check};
use crate::observe::Events;
use crate::transition::{Step, Transition, until_applied};
use outsourced_core::{Actor, Event, JobId, JobState, LeaseRef, Reason, Result, WorkerInstance};

/// Releases one lease.
pub(crate) async fn release(
    backend: &SqlBackend,
    by: &WorkerInstance,
    lease: &LeaseRef,
) -> Result<()> {
    let now = backend.now();
    let events = backend
        .write(|txn| async move {
            let result = release_one(&txn, by, lease, now).await;
            (txn, result)
        })
        .await?;
    backend.tell(events);
    backend.wake().await;
    Ok(())
}

/// Releases every lease the worker instance holds.
pub(crate) async fn release_all(backend: &SqlBackend, by: &WorkerInstance) -> Result<u64> {
    let now = backend.now();
    let (released, events) = backend
        .write(|txn| async move {
            let result = release_all_in(&txn, by, now).await;
            // The instance is leaving: it runs nothing any more.
            let result = match result {
                Ok(done) => crate::instances::forget(&txn, by, now).await.map(|()| done),
                error => error,
            };
            (txn, result)
        })
        .await?;
    backend.tell(events);
    backend.inner.instances.forget(by);
    backend.wake().await;
    Ok(released)
}

async fn release_all_in(
    db: &impl ConnectionTrait,
    by: &WorkerInstance,
    now: DateTime<Utc>,
) -> Result<(u64, Events)> {
    let held = job::Entity::find()
        .filter(job::Column::LeaseWorker.eq(by.worker.as_str()))
        .filter(job::Column::LeaseInstance.eq(by.instance.as_str()))
        .filter(job::Column::State.eq(JobState::Running.as_str()))
        .all(db)
        .await
        .map_err(db_error)?;
    let mut events = Events::default();
    for row in &held {
        let lease = LeaseRef {
            job_id: JobId(row.id),
            token: row.lease_token.clone().unwrap_or_default(),
        };
        events.append(release_one(db, by, &lease, now).await?);
    }
    Ok((held.len() as u64, events))
}

async fn release_one(
    db: &impl ConnectionTrait,
    by: &WorkerInstance,
    lease: &LeaseRef,
    now: DateTime<Utc>,
) -> Result<Events> {
    let actor = &Actor::Worker(by.clone());
    until_applied(lease.job_id, || async move {
        let row = match check(db, by, lease, &[Reason::Released, Reason::Cancelled]).await? {
            Check::Held(row) => row,
            Check::Repeated(_) => return Ok(Some(Events::default())),
        };
        let attempt = row.attempts.max(0) as u32;
        let (event, reason, set) = if row.cancel_requested {
            (Event::Cancel, Reason::Cancelled, Vec::new())
        } else {
            // The attempt was counted at reserve; giving it back uncounts it.
            let attempts = Value::from(row.attempts.saturating_sub(1).max(0));
            (
                Event::Release,
                Reason::Released,
                vec![(job::Column::Attempts, attempts)],
            )
        };
        let step = Step {
            event: Some(event),
            reason,
            attempt,
            error: None,
            token: Some(&lease.token),
            result: None,
        };
        let transition = Transition {
            row: &row,
            actor,
            steps: vec![step],
            set,
        };
        transition.apply(db, now).await
    })
    .await
}
