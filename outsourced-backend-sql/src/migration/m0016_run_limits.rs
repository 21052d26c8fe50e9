//! Run limits (issue 20): a row per limited queue with its limits on running jobs and its rate
//! of starts (a table of its own, so that the reserves of a limited queue, which take turns on
//! that row, never wait for the queue's enqueues, which take turns on the queue's row), a job's
//! concurrency key, and an index of running jobs by queue and key, by which reserve counts a
//! limited queue's running jobs. Only running jobs are indexed where the database can say
//! so (PostgreSQL and SQLite): a job enters that index once, when it starts. MySQL indexes
//! every row by its state as well.

use sea_orm::DbBackend;
use sea_orm_migration::prelude::*;

pub(crate) struct RunLimits;

impl MigrationName for RunLimits {
    fn name(&self) -> &str {
        "m0016_run_limits"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for RunLimits {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let limits = Table::create()
            .table("outsourced_run_limits")
            .col(
                ColumnDef::new("queue")
                    .string_len(191)
                    .not_null()
                    .primary_key(),
            )
            .col(ColumnDef::new("max_running").integer().null())
            .col(ColumnDef::new("rate_starts").integer().null())
            .col(ColumnDef::new("rate_per_ms").big_integer().null())
            // The earliest time the rate lets the next job start (epoch ms).
            .col(
                ColumnDef::new("rate_next_at")
                    .big_integer()
                    .not_null()
                    .default(0),
            )
            .col(ColumnDef::new("max_running_per_key").integer().null())
            .to_owned();
        manager.create_table(limits).await?;
        let key = Table::alter()
            .table("outsourced_jobs")
            .add_column(ColumnDef::new("concurrency_key").string_len(191).null())
            .to_owned();
        manager.alter_table(key).await?;
        let mut running = Index::create();
        running
            .name("outsourced_jobs_running")
            .table("outsourced_jobs");
        if manager.get_database_backend() == DbBackend::MySql {
            running.col("queue").col("state").col("concurrency_key");
        } else {
            running
                .col("queue")
                .col("concurrency_key")
                .and_where(Expr::col("state").eq("running"));
        }
        manager.create_index(running.to_owned()).await
    }
}
