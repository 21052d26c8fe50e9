//! Follow-up jobs (issue 22): a job stored by another job's success names it as its parent.
//! Only follow-ups are indexed by it where the database can say so (PostgreSQL and SQLite), so
//! that the jobs every producer enqueues pay nothing for the column.

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

pub(crate) struct FollowUps;

impl MigrationName for FollowUps {
    fn name(&self) -> &str {
        "m0020_follow_ups"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for FollowUps {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let parent = Table::alter()
            .table("outsourced_jobs")
            .add_column(ColumnDef::new("parent_id").big_integer().null())
            .to_owned();
        manager.alter_table(parent).await?;
        let mut by_parent = Index::create();
        by_parent
            .name("outsourced_jobs_parent")
            .table("outsourced_jobs")
            .col("parent_id");
        if manager.get_database_backend() != DbBackend::MySql {
            by_parent.and_where(Expr::col("parent_id").is_not_null());
        }
        manager.create_index(by_parent.to_owned()).await
    }
}
