//! Queue slots: the guarded count of live jobs that keeps bounded queues exact.
//!
//! Taking slots is one `UPDATE ... SET live = live + n WHERE live + n <= limit`, inside the
//! transaction that inserts or revives the jobs: the database's row lock on the queue makes
//! concurrent producers take turns, so a queue never goes one job over its limit.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, InsertStatement};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter, QueryTrait,
};

use crate::convert::ms;
use crate::dialect::{Flavor, insert_if_absent};
use crate::entity::queue;
use crate::error::db_error;
use outsourced_core::{DEFAULT_QUEUE_LIMIT, Error, Result};

/// Takes `n` slots of `queue`, or fails with `QueueFull` or `UnknownQueue`. With `create`, an
/// unknown queue is first created with the default limit, stamped with that time.
pub(crate) async fn take(
    db: &impl ConnectionTrait,
    name: &str,
    n: u64,
    create: Option<(DateTime<Utc>, Flavor)>,
) -> Result<()> {
    if try_take(db, name, n).await? {
        return Ok(());
    }
    match queue::Entity::find_by_id(name)
        .one(db)
        .await
        .map_err(db_error)?
    {
        Some(q) => Err(Error::QueueFull {
            queue: name.to_owned(),
            limit: u64::try_from(q.max_live.unwrap_or(i64::MAX)).unwrap_or(0),
        }),
        None if let Some((now, flavor)) = create => {
            insert_default(db, flavor, name, now).await?;
            if try_take(db, name, n).await? {
                return Ok(());
            }
            Err(Error::QueueFull {
                queue: name.to_owned(),
                limit: DEFAULT_QUEUE_LIMIT,
            })
        }
        None => Err(Error::UnknownQueue {
            queue: name.to_owned(),
        }),
    }
}

/// The guarded increment; false when the queue is unknown or has too few free slots.
async fn try_take(db: &impl ConnectionTrait, name: &str, n: u64) -> Result<bool> {
    let n = n as i64;
    let fits = Condition::any().add(queue::Column::MaxLive.is_null()).add(
        Expr::col(queue::Column::Live)
            .add(n)
            .lte(Expr::col(queue::Column::MaxLive)),
    );
    let result = queue::Entity::update_many()
        .col_expr(queue::Column::Live, Expr::col(queue::Column::Live).add(n))
        .filter(queue::Column::Name.eq(name))
        .filter(fits)
        .exec(db)
        .await
        .map_err(db_error)?;
    Ok(result.rows_affected == 1)
}

/// Creates a queue with the default limit; a concurrent creation of the same queue is fine
/// (and, with `ON CONFLICT DO NOTHING`, does not abort a PostgreSQL transaction).
async fn insert_default(
    db: &impl ConnectionTrait,
    flavor: Flavor,
    name: &str,
    now: DateTime<Utc>,
) -> Result<()> {
    let row = queue_row(name, Some(DEFAULT_QUEUE_LIMIT as i64), now);
    insert_if_absent(db, flavor, row).await?;
    Ok(())
}

/// The insert of a new, empty queue.
pub(crate) fn queue_row(name: &str, max_live: Option<i64>, now: DateTime<Utc>) -> InsertStatement {
    let row = queue::ActiveModel {
        name: Set(name.to_owned()),
        max_live: Set(max_live),
        live: Set(0),
        paused: Set(false),
        created_at: Set(ms(now)),
        retention_ms: Set(None),
    };
    queue::Entity::insert(row).into_query()
}

/// Gives back `n` slots of `queue` (a job finished). A deleted queue has nothing to give back.
pub(crate) async fn free(db: &impl ConnectionTrait, name: &str, n: u64) -> Result<()> {
    queue::Entity::update_many()
        .col_expr(
            queue::Column::Live,
            Expr::col(queue::Column::Live).sub(n as i64),
        )
        .filter(queue::Column::Name.eq(name))
        .exec(db)
        .await
        .map_err(db_error)?;
    Ok(())
}
