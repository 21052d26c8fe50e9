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
use crate::store::nonces::Seen;
use outsourced_core::{Actor, Enqueued, Error, JobId, JobRecord, NewJob, Result, Upload};

/// Enqueues one job and returns it as stored; with a signed request's `nonce` (see
/// [`SqlBackend::enqueue_signed`]).
pub(crate) async fn one(
    backend: &SqlBackend,
    by: &Actor,
    job: NewJob,
    nonce: Option<Seen>,
) -> Result<JobRecord> {
    let mut placed = insert(backend, by, vec![job], nonce).await?;
    let placed = placed
        .pop()
        .ok_or_else(|| backend_error("the insert returned no row", false))?;
    job_record(&placed.row)
}

/// Enqueues jobs, all or none, and says of each what became of it, in order; with a signed
/// request's `nonce` (see [`SqlBackend::enqueue_signed`]).
pub(crate) async fn batch(
    backend: &SqlBackend,
    by: &Actor,
    jobs: Vec<NewJob>,
    nonce: Option<Seen>,
) -> Result<Vec<Enqueued>> {
    if jobs.is_empty() {
        record_first(backend, nonce.as_ref()).await?;
        return Ok(Vec::new());
    }
    let placed = insert(backend, by, jobs, nonce).await?;
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
/// written (see `enqueue_group`), and the signed request's `nonce` with them.
async fn insert(
    backend: &SqlBackend,
    by: &Actor,
    jobs: Vec<NewJob>,
    nonce: Option<Seen>,
) -> Result<Vec<Placed>> {
    let max_args = backend.config().max_args_bytes;
    let checked = jobs.iter().try_for_each(|job| job.check(max_args));
    // Unique jobs go in a transaction of their own: a claim may wait on another producer's
    // claim of the same key, which should not hold up a whole group. So do jobs that wait for
    // others, or join a batch: they lock their dependencies' rows, or their batch's, which
    // ends may hold.
    if checked.is_err() || jobs.iter().any(alone) {
        record_first(backend, nonce.as_ref()).await?;
        checked?;
        return insert_alone(backend, by, &jobs).await;
    }
    let grouped = enqueue_group::submit(backend, by, jobs, None, nonce).await?;
    Ok(grouped.rows.into_iter().map(Placed::stored).collect())
}

/// Records a signed request's nonce in a transaction of its own, for a request refused before
/// its jobs' transaction or stored outside the group commit: first, so that a request used
/// once is refused before it changes anything.
async fn record_first(backend: &SqlBackend, nonce: Option<&Seen>) -> Result<()> {
    match nonce {
        Some(nonce) => enqueue_group::remember(backend, nonce).await,
        None => Ok(()),
    }
}

/// Whether a job is stored in a transaction of its own rather than with a group (see above).
fn alone(job: &NewJob) -> bool {
    job.unique.is_some() || !job.depends_on.is_empty() || job.batch.is_some()
}

impl SqlBackend {
    /// `Backend::enqueue` for a signed request whose `nonce` is not recorded yet: it is
    /// recorded in the transaction that stores the job (the group commit of enqueues), so that
    /// the request costs one commit where a nonce of its own would make two in a row. A nonce
    /// used before is refused (`Error::Unauthorized` with code `nonce_used`) and nothing is
    /// stored; a refused request (a full queue, a bad job) has its nonce recorded all the same,
    /// so that it cannot be sent again once it would succeed. Should the database fail, the
    /// request fails and its nonce may stay unrecorded, as nothing else of it is.
    pub async fn enqueue_signed(&self, by: &Actor, job: NewJob, nonce: Seen) -> Result<JobRecord> {
        one(self, by, job, Some(nonce)).await
    }

    /// `Backend::enqueue_each` for a signed request, its nonce recorded as
    /// [`enqueue_signed`](SqlBackend::enqueue_signed) says.
    pub async fn enqueue_each_signed(
        &self,
        by: &Actor,
        jobs: Vec<NewJob>,
        nonce: Seen,
    ) -> Result<Vec<Enqueued>> {
        batch(self, by, jobs, Some(nonce)).await
    }

    /// Enqueues `jobs` for `request` unless its key was used before: then the first answer
    /// comes back and nothing is stored. `answer` turns the stored jobs (each with whether it
    /// was a duplicate of a unique key) into the answer to keep. A refused enqueue (full
    /// queue, say) keeps nothing: the same request may be sent again. Without unique keys the
    /// request rides the group commit of enqueues, as a request without a key does. With a
    /// signed request's `nonce`, as [`enqueue_signed`](SqlBackend::enqueue_signed) says.
    pub async fn enqueue_idempotent(
        &self,
        by: &Actor,
        request: Request<'_>,
        jobs: Vec<NewJob>,
        answer: impl Fn(&[(JobRecord, bool)]) -> Answer + Send + Sync + 'static,
        nonce: Option<Seen>,
    ) -> Result<Idempotent> {
        let max_args = self.config().max_args_bytes;
        let checked = check_key(request.key)
            .and_then(|()| jobs.iter().try_for_each(|job| job.check(max_args)));
        let keyed = Keyed {
            principal: request.principal.to_owned(),
            key: request.key.to_owned(),
            fingerprint: request.fingerprint.to_owned(),
            answer: std::sync::Arc::new(answer),
        };
        if checked.is_ok() && !jobs.iter().any(alone) {
            return enqueue_group::keyed(self, by, keyed, jobs, nonce).await;
        }
        record_first(self, nonce.as_ref()).await?;
        checked?;
        self.enqueue_once(by, &keyed, &jobs).await
    }
}
