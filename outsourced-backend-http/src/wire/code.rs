//! The stable codes of error bodies, named once for client and server alike: no side writes
//! one as a string literal. The body keeps the code as text, so a client still reads a code a
//! newer server adds (as a backend error carrying it).

use std::fmt;

/// Declares the codes with their text, so that the two can never disagree.
macro_rules! codes {
    ($( $(#[$doc:meta])* $variant:ident = $text:literal, )*) => {
        /// A machine-readable error code, as the `code` of an [`ErrorBody`](super::ErrorBody).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Code {
            $( $(#[$doc])* $variant, )*
        }

        impl Code {
            /// Every code, in the order of the docs.
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// The code as it travels.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Code::$variant => $text,)*
                }
            }
        }
    };
}

codes! {
    /// The queue holds as many live jobs as its limit (429).
    QueueFull = "queue_full",
    /// No queue of that name (404).
    UnknownQueue = "unknown_queue",
    /// No such job, or not one the caller may see (404).
    NotFound = "not_found",
    /// No such worker, producer or admin (404).
    Unknown = "unknown",
    /// The lease presented is no longer the job's (409).
    StaleLease = "stale_lease",
    /// The job's state does not allow that (409).
    InvalidTransition = "invalid_transition",
    /// A payload that does not decode (400).
    BadPayload = "bad_payload",
    /// A request that breaks a rule (400).
    InvalidInput = "invalid_input",
    /// A conflict with what exists (409).
    Conflict = "conflict",
    /// A unique key taken by another job, which `job_id` names; its key is `name` (409).
    Duplicate = "duplicate",
    /// An `Idempotency-Key` first used with another request (422).
    IdempotencyKeyReused = "idempotency_key_reused",
    /// The job has no attachment (404).
    NoAttachment = "no_attachment",
    /// The caller's role may not do this (403).
    Forbidden = "forbidden",
    /// A body over its limit (413).
    TooLarge = "too_large",
    /// A body that is not JSON or multipart (415).
    UnsupportedMediaType = "unsupported_media_type",
    /// No route at that path (404).
    NoRoute = "no_route",
    /// A request or its body took too long (408).
    Timeout = "timeout",
    /// The server or its database is busy: a write may have happened (503).
    Unavailable = "unavailable",
    /// Turned away before anything was done: safe to send again (503).
    Overloaded = "overloaded",
    /// The server failed; its log says why (500).
    Internal = "internal",
    /// 401: no OAuth parameters.
    Unsigned = "unsigned",
    /// 401: OAuth parameters that are malformed or repeated.
    InvalidOauth = "invalid_oauth",
    /// 401: a signature that does not verify, or an unknown key.
    InvalidSignature = "invalid_signature",
    /// 401: a timestamp outside the server's window (a clock off).
    TimestampRefused = "timestamp_refused",
    /// 401: a nonce used before.
    NonceUsed = "nonce_used",
    /// 401: the principal is locked out.
    Locked = "locked",
    /// 401: the body does not match its signed hash.
    BodyHashMismatch = "body_hash_mismatch",
    /// 401: the server requires a signed body hash.
    BodyHashRequired = "body_hash_required",
    /// 401: the worker is no longer in the directory (a worker next to the database).
    UnknownWorker = "unknown_worker",
    /// 401: `/metrics` without the server's metrics token.
    MetricsToken = "metrics_token",
}

impl Code {
    /// The code of this text, if it is one.
    pub fn parse(text: &str) -> Option<Code> {
        Code::ALL.iter().copied().find(|code| code.as_str() == text)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<Code> for String {
    fn from(code: Code) -> String {
        code.as_str().to_owned()
    }
}

impl PartialEq<Code> for str {
    fn eq(&self, code: &Code) -> bool {
        self == code.as_str()
    }
}

impl PartialEq<Code> for &str {
    fn eq(&self, code: &Code) -> bool {
        *self == code.as_str()
    }
}

impl PartialEq<Code> for String {
    fn eq(&self, code: &Code) -> bool {
        self.as_str() == code.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::Code;

    #[test]
    fn every_code_reads_back_as_itself() {
        for code in Code::ALL {
            assert_eq!(Code::parse(code.as_str()), Some(*code));
        }
        let mut texts: Vec<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
        texts.sort_unstable();
        texts.dedup();
        assert_eq!(texts.len(), Code::ALL.len(), "each text names one code");
        assert_eq!(Code::parse("a_code_from_a_newer_server"), None);
    }

    #[test]
    fn the_directorys_refusals_are_the_cores() {
        use outsourced_core::error::refusal;
        assert_eq!(Code::Locked.as_str(), refusal::LOCKED);
        assert_eq!(Code::UnknownWorker.as_str(), refusal::UNKNOWN_WORKER);
    }
}
