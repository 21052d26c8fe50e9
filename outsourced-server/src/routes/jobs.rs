//! Producers' and admins' routes: enqueue, look up, list, count, cancel, retry.

use axum::Json;
use axum::extract::{Extension, FromRequest, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use outsourced_backend_http::wire::{
    CountDto, CountsQuery, HistoryDto, IdsDto, JobDto, JobsQuery, NewJobDto, StateCountDto,
    StateDto, job_to_dto,
};
use outsourced_backend_sql::Role;
use outsourced_backend_sql::store::nonces::Seen;
use outsourced_core::{Actor, Backend, CountFilter, Enqueued, Error, JobFilter, JobId, NewJob};

use super::access::{actor, queue_access, readable_job};
use super::idempotent;
use super::roles::{Route, permit};
use crate::auth::{Caller, PendingNonce};
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, PathArg, QueryArgs};
use crate::state::AppState;

/// A job from its JSON, checked as the backend would, then the caller's right to its queue
/// and to the jobs it waits for.
pub(crate) async fn new_job(
    state: &AppState,
    caller: &Caller,
    dto: NewJobDto,
) -> ApiResult<NewJob> {
    let job = NewJob::try_from(dto)?;
    job.check(state.backend().config().max_args_bytes)?;
    queue_access(caller, &job.queue)?;
    super::access::links_of(state, &actor(caller), &job).await?;
    Ok(job)
}

/// Enqueue one job: its JSON, or as `multipart/form-data` the JSON in part `job` and its
/// attachment in part `file` (`attachment_sha256`, signed in the query, is the file's hash).
#[utoipa::path(post, path = "/v1/jobs", tag = "jobs",
    request_body(content(
        (NewJobDto = "application/json"),
        (super::attachments::EnqueueForm = "multipart/form-data"),
    )),
    params(("Idempotency-Key" = Option<String>, Header, description = "Sent again with the same body within a day: the first answer again, nothing stored")),
    responses((status = 201, body = JobDto), (status = 200, description = "a duplicate of a unique key: the job that holds it", body = JobDto), (status = 409, description = "a refused duplicate", body = outsourced_backend_http::wire::ErrorBody), (status = 422, description = "an Idempotency-Key first used with another body", body = outsourced_backend_http::wire::ErrorBody), (status = 429, description = "queue full", body = outsourced_backend_http::wire::ErrorBody)))]
pub(crate) async fn enqueue(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    request: Request,
) -> ApiResult<Response> {
    if crate::auth::is_multipart(request.headers()) {
        let stored = super::attachments::enqueue_multipart(state, caller, request).await?;
        return Ok(stored.into_response());
    }
    let idempotency = idempotent::key_of(request.headers())?;
    let pending = pending_nonce(&request);
    let JsonBody(dto) = JsonBody::<NewJobDto>::from_request(request, &state).await?;
    permit(&caller, Route::Enqueue)?;
    if let Some(key) = &idempotency {
        let body = serde_json::to_vec(&dto).unwrap_or_default();
        let jobs = vec![new_job(&state, &caller, dto).await?];
        let request = idempotent::Enqueue {
            key,
            path: "/v1/jobs",
            body,
            jobs,
            single: true,
        };
        return idempotent::enqueue(&state, &caller, request, pending.take()).await;
    }
    let job = new_job(&state, &caller, dto).await?;
    let enqueued = enqueue_one(&state, &caller, job, pending.take()).await?;
    Ok(enqueued.into_response())
}

/// The request's nonce not recorded yet, for the enqueue's own transaction to record (see
/// `auth::PendingNonce`: taken only when nothing but that transaction will change a row).
fn pending_nonce(request: &Request) -> PendingNonce {
    request
        .extensions()
        .get::<PendingNonce>()
        .cloned()
        .unwrap_or_default()
}

/// Enqueues one job: 201 when stored, 200 with the job that holds its unique key when a
/// duplicate; a holder the caller may not see (another producer's) is named only, as a 409.
async fn enqueue_one(
    state: &AppState,
    caller: &Caller,
    job: NewJob,
    nonce: Option<Seen>,
) -> ApiResult<(StatusCode, Json<JobDto>)> {
    let by = actor(caller);
    if job.unique.is_none() {
        let stored = match nonce {
            Some(nonce) => state.backend().enqueue_signed(&by, job, nonce).await?,
            None => state.backend().enqueue(&by, job).await?,
        };
        return Ok((StatusCode::CREATED, Json(job_to_dto(&stored))));
    }
    let key = job
        .unique
        .as_ref()
        .map(|u| u.key.clone())
        .unwrap_or_default();
    let mut each = enqueue_each(state, &by, vec![job], nonce).await?;
    let enqueued = each
        .pop()
        .ok_or_else(|| ApiError::from(Error::conflict("the enqueue returned nothing")))?;
    placed(state, caller, enqueued, key).await
}

/// The answer to an enqueue of one job with a unique key: 201 with the job when stored, 200
/// with the holder when a duplicate, or (a holder the caller may not see) a 409 naming it.
pub(crate) async fn placed(
    state: &AppState,
    caller: &Caller,
    enqueued: Enqueued,
    key: String,
) -> ApiResult<(StatusCode, Json<JobDto>)> {
    let found = readable_job(state, caller, enqueued.id).await;
    match (found, enqueued.duplicate) {
        (Ok(found), false) => Ok((StatusCode::CREATED, Json(job_to_dto(&found)))),
        (Ok(found), true) => Ok((StatusCode::OK, Json(job_to_dto(&found)))),
        (Err(_), true) => Err(Error::Duplicate {
            key,
            existing: enqueued.id,
        }
        .into()),
        (Err(error), false) => Err(error),
    }
}

/// Enqueue several jobs, all or none.
#[utoipa::path(post, path = "/v1/jobs/batch", request_body = Vec<NewJobDto>, tag = "jobs",
    params(("Idempotency-Key" = Option<String>, Header, description = "Sent again with the same body within a day: the first answer again, nothing stored")),
    responses((status = 201, body = IdsDto), (status = 422, description = "an Idempotency-Key first used with another body", body = outsourced_backend_http::wire::ErrorBody)))]
pub(crate) async fn enqueue_batch(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Extension(pending): Extension<PendingNonce>,
    headers: HeaderMap,
    JsonBody(dtos): JsonBody<Vec<NewJobDto>>,
) -> ApiResult<Response> {
    permit(&caller, Route::Enqueue)?;
    let idempotency = idempotent::key_of(&headers)?;
    let body = match idempotency {
        Some(_) => serde_json::to_vec(&dtos).unwrap_or_default(),
        None => Vec::new(),
    };
    let mut jobs = Vec::with_capacity(dtos.len());
    for dto in dtos {
        jobs.push(new_job(&state, &caller, dto).await?);
    }
    if let Some(key) = &idempotency {
        let request = idempotent::Enqueue {
            key,
            path: "/v1/jobs/batch",
            body,
            jobs,
            single: false,
        };
        return idempotent::enqueue(&state, &caller, request, pending.take()).await;
    }
    let each = enqueue_each(&state, &actor(&caller), jobs, pending.take()).await?;
    let duplicates = match each.iter().any(|e| e.duplicate) {
        true => each.iter().map(|e| e.duplicate).collect(),
        false => Vec::new(),
    };
    Ok((
        StatusCode::CREATED,
        Json(IdsDto {
            ids: each.iter().map(|e| e.id.0).collect(),
            duplicates,
        }),
    )
        .into_response())
}

/// `Backend::enqueue_each`, with the signed request's nonce in its transaction.
async fn enqueue_each(
    state: &AppState,
    by: &Actor,
    jobs: Vec<NewJob>,
    nonce: Option<Seen>,
) -> outsourced_core::Result<Vec<Enqueued>> {
    match nonce {
        Some(nonce) => state.backend().enqueue_each_signed(by, jobs, nonce).await,
        None => state.backend().enqueue_each(by, jobs).await,
    }
}

/// One job: an admin sees any, a producer those it enqueued, a worker those it holds.
#[utoipa::path(get, path = "/v1/jobs/{id}", operation_id = "get_job", params(("id" = i64, Path, description = "The job's id")), tag = "jobs", responses((status = 200, body = JobDto)))]
pub(crate) async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathArg(id): PathArg<i64>,
) -> ApiResult<Json<JobDto>> {
    permit(&caller, Route::ReadJob)?;
    let job = readable_job(&state, &caller, JobId(id)).await?;
    Ok(Json(job_to_dto(&job)))
}

/// A job's history, oldest first.
#[utoipa::path(get, path = "/v1/jobs/{id}/history", params(("id" = i64, Path, description = "The job's id")), tag = "jobs", responses((status = 200, body = Vec<HistoryDto>)))]
pub(crate) async fn history(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathArg(id): PathArg<i64>,
) -> ApiResult<Json<Vec<HistoryDto>>> {
    permit(&caller, Route::ReadJob)?;
    readable_job(&state, &caller, JobId(id)).await?;
    let rows = state.backend().history(&actor(&caller), JobId(id)).await?;
    Ok(Json(rows.iter().map(HistoryDto::from).collect()))
}

/// Jobs, newest first: an admin's all, a producer's own.
#[utoipa::path(get, path = "/v1/jobs", operation_id = "list_jobs", params(JobsQuery), tag = "jobs", responses((status = 200, body = Vec<JobDto>)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    QueryArgs(query): QueryArgs<JobsQuery>,
) -> ApiResult<Json<Vec<JobDto>>> {
    permit(&caller, Route::ListJobs)?;
    let filter = JobFilter {
        queue: query.queue,
        state: query
            .state
            .map(|s| {
                s.parse()
                    .map_err(|e: outsourced_core::state::UnknownState| {
                        ApiError::bad_request(e.to_string())
                    })
            })
            .transpose()?,
        class: query.class,
        class_prefix: query.class_prefix,
        owner: query.owner.map(|o| o.parse()).transpose()?,
        enqueued_by: (caller.principal.role == Role::Producer).then(|| actor(&caller)),
        unique_key: query.unique_key,
        concurrency_key: query.concurrency_key,
        parent: query.parent.map(JobId),
        dependants_of: query.dependants_of.map(JobId),
        batch: query.batch.map(outsourced_core::BatchId),
        created_since: query.created_since,
        created_until: query.created_until,
        before: query.before.map(JobId),
        after: query.after.map(JobId),
        limit: query.limit.unwrap_or(100),
    };
    let jobs = state.backend().jobs(&actor(&caller), filter).await?;
    Ok(Json(jobs.iter().map(job_to_dto).collect()))
}

/// Job counts by queue and state: an admin's of all jobs, a producer's of its own.
#[utoipa::path(get, path = "/v1/counts", params(CountsQuery), tag = "jobs", responses((status = 200, body = Vec<StateCountDto>)))]
pub(crate) async fn counts(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    QueryArgs(query): QueryArgs<CountsQuery>,
) -> ApiResult<Json<Vec<StateCountDto>>> {
    permit(&caller, Route::ListJobs)?;
    let filter = CountFilter {
        queue: query.queue,
        owner: query.owner.map(|o| o.parse()).transpose()?,
        enqueued_by: (caller.principal.role == Role::Producer).then(|| actor(&caller)),
    };
    let groups = state.backend().counts(&actor(&caller), filter).await?;
    Ok(Json(groups.iter().map(StateCountDto::from).collect()))
}

/// Cancel a job: an admin any, a producer its own.
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", params(("id" = i64, Path, description = "The job's id")), tag = "jobs", responses((status = 200, body = StateDto)))]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathArg(id): PathArg<i64>,
) -> ApiResult<Json<StateDto>> {
    permit(&caller, Route::Cancel)?;
    readable_job(&state, &caller, JobId(id)).await?;
    let state_after = state.backend().cancel(&actor(&caller), JobId(id)).await?;
    Ok(Json(StateDto {
        state: state_after.as_str().to_owned(),
    }))
}

/// Run a job now (again): admins only.
#[utoipa::path(post, path = "/v1/jobs/{id}/retry", params(("id" = i64, Path, description = "The job's id")), tag = "jobs", responses((status = 200, body = JobDto)))]
pub(crate) async fn retry(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathArg(id): PathArg<i64>,
) -> ApiResult<Json<JobDto>> {
    permit(&caller, Route::Maintain)?;
    let job = state.backend().retry(&actor(&caller), JobId(id)).await?;
    Ok(Json(job_to_dto(&job)))
}

/// Prune finished jobs past their queue's retention now: admins only (the server also does it
/// every minute).
#[utoipa::path(post, path = "/v1/prune", request_body = outsourced_backend_http::wire::PruneRequest, tag = "admin",
    responses((status = 200, body = CountDto)))]
pub(crate) async fn prune(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(request): JsonBody<outsourced_backend_http::wire::PruneRequest>,
) -> ApiResult<Json<CountDto>> {
    permit(&caller, Route::Maintain)?;
    let opts = outsourced_core::PruneOptions {
        limit: request.limit.clamp(1, 10_000),
    };
    let count = state.backend().prune(&actor(&caller), opts).await?;
    Ok(Json(CountDto { count }))
}

/// Reclaim expired leases now: admins only (the server also does it every second).
#[utoipa::path(post, path = "/v1/reclaim", request_body = outsourced_backend_http::wire::ReclaimRequest, tag = "admin",
    responses((status = 200, body = CountDto)))]
pub(crate) async fn reclaim(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(request): JsonBody<outsourced_backend_http::wire::ReclaimRequest>,
) -> ApiResult<Json<CountDto>> {
    permit(&caller, Route::Maintain)?;
    let opts = outsourced_core::ReclaimOptions {
        limit: request.limit.clamp(1, 10_000),
    };
    let count = state
        .backend()
        .reclaim_expired(&actor(&caller), opts)
        .await?;
    Ok(Json(CountDto { count }))
}
