//! Places: the semaphore of a queue whose one run limit is `max_running`.
//!
//! Such a queue has `max_running` rows in `outsourced_run_places` (migration 17). A reserve
//! claims free places with `FOR UPDATE SKIP LOCKED`, as it claims jobs, and writes into each
//! the job it starts and that attempt's lease token; a place is free when no job runs under
//! its job and token (a lease token is set exactly while its job runs, and is new at every
//! reserve). So reserves of the queue commit side by side, each with places of its own, where
//! counting running jobs would make them take turns through the commit; and no end of a job
//! has to give its place back: its end is what frees it. A rate or a per-key limit needs the
//! turns (one clock, counts per key), so a queue with either keeps the limits row's lock.
//!
//! Places are made by a reserve, not by the change of limits: a change deletes them, and the
//! next reserve, holding the limits row, counts the jobs that run and makes the places with
//! those jobs in them (`settle`), or, while more run than the limit, counts them again at
//! every reserve until they fit. Places made empty beside running jobs would let a queue run
//! those and as many again (a new user's trial caught 4 of 2 running after `--rate none`).

use sea_orm::sea_query::{CaseStatement, Expr};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect,
    Statement,
};

use crate::dialect::Flavor;
use crate::entity::{job, run_limits, run_place};
use crate::error::db_error;
use outsourced_core::{Result, RunLimits};

/// The most places a queue keeps as rows; a larger `max_running` is counted under the lock.
const MAX_PLACES: u32 = 10_000;

/// Places inserted per statement.
const CHUNK: u32 = 1_000;

/// Whether a queue with these limits keeps its running jobs in places.
pub(crate) fn kept_for(limits: &RunLimits) -> bool {
    let only_max_running = RunLimits {
        max_running: limits.max_running,
        ..RunLimits::default()
    };
    *limits == only_max_running && limits.max_running.is_some_and(|n| n <= MAX_PLACES)
}

/// Gives the queue the places its limits call for, once the jobs that run fit in them (under
/// the queue's limits row's lock, so that no other reserve of the queue starts a job
/// meanwhile): `max_running` places, the first filled with the jobs running now, so that a
/// limit set, changed or left alone by a change of the others counts the jobs that run
/// already. Answers whether the queue keeps places now; while more jobs run than its limit,
/// it does not, and reserves count its running jobs instead.
pub(crate) async fn settle(
    db: &impl ConnectionTrait,
    queue: &str,
    limits: &RunLimits,
) -> Result<bool> {
    delete(db, queue).await?;
    let wanted = match (kept_for(limits), limits.max_running) {
        (true, Some(max)) => max as usize,
        _ => return Ok(false),
    };
    let running: Vec<(i64, Option<String>)> = job::Entity::find()
        .select_only()
        .column(job::Column::Id)
        .column(job::Column::LeaseToken)
        .filter(job::Column::Queue.eq(queue))
        .filter(crate::limits::is_running())
        .into_tuple()
        .all(db)
        .await
        .map_err(db_error)?;
    if running.len() > wanted {
        return Ok(false);
    }
    let mut held = running.into_iter();
    let places: Vec<run_place::ActiveModel> = (0..wanted as i32)
        .map(|place| {
            let (job, token) = held.next().map_or((None, None), |(id, t)| (Some(id), t));
            run_place::ActiveModel {
                queue: Set(queue.to_owned()),
                place: Set(place),
                job_id: Set(job),
                lease_token: Set(token),
            }
        })
        .collect();
    for chunk in places.chunks(CHUNK as usize) {
        run_place::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(db)
            .await
            .map_err(db_error)?;
    }
    run_limits::Entity::update_many()
        .col_expr(run_limits::Column::PlacesKept, Expr::value(true))
        .filter(run_limits::Column::Queue.eq(queue))
        .exec(db)
        .await
        .map_err(db_error)?;
    Ok(true)
}

/// Claims up to `n` free places of `queue`, locked until the commit (skipping those another
/// reserve holds); looked at again once locked where rows are locked, unless `look_again` is
/// false (the caller's next statement does: `pg_batch::claim_in_places`).
pub(crate) async fn claim(
    db: &impl ConnectionTrait,
    flavor: Flavor,
    queue: &str,
    n: u32,
    look_again: bool,
) -> Result<Vec<i32>> {
    let lock = match flavor {
        Flavor::Postgres => " FOR UPDATE OF p SKIP LOCKED",
        Flavor::MariaDb | Flavor::MySql => " FOR UPDATE SKIP LOCKED",
        Flavor::Sqlite => "",
    };
    let sql = format!(
        "SELECT p.place AS place FROM outsourced_run_places p \
         LEFT JOIN outsourced_jobs j ON j.id = p.job_id AND j.lease_token = p.lease_token \
         WHERE p.queue = {} AND j.id IS NULL ORDER BY p.place LIMIT {n}{lock}",
        placeholder(flavor)
    );
    let locked = free(db, flavor, &sql, queue).await?;
    if locked.is_empty() || flavor == Flavor::Sqlite || !look_again {
        return Ok(locked);
    }
    // Looked at again, now that they are ours: a place another reserve filled and committed
    // while this one waited for it was locked in its new version but judged by the old job
    // (PostgreSQL re-checks a locked row against the rows of the snapshot it joined it with),
    // so it may hold a job that runs. A statement of its own sees every commit.
    let list = locked
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT p.place AS place FROM outsourced_run_places p \
         LEFT JOIN outsourced_jobs j ON j.id = p.job_id AND j.lease_token = p.lease_token \
         WHERE p.queue = {} AND j.id IS NULL AND p.place IN ({list}) ORDER BY p.place",
        placeholder(flavor)
    );
    free(db, flavor, &sql, queue).await
}

/// The places a query of free places of `queue` answers.
async fn free(
    db: &impl ConnectionTrait,
    flavor: Flavor,
    sql: &str,
    queue: &str,
) -> Result<Vec<i32>> {
    let statement = Statement::from_sql_and_values(flavor.backend(), sql, [queue.into()]);
    let rows = db.query_all_raw(statement).await.map_err(db_error)?;
    rows.iter()
        .map(|row| row.try_get::<i32>("", "place").map_err(db_error))
        .collect()
}

/// The first bound value's placeholder.
fn placeholder(flavor: Flavor) -> &'static str {
    match flavor {
        Flavor::Postgres => "$1",
        _ => "?",
    }
}

/// Writes into each claimed place the job started in it and the attempt's lease token.
pub(crate) async fn hold(
    db: &impl ConnectionTrait,
    flavor: Flavor,
    queue: &str,
    held: &[(i32, i64, &str)],
) -> Result<()> {
    if held.is_empty() {
        return Ok(());
    }
    if flavor == Flavor::Postgres {
        return hold_joined(db, queue, held).await;
    }
    let (mut jobs, mut tokens) = (CaseStatement::new(), CaseStatement::new());
    for &(place, job, token) in held {
        jobs = jobs.case(run_place::Column::Place.eq(place), job);
        tokens = tokens.case(run_place::Column::Place.eq(place), token);
    }
    let places: Vec<i32> = held.iter().map(|(place, _, _)| *place).collect();
    run_place::Entity::update_many()
        .col_expr(run_place::Column::JobId, Into::<Expr>::into(jobs))
        .col_expr(run_place::Column::LeaseToken, Into::<Expr>::into(tokens))
        .filter(run_place::Column::Queue.eq(queue))
        .filter(run_place::Column::Place.is_in(places))
        .exec(db)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// [`hold`] on PostgreSQL: the places joined to the batch as JSON, where a `CASE` of one branch
/// per place is evaluated for every row (the cost that `pg_batch` removed from the claim).
async fn hold_joined(
    db: &impl ConnectionTrait,
    queue: &str,
    held: &[(i32, i64, &str)],
) -> Result<()> {
    let held: Vec<serde_json::Value> = held
        .iter()
        .map(
            |(place, job, token)| serde_json::json!({ "place": place, "job": job, "token": token }),
        )
        .collect();
    let sql = "UPDATE outsourced_run_places AS p SET job_id = h.job, lease_token = h.token \
         FROM json_to_recordset($2::json) AS h(place integer, job bigint, token text) \
         WHERE p.queue = $1 AND p.place = h.place";
    let values = [
        queue.into(),
        serde_json::Value::Array(held).to_string().into(),
    ];
    let statement = Statement::from_sql_and_values(Flavor::Postgres.backend(), sql, values);
    db.execute_raw(statement).await.map_err(db_error)?;
    Ok(())
}

/// Removes a queue's places (the queue is being deleted).
pub(crate) async fn delete(db: &impl ConnectionTrait, queue: &str) -> Result<()> {
    run_place::Entity::delete_many()
        .filter(run_place::Column::Queue.eq(queue))
        .exec(db)
        .await
        .map_err(db_error)?;
    Ok(())
}
