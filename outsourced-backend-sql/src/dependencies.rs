//! Dependencies: a job that waits for other jobs to succeed (issue 22).
//!
//! A dependant is stored `pending` with the ids it waits for (`depends_on`) and how many have
//! not succeeded yet (`dependencies_left`), and one edge per dependency in
//! `outsourced_dependencies`. Its enqueue first marks each dependency (`has_dependants`) with an
//! `UPDATE`, which takes the dependency's row lock, and only then reads the dependencies'
//! states: a dependency that ends after the mark finds the edge (its own change waits for the
//! enqueue's commit, or the enqueue waits for its commit and reads it ended), so no end goes
//! unseen. Only jobs with the mark look for dependants when they end (`Writes::flush`).
//!
//! The end of a dependency settles its dependants in its own transaction: a success counts
//! each one down with an `UPDATE` under its row lock, so that of two dependencies ending at once
//! exactly one sees the count reach 0 and makes the job runnable; a failure or a cancel cancels
//! each pending dependant, whose own dependants follow in turn.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, Value,
};

use crate::convert::ms;
use crate::entity::{dependency, history, job};
use crate::error::{backend_error, db_error};
use crate::lease::load;
use crate::transition::{CAS_TRIES, Step, Transition, Writes};
use outsourced_core::{Actor, Error, ErrorInfo, Event, JobId, JobState, NewJob, Reason, Result};

/// What a new job waits for: the ids as stored, and how many have not succeeded yet.
#[derive(Clone, Debug, Default)]
pub(crate) struct Waits {
    pub(crate) depends_on: Option<String>,
    pub(crate) left: i32,
}

/// Marks the dependencies of `jobs` and reads their states: what each job waits for, or
/// `InvalidInput` when one of them does not exist, failed, was cancelled or repeats (then the
/// caller's transaction is rolled back, marks and all).
pub(crate) async fn bind(db: &impl ConnectionTrait, jobs: &[&NewJob]) -> Result<Vec<Waits>> {
    let all: BTreeSet<i64> = jobs
        .iter()
        .flat_map(|job| job.depends_on.iter().map(|id| id.0))
        .collect();
    if all.is_empty() {
        return Ok(vec![Waits::default(); jobs.len()]);
    }
    // The mark first: it locks each dependency's row (in id order) before its state is read.
    job::Entity::update_many()
        .col_expr(job::Column::HasDependants, Expr::value(true))
        .filter(job::Column::Id.is_in(all.iter().copied()))
        .exec(db)
        .await
        .map_err(db_error)?;
    let states: HashMap<i64, (String, Option<String>)> = job::Entity::find()
        .select_only()
        .columns([job::Column::Id, job::Column::State, job::Column::Repeat])
        .filter(job::Column::Id.is_in(all.iter().copied()))
        .into_tuple::<(i64, String, Option<String>)>()
        .all(db)
        .await
        .map_err(db_error)?
        .into_iter()
        .map(|(id, state, repeat)| (id, (state, repeat)))
        .collect();
    jobs.iter().map(|job| waits(job, &states)).collect()
}

/// What `job` waits for, given the states of its dependencies.
fn waits(job: &NewJob, states: &HashMap<i64, (String, Option<String>)>) -> Result<Waits> {
    if job.depends_on.is_empty() {
        return Ok(Waits::default());
    }
    let ids: BTreeSet<i64> = job.depends_on.iter().map(|id| id.0).collect();
    let mut left = 0;
    for &id in &ids {
        let refused = |why: &str| {
            Error::invalid(format!(
                "job {id}, which this job would depend on, {why}; a job can only wait for a stored job that does not repeat and has not failed or been cancelled"
            ))
        };
        let Some((state, repeat)) = states.get(&id) else {
            return Err(refused("does not exist"));
        };
        if repeat.is_some() {
            return Err(refused("repeats"));
        }
        let state: JobState = state
            .parse()
            .map_err(|_| crate::error::corrupt(format!("job {id}: state {state:?}")))?;
        match state {
            JobState::Succeeded => {}
            JobState::Failed => return Err(refused("has failed")),
            JobState::Cancelled => return Err(refused("was cancelled")),
            _ => left += 1,
        }
    }
    let ids: Vec<i64> = ids.into_iter().collect();
    Ok(Waits {
        depends_on: Some(serde_json::json!(ids).to_string()),
        left,
    })
}

/// `Conflict` unless every job `row` depends on has succeeded: a retry must not run a job
/// past its dependencies (the one named is to be retried first).
pub(crate) async fn all_succeeded(db: &impl ConnectionTrait, row: &job::Model) -> Result<()> {
    let on = crate::convert::dependencies(row)?;
    if on.is_empty() {
        return Ok(());
    }
    let states: Vec<(i64, String)> = job::Entity::find()
        .select_only()
        .columns([job::Column::Id, job::Column::State])
        .filter(job::Column::Id.is_in(on.iter().map(|id| id.0)))
        .into_tuple()
        .all(db)
        .await
        .map_err(db_error)?;
    let unmet = on
        .iter()
        .find_map(|id| match states.iter().find(|(found, _)| *found == id.0) {
            Some((_, state)) if state == JobState::Succeeded.as_str() => None,
            Some((_, state)) => Some(format!("job {id}, which it depends on, is {state}")),
            None => Some(format!("job {id}, which it depends on, is gone")),
        });
    match unmet {
        None => Ok(()),
        Some(why) => Err(Error::conflict(format!(
            "cannot retry job {}: {why}; it runs only after its dependencies succeeded (retry that one first, then this one once it has succeeded)",
            row.id
        ))),
    }
}

/// Inserts the edges of stored jobs: `(dependant, its dependencies)`.
pub(crate) async fn link(db: &impl ConnectionTrait, stored: &[(i64, &[JobId])]) -> Result<()> {
    let edges: BTreeSet<(i64, i64)> = stored
        .iter()
        .flat_map(|&(dependant, on)| on.iter().map(move |id| (id.0, dependant)))
        .collect();
    let rows: Vec<dependency::ActiveModel> = edges
        .into_iter()
        .map(|(dependency_id, dependant_id)| dependency::ActiveModel {
            dependency_id: Set(dependency_id),
            dependant_id: Set(dependant_id),
        })
        .collect();
    for chunk in rows.chunks(1000) {
        dependency::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(db)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}

/// A job with dependants that ended: its end settles them.
#[derive(Clone, Debug)]
pub(crate) struct Ended {
    pub(crate) id: i64,
    pub(crate) state: JobState,
    /// Who ended it, named by its dependants' history rows.
    pub(crate) actor: Actor,
    pub(crate) at: DateTime<Utc>,
}

/// Settles the dependants of `ended` in the caller's transaction, their changes deferred into
/// `writes` (a dependant cancelled in turn is added to its ended jobs).
pub(crate) async fn settle(
    db: &impl ConnectionTrait,
    ended: Vec<Ended>,
    writes: &mut Writes,
) -> Result<()> {
    if ended.is_empty() {
        return Ok(());
    }
    let ids = ended.iter().map(|end| end.id);
    let edges: Vec<(i64, i64)> = dependency::Entity::find()
        .select_only()
        .columns([
            dependency::Column::DependencyId,
            dependency::Column::DependantId,
        ])
        .filter(dependency::Column::DependencyId.is_in(ids))
        .into_tuple()
        .all(db)
        .await
        .map_err(db_error)?;
    let by_id: HashMap<i64, &Ended> = ended.iter().map(|end| (end.id, end)).collect();
    // Dependants in id order, so that two transactions lock them in the same order.
    let mut dependants = BTreeMap::<i64, Vec<&Ended>>::new();
    for (dependency, dependant) in edges {
        if let Some(end) = by_id.get(&dependency) {
            dependants.entry(dependant).or_default().push(end);
        }
    }
    for (dependant, ends) in dependants {
        match ends.iter().find(|end| end.state != JobState::Succeeded) {
            Some(end) => cancel(db, dependant, end, writes).await?,
            None => count_down(db, dependant, &ends, writes).await?,
        }
    }
    Ok(())
}

/// Counts `ends` (successes) off a pending dependant; the one that reaches 0 makes it
/// runnable.
async fn count_down(
    db: &impl ConnectionTrait,
    dependant: i64,
    ends: &[&Ended],
    writes: &mut Writes,
) -> Result<()> {
    let Some(last) = ends.last() else {
        return Ok(());
    };
    let n = ends.len() as i32;
    let counted = job::Entity::update_many()
        .col_expr(
            job::Column::DependenciesLeft,
            Expr::col(job::Column::DependenciesLeft).sub(n),
        )
        .filter(job::Column::Id.eq(dependant))
        .filter(job::Column::State.eq(JobState::Pending.as_str()))
        .exec(db)
        .await
        .map_err(db_error)?;
    if counted.rows_affected == 0 {
        return Ok(()); // Not pending any more: cancelled meanwhile.
    }
    // Read under the row lock the count took: as of now, whatever committed before.
    let Some(row) = load(db, JobId(dependant)).await? else {
        return Ok(());
    };
    if row.dependencies_left > 0 {
        return Ok(());
    }
    let scheduled = row.run_at > ms(last.at);
    let step = Step {
        event: Some(Event::Unblock { scheduled }),
        reason: Reason::DependenciesSucceeded,
        attempt: 0,
        error: None,
        token: None,
        result: None,
    };
    let transition = Transition {
        row: &row,
        actor: &last.actor,
        steps: vec![step],
        set: Vec::new(),
    };
    if !transition.apply_deferred(db, last.at, writes).await? {
        return Err(backend_error(
            format!("job {dependant} changed while locked to be made runnable; try again"),
            true,
        ));
    }
    Ok(())
}

/// Cancels a pending dependant of `end`, which failed or was cancelled.
async fn cancel(
    db: &impl ConnectionTrait,
    dependant: i64,
    end: &Ended,
    writes: &mut Writes,
) -> Result<()> {
    let how = match end.state {
        JobState::Cancelled => "was cancelled",
        _ => "failed",
    };
    let error = ErrorInfo::new(format!("job {}, which it depends on, {how}", end.id));
    for _ in 0..CAS_TRIES {
        let Some(row) = load(db, JobId(dependant)).await? else {
            return Ok(());
        };
        if row.state != JobState::Pending.as_str() {
            return Ok(());
        }
        let step = Step {
            event: Some(Event::Cancel),
            reason: Reason::DependencyEnded,
            attempt: 0,
            error: Some(&error),
            token: None,
            result: None,
        };
        let transition = Transition {
            row: &row,
            actor: &end.actor,
            steps: vec![step],
            set: vec![(job::Column::LastError, Value::from(error.message.clone()))],
        };
        if transition.apply_deferred(db, end.at, writes).await? {
            return Ok(());
        }
    }
    Err(crate::lease::contended(JobId(dependant)))
}

/// The results of the dependencies of `jobs`, by job: the result of each one's success.
pub(crate) async fn results(
    db: &impl ConnectionTrait,
    of: impl IntoIterator<Item = JobId>,
) -> Result<HashMap<JobId, serde_json::Value>> {
    let ids: BTreeSet<i64> = of.into_iter().map(|id| id.0).collect();
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(i64, Option<String>)> = history::Entity::find()
        .select_only()
        .columns([history::Column::JobId, history::Column::Result])
        .filter(history::Column::JobId.is_in(ids))
        .filter(history::Column::Reason.eq(Reason::Completed.as_str()))
        .filter(history::Column::Result.is_not_null())
        .into_tuple()
        .all(db)
        .await
        .map_err(db_error)?;
    let mut results = HashMap::new();
    for (id, text) in rows {
        let Some(text) = text else { continue };
        let value = serde_json::from_str(&text)
            .map_err(|e| crate::error::corrupt(format!("job {id}: result: {e}")))?;
        results.insert(JobId(id), value);
    }
    Ok(results)
}
