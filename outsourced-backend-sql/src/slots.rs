//! Queue slots: the guarded count of live jobs that keeps bounded queues exact.
//!
//! Taking slots is one `UPDATE ... SET live = live + n WHERE live + n <= limit`, inside the
//! transaction that inserts or revives the jobs: the database's row lock on the queue makes
//! concurrent producers take turns, so a queue never goes one job over its limit.
//!
//! Giving slots back does not touch the queue's row: a transaction that ends jobs writes a row
//! of its own in the ledger of freed slots. Decrementing the count held the queue's row lock
//! until the commit, so every end of a job in that queue waited for the one before it to
//! commit (the whole burn-down ran one commit at a time). The count is therefore never below
//! the live jobs and may be above them by what the ledger holds; a take that finds the queue
//! full folds the ledger's committed rows into the count and tries again, so a queue with room
//! by what has committed always has room. Workers fold every ledger now and then (with the
//! reclaimer), so that it stays short.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::LockType;
use sea_orm::sea_query::{Expr, ExprTrait, InsertStatement};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, QueryTrait,
};

use crate::backend::SqlBackend;
use crate::convert::ms;
use crate::dialect::{Flavor, insert_if_absent};
use crate::entity::{queue, queue_freed};
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
    while fold(db, name).await? > 0 {
        if try_take(db, name, n).await? {
            return Ok(());
        }
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

/// Gives back `n` slots of `queue` (jobs finished): a row in the ledger, folded into the count
/// later. A deleted queue's rows are never folded (a queue is deleted only once it is empty).
pub(crate) async fn free(db: &impl ConnectionTrait, name: &str, n: u64) -> Result<()> {
    let row = queue_freed::ActiveModel {
        queue: Set(name.to_owned()),
        n: Set(n as i64),
        ..Default::default()
    };
    queue_freed::Entity::insert(row)
        .exec_without_returning(db)
        .await
        .map_err(db_error)?;
    Ok(())
}

/// Gives back `n` slots taken earlier in this same transaction (which holds the queue's row
/// lock already): straight into the count.
pub(crate) async fn untake(db: &impl ConnectionTrait, name: &str, n: u64) -> Result<()> {
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

/// Folds the ledger's committed rows for `queue` into its count, and returns how many slots
/// they gave back. The rows are locked as they are read (SQLite's write lock does the same),
/// so that two folds never count one row twice: the second waits, then finds it gone.
pub(crate) async fn fold(db: &impl ConnectionTrait, name: &str) -> Result<u64> {
    let mut select = queue_freed::Entity::find()
        .filter(queue_freed::Column::Queue.eq(name))
        .order_by_asc(queue_freed::Column::Id)
        .limit(FOLD_CHUNK);
    if db.get_database_backend() != DbBackend::Sqlite {
        select = select.lock(LockType::Update);
    }
    let rows = select.all(db).await.map_err(db_error)?;
    if rows.is_empty() {
        return Ok(0);
    }
    let freed: i64 = rows.iter().map(|row| row.n).sum();
    queue_freed::Entity::delete_many()
        .filter(queue_freed::Column::Id.is_in(rows.iter().map(|row| row.id)))
        .exec(db)
        .await
        .map_err(db_error)?;
    untake(db, name, freed as u64).await?;
    Ok(freed as u64)
}

/// Most ledger rows one fold reads: enough for any take, well under every database's parameter
/// limit; the rest wait for the next fold.
const FOLD_CHUNK: u64 = 1000;

/// Folds every queue's ledger, each queue in a short transaction of its own.
pub(crate) async fn fold_all(backend: &SqlBackend) -> Result<()> {
    let queues: Vec<String> = queue_freed::Entity::find()
        .select_only()
        .column(queue_freed::Column::Queue)
        .distinct()
        .into_tuple()
        .all(backend.reader())
        .await
        .map_err(db_error)?;
    for name in &queues {
        backend
            .write(|txn| async move {
                let result = fold(&txn, name).await;
                (txn, result)
            })
            .await?;
    }
    Ok(())
}
