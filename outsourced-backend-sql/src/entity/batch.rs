//! `outsourced_batches`: one row per batch, with its counts.

use sea_orm::entity::prelude::*;

/// A batch row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outsourced_batches")]
pub(crate) struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    #[sea_orm(column_type = "Text", nullable)]
    pub description: Option<String>,
    pub created_by: String,
    pub created_at: i64,
    /// No more jobs from outside the batch; it ends when its jobs have.
    pub closed: bool,
    pub total: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub cancelled: i64,
    /// The callback, stored pending when the batch was opened.
    pub callback_job_id: i64,
    pub finished_at: Option<i64>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
