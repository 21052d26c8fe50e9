//! Database errors, classified by kind (driver error codes), never by message text.

use std::sync::Arc;

use sea_orm::sqlx;
use sea_orm::{DbErr, RuntimeErr};

use outsourced_core::Error;

/// What a database error means to the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DbErrorKind {
    /// A unique key already exists.
    UniqueViolation,
    /// Contention: a deadlock, a serialization failure, a lock not granted in time. The
    /// database undid the statement or the transaction, which may simply be run again.
    Conflict,
    /// A lost or unavailable connection: the same call may succeed later, but whether a
    /// commit in flight took effect is unknown.
    Transient,
    /// Anything else.
    Other,
}

/// Classifies a database error by the driver's error kind and code.
pub(crate) fn kind(error: &DbErr) -> DbErrorKind {
    let sqlx_error = match error {
        DbErr::ConnectionAcquire(_) => return DbErrorKind::Transient,
        DbErr::Conn(RuntimeErr::SqlxError(e))
        | DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e)) => e.as_ref(),
        _ => return DbErrorKind::Other,
    };
    match sqlx_error {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => DbErrorKind::Transient,
        sqlx::Error::Database(db) => {
            if db.is_unique_violation() {
                return DbErrorKind::UniqueViolation;
            }
            if is_contention(db.as_ref()) {
                DbErrorKind::Conflict
            } else {
                DbErrorKind::Other
            }
        }
        _ => DbErrorKind::Other,
    }
}

/// Contention, by each driver's own codes: SQLite BUSY and LOCKED (with their extended codes),
/// PostgreSQL serialization failure, deadlock, lock timeout and admin shutdown, MySQL lock wait
/// timeout and deadlock.
fn is_contention(db: &dyn sqlx::error::DatabaseError) -> bool {
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        let code = db.code().and_then(|c| c.parse::<i32>().ok()).unwrap_or(0);
        return sqlite_is_busy(code);
    }
    if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        return matches!(
            pg.code(),
            PG_SERIALIZATION_FAILURE | PG_DEADLOCK | PG_LOCK_NOT_AVAILABLE | PG_ADMIN_SHUTDOWN
        );
    }
    if let Some(my) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        return matches!(my.number(), MYSQL_LOCK_WAIT_TIMEOUT | MYSQL_DEADLOCK);
    }
    false
}

/// PostgreSQL's SQLSTATE codes of contention (appendix A of its manual).
const PG_SERIALIZATION_FAILURE: &str = "40001";
const PG_DEADLOCK: &str = "40P01";
const PG_LOCK_NOT_AVAILABLE: &str = "55P03";
const PG_ADMIN_SHUTDOWN: &str = "57P01";
/// MySQL's error numbers: ER_LOCK_WAIT_TIMEOUT, ER_LOCK_DEADLOCK.
const MYSQL_LOCK_WAIT_TIMEOUT: u16 = 1205;
const MYSQL_DEADLOCK: u16 = 1213;
/// SQLite's primary result codes SQLITE_BUSY and SQLITE_LOCKED.
const SQLITE_BUSY: i32 = 5;
const SQLITE_LOCKED: i32 = 6;

/// SQLITE_BUSY and SQLITE_LOCKED, whatever their extended code (the low byte is the primary).
fn sqlite_is_busy(code: i32) -> bool {
    matches!(code & 0xff, SQLITE_BUSY | SQLITE_LOCKED)
}

/// Whether `error` is a conflict with a concurrent transaction (see [`DbErrorKind::Conflict`]),
/// after which a write transaction may be run again as it was.
pub(crate) fn is_conflict(error: &Error) -> bool {
    let Error::Backend {
        source: Some(source),
        ..
    } = error
    else {
        return false;
    };
    source
        .downcast_ref::<DbErr>()
        .is_some_and(|db| kind(db) == DbErrorKind::Conflict)
}

/// Converts a database error into the core error, keeping it as the source.
pub(crate) fn db_error(error: DbErr) -> Error {
    let retryable = matches!(kind(&error), DbErrorKind::Transient | DbErrorKind::Conflict);
    Error::Backend {
        backend: "sql",
        message: error.to_string(),
        retryable,
        source: Some(Arc::new(error)),
    }
}

/// An error of this backend's own, with no database error behind it; `retryable` says
/// whether the same call may succeed if made again.
pub(crate) fn backend_error(message: impl Into<String>, retryable: bool) -> Error {
    Error::Backend {
        backend: "sql",
        message: message.into(),
        retryable,
        source: None,
    }
}

/// An error for data in the database that the backend cannot read back (a corrupt row).
pub(crate) fn corrupt(what: impl std::fmt::Display) -> Error {
    backend_error(format!("unreadable row: {what}"), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_busy_and_locked_are_contention_with_any_extended_code() {
        for code in [5, 261, 517, 6, 262] {
            assert!(sqlite_is_busy(code), "{code}");
        }
        for code in [0, 1, 19, 2067] {
            assert!(!sqlite_is_busy(code), "{code}");
        }
    }
}
