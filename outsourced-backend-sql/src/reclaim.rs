//! Reclaiming expired leases: each is a failed attempt ("lease expired"), retried after the
//! job's stored back-off or failed for good when its attempts are used up.
//!
//! Each job moves by compare-and-set on its sequence number, so a job that was completed,
//! failed or re-leased after the reclaimer read it is left as it is, and two reclaimers in two
//! processes reclaim each expiry once.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{LockBehavior, LockType};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Value};

use crate::backend::SqlBackend;
use crate::convert::{self, ms};
use crate::entity::job;
use crate::error::{corrupt, db_error};
use crate::observe::Events;
use crate::transition::{Step, Transition};
use outsourced_core::{Actor, ErrorInfo, Event, JobState, Reason, ReclaimOptions, Result};

/// Reclaims up to `opts.limit` expired leases and returns how many it reclaimed.
pub(crate) async fn reclaim_expired(
    backend: &SqlBackend,
    by: &Actor,
    opts: ReclaimOptions,
) -> Result<u64> {
    let now = backend.now();
    let lock_rows = backend.flavor().locks_rows();
    let (reclaimed, events) = backend
        .write(|txn| async move {
            let result = reclaim_in(&txn, lock_rows, by, opts, now).await;
            (txn, result)
        })
        .await?;
    backend.tell(events);
    if reclaimed > 0 {
        backend.wake().await;
    }
    Ok(reclaimed)
}

async fn reclaim_in(
    db: &impl sea_orm::ConnectionTrait,
    lock_rows: bool,
    by: &Actor,
    opts: ReclaimOptions,
    now: DateTime<Utc>,
) -> Result<(u64, Events)> {
    let mut select = job::Entity::find()
        .filter(job::Column::State.eq(JobState::Running.as_str()))
        .filter(job::Column::LeaseExpiresAt.lte(ms(now)))
        .order_by_asc(job::Column::LeaseExpiresAt)
        .limit(u64::from(opts.limit));
    if lock_rows {
        select = select.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    let rows = select.all(db).await.map_err(db_error)?;
    let (mut reclaimed, mut events) = (0, Events::default());
    for row in &rows {
        if let Some(expired) = expire(db, row, by, now).await? {
            events.append(expired);
            reclaimed += 1;
        }
    }
    Ok((reclaimed, events))
}

/// Moves one expired job on and answers its events; `None` when it changed since it was read.
pub(crate) async fn expire(
    db: &impl sea_orm::ConnectionTrait,
    row: &job::Model,
    by: &Actor,
    now: DateTime<Utc>,
) -> Result<Option<Events>> {
    let attempts = row.attempts.max(0) as u32;
    let retry = attempts < row.max_attempts.max(0) as u32;
    let mut set = Vec::new();
    let event = if row.cancel_requested {
        Event::Cancel
    } else if retry {
        let backoff: outsourced_core::Backoff = row
            .backoff
            .parse()
            .map_err(|_| corrupt(format!("backoff = {:?}", row.backoff)))?;
        let due = now + chrono::Duration::from_std(backoff.delay(attempts)).unwrap_or_default();
        set.push((job::Column::RunAt, Value::from(ms(due))));
        Event::Expire { retry: true }
    } else {
        Event::Expire { retry: false }
    };
    let error = expiry_error(row);
    set.push((job::Column::LastError, Value::from(error.message.clone())));
    let step = Step {
        event: Some(event),
        reason: Reason::LeaseExpired,
        attempt: attempts,
        error: Some(&error),
        token: row.lease_token.as_deref(),
        result: None,
    };
    let transition = Transition {
        row,
        actor: by,
        steps: vec![step],
        set,
    };
    transition.apply(db, now).await
}

fn expiry_error(row: &job::Model) -> ErrorInfo {
    let holder = format!(
        "{}/{}",
        row.lease_worker.as_deref().unwrap_or("?"),
        row.lease_instance.as_deref().unwrap_or("?")
    );
    let expired = row
        .lease_expires_at
        .map(convert::time)
        .map(|t| t.to_rfc3339());
    ErrorInfo::new(format!(
        "lease expired at {} without an answer from worker {holder}",
        expired.as_deref().unwrap_or("?")
    ))
}

/// Reclaims expired leases (and folds the ledgers of freed slots, and gives stale run places
/// back) if the last pass was at least `reclaim_every` ago, so that workers alone keep a queue
/// moving after a crash, without a separate reaper process.
pub(crate) async fn now_and_then(backend: &SqlBackend) -> Result<()> {
    let now = backend.now();
    {
        let mut last = backend
            .inner
            .last_reclaim
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let every = chrono::Duration::from_std(backend.config().reclaim_every).unwrap_or_default();
        if last.is_some_and(|last| now < last + every) {
            return Ok(());
        }
        *last = Some(now);
    }
    // A write, so run to its end whatever becomes of the reserve that asked for it.
    let handle = backend.clone();
    crate::backend::detached(async move {
        reclaim_expired(&handle, &Actor::Reaper, ReclaimOptions::default()).await?;
        // And the ledger of freed slots, so that it stays short where no full queue folds it.
        // Not the reserve's failure: a full queue folds what it needs itself.
        if let Err(error) = crate::slots::fold_all(&handle).await {
            tracing::warn!(%error, "folding freed queue slots failed; the next pass tries again");
        }
        // And any run place left held by a job that stopped while its places were made again.
        let repaired = handle
            .write(|txn| async move {
                let result = crate::places::repair(&txn, crate::convert::ms(now)).await;
                (txn, result)
            })
            .await;
        match repaired {
            Ok(0) => {}
            Ok(n) => tracing::debug!(places = n, "run places of stopped jobs given back"),
            Err(error) => tracing::warn!(%error, "giving stale run places back failed; the next pass tries again"),
        }
        Ok(())
    })
    .await?;
    Ok(())
}
