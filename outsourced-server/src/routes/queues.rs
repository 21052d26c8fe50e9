//! Queues: everyone sees the queues they may use; admins create, change and delete them.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use outsourced_backend_http::wire::{CreateQueueRequest, QueueDto, UpdateQueueRequest};
use outsourced_core::{Backend, QueueLimit, QueueUpdate, Rate, Retention, RunLimits};

use super::access::{actor, may_use_queue};
use super::roles::{Route, permit};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::extract::{JsonBody, PathArg};
use crate::state::AppState;

/// The queues the caller may use (an admin: all), with their counts.
#[utoipa::path(get, path = "/v1/queues", operation_id = "list_queues", tag = "queues", responses((status = 200, body = Vec<QueueDto>)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Vec<QueueDto>>> {
    permit(&caller, Route::ListQueues)?;
    let queues = state.backend().queues(&actor(&caller)).await?;
    let visible = queues.iter().filter(|q| may_use_queue(&caller, &q.name));
    Ok(Json(visible.map(QueueDto::from).collect()))
}

fn limit(limit: Option<u64>, unlimited: bool) -> Result<Option<QueueLimit>, ApiError> {
    match (limit, unlimited) {
        (Some(_), true) => Err(ApiError::bad_request("give a limit or unlimited, not both")),
        (_, true) => Ok(Some(QueueLimit::Unlimited)),
        (Some(n), false) => Ok(Some(QueueLimit::Max(n))),
        (None, false) => Ok(None),
    }
}

/// Create a queue (admins).
#[utoipa::path(post, path = "/v1/queues", operation_id = "create_queue", request_body = CreateQueueRequest, tag = "queues",
    responses((status = 201, body = QueueDto), (status = 409, description = "exists")))]
pub(crate) async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(request): JsonBody<CreateQueueRequest>,
) -> ApiResult<(StatusCode, Json<QueueDto>)> {
    permit(&caller, Route::ManageQueues)?;
    let limit = limit(request.limit, request.unlimited)?.unwrap_or_default();
    let limits = RunLimits::from(request.limits);
    limits.check()?;
    let backend = state.backend();
    let mut queue = backend
        .create_queue(&actor(&caller), &request.name, limit)
        .await?;
    if limits.any() {
        let set = QueueUpdate::setting(limits);
        queue = backend
            .update_queue(&actor(&caller), &request.name, set)
            .await?;
    }
    Ok((StatusCode::CREATED, Json(QueueDto::from(&queue))))
}

/// Change a queue's limit, run limits or retention, or pause or resume it (admins).
#[utoipa::path(patch, path = "/v1/queues/{name}", operation_id = "update_queue", params(("name" = String, Path, description = "The queue's name")), request_body = UpdateQueueRequest, tag = "queues",
    responses((status = 200, body = QueueDto)))]
pub(crate) async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathArg(name): PathArg<String>,
    JsonBody(request): JsonBody<UpdateQueueRequest>,
) -> ApiResult<Json<QueueDto>> {
    permit(&caller, Route::ManageQueues)?;
    let retention = match (request.retention_ms, request.retain_forever) {
        (Some(_), true) => {
            return Err(ApiError::bad_request(
                "give retention_ms or retain_forever, not both",
            ));
        }
        (Some(ms), false) => Some(Retention::For(std::time::Duration::from_millis(ms))),
        (None, true) => Some(Retention::Forever),
        (None, false) => None,
    };
    let update = QueueUpdate {
        limit: limit(request.limit, request.unlimited)?,
        paused: request.paused,
        retention,
        max_running: request.max_running,
        rate: request.rate.map(|rate| rate.map(Rate::from)),
        max_running_per_key: request.max_running_per_key,
        rate_per_key: request.rate_per_key.map(|rate| rate.map(Rate::from)),
    };
    let queue = state
        .backend()
        .update_queue(&actor(&caller), &name, update)
        .await?;
    Ok(Json(QueueDto::from(&queue)))
}

/// Delete a queue without live jobs (admins).
#[utoipa::path(delete, path = "/v1/queues/{name}", operation_id = "delete_queue", params(("name" = String, Path, description = "The queue's name")), tag = "queues", responses((status = 204)))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathArg(name): PathArg<String>,
) -> ApiResult<StatusCode> {
    permit(&caller, Route::ManageQueues)?;
    state.backend().delete_queue(&actor(&caller), &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
