//! Every error response: the status and JSON body of `outsourced_backend_http::wire`, with
//! `Retry-After` where waiting helps and no internals in the body.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use outsourced_backend_http::wire::{Code, ErrorBody, status_of};
use outsourced_core::Error;

/// An error as a response.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    // Boxed: errors travel in every handler's `Result`; keep that small.
    body: Box<ErrorBody>,
}

impl ApiError {
    /// A response with this status, code and sentence.
    pub fn new(status: StatusCode, code: Code, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: Box::new(ErrorBody::new(code, message)),
        }
    }

    /// 401 with an authentication code.
    pub fn unauthorized(code: Code, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    /// 400 for a malformed request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, Code::InvalidInput, message)
    }

    /// 403 for a route the caller's role may not use.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, Code::Forbidden, message)
    }

    /// The same response with another sentence (its code and fields kept).
    pub(crate) fn with_message(mut self, message: impl Into<String>) -> Self {
        self.body.message = message.into();
        self
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The machine-readable code.
    pub fn code(&self) -> &str {
        &self.body.code
    }

    /// The body alone: one answer of a batch's, whose request as a whole succeeds.
    pub(crate) fn into_body(self) -> ErrorBody {
        *self.body
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        if matches!(error, Error::Backend { .. }) {
            // The body says nothing of it; the log does.
            tracing::error!(%error, "backend failure");
        }
        let status =
            StatusCode::from_u16(status_of(&error)).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        ApiError {
            status,
            body: Box::new(ErrorBody::from_error(&error)),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let bearer = self.body.code == Code::MetricsToken.as_str();
        let mut response = (self.status, Json(*self.body)).into_response();
        let headers = response.headers_mut();
        if matches!(
            self.status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        ) {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 7235: a 401 names the scheme that would be accepted (RFC 5849, section 3.5.1;
            // the metrics take a bearer token).
            let scheme = match bearer {
                true => HeaderValue::from_static("Bearer realm=\"outsourced metrics\""),
                false => HeaderValue::from_static("OAuth realm=\"outsourced\""),
            };
            headers.insert(header::WWW_AUTHENTICATE, scheme);
        }
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// The result of a handler.
pub(crate) type ApiResult<T> = Result<T, ApiError>;
