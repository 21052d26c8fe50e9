//! Attachments: a job's one file, stored as chunk rows of an upload, linked to the job in the
//! transaction that enqueues it or in one of its own.
//!
//! The bytes go in chunk by chunk as they arrive (each chunk a short write of its own, so a
//! large upload never holds the write lock, and neither side keeps more than a chunk in
//! memory) into an upload that is not yet linked; only the linking transaction makes them the
//! job's. An upload that fails is deleted at once; one whose process died is pruned a day on.

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QuerySelect, QueryTrait,
};
use sha2::{Digest, Sha256};

use crate::backend::SqlBackend;
use crate::convert::{DEFAULT_MEDIA_TYPE, attachment_info, ms};
use crate::dialect::insert_one;
use crate::entity::{chunk, job, upload};
use crate::error::{corrupt, db_error};
use crate::lease::load_existing;
use outsourced_core::{AttachmentInfo, ByteStream, Download, Error, JobId, Result, Upload};

/// Bytes per chunk row.
pub(crate) const CHUNK: usize = 1 << 20;

/// How long an upload may stay unlinked before it counts as abandoned.
const ABANDONED_AFTER: chrono::Duration = chrono::Duration::days(1);

/// An upload stored and checked, not yet any job's.
pub(crate) struct Stored {
    pub(crate) id: i64,
    pub(crate) info: AttachmentInfo,
}

/// Stores `file` as a new unlinked upload. When anything is wrong (too large, a checksum
/// other than the one promised, a failing stream) nothing of it is kept.
pub(crate) async fn store(backend: &SqlBackend, file: Upload) -> Result<Stored> {
    file.check()?;
    let now = backend.now();
    let row = upload::ActiveModel {
        linked: Set(false),
        created_at: Set(ms(now)),
        ..Default::default()
    };
    let insert = upload::Entity::insert(row).into_query();
    let id = insert_one(backend.connection(), backend.flavor(), insert).await?;
    let limit = backend.config().max_attachment_bytes;
    let written = write_chunks(backend.connection(), id, file.body, limit).await;
    let checked = written.and_then(|(size, sha256)| match &file.sha256 {
        Some(promised) if !promised.eq_ignore_ascii_case(&sha256) => Err(Error::invalid(format!(
            "the attachment's SHA-256 is {sha256}, not the {promised} it was sent with"
        ))),
        _ => Ok((size, sha256)),
    });
    match checked {
        Ok((size, sha256)) => Ok(Stored {
            id,
            info: AttachmentInfo {
                file_name: file.file_name,
                content_type: file
                    .content_type
                    .unwrap_or_else(|| DEFAULT_MEDIA_TYPE.to_owned()),
                size,
                sha256,
                created_at: now,
            },
        }),
        Err(error) => {
            discard(backend, id).await;
            Err(error)
        }
    }
}

/// Writes the stream as chunk rows of upload `id`; returns its size and SHA-256 (hex).
async fn write_chunks(
    db: &DatabaseConnection,
    id: i64,
    mut body: ByteStream,
    limit: u64,
) -> Result<(u64, String)> {
    let mut hasher = Sha256::new();
    let mut buffer = Vec::with_capacity(CHUNK);
    let (mut n, mut size) = (0, 0u64);
    while let Some(piece) = body.next().await {
        let piece = piece?;
        size += piece.len() as u64;
        if size > limit {
            return Err(Error::TooLarge { limit });
        }
        hasher.update(&piece);
        let mut rest = &piece[..];
        while !rest.is_empty() {
            let take = (CHUNK - buffer.len()).min(rest.len());
            buffer.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if buffer.len() == CHUNK {
                let full = std::mem::replace(&mut buffer, Vec::with_capacity(CHUNK));
                insert_chunk(db, id, n, full).await?;
                n += 1;
            }
        }
    }
    if !buffer.is_empty() {
        insert_chunk(db, id, n, buffer).await?;
    }
    Ok((size, format!("{:x}", hasher.finalize())))
}

async fn insert_chunk(
    db: &DatabaseConnection,
    upload_id: i64,
    n: i32,
    data: Vec<u8>,
) -> Result<()> {
    let row = chunk::ActiveModel {
        upload_id: Set(upload_id),
        n: Set(n),
        data: Set(data),
    };
    chunk::Entity::insert(row)
        .exec_without_returning(db)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Deletes an upload that will not be linked, logging (not returning) a failure: the caller
/// already has the error that matters, and an upload left behind is pruned later.
pub(crate) async fn discard(backend: &SqlBackend, id: i64) {
    if let Err(error) = delete_uploads(backend.connection(), &[id]).await {
        tracing::warn!(%error, upload = id, "could not delete a refused upload; prune will");
    }
}

/// Deletes uploads and their chunks.
async fn delete_uploads(db: &impl ConnectionTrait, ids: &[i64]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    chunk::Entity::delete_many()
        .filter(chunk::Column::UploadId.is_in(ids.iter().copied()))
        .exec(db)
        .await
        .map_err(db_error)?;
    upload::Entity::delete_many()
        .filter(upload::Column::Id.is_in(ids.iter().copied()))
        .exec(db)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// In the caller's transaction, makes the stored upload job `job_id`'s attachment, if the job
/// has none and no worker has leased it yet; returns whether it did.
pub(crate) async fn link(db: &impl ConnectionTrait, job_id: i64, stored: &Stored) -> Result<bool> {
    let info = &stored.info;
    let linked = job::Entity::update_many()
        .col_expr(job::Column::AttachmentId, Expr::value(stored.id))
        .col_expr(job::Column::AttachmentSize, Expr::value(info.size as i64))
        .col_expr(
            job::Column::AttachmentSha256,
            Expr::value(info.sha256.clone()),
        )
        .col_expr(
            job::Column::AttachmentName,
            Expr::value(info.file_name.clone()),
        )
        .col_expr(
            job::Column::AttachmentType,
            Expr::value(info.content_type.clone()),
        )
        .col_expr(job::Column::AttachmentAt, Expr::value(ms(info.created_at)))
        .filter(job::Column::Id.eq(job_id))
        .filter(job::Column::Waiting.eq(true))
        .filter(job::Column::Attempts.eq(0))
        .filter(job::Column::AttachmentId.is_null())
        .exec(db)
        .await
        .map_err(db_error)?;
    if linked.rows_affected != 1 {
        return Ok(false);
    }
    upload::Entity::update_many()
        .col_expr(upload::Column::Linked, Expr::value(true))
        .filter(upload::Column::Id.eq(stored.id))
        .exec(db)
        .await
        .map_err(db_error)?;
    Ok(true)
}

/// Why a link was refused: the job is unknown, or it already ran or has an attachment.
pub(crate) async fn refusal(backend: &SqlBackend, id: JobId) -> Error {
    match load_existing(backend.connection(), id).await {
        Ok(row) if row.attachment_id.is_some() => {
            Error::conflict(format!("job {id} already has an attachment"))
        }
        Ok(row) => Error::conflict(format!(
            "job {id} is {} after {} attempt(s): attach a file before any worker leases the job",
            row.state, row.attempts
        )),
        Err(error) => error,
    }
}

/// Stores `file` and links it to job `id` (waiting, with no attachment yet), or discards it
/// and says why not.
pub(crate) async fn attach(
    backend: &SqlBackend,
    id: JobId,
    file: Upload,
) -> Result<AttachmentInfo> {
    let stored = store(backend, file).await?;
    let txn = backend.begin_write().await?;
    let result = link(&txn, id.0, &stored).await;
    let linked = backend.finish(txn, result).await;
    match linked {
        Ok(true) => Ok(stored.info),
        refused => {
            discard(backend, stored.id).await;
            Err(match refused {
                Err(error) => error,
                _ => refusal(backend, id).await,
            })
        }
    }
}

/// A job's attachment, its chunks read one at a time as the stream is polled.
pub(crate) async fn download(backend: &SqlBackend, id: JobId) -> Result<Download> {
    let row = load_existing(backend.reader(), id).await?;
    let (Some(info), Some(upload_id)) = (attachment_info(&row), row.attachment_id) else {
        return Err(Error::NoAttachment { id });
    };
    let chunks = info.size.div_ceil(CHUNK as u64) as i32;
    let db = backend.reader().clone();
    let body = futures::stream::try_unfold(0, move |n| {
        let db = db.clone();
        async move {
            if n == chunks {
                return Ok(None);
            }
            let data: Option<Vec<u8>> = chunk::Entity::find_by_id((upload_id, n))
                .select_only()
                .column(chunk::Column::Data)
                .into_tuple()
                .one(&db)
                .await
                .map_err(db_error)?;
            let data =
                data.ok_or_else(|| corrupt(format!("upload {upload_id} lacks chunk {n}")))?;
            Ok(Some((Bytes::from(data), n + 1)))
        }
    });
    Ok(Download {
        info,
        body: body.into_stream().boxed(),
    })
}

/// In the caller's transaction, deletes the attachments of jobs about to be deleted.
pub(crate) async fn delete_for(db: &impl ConnectionTrait, job_ids: &[i64]) -> Result<()> {
    let uploads: Vec<Option<i64>> = job::Entity::find()
        .select_only()
        .column(job::Column::AttachmentId)
        .filter(job::Column::Id.is_in(job_ids.iter().copied()))
        .filter(job::Column::AttachmentId.is_not_null())
        .into_tuple()
        .all(db)
        .await
        .map_err(db_error)?;
    let uploads: Vec<i64> = uploads.into_iter().flatten().collect();
    delete_uploads(db, &uploads).await
}

/// Deletes up to `limit` uploads abandoned unlinked for a day (their process died mid-way);
/// returns how many.
pub(crate) async fn prune_abandoned(backend: &SqlBackend, limit: u64) -> Result<u64> {
    let cutoff = ms(backend.now() - ABANDONED_AFTER);
    let ids: Vec<i64> = upload::Entity::find()
        .select_only()
        .column(upload::Column::Id)
        .filter(upload::Column::Linked.eq(false))
        .filter(upload::Column::CreatedAt.lt(cutoff))
        .limit(limit)
        .into_tuple()
        .all(backend.reader())
        .await
        .map_err(db_error)?;
    delete_uploads(backend.connection(), &ids).await?;
    Ok(ids.len() as u64)
}
