//! How many jobs each queue holds in each state, kept exact without counting the jobs table:
//! every transaction that adds, changes or removes jobs writes what it changed as rows of a
//! ledger (`outsourced_state_deltas`: queue, state, +n or -n), in the same transaction, never
//! updating a shared row (so completions of one queue never wait for each other's commits, as
//! a counter row would make them); each process folds the ledger's committed rows into the
//! summary (`outsourced_state_counts`) about once a second. A read adds the summary and the
//! ledger in one statement: exact as of its snapshot, whatever has been folded.
//!
//! The summary starts from a count of the jobs table when migration 19 runs.

use std::collections::BTreeMap;

use sea_orm::{ConnectionTrait, Statement, Value};

use crate::backend::SqlBackend;
use crate::dialect::Flavor;
use crate::error::{corrupt, db_error};
use outsourced_core::{JobState, Result, StateCount};

/// What one transaction changes in the number of jobs per queue and state.
#[derive(Debug, Default)]
pub(crate) struct Deltas(BTreeMap<(String, JobState), i64>);

impl Deltas {
    /// A job of `queue` moved from `from` to `to`; `None` is outside the table (inserted,
    /// deleted).
    pub(crate) fn moved(&mut self, queue: &str, from: Option<JobState>, to: Option<JobState>) {
        if from == to {
            return;
        }
        if let Some(from) = from {
            *self.0.entry((queue.to_owned(), from)).or_default() -= 1;
        }
        if let Some(to) = to {
            *self.0.entry((queue.to_owned(), to)).or_default() += 1;
        }
    }

    /// Writes the changes as ledger rows, in the caller's transaction.
    pub(crate) async fn write(self, db: &impl ConnectionTrait) -> Result<()> {
        let rows: Vec<_> = self.0.into_iter().filter(|(_, n)| *n != 0).collect();
        if rows.is_empty() {
            return Ok(());
        }
        let postgres = db.get_database_backend() == sea_orm::DbBackend::Postgres;
        let mut values = Vec::with_capacity(rows.len() * 3);
        let mut tuples = Vec::with_capacity(rows.len());
        for ((queue, state), n) in rows {
            let marks: Vec<String> = [Value::from(queue), state.as_str().into(), n.into()]
                .into_iter()
                .map(|value| {
                    values.push(value);
                    match postgres {
                        true => format!("${}", values.len()),
                        false => "?".to_owned(),
                    }
                })
                .collect();
            tuples.push(format!("({})", marks.join(", ")));
        }
        let sql = format!(
            "INSERT INTO outsourced_state_deltas (queue, state, n) VALUES {}",
            tuples.join(", ")
        );
        let backend = db.get_database_backend();
        let statement = Statement::from_sql_and_values(backend, sql, values);
        db.execute_raw(statement).await.map_err(db_error)?;
        Ok(())
    }
}

/// The `n`th placeholder.
fn mark(flavor: Flavor, n: usize) -> String {
    match flavor {
        Flavor::Postgres => format!("${n}"),
        _ => "?".to_owned(),
    }
}

/// The number of jobs per queue (of `queue`, or every queue) and state: the summary and the
/// ledger added up in one statement.
pub(crate) async fn read(backend: &SqlBackend, queue: Option<&str>) -> Result<Vec<StateCount>> {
    let flavor = backend.flavor();
    let (filter, values) = match queue {
        Some(queue) => (
            format!("WHERE queue = {}", mark(flavor, 1)),
            vec![Value::from(queue)],
        ),
        None => (String::new(), Vec::new()),
    };
    let integer = match flavor {
        Flavor::MySql | Flavor::MariaDb => "SIGNED",
        _ => "BIGINT",
    };
    let sql = format!(
        "SELECT queue, state, CAST(SUM(n) AS {integer}) AS n FROM (\
           SELECT queue, state, n FROM outsourced_state_counts {filter} \
           UNION ALL SELECT queue, state, n FROM outsourced_state_deltas {filter}\
         ) AS together GROUP BY queue, state ORDER BY queue, state"
    );
    let mut values = values;
    if queue.is_some() {
        // The second `WHERE` has a placeholder of its own (PostgreSQL's `$1` is used twice).
        if flavor != Flavor::Postgres {
            values.push(values[0].clone());
        }
    }
    let statement = Statement::from_sql_and_values(flavor.backend(), sql, values);
    let rows = (backend.reader().query_all_raw(statement).await).map_err(db_error)?;
    let mut counts = Vec::with_capacity(rows.len());
    for row in rows {
        let queue: String = row.try_get_by_index(0).map_err(db_error)?;
        let state: String = row.try_get_by_index(1).map_err(db_error)?;
        let n: i64 = row.try_get_by_index(2).map_err(db_error)?;
        let state: JobState = (state.parse()).map_err(|_| corrupt(format!("state = {state:?}")))?;
        if n < 0 {
            return Err(corrupt(format!("{n} jobs of queue {queue:?} are {state}")));
        }
        if n > 0 {
            let count = n as u64;
            counts.push(StateCount {
                queue,
                state,
                count,
            });
        }
    }
    Ok(counts)
}

/// Moves the ledger's committed rows into the summary, in one transaction of its own.
pub(crate) async fn fold(backend: &SqlBackend) -> Result<()> {
    let flavor = backend.flavor();
    backend
        .write(|txn| async move {
            let result = fold_in(&txn, flavor).await;
            (txn, result)
        })
        .await
}

async fn fold_in(db: &impl ConnectionTrait, flavor: Flavor) -> Result<()> {
    let run = |sql: String, values: Vec<Value>| async move {
        let statement = Statement::from_sql_and_values(flavor.backend(), sql, values);
        db.execute_raw(statement).await.map_err(db_error).map(drop)
    };
    match flavor {
        // One statement: the rows it deletes are the rows it adds.
        Flavor::Postgres => {
            run(
                "WITH gone AS (DELETE FROM outsourced_state_deltas RETURNING queue, state, n) \
                 INSERT INTO outsourced_state_counts (queue, state, n) \
                 SELECT queue, state, CAST(SUM(n) AS BIGINT) FROM gone GROUP BY queue, state \
                 ON CONFLICT (queue, state) \
                 DO UPDATE SET n = outsourced_state_counts.n + excluded.n"
                    .into(),
                Vec::new(),
            )
            .await
        }
        // The write transaction holds SQLite's one write lock: nothing is added meanwhile.
        Flavor::Sqlite => {
            run(
                "INSERT INTO outsourced_state_counts (queue, state, n) \
                 SELECT queue, state, SUM(n) FROM outsourced_state_deltas WHERE true \
                 GROUP BY queue, state \
                 ON CONFLICT (queue, state) \
                 DO UPDATE SET n = outsourced_state_counts.n + excluded.n"
                    .into(),
                Vec::new(),
            )
            .await?;
            run("DELETE FROM outsourced_state_deltas".into(), Vec::new()).await
        }
        // The rows read under lock are the rows deleted, by id: a row committed meanwhile
        // waits for the next fold.
        Flavor::MySql | Flavor::MariaDb => fold_locked(db, flavor).await,
    }
}

async fn fold_locked(db: &impl ConnectionTrait, flavor: Flavor) -> Result<()> {
    let select = "SELECT id, queue, state, n FROM outsourced_state_deltas ORDER BY id \
                  LIMIT 10000 FOR UPDATE";
    let statement = Statement::from_string(flavor.backend(), select);
    let rows = db.query_all_raw(statement).await.map_err(db_error)?;
    if rows.is_empty() {
        return Ok(());
    }
    let mut ids = Vec::with_capacity(rows.len());
    let mut sums = BTreeMap::<(String, String), i64>::new();
    for row in rows {
        ids.push(
            row.try_get_by_index::<i64>(0)
                .map_err(db_error)?
                .to_string(),
        );
        let queue: String = row.try_get_by_index(1).map_err(db_error)?;
        let state: String = row.try_get_by_index(2).map_err(db_error)?;
        *sums.entry((queue, state)).or_default() +=
            row.try_get_by_index::<i64>(3).map_err(db_error)?;
    }
    for ((queue, state), n) in sums {
        let key = [("queue", Value::from(queue)), ("state", state.into())];
        let table = "outsourced_state_counts";
        crate::dialect::add_to_row(db, flavor, table, &key, &[("n", n)]).await?;
    }
    let sql = format!(
        "DELETE FROM outsourced_state_deltas WHERE id IN ({})",
        ids.join(", ")
    );
    let statement = Statement::from_string(flavor.backend(), sql);
    db.execute_raw(statement).await.map_err(db_error)?;
    Ok(())
}
