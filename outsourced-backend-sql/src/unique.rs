//! Unique keys, claimed in the transaction that stores their jobs. The key's row, one per
//! scope, is what makes two holders impossible: its primary key on insert, and a guarded
//! update (from the holder that was read) when a key whose holder let go is taken over. A
//! check followed by an insert is never enough on its own.

use std::collections::HashMap;

use sea_orm::sea_query::{Expr, LockType};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect,
    QueryTrait,
};
use sha2::{Digest, Sha256};

use chrono::{DateTime, Utc};
use sea_orm::Value;

use crate::convert::{self, ms};
use crate::dialect::{Flavor, insert_if_absent};
use crate::entity::{job, unique_key};
use crate::error::{backend_error, db_error};
use crate::lease::load_existing;
use crate::transition::{CAS_TRIES, Step, Transition, until_applied};
use outsourced_core::{
    Actor, Error, Event, JobId, JobState, NewJob, OnDuplicate, Reason, Result, transition,
};

/// What becomes of one job of an enqueue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Fate {
    /// It is stored.
    Store,
    /// Its key is held by this stored job: nothing is stored.
    DuplicateOf(JobId),
    /// Its key is the same as that of the job at this index of the same enqueue, which is
    /// stored: nothing more is stored.
    SameAs(usize),
}

/// Claims the unique keys of `jobs` (in order) and says what becomes of each job. A duplicate
/// that asked for a refusal fails the whole enqueue with `Duplicate`; nothing is changed then
/// once the caller drops the transaction.
pub(crate) async fn resolve(
    db: &impl ConnectionTrait,
    flavor: Flavor,
    jobs: &[NewJob],
    now_ms: i64,
) -> Result<Vec<Fate>> {
    let mut seen = HashMap::<String, usize>::new();
    let mut fates = Vec::with_capacity(jobs.len());
    for (i, job) in jobs.iter().enumerate() {
        let Some(unique) = &job.unique else {
            fates.push(Fate::Store);
            continue;
        };
        let scope = scope_of(job).unwrap_or_default();
        let refuse = unique.on_duplicate == OnDuplicate::Refuse;
        if let Some(&first) = seen.get(&scope) {
            if refuse {
                return Err(Error::invalid(format!(
                    "unique key {:?} is given twice in one enqueue",
                    unique.key
                )));
            }
            fates.push(Fate::SameAs(first));
            continue;
        }
        let until = unique.period.map(|p| now_ms + p.as_millis() as i64);
        match claim(db, flavor, &scope, until, now_ms).await? {
            None => {
                seen.insert(scope, i);
                fates.push(Fate::Store);
            }
            Some(existing) if refuse => {
                return Err(Error::Duplicate {
                    key: unique.key.clone(),
                    existing,
                });
            }
            Some(existing) => fates.push(Fate::DuplicateOf(existing)),
        }
    }
    Ok(fates)
}

/// Points each claimed key at the job stored with it (the claim held it for job 0).
pub(crate) async fn bind(db: &impl ConnectionTrait, stored: &[(&NewJob, i64)]) -> Result<()> {
    for (job, id) in stored {
        let Some(scope) = scope_of(job) else {
            continue;
        };
        unique_key::Entity::update_many()
            .col_expr(unique_key::Column::JobId, Expr::value(*id))
            .filter(unique_key::Column::Scope.eq(scope))
            .exec(db)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}

/// Debounce: gives `holder` (the job that holds `job`'s key) `job`'s arguments and run time,
/// with a `replaced` history row, if it has not started, is of the same class and was enqueued
/// by the same producer (or the duplicate comes from an admin: no producer changes another's
/// job); answers the holder as it is then. A compare-and-set on the holder's `seq`: a reserve that leased it
/// first wins, and the holder is then answered as it is (running).
pub(crate) async fn replace(
    db: &impl ConnectionTrait,
    holder: job::Model,
    job: &NewJob,
    by: &Actor,
    now: DateTime<Utc>,
) -> Result<job::Model> {
    let run_at = job.first_run(now);
    let event = Event::Replace {
        scheduled: run_at > now,
    };
    let args = job.args.to_string();
    let id = JobId(holder.id);
    let mut read = Some(holder);
    until_applied(id, || {
        let (args, read) = (&args, read.take());
        async move {
            let row = match read {
                Some(row) => row,
                None => load_existing(db, id).await?,
            };
            let theirs = !matches!(by, Actor::Admin(_)) && row.enqueued_by != by.to_string();
            let waiting = transition(convert::state(&row)?, event).is_ok();
            if theirs || row.class != job.class || !waiting {
                return Ok(Some(row));
            }
            let step = Step {
                event: Some(event),
                reason: Reason::Replaced,
                attempt: row.attempts.max(0) as u32,
                error: None,
                token: None,
                result: None,
            };
            let set = vec![
                (job::Column::Args, Value::from(args.clone())),
                (job::Column::RunAt, Value::from(ms(run_at))),
            ];
            let transition = Transition {
                row: &row,
                actor: by,
                steps: vec![step],
                set,
            };
            match transition.apply(db, now).await? {
                // Its events tell the observer nothing: the enqueue counts it as a duplicate.
                Some(_) => load_existing(db, id).await.map(Some),
                None => Ok(None),
            }
        }
    })
    .await
}

/// Forgets the keys the given jobs hold (they are being deleted).
pub(crate) async fn forget(db: &impl ConnectionTrait, ids: &[i64]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    unique_key::Entity::delete_many()
        .filter(unique_key::Column::JobId.is_in(ids.iter().copied()))
        .exec(db)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// The stored form of a job's key scope: the SHA-256 of it, in hex.
fn scope_of(job: &NewJob) -> Option<String> {
    let unique = job.unique.as_ref()?;
    let digest = Sha256::digest(unique.scope(&job.queue, &job.class).as_bytes());
    Some(hex::encode(digest))
}

/// Takes the key of `scope` for a job about to be stored, or returns the job that holds it.
/// Its own loop rather than `transition::until_applied`: what is compared and set is the key's
/// row (inserted by a concurrent claimant, or let go by its holder), not a job's `seq`.
async fn claim(
    db: &impl ConnectionTrait,
    flavor: Flavor,
    scope: &str,
    until: Option<i64>,
    now_ms: i64,
) -> Result<Option<JobId>> {
    for _ in 0..CAS_TRIES {
        // The key's row, locked, first: a key in use is then decided under an exclusive lock
        // at once. Inserting first would, on MySQL/MariaDB, take a shared lock on the existing
        // row that two claimants would both try to raise: a deadlock on every busy key.
        let held = match locked(db, flavor, scope).await? {
            Some(held) => held,
            None => {
                // A concurrent insert of the same scope waits here for the other's end.
                let row = unique_key::ActiveModel {
                    scope: Set(scope.to_owned()),
                    job_id: Set(0),
                    until: Set(until),
                };
                let insert = unique_key::Entity::insert(row).into_query();
                if insert_if_absent(db, flavor, insert).await? {
                    return Ok(None);
                }
                match locked(db, flavor, scope).await? {
                    Some(held) => held,
                    None => continue, // forgotten meanwhile: look again
                }
            }
        };
        if holds(db, &held, now_ms).await? {
            return Ok(Some(JobId(held.job_id)));
        }
        // Its holder let go: take it over, only from that holder.
        let until_was = match held.until {
            Some(at) => unique_key::Column::Until.eq(at),
            None => unique_key::Column::Until.is_null(),
        };
        let taken = unique_key::Entity::update_many()
            .col_expr(unique_key::Column::JobId, Expr::value(0i64))
            .col_expr(unique_key::Column::Until, Expr::value(until))
            .filter(unique_key::Column::Scope.eq(scope))
            .filter(unique_key::Column::JobId.eq(held.job_id))
            .filter(until_was)
            .exec(db)
            .await
            .map_err(db_error)?;
        if taken.rows_affected == 1 {
            return Ok(None);
        }
    }
    Err(backend_error(
        "a unique key kept changing hands; try again",
        true,
    ))
}

/// The key's row, locked until the commit where rows lock (SQLite's write lock does that).
async fn locked(
    db: &impl ConnectionTrait,
    flavor: Flavor,
    scope: &str,
) -> Result<Option<unique_key::Model>> {
    let mut select = unique_key::Entity::find_by_id(scope.to_owned());
    if flavor.locks_rows() {
        select = select.lock(LockType::Update);
    }
    select.one(db).await.map_err(db_error)
}

/// Whether the key is still taken: within its period, or (without one) while its job is live.
async fn holds(db: &impl ConnectionTrait, held: &unique_key::Model, now_ms: i64) -> Result<bool> {
    if let Some(until) = held.until {
        return Ok(now_ms < until);
    }
    let state: Option<String> = job::Entity::find_by_id(held.job_id)
        .select_only()
        .column(job::Column::State)
        .into_tuple()
        .one(db)
        .await
        .map_err(db_error)?;
    Ok(state
        .and_then(|s| s.parse::<JobState>().ok())
        .is_some_and(JobState::is_live))
}
