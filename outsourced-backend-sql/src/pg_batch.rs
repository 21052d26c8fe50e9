//! PostgreSQL's hot path: a claim and a completion, each one statement, and new jobs stored
//! with their history rows and counts in one statement (`insert_new`).
//!
//! The claim selects its batch (`FOR UPDATE SKIP LOCKED`), marks it running with a token per
//! job and writes each job's `reserved` history row, in one statement of data-modifying CTEs.
//! The completion of held leases checks each lease in its `UPDATE` (no locking read first),
//! ends the jobs, writes their history rows and gives their queue slots and run places back,
//! in one statement too. Neither statement's text depends on the batch's size (the batch travels as one JSON
//! parameter), so each connection prepares them once.
//!
//! Only `transition` decides states: the state each statement writes is the core's answer for
//! its event, and every row a claim returns is checked against it (a row that would go
//! elsewhere fails the transaction, so nothing is written). A limited queue's batch is chosen
//! by the generic path (the run limits), then leased by the same statement, except that a
//! reserve of one queue that keeps places claims its places and fills them in the claim's own
//! statement, and one of a queue whose one limit is per key chooses in `key_claim` and leases
//! here; the completion empties the places of the jobs it ends. Completions of
//! repeating jobs or of leases no longer held take the generic path, the same on every
//! database.
//!
//! Why: the generic claim's `UPDATE` gave each job its token through a `CASE` of one branch
//! per job, evaluated for every row (47 µs of PostgreSQL's time per job), and the generic
//! completion read and locked its rows before updating them (docs/benchmarks.md, issue 18).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{InsertStatement, PostgresQueryBuilder, SelectStatement};
use sea_orm::{ConnectionTrait, DbBackend, FromQueryResult, QueryResult, Statement, Value};

use crate::convert::{self, duration_ms, ms};
use crate::entity::job;
use crate::error::{backend_error, db_error};
use crate::observe::Events;
use crate::transition::Writes;
use outsourced_core::{
    Actor, Event, JobState, LeaseRef, Reason, Reserved, Result, WorkerInstance, transition,
};

/// A batch leased by one claim, in hand-out order, with the events of its starts.
pub(crate) struct Leased {
    pub(crate) reserved: Vec<Reserved>,
    pub(crate) events: Events,
}

/// Leases the jobs `picked` selects (their `id` and `state`, locked, skipping locked rows) to
/// `by` for `lease`, writing their history rows; `limit` is the most it can select.
pub(crate) async fn claim(
    db: &impl ConnectionTrait,
    picked: SelectStatement,
    by: &WorkerInstance,
    limit: u32,
    now: DateTime<Utc>,
    lease: Duration,
) -> Result<Option<Leased>> {
    let (numbered, values) = numbered(picked, limit, None);
    let chosen = format!("{numbered}, chosen AS (SELECT id, from_state, token FROM numbered)");
    lease_chosen(db, chosen, values, by, now, lease).await
}

/// The CTEs `picked` (the jobs `picked` selects, at most `cap` of them if given: an SQL
/// expression) and `numbered` (`id`, `from_state`, `token` and `n`, their place in hand-out
/// order, each job given the token of its place), with their parameters.
fn numbered(picked: SelectStatement, limit: u32, cap: Option<&str>) -> (String, Vec<Value>) {
    let (select, values) = picked.build(PostgresQueryBuilder);
    // A limit outside the locking read: its rows are locked as they are read, so it locks
    // no more than the cap.
    let select = match cap {
        Some(cap) => format!("SELECT * FROM ({select}) AS capped LIMIT ({cap})"),
        None => select,
    };
    let mut values = values.0;
    let tokens: Vec<String> = (0..limit).map(|_| crate::lease::new_token()).collect();
    values.push(serde_json::json!(tokens).to_string().into());
    let ctes = format!(
        "picked AS ({select}), \
         numbered AS (SELECT p.id, p.state AS from_state, t.token, p.n \
           FROM (SELECT id, state, row_number() OVER () AS n FROM picked) AS p \
           JOIN json_array_elements_text(${}::json) WITH ORDINALITY AS t(token, n) \
             ON t.n = p.n)",
        values.len()
    );
    (ctes, values)
}

/// Leases the jobs `picked` selects (as in [`claim`], at most `limit`) in free places of
/// `queue`, as many as it finds free and not locked by another reserve, filling each with its
/// job and token, in one statement. A place is free when it holds no job (every end of a job
/// empties its place, `places::free`) and was freed no later than these starts: `FOR UPDATE`
/// re-checks that on a place's newest version, so no place is taken twice.
pub(crate) async fn claim_in_places(
    db: &impl ConnectionTrait,
    picked: SelectStatement,
    queue: &str,
    limit: u32,
    by: &WorkerInstance,
    now: DateTime<Utc>,
    lease: Duration,
) -> Result<Option<Leased>> {
    let (numbered, mut values) = numbered(picked, limit, Some("SELECT count(*) FROM free"));
    values.push(queue.into());
    let queue = values.len();
    values.push(ms(now).into());
    let at = values.len();
    // `free` comes first and is worked out once (`MATERIALIZED`): `picked` takes as many jobs
    // as it found places.
    let chosen = format!(
        "free AS MATERIALIZED (SELECT place, row_number() OVER (ORDER BY place) AS n \
           FROM (SELECT place FROM outsourced_run_places \
             WHERE queue = ${queue} AND job_id IS NULL AND freed_at <= ${at} \
             ORDER BY place LIMIT {limit} FOR UPDATE SKIP LOCKED) AS f), \
         {numbered}, \
         chosen AS (SELECT p.id, p.from_state, p.token, f.place FROM numbered AS p \
           JOIN free AS f ON f.n = p.n), \
         held AS (UPDATE outsourced_run_places AS p SET job_id = c.id, lease_token = c.token \
           FROM chosen AS c WHERE p.queue = ${queue} \
             AND p.place = ANY (ARRAY(SELECT place FROM chosen)) AND p.place = c.place)"
    );
    lease_chosen(db, chosen, values, by, now, lease).await
}

/// Leases `jobs` (id and token each), which this transaction has read and locked within the
/// run limits, to `by` for `lease`, writing their history rows: the claim's statement for a
/// batch chosen by the generic path. Fails, leasing none, unless it leases every one.
pub(crate) async fn lease_locked(
    db: &impl ConnectionTrait,
    jobs: &[(i64, &str)],
    by: &WorkerInstance,
    now: DateTime<Utc>,
    lease: Duration,
) -> Result<Option<Leased>> {
    let given: Vec<serde_json::Value> = jobs
        .iter()
        .map(|(id, token)| serde_json::json!({ "id": id, "token": token }))
        .collect();
    let values = vec![serde_json::Value::Array(given).to_string().into()];
    // The ids as an array keep the lookup on the primary key (see `complete`).
    let chosen = "given AS (SELECT * FROM json_to_recordset($1::json) AS g(id bigint, token text)), \
         chosen AS (SELECT j.id, j.state AS from_state, g.token \
           FROM outsourced_jobs AS j JOIN given AS g ON g.id = j.id \
           WHERE j.id = ANY (ARRAY(SELECT id FROM given)))";
    let leased = lease_chosen(db, chosen.to_owned(), values, by, now, lease).await?;
    match leased.as_ref().map_or(0, |l| l.reserved.len()) == jobs.len() {
        true => Ok(leased),
        // Cannot happen while the rows are locked; if it does, nothing is handed out.
        false => Err(backend_error(
            "jobs changed while being reserved; try again",
            true,
        )),
    }
}

/// Leases the jobs of the CTEs `chosen` ends with (`id`, `from_state`, `token`), whose
/// parameters are `values`: marks them running, writes their history rows and the counts'
/// deltas in one statement, and checks each against the transition function.
async fn lease_chosen(
    db: &impl ConnectionTrait,
    chosen: String,
    mut values: Vec<Value>,
    by: &WorkerInstance,
    now: DateTime<Utc>,
    lease: Duration,
) -> Result<Option<Leased>> {
    // What a reserve of a waiting job leads to, by the transition function; every row claimed
    // is checked against it (`checked`), whatever state it waited in.
    let to = transition(JobState::Available, Event::Reserve)
        .map_err(|e| backend_error(format!("reserve: {e}"), false))?;
    let expires_at = now + chrono::Duration::milliseconds(duration_ms(lease));
    let mut param = |value: Value| {
        values.push(value);
        format!("${}", values.len())
    };
    let state = param(to.as_str().into());
    let worker = param(by.worker.as_str().into());
    let instance = param(by.instance.as_str().into());
    let expires = param(ms(expires_at).into());
    let lease_ms = param(duration_ms(lease).into());
    let at = param(ms(now).into());
    let actor = param(Actor::Worker(by.clone()).to_string().into());
    let reason = param(Reason::Reserved.as_str().into());
    let sql = format!(
        "WITH {chosen}, \
         leased AS (UPDATE outsourced_jobs AS j SET state = {state}, waiting = FALSE, \
           attempts = j.attempts + 1, seq = j.seq + 1, lease_token = c.token, \
           lease_worker = {worker}, lease_instance = {instance}, lease_expires_at = {expires}, \
           lease_ms = {lease_ms}, started_at = {at}, updated_at = {at} \
           FROM chosen AS c WHERE j.id = c.id RETURNING j.*, c.from_state), \
         written AS (INSERT INTO outsourced_job_history \
           (job_id, seq, from_state, to_state, at, actor, attempt, reason, lease_token) \
           SELECT id, seq, from_state, state, {at}, {actor}, attempts, {reason}, lease_token \
           FROM leased), \
         counted AS (INSERT INTO outsourced_state_deltas (queue, state, n) \
           SELECT queue, from_state, -count(*) FROM leased GROUP BY queue, from_state \
           UNION ALL SELECT queue, state, count(*) FROM leased GROUP BY queue, state) \
         SELECT * FROM leased"
    );
    let rows = query(db, sql, values).await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut leased = Vec::with_capacity(rows.len());
    for row in rows {
        let from: String = row.try_get("", "from_state").map_err(db_error)?;
        let row = job::Model::from_query_result(&row, "").map_err(db_error)?;
        checked(&row, &from, to)?;
        leased.push(row);
    }
    leased.sort_unstable_by_key(|row| (row.priority, row.run_at, row.id));
    let mut events = Events::default();
    let mut reserved = Vec::with_capacity(leased.len());
    for row in leased {
        let waited = (now - convert::time(row.run_at)).to_std();
        events.started(&row, waited.unwrap_or_default());
        let token = row.lease_token.clone().unwrap_or_default();
        reserved.push(crate::lease::reserved(&row, token, expires_at, by)?);
    }
    Ok(Some(Leased { reserved, events }))
}

/// Fails unless a reserve of a job in state `from` goes to `to`.
fn checked(row: &job::Model, from: &str, to: JobState) -> Result<()> {
    let from: JobState = from
        .parse()
        .map_err(|_| crate::error::corrupt(format!("job {}: state {from:?}", row.id)))?;
    match transition(from, Event::Reserve) {
        Ok(next) if next == to => Ok(()),
        _ => Err(backend_error(
            format!("job {}: a reserve of a {from} job was claimed", row.id),
            false,
        )),
    }
}

/// A success to record: its lease and its result as JSON.
pub(crate) struct Ran<'a> {
    pub(crate) lease: &'a LeaseRef,
    pub(crate) result: Option<&'a str>,
}

/// Completes, in one statement, those of `done` whose leases `by` holds on jobs that do not
/// repeat; answers the leases it completed, and records their events in `events`. The rest
/// (no longer held, unknown, repeating) are left for the generic path to answer.
///
/// A lease is held when the job's token, worker and instance are the lease's: a token is set
/// only by a claim, and every move out of running clears it (`transition::changed_columns`),
/// so a job with a token runs. The state is not in the condition for that reason, and because
/// the planner would then read every running job through the index of running jobs and
/// filter them, a cost that grows with the number of jobs running, instead of looking up the
/// batch's jobs by id. The batch's ids as an array (`= ANY`) keep that lookup by the primary
/// key even on a table without statistics yet, where a join alone was planned as a scan of
/// the whole table.
pub(crate) async fn complete<'a>(
    db: &impl ConnectionTrait,
    by: &WorkerInstance,
    done: &[Ran<'a>],
    now: DateTime<Utc>,
    writes: &mut Writes,
) -> Result<HashSet<&'a LeaseRef>> {
    if done.is_empty() {
        return Ok(HashSet::new());
    }
    let to = transition(JobState::Running, Event::Complete)
        .map_err(|e| backend_error(e.to_string(), false))?;
    debug_assert!(to.is_terminal() && !to.is_live());
    // In id order, so that two statements lock their rows in the same order.
    let mut batch: Vec<&Ran<'_>> = done.iter().collect();
    batch.sort_unstable_by_key(|ran| ran.lease.job_id.0);
    let batch: Vec<serde_json::Value> = batch
        .iter()
        .map(|ran| {
            serde_json::json!({
                "id": ran.lease.job_id.0,
                "token": ran.lease.token,
                "result": ran.result,
            })
        })
        .collect();
    let values: Vec<Value> = vec![
        serde_json::Value::Array(batch).to_string().into(),
        to.as_str().into(),
        ms(now).into(),
        by.worker.as_str().into(),
        by.instance.as_str().into(),
        Actor::Worker(by.clone()).to_string().into(),
        Reason::Completed.as_str().into(),
        JobState::Running.as_str().into(),
    ];
    let sql = "WITH done AS (SELECT * FROM json_to_recordset($1::json) \
           AS d(id bigint, token text, result text)), \
         ended AS (UPDATE outsourced_jobs AS j SET state = $2, updated_at = $3, \
           finished_at = $3, seq = j.seq + 1, lease_token = NULL, lease_worker = NULL, \
           lease_instance = NULL, lease_expires_at = NULL, lease_ms = NULL \
           FROM done AS d \
           WHERE j.id = ANY (ARRAY(SELECT id FROM done)) AND j.id = d.id \
             AND j.lease_token = d.token \
             AND j.lease_worker = $4 AND j.lease_instance = $5 AND j.repeat IS NULL \
           RETURNING j.id, j.seq, j.queue, j.class, j.attempts, j.started_at, \
             j.has_dependants, j.batch_id, d.token, d.result), \
         written AS (INSERT INTO outsourced_job_history \
           (job_id, seq, from_state, to_state, at, actor, attempt, reason, lease_token, result) \
           SELECT id, seq, $8, $2, $3, $6, attempts, $7, token, result FROM ended), \
         freed AS (INSERT INTO outsourced_queue_freed (queue, n) \
           SELECT queue, count(*) FROM ended GROUP BY queue), \
         placed AS (UPDATE outsourced_run_places AS p SET job_id = NULL, lease_token = NULL, \
           freed_at = $3 WHERE p.queue = ANY (ARRAY(SELECT DISTINCT queue FROM ended)) \
             AND p.job_id = ANY (ARRAY(SELECT id FROM ended))), \
         counted AS (INSERT INTO outsourced_state_deltas (queue, state, n) \
           SELECT queue, $8, -count(*) FROM ended GROUP BY queue \
           UNION ALL SELECT queue, $2, count(*) FROM ended GROUP BY queue) \
         SELECT id, queue, class, started_at, has_dependants, batch_id, token FROM ended";
    let rows = query(db, sql, values).await?;
    let leases: HashMap<(i64, &str), &'a LeaseRef> = done
        .iter()
        .map(|ran| ((ran.lease.job_id.0, ran.lease.token.as_str()), ran.lease))
        .collect();
    let mut ended = HashSet::new();
    let actor = Actor::Worker(by.clone());
    for row in rows {
        let id: i64 = row.try_get("", "id").map_err(db_error)?;
        let token: String = row.try_get("", "token").map_err(db_error)?;
        let queue: String = row.try_get("", "queue").map_err(db_error)?;
        let class: String = row.try_get("", "class").map_err(db_error)?;
        let started: Option<i64> = row.try_get("", "started_at").map_err(db_error)?;
        let ran = started
            .map(|started| (now - convert::time(started)).to_std().unwrap_or_default())
            .unwrap_or_default();
        writes.events().completed(queue, class, ran);
        // Read as the update left it: a dependant's enqueue that marked the job first was
        // waited for.
        let has_dependants: bool = row.try_get("", "has_dependants").map_err(db_error)?;
        if has_dependants {
            writes.ended(id, to, &actor, now);
        }
        let batch: Option<i64> = row.try_get("", "batch_id").map_err(db_error)?;
        if let Some(batch) = batch {
            writes.batch_end(batch, to, 1, &actor, now);
        }
        let lease = leases
            .get(&(id, token.as_str()))
            .ok_or_else(|| backend_error(format!("job {id} completed for no lease"), false))?;
        ended.insert(*lease);
    }
    Ok(ended)
}

/// Runs one of these statements.
async fn query(
    db: &impl ConnectionTrait,
    sql: impl Into<String>,
    values: Vec<Value>,
) -> Result<Vec<QueryResult>> {
    let statement = Statement::from_sql_and_values(DbBackend::Postgres, sql, values);
    db.query_all_raw(statement).await.map_err(db_error)
}

/// Inserts new jobs (`insert`, an insert of job rows without `RETURNING`), their first history
/// rows (`by[i]` enqueued the `i`th row, at `now`) and the counts' deltas in one statement,
/// where three round trips were made (an enqueue's group commit holds its queue's row for
/// all of them). Answers the rows' ids in the order of the insert's rows: a multi-row insert
/// draws its ids from the sequence in that order, and the statement numbers them by id.
pub(crate) async fn insert_new(
    db: &impl ConnectionTrait,
    insert: InsertStatement,
    by: &[&Actor],
    now: DateTime<Utc>,
) -> Result<Vec<i64>> {
    let (insert, values) = insert.build(PostgresQueryBuilder);
    let mut values = values.0;
    let mut param = |value: Value| {
        values.push(value);
        format!("${}", values.len())
    };
    let actors: Vec<String> = by.iter().map(ToString::to_string).collect();
    let actors = param(serde_json::json!(actors).to_string().into());
    let at = param(ms(now).into());
    let reason = param(Reason::Enqueued.as_str().into());
    let sql = format!(
        "WITH ins AS ({insert} RETURNING id, queue, state), \
         numbered AS (SELECT id, queue, state, row_number() OVER (ORDER BY id) AS n FROM ins), \
         written AS (INSERT INTO outsourced_job_history \
           (job_id, seq, to_state, at, actor, attempt, reason) \
           SELECT j.id, 1, j.state, {at}, a.actor, 0, {reason} FROM numbered AS j \
           JOIN json_array_elements_text({actors}::json) WITH ORDINALITY AS a(actor, n) \
             ON a.n = j.n), \
         counted AS (INSERT INTO outsourced_state_deltas (queue, state, n) \
           SELECT queue, state, count(*) FROM ins GROUP BY queue, state) \
         SELECT id FROM numbered ORDER BY n"
    );
    let rows = query(db, sql, values).await?;
    let ids: Vec<i64> = rows
        .iter()
        .map(|row| row.try_get_by_index::<i64>(0).map_err(db_error))
        .collect::<Result<_>>()?;
    match ids.len() == by.len() {
        true => Ok(ids),
        false => Err(backend_error(
            "the insert returned fewer rows than jobs",
            false,
        )),
    }
}
