//! The dashboard's actions: retry and cancel a job, pause and resume a queue, hire, fire,
//! lock, unlock a worker and rotate its secret. Each is a form `POST` that must carry the session's CSRF token, acts as the
//! logged-in admin (history rows name them), then redirects back to the page it came from.

use axum::Form;
use axum::extract::{FromRequest, FromRequestParts, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use outsourced_backend_sql::Role;
use outsourced_core::{Backend, JobId, JobState, QueueUpdate};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::{Admin, Failure, PageResult};
use crate::state::AppState;

/// What an action's form sends.
#[derive(Debug, Default, Deserialize)]
struct ActionForm {
    /// The session's CSRF token (a missing one is refused like a wrong one).
    #[serde(default)]
    csrf: String,
    /// The queue, for hire and fire.
    #[serde(default)]
    queue: String,
    /// A bulk action's and its filter's (the filter's queue is `queue`).
    #[serde(default)]
    action: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    class: String,
    #[serde(default)]
    owner: String,
    #[serde(default)]
    key: String,
}

/// A logged-in admin's form whose CSRF token is the session's: the only way a handler gets
/// at an action's form, so no action can skip the check.
pub(crate) struct Action {
    pub(crate) admin: Admin,
    /// The form's `queue` field (hire and fire).
    queue: String,
    /// The form's fields as a bulk action reads them.
    pub(crate) bulk: super::bulk::BulkForm,
}

impl FromRequest<AppState> for Action {
    type Rejection = Response;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let admin = Admin::from_request_parts(&mut parts, state).await?;
        let request = Request::from_parts(parts, body);
        // A body that is no form cannot carry the token: refused as a missing token is.
        let form = Form::<ActionForm>::from_request(request, state).await;
        let form = form.map(|Form(form)| form).unwrap_or_default();
        let expected = admin.session.csrf.as_bytes();
        if !bool::from(form.csrf.as_bytes().ct_eq(expected)) {
            let refused = Failure::new(
                StatusCode::FORBIDDEN,
                "this form's CSRF token is missing or wrong; reload the page and try again",
            );
            return Err(refused.into_response());
        }
        let bulk = super::bulk::BulkForm {
            action: form.action,
            state: form.state,
            queue: form.queue.clone(),
            class: form.class,
            owner: form.owner,
            key: form.key,
        };
        Ok(Action {
            admin,
            queue: form.queue,
            bulk,
        })
    }
}

/// Back to the page at `to`, which shows `said` once (a cookie of its own carries it, so that
/// no link can make a page say anything).
pub(crate) fn back(state: &AppState, admin: &Admin, to: &str, said: &str) -> PageResult {
    let mut response = Redirect::to(&format!("{}{to}", admin.base)).into_response();
    let said: String = url::form_urlencoded::byte_serialize(said.as_bytes()).collect();
    let cookie = super::login::cookie(state, &admin.base, super::NOTICE, &said, 60);
    response.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(response)
}

/// `POST /dashboard/jobs/{id}/retry`.
pub(crate) async fn retry(
    State(state): State<AppState>,
    super::JobPath(id): super::JobPath,
    Action { admin, .. }: Action,
) -> PageResult {
    state.backend().retry(&admin.actor(), JobId(id)).await?;
    let said = format!("Job {id} runs again: it waits for a worker.");
    back(&state, &admin, &format!("/jobs/{id}"), &said)
}

/// `POST /dashboard/jobs/{id}/cancel`.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    super::JobPath(id): super::JobPath,
    Action { admin, .. }: Action,
) -> PageResult {
    let now = state.backend().cancel(&admin.actor(), JobId(id)).await?;
    let said = match now {
        JobState::Running => format!(
            "Job {id} is asked to stop: its worker hears it at its next heartbeat, and the job ends as cancelled."
        ),
        _ => format!("Job {id} is cancelled."),
    };
    back(&state, &admin, &format!("/jobs/{id}"), &said)
}

async fn set_paused(state: &AppState, admin: &Admin, queue: &str, paused: bool) -> PageResult {
    let update = QueueUpdate {
        paused: Some(paused),
        ..QueueUpdate::default()
    };
    state
        .backend()
        .update_queue(&admin.actor(), queue, update)
        .await?;
    let said = match paused {
        true => format!("Queue {queue} is paused: no worker takes its jobs until it is resumed."),
        false => format!("Queue {queue} is resumed."),
    };
    back(state, admin, "", &said)
}

/// `POST /dashboard/queues/{name}/pause`.
pub(crate) async fn pause(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Action { admin, .. }: Action,
) -> PageResult {
    set_paused(&state, &admin, &name, true).await
}

/// `POST /dashboard/queues/{name}/resume`.
pub(crate) async fn resume(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Action { admin, .. }: Action,
) -> PageResult {
    set_paused(&state, &admin, &name, false).await
}

/// `POST /dashboard/workers/{name}/hire` with `queue`.
pub(crate) async fn hire(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Action { admin, queue, .. }: Action,
) -> PageResult {
    // Hiring for a queue that does not exist would hand the worker nothing: say so.
    (state.backend().queues(&admin.actor()).await?)
        .iter()
        .find(|q| q.name == queue)
        .ok_or_else(|| outsourced_core::Error::UnknownQueue {
            queue: queue.clone(),
        })?;
    state.directory().grant(Role::Worker, &name, &queue).await?;
    tracing::info!(admin = %admin.session.admin, worker = %name, queue = %queue, "hired");
    let said = format!("Worker {name} is hired for {queue}.");
    back(&state, &admin, "/workers", &said)
}

/// `POST /dashboard/workers/{name}/fire` with `queue`.
pub(crate) async fn fire(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Action { admin, queue, .. }: Action,
) -> PageResult {
    state
        .directory()
        .revoke(Role::Worker, &name, &queue)
        .await?;
    tracing::info!(admin = %admin.session.admin, worker = %name, queue = %queue, "fired");
    let said = format!("Worker {name} is fired from {queue}: it takes no more jobs from it.");
    back(&state, &admin, "/workers", &said)
}

/// `POST /dashboard/workers/{name}/lock`: refuses the worker's requests until unlocked.
pub(crate) async fn lock(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Action { admin, .. }: Action,
) -> PageResult {
    set_locked(&state, &admin, &name, true).await
}

/// `POST /dashboard/workers/{name}/rotate`: a new secret, shown on the page it answers with
/// (once: it is stored encrypted, never shown again), not in a notice or a link.
pub(crate) async fn rotate(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Action { admin, .. }: Action,
) -> PageResult {
    let rotated = state
        .directory()
        .rotate_secret(state.key(), Role::Worker, &name);
    let credentials = rotated.await?;
    let shown = super::view::SecretPage {
        chrome: super::pages::chrome(&admin, "workers"),
        worker: name,
        consumer_key: credentials.consumer_key,
        consumer_secret: credentials.consumer_secret,
    };
    Ok(super::page(super::view::render(&shown)))
}

/// `POST /dashboard/workers/{name}/unlock`.
pub(crate) async fn unlock(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Action { admin, .. }: Action,
) -> PageResult {
    set_locked(&state, &admin, &name, false).await
}

async fn set_locked(state: &AppState, admin: &Admin, name: &str, locked: bool) -> PageResult {
    state
        .directory()
        .set_locked(Role::Worker, name, locked)
        .await?;
    tracing::info!(admin = %admin.session.admin, worker = %name, locked, "worker lock set");
    let said = match locked {
        true => format!("Worker {name} is locked out: its requests are refused."),
        false => format!("Worker {name} is unlocked."),
    };
    back(state, admin, "/workers", &said)
}
