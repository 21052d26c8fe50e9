//! Enqueues with an `Idempotency-Key` header: the first answer is kept a day with the key, so
//! that a request sent again (its answer lost) gets that answer again and stores nothing. The
//! key belongs to the caller; one first used with another request is 422.

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use outsourced_backend_http::wire::{Code, ErrorBody, IdsDto, job_to_dto};
use outsourced_backend_sql::Role;
use outsourced_backend_sql::idempotency::{Answer, Idempotent, Request};
use outsourced_backend_sql::store::nonces::Seen;
use outsourced_core::{Actor, Error, JobRecord, NewJob};
use sha2::{Digest, Sha256};

use super::access::actor;
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The header, as the IETF httpapi draft names it.
const HEADER: &str = "idempotency-key";

/// The key a request carries, if any.
pub(crate) fn key_of(headers: &HeaderMap) -> ApiResult<Option<String>> {
    let Some(value) = headers.get(HEADER) else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(key) => Ok(Some(key.to_owned())),
        Err(_) => Err(ApiError::bad_request(
            "an Idempotency-Key must be printable ASCII",
        )),
    }
}

/// What the request asks, for one job (`single`) or a batch: the answer it gets.
pub(crate) struct Enqueue<'a> {
    pub(crate) key: &'a str,
    pub(crate) path: &'a str,
    /// The request's body as the server read it (re-encoded, so that the same JSON however
    /// spaced is the same request).
    pub(crate) body: Vec<u8>,
    pub(crate) jobs: Vec<NewJob>,
    pub(crate) single: bool,
}

/// Enqueues once per key, answering as the first time.
/// With the signed request's `nonce`, recorded in the enqueue's transaction.
pub(crate) async fn enqueue(
    state: &AppState,
    caller: &Caller,
    request: Enqueue<'_>,
    nonce: Option<Seen>,
) -> ApiResult<Response> {
    let principal = actor(caller).to_string();
    let mut digest = Sha256::new();
    digest.update(format!("POST {}\n", request.path).as_bytes());
    digest.update(&request.body);
    let fingerprint = hex::encode(digest.finalize());
    let idempotent = Request {
        principal: &principal,
        key: request.key,
        fingerprint: &fingerprint,
    };
    let single = request.single;
    // Made in the store's own task (the group commit), so it owns what it needs of the caller.
    let (by, admin) = (actor(caller), caller.principal.role == Role::Admin);
    let seen_by = by.clone();
    let outcome = state
        .backend()
        .enqueue_idempotent(
            &by,
            idempotent,
            request.jobs,
            move |placed| answer(&seen_by, admin, placed, single),
            nonce,
        )
        .await?;
    match outcome {
        Idempotent::Answer(answer) => Ok(replay(answer)),
        Idempotent::Mismatch => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            Code::IdempotencyKeyReused,
            "this Idempotency-Key was first used with another request; use a new key",
        )),
    }
}

/// The answer to keep: the job (201 stored, 200 a duplicate, 409 a duplicate of a job the
/// caller may not see), or the batch's ids.
fn answer(caller: &Actor, admin: bool, placed: &[(JobRecord, bool)], single: bool) -> Answer {
    fn json(status: StatusCode, body: &impl serde::Serialize) -> Answer {
        Answer {
            status: status.as_u16(),
            body: serde_json::to_string(body).unwrap_or_default(),
        }
    }
    if !single {
        let ids = IdsDto {
            ids: placed.iter().map(|(job, _)| job.id.0).collect(),
            duplicates: match placed.iter().any(|(_, duplicate)| *duplicate) {
                true => placed.iter().map(|(_, duplicate)| *duplicate).collect(),
                false => Vec::new(),
            },
        };
        return json(StatusCode::CREATED, &ids);
    }
    let Some((job, duplicate)) = placed.first() else {
        return json(
            StatusCode::INTERNAL_SERVER_ERROR,
            &ErrorBody::new(Code::Internal, "no job"),
        );
    };
    let visible = admin || job.enqueued_by == *caller;
    match (duplicate, visible) {
        (false, _) => json(StatusCode::CREATED, &job_to_dto(job)),
        (true, true) => json(StatusCode::OK, &job_to_dto(job)),
        (true, false) => {
            let error = Error::Duplicate {
                key: job.unique_key.clone().unwrap_or_default(),
                existing: job.id,
            };
            json(StatusCode::CONFLICT, &ErrorBody::from_error(&error))
        }
    }
}

fn replay(answer: Answer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let content_type = HeaderValue::from_static("application/json");
    (status, [(header::CONTENT_TYPE, content_type)], answer.body).into_response()
}
