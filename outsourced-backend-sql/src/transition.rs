//! Applying a job's transition: a compare-and-set of the job row on its sequence number, its
//! history rows, and its queue slot, all in the caller's transaction.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Value};

use crate::batches::{self, Counted};
use crate::convert::{self, ms};
use crate::counts::Deltas;
use crate::dependencies::{self, Ended};
use crate::entity::{history, job};
use crate::error::{backend_error, db_error};
use crate::observe::Events;
use crate::slots;
use outsourced_core::{
    Actor, Error, ErrorInfo, Event, JobId, JobState, Reason, Result, transition,
};

/// One history row's worth of change.
pub(crate) struct Step<'a> {
    /// The event, checked by the core's transition function; `None` leaves the state as it is
    /// (a cancel request on a running job).
    pub(crate) event: Option<Event>,
    /// Why.
    pub(crate) reason: Reason,
    /// The attempt it belongs to.
    pub(crate) attempt: u32,
    /// The error of a failed attempt.
    pub(crate) error: Option<&'a ErrorInfo>,
    /// The lease it concerns.
    pub(crate) token: Option<&'a str>,
    /// The result of a succeeded attempt, as JSON.
    pub(crate) result: Option<&'a str>,
}

/// A change of one job as read in `row`: one or more steps (a completion and its repeat are
/// two), plus column updates.
pub(crate) struct Transition<'a> {
    pub(crate) row: &'a job::Model,
    pub(crate) actor: &'a Actor,
    pub(crate) steps: Vec<Step<'a>>,
    pub(crate) set: Vec<(job::Column, Value)>,
}

impl Transition<'_> {
    /// Applies the change if the job is still as read (same sequence number) and returns its
    /// events (to tell after the commit), or `None` when the job changed. Taking a queue slot
    /// back can fail with `QueueFull` or `UnknownQueue`; the caller then drops the
    /// transaction, so nothing is changed.
    pub(crate) async fn apply(
        self,
        db: &impl ConnectionTrait,
        now: DateTime<Utc>,
    ) -> Result<Option<Events>> {
        let mut writes = Writes::default();
        let applied = self.apply_deferred(db, now, &mut writes).await?;
        let events = writes.flush(db).await?;
        Ok(applied.then_some(events))
    }

    /// Like [`apply`](Self::apply), but leaves the history rows and the freed queue slots in
    /// `writes`, so that a batch writes them in one statement each.
    pub(crate) async fn apply_deferred(
        self,
        db: &impl ConnectionTrait,
        now: DateTime<Utc>,
        writes: &mut Writes,
    ) -> Result<bool> {
        let from = convert::state(self.row)?;
        let states = states(self.row, from, &self.steps)?;
        let to = states.last().copied().unwrap_or(from);
        let steps = self.steps.len() as i32;
        let update = changed_columns(job::Entity::update_many(), from, to, now, self.set)
            .col_expr(job::Column::Seq, Expr::value(self.row.seq + steps));
        // `has_dependants` too: a dependant's enqueue sets it without a history row, and a
        // change that read it unset must not end the job without settling that dependant.
        let result = update
            .filter(job::Column::Id.eq(self.row.id))
            .filter(job::Column::Seq.eq(self.row.seq))
            .filter(job::Column::HasDependants.eq(self.row.has_dependants))
            .exec(db)
            .await
            .map_err(db_error)?;
        if result.rows_affected == 0 {
            return Ok(false);
        }
        if !from.is_live() && to.is_live() {
            slots::take(db, &self.row.queue, 1, None).await?;
        }
        writes.record(self.row, from, &self.steps, &states, now, self.actor);
        Ok(true)
    }
}

/// How often a change is tried again when the job changed between its read and its write.
pub(crate) const CAS_TRIES: usize = 5;

/// A compare-and-set change with its retries, the one loop every single-job change runs:
/// `attempt` reads the job afresh and tries its change, answering `Some` once it is done (or
/// needs doing no more) and `None` when a concurrent change took the job's `seq` first. After
/// [`CAS_TRIES`] of those, the job is `contended` (retryable).
pub(crate) async fn until_applied<T, F, Fut>(id: JobId, mut attempt: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    for _ in 0..CAS_TRIES {
        if let Some(done) = attempt().await? {
            return Ok(done);
        }
    }
    Err(crate::lease::contended(id))
}

/// The same one-step change of many jobs, all read in the same state under a lock that holds
/// until the transaction ends (`FOR UPDATE`, or SQLite's write lock), made with one `UPDATE`.
/// The lock stands in for the compare-and-set: no row can have changed since it was read, and
/// the count of rows changed is checked all the same.
pub(crate) struct BatchTransition<'a> {
    /// The rows as read, each in `from`, with its step (the same event for all).
    pub(crate) rows: Vec<(&'a job::Model, Step<'a>)>,
    pub(crate) from: JobState,
    pub(crate) event: Event,
    pub(crate) actor: &'a Actor,
}

impl BatchTransition<'_> {
    /// Applies the change, leaving history rows and freed slots in `writes`. The new state
    /// must not take a queue slot (only an admin's retry does, one job at a time).
    pub(crate) async fn apply_deferred(
        self,
        db: &impl ConnectionTrait,
        now: DateTime<Utc>,
        writes: &mut Writes,
    ) -> Result<()> {
        let Some((first, _)) = self.rows.first() else {
            return Ok(());
        };
        let to = transition(self.from, self.event).map_err(|e| Error::InvalidTransition {
            id: JobId(first.id),
            from: e.from,
            event: e.event,
        })?;
        debug_assert!(self.from.is_live() || !to.is_live());
        let ids: Vec<i64> = self.rows.iter().map(|(row, _)| row.id).collect();
        let result = changed_columns(job::Entity::update_many(), self.from, to, now, Vec::new())
            .col_expr(job::Column::Seq, Expr::col(job::Column::Seq).add(1))
            // By id alone: with `state` in the condition MariaDB walks the `(state, id)`
            // index, whose entries this very update moves, and deadlocks with concurrent
            // claims. The rows are locked; the count below checks them.
            .filter(job::Column::Id.is_in(ids))
            .exec(db)
            .await
            .map_err(db_error)?;
        if result.rows_affected != self.rows.len() as u64 {
            // Cannot happen while the rows are locked; if it does, the caller's transaction
            // is rolled back and nothing changes.
            return Err(backend_error(
                "jobs changed while locked for a batch update; try again",
                true,
            ));
        }
        for (row, step) in &self.rows {
            let steps = std::slice::from_ref(step);
            writes.record(row, self.from, steps, &[to], now, self.actor);
        }
        Ok(())
    }
}

/// The state after each step, each move checked by the core's transition function.
fn states(row: &job::Model, from: JobState, steps: &[Step<'_>]) -> Result<Vec<JobState>> {
    let mut state = from;
    let mut states = Vec::with_capacity(steps.len());
    for step in steps {
        if let Some(event) = step.event {
            state = transition(state, event).map_err(|e| Error::InvalidTransition {
                id: JobId(row.id),
                from: e.from,
                event: e.event,
            })?;
        }
        states.push(state);
    }
    Ok(states)
}

/// Sets the columns a move from `from` to `to` changes, and `set`. Only those: SQLite rewrites
/// the entries of every index on a column the `UPDATE` names, changed or not, so naming
/// `waiting` or the lease columns needlessly would cost index writes on the hot path.
fn changed_columns(
    update: sea_orm::UpdateMany<job::Entity>,
    from: JobState,
    to: JobState,
    now: DateTime<Utc>,
    set: Vec<(job::Column, Value)>,
) -> sea_orm::UpdateMany<job::Entity> {
    let mut update = update
        .col_expr(job::Column::State, Expr::value(to.as_str()))
        .col_expr(job::Column::UpdatedAt, Expr::value(ms(now)));
    if to.is_waiting() != from.is_waiting() {
        update = update.col_expr(job::Column::Waiting, Expr::value(to.is_waiting()));
    }
    if to.is_terminal() != from.is_terminal() {
        let finished = to.is_terminal().then(|| ms(now));
        update = update.col_expr(job::Column::FinishedAt, Expr::value(finished));
    }
    // A lease exists exactly while the job runs, so only a move out of running drops one.
    if from == JobState::Running && to != JobState::Running {
        update = clear_lease(update);
    }
    for (column, value) in set {
        update = update.col_expr(column, Expr::value(value));
    }
    update
}

/// Writes that a batch of transitions collects and makes in one statement each, and the
/// events they make.
#[derive(Default)]
pub(crate) struct Writes {
    history: Vec<history::ActiveModel>,
    /// Queue slots freed, by queue.
    freed: BTreeMap<String, u64>,
    /// Jobs that stopped running, by queue, whose run places (if any) are given back, and
    /// when.
    stopped: BTreeMap<String, Vec<i64>>,
    stopped_at: i64,
    /// Jobs per queue and state, changed.
    deltas: Deltas,
    events: Events,
    /// Jobs with dependants that ended, to settle before the commit.
    ended: Vec<Ended>,
    /// Jobs of batches that ended (or were revived), to count before the commit.
    counted: Vec<Counted>,
}

impl Writes {
    /// Notes what a change of `row` from `from` through `steps` (reaching `states`) writes
    /// besides the row: its history rows and a freed slot, and its events for the observer.
    fn record(
        &mut self,
        row: &job::Model,
        from: JobState,
        steps: &[Step<'_>],
        states: &[JobState],
        now: DateTime<Utc>,
        actor: &Actor,
    ) {
        let to = states.last().copied().unwrap_or(from);
        if from == JobState::Running && to != JobState::Running {
            self.stopped
                .entry(row.queue.clone())
                .or_default()
                .push(row.id);
            self.stopped_at = std::cmp::Ord::max(self.stopped_at, ms(now));
        }
        if from.is_live() && !to.is_live() {
            *self.freed.entry(row.queue.clone()).or_default() += 1;
            if row.has_dependants {
                self.ended(row.id, to, actor, now);
            }
        }
        if let Some(batch) = row.batch_id {
            match (from.is_live(), to.is_live()) {
                (true, false) => self.batch_end(batch, to, 1, actor, now),
                // An admin's retry of a job that ended: its end no longer counts.
                (false, true) => self.batch_end(batch, from, -1, actor, now),
                _ => {}
            }
        }
        self.deltas.moved(&row.queue, Some(from), Some(to));
        for event in steps.iter().filter_map(|step| step.event) {
            self.events.step(row, event, now);
        }
        let mut before = from;
        for (seq, (step, &to)) in (row.seq + 1..).zip(steps.iter().zip(states)) {
            let history = history_row(row.id, seq, Some(before), to, step, now, actor);
            self.history.push(history);
            before = to;
        }
    }

    /// Job `id`, which has dependants, ended in `state` (by `actor`, at `at`).
    pub(crate) fn ended(&mut self, id: i64, state: JobState, actor: &Actor, at: DateTime<Utc>) {
        self.ended.push(Ended {
            id,
            state,
            actor: actor.clone(),
            at,
        });
    }

    /// A job of batch `batch` ended in `end` (`delta` 1), or left it (-1).
    pub(crate) fn batch_end(
        &mut self,
        batch: i64,
        end: JobState,
        delta: i64,
        actor: &Actor,
        at: DateTime<Utc>,
    ) {
        self.counted.push(Counted {
            batch,
            end,
            delta,
            actor: actor.clone(),
            at,
        });
    }

    /// The events of changes written already, to tell with these.
    pub(crate) fn events(&mut self) -> &mut Events {
        &mut self.events
    }

    /// Inserts the history rows and gives the freed slots and run places back; answers the
    /// events, to tell once the transaction commits.
    pub(crate) async fn flush(mut self, db: &impl ConnectionTrait) -> Result<Events> {
        // Settling may end dependants that have dependants of their own, or belong to
        // batches; and a batch's end makes its callback runnable: until nothing is left.
        while !self.ended.is_empty() || !self.counted.is_empty() {
            let ended = std::mem::take(&mut self.ended);
            dependencies::settle(db, ended, &mut self).await?;
            let counted = std::mem::take(&mut self.counted);
            batches::settle(db, counted, &mut self).await?;
        }
        for (queue, n) in &self.freed {
            slots::free(db, queue, *n).await?;
        }
        for (queue, jobs) in &self.stopped {
            crate::places::free(db, queue, jobs, self.stopped_at).await?;
        }
        insert_history(db, self.history).await?;
        self.deltas.write(db).await?;
        Ok(self.events)
    }
}

/// Drops the lease columns: a lease exists exactly while the job runs.
fn clear_lease(update: sea_orm::UpdateMany<job::Entity>) -> sea_orm::UpdateMany<job::Entity> {
    let none_text = || Expr::value(Option::<String>::None);
    let none_int = || Expr::value(Option::<i64>::None);
    update
        .col_expr(job::Column::LeaseToken, none_text())
        .col_expr(job::Column::LeaseWorker, none_text())
        .col_expr(job::Column::LeaseInstance, none_text())
        .col_expr(job::Column::LeaseExpiresAt, none_int())
        .col_expr(job::Column::LeaseMs, none_int())
}

/// A history row for `step` of job `job_id`, numbered `seq`, from `from` to `to`.
pub(crate) fn history_row(
    job_id: i64,
    seq: i32,
    from: Option<JobState>,
    to: JobState,
    step: &Step<'_>,
    at: DateTime<Utc>,
    actor: &Actor,
) -> history::ActiveModel {
    let error = step.error;
    history::ActiveModel {
        job_id: Set(job_id),
        seq: Set(seq),
        from_state: Set(from.map(|s| s.as_str().to_owned())),
        to_state: Set(to.as_str().to_owned()),
        at: Set(ms(at)),
        actor: Set(actor.to_string()),
        attempt: Set(step.attempt as i32),
        reason: Set(step.reason.as_str().to_owned()),
        lease_token: Set(step.token.map(str::to_owned)),
        error_message: Set(error.map(|e| e.message.clone())),
        error_causes: Set(error.map(|e| serde_json::json!(e.causes).to_string())),
        error_backtrace: Set(error.and_then(|e| e.backtrace.clone())),
        result: Set(step.result.map(str::to_owned)),
    }
}

/// History rows per insert statement, well under every database's limit on bound parameters.
const HISTORY_CHUNK: usize = 1000;

/// Inserts history rows, a chunk per statement.
pub(crate) async fn insert_history(
    db: &impl ConnectionTrait,
    rows: Vec<history::ActiveModel>,
) -> Result<()> {
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<_> = rows.by_ref().take(HISTORY_CHUNK).collect();
        history::Entity::insert_many(chunk)
            .exec_without_returning(db)
            .await
            .map_err(db_error)?;
    }
    Ok(())
}
