//! Logging in and out. A login checks the admin's argon2 password and sets the session cookie
//! (`HttpOnly`, `SameSite=Strict`, `Secure` over TLS, scoped to the dashboard's path).

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use outsourced_core::Error;
use serde::Deserialize;

use super::actions::Action;
use super::view::{self, LoginPage};
use super::{Base, COOKIE, Failure, PageResult, SESSION_TTL, page};
use crate::state::AppState;

/// The login form's fields.
#[derive(Debug, Deserialize)]
pub(crate) struct Credentials {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
}

fn login_page(base: String, name: String, error: Option<String>) -> Response {
    page(view::render(&LoginPage { base, error, name }))
}

/// `GET /dashboard/login`.
pub(crate) async fn form(Base(base): Base) -> Response {
    login_page(base, String::new(), None)
}

fn cookie(state: &AppState, base: &str, value: &str, max_age: u64) -> HeaderValue {
    let secure = if state.scheme() == "https" || state.config().public_origin.is_some() {
        "; Secure"
    } else {
        ""
    };
    let path = if base.is_empty() { "/" } else { base };
    let text = format!(
        "{COOKIE}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `POST /dashboard/login`: a session on success; the form again, with one sentence, if not.
pub(crate) async fn submit(
    State(state): State<AppState>,
    Base(base): Base,
    Form(given): Form<Credentials>,
) -> PageResult {
    let login = state
        .directory()
        .login(given.name.trim(), &given.password, SESSION_TTL)
        .await;
    match login {
        Ok(login) => {
            tracing::info!(admin = %login.session.admin, "dashboard login");
            let mut response = Redirect::to(&base).into_response();
            let set = cookie(&state, &base, &login.token, SESSION_TTL.as_secs());
            response.headers_mut().insert(header::SET_COOKIE, set);
            Ok(response)
        }
        Err(Error::Unauthorized { message, .. }) => {
            state.metrics().auth_failure("dashboard_login");
            tracing::warn!(name = %given.name, "dashboard login refused");
            let mut response = login_page(base, given.name, Some(message));
            *response.status_mut() = StatusCode::UNAUTHORIZED;
            Ok(response)
        }
        Err(error) => Err(Failure::from(error)),
    }
}

/// `POST /dashboard/logout`: ends the session (with its CSRF token, like every action).
pub(crate) async fn logout(
    State(state): State<AppState>,
    Action { admin, .. }: Action,
) -> PageResult {
    state.directory().logout(&admin.token).await?;
    let mut response = Redirect::to(&format!("{}/login", admin.base)).into_response();
    let expired = cookie(&state, &admin.base, "", 0);
    response.headers_mut().insert(header::SET_COOKIE, expired);
    Ok(response)
}
