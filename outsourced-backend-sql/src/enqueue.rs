//! Enqueue: validate, take the queue slots, insert the jobs and their first history rows, all
//! in one transaction, then wake the reservers.

use sea_orm::ConnectionTrait;

use crate::attachments;
use crate::backend::SqlBackend;
use crate::convert::{job_record, ms};
use crate::enqueue_group;
use crate::error::backend_error;
use crate::idempotency::{Answer, Idempotent, Keyed, Request, check_key};
use crate::insert::{Placed, insert_alone, insert_in};
use crate::observe::Events;
use outsourced_core::{Actor, Enqueued, Error, JobId, JobRecord, NewJob, Result, Upload};

/// Enqueues one job and returns it as stored.
pub(crate) async fn one(backend: &SqlBackend, by: &Actor, job: NewJob) -> Result<JobRecord> {
    let mut placed = insert(backend, by, vec![job]).await?;
    let placed = placed
        .pop()
        .ok_or_else(|| backend_error("the insert returned no row", false))?;
    job_record(&placed.row)
}

/// Enqueues jobs, all or none, and says of each what became of it, in order.
pub(crate) async fn batch(
    backend: &SqlBackend,
    by: &Actor,
    jobs: Vec<NewJob>,
) -> Result<Vec<Enqueued>> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let placed = insert(backend, by, jobs).await?;
    Ok(placed
        .into_iter()
        .map(|p| Enqueued {
            id: JobId(p.row.id),
            duplicate: p.duplicate,
        })
        .collect())
}

/// Enqueues one job with its attachment: the bytes first, as an unlinked upload, then the job
/// and the link in one transaction; a refused job takes its upload with it.
pub(crate) async fn with_attachment(
    backend: &SqlBackend,
    by: &Actor,
    job: NewJob,
    file: Upload,
) -> Result<(JobRecord, bool)> {
    job.check(backend.config().max_args_bytes)?;
    let stored = attachments::store(backend, file).await?;
    let txn = backend.begin_write().await?;
    let result = insert_and_link(&txn, backend, by, &job, &stored).await;
    match backend.finish(txn, result).await {
        Ok(placed) if placed.duplicate => {
            // The job that holds the key keeps its own attachment, if any.
            attachments::discard(backend, stored.id).await;
            backend.tell(Events::placed([(&placed.row, true)]));
            Ok((job_record(&placed.row)?, true))
        }
        Ok(Placed { row, .. }) => {
            backend.wake_for(std::slice::from_ref(&row));
            backend.tell(Events::enqueued([&row]));
            Ok((job_record(&row)?, false))
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
) -> Result<Placed> {
    let now = backend.now();
    let mut placed = insert_in(db, backend, by, std::slice::from_ref(job), now).await?;
    let placed = placed
        .pop()
        .ok_or_else(|| backend_error("the insert returned no row", false))?;
    if placed.duplicate {
        return Ok(placed);
    }
    backend.notify_in(db).await?;
    let mut row = placed.row;
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
    Ok(Placed::stored(row))
}

/// Validates the jobs, then stores them with whatever other enqueues are waiting to be
/// written (see `enqueue_group`).
async fn insert(backend: &SqlBackend, by: &Actor, jobs: Vec<NewJob>) -> Result<Vec<Placed>> {
    let config = backend.config();
    for job in &jobs {
        job.check(config.max_args_bytes)?;
    }
    // Unique jobs go in a transaction of their own: a claim may wait on another producer's
    // claim of the same key, which should not hold up a whole group. So do jobs that wait for
    // others, or join a batch: they lock their dependencies' rows, or their batch's, which
    // ends may hold.
    let placed = if jobs.iter().any(alone) {
        insert_alone(backend, by, &jobs).await?
    } else {
        let grouped = enqueue_group::submit(backend, by, jobs, None).await?;
        grouped.rows.into_iter().map(Placed::stored).collect()
    };
    Ok(placed)
}

/// Whether a job is stored in a transaction of its own rather than with a group (see above).
fn alone(job: &NewJob) -> bool {
    job.unique.is_some() || !job.depends_on.is_empty() || job.batch.is_some()
}

impl SqlBackend {
    /// Enqueues `jobs` for `request` unless its key was used before: then the first answer
    /// comes back and nothing is stored. `answer` turns the stored jobs (each with whether it
    /// was a duplicate of a unique key) into the answer to keep. A refused enqueue (full
    /// queue, say) keeps nothing: the same request may be sent again. Without unique keys the
    /// request rides the group commit of enqueues, as a request without a key does.
    pub async fn enqueue_idempotent(
        &self,
        by: &Actor,
        request: Request<'_>,
        jobs: Vec<NewJob>,
        answer: impl Fn(&[(JobRecord, bool)]) -> Answer + Send + Sync + 'static,
    ) -> Result<Idempotent> {
        check_key(request.key)?;
        for job in &jobs {
            job.check(self.config().max_args_bytes)?;
        }
        let keyed = Keyed {
            principal: request.principal.to_owned(),
            key: request.key.to_owned(),
            fingerprint: request.fingerprint.to_owned(),
            answer: std::sync::Arc::new(answer),
        };
        if !jobs.iter().any(alone) {
            return enqueue_group::keyed(self, by, keyed, jobs).await;
        }
        self.enqueue_once(by, &keyed, &jobs).await
    }
}
