//! Logging in and out. A login checks the admin's argon2 password and sets the session cookie
//! (`HttpOnly`, `SameSite=Strict`, `Secure` over TLS, scoped to the dashboard's path). The
//! login form carries a token that must match its cookie's; refused logins are throttled per
//! name and per address (in the database, for every server process); passwords are checked
//! a few at a time.

use std::net::SocketAddr;

use axum::Form;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use outsourced_core::Error;
use serde::Deserialize;

use super::actions::Action;
use super::view::{self, LoginPage};
use super::{Base, COOKIE, Failure, PageResult, SESSION_TTL, cookie_value, page};
use crate::state::AppState;

/// The login form's fields.
#[derive(Debug, Deserialize)]
pub(crate) struct Credentials {
    #[serde(default)]
    name: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
}

/// The cookie that carries the login form's token.
const LOGIN_COOKIE: &str = "outsourced_login";

/// The login form, with a fresh token in it and in the login cookie.
fn login_page(state: &AppState, base: String, name: String, error: Option<String>) -> Response {
    let csrf = random_token();
    let set = cookie(state, &base, LOGIN_COOKIE, &csrf, 3600);
    let mut response = page(view::render(&LoginPage {
        base,
        error,
        name,
        csrf,
    }));
    response.headers_mut().insert(header::SET_COOKIE, set);
    response
}

fn random_token() -> String {
    let bytes: [u8; 24] = rand::random();
    hex::encode(bytes)
}

/// `GET /dashboard/login`.
pub(crate) async fn form(State(state): State<AppState>, Base(base): Base) -> Response {
    login_page(&state, base, String::new(), None)
}

/// A cookie of the dashboard's (`HttpOnly`, `SameSite=Strict`, `Secure` over TLS, scoped to
/// its path).
pub(super) fn cookie(
    state: &AppState,
    base: &str,
    name: &str,
    value: &str,
    max_age: u64,
) -> HeaderValue {
    let secure = if state.scheme() == "https" || state.config().public_origin.is_some() {
        "; Secure"
    } else {
        ""
    };
    let path = if base.is_empty() { "/" } else { base };
    let text = format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// Who a login is counted against: the admin's name and the client's address.
fn subjects(name: &str, peer: Option<&ConnectInfo<SocketAddr>>) -> Vec<String> {
    let name: String = name.to_lowercase().chars().take(120).collect();
    let mut subjects = vec![format!("name:{name}")];
    if let Some(ConnectInfo(peer)) = peer {
        subjects.push(format!("addr:{}", peer.ip()));
    }
    subjects
}

/// A page that says a login was not tried, with the status and `Retry-After`.
fn not_now(status: StatusCode, retry_after: std::time::Duration, message: String) -> Response {
    let mut response = Failure::new(status, message).into_response();
    // Rounded up: a client that waits exactly this long must find the block over.
    let seconds = retry_after.as_millis().div_ceil(1000).max(1).to_string();
    if let Ok(value) = HeaderValue::from_str(&seconds) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}

/// `POST /dashboard/login`: a session on success; the form again, with one sentence, if not.
/// The form must carry the token of the login cookie; a name or an address refused too often
/// is not tried for a while (429); at most `max_password_checks` passwords are checked at
/// once (503 past it).
pub(crate) async fn submit(
    State(state): State<AppState>,
    Base(base): Base,
    peer: Option<axum::Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    Form(given): Form<Credentials>,
) -> PageResult {
    let expected = cookie_value(&headers, LOGIN_COOKIE).unwrap_or_default();
    let same = !given.csrf.is_empty()
        && bool::from(subtle::ConstantTimeEq::ct_eq(
            expected.as_bytes(),
            given.csrf.as_bytes(),
        ));
    if !same {
        let message = "the login form expired or came from elsewhere: load it again";
        return Err(Failure::new(StatusCode::FORBIDDEN, message));
    }
    let name = given.name.trim();
    let subjects = subjects(name, peer.as_ref().map(|peer| &peer.0));
    let directory = state.directory();
    if let Some(wait) = directory.login_blocked(&subjects).await? {
        let message = format!(
            "too many refused logins: try again in {} s",
            wait.as_millis().div_ceil(1000).max(1)
        );
        return Ok(not_now(StatusCode::TOO_MANY_REQUESTS, wait, message));
    }
    let Some(_checking) = state.admit_password_check() else {
        let message = "too many logins at once: try again in a moment".to_owned();
        let wait = std::time::Duration::from_secs(1);
        return Ok(not_now(StatusCode::SERVICE_UNAVAILABLE, wait, message));
    };
    match directory.login(name, &given.password, SESSION_TTL).await {
        Ok(login) => {
            directory.login_succeeded(&subjects).await?;
            tracing::info!(admin = %login.session.admin, "dashboard login");
            let mut response = Redirect::to(&base).into_response();
            let set = cookie(&state, &base, COOKIE, &login.token, SESSION_TTL.as_secs());
            response.headers_mut().append(header::SET_COOKIE, set);
            let spent = cookie(&state, &base, LOGIN_COOKIE, "", 0);
            response.headers_mut().append(header::SET_COOKIE, spent);
            Ok(response)
        }
        Err(Error::Unauthorized { message, .. }) => {
            directory.login_refused(&subjects).await?;
            state.metrics().auth_failure("dashboard_login");
            // Escaped: the name is whatever the form said.
            tracing::warn!(name = ?given.name, "dashboard login refused");
            let mut response = login_page(&state, base, given.name, Some(message));
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
    let expired = cookie(&state, &admin.base, COOKIE, "", 0);
    response.headers_mut().insert(header::SET_COOKIE, expired);
    Ok(response)
}
