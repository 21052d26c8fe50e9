//! Authentication: every request to `/v1` is signed with two-legged OAuth 1.0a (RFC 5849),
//! checked here before any handler runs. The order matters: the form of the parameters, the
//! timestamp window, the signature (in constant time, with a dummy secret for unknown keys so
//! that keys cannot be enumerated), the lock, the body hash, and only then the nonce, so that
//! nobody can burn another client's nonces with bad signatures. An enqueue's nonce is recorded
//! in the enqueue's own transaction instead ([`PendingNonce`]), or after its refusal. An
//! attachment's body streams past unread; its handler checks the signed hash as the bytes go by.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, MatchedPath, OriginalUri, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use outsourced_backend_http::oauth::{self, BODY_HASH_PARAM, BadRequest, SignedRequest};
use outsourced_backend_http::wire::Code;
use outsourced_backend_sql::Principal;
use outsourced_backend_sql::store::nonces::{self, Seen};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::state::AppState;

/// Who made a request, as its signature proved.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The principal: role, name and queues.
    pub principal: Principal,
}

/// The secret an unknown consumer key is checked against, so that a wrong key costs as much
/// time as a wrong signature.
const DUMMY_SECRET: &str = "an unknown consumer key gets a signature check all the same";

/// The longest nonce accepted (the store keeps them).
const MAX_NONCE: usize = 128;

/// The middleware: authenticates the request from its headers and query alone, and only then
/// gives it a place among the requests in flight and reads its body; or answers 4xx/503.
///
/// An unauthenticated client therefore costs a parse and, when it names a key, one lookup
/// within the `max_checking` share: it never holds a place signed requests need, and none of
/// its body is read.
pub(crate) async fn authenticate(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts
        .extensions
        .get::<MatchedPath>()
        .map(MatchedPath::as_str);
    let path = path.unwrap_or_default().to_owned();
    // Attachments stream through to their handler, which checks their hash; other bodies are
    // read here (batches may be large; every other body is small).
    let streamed = is_streamed(&path, &parts.headers);
    let limit = match path.ends_with("/jobs/batch") {
        true => state.config().batch_body_limit,
        false => state.config().body_limit,
    };
    if let Err(refusal) = check_framing(&parts.headers, streamed, limit) {
        return refusal.into_response();
    }
    let uri = parts
        .extensions
        .get::<OriginalUri>()
        .map_or_else(|| parts.uri.clone(), |original| original.0.clone());
    let signed = {
        let Some(_checking) = state.admit_check().await else {
            return overloaded().into_response();
        };
        check_signature(&state, &parts.method, &uri, &parts.headers).await
    };
    let (principal, signed) = match signed {
        Ok(signed) => signed,
        Err(error) => return refused(&state, &uri, &parts, error),
    };
    // Authenticated: a place among the requests in flight, held until the answer.
    let Some(_in_flight) = state.admit(path.ends_with("/reserve")) else {
        return overloaded().into_response();
    };
    let body = match streamed {
        true => body,
        false => match read_checked(&state, uri.query(), body, limit).await {
            Ok(bytes) => Body::from(bytes),
            Err(error) => return refused(&state, &uri, &parts, error),
        },
    };
    let deferred = is_enqueue(&parts.method, &path, streamed);
    let nonce = Seen::new(
        &signed.consumer_key,
        signed.timestamp,
        &signed.nonce,
        state.wall_clock(),
    );
    let pending = match deferred {
        true => PendingNonce::new(nonce),
        false => match remember_nonce(&state, nonce).await {
            Ok(()) => PendingNonce::default(),
            Err(error) => return refused(&state, &uri, &parts, error),
        },
    };
    state.seen(&principal).await;
    let kept = deferred.then(|| parts.clone());
    let mut request = Request::from_parts(parts, body);
    request.extensions_mut().insert(Caller { principal });
    request.extensions_mut().insert(pending.clone());
    let response = next.run(request).await;
    match kept {
        Some(parts) => settle(&state, &uri, &parts, &pending, response).await,
        None => response,
    }
}

/// After an enqueue's handler: records the nonce it left (a request refused before its
/// enqueue's transaction), so that the request cannot be sent again once it would succeed;
/// and counts and logs a replay that transaction refused, as the middleware's own refusals are.
async fn settle(
    state: &AppState,
    uri: &axum::http::Uri,
    parts: &axum::http::request::Parts,
    pending: &PendingNonce,
    response: Response,
) -> Response {
    match pending.take() {
        Some(nonce) => match remember_nonce(state, nonce).await {
            Ok(()) => response,
            Err(error) => refused(state, uri, parts, error),
        },
        // The only 401 an enqueue's handler answers is its transaction's refusal of a replay.
        None if response.status() == StatusCode::UNAUTHORIZED => {
            refused(state, uri, parts, nonces::replayed().into())
        }
        None => response,
    }
}

/// Whether the request is an enqueue of JSON (one job or a batch), whose nonce its handler
/// records in the enqueue's own transaction (`SqlBackend::enqueue_signed`): one commit per
/// request where a nonce of its own would make two in a row.
fn is_enqueue(method: &Method, path: &str, streamed: bool) -> bool {
    *method == Method::POST
        && !streamed
        && (path.ends_with("/jobs") || path.ends_with("/jobs/batch"))
}

/// A signed request's nonce not recorded yet: its handler takes it into the transaction of
/// the enqueue it signs, and the middleware records whatever is left once the handler has
/// answered. Every handler of an enqueue takes it before anything it does changes a row.
#[derive(Clone, Debug, Default)]
pub(crate) struct PendingNonce(Arc<Mutex<Option<Seen>>>);

impl PendingNonce {
    fn new(nonce: Seen) -> Self {
        PendingNonce(Arc::new(Mutex::new(Some(nonce))))
    }

    /// The nonce, if it is still to be recorded: the taker records it.
    pub(crate) fn take(&self) -> Option<Seen> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take()
    }
}

/// 503 `overloaded`, with `Retry-After`.
pub(crate) fn overloaded() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        Code::Overloaded,
        "the server has as many requests in flight as it takes; try again in a moment",
    )
}

/// A refusal, counted and (but for unsigned requests) logged with the peer's address and the
/// consumer key the request claims, answered with the server's time so that a client can see
/// how far off its clock is.
fn refused(
    state: &AppState,
    uri: &axum::http::Uri,
    parts: &axum::http::request::Parts,
    error: ApiError,
) -> Response {
    state.metrics().auth_failure(error.code());
    if error.code() != Code::Unsigned {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(peer)| peer.to_string());
        let key = claimed_key(&parts.headers);
        // Strings are logged quoted and escaped (the subscriber's Debug form).
        tracing::warn!(
            code = error.code(),
            path = uri.path(),
            peer = peer.as_deref().unwrap_or("-"),
            key = key.as_deref().unwrap_or("-"),
            "refused a request"
        );
    }
    let mut response = error.into_response();
    if let Ok(date) = httpdate(state).parse() {
        response.headers_mut().insert(header::DATE, date);
    }
    response
}

/// The consumer key a request names, as sent (unverified, cut to 64 characters): for the log
/// of a refusal, so that an operator can tell which worker's secret is wrong.
fn claimed_key(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (_, rest) = value.split_once("oauth_consumer_key=\"")?;
    let key = rest.split('"').next()?;
    Some(key.chars().take(64).collect())
}

/// What the headers say of the body, checked before anything else: a declared length over
/// the route's limit is 413 at once, and a form-encoded body is refused (the API takes JSON,
/// and form parameters would have to be read before the signature could be checked).
fn check_framing(headers: &HeaderMap, streamed: bool, limit: usize) -> Result<(), ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if !streamed && declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|c| c.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if form {
        return Err(ApiError::new(
            axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::UnsupportedMediaType,
            "the API takes JSON bodies (application/json) and multipart enqueues",
        ));
    }
    Ok(())
}

fn too_large() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::PAYLOAD_TOO_LARGE,
        Code::TooLarge,
        "the request body is too large",
    )
}

/// An authenticated caller's body, read within the route's limit and the body timeout,
/// hashed as it arrives, and checked against its signed `body_sha256`.
async fn read_checked(
    state: &AppState,
    query: Option<&str>,
    body: Body,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let read = async {
        let mut stream = body.into_data_stream();
        let mut bytes = Vec::new();
        let mut hasher = Sha256::new();
        while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
            let chunk = chunk.map_err(|_| ApiError::bad_request("the body could not be read"))?;
            if bytes.len() + chunk.len() > limit {
                return Err(too_large());
            }
            hasher.update(&chunk);
            bytes.extend_from_slice(&chunk);
        }
        Ok((Bytes::from(bytes), hasher.finalize()))
    };
    let (bytes, digest) = tokio::time::timeout(state.config().body_timeout, read)
        .await
        .map_err(|_| {
            ApiError::new(
                axum::http::StatusCode::REQUEST_TIMEOUT,
                Code::Timeout,
                "the request body took too long to arrive",
            )
        })??;
    check_body_hash(state, query, &digest, bytes.is_empty())?;
    Ok(bytes)
}

/// Whether a request's body is an attachment's bytes, left to stream through to its handler
/// (and exempt from the request timeout: a large file may take long).
pub(crate) fn is_streamed(matched_path: &str, headers: &HeaderMap) -> bool {
    matched_path.ends_with("/attachment") || is_multipart(headers)
}

/// Whether the body is `multipart/form-data` (an enqueue with its attachment).
pub(crate) fn is_multipart(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|c| c.to_str().ok())
        .is_some_and(|c| c.starts_with("multipart/form-data"))
}

fn httpdate(state: &AppState) -> String {
    state
        .wall_clock()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string()
}

/// The scheme and authority the client signed: the configured public origin, else the
/// listener's scheme and the `Host` header.
fn origin(
    state: &AppState,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
) -> Result<(String, String), ApiError> {
    if let Some(origin) = &state.config().public_origin
        && let Some((scheme, authority)) = origin.split_once("://")
    {
        return Ok((
            scheme.to_owned(),
            authority.trim_end_matches('/').to_owned(),
        ));
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| uri.authority().map(|a| a.to_string()))
        .ok_or_else(|| ApiError::bad_request("the request has no Host"))?;
    Ok((state.scheme().to_owned(), host))
}

/// The request's signature, from its headers and query: the form of the parameters, the
/// timestamp window, the signature itself, the lock. Returns the principal and what it
/// signed (for the nonce, recorded once the rest of the request checks out).
async fn check_signature(
    state: &AppState,
    method: &axum::http::Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
) -> Result<(Principal, SignedRequest), ApiError> {
    let (scheme, host) = origin(state, uri, headers)?;
    let base = oauth::base_uri(&scheme, &host, uri.path())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    let signed = oauth::signed_request(method.as_str(), &base, authorization, uri.query(), None)
        .map_err(bad_oauth)?;
    check_timestamp(state, &signed)?;
    if signed.nonce.is_empty() || signed.nonce.len() > MAX_NONCE {
        return Err(ApiError::bad_request(format!(
            "oauth_nonce must be 1 to {MAX_NONCE} characters"
        )));
    }
    let principal = verify_signature(state, &signed).await?;
    if principal.locked {
        return Err(ApiError::unauthorized(
            Code::Locked,
            format!("{} {} is locked out", principal.role, principal.name),
        ));
    }
    Ok((principal, signed))
}

/// Records the request's nonce, refusing one already used: last, so that nobody can burn
/// another client's nonces with requests that fail any other check.
async fn remember_nonce(state: &AppState, nonce: Seen) -> Result<(), ApiError> {
    match state.nonces().record(nonce).await? {
        true => Ok(()),
        false => Err(nonces::replayed().into()),
    }
}

fn bad_oauth(error: BadRequest) -> ApiError {
    match error {
        BadRequest::Unsigned => ApiError::unauthorized(Code::Unsigned, error.to_string()),
        other => ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            Code::InvalidOauth,
            other.to_string(),
        ),
    }
}

fn check_timestamp(state: &AppState, signed: &SignedRequest) -> Result<(), ApiError> {
    let now = state.wall_clock().timestamp();
    let window = state.config().timestamp_window.as_secs() as i64;
    let skew = signed.timestamp - now;
    if skew.abs() <= window {
        return Ok(());
    }
    let (low, high) = (now - window, now + window);
    Err(ApiError::unauthorized(
        Code::TimestampRefused,
        format!(
            "oauth_timestamp {} is {} s {} the server's clock ({now}); accepted: {low} to {high}. Check the client's clock",
            signed.timestamp,
            skew.abs(),
            if skew > 0 { "ahead of" } else { "behind" },
        ),
    ))
}

/// Verifies the signature with the consumer's secret, or a dummy one for an unknown key (so
/// both cost the same and answer the same).
async fn verify_signature(state: &AppState, signed: &SignedRequest) -> Result<Principal, ApiError> {
    let found = state
        .directory()
        .by_consumer_key(state.key(), &signed.consumer_key)
        .await?;
    let secret = found
        .as_ref()
        .map_or(DUMMY_SECRET, |(_, secret)| secret.as_str());
    let valid = oauth::verify(
        signed.method,
        &signed.base_string,
        secret,
        "",
        &signed.signature,
    );
    match found {
        Some((principal, _)) if valid && signed.token.is_none() => Ok(principal),
        Some(_) if signed.token.is_some() => Err(ApiError::unauthorized(
            Code::InvalidSignature,
            "this server uses two-legged OAuth 1.0a: send no oauth_token",
        )),
        _ => {
            // The base string holds no secret; it shows a client's author what to compare.
            tracing::debug!(base_string = %signed.base_string, "signature mismatch");
            Err(ApiError::unauthorized(
                Code::InvalidSignature,
                "the signature does not match the request and the consumer's credentials (or the consumer key is unknown)",
            ))
        }
    }
}

/// Checks the body's SHA-256 (`digest`) against the signed `body_sha256` query parameter,
/// when sent (required when the server says so and there is a body).
fn check_body_hash(
    state: &AppState,
    query: Option<&str>,
    digest: &[u8],
    empty: bool,
) -> Result<(), ApiError> {
    match signed_param(query, BODY_HASH_PARAM)? {
        Some(sent) if sent == URL_SAFE_NO_PAD.encode(digest) => Ok(()),
        Some(_) => Err(ApiError::unauthorized(
            Code::BodyHashMismatch,
            "the body does not match its signed body_sha256",
        )),
        None if state.config().require_body_hash && !empty => Err(ApiError::unauthorized(
            Code::BodyHashRequired,
            "this server requires the body's SHA-256 in the signed body_sha256 query parameter",
        )),
        None => Ok(()),
    }
}

/// The value of a (signed) query parameter.
pub(crate) fn signed_param(query: Option<&str>, name: &str) -> Result<Option<String>, ApiError> {
    let params = query
        .map(oauth::parse_form)
        .transpose()
        .map_err(|e| ApiError::bad_request(e.to_string()))?
        .unwrap_or_default();
    Ok(params
        .into_iter()
        .find(|(param, _)| param == name)
        .map(|(_, value)| value))
}
