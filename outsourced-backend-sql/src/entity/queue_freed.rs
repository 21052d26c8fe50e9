//! `outsourced_queue_freed`: slots given back by jobs that ended, not yet folded into their
//! queue's count (see `slots`).

use sea_orm::entity::prelude::*;

/// Slots one transaction gave back to one queue.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outsourced_queue_freed")]
pub(crate) struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub queue: String,
    pub n: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
