//! Workers' routes: reserve (with long-polling), heartbeat, complete (one or a batch), fail,
//! release, release everything an instance holds.

use std::time::Duration;

use serde::de::DeserializeOwned;

use axum::Json;
use axum::extract::{Extension, FromRequest, FromRequestParts, Request, State};
use axum::http::StatusCode;
use outsourced_backend_http::wire::{
    BatchCompleteRequest, BatchCompleteResponse, CompleteRequest, CountDto, DueDto, ErrorBody,
    FailRequest, HeartbeatDto, InstanceRequest, LeaseRequest, ReserveRequest, ReservedDto,
    ReservedList, StateDto,
};
use outsourced_core::{
    Backend, BackendExt, Completion, Error, JobId, LeaseRef, ReserveOptions, WorkerInstance,
    workable_queues,
};

use super::access::{follow_ups, instance, lease_access, may_use_queue, reserving};
use super::roles::Route;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, PathArg};
use crate::state::AppState;

/// Lease jobs from the queues the worker is hired for (those of them it asks for), waiting up
/// to `wait_ms` (at most the server's limit) when none is ready.
#[utoipa::path(post, path = "/v1/reserve", request_body = ReserveRequest, tag = "workers",
    responses((status = 200, body = ReservedList)))]
pub(crate) async fn reserve(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(request): JsonBody<ReserveRequest>,
) -> ApiResult<Json<ReservedList>> {
    let by = reserving(&caller, request.worker.as_deref(), &request.instance)?;
    let queues = workable_queues(&caller.principal.queues, &request.queues);
    let max_wait = state.config().max_wait;
    if queues.is_empty() {
        // Hired for nothing (or asking only for queues it is not hired for): nothing to hand
        // out, after the wait it asked for, so that it asks again at its idle pace and a hire
        // takes effect at its next reserve.
        let wait = request
            .wait_ms
            .map_or(Duration::ZERO, Duration::from_millis);
        tokio::time::sleep(wait.min(max_wait)).await;
        return Ok(Json(ReservedList { jobs: Vec::new() }));
    }
    let opts = options(request, queues, max_wait);
    // A stopping server hands out nothing more by a long poll: the backend gives back what a
    // claim cut short had taken.
    let reserved = match opts.wait.is_some() {
        true => tokio::select! {
            reserved = state.backend().reserve(&by, opts) => reserved?,
            () = state.draining() => Vec::new(),
        },
        false => state.backend().reserve(&by, opts).await?,
    };
    Ok(Json(ReservedList {
        jobs: reserved.iter().map(ReservedDto::from).collect(),
    }))
}

/// Whether a job that a reserve with these fields would take (of the queues the worker is
/// hired for), run limits aside, is due: a worker that stops once idle keeps going while one
/// is. `limit`, `wait_ms` and `lease_ms` are not read.
#[utoipa::path(post, path = "/v1/reserve/due", request_body = ReserveRequest, tag = "workers",
    responses((status = 200, body = DueDto)))]
pub(crate) async fn due(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(request): JsonBody<ReserveRequest>,
) -> ApiResult<Json<DueDto>> {
    let by = reserving(&caller, request.worker.as_deref(), &request.instance)?;
    let queues = workable_queues(&caller.principal.queues, &request.queues);
    if queues.is_empty() {
        return Ok(Json(DueDto { due: false }));
    }
    let opts = options(request, queues, state.config().max_wait);
    let due = state.backend().any_due(&by, &opts).await?;
    Ok(Json(DueDto { due }))
}

/// A reserve request as the backend's options, over `queues` (those of the worker's hires it
/// asked for), its wait at most `max_wait`.
fn options(request: ReserveRequest, queues: Vec<String>, max_wait: Duration) -> ReserveOptions {
    ReserveOptions {
        limit: request.limit,
        queues,
        classes: request.classes,
        min_priority: request.min_priority,
        max_priority: request.max_priority,
        wait: request
            .wait_ms
            .map(|ms| Duration::from_millis(ms).min(max_wait)),
        lease: request.lease_ms.map(Duration::from_millis),
    }
}

/// Renew a lease; says whether a cancel was requested.
#[utoipa::path(post, path = "/v1/jobs/{id}/heartbeat", params(("id" = i64, Path, description = "The job's id")), request_body = LeaseRequest, tag = "workers",
    responses((status = 200, body = HeartbeatDto), (status = 409, description = "stale lease", body = ErrorBody)))]
pub(crate) async fn heartbeat(
    State(state): State<AppState>,
    Presented { by, lease, .. }: Presented<LeaseRequest>,
) -> ApiResult<Json<HeartbeatDto>> {
    let beat = state.backend().heartbeat(&by, &lease).await?;
    Ok(Json(HeartbeatDto::from(&beat)))
}

/// Report a success.
#[utoipa::path(post, path = "/v1/jobs/{id}/complete", params(("id" = i64, Path, description = "The job's id")), request_body = CompleteRequest, tag = "workers",
    responses((status = 204), (status = 409, description = "stale lease", body = ErrorBody), (status = 400, description = "a result over 64 KiB, or a follow-up that is not a job", body = ErrorBody),
        (status = 404, description = "a follow-up into a queue the job's producer may not enqueue into", body = ErrorBody)))]
pub(crate) async fn complete(
    State(state): State<AppState>,
    Presented {
        by,
        lease,
        body: request,
    }: Presented<CompleteRequest>,
) -> ApiResult<StatusCode> {
    let follow_ups = follow_ups(&state, lease.job_id, request.follow_ups).await?;
    let done = Completion {
        lease,
        result: request.result,
        follow_ups,
    };
    state.backend().complete_one(&by, done).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Report several successes; each lease gets its own answer.
#[utoipa::path(post, path = "/v1/complete", request_body = BatchCompleteRequest, tag = "workers",
    responses((status = 200, body = BatchCompleteResponse)))]
pub(crate) async fn complete_batch(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(request): JsonBody<BatchCompleteRequest>,
) -> ApiResult<Json<BatchCompleteResponse>> {
    let by = instance(&caller, Route::Lease, &request.instance)?;
    // Leases on jobs the worker may not see are answered `not_found` without asking the backend;
    // their queues are read at once, not a job at a time.
    let ids: Vec<JobId> = request.leases.iter().map(|lease| JobId(lease.id)).collect();
    let queues = state.backend().queues_of(&ids).await?;
    let mut allowed = Vec::with_capacity(request.leases.len());
    let mut answers: Vec<Option<Option<ErrorBody>>> = Vec::with_capacity(request.leases.len());
    for lease in request.leases {
        let id = JobId(lease.id);
        if !queues
            .get(&id)
            .is_some_and(|queue| may_use_queue(&caller, queue))
        {
            let denied = ErrorBody::from_error(&Error::NotFound { id });
            answers.push(Some(Some(denied)));
            continue;
        }
        match follow_ups(&state, id, lease.follow_ups).await {
            Ok(follow_ups) => {
                allowed.push(Completion {
                    lease: LeaseRef {
                        job_id: id,
                        token: lease.token,
                    },
                    result: lease.result,
                    follow_ups,
                });
                answers.push(None);
            }
            Err(error) if error.status().is_server_error() => return Err(error),
            Err(refused) => answers.push(Some(Some(refused.into_body()))),
        }
    }
    let mut results = state
        .backend()
        .complete_batch(&by, &allowed)
        .await?
        .into_iter();
    let results = answers
        .into_iter()
        .map(|answer| match answer {
            Some(denied) => denied,
            None => results
                .next()
                .and_then(|r| r.err())
                .map(|e| ErrorBody::from_error(&e)),
        })
        .collect();
    Ok(Json(BatchCompleteResponse { results }))
}

/// Report a failed attempt.
#[utoipa::path(post, path = "/v1/jobs/{id}/fail", params(("id" = i64, Path, description = "The job's id")), request_body = FailRequest, tag = "workers",
    responses((status = 200, body = StateDto), (status = 409, description = "stale lease", body = ErrorBody)))]
pub(crate) async fn fail(
    State(state): State<AppState>,
    Presented {
        by,
        lease,
        body: request,
    }: Presented<FailRequest>,
) -> ApiResult<Json<StateDto>> {
    let after = state.backend().fail(&by, &lease, request.failure()).await?;
    Ok(Json(StateDto {
        state: after.as_str().to_owned(),
    }))
}

/// Give a lease back without using up its attempt.
#[utoipa::path(post, path = "/v1/jobs/{id}/release", params(("id" = i64, Path, description = "The job's id")), request_body = LeaseRequest, tag = "workers",
    responses((status = 204), (status = 409, description = "stale lease", body = ErrorBody)))]
pub(crate) async fn release(
    State(state): State<AppState>,
    Presented { by, lease, .. }: Presented<LeaseRequest>,
) -> ApiResult<StatusCode> {
    state.backend().release(&by, &lease).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Release every lease the worker instance holds (at a clean exit).
#[utoipa::path(post, path = "/v1/release-all", request_body = InstanceRequest, tag = "workers",
    responses((status = 200, body = CountDto)))]
pub(crate) async fn release_all(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(request): JsonBody<InstanceRequest>,
) -> ApiResult<Json<CountDto>> {
    let by = instance(&caller, Route::ReleaseAll, &request.instance)?;
    let count = state.backend().release_all(&by).await?;
    Ok(Json(CountDto { count }))
}

/// A report on one lease, checked before its handler runs: the caller is a worker naming a
/// valid instance, the job (by the path's id) is in a queue it may work (else 404, as if
/// absent), and the lease its body presents.
pub(crate) struct Presented<T> {
    /// The worker instance reporting.
    pub(crate) by: WorkerInstance,
    /// The lease it presents.
    pub(crate) lease: LeaseRef,
    /// The rest of what it says.
    pub(crate) body: T,
}

/// A body that presents a lease.
pub(crate) trait PresentsLease {
    /// The worker process's instance id and the lease's token.
    fn presents(&self) -> (&str, &str);
}

macro_rules! presents_lease {
    ($($body:ty),*) => {$(
        impl PresentsLease for $body {
            fn presents(&self) -> (&str, &str) {
                (&self.instance, &self.token)
            }
        }
    )*};
}

presents_lease!(LeaseRequest, CompleteRequest, FailRequest);

impl<T: PresentsLease + DeserializeOwned + Send> FromRequest<AppState> for Presented<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, ApiError> {
        let (mut parts, body) = request.into_parts();
        let PathArg(id) = PathArg::<i64>::from_request_parts(&mut parts, state).await?;
        let caller = parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::from(Error::invalid("a lease report from no one")))?;
        let request = Request::from_parts(parts, body);
        let JsonBody(body) = JsonBody::<T>::from_request(request, state).await?;
        let (instance_id, token) = body.presents();
        let by = instance(&caller, Route::Lease, instance_id)?;
        lease_access(state, &caller, JobId(id)).await?;
        let lease = LeaseRef {
            job_id: JobId(id),
            token: token.to_owned(),
        };
        Ok(Presented { by, lease, body })
    }
}
