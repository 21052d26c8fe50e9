//! Unique jobs: the key a job was stored with, on its row (to show and filter by), and the
//! keys in force, one row per scope, whose primary key makes two holders of one key impossible.

use sea_orm_migration::prelude::*;

pub(crate) struct Unique;

impl MigrationName for Unique {
    fn name(&self) -> &str {
        "m0011_unique"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Unique {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let column = ColumnDef::new("unique_key")
            .string_len(191)
            .null()
            .to_owned();
        let alter = Table::alter()
            .table("outsourced_jobs")
            .add_column(column)
            .to_owned();
        manager.alter_table(alter).await?;
        let keys = Table::create()
            .table("outsourced_unique_keys")
            // The SHA-256 (hex) of the key's scope: its queue, class (unless unique across the
            // queue) and key; fixed in length whatever their lengths.
            .col(
                ColumnDef::new("scope")
                    .string_len(64)
                    .not_null()
                    .primary_key(),
            )
            .col(ColumnDef::new("job_id").big_integer().not_null())
            // Epoch ms until which the key is taken whatever the job's state; NULL while the
            // job is live.
            .col(ColumnDef::new("until").big_integer().null())
            .to_owned();
        manager.create_table(keys).await?;
        let by_job = Index::create()
            .name("outsourced_unique_keys_job")
            .table("outsourced_unique_keys")
            .col("job_id")
            .to_owned();
        manager.create_index(by_job).await
    }
}
