//! A rate of starts per concurrency key: each key that started a job lately has a clock, the
//! earliest time its next job may start (`outsourced_key_rates`, migration 23).
//!
//! Only reserves of the queue read or write its clocks, and they hold the queue's limits row
//! (`FOR UPDATE`; SQLite's writer lock) while they do: a reserve leaves out the jobs of keys
//! whose time has not come, starts at most one job of each key, and sets those keys' clocks
//! one interval on. Nothing is saved up: a key's row is deleted once its time has come (by the
//! next reserve of the queue), so a key quiet for an hour starts one job, not sixty.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QuerySelect,
};

use crate::entity::key_rate;
use crate::error::db_error;
use outsourced_core::Result;

/// The condition that leaves out the jobs of keys whose clock has not come to `now`. `now` is
/// a number of ours, written in the text (a bound value's placeholder differs between the
/// databases).
pub(crate) fn due(now: i64) -> sea_orm::sea_query::SimpleExpr {
    Expr::cust(format!(
        "(concurrency_key IS NULL OR NOT EXISTS (SELECT 1 FROM outsourced_key_rates k \
         WHERE k.queue = outsourced_jobs.queue AND k.concurrency_key = outsourced_jobs.concurrency_key \
         AND k.next_at > {now}))"
    ))
}

/// Records that `keys` (each once, at least one) started a job of `queue` at `now`: their next may start
/// `interval` ms later. Deletes the clocks whose time has come on the way, so that the table
/// holds only keys held back now.
pub(crate) async fn started(
    db: &impl ConnectionTrait,
    queue: &str,
    keys: &[&str],
    interval: i64,
    now: i64,
) -> Result<()> {
    let stale = Condition::any()
        .add(key_rate::Column::NextAt.lte(now))
        .add(key_rate::Column::ConcurrencyKey.is_in(keys.iter().copied()));
    key_rate::Entity::delete_many()
        .filter(key_rate::Column::Queue.eq(queue))
        .filter(stale)
        .exec(db)
        .await
        .map_err(db_error)?;
    let rows = keys.iter().map(|&key| key_rate::ActiveModel {
        queue: Set(queue.to_owned()),
        concurrency_key: Set(key.to_owned()),
        next_at: Set(now + interval),
    });
    key_rate::Entity::insert_many(rows)
        .exec_without_returning(db)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// The earliest time a key of `queue` held back now may start its next job.
pub(crate) async fn next_at(
    db: &impl ConnectionTrait,
    queue: &str,
    now: i64,
) -> Result<Option<i64>> {
    let next: Option<Option<i64>> = key_rate::Entity::find()
        .select_only()
        .column_as(key_rate::Column::NextAt.min(), "next")
        .filter(key_rate::Column::Queue.eq(queue))
        .filter(key_rate::Column::NextAt.gt(now))
        .into_tuple()
        .one(db)
        .await
        .map_err(db_error)?;
    Ok(next.flatten())
}

/// Forgets every clock of `queue` (its rate per key was lifted, or the queue deleted).
pub(crate) async fn forget(db: &impl ConnectionTrait, queue: &str) -> Result<()> {
    key_rate::Entity::delete_many()
        .filter(key_rate::Column::Queue.eq(queue))
        .exec(db)
        .await
        .map_err(db_error)?;
    Ok(())
}
