//! The number of jobs per queue and state, kept exact without counting the jobs table: a
//! summary and a ledger of what each transaction changed (`counts.rs`). The summary starts
//! from a count of the jobs as they are now.

use sea_orm_migration::prelude::*;

pub(crate) struct StateCounts;

impl MigrationName for StateCounts {
    fn name(&self) -> &str {
        "m0019_state_counts"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for StateCounts {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let summary = Table::create()
            .table("outsourced_state_counts")
            .col(ColumnDef::new("queue").string_len(191).not_null())
            .col(ColumnDef::new("state").string_len(16).not_null())
            .col(ColumnDef::new("n").big_integer().not_null())
            .primary_key(Index::create().col("queue").col("state"))
            .to_owned();
        manager.create_table(summary).await?;
        let ledger = Table::create()
            .table("outsourced_state_deltas")
            .col(
                ColumnDef::new("id")
                    .big_integer()
                    .not_null()
                    .auto_increment()
                    .primary_key(),
            )
            .col(ColumnDef::new("queue").string_len(191).not_null())
            .col(ColumnDef::new("state").string_len(16).not_null())
            .col(ColumnDef::new("n").big_integer().not_null())
            .to_owned();
        manager.create_table(ledger).await?;
        let start = "INSERT INTO outsourced_state_counts (queue, state, n) \
                     SELECT queue, state, COUNT(*) FROM outsourced_jobs GROUP BY queue, state";
        manager.get_connection().execute_unprepared(start).await?;
        Ok(())
    }
}
