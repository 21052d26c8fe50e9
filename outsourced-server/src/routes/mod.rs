//! The `/v1` API as an axum `Router`, and its OpenAPI document.

mod access;
mod attachments;
mod batches;
mod idempotent;
mod jobs;
mod lease;
mod queues;
pub mod roles;

pub(crate) use attachments::download_response;

use axum::Json;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{get, patch, post};
use outsourced_backend_http::wire::{Code, path};
use utoipa::OpenApi;

use crate::auth;
use crate::error::ApiError;
use crate::state::AppState;

/// How requests are signed, before the role table in the OpenAPI document's description.
const SIGNING: &str = "\
Every request under /v1 (but /v1/openapi.json and /v1/health) is signed with two-legged OAuth \
1.0a (HMAC-SHA1 or HMAC-SHA256). Authorization by role:\n\n";

#[derive(OpenApi)]
#[openapi(
    info(title = "outsourced", description = "The job queue's HTTP API. See the authorization table below.\n\n"),
    paths(
        jobs::enqueue, jobs::enqueue_batch, jobs::get, jobs::history, jobs::list, jobs::counts,
        jobs::cancel, jobs::retry, jobs::reclaim, jobs::prune, attachments::put, attachments::get,
        lease::reserve, lease::due, lease::heartbeat, lease::complete, lease::complete_batch, lease::fail,
        lease::release, lease::release_all,
        queues::list, queues::create, queues::update, queues::delete,
        batches::open_batch, batches::get_batch, batches::close_batch, batches::cancel_batch,
    ),
    tags((name = "jobs"), (name = "workers"), (name = "queues"), (name = "batches"), (name = "admin"))
)]
struct ApiDoc;

/// The OpenAPI document of the `/v1` API.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    let description = doc.info.description.get_or_insert_with(String::new);
    description.push_str(SIGNING);
    description.push_str(&roles::authorization());
    description
        .push_str("\nA job or queue the caller may not see is 404 whether or not it exists.");
    sign_every_operation(&mut doc);
    doc
}

/// OpenAPI has no scheme for OAuth 1.0a: the signature is declared as what it is on the wire,
/// an `Authorization` header, required by every operation.
fn sign_every_operation(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme};
    let scheme = ApiKey::Header(ApiKeyValue::with_description(
        "Authorization",
        "OAuth 1.0a (RFC 5849), two-legged: `OAuth oauth_consumer_key=..., oauth_signature=...`, \
         HMAC-SHA1 or HMAC-SHA256 over the method, the URL and the query (with `body_sha256`)",
    ));
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme("oauth1", SecurityScheme::ApiKey(scheme));
    doc.security = Some(vec![SecurityRequirement::new(
        "oauth1",
        Vec::<String>::new(),
    )]);
}

/// The document, built once per process: it never changes, and building it at every request
/// would have the server work for whoever asks, signed or not.
async fn openapi_json() -> axum::response::Response {
    use axum::response::IntoResponse;
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let text = DOCUMENT.get_or_init(|| serde_json::to_string(&openapi()).unwrap_or_default());
    let json = "application/json";
    ([(axum::http::header::CONTENT_TYPE, json)], text.as_str()).into_response()
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn no_route() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        Code::NoRoute,
        "no such route; see /v1/openapi.json",
    )
}

/// Answers 408 when a request takes longer than `request_timeout`, attachments excepted, and
/// counts every request by route, method and status.
async fn time_limit(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", axum::extract::MatchedPath::as_str)
        .to_owned();
    let method = request.method().clone();
    let response = if auth::is_streamed(&path, request.headers()) {
        next.run(request).await
    } else {
        match tokio::time::timeout(state.config().request_timeout, next.run(request)).await {
            Ok(response) => response,
            Err(_) => ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                Code::Timeout,
                "the request took too long",
            )
            .into_response(),
        }
    };
    let status = response.status().as_u16();
    state.metrics().request(&path, method.as_str(), status);
    response
}

/// `GET <mount>/metrics`: Prometheus's text format, behind the bearer token, and off without
/// one: a scrape reads the database, which nothing a client sends unauthenticated may make the
/// server do.
async fn metrics(
    axum::extract::State(state): axum::extract::State<AppState>,
    headers: axum::http::HeaderMap,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    let Some(token) = &state.config().metrics_token else {
        state.metrics().auth_failure("metrics_token");
        return Err(ApiError::unauthorized(
            Code::MetricsToken,
            "the metrics are off: this server has no metrics token (start it with --metrics-token TOKEN or OUTSOURCED_METRICS_TOKEN, then send Authorization: Bearer TOKEN)",
        ));
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let matches = given.is_some_and(|given| {
        use subtle::ConstantTimeEq;
        bool::from(given.as_bytes().ct_eq(token.as_bytes()))
    });
    if !matches {
        state.metrics().auth_failure("metrics_token");
        return Err(ApiError::unauthorized(
            Code::MetricsToken,
            "the metrics need Authorization: Bearer with the server's metrics token",
        ));
    }
    let text = state
        .metrics()
        .render(state.backend(), state.directory())
        .await?;
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    Ok(([(axum::http::header::CONTENT_TYPE, content_type)], text).into_response())
}

/// The router a host application mounts (`.nest("/outsourced", router(state))`): the API
/// under `/v1`, `/metrics`, the dashboard under `/dashboard` and the API explorer at `/docs/`.
pub fn router(state: AppState) -> Router {
    let config = state.config().clone();
    let tls = state.scheme() == "https" || behind_tls(&config);
    let signed = Router::new()
        .route(
            path::JOBS.template(),
            // The JSON form is read (and limited) by `auth`; the multipart form streams.
            post(jobs::enqueue)
                .layer(DefaultBodyLimit::disable())
                .get(jobs::list),
        )
        .route(path::BATCH.template(), post(jobs::enqueue_batch))
        .route(path::JOB.template(), get(jobs::get))
        .route(path::HISTORY.template(), get(jobs::history))
        .route(
            path::ATTACHMENT.template(),
            get(attachments::get).put(attachments::put),
        )
        .route(path::CANCEL.template(), post(jobs::cancel))
        .route(path::RETRY.template(), post(jobs::retry))
        .route(path::HEARTBEAT.template(), post(lease::heartbeat))
        .route(path::COMPLETE.template(), post(lease::complete))
        .route(path::FAIL.template(), post(lease::fail))
        .route(path::RELEASE.template(), post(lease::release))
        .route(path::RESERVE.template(), post(lease::reserve))
        .route(path::RESERVE_DUE.template(), post(lease::due))
        .route(path::COMPLETE_BATCH.template(), post(lease::complete_batch))
        .route(path::RELEASE_ALL.template(), post(lease::release_all))
        .route(path::RECLAIM.template(), post(jobs::reclaim))
        .route(path::PRUNE.template(), post(jobs::prune))
        .route(path::COUNTS.template(), get(jobs::counts))
        .route(
            path::QUEUES.template(),
            get(queues::list).post(queues::create),
        )
        .route(
            path::QUEUE.template(),
            patch(queues::update).delete(queues::delete),
        )
        .route(path::BATCHES.template(), post(batches::open_batch))
        .route(path::BATCH_INFO.template(), get(batches::get_batch))
        .route(path::BATCH_CLOSE.template(), post(batches::close_batch))
        .route(path::BATCH_CANCEL.template(), post(batches::cancel_batch))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            auth::authenticate,
        ));
    let api = signed
        .route("/openapi.json", get(openapi_json))
        .route("/health", get(health))
        .fallback(no_route)
        .layer(DefaultBodyLimit::max(config.batch_body_limit))
        .layer(middleware::from_fn_with_state(state.clone(), time_limit))
        .with_state(state.clone());
    let pages = Router::new()
        .route("/", get(to_dashboard))
        .route("/dashboard/", get(to_dashboard))
        .route("/metrics", get(metrics))
        .nest("/dashboard", crate::dashboard::router())
        .merge(crate::explorer::router())
        .layer(middleware::from_fn_with_state(state.clone(), time_limit))
        .with_state(state);
    Router::new()
        .nest("/v1", api)
        .merge(pages)
        .fallback(no_route)
        .layer(middleware::from_fn(move |request, next| {
            security_headers(tls, request, next)
        }))
}

/// The mount itself, and the dashboard's path with a trailing slash: on to the dashboard.
async fn to_dashboard(
    axum::extract::OriginalUri(uri): axum::extract::OriginalUri,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let path = uri.path().trim_end_matches('/');
    let to = match path.ends_with("/dashboard") {
        true => path.to_owned(),
        false => format!("{path}/dashboard"),
    };
    axum::response::Redirect::to(&to).into_response()
}

/// Whether clients reach the server through a TLS proxy in front of it.
fn behind_tls(config: &crate::config::ServerConfig) -> bool {
    config
        .public_origin
        .as_deref()
        .is_some_and(|origin| origin.starts_with("https://"))
}

/// Headers on every response: no type sniffing, no referrer to other sites, HSTS over TLS
/// (`tls`), `no-store` on whatever says nothing of caching, and a content security policy on
/// whatever sets none (error pages of extractors and fallbacks included): none at all, but
/// the API explorer's own files. A refusal of a body too large or too slow (413, 408) says
/// `Connection: close`: the server answers without reading the rest and hangs up, and a
/// client told so does not send its next request on that connection (one that was not saw
/// its next request cut off: `hardening::pages_errors_and_files_carry_their_safety_headers`).
async fn security_headers(
    tls: bool,
    request: axum::extract::Request,
    next: middleware::Next,
) -> axum::response::Response {
    use axum::http::{HeaderValue, header};
    let explorer = request.uri().path().contains("/docs");
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if tls {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        );
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    let status = response.status();
    let headers = response.headers_mut();
    if status == StatusCode::PAYLOAD_TOO_LARGE || status == StatusCode::REQUEST_TIMEOUT {
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        let policy = match explorer {
            true => {
                "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'"
            }
            false => "default-src 'none'; frame-ancestors 'none'",
        };
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(policy),
        );
    }
    response
}
