//! Results: what a job hands back when it succeeds, kept as JSON text on the attempt's
//! `completed` history row (LONGTEXT on MySQL/MariaDB, whose TEXT stops at 64 KiB).

use sea_orm_migration::prelude::*;

pub(crate) struct Results;

impl MigrationName for Results {
    fn name(&self) -> &str {
        "m0010_results"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Results {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut column = super::long_text(manager.get_database_backend(), "result");
        let alter = Table::alter()
            .table("outsourced_job_history")
            .add_column(column.null().to_owned())
            .to_owned();
        manager.alter_table(alter).await
    }
}
