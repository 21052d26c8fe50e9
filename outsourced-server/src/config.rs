//! The server's settings.

use std::time::Duration;

/// How the server authenticates and bounds requests. Every field has a default.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// How far a request's `oauth_timestamp` may be from the server's clock (300 s).
    pub timestamp_window: Duration,
    /// Refuse requests with a body but without the `body_sha256` query parameter (off, so that
    /// ordinary OAuth 1.0a clients work; our client always sends it).
    pub require_body_hash: bool,
    /// The scheme and authority clients use, e.g. `https://jobs.example.com`, when the server
    /// sits behind a proxy that terminates TLS; the signature covers them. By default the
    /// request's `Host` and the listener's scheme.
    pub public_origin: Option<String>,
    /// The longest long-poll a reserve may ask for (30 s).
    pub max_wait: Duration,
    /// The largest request body on most routes (1 MiB).
    pub body_limit: usize,
    /// The largest request body of a batch enqueue (32 MiB).
    pub batch_body_limit: usize,
    /// How long a connection may take to send its request headers (10 s).
    pub header_timeout: Duration,
    /// How long a request may take in all, long polls included (75 s); attachments excepted.
    pub request_timeout: Duration,
    /// A token that `GET <mount>/metrics` must present as `Authorization: Bearer TOKEN`; with
    /// none, the metrics are off (a scrape reads the database, which no unauthenticated client
    /// may make the server do).
    pub metrics_token: Option<String>,
    /// The most `/v1` requests in flight at once, long polls apart (256); past it a request is
    /// answered 503 `overloaded` with `Retry-After` before anything is read or checked, so
    /// that an overload costs neither memory nor work.
    pub max_requests: usize,
    /// The most reserves in flight at once, long polls included (4,096).
    pub max_reserves: usize,
    /// The most signatures being checked at once (64): the share of the server that requests
    /// not yet authenticated may use. Past it a request waits its turn up to 2 s, then is
    /// answered 503 `overloaded`; signed requests, which take their place in `max_requests`
    /// only once authenticated, never wait behind unauthenticated ones there.
    pub max_checking: usize,
    /// How long an authenticated request's body may take to arrive (30 s); then 408.
    pub body_timeout: Duration,
    /// The most connections open at once (4,096); more are closed as they arrive.
    pub max_connections: usize,
    /// The most connections open at once from one peer address (1,024).
    pub max_connections_per_peer: usize,
    /// How long a new connection may take to send its first request, whatever its protocol
    /// (10 s).
    pub first_request_timeout: Duration,
    /// How long a connection with no request in flight may sit without a byte moving (120 s).
    pub idle_timeout: Duration,
    /// The most dashboard logins whose password is being checked at once (2): argon2 takes
    /// 19 MiB and a core's worth of time each; past it a login is answered 503.
    pub max_password_checks: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            timestamp_window: Duration::from_secs(300),
            require_body_hash: false,
            public_origin: None,
            max_wait: Duration::from_secs(30),
            body_limit: 1 << 20,
            batch_body_limit: 32 << 20,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(75),
            metrics_token: None,
            max_requests: 256,
            max_reserves: 4096,
            max_checking: 64,
            body_timeout: Duration::from_secs(30),
            max_connections: 4096,
            max_connections_per_peer: 1024,
            first_request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(120),
            max_password_checks: 2,
        }
    }
}
