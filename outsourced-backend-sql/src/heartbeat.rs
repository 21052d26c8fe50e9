//! Heartbeat: renew a lease by its own length, and tell the worker about a cancel request.

use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::backend::SqlBackend;
use crate::convert::{self, ms};
use crate::entity::job;
use crate::error::db_error;
use crate::lease::{holds, load_existing};
use outsourced_core::{Error, Heartbeat, JobState, LeaseRef, Result, WorkerInstance};

/// Moves the lease's expiry to now plus its length, if the caller holds it.
pub(crate) async fn heartbeat(
    backend: &SqlBackend,
    by: &WorkerInstance,
    lease: &LeaseRef,
) -> Result<Heartbeat> {
    let now = ms(backend.now());
    let db = backend.connection();
    let result = job::Entity::update_many()
        .col_expr(
            job::Column::LeaseExpiresAt,
            Expr::value(now).add(Expr::col(job::Column::LeaseMs)),
        )
        .filter(job::Column::Id.eq(lease.job_id.0))
        .filter(job::Column::State.eq(JobState::Running.as_str()))
        .filter(job::Column::LeaseToken.eq(lease.token.as_str()))
        .filter(job::Column::LeaseWorker.eq(by.worker.as_str()))
        .filter(job::Column::LeaseInstance.eq(by.instance.as_str()))
        .exec(db)
        .await
        .map_err(db_error)?;
    let row = load_existing(db, lease.job_id).await?;
    if result.rows_affected == 0 || !holds(&row, by, &lease.token) {
        return Err(Error::StaleLease { id: lease.job_id });
    }
    // A worker whose every slot is busy reserves nothing for as long as its jobs run: its
    // heartbeats tell that it is alive.
    let when = backend.now();
    if backend.inner.instances.touch_due(by, when) {
        crate::instances::touch(db, by, when).await?;
    }
    Ok(Heartbeat {
        expires_at: convert::time(row.lease_expires_at.unwrap_or(now)),
        cancel_requested: row.cancel_requested,
    })
}
