//! Applying a job's transition: a compare-and-set of the job row on its sequence number, its
//! history rows, and its queue slot, all in the caller's transaction.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Value};

use crate::convert::{self, ms};
use crate::entity::{history, job};
use crate::error::db_error;
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
    /// Applies the change if the job is still as read (same sequence number) and returns
    /// whether it did. Taking a queue slot back can fail with `QueueFull` or `UnknownQueue`; the
    /// caller then drops the transaction, so nothing is changed.
    pub(crate) async fn apply(self, db: &impl ConnectionTrait, now: DateTime<Utc>) -> Result<bool> {
        let mut writes = Writes::default();
        let applied = self.apply_deferred(db, now, &mut writes).await?;
        writes.flush(db).await?;
        Ok(applied)
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
        let states = self.states(from)?;
        let to = states.last().copied().unwrap_or(from);
        let mut update = job::Entity::update_many()
            .col_expr(job::Column::State, Expr::value(to.as_str()))
            .col_expr(job::Column::Waiting, Expr::value(to.is_waiting()))
            .col_expr(
                job::Column::Seq,
                Expr::value(self.row.seq + self.steps.len() as i32),
            )
            .col_expr(job::Column::UpdatedAt, Expr::value(ms(now)));
        if to.is_terminal() != from.is_terminal() {
            let finished = to.is_terminal().then(|| ms(now));
            update = update.col_expr(job::Column::FinishedAt, Expr::value(finished));
        }
        if to != JobState::Running {
            update = clear_lease(update);
        }
        for (column, value) in self.set {
            update = update.col_expr(column, Expr::value(value));
        }
        let result = update
            .filter(job::Column::Id.eq(self.row.id))
            .filter(job::Column::Seq.eq(self.row.seq))
            .exec(db)
            .await
            .map_err(db_error)?;
        if result.rows_affected == 0 {
            return Ok(false);
        }
        if from.is_live() && !to.is_live() {
            *writes.freed.entry(self.row.queue.clone()).or_default() += 1;
        } else if !from.is_live() && to.is_live() {
            slots::take(db, &self.row.queue, 1, None).await?;
        }
        for event in self.steps.iter().filter_map(|step| step.event) {
            crate::observe::record_step(self.row, event, now);
        }
        let mut before = from;
        for (seq, (step, &to)) in (self.row.seq + 1..).zip(self.steps.iter().zip(&states)) {
            let row = history_row(self.row.id, seq, Some(before), to, step, now, self.actor);
            writes.history.push(row);
            before = to;
        }
        Ok(true)
    }

    /// The state after each step, each move checked by the core's transition function.
    fn states(&self, from: JobState) -> Result<Vec<JobState>> {
        let mut state = from;
        let mut states = Vec::with_capacity(self.steps.len());
        for step in &self.steps {
            if let Some(event) = step.event {
                state = transition(state, event).map_err(|e| Error::InvalidTransition {
                    id: JobId(self.row.id),
                    from: e.from,
                    event: e.event,
                })?;
            }
            states.push(state);
        }
        Ok(states)
    }
}

/// Writes that a batch of transitions collects and makes in one statement each.
#[derive(Default)]
pub(crate) struct Writes {
    history: Vec<history::ActiveModel>,
    /// Queue slots freed, by queue.
    freed: BTreeMap<String, u64>,
}

impl Writes {
    /// Inserts the history rows and gives the freed slots back.
    pub(crate) async fn flush(self, db: &impl ConnectionTrait) -> Result<()> {
        for (queue, n) in &self.freed {
            slots::free(db, queue, *n).await?;
        }
        insert_history(db, self.history).await
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
