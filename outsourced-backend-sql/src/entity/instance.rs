//! `outsourced_instances`: the worker instances reserve has heard from.

use sea_orm::entity::prelude::*;

/// An instance row.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outsourced_instances")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub worker: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub instance: String,
    /// The classes it runs, as a JSON list; `None`: any class.
    #[sea_orm(column_type = "Text", nullable)]
    pub classes: Option<String>,
    /// The queues it reserves from, as a JSON list; empty: every queue.
    #[sea_orm(column_type = "Text")]
    pub queues: String,
    pub started_at: i64,
    pub last_seen_at: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
