//! `outsourced_sessions`: the dashboard's logins, by the SHA-256 of their cookie token.

use sea_orm::entity::prelude::*;

/// A session row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outsourced_sessions")]
pub(crate) struct Model {
    /// Hex SHA-256 of the cookie's token: a stolen database holds no usable cookie.
    #[sea_orm(primary_key, auto_increment = false)]
    pub token_hash: String,
    pub principal_id: i64,
    /// The token every form of this session must carry.
    pub csrf: String,
    pub created_at: i64,
    pub expires_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
