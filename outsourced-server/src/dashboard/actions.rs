//! The dashboard's actions: retry and cancel a job, pause and resume a queue, hire and fire a
//! worker. Each is a form `POST` that must carry the session's CSRF token, acts as the
//! logged-in admin (history rows name them), then redirects back to the page it came from.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use outsourced_backend_sql::Role;
use outsourced_core::{Backend, JobId, QueueUpdate};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::{Admin, Failure, PageResult};
use crate::state::AppState;

/// What an action's form sends.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ActionForm {
    /// The session's CSRF token (a missing one is refused like a wrong one).
    #[serde(default)]
    csrf: String,
    /// The queue, for hire and fire.
    #[serde(default)]
    queue: String,
}

impl ActionForm {
    /// The CSRF token it carries.
    pub(crate) fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// Refuses a form whose CSRF token is not the session's.
pub(crate) fn check_csrf(admin: &Admin, given: &str) -> Result<(), Failure> {
    let expected = admin.session.csrf.as_bytes();
    if bool::from(given.as_bytes().ct_eq(expected)) {
        return Ok(());
    }
    Err(Failure::new(
        StatusCode::FORBIDDEN,
        "this form's CSRF token is missing or wrong; reload the page and try again",
    ))
}

fn back(admin: &Admin, to: &str) -> PageResult {
    Ok(Redirect::to(&format!("{}{to}", admin.base)).into_response())
}

/// `POST /dashboard/jobs/{id}/retry`.
pub(crate) async fn retry(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<i64>,
    Form(form): Form<ActionForm>,
) -> PageResult {
    check_csrf(&admin, &form.csrf)?;
    state.backend().retry(&admin.actor(), JobId(id)).await?;
    back(&admin, &format!("/jobs/{id}"))
}

/// `POST /dashboard/jobs/{id}/cancel`.
pub(crate) async fn cancel(
    State(state): State<AppState>,
    admin: Admin,
    Path(id): Path<i64>,
    Form(form): Form<ActionForm>,
) -> PageResult {
    check_csrf(&admin, &form.csrf)?;
    state.backend().cancel(&admin.actor(), JobId(id)).await?;
    back(&admin, &format!("/jobs/{id}"))
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
    back(admin, "")
}

/// `POST /dashboard/queues/{name}/pause`.
pub(crate) async fn pause(
    State(state): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
    Form(form): Form<ActionForm>,
) -> PageResult {
    check_csrf(&admin, &form.csrf)?;
    set_paused(&state, &admin, &name, true).await
}

/// `POST /dashboard/queues/{name}/resume`.
pub(crate) async fn resume(
    State(state): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
    Form(form): Form<ActionForm>,
) -> PageResult {
    check_csrf(&admin, &form.csrf)?;
    set_paused(&state, &admin, &name, false).await
}

/// `POST /dashboard/workers/{name}/hire` with `queue`.
pub(crate) async fn hire(
    State(state): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
    Form(form): Form<ActionForm>,
) -> PageResult {
    check_csrf(&admin, &form.csrf)?;
    // Hiring for a queue that does not exist would hand the worker nothing: say so.
    (state.backend().queues(&admin.actor()).await?)
        .iter()
        .find(|q| q.name == form.queue)
        .ok_or_else(|| outsourced_core::Error::UnknownQueue {
            queue: form.queue.clone(),
        })?;
    state
        .directory()
        .grant(Role::Worker, &name, &form.queue)
        .await?;
    tracing::info!(admin = %admin.session.admin, worker = %name, queue = %form.queue, "hired");
    back(&admin, "/workers")
}

/// `POST /dashboard/workers/{name}/fire` with `queue`.
pub(crate) async fn fire(
    State(state): State<AppState>,
    admin: Admin,
    Path(name): Path<String>,
    Form(form): Form<ActionForm>,
) -> PageResult {
    check_csrf(&admin, &form.csrf)?;
    state
        .directory()
        .revoke(Role::Worker, &name, &form.queue)
        .await?;
    tracing::info!(admin = %admin.session.admin, worker = %name, queue = %form.queue, "fired");
    back(&admin, "/workers")
}
