//! Where the databases differ, in one place: inserting unless a key exists, and getting the
//! ids of inserted rows back.
//!
//! SQLite and PostgreSQL speak `ON CONFLICT DO NOTHING` and `RETURNING`; MariaDB speaks
//! `INSERT IGNORE` and `INSERT ... RETURNING`; MySQL has no `RETURNING`, so each row is
//! inserted on its own and its id read from `LAST_INSERT_ID()`.

use sea_orm::sea_query::{InsertStatement, OnConflict};
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::error::{backend_error, db_error};
use outsourced_core::Result;

/// The database a backend talks to, finer than sea-orm's backend (MariaDB is not MySQL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// MariaDB (10.6 or later).
    MariaDb,
    /// MySQL (8.0 or later).
    MySql,
}

impl Flavor {
    /// Whether `SELECT ... FOR UPDATE SKIP LOCKED` is there to lock rows (SQLite locks the file).
    pub(crate) fn locks_rows(self) -> bool {
        self != Flavor::Sqlite
    }

    pub(crate) fn backend(self) -> DbBackend {
        match self {
            Flavor::Sqlite => DbBackend::Sqlite,
            Flavor::Postgres => DbBackend::Postgres,
            Flavor::MariaDb | Flavor::MySql => DbBackend::MySql,
        }
    }
}

/// Inserts the row unless one with the same key exists; true when it inserted.
pub(crate) async fn insert_if_absent(
    db: &impl ConnectionTrait,
    flavor: Flavor,
    insert: InsertStatement,
) -> Result<bool> {
    let statement = match flavor {
        Flavor::Sqlite | Flavor::Postgres => {
            let mut insert = insert;
            insert.on_conflict(OnConflict::new().do_nothing().to_owned());
            flavor.backend().build(&insert)
        }
        Flavor::MariaDb | Flavor::MySql => {
            // `INSERT IGNORE`: an existing key counts as no row, even with FOUND_ROWS.
            let built = flavor.backend().build(&insert);
            let sql = built.sql.replacen("INSERT ", "INSERT IGNORE ", 1);
            Statement {
                sql,
                values: built.values,
                db_backend: flavor.backend(),
            }
        }
    };
    let result = db.execute_raw(statement).await.map_err(db_error)?;
    Ok(result.rows_affected() == 1)
}

/// Inserts the rows and returns their ids, in the order of the rows.
pub(crate) async fn insert_returning_ids(
    db: &impl ConnectionTrait,
    flavor: Flavor,
    insert: InsertStatement,
) -> Result<Vec<i64>> {
    match flavor {
        Flavor::Sqlite | Flavor::Postgres | Flavor::MariaDb => {
            let built = flavor.backend().build(&insert);
            // MariaDB has INSERT ... RETURNING, which sea-query's MySQL writer leaves out.
            let (sql, values) = match flavor {
                Flavor::MariaDb => (format!("{} RETURNING `id`", built.sql), built.values),
                _ => {
                    let mut insert = insert;
                    insert.returning_col("id");
                    let built = flavor.backend().build(&insert);
                    (built.sql, built.values)
                }
            };
            let statement = Statement {
                sql,
                values,
                db_backend: flavor.backend(),
            };
            let rows = db.query_all_raw(statement).await.map_err(db_error)?;
            rows.iter()
                .map(|row| row.try_get_by_index::<i64>(0).map_err(db_error))
                .collect()
        }
        Flavor::MySql => Err(backend_error(
            "MySQL inserts rows one by one: use insert_one",
            false,
        )),
    }
}

/// Inserts one row and returns its id (any database).
pub(crate) async fn insert_one(
    db: &impl ConnectionTrait,
    flavor: Flavor,
    insert: InsertStatement,
) -> Result<i64> {
    if flavor != Flavor::MySql {
        let ids = insert_returning_ids(db, flavor, insert).await?;
        return ids
            .first()
            .copied()
            .ok_or_else(|| backend_error("the insert returned no id", false));
    }
    let result = db
        .execute_raw(flavor.backend().build(&insert))
        .await
        .map_err(db_error)?;
    i64::try_from(result.last_insert_id()).map_err(|_| backend_error("an id out of range", false))
}

/// Adds `counters` to the row of `table` with `key` (name and value of each key column),
/// inserting the row with them if there is none, in one statement on every database.
pub(crate) async fn add_to_row(
    db: &impl ConnectionTrait,
    flavor: Flavor,
    table: &str,
    key: &[(&str, sea_orm::Value)],
    counters: &[(&str, i64)],
) -> Result<()> {
    let names: Vec<&str> = (key.iter().map(|(name, _)| *name))
        .chain(counters.iter().map(|(name, _)| *name))
        .collect();
    let values: Vec<sea_orm::Value> = (key.iter().map(|(_, value)| value.clone()))
        .chain(counters.iter().map(|(_, n)| (*n).into()))
        .collect();
    let marks: Vec<String> = (1..=values.len())
        .map(|n| match flavor {
            Flavor::Postgres => format!("${n}"),
            _ => "?".to_owned(),
        })
        .collect();
    let sums: Vec<String> = counters
        .iter()
        .map(|(c, _)| match flavor {
            Flavor::MySql | Flavor::MariaDb => format!("{c} = {c} + VALUES({c})"),
            _ => format!("{c} = {table}.{c} + excluded.{c}"),
        })
        .collect();
    let conflict = match flavor {
        Flavor::MySql | Flavor::MariaDb => "ON DUPLICATE KEY UPDATE".to_owned(),
        _ => {
            let keys: Vec<&str> = key.iter().map(|(name, _)| *name).collect();
            format!("ON CONFLICT ({}) DO UPDATE SET", keys.join(", "))
        }
    };
    let sql = format!(
        "INSERT INTO {table} ({}) VALUES ({}) {conflict} {}",
        names.join(", "),
        marks.join(", "),
        sums.join(", ")
    );
    let statement = Statement::from_sql_and_values(flavor.backend(), sql, values);
    db.execute_raw(statement).await.map_err(db_error)?;
    Ok(())
}
