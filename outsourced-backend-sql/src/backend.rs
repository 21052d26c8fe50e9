//! [`SqlBackend`]: the handle every operation works through (its pools, clock, wake-ups and
//! write transactions). Its `Backend` implementation, the façade, is in `facade.rs`.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use sea_orm::{
    DatabaseConnection, DatabaseTransaction, SqliteTransactionMode, TransactionOptions,
    TransactionTrait,
};

use crate::config::SqlConfig;
use crate::connect::{self, Pools};
use crate::dialect::Flavor;
use crate::enqueue_group;
use crate::error::{backend_error, db_error};
use crate::group::Group;
use crate::wake::{self, Wake};
use outsourced_core::{Clock, Observer, Result, SystemClock};

/// Runs `call` in a task of its own and answers its result: dropping the answer's future
/// leaves the call running to its end.
pub(crate) async fn detached<T: Send + 'static>(
    call: impl Future<Output = Result<T>> + Send + 'static,
) -> Result<T> {
    tokio::spawn(call)
        .await
        .map_err(|e| backend_error(format!("a write's task failed: {e}"), false))?
}

/// How often a write transaction runs when it keeps conflicting with concurrent ones.
const WRITE_TRIES: u32 = 4;

/// The SQL backend: jobs, queues and history in SQLite (by default), PostgreSQL or
/// MariaDB/MySQL. Cheap to clone; clones share the pools.
#[derive(Clone, Debug)]
pub struct SqlBackend {
    pub(crate) inner: Arc<Inner>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) pools: Pools,
    pub(crate) config: SqlConfig,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) wake: Wake,
    /// When reserve last reclaimed expired leases, by the backend's clock.
    pub(crate) last_reclaim: Mutex<Option<DateTime<Utc>>>,
    /// The task that turns other processes' changes into wake-ups: PostgreSQL's `LISTEN`, a
    /// SQLite file's `data_version` watch.
    listener: Option<tokio::task::JoinHandle<()>>,
    /// Who hears of every committed change (metrics), if anyone.
    observer: std::sync::RwLock<Option<Arc<dyn Observer>>>,
    /// Enqueues waiting for their group commit.
    pub(crate) enqueues: Group<enqueue_group::Request, Result<enqueue_group::Grouped>, SqlBackend>,
    /// When each worker instance's row was last written.
    pub(crate) instances: crate::instances::Notes,
    /// The queues with run limits this process has seen.
    pub(crate) limited: crate::limits::Limited,
    /// What this process's transactions did, not yet added to the database's tallies.
    pub(crate) tallies: crate::tally::Pending,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(listener) = &self.listener {
            listener.abort();
        }
    }
}

impl SqlBackend {
    /// Opens the database `config.url` (creating a SQLite file when missing) and migrates it.
    pub async fn open(config: SqlConfig) -> Result<Self> {
        Self::open_with_clock(config, Arc::new(SystemClock)).await
    }

    /// Opens with the defaults for the database at `url`.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::open(SqlConfig::new(url)).await
    }

    /// Opens with a clock of the caller's (tests move a [`TestClock`](outsourced_core::TestClock)).
    pub async fn open_with_clock(config: SqlConfig, clock: Arc<dyn Clock>) -> Result<Self> {
        // Boxed: opening and migrating is a deep future, too deep to lay out inline in callers'.
        let pools = Box::pin(connect::open(&config)).await?;
        let wake = Wake::new();
        let listener = match pools.flavor {
            Flavor::Postgres => {
                let channel = wake::channel(config.schema.as_deref());
                let listening = wake::listen(&config.url, channel, wake.clone()).await;
                let conn = |e| sea_orm::DbErr::Conn(sea_orm::RuntimeErr::SqlxError(Arc::new(e)));
                Some(listening.map_err(|e| db_error(conn(e)))?)
            }
            Flavor::Sqlite if !connect::is_memory(&config.url) => {
                Some(wake::watch_sqlite(pools.writer.clone(), wake.clone()))
            }
            _ => None,
        };
        let backend = SqlBackend {
            inner: Arc::new(Inner {
                pools,
                config,
                clock,
                wake,
                last_reclaim: Mutex::new(None),
                listener,
                observer: std::sync::RwLock::new(None),
                enqueues: enqueue_group::group(),
                instances: crate::instances::Notes::default(),
                limited: crate::limits::Limited::default(),
                tallies: crate::tally::Pending::default(),
            }),
        };
        tokio::spawn(crate::tally::flush_while_open(Arc::downgrade(
            &backend.inner,
        )));
        Ok(backend)
    }

    /// The connection writes go through, for the host application's own queries.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.inner.pools.writer
    }

    /// Tells `observer` of every change this backend commits from now on (replacing any
    /// observer before): enqueues, leases, attempts' ends, admins' retries. Changes made in a
    /// transaction of the caller's own (`enqueue_in`) are not told.
    pub fn set_observer(&self, observer: Arc<dyn Observer>) {
        *self
            .inner
            .observer
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Some(observer);
    }

    pub(crate) fn observer(&self) -> Option<Arc<dyn Observer>> {
        self.inner
            .observer
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The settings it was opened with.
    pub fn config(&self) -> &SqlConfig {
        &self.inner.config
    }

    /// Which database it talks to.
    pub fn flavor(&self) -> Flavor {
        self.inner.pools.flavor
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// Begins a transaction for the host application's own writes, to enqueue jobs in with
    /// [`SqlBackend::enqueue_in`]: on SQLite it takes the write lock at once (waiting up to
    /// the busy timeout), so that it cannot fail later because another process wrote first.
    pub async fn begin(&self) -> Result<DatabaseTransaction> {
        self.begin_write().await
    }

    pub(crate) fn reader(&self) -> &DatabaseConnection {
        &self.inner.pools.reader
    }

    /// Begins a write transaction: `BEGIN IMMEDIATE` on SQLite, so that a transaction that
    /// reads before it writes waits for the write lock (with the busy timeout) instead of
    /// failing when another process wrote in between; the database's default (READ COMMITTED
    /// on PostgreSQL) elsewhere.
    pub(crate) async fn begin_write(&self) -> Result<DatabaseTransaction> {
        let options = match self.flavor() {
            Flavor::Sqlite => TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            },
            _ => TransactionOptions::default(),
        };
        // In a task of its own, so that it runs to its end even when its caller goes away:
        // sqlx counts a transaction only once the server has answered `BEGIN`, so a caller
        // dropped in between would hand the connection back to the pool inside a transaction
        // sqlx does not know of, where later reads and writes would wait for no commit (seen
        // on MariaDB as a session idle in a transaction, holding its locks). A transaction
        // begun for no one is rolled back when the task drops it.
        let writer = self.inner.pools.writer.clone();
        tokio::spawn(async move { writer.begin_with_options(options).await })
            .await
            .map_err(|e| backend_error(format!("beginning a transaction: {e}"), true))?
            .map_err(db_error)
    }

    /// Runs `body` in a write transaction and commits it, or rolls it back when `body` fails.
    /// A conflict with a concurrent transaction (a deadlock, a serialization failure, SQLite
    /// busy past its timeout) undoes everything, so the whole transaction runs again, a few
    /// times, after a short pause (an undone attempt's result, and with it its events, is
    /// dropped).
    ///
    /// `body` gets the transaction and hands it back with its result (a plain future, so that
    /// the caller's stays `Send`).
    pub(crate) async fn write<T, F, Fut>(&self, mut body: F) -> Result<T>
    where
        F: FnMut(DatabaseTransaction) -> Fut,
        Fut: Future<Output = (DatabaseTransaction, Result<T>)>,
    {
        let mut pause = std::time::Duration::from_millis(2);
        let mut attempt = 1;
        loop {
            let txn = self.begin_write().await?;
            let (txn, result) = body(txn).await;
            match self.finish(txn, result).await {
                Err(error) if attempt < WRITE_TRIES && crate::error::is_conflict(&error) => {
                    tracing::debug!(%error, attempt, "a write conflicted; running it again");
                    let jitter = rand::random_range(0..=pause.as_micros() as u64);
                    tokio::time::sleep(pause + std::time::Duration::from_micros(jitter)).await;
                    pause *= 4;
                    attempt += 1;
                }
                outcome => return outcome,
            }
        }
    }

    /// Ends a write transaction: commits on success, rolls back on failure. Never leave one to
    /// be dropped: on PostgreSQL and MySQL its rollback would wait for the connection's next
    /// use, and its row locks with it (making SKIP LOCKED skip rows nobody is working on).
    pub(crate) async fn finish<T>(&self, txn: DatabaseTransaction, result: Result<T>) -> Result<T> {
        match result {
            Ok(value) => {
                txn.commit().await.map_err(db_error)?;
                Ok(value)
            }
            Err(error) => {
                if let Err(rollback) = txn.rollback().await {
                    tracing::warn!(%rollback, "rolling back a failed transaction failed");
                }
                Err(error)
            }
        }
    }

    /// Wakes every reserver that long-polls: in this process at once, and on PostgreSQL in
    /// every other process through `NOTIFY` (awaited, so that a process that exits right
    /// after, the CLI's `job retry`, has sent it).
    pub(crate) async fn wake(&self) {
        self.inner.wake.everyone();
        if self.flavor() == Flavor::Postgres {
            self.notify_others().await;
        }
    }

    /// Wakes every reserver that long-polls, in this process at once and, on PostgreSQL, in
    /// other processes by a `NOTIFY` sent soon, by a task of `runtime`: one on its way at a
    /// time, the wake-ups that came due meanwhile sent as one after it (`wake::Relay`). For
    /// wake-ups that come at the rate of completions.
    pub(crate) fn wake_soon(&self, runtime: &tokio::runtime::Handle) {
        self.inner.wake.everyone();
        if self.flavor() != Flavor::Postgres || !self.inner.wake.others_due() {
            return;
        }
        let backend = self.clone();
        runtime.spawn(async move {
            let relay = &backend.inner.wake;
            loop {
                while relay.take_due() {
                    backend.notify_others().await;
                }
                if !relay.sender_stops() {
                    break;
                }
            }
        });
    }

    /// Sends other processes a wake-up (PostgreSQL).
    async fn notify_others(&self) {
        let channel = wake::channel(self.inner.config.schema.as_deref());
        let me = self.inner.wake.id();
        if let Err(error) = wake::notify_others_alone(self.connection(), &channel, me).await {
            tracing::warn!(%error, "could not notify other servers");
        }
    }

    /// Wakes a long-polling reserver of this process for the new jobs of `rows`, one per queue
    /// (and class), which passes the wake-up on if it takes a full batch (`Wake::pass_on`);
    /// other processes were told by the enqueue's transaction ([`SqlBackend::notify_in`]).
    pub(crate) fn wake_for(&self, rows: &[crate::entity::job::Model]) {
        let ready: std::collections::BTreeSet<(&str, &str)> = rows
            .iter()
            .filter(|row| row.waiting)
            .map(|row| (row.queue.as_str(), row.class.as_str()))
            .collect();
        self.inner.wake.jobs(&ready);
    }

    /// On PostgreSQL, a `NOTIFY` to every other process, sent in the transaction `db` and so
    /// delivered at its commit; marked as this backend's, whose own listener skips it.
    pub(crate) async fn notify_in(&self, db: &impl sea_orm::ConnectionTrait) -> Result<()> {
        if self.flavor() != Flavor::Postgres {
            return Ok(());
        }
        let channel = wake::channel(self.inner.config.schema.as_deref());
        wake::notify_others(db, &channel, self.inner.wake.id())
            .await
            .map_err(db_error)
    }

    /// Tells this process's reservers that jobs may be ready, after jobs were enqueued in a
    /// transaction of the caller's own (see [`SqlBackend::enqueue_in`]) that has now
    /// committed. (Other processes were told by the transaction itself on PostgreSQL, and see
    /// the commit of a SQLite file within 50 ms.)
    pub fn notify_enqueued(&self) {
        self.inner.wake.everyone();
    }
}
