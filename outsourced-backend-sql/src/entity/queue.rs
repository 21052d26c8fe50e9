//! `outsourced_queues`: each queue's settings and its guarded count of live jobs.

use sea_orm::entity::prelude::*;

/// A queue row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outsourced_queues")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    /// The limit on live jobs; `None` is unlimited.
    pub max_live: Option<i64>,
    /// Live jobs (scheduled, available, retrying, running), at least: taken in the same
    /// transaction as every change that makes a job live, given back through the ledger of
    /// freed slots (`queue_freed`) by those that finish one; enqueue checks the limit against
    /// it, and folds the ledger in when it finds the queue full.
    pub live: i64,
    pub paused: bool,
    pub created_at: i64,
    /// How long finished jobs are kept, in milliseconds; `None` keeps them forever.
    pub retention_ms: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
