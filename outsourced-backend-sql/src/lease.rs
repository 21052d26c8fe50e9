//! Checking a lease a worker presents: the job must run under that token, held by that worker
//! instance. A retransmitted report of an attempt that already ended is recognised by its
//! token in the job's history. And making one: a fresh token, and what a reserve hands out.

use chrono::{DateTime, Utc};
use rand::RngCore;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter};

use crate::convert;
use crate::entity::{history, job};
use crate::error::{backend_error, db_error};
use outsourced_core::{
    Error, JobId, JobState, Lease, LeaseRef, Reason, Reserved, Result, WorkerInstance,
};

/// What a presented lease turned out to be.
pub(crate) enum Check {
    /// The job's current lease, held by the caller.
    Held(job::Model),
    /// An attempt that already ended the way the caller reports it: a retransmission.
    Repeated(job::Model),
}

/// Loads a job row.
pub(crate) async fn load(db: &impl ConnectionTrait, id: JobId) -> Result<Option<job::Model>> {
    job::Entity::find_by_id(id.0)
        .one(db)
        .await
        .map_err(db_error)
}

/// Loads a job row or fails with `NotFound`.
pub(crate) async fn load_existing(db: &impl ConnectionTrait, id: JobId) -> Result<job::Model> {
    load(db, id).await?.ok_or(Error::NotFound { id })
}

/// Checks `lease` against the job. `ended_by` lists the history reasons that mean the caller's
/// own report already ended this attempt; anything else not held is `StaleLease`.
pub(crate) async fn check(
    db: &impl ConnectionTrait,
    by: &WorkerInstance,
    lease: &LeaseRef,
    ended_by: &[Reason],
) -> Result<Check> {
    let row = load_existing(db, lease.job_id).await?;
    check_row(db, row, by, lease, ended_by).await
}

/// [`check`] for a row the caller has already loaded.
pub(crate) async fn check_row(
    db: &impl ConnectionTrait,
    row: job::Model,
    by: &WorkerInstance,
    lease: &LeaseRef,
    ended_by: &[Reason],
) -> Result<Check> {
    if holds(&row, by, &lease.token) {
        return Ok(Check::Held(row));
    }
    let reasons = ended_by.iter().map(|r| r.as_str());
    let repeats = history::Entity::find()
        .filter(history::Column::JobId.eq(row.id))
        .filter(history::Column::LeaseToken.eq(lease.token.as_str()))
        .filter(history::Column::Actor.eq(outsourced_core::Actor::Worker(by.clone()).to_string()))
        .filter(history::Column::Reason.is_in(reasons))
        .count(db)
        .await
        .map_err(db_error)?;
    if repeats > 0 {
        Ok(Check::Repeated(row))
    } else {
        Err(Error::StaleLease { id: lease.job_id })
    }
}

/// Whether `by` holds the job's current lease `token`.
pub(crate) fn holds(row: &job::Model, by: &WorkerInstance, token: &str) -> bool {
    row.state == JobState::Running.as_str()
        && row.lease_token.as_deref() == Some(token)
        && row.lease_worker.as_deref() == Some(by.worker.as_str())
        && row.lease_instance.as_deref() == Some(by.instance.as_str())
}

/// The error when a job kept changing under a report.
pub(crate) fn contended(id: JobId) -> Error {
    backend_error(
        format!("job {id} kept changing during the update; try again"),
        true,
    )
}

/// What a reserve hands out for `row`, leased to `holder` with `token` until `expires_at`.
pub(crate) fn reserved(
    row: &job::Model,
    token: String,
    expires_at: DateTime<Utc>,
    holder: &WorkerInstance,
) -> Result<Reserved> {
    let job = convert::job_record(row)?;
    let lease = Lease {
        job_id: JobId(row.id),
        token,
        expires_at,
        attempt: job.attempts,
        holder: holder.clone(),
    };
    Ok(Reserved {
        job,
        lease,
        dependency_results: Default::default(),
    })
}

/// A fresh lease token: 128 random bits as hex, unguessable and unique.
pub(crate) fn new_token() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}
