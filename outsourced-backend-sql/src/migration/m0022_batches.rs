//! Batches (issue 22): jobs grouped under one callback, which runs once every one of them has
//! ended. A batch row keeps its counts; a job names the batch it belongs to, or the batch whose
//! callback it is.

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

pub(crate) struct Batches;

impl MigrationName for Batches {
    fn name(&self) -> &str {
        "m0022_batches"
    }
}

/// A count column, 0 to start with.
fn count(name: &'static str) -> ColumnDef {
    ColumnDef::new(name)
        .big_integer()
        .not_null()
        .default(0)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Batches {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let batches = Table::create()
            .table("outsourced_batches")
            .col(
                ColumnDef::new("id")
                    .big_integer()
                    .not_null()
                    .auto_increment()
                    .primary_key(),
            )
            .col(ColumnDef::new("description").text().null())
            .col(ColumnDef::new("created_by").string_len(255).not_null())
            .col(ColumnDef::new("created_at").big_integer().not_null())
            .col(ColumnDef::new("closed").boolean().not_null().default(false))
            .col(count("total"))
            .col(count("succeeded"))
            .col(count("failed"))
            .col(count("cancelled"))
            .col(ColumnDef::new("callback_job_id").big_integer().not_null())
            .col(ColumnDef::new("finished_at").big_integer().null())
            .to_owned();
        manager.create_table(batches).await?;
        // One column per statement: SQLite alters a table one column at a time.
        for name in ["batch_id", "callback_of"] {
            let alter = Table::alter()
                .table("outsourced_jobs")
                .add_column(ColumnDef::new(name).big_integer().null())
                .to_owned();
            manager.alter_table(alter).await?;
        }
        let mut by_batch = Index::create();
        by_batch
            .name("outsourced_jobs_batch")
            .table("outsourced_jobs")
            .col("batch_id");
        if manager.get_database_backend() != DbBackend::MySql {
            by_batch.and_where(Expr::col("batch_id").is_not_null());
        }
        manager.create_index(by_batch.to_owned()).await
    }
}
