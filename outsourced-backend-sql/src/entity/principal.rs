//! `outsourced_principals`: workers, producers and admins, with their OAuth credentials.

use sea_orm::entity::prelude::*;

/// A principal row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outsourced_principals")]
pub(crate) struct Model {
    #[sea_orm(primary_key)]
    pub id: i64,
    pub role: String,
    pub name: String,
    pub consumer_key: String,
    /// The consumer secret, encrypted under the server key.
    #[sea_orm(column_type = "Text")]
    pub secret: String,
    pub locked: bool,
    pub created_at: i64,
    pub last_seen_at: Option<i64>,
    /// An admin's dashboard password, as an argon2 hash (PHC string); `None`: no login.
    pub password_hash: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
