//! Throttling dashboard logins: refused logins are counted per subject (an admin's name, a
//! client's address) in the database, so that every server process sees them. A subject has
//! [`FREE_FAILURES`] refusals within [`WINDOW`]; each refusal past them blocks it for twice as
//! long as the one before (1 s, 2 s, 4 s ... at most [`MAX_BLOCK`]), during which no password
//! of it is even checked. A successful login clears its subjects.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};

use super::directory::Directory;
use crate::convert::ms;
use crate::entity::login_failure;
use crate::error::db_error;
use outsourced_core::Result;

/// Refusals a subject has before it is blocked.
pub const FREE_FAILURES: i32 = 5;
/// How long refusals count.
pub const WINDOW: Duration = Duration::from_secs(15 * 60);
/// The longest block.
pub const MAX_BLOCK: Duration = Duration::from_secs(15 * 60);

/// How long a subject with `failures` refusals is blocked.
fn block_for(failures: i32) -> Duration {
    let past = u32::try_from(failures - FREE_FAILURES).unwrap_or(0);
    match past {
        0 => Duration::ZERO,
        n => Ord::min(Duration::from_secs(1u64 << Ord::min(n - 1, 20)), MAX_BLOCK),
    }
}

fn remaining(until: i64, now: DateTime<Utc>) -> Option<Duration> {
    let left = until - ms(now);
    (left > 0).then(|| Duration::from_millis(left as u64))
}

impl Directory {
    /// How long logins of these subjects stay blocked from now, if any is.
    pub async fn login_blocked(&self, subjects: &[String]) -> Result<Option<Duration>> {
        let now = self.backend().now();
        let rows = login_failure::Entity::find()
            .filter(login_failure::Column::Subject.is_in(subjects.iter().map(String::as_str)))
            .all(self.backend().connection())
            .await
            .map_err(db_error)?;
        Ok(rows
            .iter()
            .filter_map(|row| remaining(row.blocked_until, now))
            .max())
    }

    /// Counts a refused login against each subject; returns how long they are blocked now.
    pub async fn login_refused(&self, subjects: &[String]) -> Result<Option<Duration>> {
        let now = self.backend().now();
        let db = self.backend().connection();
        let mut longest = None;
        for subject in subjects {
            let row = refuse_one(db, subject, now).await?;
            longest = Ord::max(longest, remaining(row.blocked_until, now));
        }
        Ok(longest)
    }

    /// Forgets the subjects' refusals, after a login succeeded.
    pub async fn login_succeeded(&self, subjects: &[String]) -> Result<()> {
        login_failure::Entity::delete_many()
            .filter(login_failure::Column::Subject.is_in(subjects.iter().map(String::as_str)))
            .exec(self.backend().connection())
            .await
            .map_err(db_error)?;
        Ok(())
    }
}

/// One more refusal of `subject`: counted with one guarded statement (concurrent refusals in
/// several processes all count), a window that has passed starting again, then the block.
async fn refuse_one(
    db: &impl ConnectionTrait,
    subject: &str,
    now: DateTime<Utc>,
) -> Result<login_failure::Model> {
    let window_start = ms(now) - WINDOW.as_millis() as i64;
    let counted = login_failure::Entity::update_many()
        .col_expr(
            login_failure::Column::Failures,
            Expr::col(login_failure::Column::Failures).add(1),
        )
        .filter(login_failure::Column::Subject.eq(subject))
        .filter(login_failure::Column::FirstAt.gt(window_start))
        .exec(db)
        .await
        .map_err(db_error)?;
    if counted.rows_affected == 0 {
        // None yet, or an old window: this refusal is the first of a new one.
        login_failure::Entity::delete_many()
            .filter(login_failure::Column::Subject.eq(subject))
            .exec(db)
            .await
            .map_err(db_error)?;
        let first = login_failure::ActiveModel {
            subject: Set(subject.to_owned()),
            failures: Set(1),
            first_at: Set(ms(now)),
            blocked_until: Set(0),
        };
        let inserted = login_failure::Entity::insert(first)
            .exec_without_returning(db)
            .await;
        if let Err(error) = inserted {
            // Another process began the window at the same moment: count on its row.
            if crate::error::kind(&error) != crate::error::DbErrorKind::UniqueViolation {
                return Err(db_error(error));
            }
            return Box::pin(refuse_one(db, subject, now)).await;
        }
    }
    let row = login_failure::Entity::find_by_id(subject.to_owned())
        .one(db)
        .await
        .map_err(db_error)?;
    let Some(mut row) = row else {
        return Err(crate::error::backend_error(
            "a login failure vanished",
            true,
        ));
    };
    let block = block_for(row.failures);
    if !block.is_zero() {
        row.blocked_until = ms(now) + block.as_millis() as i64;
        login_failure::Entity::update_many()
            .col_expr(
                login_failure::Column::BlockedUntil,
                Expr::value(row.blocked_until),
            )
            .filter(login_failure::Column::Subject.eq(subject))
            .exec(db)
            .await
            .map_err(db_error)?;
    }
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_double_past_the_free_refusals_up_to_a_cap() {
        let blocks: Vec<u64> = (1..=12).map(|n| block_for(n).as_secs()).collect();
        assert_eq!(blocks[..8], [0, 0, 0, 0, 0, 1, 2, 4]);
        assert_eq!(block_for(40), MAX_BLOCK);
    }
}
