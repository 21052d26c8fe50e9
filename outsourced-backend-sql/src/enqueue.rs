//! Enqueue: validate, take the queue slots, insert the jobs and their first history rows, all
//! in one transaction, then wake the reservers.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ActiveValue::NotSet, ConnectionTrait, EntityTrait, IntoActiveModel,
    QueryTrait,
};

use crate::attachments;
use crate::backend::SqlBackend;
use crate::convert::{duration_ms, job_record, ms};
use crate::dialect::{Flavor, insert_one, insert_returning_ids};
use crate::entity::job;
use crate::slots;
use crate::transition::{Step, history_row, insert_history};
use outsourced_core::{
    Actor, DEFAULT_MAX_ATTEMPTS, Error, JobId, JobRecord, NewJob, Reason, Result, Upload,
    initial_state,
};

/// Job rows per insert statement, well under every database's limit on bound parameters.
const JOB_CHUNK: usize = 500;

/// Enqueues one job and returns it as stored.
pub(crate) async fn one(backend: &SqlBackend, by: &Actor, job: NewJob) -> Result<JobRecord> {
    let mut rows = insert(backend, by, vec![job]).await?;
    let row = rows.pop().ok_or_else(|| Error::Backend {
        backend: "sql",
        message: "the insert returned no row".into(),
        retryable: false,
        source: None,
    })?;
    job_record(&row)
}

/// Enqueues jobs, all or none, and returns their ids in order.
pub(crate) async fn batch(
    backend: &SqlBackend,
    by: &Actor,
    jobs: Vec<NewJob>,
) -> Result<Vec<JobId>> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let rows = insert(backend, by, jobs).await?;
    Ok(rows.into_iter().map(|row| JobId(row.id)).collect())
}

/// Enqueues one job with its attachment: the bytes first, as an unlinked upload, then the job
/// and the link in one transaction; a refused job takes its upload with it.
pub(crate) async fn with_attachment(
    backend: &SqlBackend,
    by: &Actor,
    job: NewJob,
    file: Upload,
) -> Result<JobRecord> {
    job.check(backend.config().max_args_bytes)?;
    let stored = attachments::store(backend, file).await?;
    let txn = backend.begin_write().await?;
    let result = insert_and_link(&txn, backend, by, &job, &stored).await;
    match backend.finish(txn, result).await {
        Ok(row) => {
            backend.wake();
            job_record(&row)
        }
        Err(error) => {
            attachments::discard(backend, stored.id).await;
            Err(error)
        }
    }
}

async fn insert_and_link(
    db: &impl ConnectionTrait,
    backend: &SqlBackend,
    by: &Actor,
    job: &NewJob,
    stored: &attachments::Stored,
) -> Result<job::Model> {
    let now = backend.now();
    let mut rows = insert_in(db, backend, by, std::slice::from_ref(job), now).await?;
    let mut row = rows.pop().ok_or_else(|| Error::Backend {
        backend: "sql",
        message: "the insert returned no row".into(),
        retryable: false,
        source: None,
    })?;
    if !attachments::link(db, row.id, stored).await? {
        return Err(Error::conflict("the new job could not take its attachment"));
    }
    let info = &stored.info;
    row.attachment_id = Some(stored.id);
    row.attachment_size = Some(info.size as i64);
    row.attachment_sha256 = Some(info.sha256.clone());
    row.attachment_name = info.file_name.clone();
    row.attachment_type = Some(info.content_type.clone());
    row.attachment_at = Some(ms(info.created_at));
    Ok(row)
}

async fn insert(backend: &SqlBackend, by: &Actor, jobs: Vec<NewJob>) -> Result<Vec<job::Model>> {
    let config = backend.config();
    for job in &jobs {
        job.check(config.max_args_bytes)?;
    }
    let now = backend.now();
    let txn = backend.begin_write().await?;
    let result = insert_in(&txn, backend, by, &jobs, now).await;
    let rows = backend.finish(txn, result).await?;
    backend.wake();
    Ok(rows)
}

/// Stores checked jobs in the caller's transaction.
pub(crate) async fn insert_in(
    db: &impl ConnectionTrait,
    backend: &SqlBackend,
    by: &Actor,
    jobs: &[NewJob],
    now: DateTime<Utc>,
) -> Result<Vec<job::Model>> {
    let config = backend.config();
    let mut rows: Vec<job::Model> = jobs.iter().map(|job| new_row(job, by, now)).collect();
    // Queues in name order, so that concurrent batches lock them in the same order.
    let mut per_queue = BTreeMap::<&str, u64>::new();
    for job in jobs {
        *per_queue.entry(job.queue.as_str()).or_default() += 1;
    }
    let create = config
        .create_queues_on_first_use
        .then_some((now, backend.flavor()));
    for (queue, n) in per_queue {
        slots::take(db, queue, n, create).await?;
    }
    let ids = insert_rows(db, backend.flavor(), &rows).await?;
    for (row, id) in rows.iter_mut().zip(ids) {
        row.id = id;
    }
    insert_history(
        db,
        rows.iter().map(|row| first_history(row, by, now)).collect(),
    )
    .await?;
    for row in &rows {
        crate::observe::record(row, crate::observe::Happened::Enqueued);
    }
    Ok(rows)
}

/// The row a new job starts as (its id is the database's to assign).
fn new_row(job: &NewJob, by: &Actor, now: DateTime<Utc>) -> job::Model {
    let run_at = job.run_at.unwrap_or(now);
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
    }
}

/// Inserts the rows and returns their ids, in order: a chunk per statement, or (on MySQL,
/// which cannot return them) a row per statement.
async fn insert_rows(
    db: &impl ConnectionTrait,
    flavor: Flavor,
    rows: &[job::Model],
) -> Result<Vec<i64>> {
    let models = |chunk: &[job::Model]| {
        chunk
            .iter()
            .map(|row| {
                // Every column is written, except the id the database assigns.
                let mut model = row.clone().into_active_model().reset_all();
                model.id = NotSet;
                model
            })
            .collect::<Vec<_>>()
    };
    let mut ids = Vec::with_capacity(rows.len());
    if flavor == Flavor::MySql {
        for row in rows {
            let insert = job::Entity::insert_many(models(std::slice::from_ref(row))).into_query();
            ids.push(insert_one(db, flavor, insert).await?);
        }
        return Ok(ids);
    }
    for chunk in rows.chunks(JOB_CHUNK) {
        let insert = job::Entity::insert_many(models(chunk)).into_query();
        ids.extend(insert_returning_ids(db, flavor, insert).await?);
    }
    Ok(ids)
}

fn first_history(
    row: &job::Model,
    by: &Actor,
    now: DateTime<Utc>,
) -> crate::entity::history::ActiveModel {
    let state = initial_state(row.run_at > ms(now));
    let step = Step {
        event: None,
        reason: Reason::Enqueued,
        attempt: 0,
        error: None,
        token: None,
    };
    history_row(row.id, 1, None, state, &step, now, by)
}
