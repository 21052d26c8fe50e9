//! `outsourced_unique_keys`: the unique keys in force, one row per scope.

use sea_orm::entity::prelude::*;

/// A key in force.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outsourced_unique_keys")]
pub(crate) struct Model {
    /// The SHA-256 (hex) of the key's scope.
    #[sea_orm(primary_key, auto_increment = false)]
    pub scope: String,
    /// The job that holds it (0 for a moment, inside the transaction that stores that job).
    pub job_id: i64,
    /// Epoch ms until which it is taken whatever the job's state; `None`: while the job is
    /// live.
    pub until: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
