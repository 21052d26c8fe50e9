//! Attachments: a raw `PUT` before the job runs, a multipart enqueue of the job with its file,
//! and a raw `GET`; the bytes stream between the socket and the database in chunks.
//!
//! What the signature covers: the query, so `body_sha256` (the raw body of a `PUT`; the `job`
//! part of a multipart enqueue) and `attachment_sha256` (the file part, in hex). The backend
//! checks the file's hash as it stores it and keeps nothing when it differs.

use axum::Json;
use axum::body::Body;
use axum::body::Bytes;
use axum::extract::{Extension, FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use futures::{StreamExt, TryStreamExt};
use outsourced_backend_http::oauth::BODY_HASH_PARAM;
use outsourced_backend_http::wire::{AttachmentDto, Code, JobDto, NewJobDto, job_to_dto};
use outsourced_backend_http::{ATTACHMENT_HASH_PARAM, FILE_NAME_PARAM};
use outsourced_core::{Backend, Enqueued, Error, JobId, Upload};
use sha2::{Digest, Sha256};

use super::access::{actor, readable_job};
use super::jobs::new_job;
use super::roles::{Route, permit};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::PathArg;
use crate::state::AppState;

/// The signed query parameters of an upload, by name.
fn query_param(request: &Request, name: &str) -> ApiResult<Option<String>> {
    let query = request.uri().query().unwrap_or_default();
    let pairs = outsourced_backend_http::oauth::parse_form(query)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(pairs.into_iter().find(|(k, _)| k == name).map(|(_, v)| v))
}

/// The `body_sha256` of a request as hex, or none; required when the server says so.
fn body_hash(state: &AppState, request: &Request) -> ApiResult<Option<String>> {
    match query_param(request, BODY_HASH_PARAM)? {
        Some(sent) => {
            let bytes = URL_SAFE_NO_PAD
                .decode(&sent)
                .ok()
                .filter(|b| b.len() == 32)
                .ok_or_else(|| ApiError::bad_request("body_sha256 is not a SHA-256"))?;
            Ok(Some(hex::encode(bytes)))
        }
        None if state.config().require_body_hash => Err(ApiError::unauthorized(
            Code::BodyHashRequired,
            "this server requires the body's SHA-256 in the signed body_sha256 query parameter",
        )),
        None => Ok(None),
    }
}

/// Refuses at once a body that says it is larger than the backend keeps (413, nothing read).
fn within_limit(state: &AppState, headers: &HeaderMap) -> ApiResult<()> {
    let limit = state.backend().config().max_attachment_bytes;
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match length {
        Some(length) if length > limit => Err(Error::TooLarge { limit }.into()),
        _ => Ok(()),
    }
}

fn media_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Attach a file to a job before any worker leases it (the producer that enqueued it, or an
/// admin). The body is the file's bytes; `name` its file name; `body_sha256` its hash.
#[utoipa::path(put, path = "/v1/jobs/{id}/attachment", operation_id = "put_attachment", params(("id" = i64, Path, description = "The job's id")), tag = "jobs",
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 201, body = AttachmentDto), (status = 409, description = "already leased, or has one"),
        (status = 413, description = "too large; nothing kept")))]
pub(crate) async fn put(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathArg(id): PathArg<i64>,
    request: Request,
) -> ApiResult<(StatusCode, Json<AttachmentDto>)> {
    permit(&caller, Route::Attach)?;
    readable_job(&state, &caller, JobId(id)).await?;
    within_limit(&state, request.headers())?;
    let upload = Upload {
        file_name: query_param(&request, FILE_NAME_PARAM)?,
        content_type: media_type(request.headers()),
        sha256: body_hash(&state, &request)?,
        body: request
            .into_body()
            .into_data_stream()
            .map_err(|e| Error::invalid(format!("reading the upload: {e}")))
            .boxed(),
    };
    let info = state
        .backend()
        .attach(&actor(&caller), JobId(id), upload)
        .await?;
    Ok((StatusCode::CREATED, Json(AttachmentDto::from(&info))))
}

/// Download a job's attachment (the producer that enqueued it, an admin, or the worker holding
/// its lease): the raw bytes with `Content-Type`, `Content-Length` and `Repr-Digest`.
#[utoipa::path(get, path = "/v1/jobs/{id}/attachment", operation_id = "get_attachment", params(("id" = i64, Path, description = "The job's id")), tag = "jobs",
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>),
        (status = 404, description = "no such job, or no attachment")))]
pub(crate) async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathArg(id): PathArg<i64>,
) -> ApiResult<Response> {
    permit(&caller, Route::ReadJob)?;
    readable_job(&state, &caller, JobId(id)).await?;
    let download = state
        .backend()
        .attachment(&actor(&caller), JobId(id))
        .await?;
    Ok(download_response(download))
}

/// A download as a response: the bytes streamed, with their type, length, name and digest.
pub(crate) fn download_response(download: outsourced_core::Download) -> Response {
    let info = &download.info;
    let digest = (0..info.sha256.len())
        .step_by(2)
        .filter_map(|i| u8::from_str_radix(info.sha256.get(i..i + 2)?, 16).ok())
        .collect::<Vec<u8>>();
    let disposition = match &info.file_name {
        Some(name) => format!("attachment; filename*=UTF-8''{}", percent(name)),
        None => "attachment".to_owned(),
    };
    let headers = [
        (header::CONTENT_TYPE, info.content_type.clone()),
        (header::CONTENT_LENGTH, info.size.to_string()),
        (header::CONTENT_DISPOSITION, disposition),
        (
            header::HeaderName::from_static("repr-digest"),
            format!("sha-256=:{}:", STANDARD.encode(digest)),
        ),
        // A producer's file is never run by a browser as a page of this origin, whatever its
        // type says.
        (header::CONTENT_SECURITY_POLICY, "sandbox".to_owned()),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
    ];
    let mut response = Body::from_stream(download.body).into_response();
    for (name, value) in headers {
        let value = HeaderValue::from_str(&value)
            .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
        response.headers_mut().insert(name, value);
    }
    response
}

/// RFC 5987 percent-encoding of a file name for `filename*`.
fn percent(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The multipart form of `POST /v1/jobs`, for the OpenAPI document only (the handler reads
/// the parts as they stream in, `job` first).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct EnqueueForm {
    /// The job, as `POST /v1/jobs` takes it in JSON.
    job: NewJobDto,
    /// The attachment's bytes; its part's file name and type are kept with it.
    #[schema(content_media_type = "application/octet-stream")]
    file: Vec<u8>,
}

/// `POST /v1/jobs` as `multipart/form-data`: the job's JSON in part `job` (first), the file
/// in part `file`. The job exists only once its file is stored.
pub(crate) async fn enqueue_multipart(
    state: AppState,
    caller: Caller,
    request: Request,
) -> ApiResult<(StatusCode, Json<JobDto>)> {
    permit(&caller, Route::Enqueue)?;
    within_limit(&state, request.headers())?;
    let job_hash = body_hash(&state, &request)?;
    let file_hash = query_param(&request, ATTACHMENT_HASH_PARAM)?;
    if file_hash.is_none() && state.config().require_body_hash {
        // Else the file would be covered by no signature.
        return Err(ApiError::unauthorized(
            Code::BodyHashRequired,
            "this server requires the file's SHA-256 in the signed attachment_sha256 query parameter",
        ));
    }
    let mut multipart = Multipart::from_request(request, &state)
        .await
        .map_err(|e| ApiError::bad_request(format!("the multipart body is not valid: {e}")))?;
    let json = {
        let mut job = next_part(&mut multipart, "job").await?;
        bounded_part(&mut job, state.config().body_limit).await?
    };
    if let Some(expected) = job_hash {
        let actual: String = format!("{:x}", Sha256::digest(&json));
        if actual != expected {
            return Err(ApiError::unauthorized(
                Code::BodyHashMismatch,
                "the job part does not match its signed body_sha256",
            ));
        }
    }
    let dto: NewJobDto = serde_json::from_slice(&json)
        .map_err(|e| ApiError::bad_request(format!("the job part is not valid JSON: {e}")))?;
    let job = new_job(&state, &caller, dto).await?;
    let mut file = next_part(&mut multipart, "file").await?;
    let file_name = file.file_name().map(str::to_owned);
    let content_type = file.content_type().map(str::to_owned);
    // The file part borrows the request; a small channel hands its chunks to the backend's
    // upload, so that both run in this task and memory holds a few chunks at most.
    let (send, receive) = tokio::sync::mpsc::channel::<outsourced_core::Result<Bytes>>(4);
    let pump = async move {
        loop {
            let chunk = match file.chunk().await {
                Ok(Some(chunk)) => Ok(chunk),
                Ok(None) => return,
                Err(e) => Err(Error::invalid(format!("reading the file part: {e}"))),
            };
            let failed = chunk.is_err();
            if send.send(chunk).await.is_err() || failed {
                return;
            }
        }
    };
    let upload = Upload {
        file_name,
        content_type,
        sha256: file_hash,
        body: tokio_stream(receive),
    };
    let by = actor(&caller);
    let key = job
        .unique
        .as_ref()
        .map(|u| u.key.clone())
        .unwrap_or_default();
    let (_, stored) = tokio::join!(pump, state.backend().enqueue_attached(&by, job, upload));
    let (stored, duplicate) = stored?;
    if !duplicate {
        return Ok((StatusCode::CREATED, Json(job_to_dto(&stored))));
    }
    // The holder of the key: shown only to whom may see it, as for a job without a file.
    let enqueued = Enqueued {
        id: stored.id,
        duplicate,
    };
    super::jobs::placed(&state, &caller, enqueued, key).await
}

/// A small part read whole, chunk by chunk, refused (413) once it passes `limit` bytes: the
/// request's length bounds the file, not the job's JSON.
async fn bounded_part(
    part: &mut axum::extract::multipart::Field<'_>,
    limit: usize,
) -> ApiResult<Vec<u8>> {
    let mut bytes = Vec::new();
    while let Some(chunk) = part
        .chunk()
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the job part: {e}")))?
    {
        if bytes.len() + chunk.len() > limit {
            return Err(Error::TooLarge {
                limit: limit as u64,
            }
            .into());
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// The next part of a multipart body, which must be `name`.
async fn next_part<'a>(
    multipart: &'a mut Multipart,
    name: &str,
) -> ApiResult<axum::extract::multipart::Field<'a>> {
    let field = multipart
        .next_field()
        .await
        .map_err(|e| ApiError::bad_request(format!("the multipart body is not valid: {e}")))?;
    match field {
        Some(field) if field.name() == Some(name) => Ok(field),
        _ => Err(ApiError::bad_request(format!(
            "a multipart enqueue sends part \"job\" (the job's JSON), then part \"file\"; expected {name:?}"
        ))),
    }
}

fn tokio_stream(
    mut receive: tokio::sync::mpsc::Receiver<outsourced_core::Result<Bytes>>,
) -> outsourced_core::ByteStream {
    futures::stream::poll_fn(move |cx| receive.poll_recv(cx)).boxed()
}
