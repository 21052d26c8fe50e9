//! `outsourced_uploads`: an attachment's bytes on their way in, and after; `linked` once its
//! job carries it (an unlinked upload older than a day was abandoned and is pruned).

use sea_orm::entity::prelude::*;

/// An upload row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outsourced_uploads")]
pub(crate) struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub linked: bool,
    pub created_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
