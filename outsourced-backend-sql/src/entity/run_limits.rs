//! `outsourced_run_limits`: one row per queue that has run limits (`RunLimits`).

use sea_orm::entity::prelude::*;

/// A limited queue's row: reserves of the queue lock it, so that they take turns.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outsourced_run_limits")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub queue: String,
    pub max_running: Option<i32>,
    /// A rate of starts: `rate_starts` per `rate_per_ms` (both set or neither).
    pub rate_starts: Option<i32>,
    pub rate_per_ms: Option<i64>,
    /// The earliest time the rate lets the next job start (epoch ms); moved on by each start.
    pub rate_next_at: i64,
    pub max_running_per_key: Option<i32>,
    /// A rate of starts per concurrency key: `key_rate_starts` per `key_rate_per_ms` (both set
    /// or neither), each key's clock a row of `outsourced_key_rates`.
    pub key_rate_starts: Option<i32>,
    pub key_rate_per_ms: Option<i64>,
    /// Whether its running jobs are kept in places (`places.rs`): set once they fit, cleared
    /// by every change of the limits.
    pub places_kept: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
