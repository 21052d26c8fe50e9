//! A rate of starts per concurrency key (issue 20): the rate on the queue's limits row, and a
//! clock per key that has started a job lately (the earliest time its next job may start).
//! A key's row is kept only while it holds a start back; reserves of the queue, which take
//! turns on its limits row, delete the others.

use sea_orm_migration::prelude::*;

pub(crate) struct KeyRates;

impl MigrationName for KeyRates {
    fn name(&self) -> &str {
        "m0023_key_rates"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for KeyRates {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters a table one column at a time.
        let columns = [
            ColumnDef::new("key_rate_starts")
                .integer()
                .null()
                .to_owned(),
            ColumnDef::new("key_rate_per_ms")
                .big_integer()
                .null()
                .to_owned(),
        ];
        for column in columns {
            let alter = Table::alter()
                .table("outsourced_run_limits")
                .add_column(column)
                .to_owned();
            manager.alter_table(alter).await?;
        }
        let clocks = Table::create()
            .table("outsourced_key_rates")
            .col(ColumnDef::new("queue").string_len(191).not_null())
            .col(ColumnDef::new("concurrency_key").string_len(191).not_null())
            // The earliest time the key's next job may start (epoch ms).
            .col(ColumnDef::new("next_at").big_integer().not_null())
            .primary_key(Index::create().col("queue").col("concurrency_key"))
            .to_owned();
        manager.create_table(clocks).await
    }
}
