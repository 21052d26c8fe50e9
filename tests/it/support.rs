//! Building harnesses over the SQL backend.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use outsourced_backend_sql::{SqlBackend, SqlConfig};
use outsourced_core::conformance::{Client, Harness, WorkerClient};
use outsourced_core::{Actor, Backend, TestClock, WorkerInstance};

/// The SQL settings the suite runs with: no periodic re-check while long-polling, so that only
/// a real wake-up can end a long poll early.
pub(crate) fn test_config(url: &str) -> SqlConfig {
    let mut config = SqlConfig::new(url);
    config.idle_recheck = Duration::from_secs(600);
    config
}

/// A harness where the producer, the workers and the admin all call one SQL backend.
pub(crate) async fn sql_harness(url: &str) -> Harness {
    sql_harness_with(test_config(url)).await
}

pub(crate) use crate::bins::Server;

/// Fresh, empty namespaces on a database server, one per harness: a schema on PostgreSQL, a
/// database on MariaDB. Dropped by [`Namespaces::drop_all`].
pub(crate) struct Namespaces {
    server: Server,
    url: String,
    admin: outsourced_backend_sql::sea_orm::DatabaseConnection,
    created: std::sync::Mutex<Vec<String>>,
}

impl Namespaces {
    pub(crate) async fn new(server: Server, url: &str) -> Namespaces {
        let admin = outsourced_backend_sql::sea_orm::Database::connect(url)
            .await
            .unwrap_or_else(|e| panic!("cannot reach {server:?} at {url}: {e}"));
        Namespaces {
            server,
            url: url.to_owned(),
            admin,
            created: std::sync::Mutex::new(Vec::new()),
        }
    }

    async fn execute(&self, sql: String) {
        use outsourced_backend_sql::sea_orm::ConnectionTrait;
        self.admin
            .execute_unprepared(&sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Ends the MariaDB sessions still connected to database `name`, as PostgreSQL's
    /// `DROP ... WITH (FORCE)` would: a pooled connection can hold a dropped transaction's
    /// metadata lock (sqlx rolls it back only when the connection is next used), and
    /// `DROP DATABASE` would wait for it forever.
    /// A session found inside a transaction is reported on stderr: it is a leak to find.
    async fn end_sessions_on(&self, name: &str) {
        use outsourced_backend_sql::sea_orm::{ConnectionTrait, Statement};
        // `processlist.id` is a signed BIGINT: decoded as u64 it fails, and nothing was killed.
        let sql = format!(
            "SELECT p.id, t.trx_started IS NOT NULL FROM information_schema.processlist p \
             LEFT JOIN information_schema.innodb_trx t ON t.trx_mysql_thread_id = p.id \
             WHERE p.db = '{name}'"
        );
        let backend = self.admin.get_database_backend();
        let rows = self
            .admin
            .query_all_raw(Statement::from_string(backend, sql))
            .await
            .unwrap_or_else(|e| panic!("the sessions on {name}: {e}"));
        for row in rows {
            let id: i64 = row.try_get_by_index(0).expect("a session id");
            if row.try_get_by_index::<i64>(1).is_ok_and(|open| open == 1) {
                eprintln!("note: session {id} on {name} was left inside a transaction");
            }
            // A session that ended on its own meanwhile is no error.
            let _ = self.admin.execute_unprepared(&format!("KILL {id}")).await;
        }
    }

    /// The config of a backend in a new, empty namespace.
    pub(crate) async fn fresh(&self) -> SqlConfig {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "ots_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        self.created
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(name.clone());
        match self.server {
            Server::Postgres => {
                self.execute(format!("CREATE SCHEMA {name}")).await;
                let mut config = test_config(&self.url);
                config.schema = Some(name);
                config
            }
            Server::MariaDb => {
                self.execute(format!("CREATE DATABASE {name}")).await;
                let base = self
                    .url
                    .rsplit_once('/')
                    .map_or(self.url.as_str(), |(base, _)| base);
                test_config(&format!("{base}/{name}"))
            }
        }
    }

    /// Drops every namespace this made.
    pub(crate) async fn drop_all(&self) {
        let names = std::mem::take(&mut *self.created.lock().unwrap_or_else(|e| e.into_inner()));
        for name in names {
            match self.server {
                Server::Postgres => self.execute(format!("DROP SCHEMA {name} CASCADE")).await,
                Server::MariaDb => {
                    self.end_sessions_on(&name).await;
                    self.execute(format!("DROP DATABASE {name}")).await
                }
            }
        }
    }
}

/// A harness over a SQL backend opened with `config` (any database).
pub(crate) async fn sql_harness_with(config: SqlConfig) -> Harness {
    let clock = Arc::new(TestClock::new());
    let lease = config.lease;
    let backend = SqlBackend::open_with_clock(config, clock.clone())
        .await
        .unwrap_or_else(|e| panic!("cannot open the database: {e}"));
    let invariant = counts_agree(backend.clone());
    let backend: Arc<dyn Backend> = Arc::new(backend);
    let client = |actor| Client {
        backend: backend.clone(),
        actor,
    };
    let worker = |name: &str, instance: &str| WorkerClient {
        backend: backend.clone(),
        id: WorkerInstance::new(name, instance),
    };
    let workers = vec![worker("w1", "a"), worker("w2", "b"), worker("w1", "c")];
    let producer = client(Actor::Producer("shop".into()));
    let admin = client(Actor::Admin("root".into()));
    Harness::new(producer, workers, admin, clock, lease).with_invariant(invariant)
}

/// The SQL backend's invariant for the conformance suite: its kept counts of jobs per queue
/// and state are the jobs table's.
pub(crate) fn counts_agree(backend: SqlBackend) -> outsourced_core::conformance::Invariant {
    Arc::new(move || {
        let backend = backend.clone();
        Box::pin(async move { outsourced_backend_sql::testing::counts_agree(&backend).await })
    })
}

/// Runs `test` on a fresh database: an SQLite file when `server` is `None`. Returns without
/// running when the server is not configured (see [`Server::url`]).
pub(crate) async fn on<F, Fut>(server: Option<Server>, test: F)
where
    F: FnOnce(SqlConfig) -> Fut,
    Fut: Future<Output = ()>,
{
    match server {
        None => {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let url = format!("sqlite://{}", dir.path().join("race.db").display());
            test(test_config(&url)).await;
        }
        Some(server) => {
            let Some(url) = server.url() else {
                return;
            };
            let spaces = Namespaces::new(server, &url).await;
            test(spaces.fresh().await).await;
            spaces.drop_all().await;
        }
    }
}

/// A test on each database, as `<test>::sqlite`, `<test>::postgres` and `<test>::mariadb`.
macro_rules! on_every_database {
    ($($test:ident),* $(,)?) => {$(
        mod $test {
            use crate::support::Server;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                crate::support::on(None, super::$test).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                crate::support::on(Some(Server::Postgres), super::$test).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mariadb() {
                crate::support::on(Some(Server::MariaDb), super::$test).await;
            }
        }
    )*};
}
pub(crate) use on_every_database;
