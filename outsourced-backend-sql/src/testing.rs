//! Hooks for tests (feature `testing`): they stage interleavings that no public call can
//! produce on demand, so that the guard against them is tested on every database.

use std::future::Future;

use sea_orm::EntityTrait;

use crate::backend::SqlBackend;
use crate::entity::job;
use crate::error::db_error;
use outsourced_core::{Actor, Error, JobId, Result};

/// Reclaims job `id`'s expired lease as a reclaimer that read the job, then lost the race to
/// `meanwhile` (say, a worker's completion), would: from the row as read before `meanwhile`.
/// Returns whether the reclaim applied.
///
/// The real reclaimer locks the rows it reads where the database can (`FOR UPDATE SKIP
/// LOCKED`), so this interleaving needs the lock to be missing; the compare-and-set on the
/// job's sequence number is what must still refuse it.
pub async fn reclaim_after<F: Future<Output = ()>>(
    backend: &SqlBackend,
    id: JobId,
    meanwhile: F,
) -> Result<bool> {
    let row = job::Entity::find_by_id(id.0)
        .one(backend.connection())
        .await
        .map_err(db_error)?
        .ok_or(Error::NotFound { id })?;
    meanwhile.await;
    let txn = backend.begin_write().await?;
    let result = crate::reclaim::expire(&txn, &row, &Actor::Reaper, backend.now()).await;
    let expired = backend.finish(txn, result).await?;
    Ok(expired.map(|events| backend.tell(events)).is_some())
}

/// A receiver of the backend's wake-ups: it sees a change whenever this process's long-polling
/// reservers would be told to look again (on PostgreSQL, also at other processes' `NOTIFY`).
pub fn wakeups(backend: &SqlBackend) -> tokio::sync::watch::Receiver<u64> {
    backend.inner.wake.subscribe()
}

/// The database's plan for a reserve's claim query with `opts`: `EXPLAIN (ANALYZE, BUFFERS)`
/// on PostgreSQL (it runs the query, locking nothing beyond the statement), `EXPLAIN` on
/// MariaDB/MySQL, `EXPLAIN QUERY PLAN` on SQLite. One line per row of the answer.
pub async fn reserve_plan(
    backend: &SqlBackend,
    opts: &outsourced_core::ReserveOptions,
) -> Result<Vec<String>> {
    use crate::dialect::Flavor;
    use sea_orm::{ConnectionTrait, QueryTrait};
    let db = backend.connection();
    let flavor = backend.flavor();
    let range = crate::reserve::Range {
        queue: match opts.queues.as_slice() {
            [one] => Some(one.as_str()),
            _ => None,
        },
        class: match opts.classes.as_deref() {
            Some([one]) => Some(one.as_str()),
            _ => None,
        },
        ..Default::default()
    };
    let (limit, now) = (opts.limit, backend.now());
    let select = crate::reserve::claim_select(opts, range, limit, now, Some(flavor));
    let mut statement = select.build(db.get_database_backend());
    let prefix = match flavor {
        Flavor::Postgres => "EXPLAIN (ANALYZE, BUFFERS)",
        Flavor::Sqlite => "EXPLAIN QUERY PLAN",
        Flavor::MariaDb | Flavor::MySql => "EXPLAIN",
    };
    statement.sql = format!("{prefix} {}", statement.sql);
    let rows = db.query_all_raw(statement).await.map_err(db_error)?;
    let line = |row: &sea_orm::QueryResult| -> String {
        let text = |column: &str| {
            let number = || row.try_get::<Option<i64>>("", column).ok().flatten();
            let text = row.try_get::<Option<String>>("", column).ok().flatten();
            text.or_else(|| number().map(|n| n.to_string()))
        };
        match flavor {
            Flavor::Postgres => text("QUERY PLAN").unwrap_or_default(),
            Flavor::Sqlite => text("detail").unwrap_or_default(),
            Flavor::MariaDb | Flavor::MySql => ["table", "type", "key", "rows", "Extra"]
                .iter()
                .map(|c| format!("{c}={}", text(c).unwrap_or_else(|| "-".into())))
                .collect::<Vec<_>>()
                .join(" "),
        }
    };
    Ok(rows.iter().map(line).collect())
}

/// Stores `bytes` as an upload that no job takes, as a process that died half-way through an
/// enqueue leaves one; returns its id.
pub async fn abandoned_upload(backend: &SqlBackend, bytes: Vec<u8>) -> Result<i64> {
    let stored = crate::attachments::store(backend, outsourced_core::Upload::from_bytes(bytes));
    Ok(stored.await?.id)
}

/// Whether the kept counts of jobs per queue and state (`counts.rs`: summary and ledger) are
/// what counting the jobs table gives; says where they differ.
pub async fn counts_agree(backend: &SqlBackend) -> std::result::Result<(), String> {
    let kept = crate::counts::read(backend, None).await;
    let kept = kept.map_err(|e| format!("reading the kept counts: {e}"))?;
    let counted = crate::read::counted(backend, outsourced_core::CountFilter::default()).await;
    let mut counted = counted.map_err(|e| format!("counting the jobs: {e}"))?;
    let mut kept = kept;
    for counts in [&mut kept, &mut counted] {
        counts.sort_by(|a, b| (&a.queue, a.state.as_str()).cmp(&(&b.queue, b.state.as_str())));
    }
    match kept == counted {
        true => Ok(()),
        false => Err(format!(
            "the kept job counts {kept:?} are not the jobs table's {counted:?}"
        )),
    }
}

/// Folds the ledger of job counts into its summary now (as each process does every second)
/// and answers how many ledger rows are left.
pub async fn fold_counts(backend: &SqlBackend) -> Result<i64> {
    use sea_orm::ConnectionTrait;
    crate::counts::fold(backend).await?;
    let db = backend.connection();
    let sql = "SELECT COUNT(*) FROM outsourced_state_deltas";
    let statement = sea_orm::Statement::from_string(db.get_database_backend(), sql);
    let row = db
        .query_one_raw(statement)
        .await
        .map_err(crate::error::db_error)?;
    Ok(row
        .and_then(|row| row.try_get_by_index(0).ok())
        .unwrap_or(-1))
}
