//! `outsourced_dependencies`: one row per job and a job it waits for, keyed by the one waited
//! for (the lookup made when it ends).

use sea_orm::entity::prelude::*;

/// An edge: `dependant_id` waits for `dependency_id`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outsourced_dependencies")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub dependency_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub dependant_id: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
