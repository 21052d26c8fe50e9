//! `outsourced_key_rates`: the clock of each concurrency key that a rate per key holds back.

use sea_orm::entity::prelude::*;

/// One key's clock: its next job starts no sooner than `next_at` (epoch ms).
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outsourced_key_rates")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub queue: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub concurrency_key: String,
    pub next_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
