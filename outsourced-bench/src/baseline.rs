//! The database's own rate: single-row insert transactions through sqlx (sea-orm's driver) on
//! the same file or server, with the same durability, so that each figure shows its distance
//! to what the database itself can do on this machine today.

use std::time::Instant;

use outsourced_backend_sql::sea_orm::sea_query::{ColumnDef, Table};
use outsourced_backend_sql::sea_orm::{ConnectOptions, ConnectionTrait, Database, Statement};
use outsourced_core::{Error, Result};

const TABLE: &str = "outsourced_bench_baseline";

fn failed(error: impl std::fmt::Display) -> Error {
    Error::invalid(format!("the baseline failed: {error}"))
}

/// Rows per second of `n` single-row `INSERT` transactions from `connections` connections at
/// once (SQLite: one writer, as the backend has). `sync` is SQLite's `synchronous` setting.
pub(crate) async fn single_row_inserts(
    url: &str,
    sync: &str,
    connections: usize,
    n: usize,
) -> Result<f64> {
    let sqlite = url.starts_with("sqlite:");
    let connections = if sqlite { 1 } else { connections.max(1) };
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(connections as u32)
        .min_connections(connections as u32)
        .sqlx_logging(false);
    let db = Database::connect(options).await.map_err(failed)?;
    let backend = db.get_database_backend();
    if sqlite {
        for pragma in [
            "PRAGMA journal_mode=WAL".to_owned(),
            format!("PRAGMA synchronous={sync}"),
            "PRAGMA busy_timeout=5000".to_owned(),
        ] {
            db.execute_unprepared(&pragma).await.map_err(failed)?;
        }
    }
    let drop = Table::drop().table(TABLE).if_exists().to_owned();
    db.execute(&drop).await.map_err(failed)?;
    let create = Table::create()
        .table(TABLE)
        .col(
            ColumnDef::new("id")
                .big_integer()
                .not_null()
                .auto_increment()
                .primary_key(),
        )
        .col(ColumnDef::new("v").string_len(64).not_null())
        .to_owned();
    db.execute(&create).await.map_err(failed)?;
    let insert = format!("INSERT INTO {TABLE} (v) VALUES ('Bench::Noop')");
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(connections);
    for i in 0..connections {
        let (db, insert) = (db.clone(), insert.clone());
        let share = n / connections + usize::from(i < n % connections);
        tasks.push(tokio::spawn(async move {
            for _ in 0..share {
                let statement = Statement::from_string(backend, insert.as_str());
                db.execute_raw(statement).await?;
            }
            Ok::<(), outsourced_backend_sql::sea_orm::DbErr>(())
        }));
    }
    for task in tasks {
        task.await.map_err(failed)?.map_err(failed)?;
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    db.execute(&drop).await.map_err(failed)?;
    Ok(rate)
}
