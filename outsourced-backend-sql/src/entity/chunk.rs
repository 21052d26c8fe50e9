//! `outsourced_upload_chunks`: an upload's bytes, `n` counting from 0, each at most a chunk.

use sea_orm::entity::prelude::*;

/// A chunk row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outsourced_upload_chunks")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub upload_id: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub n: i32,
    pub data: Vec<u8>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
