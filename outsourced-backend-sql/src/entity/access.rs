//! `outsourced_access`: which queues a worker is hired for, or a producer may enqueue into.

use sea_orm::entity::prelude::*;

/// An access row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outsourced_access")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub principal_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub queue: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
