//! Errors on the wire: an HTTP status and a JSON body with a stable code and a sentence, both
//! ways, so that a client gets back the very core error the server had.

use outsourced_core::{Error, JobId};

use super::Code;
use serde::{Deserialize, Serialize};

/// The body of every error response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// A stable machine-readable code (each of [`Code`]): `queue_full`, `unknown_queue`,
    /// `not_found`, `unknown`, `stale_lease`, `invalid_transition`, `bad_payload`,
    /// `invalid_input`, `conflict`, `duplicate`, `idempotency_key_reused`, `no_attachment`, `forbidden`, `unauthorized` codes
    /// (`unsigned`, `invalid_oauth`, `invalid_signature`, `timestamp_refused`, `nonce_used`,
    /// `locked`, `body_hash_mismatch`, `body_hash_required`), `too_large`,
    /// `unsupported_media_type`, `no_route`, `timeout`, `unavailable`, `overloaded` (turned
    /// away before anything was done: safe to send again), `internal`.
    pub code: String,
    /// One sentence for people.
    pub message: String,
    /// The queue concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// The queue's limit (`queue_full`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// The job concerned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<i64>,
    /// The job's state (`invalid_transition`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The refused event (`invalid_transition`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    /// What was looked for (`unknown`: worker, producer, admin) ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// ... and its name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl ErrorBody {
    /// A body with a code and a message only.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorBody {
            code: code.into(),
            message: message.into(),
            queue: None,
            limit: None,
            job_id: None,
            state: None,
            event: None,
            kind: None,
            name: None,
        }
    }

    /// The body for a core error. Backend failures say nothing of their internals.
    pub fn from_error(error: &Error) -> Self {
        let message = error.to_string();
        let body = |code: Code| ErrorBody::new(code, message.clone());
        match error {
            Error::QueueFull { queue, limit } => ErrorBody {
                queue: Some(queue.clone()),
                limit: Some(*limit),
                ..body(Code::QueueFull)
            },
            Error::UnknownQueue { queue } => ErrorBody {
                queue: Some(queue.clone()),
                ..body(Code::UnknownQueue)
            },
            Error::NotFound { id } => ErrorBody {
                job_id: Some(id.0),
                ..body(Code::NotFound)
            },
            Error::Unknown { kind, name } => ErrorBody {
                kind: Some((*kind).to_owned()),
                name: Some(name.clone()),
                ..body(Code::Unknown)
            },
            Error::StaleLease { id } => ErrorBody {
                job_id: Some(id.0),
                ..body(Code::StaleLease)
            },
            Error::InvalidTransition { id, from, event } => ErrorBody {
                job_id: Some(id.0),
                state: Some(from.as_str().to_owned()),
                event: Some(event.as_str().to_owned()),
                ..body(Code::InvalidTransition)
            },
            Error::TooLarge { limit } => ErrorBody {
                limit: Some(*limit),
                ..body(Code::TooLarge)
            },
            Error::NoAttachment { id } => ErrorBody {
                job_id: Some(id.0),
                ..body(Code::NoAttachment)
            },
            Error::BadPayload { .. } => body(Code::BadPayload),
            Error::InvalidInput { .. } => body(Code::InvalidInput),
            Error::Conflict { .. } => body(Code::Conflict),
            Error::Duplicate { key, existing } => ErrorBody {
                job_id: Some(existing.0),
                name: Some(key.clone()),
                ..body(Code::Duplicate)
            },
            Error::Forbidden { .. } => body(Code::Forbidden),
            Error::Unauthorized { code, message } => ErrorBody::new(code.clone(), message.clone()),
            Error::Backend {
                retryable: true, ..
            } => ErrorBody::new(
                Code::Unavailable,
                "the server is busy or its database is unavailable; try again",
            ),
            _ => ErrorBody::new(Code::Internal, "the server failed; its log says why"),
        }
    }

    /// The core error this body stands for (the inverse of [`ErrorBody::from_error`]).
    pub fn into_error(self, status: u16) -> Error {
        let ErrorBody {
            code,
            message,
            queue,
            limit,
            job_id,
            state,
            event,
            kind,
            name,
        } = self;
        let id = JobId(job_id.unwrap_or_default());
        let detail = |prefix: &str| message.strip_prefix(prefix).unwrap_or(&message).to_owned();
        match Code::parse(&code) {
            Some(Code::QueueFull) => Error::QueueFull {
                queue: queue.unwrap_or_default(),
                limit: limit.unwrap_or_default(),
            },
            Some(Code::UnknownQueue) => Error::UnknownQueue {
                queue: queue.unwrap_or_default(),
            },
            Some(Code::NotFound) => Error::NotFound { id },
            Some(Code::Unknown) => Error::Unknown {
                kind: known_kind(kind.as_deref()),
                name: name.unwrap_or_default(),
            },
            Some(Code::StaleLease) => Error::StaleLease { id },
            Some(Code::InvalidTransition) => match (
                state.and_then(|s| s.parse().ok()),
                event.and_then(|e| e.parse().ok()),
            ) {
                (Some(from), Some(event)) => Error::InvalidTransition { id, from, event },
                _ => Error::conflict(message),
            },
            Some(Code::BadPayload) => Error::BadPayload {
                message: detail("bad payload: "),
            },
            Some(Code::TooLarge) if limit.is_some() => Error::TooLarge {
                limit: limit.unwrap_or_default(),
            },
            Some(Code::NoAttachment) => Error::NoAttachment { id },
            Some(Code::InvalidInput | Code::TooLarge) => Error::InvalidInput {
                message: detail("invalid input: "),
            },
            Some(Code::Conflict) => Error::Conflict {
                message: detail("conflict: "),
            },
            Some(Code::Duplicate) => Error::Duplicate {
                key: name.unwrap_or_default(),
                existing: id,
            },
            Some(Code::Forbidden) => Error::Forbidden {
                message: detail("forbidden: "),
            },
            Some(Code::Unavailable) => backend(message, true),
            _ if status == 401 => Error::Unauthorized { code, message },
            _ => backend(format!("{code}: {message}"), status >= 500 && status != 501),
        }
    }
}

fn known_kind(kind: Option<&str>) -> &'static str {
    match kind {
        Some("worker") => "worker",
        Some("producer") => "producer",
        Some("admin") => "admin",
        _ => "principal",
    }
}

fn backend(message: String, retryable: bool) -> Error {
    Error::Backend {
        backend: "http",
        message,
        retryable,
        source: None,
    }
}

/// The HTTP status for a core error.
pub fn status_of(error: &Error) -> u16 {
    match error {
        Error::QueueFull { .. } => 429,
        Error::UnknownQueue { .. }
        | Error::NotFound { .. }
        | Error::Unknown { .. }
        | Error::NoAttachment { .. } => 404,
        Error::TooLarge { .. } => 413,
        Error::StaleLease { .. }
        | Error::InvalidTransition { .. }
        | Error::Conflict { .. }
        | Error::Duplicate { .. } => 409,
        Error::BadPayload { .. } | Error::InvalidInput { .. } => 400,
        Error::Unauthorized { .. } => 401,
        Error::Forbidden { .. } => 403,
        Error::Backend {
            retryable: true, ..
        } => 503,
        _ => 500,
    }
}

/// The core error for an error response: its body when it has one, else its status.
pub fn error_from_response(status: u16, body: &[u8]) -> Error {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(error) => error.into_error(status),
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text: String = text.chars().take(200).collect();
            match status {
                413 => Error::invalid("the request is too large"),
                400..=499 => Error::invalid(format!("HTTP {status}: {text}")),
                _ => backend(format!("HTTP {status}: {text}"), status >= 500),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outsourced_core::{Event, JobState};

    /// Every variant survives the trip to the wire and back.
    #[test]
    fn core_errors_round_trip() {
        let errors = [
            Error::QueueFull {
                queue: "mail".into(),
                limit: 5,
            },
            Error::UnknownQueue {
                queue: "nope".into(),
            },
            Error::NotFound { id: JobId(7) },
            Error::Unknown {
                kind: "worker",
                name: "w9".into(),
            },
            Error::StaleLease { id: JobId(8) },
            Error::InvalidTransition {
                id: JobId(9),
                from: JobState::Running,
                event: Event::Retry,
            },
            Error::BadPayload {
                message: "unknown class".into(),
            },
            Error::TooLarge { limit: 1024 },
            Error::NoAttachment { id: JobId(10) },
            Error::invalid("max_attempts must be at least 1"),
            Error::conflict("queue \"a\" already exists"),
            Error::Duplicate {
                key: "order-42".into(),
                existing: JobId(11),
            },
            Error::Forbidden {
                message: "admins only".into(),
            },
            Error::Unauthorized {
                code: "nonce_used".into(),
                message: "that nonce was used".into(),
            },
        ];
        for error in errors {
            let status = status_of(&error);
            let body = serde_json::to_vec(&ErrorBody::from_error(&error)).expect("JSON");
            let back = error_from_response(status, &body);
            assert_eq!(back.to_string(), error.to_string(), "{error:?} -> {back:?}");
            assert_eq!(back.is_retryable(), error.is_retryable());
        }
    }

    #[test]
    fn backend_failures_reveal_nothing() {
        let internal = Error::Backend {
            backend: "sql",
            message: "SELECT * FROM secrets failed at /srv/db".into(),
            retryable: false,
            source: None,
        };
        let body = ErrorBody::from_error(&internal);
        assert_eq!(
            (status_of(&internal), body.code.as_str()),
            (500, "internal")
        );
        assert!(!body.message.contains("SELECT"));
        let busy = Error::Backend {
            backend: "sql",
            message: "locked".into(),
            retryable: true,
            source: None,
        };
        assert_eq!(status_of(&busy), 503);
        assert!(
            error_from_response(
                503,
                &serde_json::to_vec(&ErrorBody::from_error(&busy)).unwrap_or_default()
            )
            .is_retryable()
        );
        assert!(error_from_response(502, b"<html>bad gateway</html>").is_retryable());
        assert!(matches!(
            error_from_response(413, b""),
            Error::InvalidInput { .. }
        ));
    }
}
