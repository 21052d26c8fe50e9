//! The server's shared state: the SQL backend, the directory of principals, the nonce store,
//! the server key and the settings.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use outsourced_backend_sql::{Directory, NonceStore, Principal, ServerKey, SqlBackend};

use crate::config::ServerConfig;
use crate::metrics::Metrics;

/// How long a request waits for a place among the signature checks before 503.
const CHECK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Everything a request handler needs. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    backend: SqlBackend,
    directory: Directory,
    nonces: NonceStore,
    key: ServerKey,
    config: ServerConfig,
    scheme: &'static str,
    metrics: Arc<Metrics>,
    /// Room for requests in flight: reserves (long polls), and everything else.
    reserves: Arc<tokio::sync::Semaphore>,
    requests: Arc<tokio::sync::Semaphore>,
    /// Room for signatures being checked (requests not yet authenticated).
    checking: Arc<tokio::sync::Semaphore>,
    /// Room for argon2 password checks.
    password_checks: Arc<tokio::sync::Semaphore>,
    /// Set once the server stops: long polls end, empty, instead of leasing jobs that a
    /// worker could then not report to this server.
    draining: tokio::sync::watch::Sender<bool>,
}

impl AppState {
    /// The state of a server over `backend`, decrypting secrets with `key`; `tls` says which
    /// scheme clients sign (unless the config names a public origin).
    /// It also makes itself the backend's observer, for its metrics.
    pub fn new(backend: SqlBackend, key: ServerKey, config: ServerConfig, tls: bool) -> Self {
        let metrics = Arc::new(Metrics::new());
        backend.set_observer(metrics.clone());
        AppState {
            inner: Arc::new(Inner {
                reserves: Arc::new(tokio::sync::Semaphore::new(config.max_reserves)),
                requests: Arc::new(tokio::sync::Semaphore::new(config.max_requests)),
                checking: Arc::new(tokio::sync::Semaphore::new(config.max_checking)),
                password_checks: Arc::new(tokio::sync::Semaphore::new(config.max_password_checks)),
                metrics,
                directory: Directory::new(backend.clone()),
                nonces: NonceStore::new(backend.clone()),
                backend,
                key,
                config,
                scheme: if tls { "https" } else { "http" },
                draining: tokio::sync::watch::Sender::new(false),
            }),
        }
    }

    /// Says the server is stopping: reserves that wait for a job answer at once with none
    /// (a job leased as the server exits would wait out its lease before running again).
    pub fn drain(&self) {
        self.inner.draining.send_replace(true);
    }

    /// Resolves once the server is stopping (at once if it is).
    pub(crate) async fn draining(&self) {
        let mut draining = self.inner.draining.subscribe();
        // An error means the sender is gone, which it is not while `self` lives.
        let _ = draining.wait_for(|stopping| *stopping).await;
    }

    /// The SQL backend.
    pub fn backend(&self) -> &SqlBackend {
        &self.inner.backend
    }

    /// The directory of principals.
    pub fn directory(&self) -> &Directory {
        &self.inner.directory
    }

    pub(crate) fn nonces(&self) -> &NonceStore {
        &self.inner.nonces
    }

    pub(crate) fn key(&self) -> &ServerKey {
        &self.inner.key
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// The settings.
    pub fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    pub(crate) fn scheme(&self) -> &'static str {
        self.inner.scheme
    }

    /// A place for one request in flight (a reserve, or any other), if there is room.
    pub(crate) fn admit(&self, reserve: bool) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let room = match reserve {
            true => &self.inner.reserves,
            false => &self.inner.requests,
        };
        room.clone().try_acquire_owned().ok()
    }

    /// A place for one signature check, waited for in turn up to `CHECK_WAIT`: a check takes
    /// a lookup and an HMAC, so a burst (two hundred long polls coming back at once) drains in
    /// milliseconds and should queue, not be refused; only a share full for that long is 503.
    pub(crate) async fn admit_check(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        let permit = tokio::time::timeout(CHECK_WAIT, self.inner.checking.acquire()).await;
        permit.ok()?.ok()
    }

    /// A place for one password check, if there is room.
    pub(crate) fn admit_password_check(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        self.inner.password_checks.try_acquire().ok()
    }

    /// The wall clock, for OAuth timestamps (the backend's own clock decides leases).
    pub(crate) fn wall_clock(&self) -> DateTime<Utc> {
        Utc::now()
    }

    /// Notes a principal's request, at most every half minute (each note is a write).
    pub(crate) async fn seen(&self, principal: &Principal) {
        let stale = principal
            .last_seen_at
            .is_none_or(|at| self.wall_clock() - at > chrono::Duration::seconds(30));
        if stale
            && let Err(error) = self
                .inner
                .directory
                .touch(principal.role, &principal.name)
                .await
        {
            tracing::warn!(%error, "could not record a principal's last contact");
        }
    }
}
