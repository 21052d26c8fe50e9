//! How to open a SQL backend.

use std::fmt;
use std::time::Duration;

/// How SQLite syncs its write-ahead log to disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SqliteSync {
    /// Every commit reaches the disk before it is acknowledged: an acknowledged enqueue
    /// survives a crash of the process, the OS or the power. The default.
    #[default]
    Full,
    /// Commits survive a crash of the process, but the last ones may be lost if the OS crashes
    /// or the power fails; several times faster for small writes.
    Normal,
}

/// The settings of a [`SqlBackend`](crate::SqlBackend). Every field has a default.
#[derive(Clone)]
pub struct SqlConfig {
    /// The database: `sqlite://outsourced.db` (the default, created when missing),
    /// `sqlite::memory:`, `postgres://...` or `mysql://...`.
    pub url: String,
    /// The lease a reserve grants when the worker asks for none (30 s).
    pub lease: Duration,
    /// The shortest lease a worker may ask for (1 s).
    pub min_lease: Duration,
    /// The longest lease a worker may ask for (1 h).
    pub max_lease: Duration,
    /// Create an unknown queue on first enqueue, with the default limit, instead of refusing.
    pub create_queues_on_first_use: bool,
    /// The largest arguments a job may carry, as JSON text (1 MiB).
    pub max_args_bytes: usize,
    /// The largest attachment a job may carry (2 GiB).
    pub max_attachment_bytes: u64,
    /// The most jobs one reserve hands out (1,000).
    pub max_reserve: u32,
    /// How often reserve may also reclaim expired leases, so that a worker fleet alone keeps
    /// the queue moving without a separate reaper (1 s; by the backend's clock).
    pub reclaim_every: Duration,
    /// How long a long-polling reserve waits before looking again when nothing woke it, which
    /// only matters for jobs enqueued by another process on the same SQLite file (5 s).
    pub idle_recheck: Duration,
    /// SQLite's durability ([`SqliteSync::Full`]).
    pub sqlite_sync: SqliteSync,
    /// How long SQLite waits for another process's write lock before failing (5 s).
    pub sqlite_busy_timeout: Duration,
    /// Readers for a SQLite file besides its single writer (4); in-memory databases and other
    /// databases use one pool.
    pub sqlite_readers: u32,
    /// Connections for PostgreSQL and MySQL (10).
    pub max_connections: u32,
    /// PostgreSQL only: the schema to keep the tables in (its `search_path`); the user's
    /// default when `None`.
    pub schema: Option<String>,
    /// Create a SQLite file that does not exist (true). Commands that only read, and
    /// workers, turn it off, so that a mistyped path is an error, not a new empty database.
    pub create_if_missing: bool,
    /// How long opening a PostgreSQL or MySQL database may wait for the server before failing
    /// with its cause (10 s).
    pub connect_timeout: Duration,
}

impl SqlConfig {
    /// The defaults, for the database at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        SqlConfig {
            url: url.into(),
            lease: Duration::from_secs(30),
            min_lease: Duration::from_secs(1),
            max_lease: Duration::from_secs(3600),
            create_queues_on_first_use: false,
            max_args_bytes: 1 << 20,
            max_attachment_bytes: 2 << 30,
            max_reserve: 1000,
            reclaim_every: Duration::from_secs(1),
            idle_recheck: Duration::from_secs(5),
            sqlite_sync: SqliteSync::Full,
            sqlite_busy_timeout: Duration::from_secs(5),
            sqlite_readers: 4,
            max_connections: 10,
            schema: None,
            create_if_missing: true,
            connect_timeout: Duration::from_secs(10),
        }
    }

    /// The lease for a reserve that asks for `asked`, within the bounds.
    pub(crate) fn lease_for(&self, asked: Option<Duration>) -> Duration {
        asked
            .unwrap_or(self.lease)
            .clamp(self.min_lease, self.max_lease)
    }
}

impl Default for SqlConfig {
    fn default() -> Self {
        SqlConfig::new("sqlite://outsourced.db")
    }
}

impl fmt::Debug for SqlConfig {
    /// Hides the URL's password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlConfig")
            .field("url", &redact(&self.url))
            .field("lease", &self.lease)
            .field(
                "create_queues_on_first_use",
                &self.create_queues_on_first_use,
            )
            .field("sqlite_sync", &self.sqlite_sync)
            .finish_non_exhaustive()
    }
}

/// The URL with any password replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((userinfo, host)) = rest.split_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_password() {
        let config = SqlConfig::new("postgres://app:s3cret@db:5432/jobs");
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("postgres://app:***@db:5432/jobs"), "{shown}");
        assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
    }

    #[test]
    fn leases_are_clamped() {
        let config = SqlConfig::default();
        assert_eq!(config.lease_for(None), Duration::from_secs(30));
        assert_eq!(
            config.lease_for(Some(Duration::ZERO)),
            Duration::from_secs(1)
        );
        assert_eq!(
            config.lease_for(Some(Duration::from_secs(1 << 20))),
            Duration::from_secs(3600)
        );
    }
}
