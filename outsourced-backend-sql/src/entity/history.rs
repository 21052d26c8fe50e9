//! `outsourced_job_history`: one row per transition of a job, never updated.

use sea_orm::entity::prelude::*;

/// A history row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outsourced_job_history")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub job_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i32,
    pub from_state: Option<String>,
    pub to_state: String,
    pub at: i64,
    pub actor: String,
    pub attempt: i32,
    pub reason: String,
    pub lease_token: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub error_message: Option<String>,
    /// The error's causes as a JSON array of strings.
    #[sea_orm(column_type = "Text", nullable)]
    pub error_causes: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub error_backtrace: Option<String>,
    /// The result of a succeeded attempt, as JSON.
    #[sea_orm(column_type = "Text", nullable)]
    pub result: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
