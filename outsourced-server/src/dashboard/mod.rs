//! The web dashboard under `<mount>/dashboard`: server-rendered pages (askama templates in
//! `templates/`) for admins who logged in with their password. Every state-changing form
//! carries the session's CSRF token; the session cookie is `HttpOnly` and `SameSite=Strict`.
//! The one script, htmx, is served from the binary and only refreshes parts of a page.

mod actions;
mod batch;
mod bulk;
mod chart;
mod login;
mod pages;
mod view;

use axum::Router;
use axum::extract::{FromRequestParts, OriginalUri};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use outsourced_backend_sql::Session;
use outsourced_core::{Actor, Error};

use crate::state::AppState;

/// The cookie that holds a session's token.
const COOKIE: &str = "outsourced_session";

/// How long a login lasts.
const SESSION_TTL: std::time::Duration = std::time::Duration::from_secs(12 * 3600);

/// The dashboard's routes, to be nested at `/dashboard`.
pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(pages::overview))
        .route("/jobs", get(pages::jobs))
        .route("/jobs/bulk", get(bulk::confirm).post(bulk::act))
        .route("/jobs/{id}", get(pages::job))
        .route("/jobs/{id}/attachment", get(pages::attachment))
        .route("/jobs/{id}/retry", post(actions::retry))
        .route("/jobs/{id}/cancel", post(actions::cancel))
        .route("/batches/{id}", get(batch::show))
        .route("/batches/{id}/cancel", post(batch::cancel))
        .route("/queues/{name}/pause", post(actions::pause))
        .route("/queues/{name}/resume", post(actions::resume))
        .route("/workers", get(pages::workers))
        .route("/workers/{name}/hire", post(actions::hire))
        .route(
            "/workers/{name}/fire",
            get(pages::confirm_fire).post(actions::fire),
        )
        .route(
            "/workers/{name}/lock",
            get(pages::confirm_lock).post(actions::lock),
        )
        .route("/workers/{name}/unlock", post(actions::unlock))
        .route(
            "/workers/{name}/rotate",
            get(pages::confirm_rotate).post(actions::rotate),
        )
        .route("/login", get(login::form).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/assets/htmx.min.js", get(htmx))
        .route("/assets/style.css", get(style))
        // Its forms are a few fields: a larger body (the login's is read before anyone is
        // known) is refused once this much of it has come, not after megabytes, and a slow
        // one once `FORM_TIMEOUT` has passed.
        .layer(axum::middleware::from_fn(form_in_time))
        .layer(axum::middleware::from_fn(notice_once))
}

/// The cookie that carries the message an action leaves for the page it redirects to.
pub(crate) const NOTICE: &str = "outsourced_notice";

/// The most characters of a notice a page shows.
const NOTICE_MAX: usize = 300;

/// The message in a request's notice cookie, if any, decoded and bounded.
fn notice_of(headers: &axum::http::HeaderMap) -> String {
    let Some(value) = cookie_value(headers, NOTICE) else {
        return String::new();
    };
    let text: String = url::form_urlencoded::parse(format!("n={value}").as_bytes())
        .map(|(_, text)| text.into_owned())
        .next()
        .unwrap_or_default();
    text.chars().take(NOTICE_MAX).collect()
}

/// Shows an action's notice once: a page that found one clears its cookie.
async fn notice_once(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let had = request.method() == axum::http::Method::GET
        && cookie_value(request.headers(), NOTICE).is_some();
    let (mut parts, body) = request.into_parts();
    let Ok(Base(base)) = Base::from_request_parts(&mut parts, &()).await;
    let mut response = next
        .run(axum::extract::Request::from_parts(parts, body))
        .await;
    if had && response.status().is_success() {
        let path = if base.is_empty() { "/" } else { &base };
        let cleared = format!("{NOTICE}=; Path={path}; Max-Age=0; HttpOnly; SameSite=Strict");
        if let Ok(cleared) = HeaderValue::from_str(&cleared) {
            response.headers_mut().append(header::SET_COOKIE, cleared);
        }
    }
    response
}

/// The most bytes a dashboard form may send.
const FORM_LIMIT: usize = 16 * 1024;

/// How long a dashboard form's body may take to arrive.
const FORM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads a form's body whole, within [`FORM_LIMIT`] and [`FORM_TIMEOUT`] (413, 408), before
/// any handler sees it.
async fn form_in_time(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let (parts, body) = request.into_parts();
    let read = axum::body::to_bytes(body, FORM_LIMIT);
    let bytes = match tokio::time::timeout(FORM_TIMEOUT, read).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => {
            return Failure::new(StatusCode::PAYLOAD_TOO_LARGE, "the form is too large")
                .into_response();
        }
        Err(_) => {
            let message = "the form took too long to arrive";
            return Failure::new(StatusCode::REQUEST_TIMEOUT, message).into_response();
        }
    };
    let request = axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes));
    next.run(request).await
}

/// The dashboard's own URL prefix (`/outsourced/dashboard`), whatever the host mounted it at:
/// the original path less the part the nested router saw.
#[derive(Clone, Debug)]
pub(crate) struct Base(pub(crate) String);

impl<S: Send + Sync> FromRequestParts<S> for Base {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let original = parts
            .extensions
            .get::<OriginalUri>()
            .map_or_else(|| parts.uri.path().to_owned(), |o| o.path().to_owned());
        let inner = parts.uri.path();
        let base = match inner {
            "/" | "" => original.trim_end_matches('/'),
            _ => original.strip_suffix(inner).unwrap_or(""),
        };
        Ok(Base(base.to_owned()))
    }
}

/// A logged-in admin: the request's cookie names a live session. Without one, pages redirect
/// to the login form.
#[derive(Clone, Debug)]
pub(crate) struct Admin {
    pub(crate) session: Session,
    pub(crate) base: String,
    /// What the last action said, to show once (empty when nothing).
    pub(crate) notice: String,
    /// The cookie's token (logging out ends its session).
    pub(crate) token: String,
}

impl Admin {
    /// Whom the backend records as doing what this admin does.
    pub(crate) fn actor(&self) -> Actor {
        Actor::Admin(self.session.admin.clone())
    }
}

/// The value of the session cookie in a request's headers.
/// The value of cookie `name`.
pub(crate) fn cookie_value(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(found, _)| *found == name)
        .map(|(_, value)| value.to_owned())
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Ok(Base(base)) = Base::from_request_parts(parts, state).await;
        let to_login = || Redirect::to(&format!("{base}/login")).into_response();
        let Some(token) = cookie_value(&parts.headers, COOKIE) else {
            return Err(to_login());
        };
        // A cookie is not yet a session: its lookup takes a place in the share of the server
        // that unauthenticated requests may use, as a signature check does.
        let session = {
            let Some(_checking) = state.admit_check().await else {
                let busy = "the server is busy: try again in a moment";
                return Err(Failure::new(StatusCode::SERVICE_UNAVAILABLE, busy).into_response());
            };
            state.directory().session(&token).await
        };
        match session {
            Ok(Some(session)) => Ok(Admin {
                session,
                base,
                token,
                notice: notice_of(&parts.headers),
            }),
            Ok(None) => Err(to_login()),
            Err(error) => Err(Failure::from(error).into_response()),
        }
    }
}

/// An error shown as a page: its status and one sentence, never internals.
#[derive(Debug)]
pub(crate) struct Failure {
    status: StatusCode,
    message: String,
}

impl Failure {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Failure {
            status,
            message: message.into(),
        }
    }
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        let api = crate::error::ApiError::from(error.clone());
        let message = match error {
            Error::Backend { .. } => "the database failed; see the server's log".to_owned(),
            other => other.to_string(),
        };
        Failure::new(api.status(), message)
    }
}

/// A job id from the path; a path whose id is no number gets a page that says so (not the
/// framework's words).
pub(crate) struct JobPath(pub(crate) i64);

impl<S: Send + Sync> FromRequestParts<S> for JobPath {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        id_in_path(parts, state, "jobs", "job").await.map(JobPath)
    }
}

/// A batch id from the path, as [`JobPath`].
pub(crate) struct BatchPath(pub(crate) i64);

impl<S: Send + Sync> FromRequestParts<S> for BatchPath {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        id_in_path(parts, state, "batches", "batch")
            .await
            .map(BatchPath)
    }
}

/// The number after `/{segment}/` in the path, or a page saying that it is no `what` id.
async fn id_in_path<S: Send + Sync>(
    parts: &mut Parts,
    state: &S,
    segment: &str,
    what: &str,
) -> Result<i64, Response> {
    match axum::extract::Path::<i64>::from_request_parts(parts, state).await {
        Ok(axum::extract::Path(id)) => Ok(id),
        Err(_) => {
            let path = parts.uri.path();
            let raw = path.split('/').skip_while(|s| *s != segment).nth(1);
            let said = format!(
                "{:?} is not a {what} id: {what} ids are numbers, like 42",
                raw.unwrap_or_default()
            );
            Err(Failure::new(StatusCode::BAD_REQUEST, said).into_response())
        }
    }
}

/// A page's query string; one that does not parse (a cursor that is no number, say) gets a
/// page that says which part is wrong.
pub(crate) struct Link<T>(pub(crate) T);

impl<T: serde::de::DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Link<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Link(value)),
            Err(rejection) => {
                let why = rejection.body_text();
                let why = why.trim_start_matches("Failed to deserialize query string: ");
                let said = format!(
                    "this page's link is not valid ({why}); open it again from the dashboard"
                );
                Err(Failure::new(StatusCode::BAD_REQUEST, said).into_response())
            }
        }
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let error = view::ErrorPage {
            status: self.status.as_u16(),
            message: self.message,
        };
        let mut response = page(view::render(&error));
        *response.status_mut() = self.status;
        response
    }
}

/// What a dashboard handler returns.
pub(crate) type PageResult = Result<Response, Failure>;

/// A rendered page, never cached (it shows live state and carries the CSRF token).
pub(crate) fn page(html: Html<String>) -> Response {
    let mut response = html.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    response
}

const HTMX: &str = include_str!("../../assets/htmx-2.0.11.min.js");
const STYLE: &str = include_str!("../../assets/dashboard.css");

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let headers = [
        (header::CONTENT_TYPE, content_type),
        (header::CACHE_CONTROL, "public, max-age=86400"),
    ];
    (headers, body).into_response()
}

async fn htmx() -> Response {
    asset("text/javascript; charset=utf-8", HTMX)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}
