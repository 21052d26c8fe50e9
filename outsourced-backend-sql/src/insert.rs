//! Storing new jobs in a transaction: their rows (with their queue slots and unique keys) and
//! their first history rows. The enqueue operations (`enqueue`) and the group commit
//! (`enqueue_group`) both store through here.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::NotSet, ConnectionTrait, EntityTrait, IntoActiveModel,
    QueryTrait,
};

use crate::backend::{SqlBackend, detached};
use crate::convert::{duration_ms, ms};
use crate::dialect::{Flavor, insert_one, insert_returning_ids};
use crate::entity::job;
use crate::error::backend_error;
use crate::lease::load_existing;
use crate::observe::Events;
use crate::slots;
use crate::transition::{Step, history_row, insert_history};
use crate::unique::{self, Fate};
use outsourced_core::{
    Actor, DEFAULT_MAX_ATTEMPTS, JobId, JobState, NewJob, OnDuplicate, Reason, Result,
    initial_state,
};

/// Job rows per insert statement, well under every database's limit on bound parameters.
const JOB_CHUNK: usize = 500;

/// Stores checked jobs alone, in a transaction of their own, in a task of its own: a caller
/// that goes away cannot cut the write mid-flight (a grouped enqueue runs in the group's task).
pub(crate) async fn insert_alone(
    backend: &SqlBackend,
    by: &Actor,
    jobs: &[NewJob],
) -> Result<Vec<Placed>> {
    let (backend, by, jobs) = (backend.clone(), by.clone(), jobs.to_vec());
    detached(async move {
        let (backend, by, jobs) = (&backend, &by, &jobs);
        let now = backend.now();
        let placed = backend
            .write(|txn| async move {
                let result = match insert_in(&txn, backend, by, jobs, now).await {
                    Ok(placed) => backend.notify_in(&txn).await.map(|()| placed),
                    error => error,
                };
                (txn, result)
            })
            .await?;
        backend.wake_for(&stored(&placed));
        backend.tell(Events::placed(placed.iter().map(Placed::event)));
        Ok(placed)
    })
    .await
}

/// How many of `jobs` go to each queue, queues in name order.
pub(crate) fn per_queue<'a>(jobs: impl IntoIterator<Item = &'a NewJob>) -> BTreeMap<&'a str, u64> {
    let mut per_queue = BTreeMap::<&str, u64>::new();
    for job in jobs {
        *per_queue.entry(job.queue.as_str()).or_default() += 1;
    }
    per_queue
}

/// One job of an enqueue as it ended: stored, or a duplicate answered with the job that
/// holds its unique key.
pub(crate) struct Placed {
    /// The stored job, or the one that holds the key.
    pub(crate) row: job::Model,
    /// Whether it is a duplicate (nothing was stored for it).
    pub(crate) duplicate: bool,
}

impl Placed {
    /// The row and whether it is a duplicate, as the observer hears of it.
    pub(crate) fn event(&self) -> (&job::Model, bool) {
        (&self.row, self.duplicate)
    }

    pub(crate) fn stored(row: job::Model) -> Self {
        Placed {
            row,
            duplicate: false,
        }
    }
}

/// The rows that were stored (not duplicates).
pub(crate) fn stored(placed: &[Placed]) -> Vec<job::Model> {
    placed
        .iter()
        .filter(|p| !p.duplicate)
        .map(|p| p.row.clone())
        .collect()
}

/// Who stores new jobs: the actor their first history rows name, the owner they are enqueued
/// by (the same, except for follow-ups), the job whose success stores them and its batch, if
/// any, and the batch whose callback they are, if they are one (stored pending until it ends).
pub(crate) struct Origin<'a> {
    pub(crate) actor: &'a Actor,
    pub(crate) owner: &'a Actor,
    pub(crate) parent: Option<i64>,
    /// The parent's batch: its follow-ups may join it after it was closed.
    pub(crate) parent_batch: Option<i64>,
    pub(crate) callback_of: Option<i64>,
}

/// Stores checked jobs in the caller's transaction; a job whose unique key is taken is not
/// stored and takes no queue slot.
pub(crate) async fn insert_in(
    db: &impl ConnectionTrait,
    backend: &SqlBackend,
    by: &Actor,
    jobs: &[NewJob],
    now: DateTime<Utc>,
) -> Result<Vec<Placed>> {
    let origin = Origin {
        actor: by,
        owner: by,
        parent: None,
        parent_batch: None,
        callback_of: None,
    };
    insert_from(db, backend, &origin, jobs, now).await
}

/// [`insert_in`] for jobs that `origin` stores: follow-ups are owned by their parent's owner,
/// while their history names the worker that asked for them.
pub(crate) async fn insert_from(
    db: &impl ConnectionTrait,
    backend: &SqlBackend,
    origin: &Origin<'_>,
    jobs: &[NewJob],
    now: DateTime<Utc>,
) -> Result<Vec<Placed>> {
    let flavor = backend.flavor();
    let fates = match jobs.iter().any(|job| job.unique.is_some()) {
        true => unique::resolve(db, flavor, jobs, ms(now)).await?,
        false => vec![Fate::Store; jobs.len()],
    };
    let to_store: Vec<&NewJob> = jobs
        .iter()
        .zip(&fates)
        .filter(|(_, fate)| **fate == Fate::Store)
        .map(|(job, _)| job)
        .collect();
    let waits = crate::dependencies::bind(db, &to_store).await?;
    crate::batches::join(db, &to_store, origin.parent_batch).await?;
    let create = backend
        .config()
        .create_queues_on_first_use
        .then_some((now, flavor));
    // Queues in name order, so that concurrent batches lock them in the same order.
    for (queue, n) in per_queue(to_store.iter().copied()) {
        slots::take(db, queue, n, create).await?;
    }
    let mut rows: Vec<job::Model> = to_store
        .iter()
        .zip(waits)
        .map(|(job, waits)| waiting_for(new_row(job, origin.owner, now), waits))
        .map(|row| job::Model {
            parent_id: origin.parent,
            ..row
        })
        .map(|row| match origin.callback_of {
            Some(batch) => job::Model {
                state: JobState::Pending.as_str().to_owned(),
                waiting: false,
                callback_of: Some(batch),
                ..row
            },
            None => row,
        })
        .collect();
    let actors = vec![origin.actor; rows.len()];
    store(db, flavor, &mut rows, &actors, now).await?;
    let bound: Vec<(&NewJob, i64)> = to_store
        .iter()
        .copied()
        .zip(rows.iter().map(|r| r.id))
        .collect();
    unique::bind(db, &bound).await?;
    let edges: Vec<(i64, &[JobId])> = bound
        .iter()
        .filter(|(job, _)| !job.depends_on.is_empty())
        .map(|(job, id)| (*id, job.depends_on.as_slice()))
        .collect();
    crate::dependencies::link(db, &edges).await?;
    let mut placed = place(db, fates, rows).await?;
    for (job, placed) in jobs.iter().zip(&mut placed) {
        let replaces = job.unique.as_ref().map(|u| u.on_duplicate) == Some(OnDuplicate::Replace);
        if placed.duplicate && replaces {
            let holder = placed.row.clone();
            placed.row = unique::replace(db, holder, job, origin.owner, now).await?;
        }
    }
    Ok(placed)
}

/// Each job's outcome from its fate and the rows stored, in the order of the jobs.
async fn place(
    db: &impl ConnectionTrait,
    fates: Vec<Fate>,
    rows: Vec<job::Model>,
) -> Result<Vec<Placed>> {
    let mut rows = rows.into_iter();
    let mut placed: Vec<Placed> = Vec::with_capacity(fates.len());
    for fate in fates {
        let next =
            match fate {
                Fate::Store => Placed::stored(rows.next().ok_or_else(|| {
                    backend_error("the insert returned fewer rows than jobs", false)
                })?),
                Fate::SameAs(first) => Placed {
                    row: placed[first].row.clone(),
                    duplicate: true,
                },
                Fate::DuplicateOf(id) => Placed {
                    row: load_existing(db, id).await?,
                    duplicate: true,
                },
            };
        placed.push(next);
    }
    Ok(placed)
}

/// Inserts new job rows (giving each its id), their first history rows and the counts'
/// deltas; `by[i]` enqueued `rows[i]`. On PostgreSQL one statement per chunk does all three
/// (`pg_batch::insert_new`).
pub(crate) async fn store(
    db: &impl ConnectionTrait,
    flavor: Flavor,
    rows: &mut [job::Model],
    by: &[&Actor],
    now: DateTime<Utc>,
) -> Result<()> {
    if flavor == Flavor::Postgres {
        // The rows, their history and the counts in one statement per chunk.
        for (chunk, by) in rows.chunks_mut(JOB_CHUNK).zip(by.chunks(JOB_CHUNK)) {
            let ids = crate::pg_batch::insert_new(db, insert_of(chunk), by, now).await?;
            for (row, id) in chunk.iter_mut().zip(ids) {
                row.id = id;
            }
        }
        return Ok(());
    }
    let ids = insert_rows(db, flavor, rows).await?;
    for (row, id) in rows.iter_mut().zip(ids) {
        row.id = id;
    }
    let history = rows
        .iter()
        .zip(by)
        .map(|(row, by)| first_history(row, by, now))
        .collect::<Result<_>>()?;
    insert_history(db, history).await?;
    let mut deltas = crate::counts::Deltas::default();
    for row in rows.iter() {
        deltas.moved(&row.queue, None, Some(crate::convert::state(row)?));
    }
    deltas.write(db).await
}

/// The row a new job starts as (its id is the database's to assign).
pub(crate) fn new_row(job: &NewJob, by: &Actor, now: DateTime<Utc>) -> job::Model {
    let run_at = job.first_run(now);
    let state = initial_state(run_at > now);
    job::Model {
        id: 0,
        queue: job.queue.clone(),
        class: job.class.clone(),
        args: job.args.to_string(),
        priority: job.priority,
        state: state.as_str().to_owned(),
        waiting: state.is_waiting(),
        run_at: ms(run_at),
        attempts: 0,
        max_attempts: job
            .max_attempts
            .unwrap_or(DEFAULT_MAX_ATTEMPTS)
            .min(i32::MAX as u32) as i32,
        max_run_time_ms: job.max_run_time.map(duration_ms),
        backoff: job.backoff.to_string(),
        repeat: job.repeat.as_ref().map(|r| r.to_string()),
        owner_type: job.owner.as_ref().map(|o| o.kind.clone()),
        owner_id: job.owner.as_ref().map(|o| o.id.clone()),
        enqueued_by: by.to_string(),
        cancel_requested: false,
        lease_token: None,
        lease_worker: None,
        lease_instance: None,
        lease_expires_at: None,
        lease_ms: None,
        seq: 1,
        last_error: None,
        created_at: ms(now),
        updated_at: ms(now),
        finished_at: None,
        attachment_id: None,
        attachment_size: None,
        attachment_sha256: None,
        attachment_name: None,
        attachment_type: None,
        attachment_at: None,
        started_at: None,
        unique_key: job.unique.as_ref().map(|u| u.key.clone()),
        concurrency_key: job.concurrency_key.clone(),
        parent_id: None,
        depends_on: None,
        dependencies_left: 0,
        has_dependants: false,
        batch_id: job.batch.map(|b| b.0),
        callback_of: None,
    }
}

/// A new row that waits for its dependencies: pending while any has not succeeded.
fn waiting_for(row: job::Model, waits: crate::dependencies::Waits) -> job::Model {
    if waits.left == 0 {
        return job::Model {
            depends_on: waits.depends_on,
            ..row
        };
    }
    job::Model {
        state: JobState::Pending.as_str().to_owned(),
        waiting: false,
        depends_on: waits.depends_on,
        dependencies_left: waits.left,
        ..row
    }
}

/// Inserts the rows and returns their ids, in order: a chunk per statement, or (on MySQL,
/// which cannot return them) a row per statement.
async fn insert_rows(
    db: &impl ConnectionTrait,
    flavor: Flavor,
    rows: &[job::Model],
) -> Result<Vec<i64>> {
    let mut ids = Vec::with_capacity(rows.len());
    if flavor == Flavor::MySql {
        for row in rows {
            let insert = insert_of(std::slice::from_ref(row));
            ids.push(insert_one(db, flavor, insert).await?);
        }
        return Ok(ids);
    }
    for chunk in rows.chunks(JOB_CHUNK) {
        let insert = insert_of(chunk);
        ids.extend(insert_returning_ids(db, flavor, insert).await?);
    }
    Ok(ids)
}

/// An insert of these rows, every column written but the id the database assigns.
fn insert_of(rows: &[job::Model]) -> sea_orm::sea_query::InsertStatement {
    let models = rows.iter().map(|row| {
        let mut model = row.clone().into_active_model().reset_all();
        model.id = NotSet;
        model
    });
    job::Entity::insert_many(models).into_query()
}

fn first_history(
    row: &job::Model,
    by: &Actor,
    now: DateTime<Utc>,
) -> Result<crate::entity::history::ActiveModel> {
    let state = crate::convert::state(row)?;
    let step = Step {
        event: None,
        reason: Reason::Enqueued,
        attempt: 0,
        error: None,
        token: None,
        result: None,
    };
    Ok(history_row(row.id, 1, None, state, &step, now, by))
}
