//! `outsourced_run_places`: the places of a queue whose one run limit is `max_running`.

use sea_orm::entity::prelude::*;

/// One place: free when it holds no job, since `freed_at` (epoch ms).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outsourced_run_places")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub queue: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub place: i32,
    pub job_id: Option<i64>,
    pub lease_token: Option<String>,
    pub freed_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
