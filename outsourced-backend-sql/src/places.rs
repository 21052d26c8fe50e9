//! Places: the semaphore of a queue whose one run limit is `max_running`.
//!
//! Such a queue has `max_running` rows in `outsourced_run_places` (migration 17). A reserve
//! claims free places with `FOR UPDATE SKIP LOCKED`, as it claims jobs, and writes into each
//! the job it starts and that attempt's lease token. A place is free when it holds no job: every
//! move of a job out of running empties its place in the same transaction (`free`, from
//! `transition::Writes` and `pg_batch::complete`), dated by `freed_at`. So a place's own row
//! says whether it is free, and a claim judges it by its own columns: PostgreSQL re-checks a
//! locked row's own columns against its newest version, where a place judged by its job's row
//! (the design before migration 25) had to be looked at again in a later statement and joined
//! to its job at every reserve. No index names `job_id`: an end finds its place among its
//! queue's by the primary key's prefix, and a place's writes change no indexed column, so on
//! PostgreSQL they are HOT updates that leave the indexes of this small, busy table alone.
//! Reserves of the queue commit side by side, each with places of its own, where counting
//! running jobs would make them take turns through the commit. On PostgreSQL a reserve of the
//! queue alone claims its places and fills them in its claim's one statement
//! (`pg_batch::claim_in_places`). A rate or a per-key limit needs the turns (one clock, counts
//! per key), so a queue with either keeps the limits row's lock.
//!
//! A claim takes only places freed no later than the starts it dates (`freed_at`): an end
//! committed between the reserve's reading of the clock and its claim is dated after its
//! starts, and the history would show more running at once than the limit.
//!
//! Places are made by a reserve, not by the change of limits: a change deletes them, and the
//! next reserve, holding the limits row, counts the jobs that run and makes the places with
//! those jobs in them (`settle`), or, while more run than the limit, counts them again at
//! every reserve until they fit. Places made empty beside running jobs would let a queue run
//! those and as many again (a new user's trial caught 4 of 2 running after `--rate none`). A
//! job that ends while its place is being made again may leave that place held; the
//! reclaimer's pass empties every place whose job no longer runs under its token (`repair`).

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
                freed_at: Set(0),
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

/// Claims up to `n` places of `queue` free since `now` (epoch ms) or before, locked until the
/// commit (skipping those another reserve holds).
pub(crate) async fn claim(
    db: &impl ConnectionTrait,
    flavor: Flavor,
    queue: &str,
    n: u32,
    now: i64,
) -> Result<Vec<i32>> {
    let lock = match flavor {
        Flavor::Postgres | Flavor::MariaDb | Flavor::MySql => " FOR UPDATE SKIP LOCKED",
        Flavor::Sqlite => "",
    };
    let (queue_at, freed_at) = match flavor {
        Flavor::Postgres => ("$1", "$2"),
        _ => ("?", "?"),
    };
    let sql = format!(
        "SELECT place FROM outsourced_run_places \
         WHERE queue = {queue_at} AND job_id IS NULL AND freed_at <= {freed_at} \
         ORDER BY place LIMIT {n}{lock}"
    );
    let values = [queue.into(), now.into()];
    let statement = Statement::from_sql_and_values(flavor.backend(), sql, values);
    let rows = db.query_all_raw(statement).await.map_err(db_error)?;
    rows.iter()
        .map(|row| row.try_get::<i32>("", "place").map_err(db_error))
        .collect()
}

/// Whether `queue` has a place free since `now` (epoch ms) or before, locked or not.
pub(crate) async fn any_free(db: &impl ConnectionTrait, queue: &str, now: i64) -> Result<bool> {
    let found = run_place::Entity::find()
        .select_only()
        .column(run_place::Column::Place)
        .filter(run_place::Column::Queue.eq(queue))
        .filter(run_place::Column::JobId.is_null())
        .filter(run_place::Column::FreedAt.lte(now))
        .limit(1)
        .into_tuple::<i32>()
        .one(db)
        .await
        .map_err(db_error)?;
    Ok(found.is_some())
}

/// Empties the places of `jobs` of `queue`, which stopped running at `now` (epoch ms), in the
/// transaction that moved them: the one write that gives a place back. Found among the
/// queue's places (none for a queue without places) by the primary key's prefix.
pub(crate) async fn free(
    db: &impl ConnectionTrait,
    queue: &str,
    jobs: &[i64],
    now: i64,
) -> Result<()> {
    if jobs.is_empty() {
        return Ok(());
    }
    emptied(now)
        .filter(run_place::Column::Queue.eq(queue))
        .filter(run_place::Column::JobId.is_in(jobs.iter().copied()))
        .exec(db)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// An update that empties places, freed at `now` (epoch ms): the one shape of a place given
/// back.
fn emptied(now: i64) -> sea_orm::UpdateMany<run_place::Entity> {
    run_place::Entity::update_many()
        .col_expr(run_place::Column::JobId, Expr::value(Option::<i64>::None))
        .col_expr(
            run_place::Column::LeaseToken,
            Expr::value(Option::<String>::None),
        )
        .col_expr(run_place::Column::FreedAt, Expr::value(now))
}

/// Empties, in every queue, the places whose job no longer runs under their token, dated
/// `now` (epoch ms); answers how many. Every end of a job frees its place (`free`); this
/// catches a place made again while its job ended (`settle`), so that none stays held.
pub(crate) async fn repair(db: &impl ConnectionTrait, now: i64) -> Result<u64> {
    let stale = Expr::cust(
        "job_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM outsourced_jobs j \
         WHERE j.id = outsourced_run_places.job_id \
         AND j.lease_token = outsourced_run_places.lease_token AND j.state = 'running')",
    );
    let result = emptied(now)
        .filter(stale)
        .exec(db)
        .await
        .map_err(db_error)?;
    Ok(result.rows_affected)
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
