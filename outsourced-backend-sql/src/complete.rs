//! Complete: the job succeeded; a repeating one is scheduled for its next run.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::LockType;
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Value,
};

use crate::backend::SqlBackend;
use crate::convert::{self, ms};
use crate::dialect::Flavor;
use crate::entity::job;
use crate::error::{corrupt, db_error};
use crate::lease::{Check, check_row, contended, holds, load_existing};
use crate::observe::Events;
use crate::pg_batch::{self, Ran};
use crate::transition::CAS_TRIES;
use crate::transition::{BatchTransition, Step, Transition, Writes};
use outsourced_core::{
    Actor, Completion, Error, Event, JobState, LeaseRef, Reason, Repeat, Result, WorkerInstance,
};

/// Completes each lease in one transaction; each gets its own answer. A success with
/// follow-ups takes a transaction of its own (`follow_ups`), so that a refused follow-up
/// refuses that success alone.
pub(crate) async fn complete_batch(
    backend: &SqlBackend,
    by: &WorkerInstance,
    done: &[Completion],
) -> Result<Vec<Result<()>>> {
    if done.iter().all(|d| d.follow_ups.is_empty()) {
        return complete_plain(backend, by, done).await;
    }
    let (leading, plain): (Vec<_>, Vec<_>) = done.iter().partition(|d| !d.follow_ups.is_empty());
    let plain: Vec<Completion> = plain.into_iter().cloned().collect();
    let mut plain_answers = complete_plain(backend, by, &plain).await?.into_iter();
    let mut leading_answers = Vec::with_capacity(leading.len());
    for one in leading {
        match crate::follow_ups::complete(backend, by, one).await {
            Err(error @ Error::Backend { .. }) => return Err(error),
            answer => leading_answers.push(answer),
        }
    }
    let mut leading_answers = leading_answers.into_iter();
    let answers = done.iter().map(|d| match d.follow_ups.is_empty() {
        true => plain_answers.next(),
        false => leading_answers.next(),
    });
    answers
        .map(|answer| answer.ok_or_else(|| corrupt("a completion went unanswered")))
        .collect()
}

/// Completes leases without follow-ups in one transaction.
async fn complete_plain(
    backend: &SqlBackend,
    by: &WorkerInstance,
    done: &[Completion],
) -> Result<Vec<Result<()>>> {
    if done.is_empty() {
        return Ok(Vec::new());
    }
    let now = backend.now();
    let flavor = backend.flavor();
    // A result that is not acceptable is that completion's answer, checked before any write.
    let results: Vec<Result<Option<String>>> = done.iter().map(result_text).collect();
    let results = &results;
    let (answers, events) = backend
        .write(|txn| async move {
            let result = complete_in(&txn, flavor, by, done, results, now).await;
            (txn, result)
        })
        .await?;
    backend.tell(events);
    Ok(answers)
}

/// The completion's result as the JSON text to store, or why it is refused.
fn result_text(done: &Completion) -> Result<Option<String>> {
    done.check()?;
    Ok(done.result.as_ref().map(|value| value.to_string()))
}

async fn complete_in(
    db: &impl ConnectionTrait,
    flavor: Flavor,
    by: &WorkerInstance,
    done: &[Completion],
    results: &[Result<Option<String>>],
    now: DateTime<Utc>,
) -> Result<(Vec<Result<()>>, Events)> {
    let mut answered = HashMap::<&LeaseRef, Result<()>>::new();
    // Each lease once (the same lease twice in one batch gets the same answer twice).
    let mut seen = HashSet::new();
    let mut todo = Vec::new();
    for (Completion { lease, .. }, result) in done.iter().zip(results) {
        if !seen.insert(lease) {
            continue;
        }
        match result {
            Ok(result) => todo.push(Ran {
                lease,
                result: result.as_deref(),
            }),
            Err(refused) => {
                answered.insert(lease, Err(refused.clone()));
            }
        }
    }
    let mut writes = Writes::default();
    let rest = match flavor {
        Flavor::Postgres => {
            let ended = pg_batch::complete(db, by, &todo, now, &mut writes).await?;
            for &lease in &ended {
                answered.insert(lease, Ok(()));
            }
            todo.retain(|ran| !ended.contains(ran.lease));
            todo.into_iter().map(|ran| (ran, None)).collect()
        }
        _ => {
            let rows = read_locked(db, flavor.locks_rows(), &todo).await?;
            let rest = plain(db, by, todo, &rows, now, &mut writes).await?;
            for &lease in rest.ended.iter() {
                answered.insert(lease, Ok(()));
            }
            rest.others
        }
    };
    for (ran, row) in rest {
        let lease = ran.lease;
        let result = complete_one(db, by, ran, row, now, &mut writes).await;
        // A failure of the database itself fails the whole batch (the transaction may be
        // unusable); a stale or unknown lease is that lease's answer alone.
        if let Err(error @ Error::Backend { .. }) = result {
            return Err(error);
        }
        answered.insert(lease, result);
    }
    let events = writes.flush(db).await?;
    let answers = done.iter().map(|d| answered[&d.lease].clone()).collect();
    Ok((answers, events))
}

/// The batch's jobs, read in one statement and locked (in id order, so that two batches never
/// wait on each other crosswise) until the commit; SQLite's write lock does the same.
pub(crate) async fn read_locked(
    db: &impl ConnectionTrait,
    lock_rows: bool,
    todo: &[Ran<'_>],
) -> Result<HashMap<i64, job::Model>> {
    let ids = todo.iter().map(|ran| ran.lease.job_id.0);
    let mut select = job::Entity::find()
        .filter(job::Column::Id.is_in(ids))
        .order_by_asc(job::Column::Id);
    if lock_rows {
        select = select.lock(LockType::Update);
    }
    let rows = select.all(db).await.map_err(db_error)?;
    Ok(rows.into_iter().map(|row| (row.id, row)).collect())
}

/// What the plain case left: the leases it completed, and the others with their rows.
struct Plain<'a> {
    ended: Vec<&'a LeaseRef>,
    others: Vec<(Ran<'a>, Option<job::Model>)>,
}

/// Completes the plain case, held leases of jobs that do not repeat, all at once, in one
/// `UPDATE`; leaves the others to be done one by one.
async fn plain<'a>(
    db: &impl ConnectionTrait,
    by: &WorkerInstance,
    todo: Vec<Ran<'a>>,
    rows: &HashMap<i64, job::Model>,
    now: DateTime<Utc>,
    writes: &mut Writes,
) -> Result<Plain<'a>> {
    let actor = Actor::Worker(by.clone());
    let mut batch = Vec::new();
    let mut rest = Plain {
        ended: Vec::new(),
        others: Vec::new(),
    };
    for ran in todo {
        match rows.get(&ran.lease.job_id.0) {
            Some(row) if holds(row, by, &ran.lease.token) && row.repeat.is_none() => {
                batch.push((row, completed(row, &ran.lease.token, ran.result)));
                rest.ended.push(ran.lease);
            }
            row => rest.others.push((ran, row.cloned())),
        }
    }
    let batch = BatchTransition {
        rows: batch,
        from: JobState::Running,
        event: Event::Complete,
        actor: &actor,
    };
    batch.apply_deferred(db, now, writes).await?;
    Ok(rest)
}

/// The `completed` step of a held lease, with the attempt's result.
fn completed<'a>(row: &job::Model, token: &'a str, result: Option<&'a str>) -> Step<'a> {
    Step {
        event: Some(Event::Complete),
        reason: Reason::Completed,
        attempt: row.attempts.max(0) as u32,
        error: None,
        token: Some(token),
        result,
    }
}

/// Completes one lease; `row` is the job as read with the batch, if it exists.
pub(crate) async fn complete_one(
    db: &impl ConnectionTrait,
    by: &WorkerInstance,
    ran: Ran<'_>,
    mut row: Option<job::Model>,
    now: DateTime<Utc>,
    writes: &mut Writes,
) -> Result<()> {
    let lease = ran.lease;
    let actor = Actor::Worker(by.clone());
    // Not `until_applied`: each try defers its writes into the batch's `writes`, a borrow that
    // a closure run again and again cannot hand out.
    for _ in 0..CAS_TRIES {
        let read = match row.take() {
            Some(read) => read,
            None => load_existing(db, lease.job_id).await?,
        };
        let row = match check_row(db, read, by, lease, &[Reason::Completed]).await? {
            Check::Held(row) => row,
            Check::Repeated(_) => return Ok(()),
        };
        let attempt = row.attempts.max(0) as u32;
        let mut steps = vec![completed(&row, &lease.token, ran.result)];
        let mut set = Vec::new();
        let next = repeat_of(&row)?.and_then(|r| r.next_after(convert::time(row.run_at), now));
        if let Some(next) = next
            && !row.cancel_requested
        {
            steps.push(Step {
                event: Some(Event::Repeat),
                reason: Reason::Repeat,
                attempt,
                error: None,
                token: None,
                result: None,
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
        if transition.apply_deferred(db, now, writes).await? {
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
