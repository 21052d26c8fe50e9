//! On PostgreSQL, a queue whose one run limit is `max_running_per_key` serializes its reserves
//! per key instead of on its limits row: a reserve takes a transaction-scoped advisory lock
//! for each key of the jobs it read (`pg_try_advisory_xact_lock`, skipping keys another
//! reserve holds, as `SKIP LOCKED` skips rows), then counts those keys' running jobs in a
//! statement of its own. Every start of a key's job is made holding the key's lock until its
//! commit, so that count sees every start before it; reserves of different keys commit side
//! by side. Two keys whose hashes collide share a lock: one waits for the other's turn, which
//! costs a moment and never passes a limit. A reserve of such a queue alone takes the locks
//! in its candidates' read (`key_claim`).

use std::collections::HashSet;

use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::entity::job;
use crate::error::db_error;
use outsourced_core::{Result, RunLimits};

/// The first half of every key lock's id ("outs"), so that ours stay apart from other
/// advisory locks an application takes with the two-number form.
const NAMESPACE: i32 = 0x6f75_7473;

/// Whether a queue with these limits locks keys rather than its limits row.
pub(crate) fn apply_to(limits: &RunLimits) -> bool {
    let per_key_alone = RunLimits {
        max_running_per_key: limits.max_running_per_key,
        ..RunLimits::default()
    };
    limits.max_running_per_key.is_some() && *limits == per_key_alone
}

/// The condition that takes the lock of the key `key` of the queue `queue` (SQL expressions)
/// for this transaction, false when another holds it: the one shape of a key's lock.
pub(crate) fn try_lock(queue: &str, key: &str) -> String {
    format!("pg_try_advisory_xact_lock({NAMESPACE}, hashtext({queue} || chr(10) || {key}))")
}

/// Keeps the rows without a key and those whose key this transaction could lock (held until
/// its end); leaves out the rest, which other reserves are starting jobs of.
pub(crate) async fn lock(
    db: &impl ConnectionTrait,
    queue: &str,
    rows: Vec<job::Model>,
) -> Result<Vec<job::Model>> {
    let keys: HashSet<&str> = rows
        .iter()
        .filter_map(|row| row.concurrency_key.as_deref())
        .collect();
    if keys.is_empty() {
        return Ok(rows);
    }
    let sql = format!(
        "SELECT k FROM json_array_elements_text($2::json) AS t(k) WHERE {}",
        try_lock("$1", "k")
    );
    let values = [queue.into(), serde_json::json!(keys).to_string().into()];
    let statement = Statement::from_sql_and_values(DbBackend::Postgres, sql, values);
    let answered = db.query_all_raw(statement).await.map_err(db_error)?;
    let held: HashSet<String> = answered
        .iter()
        .map(|row| row.try_get::<String>("", "k").map_err(db_error))
        .collect::<Result<_>>()?;
    Ok(rows
        .into_iter()
        .filter(|row| {
            row.concurrency_key
                .as_ref()
                .is_none_or(|k| held.contains(k))
        })
        .collect())
}
