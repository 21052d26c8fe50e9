//! `outsourced_login_failures`: refused dashboard logins by subject (an admin's name or a
//! client's address).

use sea_orm::entity::prelude::*;

/// A subject's refused logins.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outsourced_login_failures")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub subject: String,
    /// Refused logins since `first_at`.
    pub failures: i32,
    pub first_at: i64,
    /// No login is tried for the subject before this time.
    pub blocked_until: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
