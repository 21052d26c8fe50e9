//! Opening the database: pools, SQLite's pragmas, and the migrations.

use std::time::Duration;

use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbBackend};
use sea_orm_migration::MigratorTrait;

use crate::config::{SqlConfig, SqliteSync};
use crate::dialect::Flavor;
use crate::error::db_error;
use crate::migration::Migrator;
use outsourced_core::Result;

/// The pools of one backend. On a SQLite file every write goes through `writer`, a pool of one
/// connection, so writes are serialized in the process and "database is locked" never
/// reaches a caller; `reader` serves reads beside it (WAL lets them run during a write).
/// Everywhere else the two are the same pool.
#[derive(Clone, Debug)]
pub(crate) struct Pools {
    pub(crate) writer: DatabaseConnection,
    pub(crate) reader: DatabaseConnection,
    pub(crate) flavor: Flavor,
    /// An in-memory SQLite database: a connection that is never used, so that the database
    /// outlives its writer's connection should that one ever be closed (a call cancelled in
    /// the middle of a statement can close it); the writer's pool then reconnects to the
    /// same database, not to a fresh, empty one.
    _keeper: Option<DatabaseConnection>,
}

/// Opens the database at `config.url` and brings its schema up to date.
pub(crate) async fn open(config: &SqlConfig) -> Result<Pools> {
    check_scheme(&config.url)?;
    let pools = if config.url.starts_with("sqlite:") {
        open_sqlite(config).await?
    } else {
        open_server(config).await?
    };
    migrate(&pools).await?;
    Ok(pools)
}

/// A pooled connection idle this long is pinged before it is handed out; one in use more
/// recently is handed out as it is. sqlx pings at every acquire by default: a round trip (on
/// SQLite, a hop to the connection's thread and back) before every statement outside a
/// transaction and every transaction, about 6% of the server's CPU in a profile of signed
/// enqueues on PostgreSQL. A connection that breaks while busy fails its statement, is
/// closed by the pool, and the caller's error is retryable.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// The URL schemes this backend speaks.
const SCHEMES: [&str; 4] = ["sqlite:", "postgres://", "postgresql://", "mysql://"];

/// Refuses a URL of no database this backend speaks, saying what it should look like: a bare
/// path (`outsourced.db`) is the usual slip.
fn check_scheme(url: &str) -> Result<()> {
    if SCHEMES.iter().any(|scheme| url.starts_with(scheme)) {
        return Ok(());
    }
    let shown = crate::config::redact(url);
    let hint = match url.contains("://") {
        true => String::new(),
        false => format!(" (for a SQLite file: sqlite://{shown})"),
    };
    Err(outsourced_core::Error::invalid(format!(
        "{shown:?} is not a database URL{hint}; use sqlite://FILE, postgres://USER@HOST/DB or mysql://USER@HOST/DB"
    )))
}

/// Brings the schema up to date, holding a lock while it does, so that processes started at
/// once on a fresh database migrate one after the other (the later ones then find nothing to
/// do) instead of racing to create the same tables.
async fn migrate(pools: &Pools) -> Result<()> {
    use sea_orm::{ConnectionTrait, SqliteTransactionMode, TransactionOptions, TransactionTrait};
    let (lock, unlock) = match pools.flavor {
        // The write lock, taken by BEGIN IMMEDIATE; SQLite's DDL is transactional.
        Flavor::Sqlite => (None, None),
        // Released by the commit; PostgreSQL's DDL is transactional too.
        Flavor::Postgres => (Some("SELECT pg_advisory_xact_lock(7274686574)"), None),
        // MySQL commits at every DDL statement: a session lock, released by hand.
        Flavor::MariaDb | Flavor::MySql => (
            Some("SELECT GET_LOCK(CONCAT('outsourced_migrate.', DATABASE()), 600)"),
            Some("SELECT RELEASE_LOCK(CONCAT('outsourced_migrate.', DATABASE()))"),
        ),
    };
    let options = TransactionOptions {
        sqlite_transaction_mode: (pools.flavor == Flavor::Sqlite)
            .then_some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    };
    let txn = pools
        .writer
        .begin_with_options(options)
        .await
        .map_err(db_error)?;
    if let Some(lock) = lock {
        txn.execute_unprepared(lock).await.map_err(db_error)?;
    }
    let migrated = Migrator::up(&txn, None).await;
    if let Some(unlock) = unlock {
        txn.execute_unprepared(unlock).await.map_err(db_error)?;
    }
    migrated.map_err(db_error)?;
    txn.commit().await.map_err(db_error)
}

/// PostgreSQL or MySQL/MariaDB: one pool. On MySQL every connection runs at READ COMMITTED,
/// which claims with SKIP LOCKED need (REPEATABLE READ, its default, adds gap locks), without
/// index-merge intersection.
async fn open_server(config: &SqlConfig) -> Result<Pools> {
    probe(config).await?;
    let mut options = ConnectOptions::new(config.url.clone());
    options
        .max_connections(config.max_connections)
        .acquire_timeout(Duration::from_secs(30))
        .test_before_acquire_if_idle_for(PING_IF_IDLE_FOR)
        .connect_timeout(config.connect_timeout)
        .sqlx_logging(false);
    if let Some(schema) = &config.schema {
        options.set_schema_search_path(schema.clone());
    }
    options.map_sqlx_mysql_pool_opts(|pool| {
        pool.after_connect(|conn, _| {
            Box::pin(async move {
                use sea_orm::sqlx::Executor;
                conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                    .await?;
                // Index-merge intersection turns a page of jobs by queue and state into a
                // sort of every match (2.5 s at a million jobs, against 11 ms without).
                conn.execute("SET SESSION optimizer_switch = 'index_merge_intersection=off'")
                    .await?;
                Ok(())
            })
        })
    });
    let db = Database::connect(options).await.map_err(db_error)?;
    let flavor = match db.get_database_backend() {
        DbBackend::Postgres => Flavor::Postgres,
        _ => mysql_flavor(&db).await?,
    };
    Ok(Pools {
        writer: db.clone(),
        reader: db,
        flavor,
        _keeper: None,
    })
}

/// One connection, made and closed before the pool is built: a pool retries a refused
/// connection until its acquire timeout and then says only that it timed out, while this says
/// why (refused, unknown host, bad password) within `connect_timeout`.
async fn probe(config: &SqlConfig) -> Result<()> {
    use sea_orm::sqlx::Connection;
    use sea_orm::sqlx::mysql::MySqlConnection;
    use sea_orm::sqlx::postgres::PgConnection;
    let url = config.url.as_str();
    let connect = async {
        if url.starts_with("postgres") {
            PgConnection::connect(url).await?.close().await
        } else {
            MySqlConnection::connect(url).await?.close().await
        }
    };
    let failed = |why: String| {
        crate::error::backend_error(
            format!("cannot connect to {}: {why}", crate::config::redact(url)),
            true,
        )
    };
    match tokio::time::timeout(config.connect_timeout, connect).await {
        Ok(Ok(())) => Ok(()),
        // The database's own words: sqlx adds "error returned from database:" before them and
        // PostgreSQL's source line ("at line 948") after.
        Ok(Err(error)) => Err(failed(match error.as_database_error() {
            Some(refusal) => refusal.message().to_owned(),
            None => error.to_string(),
        })),
        Err(_) => Err(failed(format!(
            "no answer within {} s",
            config.connect_timeout.as_secs()
        ))),
    }
}

/// MariaDB or MySQL, by what the server says it is.
async fn mysql_flavor(db: &DatabaseConnection) -> Result<Flavor> {
    use sea_orm::ConnectionTrait;
    let statement = sea_orm::Statement::from_string(DbBackend::MySql, "SELECT VERSION()");
    let row = db.query_one_raw(statement).await.map_err(db_error)?;
    let version: String = row
        .and_then(|row| row.try_get_by_index(0).ok())
        .unwrap_or_default();
    Ok(if version.contains("MariaDB") {
        Flavor::MariaDb
    } else {
        Flavor::MySql
    })
}

/// Creates a missing database file as an empty file only its owner may read or write, before
/// SQLite opens it (SQLite would create it 0644 under the usual umask; it holds password hashes
/// and sessions). SQLite gives its `-wal` and `-shm` files the database file's permissions.
fn create_private(path: &std::path::Path) -> Result<()> {
    // A link to a file not there yet (a dangling symlink): the file is made at its target,
    // private all the same (exclusive creation would refuse the link and leave SQLite to
    // create the target with the usual 0644).
    let target = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() && !path.exists() => {
            match std::fs::read_link(path) {
                Ok(link) => path
                    .parent()
                    .unwrap_or(std::path::Path::new("."))
                    .join(link),
                Err(_) => return Ok(()),
            }
        }
        _ => path.to_path_buf(),
    };
    let path = target.as_path();
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        // SQLite would say only "(code: 14) unable to open database file".
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            Err(outsourced_core::Error::invalid(format!(
                "cannot create the database {}: its folder {} does not exist",
                path.display(),
                path.parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .unwrap_or(std::path::Path::new("."))
                    .display()
            )))
        }
        // Anything else (a read-only folder, say): SQLite says so in its own words.
        Err(_) => Ok(()),
    }
}

/// The file of a SQLite URL (`sqlite://x.db`, `sqlite:x.db?mode=rwc`).
fn sqlite_path(url: &str) -> Option<std::path::PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty()).then(|| path.into())
}

pub(crate) fn is_memory(url: &str) -> bool {
    url.contains(":memory:") || url.contains("mode=memory")
}

async fn open_sqlite(config: &SqlConfig) -> Result<Pools> {
    if is_memory(&config.url) {
        // One database by name in shared-cache mode, so that the keeper and the writer (and a
        // writer connection opened again) are connections to the same database. Readers
        // would still have to take turns with the writer, table by table: everything shares
        // the writer's one connection.
        let url = format!(
            "sqlite:file:outsourced-memory-{:032x}?mode=memory&cache=shared",
            rand::random::<u128>()
        );
        let keeper = sqlite_pool(config, &url, 1, false).await?;
        let writer = sqlite_pool(config, &url, 1, false).await?;
        return Ok(Pools {
            reader: writer.clone(),
            writer,
            flavor: Flavor::Sqlite,
            _keeper: Some(keeper),
        });
    }
    if !config.create_if_missing
        && let Some(path) = sqlite_path(&config.url)
        && !path.exists()
    {
        return Err(outsourced_core::Error::invalid(format!(
            "there is no database at {}: `outsourcer migrate --database sqlite://{}` creates one",
            path.display(),
            path.display()
        )));
    }
    if let Some(path) = sqlite_path(&config.url) {
        create_private(&path)?;
    }
    let writer = sqlite_pool(config, &config.url, 1, false).await?;
    // Readers open after the writer, which has created the file and switched it to WAL.
    let readers = config.sqlite_readers.max(1);
    let reader = sqlite_pool(config, &config.url, readers, true).await?;
    Ok(Pools {
        writer,
        reader,
        flavor: Flavor::Sqlite,
        _keeper: None,
    })
}

/// Rows SQLite's worker thread may hand over before the caller reads them: a claim's largest
/// batch.
const ROW_BUFFER: usize = 1024;

async fn sqlite_pool(
    config: &SqlConfig,
    url: &str,
    size: u32,
    read_only: bool,
) -> Result<DatabaseConnection> {
    let sync = match config.sqlite_sync {
        SqliteSync::Full => SqliteSynchronous::Full,
        SqliteSync::Normal => SqliteSynchronous::Normal,
    };
    let busy = config.sqlite_busy_timeout;
    let memory = is_memory(url);
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(size)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(60))
        .test_before_acquire_if_idle_for(PING_IF_IDLE_FOR)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(move |opts: SqliteConnectOptions| {
            // A claim's whole batch fits the row buffer, so that SQLite's worker thread hands
            // it over without waiting for the caller to drain every 50 rows (the default).
            let opts = opts
                .busy_timeout(busy)
                .synchronous(sync)
                .foreign_keys(true)
                .row_buffer_size(ROW_BUFFER);
            match (memory, read_only) {
                (true, _) => opts,
                (false, true) => opts.read_only(true),
                (false, false) => opts
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal),
            }
        });
    if memory {
        // Closing the only connection would drop the database.
        options.idle_timeout(None).max_lifetime(None);
    }
    // SQLite answers some opens SQLITE_BUSY without calling the busy handler (while another
    // connection switches the file to WAL or recovers its WAL index), so a process started
    // beside another on a fresh file tries again, within the busy timeout.
    let deadline = tokio::time::Instant::now() + busy;
    let mut pause = Duration::from_millis(5);
    loop {
        match Database::connect(options.clone()).await {
            Ok(db) => return Ok(db),
            Err(error)
                if matches!(
                    crate::error::kind(&error),
                    crate::error::DbErrorKind::Transient | crate::error::DbErrorKind::Conflict
                ) && tokio::time::Instant::now() + pause < deadline =>
            {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            Err(error) => return Err(db_error(error)),
        }
    }
}
