//! Retention: each queue's age after which its finished jobs are pruned, and the index that
//! finds them oldest first without touching live jobs (whose `finished_at` is null).

use sea_orm_migration::prelude::*;

pub(crate) struct Retention;

impl MigrationName for Retention {
    fn name(&self) -> &str {
        "m0004_retention"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Retention {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let column = Table::alter()
            .table("outsourced_queues")
            .add_column(ColumnDef::new("retention_ms").big_integer().null())
            .to_owned();
        manager.alter_table(column).await?;
        let finished = Index::create()
            .name("outsourced_jobs_finished")
            .table("outsourced_jobs")
            .col("queue")
            .col("finished_at")
            .to_owned();
        manager.create_index(finished).await
    }
}
