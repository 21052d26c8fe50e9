//! Attachments over HTTP: uploads and downloads as raw bytes that stream through, never held
//! whole in memory; their SHA-256 signed with the request on the way up and checked on the way
//! down.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use futures::{StreamExt, TryStreamExt};
use reqwest::Method;
use reqwest::multipart::{Form, Part};
use sha2::{Digest, Sha256};

use crate::client::{HttpBackend, transport};
use crate::oauth::BODY_HASH_PARAM;
use crate::wire::{AttachmentDto, JobDto, NewJobDto, job_from_dto, path};
use outsourced_core::{
    AttachmentInfo, ByteStream, Download, Error, JobId, JobRecord, NewJob, Result, Upload,
};

/// The signed query parameter carrying the attachment's SHA-256 (hex) in a multipart enqueue,
/// where `body_sha256` covers the job's JSON part.
pub const ATTACHMENT_HASH_PARAM: &str = "attachment_sha256";

/// The signed query parameter carrying the file name of a raw upload.
pub const FILE_NAME_PARAM: &str = "name";

/// A hex SHA-256 as `body_sha256` wants it: URL-safe base64 without padding.
fn hex_to_param(hex: &str) -> Result<String> {
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16))
        .collect::<std::result::Result<Vec<u8>, _>>()
        .map_err(|_| Error::invalid(format!("{hex:?} is not a SHA-256 in hex")))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn body_of(upload: ByteStream) -> reqwest::Body {
    reqwest::Body::wrap_stream(upload.map_err(std::io::Error::other))
}

/// `POST /v1/jobs` as multipart: the job's JSON in part `job`, the file in part `file`. The
/// answer: the job, and whether it was a duplicate of a unique key (200 instead of 201).
pub(crate) async fn enqueue(
    backend: &HttpBackend,
    job: NewJob,
    file: Upload,
) -> Result<(JobRecord, bool)> {
    file.check()?;
    let json = serde_json::to_vec(&NewJobDto::from(&job))
        .map_err(|e| Error::invalid(format!("cannot encode the job: {e}")))?;
    let mut query = vec![(
        BODY_HASH_PARAM,
        URL_SAFE_NO_PAD.encode(Sha256::digest(&json)),
    )];
    if let Some(hex) = &file.sha256 {
        query.push((ATTACHMENT_HASH_PARAM, hex.to_ascii_lowercase()));
    }
    let job_part = Part::bytes(json)
        .mime_str("application/json")
        .map_err(|e| Error::invalid(e.to_string()))?;
    let mut file_part = Part::stream(body_of(file.body));
    if let Some(name) = file.file_name {
        file_part = file_part.file_name(name);
    }
    let media = file
        .content_type
        .as_deref()
        .unwrap_or("application/octet-stream");
    let file_part = file_part
        .mime_str(media)
        .map_err(|e| Error::invalid(format!("{media:?}: {e}")))?;
    let form = Form::new().part("job", job_part).part("file", file_part);
    let response = backend
        .send_streaming(Method::POST, path::JOBS.plain(), &query, |request| {
            request.multipart(form)
        })
        .await?;
    let duplicate = response.status() == reqwest::StatusCode::OK;
    let dto: JobDto = response
        .json()
        .await
        .map_err(|e| transport(format!("the answer to an enqueue is not valid: {e}"), false))?;
    Ok((job_from_dto(dto)?, duplicate))
}

/// `PUT /v1/jobs/{id}/attachment` with the raw bytes.
pub(crate) async fn attach(
    backend: &HttpBackend,
    id: JobId,
    file: Upload,
) -> Result<AttachmentInfo> {
    file.check()?;
    let mut query = Vec::new();
    if let Some(hex) = &file.sha256 {
        query.push((BODY_HASH_PARAM, hex_to_param(hex)?));
    }
    if let Some(name) = &file.file_name {
        query.push((FILE_NAME_PARAM, name.clone()));
    }
    let media = file
        .content_type
        .clone()
        .unwrap_or_else(|| "application/octet-stream".to_owned());
    let body = body_of(file.body);
    let path = path::ATTACHMENT.of(id);
    let response = backend
        .send_streaming(Method::PUT, &path, &query, |request| {
            request
                .header(reqwest::header::CONTENT_TYPE, media)
                .body(body)
        })
        .await?;
    let dto: AttachmentDto = response
        .json()
        .await
        .map_err(|e| transport(format!("the answer to an upload is not valid: {e}"), false))?;
    Ok(dto.into())
}

/// The job's record (for the attachment's metadata), then `GET /v1/jobs/{id}/attachment`,
/// streamed and checked: a body whose size or SHA-256 differs from the record's ends in an
/// error instead of a silently bad file.
pub(crate) async fn download(backend: &HttpBackend, id: JobId) -> Result<Download> {
    let dto: JobDto = backend
        .call(Method::GET, &path::JOB.of(id), &[], None::<&()>, None)
        .await?;
    let info: AttachmentInfo = dto
        .attachment
        .map(AttachmentInfo::from)
        .ok_or(Error::NoAttachment { id })?;
    let path = path::ATTACHMENT.of(id);
    let response = backend
        .send_streaming(Method::GET, &path, &[], |request| request)
        .await?;
    let body = response
        .bytes_stream()
        .map_err(|e| transport(format!("downloading the attachment: {e}"), true));
    Ok(Download {
        body: checked(body.boxed(), info.size, info.sha256.clone()),
        info,
    })
}

/// Passes `body` through, and at its end fails unless it had `size` bytes with SHA-256 `hex`.
fn checked(body: ByteStream, size: u64, hex: String) -> ByteStream {
    let state = (body, Sha256::new(), 0u64, false);
    futures::stream::unfold(state, move |(mut body, mut hasher, mut seen, done)| {
        let hex = hex.clone();
        async move {
            if done {
                return None;
            }
            match body.next().await {
                Some(Ok(chunk)) => {
                    hasher.update(&chunk);
                    seen += chunk.len() as u64;
                    Some((Ok(chunk), (body, hasher, seen, false)))
                }
                Some(Err(error)) => Some((Err(error), (body, hasher, seen, true))),
                None => {
                    let actual = format!("{:x}", hasher.finalize_reset());
                    if seen == size && actual == hex {
                        return None;
                    }
                    let error = transport(
                        format!(
                            "the attachment arrived damaged: {seen} bytes with SHA-256 {actual}, expected {size} with {hex}"
                        ),
                        true,
                    );
                    Some((Err(error), (body, hasher, seen, true)))
                }
            }
        }
    })
    .boxed()
}
