//! Batches: open one with its callback, read its counts, close it, cancel its jobs. A
//! producer sees only the batches it opened (others are 404, as if absent); an admin, all.

use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::{Json, response::IntoResponse};
use outsourced_backend_http::wire::{BatchDto, CountDto, NewBatchDto};
use outsourced_core::{Backend, BatchId, NewBatch, NewJob};

use super::access::{actor, batch_of, queue_access};
use super::roles::{Route, permit};
use crate::auth::Caller;
use crate::error::ApiResult;
use crate::extract::{JsonBody, PathArg};
use crate::state::AppState;

/// Open a batch: its callback is stored pending, in a queue the caller may enqueue into.
#[utoipa::path(post, path = "/v1/batches", request_body = NewBatchDto, tag = "batches",
    responses((status = 201, body = BatchDto), (status = 429, description = "the callback's queue is full", body = outsourced_backend_http::wire::ErrorBody)))]
pub(crate) async fn open_batch(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JsonBody(dto): JsonBody<NewBatchDto>,
) -> ApiResult<impl IntoResponse> {
    permit(&caller, Route::Batches)?;
    let callback = NewJob::try_from(dto.callback)?;
    queue_access(&caller, &callback.queue)?;
    let batch = NewBatch {
        description: dto.description,
        callback,
    };
    let info = state.backend().open_batch(&actor(&caller), batch).await?;
    Ok((StatusCode::CREATED, Json(BatchDto::from(&info))))
}

/// A batch and its counts.
#[utoipa::path(get, path = "/v1/batches/{id}", params(("id" = i64, Path, description = "The batch's id")), tag = "batches", responses((status = 200, body = BatchDto)))]
pub(crate) async fn get_batch(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathArg(id): PathArg<i64>,
) -> ApiResult<Json<BatchDto>> {
    permit(&caller, Route::Batches)?;
    let info = batch_of(&state, &actor(&caller), BatchId(id)).await?;
    Ok(Json(BatchDto::from(&info)))
}

/// Close a batch: its callback runs once every job of it has ended.
#[utoipa::path(post, path = "/v1/batches/{id}/close", params(("id" = i64, Path, description = "The batch's id")), tag = "batches", responses((status = 200, body = BatchDto)))]
pub(crate) async fn close_batch(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathArg(id): PathArg<i64>,
) -> ApiResult<Json<BatchDto>> {
    permit(&caller, Route::Batches)?;
    let by = actor(&caller);
    batch_of(&state, &by, BatchId(id)).await?;
    let info = state.backend().close_batch(&by, BatchId(id)).await?;
    Ok(Json(BatchDto::from(&info)))
}

/// Close a batch and cancel every job of it that has not ended.
#[utoipa::path(post, path = "/v1/batches/{id}/cancel", params(("id" = i64, Path, description = "The batch's id")), tag = "batches", responses((status = 200, body = CountDto)))]
pub(crate) async fn cancel_batch(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    PathArg(id): PathArg<i64>,
) -> ApiResult<Json<CountDto>> {
    permit(&caller, Route::Batches)?;
    let by = actor(&caller);
    batch_of(&state, &by, BatchId(id)).await?;
    let count = state.backend().cancel_batch(&by, BatchId(id)).await?;
    Ok(Json(CountDto { count }))
}
