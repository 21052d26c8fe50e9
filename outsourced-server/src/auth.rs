//! Authentication: every request to `/v1` is signed with two-legged OAuth 1.0a (RFC 5849),
//! checked here before any handler runs. The order matters: the form of the parameters, the
//! timestamp window, the signature (in constant time, with a dummy secret for unknown keys so
//! that keys cannot be enumerated), the lock, the body hash, and only then the nonce, so that
//! nobody can burn another client's nonces with bad signatures. An attachment's body streams
//! past unread; its handler checks the signed hash as the bytes go by.

use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, OriginalUri, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use outsourced_backend_http::oauth::{self, BODY_HASH_PARAM, BadRequest, SignedRequest};
use outsourced_backend_sql::{Principal, Role};
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

/// The middleware: authenticates the request or answers 400/401.
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
    let path = path.unwrap_or_default();
    // Attachments stream through to their handler, which checks their hash; other bodies are
    // read here (batches may be large; every other body is small).
    let streamed = is_streamed(path, &parts.headers);
    let limit = match path.ends_with("/jobs/batch") {
        true => state.config().batch_body_limit,
        false => state.config().body_limit,
    };
    let (read, body) = match streamed {
        true => (None, body),
        false => match axum::body::to_bytes(body, limit).await {
            Ok(bytes) => (Some(bytes.clone()), Body::from(bytes)),
            Err(_) => {
                let error = ApiError::new(
                    axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    "the request body is too large",
                );
                return error.into_response();
            }
        },
    };
    let uri = parts
        .extensions
        .get::<OriginalUri>()
        .map_or_else(|| parts.uri.clone(), |original| original.0.clone());
    let checked = check(&state, &parts.method, &uri, &parts.headers, read.as_ref()).await;
    let signed = match checked {
        Ok(caller) => caller,
        Err(error) => {
            state.metrics().auth_failure(error.code());
            if error.code() != "unsigned" {
                tracing::warn!(code = error.code(), path = uri.path(), "refused a request");
            }
            let mut response = error.into_response();
            // The server's time, so that a client can see how far off its clock is.
            if let Ok(date) = httpdate(&state).parse() {
                response.headers_mut().insert(header::DATE, date);
            }
            return response;
        }
    };
    let mut request = Request::from_parts(parts, body);
    request.extensions_mut().insert(signed);
    next.run(request).await
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

async fn check(
    state: &AppState,
    method: &axum::http::Method,
    uri: &axum::http::Uri,
    headers: &HeaderMap,
    body: Option<&Bytes>,
) -> Result<Caller, ApiError> {
    let (scheme, host) = origin(state, uri, headers)?;
    let base = oauth::base_uri(&scheme, &host, uri.path())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|c| c.to_str().ok())
        .filter(|c| c.starts_with("application/x-www-form-urlencoded"))
        .and(body)
        .map(|body| String::from_utf8_lossy(body).into_owned());
    let signed = oauth::signed_request(
        method.as_str(),
        &base,
        authorization,
        uri.query(),
        form.as_deref(),
    )
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
            "locked",
            format!("{} {} is locked out", principal.role, principal.name),
        ));
    }
    if let Some(body) = body {
        check_body_hash(state, uri.query(), body)?;
    }
    let now = state.wall_clock();
    let fresh = state
        .nonces()
        .remember(&signed.consumer_key, signed.timestamp, &signed.nonce, now)
        .await?;
    if !fresh {
        return Err(ApiError::unauthorized(
            "nonce_used",
            "this nonce was already used: sign every request, and every retry, afresh",
        ));
    }
    state.seen(&principal).await;
    Ok(Caller { principal })
}

fn bad_oauth(error: BadRequest) -> ApiError {
    match error {
        BadRequest::Unsigned => ApiError::unauthorized("unsigned", error.to_string()),
        other => ApiError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_oauth",
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
        "timestamp_refused",
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
            "invalid_signature",
            "this server uses two-legged OAuth 1.0a: send no oauth_token",
        )),
        _ => {
            // The base string holds no secret; it shows a client's author what to compare.
            tracing::debug!(base_string = %signed.base_string, "signature mismatch");
            Err(ApiError::unauthorized(
                "invalid_signature",
                "the signature does not match the request and the consumer's credentials (or the consumer key is unknown)",
            ))
        }
    }
}

/// Checks the SHA-256 of the body against the signed `body_sha256` query parameter, when sent
/// (required when the server says so and there is a body).
fn check_body_hash(state: &AppState, query: Option<&str>, body: &Bytes) -> Result<(), ApiError> {
    let sent = query
        .map(oauth::parse_form)
        .transpose()
        .map_err(|e| ApiError::bad_request(e.to_string()))?
        .unwrap_or_default()
        .into_iter()
        .find(|(name, _)| name == BODY_HASH_PARAM)
        .map(|(_, value)| value);
    match sent {
        Some(sent) => {
            let actual = URL_SAFE_NO_PAD.encode(Sha256::digest(body));
            if sent == actual {
                Ok(())
            } else {
                Err(ApiError::unauthorized(
                    "body_hash_mismatch",
                    "the body does not match its signed body_sha256",
                ))
            }
        }
        None if state.config().require_body_hash && !body.is_empty() => {
            Err(ApiError::unauthorized(
                "body_hash_required",
                "this server requires the body's SHA-256 in the signed body_sha256 query parameter",
            ))
        }
        None => Ok(()),
    }
}

/// The role a route needs, or 403.
pub(crate) fn require(caller: &Caller, roles: &[Role]) -> Result<(), ApiError> {
    if roles.contains(&caller.principal.role) {
        return Ok(());
    }
    let allowed: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
    Err(ApiError::forbidden(format!(
        "a {} may not use this route (it is for: {})",
        caller.principal.role,
        allowed.join(", ")
    )))
}
