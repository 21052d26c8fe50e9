//! A ledger of freed queue slots: a job that ends writes a row here instead of decrementing
//! its queue's count. On PostgreSQL and MariaDB that decrement took the queue's row lock until
//! the commit, so that every completion of one queue waited for the one before it to commit:
//! the burn-down ran at the disk's commit rate, one batch at a time (docs/benchmarks.md).

use sea_orm_migration::prelude::*;

pub(crate) struct FreedSlots;

impl MigrationName for FreedSlots {
    fn name(&self) -> &str {
        "m0014_freed_slots"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for FreedSlots {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let table = Table::create()
            .table("outsourced_queue_freed")
            .col(
                ColumnDef::new("id")
                    .big_integer()
                    .not_null()
                    .auto_increment()
                    .primary_key(),
            )
            .col(ColumnDef::new("queue").string_len(191).not_null())
            .col(ColumnDef::new("n").big_integer().not_null())
            .to_owned();
        manager.create_table(table).await?;
        let by_queue = Index::create()
            .name("outsourced_queue_freed_queue")
            .table("outsourced_queue_freed")
            .col("queue")
            .to_owned();
        manager.create_index(by_queue).await
    }
}
