//! `outsourced_nonces`: the OAuth nonces seen within the timestamp window, shared by every
//! server process on the database.

use sea_orm::entity::prelude::*;

/// A nonce row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outsourced_nonces")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub consumer_key: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub timestamp: i64,
    #[sea_orm(primary_key, auto_increment = false)]
    pub nonce: String,
    /// When it was seen (epoch ms), for purging.
    pub seen_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
